/* uvnode: the libuv driver of the sans-I/O node (see uvnode.h). Every libuv
 * callback that feeds the node is followed by drain(), which executes the
 * node's actions; a prepare handle (run once per loop turn, right before the
 * loop waits for I/O) calls kith_node_flush when anything happened, so all
 * the sends and received messages of one turn share one fdatasync.
 *
 * Ownership rules that keep this memory-safe:
 *  - a connection is freed only in its uv_close callback, which libuv runs
 *    after the cancelled write/connect callbacks of that handle;
 *  - once a connection is closing it is out of the list, so nothing reaches
 *    it by id and the node is never called about it again;
 *  - getaddrinfo requests carry the connection id, not a pointer, and look
 *    it up again when they complete. */
#include "uvnode/uvnode.h"

#include <net/if.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "util/util.h"

typedef struct uvconn {
    uv_tcp_t tcp;
    kith_uvnode *u;
    uint64_t id;
    size_t unsent; /* bytes in uv_write requests not yet completed */
    kith_buf wbuf; /* frames of this drain, written as one at its end */
    bool open; /* connected (inbound: accepted) */
    bool slow; /* told the node it is backed up (kith_node_conn_slow) */
    struct uvconn *next;
} uvconn;

typedef struct uvwrite {
    uv_write_t req;
    uvconn *c;
    size_t len;
    uint8_t data[];
} uvwrite;

/* An interface beacons are heard on and (send4, send6) sent on. */
typedef struct lan_if {
    char name[IF_NAMESIZE];
    unsigned index;
    char v4[16]; /* its first IPv4 address, the IPv4 multicast interface */
    bool present; /* up, in the latest scan */
    bool has_v4, has_v6;
    bool send4, send6; /* we can be dialed through it in that family */
    bool joined4, joined6; /* the group is joined there */
} lan_if;

typedef struct uvresolve {
    uv_getaddrinfo_t req;
    kith_uvnode *u;
    uint64_t id;
} uvresolve;

struct kith_uvnode {
    uint64_t trimmed_ms; /* last malloc_trim (loop time) */
    const kith_env *env;
    kith_node *node;
    uv_loop_t loop;
    bool loop_inited;
    uv_tcp_t server;
    bool server_inited;
    uv_timer_t timer;
    uv_prepare_t prepare;
    uv_signal_t sigint, sigterm;
    bool handles_inited;
    /* LAN beacons: one socket per family, the group joined on every
     * interface in lan_ifs. */
    uv_udp_t udp4, udp6;
    bool udp4_on, udp6_on;
    struct sockaddr_in group4;
    struct sockaddr_in6 group6;
    lan_if lan_ifs[KITH_UVNODE_LAN_MAX_IFS];
    size_t nlan_ifs;
    /* Interfaces are looked at again now and then (a laptop joins the
     * meetup's Wi-Fi after kith started). */
    uv_timer_t lan_timer;
    bool lan_timer_on;
    bool lan_loopback;
    struct lan_reach {
        bool any4, any6; /* listening on 0.0.0.0, or on [::] (both, when dual-stack) */
        bool one; /* listening on one address: beacon on its interface only */
        struct sockaddr_storage addr;
    } lan_reach;
    uint8_t ubuf[2048];
    kith_uvnode_hooks hooks;
    kith_uvnode_hooks extra[KITH_UVNODE_MAX_HOOKS]; /* control socket, IRC gateway */
    size_t nextra;
    uvconn *conns;
    size_t nconns;
    /* Local inputs paused while a link is backed up (kith_uvnode_hold),
     * looked at every KITH_UVNODE_HOLD_CHECK_MS by hold_timer. */
    kith_uvnode_pause *holds;
    uv_timer_t hold_timer;
    size_t mark_high, mark_low, mark_slow;
    size_t resolving; /* getaddrinfo requests in flight */
    bool dirty; /* the node was called since the last flush */
    bool draining;
    bool stop_pending; /* stop asked for from inside drain() */
    bool stopping;
    int exit_code;
    char listen_addr[KITH_UVNODE_ADDR_MAX];
    /* One read buffer for all connections: libuv calls alloc_cb and read_cb
     * back to back, and the node copies what it keeps. */
    uint8_t rbuf[64 * 1024];
};

static void drain(kith_uvnode *u);

int kith_uvnode_split_addr(
    const char *s, char *host, size_t hostcap, uint16_t *port, bool allow_zero)
{
    if (!s || !host || hostcap == 0)
        return KITH_EINVAL;
    size_t n = strnlen(s, KITH_UVNODE_ADDR_MAX);
    if (n == 0 || n >= KITH_UVNODE_ADDR_MAX)
        return KITH_EINVAL;
    const char *h, *colon;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || close[1] != ':')
            return KITH_EINVAL;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = NULL;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':') {
                if (colon) /* a bare IPv6 address: brackets are required */
                    return KITH_EINVAL;
                colon = s + i;
            }
        if (!colon)
            return KITH_EINVAL;
        h = s;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= hostcap)
        return KITH_EINVAL;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '[' || ch == ']' || ch == '/')
            return KITH_EINVAL;
    }
    const char *p = colon + 1;
    const char *end = s + n;
    if (p == end || end - p > 5)
        return KITH_EINVAL;
    uint32_t v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return KITH_EINVAL;
        v = v * 10u + (uint32_t)(*p - '0');
    }
    if (v > 65535 || (v == 0 && !allow_zero))
        return KITH_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)v;
    return 0;
}

/* Numeric address into ss; KITH_EINVAL when host is not an IP literal. */
static int numeric_addr(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return KITH_EINVAL;
}

static void format_sockaddr(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[64] = "";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(a6, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(a6->sin6_port));
    } else {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
        uv_ip4_name(a4, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(a4->sin_port));
    }
}

/* ---- connections ---- */

static uvconn *conn_find(kith_uvnode *u, uint64_t id)
{
    for (uvconn *c = u->conns; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

static void conn_unlink(kith_uvnode *u, uvconn *c)
{
    for (uvconn **pp = &u->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            u->nconns--;
            return;
        }
}

static void on_conn_closed(uv_handle_t *h)
{
    uvconn *c = h->data;
    kith_buf_free(&c->wbuf);
    kith_free(c->u->env, c);
}

/* Close a live connection. tell_node: the close is the driver's idea (EOF,
 * error, overflow), so the node must hear of it; a close the node asked for
 * is not reported back. */
static void conn_close(kith_uvnode *u, uvconn *c, bool tell_node)
{
    conn_unlink(u, c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    if (tell_node && !u->stopping) {
        kith_node_conn_closed(u->node, c->id);
        u->dirty = true;
    }
}

static uvconn *conn_new(kith_uvnode *u, uint64_t id)
{
    uvconn *c = kith_calloc(u->env, 1, sizeof *c);
    if (!c)
        return NULL;
    if (uv_tcp_init(&u->loop, &c->tcp) != 0) {
        kith_free(u->env, c);
        return NULL;
    }
    c->tcp.data = c;
    c->u = u;
    c->id = id;
    kith_buf_init(&c->wbuf, u->env, KITH_UVNODE_MAX_UNSENT);
    c->next = u->conns;
    u->conns = c;
    u->nconns++;
    return c;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    uvconn *c = h->data;
    buf->base = (char *)c->u->rbuf;
    buf->len = sizeof c->u->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    uvconn *c = s->data;
    kith_uvnode *u = c->u;
    if (nread == 0 || u->stopping)
        return;
    if (nread < 0) {
        KITH_LOGD(u->env, "conn %llu: %s", (unsigned long long)c->id, uv_strerror((int)nread));
        conn_close(u, c, true);
    } else {
        kith_node_conn_data(u->node, c->id, u->rbuf, (size_t)nread);
        u->dirty = true;
    }
    drain(u);
}

static int conn_start(uvconn *c)
{
    /* Small frames (typed lines) must not wait for Nagle. */
    uv_tcp_nodelay(&c->tcp, 1);
    c->open = true;
    return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_connection(uv_stream_t *server, int status)
{
    kith_uvnode *u = server->data;
    if (status < 0 || u->stopping) {
        KITH_LOGW(u->env, "accept: %s", uv_strerror(status));
        return;
    }
    /* The id is the node's, so it is assigned after the accept succeeded;
     * until then the connection holds a placeholder. */
    uvconn *c = conn_new(u, 0);
    if (!c)
        return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || u->nconns > KITH_UVNODE_MAX_CONNS) {
        if (u->nconns > KITH_UVNODE_MAX_CONNS)
            KITH_LOGW(u->env, "too many connections: refusing one");
        conn_close(u, c, false);
        return;
    }
    c->id = kith_node_accept(u->node);
    u->dirty = true;
    if (conn_start(c) != 0)
        conn_close(u, c, true);
    drain(u);
}

static void on_connect(uv_connect_t *req, int status)
{
    uvconn *c = req->handle->data;
    kith_uvnode *u = c->u;
    kith_free(u->env, req);
    if (status == UV_ECANCELED || uv_is_closing((uv_handle_t *)&c->tcp))
        return; /* closed by us (node's CLOSE or shutdown): nobody to tell */
    if (status < 0) {
        KITH_LOGI(u->env, "conn %llu: connect: %s", (unsigned long long)c->id, uv_strerror(status));
        conn_close(u, c, true);
    } else if (conn_start(c) != 0) {
        conn_close(u, c, true);
    } else {
        kith_node_conn_opened(u->node, c->id);
        u->dirty = true;
    }
    drain(u);
}

/* 0, or an error after which the caller closes the connection. */
static int conn_dial(uvconn *c, const struct sockaddr *sa)
{
    uv_connect_t *req = kith_malloc(c->u->env, sizeof *req);
    if (!req)
        return KITH_ENOMEM;
    int rc = uv_tcp_connect(req, &c->tcp, sa, on_connect);
    if (rc != 0) {
        KITH_LOGI(c->u->env, "conn %llu: connect: %s", (unsigned long long)c->id, uv_strerror(rc));
        kith_free(c->u->env, req);
        return KITH_EIO;
    }
    return 0;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    uvresolve *r = (uvresolve *)req;
    kith_uvnode *u = r->u;
    uint64_t id = r->id;
    kith_free(u->env, r);
    u->resolving--;
    uvconn *c = u->stopping ? NULL : conn_find(u, id);
    if (c) {
        /* Prefer IPv4: addresses people type ("localhost") often resolve
         * to ::1 first while the peer listens on 127.0.0.1. */
        const struct addrinfo *pick = NULL;
        for (const struct addrinfo *ai = res; status == 0 && ai; ai = ai->ai_next)
            if (ai->ai_family == AF_INET || (!pick && ai->ai_family == AF_INET6))
                if (!pick || ai->ai_family == AF_INET) {
                    pick = ai;
                    if (ai->ai_family == AF_INET)
                        break;
                }
        if (!pick || conn_dial(c, pick->ai_addr) != 0) {
            KITH_LOGI(u->env, "conn %llu: cannot resolve: %s", (unsigned long long)id,
                status < 0 ? uv_strerror(status) : "no address");
            conn_close(u, c, true);
        }
    }
    if (res)
        uv_freeaddrinfo(res);
    if (!u->stopping)
        drain(u);
}

static void act_connect(kith_uvnode *u, uint64_t id, const char *addr)
{
    char host[KITH_UVNODE_ADDR_MAX];
    uint16_t port;
    if (conn_find(u, id)) {
        KITH_LOGW(u->env, "node reused conn id %llu: ignored", (unsigned long long)id);
        return;
    }
    uvconn *c = u->nconns < KITH_UVNODE_MAX_CONNS ? conn_new(u, id) : NULL;
    if (!c) {
        kith_node_conn_closed(u->node, id);
        u->dirty = true;
        return;
    }
    if (!addr || kith_uvnode_split_addr(addr, host, sizeof host, &port, false) != 0) {
        KITH_LOGI(u->env, "conn %llu: bad address", (unsigned long long)id);
        conn_close(u, c, true);
        return;
    }
    struct sockaddr_storage ss;
    if (numeric_addr(host, port, &ss) == 0) {
        if (conn_dial(c, (const struct sockaddr *)&ss) != 0)
            conn_close(u, c, true);
        return;
    }
    uvresolve *r = kith_calloc(u->env, 1, sizeof *r);
    if (!r) {
        conn_close(u, c, true);
        return;
    }
    r->u = u;
    r->id = id;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(&u->loop, &r->req, on_resolved, host, portstr, &hints);
    if (rc != 0) {
        kith_free(u->env, r);
        conn_close(u, c, true);
        return;
    }
    u->resolving++;
}

static void on_written(uv_write_t *req, int status)
{
    uvwrite *w = (uvwrite *)req;
    uvconn *c = w->c;
    kith_uvnode *u = c->u;
    c->unsent -= w->len;
    kith_free(u->env, w);
    if (c->slow && c->unsent + c->wbuf.len <= u->mark_low) {
        c->slow = false;
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            kith_node_conn_slow(u->node, c->id, false);
    }
    if (status < 0 && status != UV_ECANCELED && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        KITH_LOGD(u->env, "conn %llu: write: %s", (unsigned long long)c->id, uv_strerror(status));
        conn_close(u, c, true);
        drain(u);
    }
}

#define KITH_UVNODE_TRIM_MS 10000

/* Hand what a drain wrote to c to libuv as one write (one system call for
 * all the frames of a loop turn, not one per frame). */
static void write_out(kith_uvnode *u, uvconn *c)
{
    size_t len = c->wbuf.len;
    if (!len)
        return;
    uvwrite *w = kith_malloc(u->env, sizeof *w + len);
    if (!w) {
        kith_buf_reset(&c->wbuf);
        conn_close(u, c, true);
        return;
    }
    w->c = c;
    w->len = len;
    memcpy(w->data, c->wbuf.data, len);
    /* Keep a small buffer for the next turn; give a big one back. */
    if (c->wbuf.cap > (16u << 10))
        kith_buf_free(&c->wbuf);
    else
        kith_buf_reset(&c->wbuf);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc != 0) {
        kith_free(u->env, w);
        conn_close(u, c, true);
        return;
    }
    c->unsent += len;
}

/* After the poll loop (the node may be called again): links that went over
 * the slow mark are reported, so the node relays to them lazily. */
static void write_out_all(kith_uvnode *u)
{
    for (uvconn *c = u->conns, *next; c; c = next) {
        next = c->next; /* write_out may close c */
        write_out(u, c);
    }
    for (uvconn *c = u->conns; c; c = c->next) {
        if (!c->slow && c->unsent > u->mark_slow) {
            c->slow = true;
            KITH_LOGD(
                u->env, "conn %llu: %zu bytes unsent: slow", (unsigned long long)c->id, c->unsent);
            kith_node_conn_slow(u->node, c->id, true);
        }
    }
}

static void act_write(kith_uvnode *u, uint64_t id, const uint8_t *data, size_t len)
{
    uvconn *c = conn_find(u, id);
    if (!c || len == 0)
        return;
    if (len > KITH_UVNODE_MAX_UNSENT - c->unsent - c->wbuf.len) {
        KITH_LOGW(u->env, "conn %llu: peer is not reading (%zu bytes unsent): closing",
            (unsigned long long)id, c->unsent + c->wbuf.len);
        conn_close(u, c, true);
        return;
    }
    if (kith_buf_append(&c->wbuf, data, len) != 0)
        conn_close(u, c, true);
}

/* ---- LAN beacons ---- */

static void on_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    kith_uvnode *u = h->data;
    buf->base = (char *)u->ubuf;
    buf->len = sizeof u->ubuf;
}

static void on_udp_recv(
    uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
    (void)buf;
    kith_uvnode *u = h->data;
    if (nread <= 0 || !addr || (flags & UV_UDP_PARTIAL) || u->stopping)
        return; /* an error, nothing, or a datagram too big to be a beacon */
    char host[80] = "";
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
        uv_ip6_name(a6, host, sizeof host);
        char ifname[IF_NAMESIZE];
        if (a6->sin6_scope_id && if_indextoname(a6->sin6_scope_id, ifname)) {
            size_t len = strlen(host);
            snprintf(host + len, sizeof host - len, "%%%s", ifname);
        }
    } else if (addr->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)addr, host, sizeof host);
    } else {
        return;
    }
    kith_node_beacon(u->node, u->ubuf, (size_t)nread, host);
    u->dirty = true;
    drain(u);
}

/* Every suitable interface gets the beacon, in each family we can be
 * dialed in: the listener dials the datagram's source address. IPv4 picks
 * the interface per send (IP_MULTICAST_IF); IPv6 link-local multicast goes
 * out on the interface named by the destination's scope id. */
static void act_beacon(kith_uvnode *u, const uint8_t *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    for (size_t i = 0; i < u->nlan_ifs; i++) {
        const lan_if *f = &u->lan_ifs[i];
        int rc = 0;
        /* A beacon that can't go out now is dropped: another follows soon. */
        if (f->send4 && f->joined4) {
            rc = uv_udp_set_multicast_interface(&u->udp4, f->v4);
            if (rc == 0)
                rc = uv_udp_try_send(&u->udp4, &b, 1, (const struct sockaddr *)&u->group4);
            if (rc < 0)
                KITH_LOGD(u->env, "beacon on %s (IPv4): %s", f->name, uv_strerror(rc));
        }
        if (f->send6 && f->joined6) {
            struct sockaddr_in6 to = u->group6;
            to.sin6_scope_id = f->index;
            rc = uv_udp_try_send(&u->udp6, &b, 1, (const struct sockaddr *)&to);
            if (rc < 0)
                KITH_LOGD(u->env, "beacon on %s (IPv6): %s", f->name, uv_strerror(rc));
        }
    }
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
    return IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
}

static lan_if *lan_if_named(kith_uvnode *u, const char *name)
{
    if (strlen(name) >= sizeof u->lan_ifs[0].name)
        return NULL;
    unsigned index = if_nametoindex(name);
    if (!index)
        return NULL;
    for (size_t i = 0; i < u->nlan_ifs; i++) {
        if (strcmp(u->lan_ifs[i].name, name) == 0) {
            u->lan_ifs[i].index = index; /* a device that came back may have a new one */
            return &u->lan_ifs[i];
        }
    }
    lan_if *f = NULL;
    for (size_t i = 0; i < u->nlan_ifs && !f; i++) {
        if (!u->lan_ifs[i].present && !u->lan_ifs[i].joined4 && !u->lan_ifs[i].joined6)
            f = &u->lan_ifs[i]; /* gone: its slot is free */
    }
    if (!f && u->nlan_ifs < KITH_UVNODE_LAN_MAX_IFS)
        f = &u->lan_ifs[u->nlan_ifs++];
    if (!f)
        return NULL;
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->index = index;
    return f;
}

typedef struct lan_reach lan_reach;

static bool same_ip(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    if (a->sa_family != b->ss_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr
            == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
               &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr))
        == 0;
}

/* The interfaces to beacon on and hear from: every one that is up with an
 * address (libuv lists only those), loopback only when asked (tests). An
 * interface that went away is left (the kernel dropped its memberships). */
static void lan_scan(kith_uvnode *u)
{
    const lan_reach *reach = &u->lan_reach;
    uv_interface_address_t *ifs = NULL;
    int count = 0;
    if (uv_interface_addresses(&ifs, &count) != 0)
        return;
    for (size_t i = 0; i < u->nlan_ifs; i++) {
        lan_if *f = &u->lan_ifs[i];
        f->present = f->has_v4 = f->has_v6 = f->send4 = f->send6 = false;
    }
    for (int i = 0; i < count; i++) {
        const uv_interface_address_t *a = &ifs[i];
        if (a->is_internal && !u->lan_loopback)
            continue;
        lan_if *f = lan_if_named(u, a->name);
        if (!f)
            continue;
        f->present = true;
        const struct sockaddr *sa = (const struct sockaddr *)&a->address;
        bool mine = reach->one && same_ip(sa, &reach->addr);
        if (sa->sa_family == AF_INET) {
            if (!f->has_v4)
                uv_ip4_name(&a->address.address4, f->v4, sizeof f->v4);
            f->has_v4 = true;
            f->send4 |= reach->any4 || mine;
        } else if (sa->sa_family == AF_INET6) {
            /* The source of a link-local multicast is the interface's
             * link-local address: a node listening on one global IPv6
             * address could not be dialed there, so it sends no IPv6. */
            const struct in6_addr *ip = &a->address.address6.sin6_addr;
            f->has_v6 = true;
            f->send6 |= reach->any6 || (mine && IN6_IS_ADDR_LINKLOCAL(ip));
        }
    }
    uv_free_interface_addresses(ifs, count);
    for (size_t i = 0; i < u->nlan_ifs; i++) {
        lan_if *f = &u->lan_ifs[i];
        if (!f->present)
            f->joined4 = f->joined6 = false; /* to join again if it comes back */
    }
}

/* Join the group on every interface that has the family and hasn't yet.
 * Returns true when any join was new. */
static bool lan_join(kith_uvnode *u)
{
    bool news = false;
    for (size_t i = 0; i < u->nlan_ifs; i++) {
        lan_if *f = &u->lan_ifs[i];
        for (int v6 = 0; v6 < 2; v6++) {
            bool *joined = v6 ? &f->joined6 : &f->joined4;
            if (!(v6 ? u->udp6_on && f->has_v6 : u->udp4_on && f->has_v4) || *joined)
                continue;
            char where[IF_NAMESIZE + 4];
            snprintf(where, sizeof where, "::%%%s", f->name);
            int rc = uv_udp_set_membership(v6 ? &u->udp6 : &u->udp4,
                v6 ? "ff02::6b69:7468" : "239.255.74.16", v6 ? where : f->v4, UV_JOIN_GROUP);
            if (rc == 0 || rc == UV_EADDRINUSE) { /* in use: still joined from before */
                *joined = true;
                news = true;
            } else {
                /* Not heard there, so not sent there either (joined stays
                 * false); tried again at the next scan. */
                KITH_LOGD(u->env, "LAN: cannot join the beacon group on %s (%s): %s", f->name,
                    v6 ? "IPv6" : "IPv4", uv_strerror(rc));
            }
        }
    }
    return news;
}

/* One UDP socket of one family, bound to the beacon port on every address
 * (SO_REUSEADDR, so several nodes on one host all hear); lan_join joins the
 * group on interfaces. */
static int lan_open(kith_uvnode *u, uv_udp_t *h, bool v6, uint16_t port, const char **fail)
{
    struct sockaddr_storage any;
    memset(&any, 0, sizeof any);
    if (v6)
        uv_ip6_addr("::", port, (struct sockaddr_in6 *)&any);
    else
        uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)&any);
    int rc = uv_udp_init_ex(&u->loop, h, v6 ? AF_INET6 : AF_INET);
    if (rc != 0) {
        *fail = "open a UDP socket";
        return rc;
    }
    h->data = u;
    rc = uv_udp_bind(
        h, (const struct sockaddr *)&any, UV_UDP_REUSEADDR | (v6 ? UV_UDP_IPV6ONLY : 0));
    if (rc != 0)
        *fail = "bind the beacon port";
    /* Link-local only: a beacon never leaves the network it was sent on. */
    if (rc == 0 && (rc = uv_udp_set_multicast_ttl(h, 1)) != 0)
        *fail = "set the multicast hop limit";
    /* Other nodes on this host hear us. */
    if (rc == 0 && (rc = uv_udp_set_multicast_loop(h, 1)) != 0)
        *fail = "set multicast loop";
    if (rc == 0 && (rc = uv_udp_recv_start(h, on_udp_alloc, on_udp_recv)) != 0)
        *fail = "receive";
    if (rc != 0)
        uv_close((uv_handle_t *)h, NULL);
    return rc;
}

/* Append "name (IPv4, IPv6)" (comma-separated) to out[cap] at *n, for the
 * families given; nothing when neither. Truncates at cap. */
static void lan_list_add(char *out, size_t cap, size_t *n, const char *name, bool v4, bool v6)
{
    if (!v4 && !v6)
        return;
    int w = snprintf(out + *n, cap - *n, "%s%s (%s)", *n ? ", " : "", name,
        v4 && v6 ? "IPv4, IPv6"
            : v4 ? "IPv4"
                 : "IPv6");
    if (w > 0)
        *n = KITH_MIN(*n + (size_t)w, cap - 1);
}

/* Which interfaces hear and send, for the log. */
static void lan_log(kith_uvnode *u)
{
    char hears[256] = "", sends[256] = "";
    size_t nh = 0, ns = 0;
    for (size_t i = 0; i < u->nlan_ifs; i++) {
        const lan_if *f = &u->lan_ifs[i];
        bool h4 = f->present && f->joined4, h6 = f->present && f->joined6;
        lan_list_add(hears, sizeof hears, &nh, f->name, h4, h6);
        lan_list_add(sends, sizeof sends, &ns, f->name, h4 && f->send4, h6 && f->send6);
    }
    KITH_LOGI(u->env, "LAN: hearing beacons on %s; sending on %s", nh ? hears : "no interface",
        ns ? sends : "none");
}

#define LAN_RESCAN_MS 10000

static void on_lan_timer(uv_timer_t *t)
{
    kith_uvnode *u = t->data;
    if (u->stopping)
        return;
    bool before[KITH_UVNODE_LAN_MAX_IFS];
    size_t nbefore = u->nlan_ifs;
    for (size_t i = 0; i < nbefore; i++)
        before[i] = u->lan_ifs[i].present;
    lan_scan(u);
    bool changed = lan_join(u) || u->nlan_ifs != nbefore;
    for (size_t i = 0; i < nbefore && !changed; i++)
        changed = before[i] != u->lan_ifs[i].present;
    if (changed)
        lan_log(u);
}

void kith_uvnode_lan_rescan(kith_uvnode *u)
{
    if (u->lan_timer_on)
        on_lan_timer(&u->lan_timer);
}

/* Is the TCP listener on [::] also reachable over IPv4 (not IPV6_V6ONLY)? */
static bool listener_dual_stack(kith_uvnode *u)
{
    uv_os_fd_t fd;
    int only = 1;
    socklen_t len = sizeof only;
    if (!u->server_inited || uv_fileno((uv_handle_t *)&u->server, &fd) != 0
        || getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, &len) != 0)
        return false;
    return only == 0;
}

int kith_uvnode_lan_start(kith_uvnode *u, char *err, size_t errcap)
{
    kith_uvnode_lan_opts opts = { .port = KITH_UVNODE_LAN_PORT, .loopback = false };
    return kith_uvnode_lan_start_opts(u, &opts, err, errcap);
}

int kith_uvnode_lan_start_opts(
    kith_uvnode *u, const kith_uvnode_lan_opts *opts, char *err, size_t errcap)
{
    char host[KITH_UVNODE_ADDR_MAX];
    uint16_t port;
    struct sockaddr_storage listen;
    if (u->udp4_on || u->udp6_on) {
        snprintf(err, errcap, "LAN discovery is already on");
        return KITH_ESTATE;
    }
    if (!u->listen_addr[0]
        || kith_uvnode_split_addr(u->listen_addr, host, sizeof host, &port, true) != 0
        || numeric_addr(host, port, &listen) != 0) {
        snprintf(err, errcap, "LAN discovery is off: not listening");
        return KITH_ESTATE;
    }
    uint16_t uport = opts && opts->port ? opts->port : KITH_UVNODE_LAN_PORT;
    u->lan_loopback = opts && opts->loopback;
    lan_reach *reach = &u->lan_reach;
    memset(reach, 0, sizeof *reach);
    const struct sockaddr_in *l4 = (const struct sockaddr_in *)&listen;
    const struct sockaddr_in6 *l6 = (const struct sockaddr_in6 *)&listen;
    if (is_loopback(&listen) && !u->lan_loopback) {
        /* Heard, but nothing sent: nobody else could connect to us. */
        KITH_LOGI(u->env, "listening on loopback: LAN beacons are heard but none are sent");
    } else if (listen.ss_family == AF_INET && l4->sin_addr.s_addr == htonl(INADDR_ANY)) {
        reach->any4 = true;
    } else if (listen.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&l6->sin6_addr)) {
        reach->any6 = true;
        reach->any4 = listener_dual_stack(u);
    } else {
        reach->one = true;
        reach->addr = listen;
    }
    u->nlan_ifs = 0;
    memset(&u->group4, 0, sizeof u->group4);
    memset(&u->group6, 0, sizeof u->group6);
    uv_ip4_addr("239.255.74.16", uport, &u->group4);
    uv_ip6_addr("ff02::6b69:7468", uport, &u->group6);
    const char *fail4 = "", *fail6 = "";
    int rc4 = lan_open(u, &u->udp4, false, uport, &fail4);
    int rc6 = lan_open(u, &u->udp6, true, uport, &fail6);
    u->udp4_on = rc4 == 0;
    u->udp6_on = rc6 == 0;
    if (!u->udp4_on && !u->udp6_on) {
        snprintf(err, errcap, "LAN discovery is off: cannot %s: %s", fail4, uv_strerror(rc4));
        return KITH_EIO;
    }
    lan_scan(u);
    if (!lan_join(u))
        KITH_LOGW(u->env,
            "LAN: no network interface to hear beacons on yet: looking again "
            "every %d s",
            LAN_RESCAN_MS / 1000);
    uv_timer_init(&u->loop, &u->lan_timer);
    u->lan_timer.data = u;
    u->lan_timer_on = true;
    uv_timer_start(&u->lan_timer, on_lan_timer, LAN_RESCAN_MS, LAN_RESCAN_MS);
    lan_log(u);
    return 0;
}

size_t kith_uvnode_lan_interfaces(const kith_uvnode *u, bool v6, bool sending)
{
    size_t count = 0;
    for (size_t i = 0; i < u->nlan_ifs; i++) {
        const lan_if *f = &u->lan_ifs[i];
        bool joined = f->present && (v6 ? f->joined6 : f->joined4);
        count += joined && (!sending || (v6 ? f->send6 : f->send4));
    }
    return count;
}

/* ---- timer, events, the action loop ---- */

static void on_timer(uv_timer_t *t)
{
    kith_uvnode *u = t->data;
    if (u->stopping)
        return;
    kith_node_timer(u->node);
    u->dirty = true;
    drain(u);
#ifdef __GLIBC__
    /* A burst (or a catch-up) leaves freed memory in the heap that glibc
     * keeps: give it back now and then, so an idle node's RSS is what it
     * holds, not what it once held. Cheap on a small heap. */
    uint64_t now = uv_now(&u->loop);
    if (now - u->trimmed_ms >= KITH_UVNODE_TRIM_MS) {
        u->trimmed_ms = now;
        malloc_trim(0);
    }
#endif
}

static char *dup_text(const kith_env *env, const char *s, size_t len)
{
    char *p = kith_malloc(env, len + 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* Copy the event out of the node's memory: the hook may call the node,
 * which ends the validity of everything the action points at. */
static void deliver_event(kith_uvnode *u, const kith_event *src)
{
    if (!u->hooks.event && u->nextra == 0)
        return;
    kith_event ev = *src;
    size_t tlen = 0;
    if (src->text)
        tlen = (src->type == KITH_EV_MESSAGE || src->text_len) ? src->text_len
                                                               : strnlen(src->text, 1u << 20);
    char *room
        = src->room_name ? dup_text(u->env, src->room_name, strnlen(src->room_name, 4096)) : NULL;
    char *nick = src->nick ? dup_text(u->env, src->nick, strnlen(src->nick, 4096)) : NULL;
    char *text = dup_text(u->env, src->text ? src->text : "", tlen);
    if ((src->room_name && !room) || (src->nick && !nick) || !text) {
        KITH_LOGE(u->env, "out of memory: an event was dropped");
    } else {
        ev.room_name = room;
        ev.nick = nick;
        ev.text = text;
        ev.text_len = tlen;
        if (u->hooks.event)
            u->hooks.event(u->hooks.ud, &ev);
        for (size_t i = 0; i < u->nextra; i++)
            if (u->extra[i].event)
                u->extra[i].event(u->extra[i].ud, &ev);
    }
    kith_free(u->env, room);
    kith_free(u->env, nick);
    kith_free(u->env, text);
}

/* The node turns a failed flush into a KITH_EV_ERROR for the person itself
 * ("could not save to disk ..."), which the drain that follows delivers;
 * the driver only logs it. */
static void flush_failed(kith_uvnode *u, int err)
{
    KITH_LOGE(u->env, "store flush failed: %s", kith_strerror(err));
}

static void drain(kith_uvnode *u)
{
    if (u->draining)
        return; /* a hook called back in: the outer loop picks it up */
    u->draining = true;
    kith_action a;
    while (kith_node_poll(u->node, &a) == 1) {
        switch (a.type) {
        case KITH_ACT_WRITE:
            if (!u->stopping)
                act_write(u, a.conn, a.data, a.len);
            break;
        case KITH_ACT_CONNECT:
            if (!u->stopping)
                act_connect(u, a.conn, a.addr);
            break;
        case KITH_ACT_CLOSE: {
            uvconn *c = conn_find(u, a.conn);
            if (c)
                write_out(u, c); /* what the node sent before closing */
            c = conn_find(u, a.conn);
            if (c) {
                KITH_LOGD(u->env, "conn %llu: closed by node: %s", (unsigned long long)a.conn,
                    a.reason ? a.reason : "");
                conn_close(u, c, false);
            }
            break;
        }
        case KITH_ACT_TIMER:
            if (!u->stopping)
                uv_timer_start(&u->timer, on_timer, a.delay_ms, 0);
            break;
        case KITH_ACT_EVENT:
            deliver_event(u, &a.ev);
            break;
        case KITH_ACT_BEACON:
            if (!u->stopping)
                act_beacon(u, a.data, a.len);
            break;
        default:
            KITH_LOGW(u->env, "unknown node action %d", a.type);
        }
    }
    write_out_all(u);
    u->draining = false;
    if (u->stop_pending) {
        /* A hook asked to stop: do it now that the actions queued before
         * (the writes of a message just sent, say) were executed. */
        u->stop_pending = false;
        kith_uvnode_stop(u);
    }
}

/* The group commit: once per loop turn, before the loop sleeps. */
static void on_prepare(uv_prepare_t *p)
{
    kith_uvnode *u = p->data;
    for (int round = 0; u->dirty && !u->stopping && round < 64; round++) {
        u->dirty = false;
        int rc = kith_node_flush(u->node);
        if (rc < 0)
            flush_failed(u, rc);
        drain(u);
    }
}

void kith_uvnode_kick(kith_uvnode *u)
{
    if (u->stopping)
        return;
    u->dirty = true;
    drain(u);
}

/* ---- life cycle ---- */

static void on_signal(uv_signal_t *s, int signum)
{
    kith_uvnode *u = s->data;
    KITH_LOGI(u->env, "signal %d: shutting down", signum);
    kith_uvnode_stop(u);
}

int kith_uvnode_new(const kith_env *env, kith_node *node, kith_uvnode **out)
{
    *out = NULL;
    kith_uvnode *u = kith_calloc(env, 1, sizeof *u);
    if (!u)
        return KITH_ENOMEM;
    u->env = env;
    u->node = node;
    if (uv_loop_init(&u->loop) != 0) {
        kith_free(env, u);
        return KITH_EIO;
    }
    u->loop_inited = true;
    uv_timer_init(&u->loop, &u->timer);
    uv_timer_init(&u->loop, &u->hold_timer);
    u->hold_timer.data = u;
    u->mark_high = KITH_UVNODE_BACKLOG_HIGH;
    u->mark_low = KITH_UVNODE_BACKLOG_LOW;
    u->mark_slow = KITH_UVNODE_SLOW;
    uv_prepare_init(&u->loop, &u->prepare);
    uv_signal_init(&u->loop, &u->sigint);
    uv_signal_init(&u->loop, &u->sigterm);
    u->timer.data = u->prepare.data = u->sigint.data = u->sigterm.data = u;
    u->handles_inited = true;
    *out = u;
    return 0;
}

void kith_uvnode_set_node(kith_uvnode *u, kith_node *node)
{
    u->node = node;
}

void kith_uvnode_set_hooks(kith_uvnode *u, const kith_uvnode_hooks *hooks)
{
    u->hooks = *hooks;
}

int kith_uvnode_add_hooks(kith_uvnode *u, const kith_uvnode_hooks *hooks)
{
    if (u->nextra >= KITH_UVNODE_MAX_HOOKS)
        return KITH_ETOOBIG;
    u->extra[u->nextra++] = *hooks;
    return 0;
}

uv_loop_t *kith_uvnode_loop(kith_uvnode *u)
{
    return &u->loop;
}

size_t kith_uvnode_backlog(const kith_uvnode *u)
{
    size_t most = 0;
    for (const uvconn *c = u->conns; c; c = c->next)
        most = KITH_MAX(most, c->unsent + c->wbuf.len);
    return most;
}

/* ---- flow control for local input ---- */

static kith_uvnode_pause *hold_due(kith_uvnode *u)
{
    bool clear = kith_uvnode_backlog(u) <= u->mark_low;
    uint64_t now = uv_now(&u->loop);
    for (kith_uvnode_pause *h = u->holds; h; h = h->next)
        if (clear || now - h->since_ms >= KITH_UVNODE_HOLD_MAX_MS)
            return h;
    return NULL;
}

/* One at a time, looking again after each: a resumed input may feed what
 * it had buffered and be held again (the backlog is then over the high
 * mark, so the loop ends), or close another input. */
static void on_hold_timer(uv_timer_t *t)
{
    kith_uvnode *u = t->data;
    kith_uvnode_pause *h;
    while (!u->stopping && (h = hold_due(u))) {
        kith_uvnode_release(u, h);
        h->resume(h);
    }
    if (!u->holds && !uv_is_closing((uv_handle_t *)&u->hold_timer))
        uv_timer_stop(&u->hold_timer);
}

bool kith_uvnode_hold(kith_uvnode *u, kith_uvnode_pause *h)
{
    if (h->held)
        return true;
    if (u->stopping || kith_uvnode_backlog(u) <= u->mark_high)
        return false;
    if (!u->holds
        && uv_timer_start(
               &u->hold_timer, on_hold_timer, KITH_UVNODE_HOLD_CHECK_MS, KITH_UVNODE_HOLD_CHECK_MS)
            != 0)
        return false;
    h->held = true;
    h->since_ms = uv_now(&u->loop);
    h->next = u->holds;
    u->holds = h;
    return true;
}

void kith_uvnode_release(kith_uvnode *u, kith_uvnode_pause *h)
{
    if (!h->held)
        return;
    for (kith_uvnode_pause **pp = &u->holds; *pp; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    }
    h->next = NULL;
    h->held = false;
}

void kith_uvnode_set_marks(kith_uvnode *u, size_t high, size_t low, size_t slow)
{
    if (high)
        u->mark_high = high;
    if (low)
        u->mark_low = low;
    if (slow)
        u->mark_slow = slow;
}

const char *kith_uvnode_listen_addr(const kith_uvnode *u)
{
    return u->listen_addr;
}

int kith_uvnode_listen(kith_uvnode *u, const char *hostport, char *err, size_t errcap)
{
    char host[KITH_UVNODE_ADDR_MAX];
    uint16_t port;
    struct sockaddr_storage ss;
    if (kith_uvnode_split_addr(hostport, host, sizeof host, &port, true) != 0
        || numeric_addr(host, port, &ss) != 0) {
        snprintf(err, errcap,
            "cannot listen on %s: not a numeric IPv4 or [IPv6] address with a port",
            hostport ? hostport : "(none)");
        return KITH_EINVAL;
    }
    if (u->server_inited) {
        snprintf(err, errcap, "cannot listen on %s: already listening", hostport);
        return KITH_ESTATE;
    }
    uv_tcp_init(&u->loop, &u->server);
    u->server.data = u;
    u->server_inited = true;
    /* libuv may report a bind error only at listen time: check both. */
    int rc = uv_tcp_bind(&u->server, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&u->server, 128, on_connection);
    if (rc != 0) {
        snprintf(err, errcap, "cannot listen on %s: %s", hostport, uv_strerror(rc));
        uv_close((uv_handle_t *)&u->server, NULL);
        u->server_inited = false; /* closing; freed by the loop */
        return KITH_EIO;
    }
    struct sockaddr_storage bound;
    int blen = (int)sizeof bound;
    if (uv_tcp_getsockname(&u->server, (struct sockaddr *)&bound, &blen) == 0)
        format_sockaddr((const struct sockaddr *)&bound, u->listen_addr, sizeof u->listen_addr);
    else
        snprintf(u->listen_addr, sizeof u->listen_addr, "%s", hostport);
    return 0;
}

int kith_uvnode_run(kith_uvnode *u)
{
    if (u->stopping) {
        uv_run(&u->loop, UV_RUN_DEFAULT); /* let the closes finish */
        return u->exit_code;
    }
    uv_prepare_start(&u->prepare, on_prepare);
    uv_signal_start(&u->sigint, on_signal, SIGINT);
    uv_signal_start(&u->sigterm, on_signal, SIGTERM);
    /* Start-up: rooms loaded by kith_node_new come out as events now. */
    u->dirty = true;
    drain(u);
    if (u->hooks.ready && !u->stopping)
        u->hooks.ready(u->hooks.ud);
    for (size_t i = 0; i < u->nextra && !u->stopping; i++)
        if (u->extra[i].ready)
            u->extra[i].ready(u->extra[i].ud);
    uv_run(&u->loop, UV_RUN_DEFAULT);
    return u->exit_code;
}

static void close_if_open(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void kith_uvnode_stop(kith_uvnode *u)
{
    if (u->stopping)
        return;
    if (u->draining) {
        u->stop_pending = true;
        return;
    }
    /* Flush first, while the node can still act on what it released. */
    int rc = kith_node_flush(u->node);
    if (rc < 0) {
        flush_failed(u, rc);
        u->exit_code = 1;
    }
    drain(u);
    u->stopping = true;
    u->dirty = false;
    while (u->conns)
        conn_close(u, u->conns, false);
    if (u->server_inited)
        close_if_open((uv_handle_t *)&u->server);
    if (u->udp4_on)
        close_if_open((uv_handle_t *)&u->udp4);
    if (u->udp6_on)
        close_if_open((uv_handle_t *)&u->udp6);
    if (u->lan_timer_on)
        close_if_open((uv_handle_t *)&u->lan_timer);
    close_if_open((uv_handle_t *)&u->timer);
    close_if_open((uv_handle_t *)&u->hold_timer);
    while (u->holds) {
        kith_uvnode_pause *h = u->holds;
        u->holds = h->next;
        h->next = NULL;
        h->held = false;
    }
    close_if_open((uv_handle_t *)&u->prepare);
    close_if_open((uv_handle_t *)&u->sigint);
    close_if_open((uv_handle_t *)&u->sigterm);
    if (u->hooks.shutdown)
        u->hooks.shutdown(u->hooks.ud);
    for (size_t i = 0; i < u->nextra; i++)
        if (u->extra[i].shutdown)
            u->extra[i].shutdown(u->extra[i].ud);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void kith_uvnode_free(kith_uvnode *u)
{
    if (!u)
        return;
    if (u->loop_inited) {
        if (!u->stopping) {
            u->stopping = true;
            while (u->conns)
                conn_close(u, u->conns, false);
        }
        uv_walk(&u->loop, walk_close, u);
        uv_run(&u->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&u->loop) != 0)
            KITH_LOGW(u->env, "event loop closed with handles open");
    }
    kith_free(u->env, u);
}
