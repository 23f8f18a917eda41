/* node/node_room: a node's rooms — the message history it holds, ordering and
 * dedup of messages, the room log it persists, and loading it all back at
 * start-up. */
#include <sodium.h>
#include <stdio.h>
#include <strings.h>

#include "node/node_impl.h"

nroom *node_room_by_id(const kith_node *n, const uint8_t id[KITH_HASH_LEN])
{
    for (size_t i = 0; i < n->nrooms; i++) {
        if (memcmp(kith_room_id(n->rooms[i]->room), id, KITH_HASH_LEN) == 0)
            return n->rooms[i];
    }
    return NULL;
}

nroom *node_room_by_tag(const kith_node *n, const uint8_t tag[KITH_ROOM_TAG_LEN])
{
    /* Every epoch key we hold has a tag: messages of an older epoch, sent
     * concurrently with a rekey, still find their room. */
    for (size_t i = 0; i < n->nrooms; i++) {
        nroom *r = n->rooms[i];
        for (size_t k = 0; k < r->ntags; k++)
            if (sodium_memcmp(r->tags[k], tag, KITH_ROOM_TAG_LEN) == 0)
                return r;
    }
    return NULL;
}

/* Recompute the tags after the keys may have changed (any applied op). */
void node_refresh_tag(kith_node *n, nroom *r)
{
    uint64_t epoch;
    const uint8_t *key = kith_room_current_key(r->room, &epoch);
    uint8_t old_tag[KITH_ROOM_TAG_LEN];
    bool had = r->has_tag;
    memcpy(old_tag, r->tag, sizeof old_tag);
    r->has_tag = key != NULL;
    if (key) {
        kith_msg_room_tag(key, epoch, r->tag);
        r->tag_epoch = epoch;
    }
    if (r->has_tag != had || memcmp(old_tag, r->tag, sizeof old_tag) != 0)
        r->key_seen_wall = kith_wall_ms(n->env);
    size_t nk = kith_room_key_count(r->room);
    if (nk > r->ntags) {
        uint8_t(*t)[KITH_ROOM_TAG_LEN] = kith_realloc(n->env, r->tags, nk * KITH_ROOM_TAG_LEN);
        if (!t)
            return; /* keep the old tags; the next op retries */
        r->tags = t;
    }
    for (size_t k = 0; k < nk; k++) {
        uint64_t e;
        const uint8_t *kk = kith_room_key_at(r->room, k, &e);
        kith_msg_room_tag(kk, e, r->tags[k]);
    }
    r->ntags = nk;
}

bool node_is_member(const nroom *r, const uint8_t id[KITH_ID_LEN])
{
    return kith_room_member(r->room, id) != NULL;
}

/* The log of a room is named by a keyed digest of its id, so the store's
 * directory listing says nothing about which rooms this node is in. */
static void log_name(const kith_node *n, const uint8_t room_id[KITH_HASH_LEN], char out[33])
{
    uint8_t tag[16];
    kith_keyed_hash(tag, sizeof tag, n->local_key, "kith/1 log name", room_id, KITH_HASH_LEN);
    kith_hex(out, tag, sizeof tag);
}

int node_room_add(kith_node *n, kith_room *room, nroom **out)
{
    if (n->nrooms >= NODE_MAX_ROOMS)
        return KITH_ETOOBIG;
    nroom *r = kith_calloc(n->env, 1, sizeof *r);
    if (!r)
        return KITH_ENOMEM;
    r->room = room;
    r->cu_ready = true;
    kith_random(n->env, &r->ixkey, sizeof r->ixkey);
    r->ixmax = NODE_MAX_SEEN;
    log_name(n, kith_room_id(room), r->log);
    node_refresh_tag(n, r);
    r->names_dirty = true;
    n->rooms[n->nrooms++] = r;
    *out = r;
    return 0;
}

void node_room_free(kith_node *n, nroom *r)
{
    if (!r)
        return;
    for (size_t b = 0; b < r->nhblk; b++)
        kith_free(n->env, r->hblk[b]);
    kith_free(n->env, r->hblk);
    kith_free(n->env, r->ix);
    kith_free(n->env, r->authors);
    for (size_t i = 0; i < r->nheld; i++)
        kith_free(n->env, r->held[i].env);
    kith_free(n->env, r->held);
    for (size_t i = 0; i < r->nheld_ops; i++)
        kith_free(n->env, r->held_ops[i]);
    kith_free(n->env, r->held_ops);
    kith_free(n->env, r->held_op_len);
    if (r->inv)
        sodium_memzero(r->inv, r->ninv * sizeof *r->inv);
    kith_free(n->env, r->inv);
    kith_free(n->env, r->want);
    kith_free(n->env, r->ann);
    kith_free(n->env, r->tags);
    kith_free(n->env, r->dn);
    kith_map_free(&r->dn_group);
    kith_room_free(r->room);
    kith_free(n->env, r);
}

/* ---- persistence ---- */

static int persist_at(
    kith_node *n, nroom *r, int kind, const uint8_t *data, size_t len, uint64_t *pos)
{
    if (n->loading)
        return 0;
    kith_buf rec;
    kith_buf_init(&rec, n->env, KITH_STORE_MAX_RECORD);
    int rc = kith_buf_append_u8(&rec, (uint8_t)kind);
    if (!rc) {
        if (kind == REC_ENVELOPE)
            rc = kith_buf_append(&rec, data, len); /* already encrypted */
        else
            rc = kith_local_seal(n->env, n->local_key, data, len, &rec);
    }
    if (!rc)
        rc = kith_store_append_at(n->store, r->log, rec.data, rec.len, pos);
    if (rc == KITH_ETOOBIG && rec.len <= KITH_STORE_MAX_RECORD) {
        /* The store's pending buffer is full: commit it early and retry. */
        rc = kith_store_sync(n->store);
        if (!rc)
            rc = kith_store_append_at(n->store, r->log, rec.data, rec.len, pos);
    }
    kith_buf_free(&rec);
    return rc;
}

int node_persist(kith_node *n, nroom *r, int kind, const uint8_t *data, size_t len)
{
    return persist_at(n, r, kind, data, len, NULL);
}

int node_hist_env(
    kith_node *n, const nroom *r, size_t idx, kith_buf *out, uint8_t id_out[KITH_HASH_LEN])
{
    const hist *h = node_hist_at(r, idx);
    size_t at = out->len;
    int rc = kith_store_get(n->store, r->log, h->pos, out);
    if (!rc && (out->len - at != (size_t)h->env_len + 1 || out->data[at] != REC_ENVELOPE))
        rc = KITH_EIO;
    if (rc) {
        out->len = at;
        KITH_LOGW(n->env, "room %s: cannot read a message back from the log: %s",
            kith_room_name(r->room), kith_strerror(rc));
        return rc;
    }
    /* Drop the record's kind byte. */
    memmove(out->data + at, out->data + at + 1, h->env_len);
    out->len = at + h->env_len;
    /* The very bytes we verified: their id says so (the log has only a
     * checksum, and whoever can write it could swap a record). The entry
     * keeps 64 bits of the id: swapping a record unnoticed would take a
     * second preimage of those. */
    uint8_t id[KITH_HASH_LEN];
    kith_msg_id(out->data + at, h->env_len, id);
    if (node_id_prefix(id) != h->idp) {
        out->len = at;
        KITH_LOGW(n->env, "room %s: a logged message changed on disk", kith_room_name(r->room));
        return KITH_EIO;
    }
    if (id_out)
        memcpy(id_out, id, KITH_HASH_LEN);
    return 0;
}

int node_hist_open(kith_node *n, const nroom *r, size_t idx, kith_buf *plain, kith_inner *in,
    uint8_t id[KITH_HASH_LEN])
{
    kith_buf_reset(&n->rd_env);
    int rc = node_hist_env(n, r, idx, &n->rd_env, id);
    if (rc)
        return rc;
    kith_buf_reset(plain);
    rc = node_open_envelope(n, r, n->rd_env.data, n->rd_env.len, true, plain, in);
    if (rc)
        KITH_LOGW(n->env, "room %s: cannot open a logged message: %s", kith_room_name(r->room),
            kith_strerror(rc));
    return rc;
}

int node_hist_full_id(kith_node *n, const nroom *r, size_t idx, uint8_t id[KITH_HASH_LEN])
{
    if (r->recent_at[idx % NODE_RECENT] == idx + 1) {
        memcpy(id, r->recent[idx % NODE_RECENT], KITH_HASH_LEN);
        return 0;
    }
    kith_buf_reset(&n->rd_env);
    return node_hist_env(n, r, idx, &n->rd_env, id);
}

/* ---- the id index ---- */

static size_t ix_slot(const nroom *r, uint64_t idp)
{
    /* Ids are hashes already; the keyed multiply spreads them over the
     * slots in a way a member grinding ids can't predict. */
    return (size_t)(((idp ^ r->ixkey) * 0x9E3779B97F4A7C15ull) >> 24) & (r->ixcap - 1);
}

size_t node_hist_find(const nroom *r, const uint8_t id[KITH_HASH_LEN])
{
    if (!r->ixcap)
        return SIZE_MAX;
    uint64_t p = node_id_prefix(id);
    for (size_t s = ix_slot(r, p);; s = (s + 1) & (r->ixcap - 1)) {
        uint32_t v = r->ix[s];
        if (!v)
            return SIZE_MAX;
        if (node_hist_at(r, v - 1)->idp == p)
            return v - 1;
    }
}

static void ix_insert(nroom *r, uint32_t v)
{
    size_t s = ix_slot(r, node_hist_at(r, v - 1)->idp);
    while (r->ix[s])
        s = (s + 1) & (r->ixcap - 1);
    r->ix[s] = v;
}

/* Room in the index for one more message (it stays at most half full). */
static int ix_reserve(kith_node *n, nroom *r)
{
    if (r->nhist >= r->ixmax)
        return KITH_ETOOBIG;
    if ((r->nhist + 1) * 2 <= r->ixcap)
        return 0;
    size_t ocap = r->ixcap, ncap = ocap ? ocap * 2 : 64;
    uint32_t *nix = kith_calloc(n->env, ncap, sizeof *nix), *old = r->ix;
    if (!nix)
        return KITH_ENOMEM;
    r->ix = nix;
    r->ixcap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i])
            ix_insert(r, old[i]);
    kith_free(n->env, old);
    return 0;
}

int node_persist_op(kith_node *n, nroom *r, const uint8_t *op, size_t len)
{
    return node_persist(n, r, REC_OP, op, len);
}

/* ---- authors and messages ---- */

author_st *node_author(kith_node *n, nroom *r, const uint8_t id[KITH_ID_LEN], bool create)
{
    for (size_t i = 0; i < r->nauthors; i++) {
        if (memcmp(r->authors[i].id, id, KITH_ID_LEN) == 0)
            return &r->authors[i];
    }
    if (!create)
        return NULL;
    author_st *a = kith_realloc(n->env, r->authors, (r->nauthors + 1) * sizeof *a);
    if (!a)
        return NULL;
    r->authors = a;
    a = &r->authors[r->nauthors++];
    memset(a, 0, sizeof *a);
    memcpy(a->id, id, KITH_ID_LEN);
    return a;
}

const char *node_nick_of(const kith_node *n, const nroom *r, const uint8_t id[KITH_ID_LEN])
{
    if (memcmp(id, n->self->id_pk, KITH_ID_LEN) == 0)
        return n->nick;
    for (size_t i = 0; i < r->nauthors; i++) {
        if (memcmp(r->authors[i].id, id, KITH_ID_LEN) == 0 && r->authors[i].nick[0])
            return r->authors[i].nick;
    }
    const kith_member *m = kith_room_person(r->room, id);
    return m && m->nick[0] ? m->nick : "?";
}

/* ---- display names ---- */

static void group_key(uint8_t key[32], uint64_t group)
{
    memset(key, 0, 32);
    memcpy(key, &group, sizeof group);
}

/* Recompute the display names of one group, from every person in it. */
static void names_regroup(const kith_node *n, nroom *r, uint64_t group)
{
    uint8_t key[32];
    uint64_t head = 0;
    group_key(key, group);
    kith_map_get(&r->dn_group, key, &head);
    size_t count = 0;
    for (uint64_t i = head; i; i = r->dn[i - 1].next)
        count++;
    if (!count)
        return;
    uint8_t(*ids)[KITH_ID_LEN] = kith_calloc(n->env, count, KITH_ID_LEN);
    const char **nicks = kith_calloc(n->env, count, sizeof *nicks);
    char(*out)[KITH_DISPLAY_MAX + 1] = kith_calloc(n->env, count, sizeof *out);
    size_t k = 0;
    for (uint64_t i = head; ids && nicks && i; i = r->dn[i - 1].next, k++) {
        memcpy(ids[k], kith_room_person_at(r->room, (size_t)i - 1)->id, KITH_ID_LEN);
        nicks[k] = node_nick_of(n, r, ids[k]);
    }
    bool ok = ids && nicks && out
        && kith_display_names(n->env, count, (const uint8_t(*)[KITH_ID_LEN])ids, nicks, out) == 0;
    k = 0;
    for (uint64_t i = head; i; i = r->dn[i - 1].next, k++) {
        char *shown = r->dn[i - 1].shown;
        if (ok)
            memcpy(shown, out[k], sizeof out[k]);
        else
            shown[0] = '\0'; /* node_display falls back to the chosen name */
    }
    kith_free(n->env, ids);
    kith_free(n->env, nicks);
    kith_free(n->env, out);
}

/* Put person i in the group of its current name (at the head). */
static void names_link(const kith_node *n, nroom *r, size_t i)
{
    dname *d = &r->dn[i];
    d->group = kith_display_group(node_nick_of(n, r, kith_room_person_at(r->room, i)->id));
    uint8_t key[32];
    uint64_t head = 0;
    group_key(key, d->group);
    kith_map_get(&r->dn_group, key, &head);
    d->next = (uint32_t)head;
    if (kith_map_put(&r->dn_group, key, (uint64_t)i + 1) != 0) {
        d->next = 0; /* out of memory: shown by its chosen name */
        d->group = 0;
        d->shown[0] = '\0';
    }
}

static void names_unlink(nroom *r, size_t i)
{
    uint8_t key[32];
    uint64_t head = 0;
    group_key(key, r->dn[i].group);
    if (!kith_map_get(&r->dn_group, key, &head))
        return;
    if (head == i + 1) {
        /* The map holds its slot already: overwriting can't fail. */
        if (kith_map_put(&r->dn_group, key, r->dn[i].next) != 0)
            return;
    } else {
        for (uint64_t p = head; p; p = r->dn[p - 1].next) {
            if (r->dn[p - 1].next == i + 1) {
                r->dn[p - 1].next = r->dn[i].next;
                break;
            }
        }
    }
    r->dn[i].next = 0;
}

/* Names are up to date: people added to the log since the last look get
 * theirs (and the others of their group are looked at again); after
 * names_dirty, everyone's are recomputed. */
static void names_update(const kith_node *n, nroom *r)
{
    size_t people = kith_room_person_count(r->room);
    if (!r->names_dirty && r->ndn == people)
        return;
    if (people > r->capdn) {
        size_t cap = r->capdn ? r->capdn : 16;
        while (cap < people)
            cap *= 2;
        dname *d = kith_realloc(n->env, r->dn, cap * sizeof *d);
        if (!d)
            return; /* node_display shows chosen names meanwhile */
        r->dn = d;
        r->capdn = cap;
    }
    if (!r->dn_group.env)
        kith_map_init(&r->dn_group, n->env, SIZE_MAX);
    if (r->names_dirty) {
        kith_map_free(&r->dn_group);
        kith_map_init(&r->dn_group, n->env, SIZE_MAX);
        for (size_t i = 0; i < people; i++)
            names_link(n, r, i);
        /* Each group once: from its first person. */
        for (size_t i = 0; i < people; i++) {
            uint8_t key[32];
            uint64_t head = 0;
            group_key(key, r->dn[i].group);
            if (kith_map_get(&r->dn_group, key, &head) && head == i + 1)
                names_regroup(n, r, r->dn[i].group);
        }
        r->ndn = people;
        r->names_dirty = false;
        return;
    }
    for (size_t i = r->ndn; i < people; i++) {
        memset(&r->dn[i], 0, sizeof r->dn[i]);
        names_link(n, r, i);
        r->ndn = i + 1;
        names_regroup(n, r, r->dn[i].group);
    }
}

void node_names_renamed(const kith_node *n, nroom *r, const uint8_t id[KITH_ID_LEN])
{
    size_t i;
    names_update(n, r);
    if (r->names_dirty || !kith_room_person_index(r->room, id, &i) || i >= r->ndn)
        return;
    uint64_t old = r->dn[i].group;
    names_unlink(r, i);
    names_regroup(n, r, old);
    names_link(n, r, i);
    names_regroup(n, r, r->dn[i].group);
}

const char *node_display(const kith_node *n, nroom *r, const uint8_t id[KITH_ID_LEN])
{
    /* Names change with a nick message (node_names_renamed) or a new
     * person in the log (an add); the log never forgets anyone. */
    names_update(n, r);
    size_t i;
    if (kith_room_person_index(r->room, id, &i) && i < r->ndn && r->dn[i].shown[0])
        return r->dn[i].shown;
    return node_nick_of(n, r, id);
}

static int hist_push(kith_node *n, nroom *r, const kith_inner *in, const uint8_t id[KITH_HASH_LEN],
    size_t author, uint64_t pos, size_t env_len, size_t *idx)
{
    if (r->nhist == r->nhblk * NODE_HIST_BLOCK) {
        /* A new block; only the small table of blocks is ever copied. */
        hist **t = kith_realloc(n->env, r->hblk, (r->nhblk + 1) * sizeof *t);
        if (!t)
            return KITH_ENOMEM;
        r->hblk = t;
        t[r->nhblk] = kith_malloc(n->env, NODE_HIST_BLOCK * sizeof(hist));
        if (!t[r->nhblk])
            return KITH_ENOMEM;
        r->nhblk++;
    }
    hist *h = node_hist_at(r, r->nhist);
    memset(h, 0, sizeof *h);
    h->pos = pos;
    h->idp = node_id_prefix(id);
    h->seq = (uint32_t)in->seq;
    h->author = (uint32_t)author;
    h->env_len = (uint16_t)env_len;
    h->type = (uint8_t)KITH_MIN(in->type, (uint32_t)NODE_TYPE_OTHER);
    h->has_target = in->has_target;
    *idx = r->nhist++;
    return 0;
}

bool node_hist_visible(const hist *h)
{
    return h->type == KITH_MSG_TEXT || h->type == KITH_MSG_ACTION;
}

/* The text of entry k read back from the log into buf, NUL-terminated;
 * "" for a deleted text or an edit of one (a reaction's text stays: taking
 * it back names it), or when the log can't be read. */
const char *node_hist_text(kith_node *n, const nroom *r, size_t k, kith_buf *buf, size_t *len)
{
    const hist *h = node_hist_at(r, k);
    kith_inner in;
    kith_buf_reset(buf);
    *len = 0;
    if (!(h->deleted && h->type != KITH_MSG_REACTION)
        && node_hist_open(n, r, k, &n->rd_plain, &in, NULL) == 0
        && kith_buf_append(buf, in.body, in.body_len) == 0)
        *len = in.body_len;
    if (kith_buf_append_u8(buf, 0) != 0) {
        *len = 0;
        return "";
    }
    return (const char *)buf->data;
}

void node_message_event_with(kith_node *n, nroom *r, size_t i, const kith_inner *fresh,
    const uint8_t fresh_id[KITH_HASH_LEN], kith_event *ev)
{
    const hist *h = node_hist_at(r, i);
    memset(ev, 0, sizeof *ev);
    ev->type = KITH_EV_MESSAGE;
    node_room_event(n, ev, r);
    memcpy(ev->author, node_hist_author(r, h), KITH_ID_LEN);
    ev->self = memcmp(node_hist_author(r, h), n->self->id_pk, KITH_ID_LEN) == 0;
    ev->nick = node_display(n, r, node_hist_author(r, h));
    ev->msg_type = h->type;
    ev->seq = h->seq;
    ev->deleted = h->deleted;
    ev->text = "";
    /* The entry's own envelope: its id, time, target and text. */
    kith_inner own;
    const kith_inner *in = fresh;
    if (in)
        memcpy(ev->id, fresh_id, KITH_HASH_LEN);
    else if (node_hist_open(n, r, i, &n->rd_plain, &own, ev->id) == 0)
        in = &own;
    if (in) {
        ev->msg_type = in->type;
        ev->wall_ms = in->wall_ms;
        if (h->has_target)
            memcpy(ev->target, in->target, KITH_HASH_LEN);
        kith_buf_reset(&n->rd_text);
        if (!(h->deleted && h->type != KITH_MSG_REACTION)
            && kith_buf_append(&n->rd_text, in->body, in->body_len) == 0)
            ev->text_len = in->body_len;
        if (kith_buf_append_u8(&n->rd_text, 0) == 0)
            ev->text = (const char *)n->rd_text.data;
        else
            ev->text_len = 0;
    }
    if (node_hist_visible(h) && h->edit && !h->deleted) {
        ev->text = node_hist_text(n, r, h->edit - 1, &n->rd_text, &ev->text_len);
        ev->edited = true;
    }
    if (!h->has_target || !in)
        return;
    ev->has_target = true;
    size_t ti = h->target ? h->target - 1 : node_hist_find(r, ev->target);
    if (ti == SIZE_MAX)
        return;
    const hist *t = node_hist_at(r, ti);
    ev->target_type = t->type;
    if (h->type == KITH_MSG_DELETE && t->type == KITH_MSG_REACTION) {
        /* Taking back a reaction: say which, and to what. */
        ev->text = node_hist_text(n, r, ti, &n->rd_text, &ev->text_len);
        if (!t->has_target || !t->target)
            return;
        ti = t->target - 1;
        t = node_hist_at(r, ti);
    }
    if (!node_hist_visible(t))
        return;
    ev->ctx_nick = node_display(n, r, node_hist_author(r, t));
    /* A deleted target's text is gone: ctx is "". */
    size_t cl;
    ev->ctx = t->deleted ? "" : node_hist_text(n, r, t->edit ? t->edit - 1 : ti, &n->rd_ctx, &cl);
}

void node_message_event(kith_node *n, nroom *r, size_t i, kith_event *ev)
{
    node_message_event_with(n, r, i, NULL, NULL, ev);
}

static void notify_message(kith_node *n, nroom *r, size_t i, const char *old_nick,
    const kith_inner *in, const uint8_t id[KITH_HASH_LEN])
{
    const hist *h = node_hist_at(r, i);
    kith_event ev;
    if (h->type == KITH_MSG_NICK) {
        memset(&ev, 0, sizeof ev);
        node_room_event(n, &ev, r);
        memcpy(ev.author, node_hist_author(r, h), KITH_ID_LEN);
        ev.wall_ms = in->wall_ms;
        ev.seq = h->seq;
        ev.msg_type = h->type;
        ev.type = KITH_EV_NICK;
        ev.nick = old_nick;
        ev.catchup = r->catchup;
        /* The new name as it will be shown (with a suffix if it is taken). */
        const char *text = node_display(n, r, node_hist_author(r, h));
        node_push_event(n, &ev, text, strlen(text));
        return;
    }
    /* An edit or delete that did not apply (someone else's message) is not
     * news; a reaction to a message we don't hold yet still is. */
    if (kith_msg_type_targets(h->type) && !h->effective)
        return;
    node_message_event_with(n, r, i, in, id, &ev);
    ev.catchup = r->catchup;
    node_push_event(n, &ev, ev.text, ev.text_len);
}

static void link_reaction(nroom *r, size_t target, size_t i)
{
    node_hist_at(r, i)->react = node_hist_at(r, target)->react;
    node_hist_at(r, target)->react = (uint32_t)(i + 1);
    node_hist_at(r, i)->target = (uint32_t)(target + 1);
    node_hist_at(r, i)->linked = true;
}

/* Apply history entry i (just delivered: in, with this id) to the view:
 * the rules of proto/kith.md 6, "Edits, deletes and reactions". They
 * depend only on the order of each author's own messages (which every node
 * delivers alike), so every member ends with the same view. */
static void apply_view(
    kith_node *n, nroom *r, size_t i, const uint8_t id[KITH_HASH_LEN], const kith_inner *in)
{
    hist *h = node_hist_at(r, i);
    if (node_hist_visible(h)) {
        /* Reactions that came before this message (another author's chain
         * may run ahead of the target's). */
        for (size_t k = 0; k < r->norphans;) {
            if (memcmp(r->orphan_target[k], id, KITH_HASH_LEN) == 0) {
                link_reaction(r, i, r->orphans[k]);
                r->norphans--;
                r->orphans[k] = r->orphans[r->norphans];
                memcpy(r->orphan_target[k], r->orphan_target[r->norphans], KITH_HASH_LEN);
            } else {
                k++;
            }
        }
    }
    if (!h->has_target || !kith_msg_type_targets(h->type))
        return;
    size_t ti = node_hist_find(r, in->target);
    hist *t = ti != SIZE_MAX ? node_hist_at(r, ti) : NULL;
    if (t)
        h->target = (uint32_t)(ti + 1);
    char fpr[KITH_FPR_STRLEN];
    kith_fingerprint(node_hist_author(r, h), fpr);
    if (h->type == KITH_MSG_REACTION) {
        h->effective = true;
        if (!t) {
            /* Full: one waiting in turn gives up its place (and is not
             * shown if its target comes later). */
            size_t k;
            if (r->norphans < NODE_MAX_ORPHANS) {
                k = r->norphans++;
            } else {
                k = r->orphan_next;
                r->orphan_next = (r->orphan_next + 1) % NODE_MAX_ORPHANS;
            }
            r->orphans[k] = i;
            memcpy(r->orphan_target[k], in->target, KITH_HASH_LEN);
        } else if (node_hist_visible(t)) {
            link_reaction(r, ti, i);
        } else {
            h->effective = false;
            KITH_LOGI(n->env, "reaction by %s to a message that is not a text: ignored", fpr);
        }
        return;
    }
    /* Edit or delete: only the author of the target may. */
    const char *what = h->type == KITH_MSG_EDIT ? "edit" : "delete";
    if (!t) {
        KITH_LOGW(n->env, "%s by %s of a message we don't hold: ignored", what, fpr);
        return;
    }
    if (memcmp(node_hist_author(r, t), node_hist_author(r, h), KITH_ID_LEN) != 0) {
        KITH_LOGW(n->env, "%s by %s of someone else's message: ignored", what, fpr);
        return;
    }
    bool ok = h->type == KITH_MSG_EDIT
        ? node_hist_visible(t) && !t->deleted
        : (node_hist_visible(t) || t->type == KITH_MSG_REACTION) && !t->deleted;
    if (!ok) {
        KITH_LOGI(n->env, "%s by %s of a deleted message or one that can't be: ignored", what, fpr);
        return;
    }
    h->effective = true;
    if (h->type == KITH_MSG_EDIT) {
        t->edit = (uint32_t)(i + 1);
        return;
    }
    /* Delete: the text is no longer shown (the envelope stays: the
     * author's hash chain and sync need it), nor are its edits'. */
    t->deleted = true;
    if (t->type == KITH_MSG_REACTION)
        return;
    for (size_t k = ti + 1; k < r->nhist; k++) {
        hist *x = node_hist_at(r, k);
        if (x->type == KITH_MSG_EDIT && x->effective && x->target == ti + 1)
            x->deleted = true;
    }
}

/* ---- bulk catch-up ---- */

/* Messages peers said they hold that we have not delivered yet. */
static uint64_t backlog(const nroom *r)
{
    uint64_t left = 0;
    for (size_t i = 0; i < r->nauthors; i++) {
        const author_st *a = &r->authors[i];
        if (a->target > a->seq)
            left += a->target - a->seq;
    }
    return left;
}

/* 12345678 -> "12,345,678" */
static const char *thousands(uint64_t v, char out[32])
{
    char raw[24];
    int len = snprintf(raw, sizeof raw, "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = raw[i];
    }
    out[o] = '\0';
    return out;
}

static void catchup_say(kith_node *n, nroom *r, const char *what)
{
    char done[32], total[32];
    uint64_t left = backlog(r);
    thousands(r->cu_done, done);
    thousands(r->cu_done + left, total);
    if (!r->catchup)
        node_event_info(
            n, r, "caught up %s: %s messages (/history shows them)", kith_room_name(r->room), done);
    else
        node_event_info(n, r, "%s %s: %s/%s", what, kith_room_name(r->room), done, total);
    r->cu_said_ms = kith_mono_ms(n->env);
}

void node_catchup_sync(kith_node *n, nroom *r, const kith_frame *f)
{
    if (!node_is_member(r, n->self->id_pk))
        return;
    for (size_t i = 0; i < f->count; i++) {
        uint8_t id[KITH_ID_LEN];
        uint64_t seq;
        if (kith_frame_vec_at(f, i, id, &seq) != 0 || !node_is_member(r, id))
            continue;
        author_st *a = node_author(n, r, id, seq > 0);
        if (a && seq > a->target)
            a->target = seq;
    }
    if (r->catchup || !r->cu_ready)
        return;
    /* Only a node back from an absence (just started, or its first link to
     * the room after none) goes quiet: a live node that fell behind keeps
     * showing every message. */
    r->cu_ready = false;
    if (backlog(r) < NODE_CATCHUP_QUIET)
        return;
    r->catchup = true;
    r->cu_done = 0;
    r->cu_moved_ms = kith_mono_ms(n->env);
    catchup_say(n, r, "catching up");
}

/* One message delivered while catching up. */
static void catchup_step(kith_node *n, nroom *r, const author_st *a)
{
    r->cu_done++;
    uint64_t now = kith_mono_ms(n->env);
    r->cu_moved_ms = now;
    if (a->seq >= a->target && backlog(r) == 0) {
        r->catchup = false;
        catchup_say(n, r, NULL);
    } else if (now - r->cu_said_ms >= NODE_CATCHUP_PROGRESS_MS) {
        catchup_say(n, r, "catching up");
    }
}

void node_catchup_tick(kith_node *n, uint64_t now)
{
    for (size_t i = 0; i < n->nrooms; i++) {
        nroom *r = n->rooms[i];
        if (!r->catchup || now - r->cu_moved_ms < NODE_CATCHUP_STALL_MS)
            continue;
        /* The peers that claimed more went away (or claimed too much):
         * forget their claims; a later SYNC brings the rest. */
        catchup_say(n, r, "catch-up paused at");
        for (size_t k = 0; k < r->nauthors; k++)
            r->authors[k].target = r->authors[k].seq;
        r->catchup = false;
        /* Only one peer was being asked (node_net.c, on_sync): ask all. */
        node_sync_links(n, r);
    }
}

/* Deliver one opened message whose predecessor is already delivered. */
static int deliver(kith_node *n, nroom *r, author_st *a, const uint8_t id[KITH_HASH_LEN],
    const kith_inner *in, const uint8_t *env, size_t len, bool persist, bool notify)
{
    /* The hash chain: seq s must name the id of seq s-1 as its prev. */
    static const uint8_t zero[KITH_HASH_LEN];
    const uint8_t *want = a->seq ? a->last : zero;
    if (sodium_memcmp(in->prev, want, KITH_HASH_LEN) != 0) {
        KITH_LOGW(n->env, "message %llu of an author does not chain to the previous one",
            (unsigned long long)in->seq);
        return KITH_EPROTO;
    }
    int rc = ix_reserve(n, r);
    if (rc)
        return rc;
    uint64_t pos = n->load_pos; /* already in the log when not persisted here */
    rc = persist ? persist_at(n, r, REC_ENVELOPE, env, len, &pos) : 0;
    size_t idx;
    if (!rc)
        rc = hist_push(n, r, in, id, (size_t)(a - r->authors), pos, len, &idx);
    if (rc)
        return rc;
    ix_insert(r, (uint32_t)(idx + 1));
    memcpy(r->recent[idx % NODE_RECENT], id, KITH_HASH_LEN);
    r->recent_at[idx % NODE_RECENT] = idx + 1;
    a->seq = in->seq;
    memcpy(a->last, id, KITH_HASH_LEN);
    if (in->lamport > r->lamport)
        r->lamport = in->lamport;
    if (memcmp(in->author, n->self->id_pk, KITH_ID_LEN) != 0) {
        r->last_other = idx + 1;
        r->nlast_deps = in->ndeps;
        memcpy(r->last_deps, in->deps, in->ndeps * (size_t)KITH_HASH_LEN);
    }
    char old[KITH_DISPLAY_MAX + 1];
    snprintf(old, sizeof old, "%s", notify ? node_display(n, r, in->author) : "");
    if (in->type == KITH_MSG_NICK) {
        size_t nl = KITH_MIN(in->body_len, (size_t)KITH_NICK_MAX);
        memcpy(a->nick, in->body, nl);
        a->nick[nl] = '\0';
        node_names_renamed(n, r, in->author);
    }
    apply_view(n, r, idx, id, in);
    if (notify)
        notify_message(n, r, idx, old, in, id);
    if (r->catchup && notify && !n->loading)
        catchup_step(n, r, a);
    if (persist && notify && !n->loading) {
        n->stats.delivered++;
        node_gossip_relay(n, r, (size_t)(a - r->authors), id, env, len, n->cur_from);
    }
    return 0;
}

static bool held_has(const nroom *r, const uint8_t id[KITH_HASH_LEN])
{
    for (size_t i = 0; i < r->nheld; i++) {
        if (memcmp(r->held[i].id, id, KITH_HASH_LEN) == 0)
            return true;
    }
    return false;
}

static void hold(kith_node *n, nroom *r, const uint8_t id[KITH_HASH_LEN], const kith_inner *in,
    const uint8_t *env, size_t len)
{
    /* Ask for what it waits on: its predecessor, and its dependencies. */
    uint64_t from = n->cur_from ? n->cur_from->id : 0;
    author_st *a = node_author(n, r, in->author, false);
    if (in->seq > (a ? a->seq : 0) + 1) {
        node_gossip_want(n, r, in->prev, from, NODE_WANT_DELAY_MS);
        /* A gap of more than one message is anti-entropy's job. */
        uint64_t now = kith_mono_ms(n->env);
        if (n->cur_from && in->seq > (a ? a->seq : 0) + 2
            && now - n->cur_from->last_gap_sync_ms > NODE_GAP_NOTICE_MS) {
            n->cur_from->last_gap_sync_ms = now;
            node_send_sync(n, n->cur_from, r);
        }
    }
    for (size_t i = 0; i < in->ndeps; i++)
        node_gossip_want(n, r, in->deps[i], from, NODE_WANT_DELAY_MS);
    if (r->nheld >= NODE_MAX_HELD || r->held_bytes + len > NODE_MAX_HELD_BYTES || held_has(r, id))
        return; /* a later sync brings it again */
    held *h = kith_realloc(n->env, r->held, (r->nheld + 1) * sizeof *h);
    if (!h)
        return;
    r->held = h;
    uint8_t *copy = kith_malloc(n->env, len);
    if (!copy)
        return;
    memcpy(copy, env, len);
    h = &r->held[r->nheld++];
    r->held_bytes += len;
    memcpy(h->id, id, KITH_HASH_LEN);
    memcpy(h->author, in->author, KITH_ID_LEN);
    h->seq = in->seq;
    h->env = copy;
    h->len = len;
    h->since_ms = kith_mono_ms(n->env);
    h->pos = n->load_pos;
    h->ndeps = in->ndeps;
    memcpy(h->deps, in->deps, sizeof h->deps);
}

static bool deps_missing(const nroom *r, size_t ndeps, const uint8_t (*deps)[KITH_HASH_LEN])
{
    for (size_t i = 0; i < ndeps; i++) {
        if (!node_has_id(r, deps[i]))
            return true;
    }
    return false;
}

int node_open_parsed(kith_node *n, const nroom *r, const kith_envelope *e, bool known,
    kith_buf *plain, kith_inner *in)
{
    /* The tag names the key (two keys can share an epoch number when
     * rekeys were concurrent). */
    const uint8_t *key = NULL;
    for (size_t k = 0; k < r->ntags && !key; k++) {
        uint64_t epoch;
        const uint8_t *kk = kith_room_key_at(r->room, k, &epoch);
        if (kk && epoch == e->epoch && sodium_memcmp(r->tags[k], e->tag, KITH_ROOM_TAG_LEN) == 0)
            key = kk;
    }
    if (!key)
        return KITH_ENOENT;
    if (known)
        return kith_msg_open_known(n->env, e, kith_room_id(r->room), key, plain, in);
    return kith_msg_open(n->env, e, kith_room_id(r->room), key, plain, in);
}

int node_open_envelope(kith_node *n, const nroom *r, const uint8_t *env, size_t len, bool known,
    kith_buf *plain, kith_inner *in)
{
    kith_envelope e;
    int rc = kith_msg_parse_envelope(n->env, env, len, &e);
    return rc ? rc : node_open_parsed(n, r, &e, known, plain, in);
}

static int accept_one(kith_node *n, nroom *r, const uint8_t *env, size_t len, bool persist,
    bool notify, bool force, bool *delivered)
{
    *delivered = false;
    /* The frame of a run being handled (node_net.c): these very bytes were
     * hashed, opened and their signature checked with the run. */
    const pre_msg *pre = n->pre;
    bool same = pre && pre->room == r && pre->has_id && len == pre->len
        && env == n->run_bytes.data + pre->off;
    uint8_t id[KITH_HASH_LEN];
    if (same)
        memcpy(id, pre->id, KITH_HASH_LEN);
    else
        kith_msg_id(env, len, id);
    /* Dedup by id before spending a signature check. */
    if (node_has_id(r, id)) {
        n->last_dup = true;
        return 0;
    }
    kith_buf plain;
    kith_buf_init(&plain, n->env, KITH_MSG_MAX_ENVELOPE);
    kith_inner in;
    int rc;
    if (same) {
        /* Opened with its run, its signature checked there. */
        in = pre->in;
        rc = pre->ok ? 0 : KITH_ECRYPTO;
    } else {
        /* A held message (force) was opened and verified when it was held,
         * and these are the same bytes: no second signature check. */
        rc = node_open_envelope(n, r, env, len, force, &plain, &in);
    }
    if (rc) {
        kith_buf_free(&plain);
        return rc;
    }
    /* The author must be a member with a speaking role now: nothing from a
     * removed member is accepted once we know of the removal, whatever
     * epoch it claims (proto 6, "Acceptance of a MSG"). Our own log was
     * checked when written, so at start-up a former member's messages stay. */
    const kith_member *m = kith_room_member(r->room, in.author);
    bool speaks = m && m->role >= KITH_ROLE_MEMBER;
    if (!speaks && n->loading)
        speaks = kith_room_person(r->room, in.author) != NULL;
    if (!speaks) {
        kith_buf_free(&plain);
        KITH_LOGW(n->env, "message from a non-member or observer dropped");
        return KITH_EPERM;
    }
    author_st *a = node_author(n, r, in.author, true);
    if (!a) {
        kith_buf_free(&plain);
        return KITH_ENOMEM;
    }
    if (in.seq <= a->seq) {
        /* Same (author, seq) as a message delivered, different id (the
         * same id was a duplicate, above): the author signed two messages
         * for one slot. Keep the first; report the evidence. */
        char fpr[KITH_FPR_STRLEN];
        kith_fingerprint(in.author, fpr);
        KITH_LOGW(n->env, "equivocation: %s signed two messages with sequence %llu", fpr,
            (unsigned long long)in.seq);
        rc = KITH_EREPLAY;
    } else if (in.seq == a->seq + 1
        && (force || n->loading
            || !deps_missing(r, in.ndeps, (const uint8_t(*)[KITH_HASH_LEN])in.deps))) {
        rc = deliver(n, r, a, id, &in, env, len, persist, notify);
        *delivered = rc == 0;
    } else {
        hold(n, r, id, &in, env, len);
    }
    if (*delivered && persist && memcmp(in.author, n->self->id_pk, KITH_ID_LEN) == 0)
        KITH_LOGI(n->env, "recovered our own message %llu from a peer", (unsigned long long)in.seq);
    kith_buf_free(&plain);
    return rc;
}

/* Deliver held messages that have become next in line: their predecessor
 * is delivered and their dependencies are too, or have been waited on long
 * enough (a dependency may be one we can never read, e.g. from an epoch
 * before we joined). */
void node_release_held(kith_node *n, nroom *r)
{
    uint64_t now = kith_mono_ms(n->env);
    bool progress = true;
    while (progress) {
        progress = false;
        for (size_t i = 0; i < r->nheld; i++) {
            held *h = &r->held[i];
            author_st *a = node_author(n, r, h->author, false);
            uint64_t have = a ? a->seq : 0;
            bool stale = h->seq <= have;
            bool ready = h->seq == have + 1
                && (now - h->since_ms >= NODE_DEPS_WAIT_MS
                    || !deps_missing(r, h->ndeps, (const uint8_t(*)[KITH_HASH_LEN])h->deps));
            if (!stale && !ready)
                continue;
            held copy = *h;
            r->held[i] = r->held[--r->nheld];
            r->held_bytes -= copy.len;
            if (ready) {
                bool delivered;
                n->load_pos = copy.pos;
                /* It verified once; a failure now just drops it. */
                (void)!accept_one(
                    n, r, copy.env, copy.len, !n->loading, !n->loading, true, &delivered);
            }
            kith_free(n->env, copy.env);
            progress = true;
            break;
        }
    }
}

int node_accept_envelope(
    kith_node *n, nroom *r, const uint8_t *env, size_t len, bool persist, bool notify)
{
    bool delivered;
    int rc = accept_one(n, r, env, len, persist, notify, false, &delivered);
    if (delivered && r->nheld)
        node_release_held(n, r);
    return rc;
}

static int send_msg(kith_node *n, nroom *r, uint32_t msg_type, const char *text, size_t len,
    const uint8_t *target, uint64_t *seq);

int kith_node_send(kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN], uint32_t msg_type,
    const char *text, size_t len, uint64_t *seq)
{
    nroom *r = node_room_by_id(n, room_id);
    if (!r)
        return KITH_ENOENT;
    if (msg_type < KITH_MSG_TEXT || msg_type > KITH_MSG_NICK)
        return KITH_EINVAL;
    if (len > KITH_MSG_MAX_BODY)
        return KITH_ETOOBIG;
    if (len == 0 && msg_type != KITH_MSG_ACTION)
        return KITH_EINVAL;
    return send_msg(n, r, msg_type, text, len, NULL, seq);
}

/* Our own reaction `text` to target index ti that is still in force, or
 * (text NULL) any of ours; SIZE_MAX when none. */
static size_t own_reaction(
    kith_node *n, const nroom *r, size_t ti, const char *text, size_t len, size_t after)
{
    for (size_t at = node_hist_at(r, ti)->react; at; at = node_hist_at(r, at - 1)->react) {
        const hist *x = node_hist_at(r, at - 1);
        if (at - 1 >= after || x->deleted
            || memcmp(node_hist_author(r, x), n->self->id_pk, KITH_ID_LEN) != 0)
            continue;
        if (!text)
            return at - 1;
        size_t xl;
        const char *xt = node_hist_text(n, r, at - 1, &n->rd_text, &xl);
        if (xl == len && memcmp(xt, text, len) == 0)
            return at - 1;
    }
    return SIZE_MAX;
}

int kith_node_send_about(kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN], uint32_t msg_type,
    const uint8_t target[KITH_ROOM_ID_LEN], const char *text, size_t len, uint64_t *seq)
{
    nroom *r = node_room_by_id(n, room_id);
    if (!r)
        return KITH_ENOENT;
    if (!kith_msg_type_targets(msg_type))
        return KITH_EINVAL;
    size_t ti = node_hist_find(r, target);
    if (ti == SIZE_MAX)
        return KITH_ENOENT;
    const hist *t = node_hist_at(r, ti);
    bool mine = memcmp(node_hist_author(r, t), n->self->id_pk, KITH_ID_LEN) == 0;
    if (msg_type == KITH_MSG_DELETE && t->type == KITH_MSG_REACTION) {
        if (!mine)
            return KITH_EPERM;
        if (t->deleted)
            return KITH_EINVAL;
        return send_msg(n, r, msg_type, NULL, 0, target, seq);
    }
    if (!node_hist_visible(t) || t->deleted)
        return KITH_EINVAL;
    if (msg_type != KITH_MSG_REACTION && !mine)
        return KITH_EPERM;
    if (msg_type == KITH_MSG_DELETE)
        len = 0;
    else if (len == 0 || !text)
        return KITH_EINVAL;
    if (len > KITH_MSG_MAX_BODY)
        return KITH_ETOOBIG;
    if (msg_type == KITH_MSG_REACTION && own_reaction(n, r, ti, text, len, SIZE_MAX) != SIZE_MAX)
        return KITH_EEXIST;
    return send_msg(n, r, msg_type, text, len, target, seq);
}

int kith_node_unreact(kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN],
    const uint8_t target[KITH_ROOM_ID_LEN], const char *text, size_t len)
{
    nroom *r = node_room_by_id(n, room_id);
    if (!r)
        return KITH_ENOENT;
    if (!target) {
        /* Our latest reaction still in force (with that text). */
        for (size_t i = r->nhist; i > 0; i--) {
            const hist *x = node_hist_at(r, i - 1);
            if (x->type != KITH_MSG_REACTION || x->deleted || !x->effective
                || memcmp(node_hist_author(r, x), n->self->id_pk, KITH_ID_LEN) != 0)
                continue;
            size_t xl;
            const char *xt = text ? node_hist_text(n, r, i - 1, &n->rd_text, &xl) : NULL;
            if (text && (xl != len || memcmp(xt, text, len) != 0))
                continue;
            uint8_t id[KITH_HASH_LEN];
            int rc = node_hist_full_id(n, r, i - 1, id);
            if (rc)
                return rc;
            uint64_t seq;
            rc = send_msg(n, r, KITH_MSG_DELETE, NULL, 0, id, &seq);
            return rc ? rc : 1;
        }
        return KITH_ENOENT;
    }
    size_t ti = node_hist_find(r, target);
    if (ti == SIZE_MAX)
        return KITH_ENOENT;
    /* Each delete is applied at once (send delivers it), so the walk goes
     * on from the reaction just taken back. */
    int count = 0;
    for (size_t after = SIZE_MAX;;) {
        size_t k = own_reaction(n, r, ti, text, len, after);
        if (k == SIZE_MAX)
            break;
        uint8_t id[KITH_HASH_LEN];
        uint64_t seq;
        int rc = node_hist_full_id(n, r, k, id);
        if (!rc)
            rc = send_msg(n, r, KITH_MSG_DELETE, NULL, 0, id, &seq);
        if (rc)
            return count ? count : rc;
        count++;
        after = k;
    }
    return count ? count : KITH_ENOENT;
}

int kith_node_find_message(kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN],
    const char *id_hex, size_t nth, bool mine, uint8_t id[KITH_ROOM_ID_LEN])
{
    nroom *r = node_room_by_id(n, room_id);
    if (!r)
        return KITH_ENOENT;
    size_t hl = id_hex ? strlen(id_hex) : 0;
    if (id_hex && (hl < 4 || hl > 2 * KITH_HASH_LEN))
        return KITH_EINVAL;
    size_t found = SIZE_MAX, seen = 0;
    for (size_t i = r->nhist; i > 0; i--) {
        const hist *h = node_hist_at(r, i - 1);
        if (!node_hist_visible(h) || h->deleted)
            continue;
        if (mine && memcmp(node_hist_author(r, h), n->self->id_pk, KITH_ID_LEN) != 0)
            continue;
        if (id_hex) {
            /* The entry's 8 bytes of id first; more digits than those
             * are checked against the id read from the log. */
            char hex[2 * KITH_HASH_LEN + 1];
            uint8_t full[KITH_HASH_LEN];
            kith_hex(hex, (const uint8_t *)&h->idp, sizeof h->idp);
            if (strncasecmp(hex, id_hex, KITH_MIN(hl, 2 * sizeof h->idp)) != 0)
                continue;
            if (hl > 2 * sizeof h->idp) {
                if (node_hist_full_id(n, r, i - 1, full) != 0)
                    continue;
                kith_hex(hex, full, KITH_HASH_LEN);
                if (strncasecmp(hex, id_hex, hl) != 0)
                    continue;
            }
            if (found != SIZE_MAX)
                return KITH_EEXIST;
            found = i - 1;
        } else if (++seen == nth) {
            found = i - 1;
            break;
        }
    }
    if (found == SIZE_MAX)
        return KITH_ENOENT;
    return node_hist_full_id(n, r, found, id);
}

static bool dep_listed(const kith_inner *in, const uint8_t id[KITH_HASH_LEN])
{
    for (size_t i = 0; i < in->ndeps; i++) {
        if (memcmp(in->deps[i], id, KITH_HASH_LEN) == 0)
            return true;
    }
    return false;
}

/* Causal dependencies of a message we send, after its target if any: the
 * latest two messages from others, less those already implied. The second
 * is left out when it is an ancestor of the first by what the node knows
 * cheaply: the same author (the hash chain orders them), or named by the
 * first as a dependency. Each dependency costs 35 bytes of every copy. */
static void deps_pick(kith_node *n, const nroom *r, const uint8_t *target, kith_inner *in)
{
    size_t first = 0; /* 1 + hist index of the first picked */
    for (size_t i = r->nhist; i > 0 && in->ndeps < 2; i--) {
        const hist *h = node_hist_at(r, i - 1);
        const uint8_t *author = node_hist_author(r, h);
        uint8_t id[KITH_HASH_LEN]; /* nroom.recent has the latest: no read */
        if (memcmp(author, n->self->id_pk, KITH_ID_LEN) == 0
            || (target && h->idp == node_id_prefix(target))
            || node_hist_full_id(n, r, i - 1, id) != 0)
            continue;
        if (!first) {
            first = i;
            memcpy(in->deps[in->ndeps++], id, KITH_HASH_LEN);
            continue;
        }
        const hist *f = node_hist_at(r, first - 1);
        bool implied = memcmp(node_hist_author(r, f), author, KITH_ID_LEN) == 0;
        for (size_t k = 0; !implied && r->last_other == first && k < r->nlast_deps; k++)
            implied = memcmp(r->last_deps[k], id, KITH_HASH_LEN) == 0;
        if (!implied && !dep_listed(in, id))
            memcpy(in->deps[in->ndeps++], id, KITH_HASH_LEN);
        break;
    }
}

static int send_msg(kith_node *n, nroom *r, uint32_t msg_type, const char *text, size_t len,
    const uint8_t *target, uint64_t *seq)
{
    const uint8_t *room_id = kith_room_id(r->room);
    uint64_t epoch;
    const uint8_t *key = kith_room_current_key(r->room, &epoch);
    if (!key)
        return kith_room_member(r->room, n->self->id_pk) ? KITH_EAGAIN : KITH_EPERM;
    const kith_member *me = kith_room_member(r->room, n->self->id_pk);
    if (!me || me->role < KITH_ROLE_MEMBER)
        return KITH_EPERM; /* removed, or an observer */
    author_st *a = node_author(n, r, n->self->id_pk, true);
    if (!a)
        return KITH_ENOMEM;
    kith_inner in;
    memset(&in, 0, sizeof in);
    in.type = msg_type;
    memcpy(in.room_id, room_id, KITH_HASH_LEN);
    in.epoch = epoch;
    memcpy(in.author, n->self->id_pk, KITH_ID_LEN);
    in.seq = a->seq + 1;
    if (a->seq)
        memcpy(in.prev, a->last, KITH_HASH_LEN);
    /* Causal dependencies: the message acted on first (so a receiver shows
     * a reaction after its target), then the latest we had from others. */
    if (target) {
        in.has_target = true;
        memcpy(in.target, target, KITH_HASH_LEN);
        memcpy(in.deps[in.ndeps++], target, KITH_HASH_LEN);
    }
    deps_pick(n, r, target, &in);
    in.lamport = r->lamport + 1;
    in.wall_ms = kith_wall_ms(n->env);
    in.body = (const uint8_t *)text;
    in.body_len = len;
    kith_buf env;
    kith_buf_init(&env, n->env, KITH_MSG_MAX_ENVELOPE);
    int rc = kith_msg_seal(n->env, n->self, &in, key, &env);
    if (rc) {
        kith_buf_free(&env);
        return rc;
    }
    if (n->nout == n->capout) {
        size_t ncap = n->capout ? n->capout * 2 : 16;
        outmsg *o = kith_realloc(n->env, n->out, ncap * sizeof *o);
        if (!o) {
            kith_buf_free(&env);
            return KITH_ENOMEM;
        }
        n->out = o;
        n->capout = ncap;
    }
    /* Kept until the flush shows and sends it (a few messages at most). */
    uint8_t *copy = kith_malloc(n->env, env.len + len + 1);
    if (!copy) {
        kith_buf_free(&env);
        return KITH_ENOMEM;
    }
    memcpy(copy, env.data, env.len);
    if (len)
        memcpy(copy + env.len, text, len);
    uint8_t id[KITH_HASH_LEN];
    kith_msg_id(env.data, env.len, id);
    rc = deliver(n, r, a, id, &in, env.data, env.len, true, false);
    if (rc) {
        kith_free(n->env, copy);
        kith_buf_free(&env);
        return rc;
    }
    outmsg *o = &n->out[n->nout++];
    o->room = r;
    o->hist = r->nhist - 1;
    o->env = copy;
    o->env_len = env.len;
    o->body_len = len;
    o->wall_ms = in.wall_ms;
    memcpy(o->target, in.target, KITH_HASH_LEN);
    kith_buf_free(&env);
    *seq = in.seq;
    return 0;
}

/* ---- ops ---- */

static void notify_join(kith_node *n, nroom *r, const kith_member *m)
{
    kith_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = KITH_EV_JOIN;
    node_room_event(n, &ev, r);
    memcpy(ev.author, m->id, KITH_ID_LEN);
    ev.nick = node_display(n, r, m->id);
    ev.self = memcmp(m->id, n->self->id_pk, KITH_ID_LEN) == 0;
    node_push_event(n, &ev, NULL, 0);
}

static int hold_op(kith_node *n, nroom *r, const uint8_t *op, size_t len)
{
    if (r->nheld_ops >= NODE_MAX_HELD_OPS)
        return KITH_ETOOBIG;
    uint8_t **p = kith_realloc(n->env, r->held_ops, (r->nheld_ops + 1) * sizeof *p);
    if (!p)
        return KITH_ENOMEM;
    r->held_ops = p;
    size_t *l = kith_realloc(n->env, r->held_op_len, (r->nheld_ops + 1) * sizeof *l);
    if (!l)
        return KITH_ENOMEM;
    r->held_op_len = l;
    uint8_t *copy = kith_malloc(n->env, len);
    if (!copy)
        return KITH_ENOMEM;
    memcpy(copy, op, len);
    r->held_ops[r->nheld_ops] = copy;
    r->held_op_len[r->nheld_ops] = len;
    r->nheld_ops++;
    return 0;
}

static const char *role_name(int role)
{
    static const char *names[] = { "nobody", "an observer", "a member", "a moderator", "an admin" };
    return role >= 0 && role <= KITH_ROLE_ADMIN ? names[role] : "?";
}

/* Name of a member or former member, for system lines. */
static const char *who(const kith_node *n, nroom *r, const uint8_t id[KITH_ID_LEN])
{
    if (memcmp(id, n->self->id_pk, KITH_ID_LEN) == 0)
        return "you";
    return node_display(n, r, id);
}

/* The structured twin of a system line, for gateways (IRC KICK, MODE...). */
static void member_event(kith_node *n, nroom *r, const kith_op_info *o)
{
    if (o->kind != KITH_OP_REMOVE && o->kind != KITH_OP_BAN && o->kind != KITH_OP_UNBAN
        && o->kind != KITH_OP_SET_ROLE && o->kind != KITH_OP_SET_TOPIC && o->kind != KITH_OP_LEAVE)
        return;
    const uint8_t *subject
        = o->kind == KITH_OP_LEAVE || o->kind == KITH_OP_SET_TOPIC ? o->author : o->subject;
    char by[KITH_DISPLAY_MAX + 1], sub[KITH_DISPLAY_MAX + 1];
    snprintf(by, sizeof by, "%s", node_display(n, r, o->author));
    snprintf(sub, sizeof sub, "%s", node_display(n, r, subject));
    kith_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = KITH_EV_MEMBER;
    node_room_event(n, &ev, r);
    ev.op = o->kind;
    ev.role = o->role;
    memcpy(ev.author, o->author, KITH_ID_LEN);
    ev.nick = by;
    memcpy(ev.subject, subject, KITH_ID_LEN);
    ev.subject_nick = sub;
    ev.self = memcmp(o->author, n->self->id_pk, KITH_ID_LEN) == 0;
    const char *text = o->kind == KITH_OP_SET_TOPIC ? o->text : "";
    node_push_event(n, &ev, text, strlen(text));
}

/* One system line for every membership change. */
static void notify_op(kith_node *n, nroom *r, const kith_op_info *o, bool was_member)
{
    const char *room = kith_room_name(r->room);
    if (o->kind == KITH_OP_ADD) /* someone back with another name is shown by it */
        node_names_renamed(n, r, o->subject);
    char by[KITH_DISPLAY_MAX + 1], sub[KITH_DISPLAY_MAX + 1];
    snprintf(by, sizeof by, "%s", who(n, r, o->author));
    snprintf(sub, sizeof sub, "%s", who(n, r, o->subject));
    bool me = memcmp(o->subject, n->self->id_pk, KITH_ID_LEN) == 0;
    char inv[2 * NODE_INVITE_SHORT + 1]; /* the invite's id, as /revoke takes it */
    kith_hex(inv, o->invite, NODE_INVITE_SHORT);
    if (!o->effective) {
        KITH_LOGI(n->env, "room %s: an op by %s has no effect (lost the role first)", room, by);
        return;
    }
    switch (o->kind) {
    case KITH_OP_ADD: {
        const kith_member *m = kith_room_member(r->room, o->subject);
        if (m)
            notify_join(n, r, m);
        if (o->has_invite)
            node_event_info(n, r, "%s joined %s with %s's invite %s", sub, room, by, inv);
        break;
    }
    case KITH_OP_REMOVE:
        if (me && was_member)
            node_event_info(n, r, "you were removed from %s by %s", room, by);
        else
            node_event_info(n, r, "%s was removed from %s by %s", sub, room, by);
        break;
    case KITH_OP_BAN:
        node_event_info(n, r, "%s %s banned from %s by %s", sub, me ? "were" : "was", room, by);
        break;
    case KITH_OP_UNBAN:
        node_event_info(n, r, "%s unbanned %s in %s", by, sub, room);
        break;
    case KITH_OP_SET_ROLE:
        node_event_info(n, r, "%s made %s %s in %s", by, sub, role_name(o->role), room);
        break;
    case KITH_OP_SET_TOPIC:
        node_event_info(n, r, "%s set the topic of %s: %s", by, room, o->text);
        break;
    case KITH_OP_SET_NAME:
        node_event_info(n, r, "%s renamed the room to %s", by, o->text);
        break;
    case KITH_OP_INVITE:
        node_event_info(n, r, "%s issued an invite to %s (id %s)", by, room, inv);
        break;
    case KITH_OP_REVOKE:
        node_event_info(n, r, "%s revoked the invite %s to %s", by, inv, room);
        break;
    case KITH_OP_REKEY:
        node_event_info(n, r, "%s rekeyed %s (epoch %llu)", by, room, (unsigned long long)o->epoch);
        break;
    case KITH_OP_LEAVE:
        node_event_info(n, r, "%s left %s", by, room);
        break;
    case KITH_OP_SET_LAN:
        if (o->lan == KITH_ROOM_LAN_OFF)
            node_event_info(n, r, "%s made %s no longer discoverable on the LAN", by, room);
        else
            node_event_info(n, r, "%s made %s discoverable on the LAN: %s", by, room,
                o->lan == KITH_ROOM_LAN_OPEN ? "anyone there may join"
                                             : "knocks wait for an admin or moderator");
        break;
    default:
        break;
    }
    member_event(n, r, o);
}

/* Who rekeys when the room needs it: the member with the highest role,
 * then the smallest id, so that usually one node does it. */
static bool we_rekey(const kith_node *n, const nroom *r)
{
    const kith_member *best = NULL;
    for (size_t i = 0; i < kith_room_member_count(r->room); i++) {
        const kith_member *m = kith_room_member_at(r->room, i);
        if (m->role < KITH_ROLE_MEMBER)
            continue;
        if (!best || m->role > best->role
            || (m->role == best->role && memcmp(m->id, best->id, KITH_ID_LEN) < 0))
            best = m;
    }
    return best && memcmp(best->id, n->self->id_pk, KITH_ID_LEN) == 0;
}

/* Log, broadcast and apply side effects of an op we authored. */
int node_publish_op(kith_node *n, nroom *r, const kith_buf *op)
{
    int rc = node_persist_op(n, r, op->data, op->len);
    if (rc)
        KITH_LOGE(n->env, "could not log a membership op: %s", kith_strerror(rc));
    node_refresh_tag(n, r);
    kith_buf frame;
    kith_buf_init(&frame, n->env, KITH_SESSION_MAX_APP);
    if (kith_frame_op(&frame, kith_room_id(r->room), op->data, op->len) == 0)
        node_broadcast(n, r, &frame, NULL);
    kith_op_info info;
    if (kith_room_op_info(r->room, kith_room_op_count(r->room) - 1, &info) == 0) {
        /* The one removed is no member now, so the broadcast skipped it:
         * tell it directly, so its node can say so and stop sending. */
        for (size_t i = n->nconns;
             (info.kind == KITH_OP_REMOVE || info.kind == KITH_OP_BAN) && i > 0; i--) {
            nconn *c = n->conns[i - 1];
            if (c->established && !c->joining && memcmp(c->peer, info.subject, KITH_ID_LEN) == 0)
                if (node_conn_send(n, c, &frame))
                    KITH_LOGW(n->env, "could not tell a removed member");
        }
        notify_op(n, r, &info, true);
    }
    kith_buf_free(&frame);
    return rc;
}

void node_tell_removed(kith_node *n, nconn *c, nroom *r)
{
    size_t nops = kith_room_op_count(r->room), last = nops;
    for (size_t i = nops; i-- > 1 && last == nops;) {
        kith_op_info o;
        if (kith_room_op_info(r->room, i, &o) == 0 && o.effective
            && (o.kind == KITH_OP_REMOVE || o.kind == KITH_OP_BAN)
            && memcmp(o.subject, c->peer, KITH_ID_LEN) == 0)
            last = i;
    }
    if (last == nops)
        return; /* left by itself, or never a member: nothing to tell */
    kith_buf frame;
    kith_buf_init(&frame, n->env, KITH_SESSION_MAX_APP);
    /* The log is in a causal order: the removal's ancestors come first. */
    for (size_t i = 0; i <= last; i++) {
        size_t len;
        const uint8_t *op = kith_room_op_at(r->room, i, &len);
        kith_buf_reset(&frame);
        if (kith_frame_op(&frame, kith_room_id(r->room), op, len) || node_conn_send(n, c, &frame))
            break;
    }
    kith_buf_free(&frame);
    /* And ask for its ops: it may hold one we lack that undoes this. */
    node_send_sync(n, c, r);
}

/* Sign a rekey op for the room and publish it. */
static int rekey_now(kith_node *n, nroom *r)
{
    kith_buf op;
    kith_buf_init(&op, n->env, KITH_OP_MAX);
    int rc = kith_room_rekey(r->room, &op);
    if (!rc)
        rc = node_publish_op(n, r, &op);
    kith_buf_free(&op);
    return rc;
}

void node_maybe_rekey(kith_node *n, nroom *r, bool anyone)
{
    if (n->loading || !kith_room_needs_rekey(r->room) || !(anyone || we_rekey(n, r)))
        return;
    int rc = rekey_now(n, r);
    if (rc)
        KITH_LOGW(n->env, "could not rekey %s: %s", kith_room_name(r->room), kith_strerror(rc));
}

void node_safety_string(const nroom *r, char out[32])
{
    uint8_t d[KITH_HASH_LEN];
    kith_room_safety(r->room, d);
    size_t off = 0;
    for (int g = 0; g < 6; g++) {
        uint32_t v
            = ((uint32_t)d[3 * g] << 16 | (uint32_t)d[3 * g + 1] << 8 | d[3 * g + 2]) % 100000;
        off += (size_t)snprintf(out + off, 32 - off, g ? " %05u" : "%05u", (unsigned)v);
    }
}

/* who: the name shown ("alice" or "alice~3f2a"), the name chosen, a name
 * and the start of the fingerprint ("alice~3f2ab"), or a fingerprint prefix
 * of at least 4 digits (with or without its dashes). */
static bool person_matches(const kith_node *n, nroom *r, const kith_member *m, const char *who)
{
    char fpr[KITH_FPR_STRLEN], digits[KITH_FPR_STRLEN];
    kith_fingerprint(m->id, fpr);
    size_t nd = 0;
    for (size_t k = 0; fpr[k]; k++)
        if (fpr[k] != '-')
            digits[nd++] = fpr[k];
    digits[nd] = '\0';
    const char *shown = node_display(n, r, m->id), *chosen = node_nick_of(n, r, m->id);
    if (strcmp(shown, who) == 0 || strcmp(chosen, who) == 0)
        return true;
    size_t wl = strlen(who);
    const char *tilde = strrchr(who, '~');
    if (tilde) {
        size_t nl = (size_t)(tilde - who), fl = strlen(tilde + 1);
        size_t sl = strcspn(shown, "~");
        bool name_ok = (nl == sl && memcmp(shown, who, nl) == 0)
            || (nl == strlen(chosen) && memcmp(chosen, who, nl) == 0);
        return name_ok && fl > 0 && strncmp(digits, tilde + 1, fl) == 0;
    }
    return wl >= 4 && (strncmp(fpr, who, wl) == 0 || strncmp(digits, who, wl) == 0);
}

int kith_node_find_member(const kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN],
    const char *who, bool former, uint8_t member_id[KITH_MEMBER_ID_LEN])
{
    nroom *r = node_room_by_id(n, room_id);
    if (!r || !who)
        return KITH_ENOENT;
    /* Members first; former members only when no member matches. */
    size_t found = 0;
    for (int pass = 0; pass < (former ? 2 : 1) && !found; pass++) {
        for (size_t i = 0; i < kith_room_person_count(r->room); i++) {
            const kith_member *m = kith_room_person_at(r->room, i);
            if ((pass == 0) != (m->role != 0) || !person_matches(n, r, m, who))
                continue;
            if (found++ == 0)
                memcpy(member_id, m->id, KITH_MEMBER_ID_LEN);
        }
    }
    return found == 1 ? 0 : found ? KITH_EEXIST : KITH_ENOENT;
}

/* An invite id named by an effective invite-issued op of the log, matching
 * the first `len` bytes of want (hex digits given as an id prefix match on
 * whole bytes). */
static bool invite_in_log(
    const nroom *r, const uint8_t *want, size_t len, uint8_t out[KITH_HASH_LEN])
{
    size_t found = 0;
    for (size_t i = 0; i < kith_room_op_count(r->room); i++) {
        kith_op_info o;
        if (kith_room_op_info(r->room, i, &o) == 0 && o.kind == KITH_OP_INVITE && o.effective
            && memcmp(o.invite, want, len) == 0) {
            if (found && memcmp(out, o.invite, KITH_HASH_LEN) == 0)
                continue;
            memcpy(out, o.invite, KITH_HASH_LEN);
            found++;
        }
    }
    return found == 1;
}

/* Publish an invite-revoked op, so that the log says so: every member sees
 * it, and the issuing node refuses the invite even if it lost its own
 * record. KITH_EPERM when we may not (not the issuer, not a moderator). */
static int publish_revoke(kith_node *n, nroom *r, const uint8_t id[KITH_HASH_LEN])
{
    if (kith_room_invite_revoked(r->room, id))
        return 0;
    kith_buf op;
    kith_buf_init(&op, n->env, KITH_OP_MAX);
    int rc = kith_room_invite_revoke(r->room, id, &op);
    if (!rc)
        rc = node_publish_op(n, r, &op);
    kith_buf_free(&op);
    return rc;
}

static bool hex_prefix(const char *s, uint8_t *out, size_t *len)
{
    size_t sl = strlen(s);
    if (sl < 2 * NODE_INVITE_SHORT || sl > 2 * KITH_HASH_LEN || sl % 2)
        return false;
    for (size_t i = 0; i < sl; i += 2) {
        int v = 0;
        for (size_t k = 0; k < 2; k++) {
            char ch = s[i + k];
            int d = ch >= '0' && ch <= '9' ? ch - '0'
                : ch >= 'a' && ch <= 'f'   ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F'   ? ch - 'A' + 10
                                           : -1;
            if (d < 0)
                return false;
            v = v * 16 + d;
        }
        out[i / 2] = (uint8_t)v;
    }
    *len = sl / 2;
    return true;
}

int kith_node_invite_revoke(kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN], const char *code)
{
    nroom *r = node_room_by_id(n, room_id);
    if (!r)
        return KITH_ENOENT;
    uint8_t want[KITH_HASH_LEN];
    size_t want_len = KITH_HASH_LEN;
    if (code) {
        kith_invite inv;
        int rc = kith_invite_decode(n->env, code, &inv);
        if (rc == 0) {
            bool ours = memcmp(inv.room_id, room_id, KITH_HASH_LEN) == 0;
            kith_invite_id(inv.secret, want);
            sodium_memzero(&inv, sizeof inv);
            if (!ours)
                return KITH_ENOENT;
        } else if (!hex_prefix(code, want, &want_len)) {
            return rc; /* neither a code nor an invite id */
        }
    }
    int count = 0;
    bool found = false;
    for (size_t i = 0; i < r->ninv; i++) {
        invite_st *s = &r->inv[i];
        if (code && memcmp(s->id, want, want_len) != 0)
            continue;
        found = true;
        if (s->revoked || (!code && s->used))
            continue; /* already: revoking twice is harmless */
        int rc = node_persist(n, r, REC_INVITE_REVOKED, s->id, KITH_HASH_LEN);
        if (rc)
            return rc;
        s->revoked = true;
        count++;
        rc = publish_revoke(n, r, s->id);
        if (rc) /* our own record still refuses it */
            KITH_LOGW(n->env, "could not publish an invite revocation: %s", kith_strerror(rc));
    }
    if (code && !found) {
        /* Someone else's invite, known from its invite-issued op: a
         * moderator or admin revokes it in the log, and its issuer's node
         * refuses it from then on. */
        uint8_t id[KITH_HASH_LEN];
        if (!invite_in_log(r, want, want_len, id))
            return KITH_ENOENT;
        if (kith_room_invite_revoked(r->room, id))
            return 0;
        int rc = publish_revoke(n, r, id);
        return rc ? rc : 1;
    }
    return count;
}

int kith_node_member_op(kith_node *n, const uint8_t room_id[KITH_ROOM_ID_LEN], int kind,
    const uint8_t *member, int role, const char *text)
{
    nroom *r = node_room_by_id(n, room_id);
    if (!r)
        return KITH_ENOENT;
    bool needs_member = kind == KITH_MOP_REMOVE || kind == KITH_MOP_BAN || kind == KITH_MOP_UNBAN
        || kind == KITH_MOP_SET_ROLE;
    if (needs_member && !member)
        return KITH_EINVAL;
    kith_buf op;
    kith_buf_init(&op, n->env, KITH_OP_MAX);
    int rc;
    switch (kind) {
    case KITH_MOP_REMOVE:
        rc = kith_room_remove(r->room, member, &op);
        break;
    case KITH_MOP_BAN:
        rc = kith_room_ban(r->room, member, &op);
        break;
    case KITH_MOP_UNBAN:
        rc = kith_room_unban(r->room, member, &op);
        break;
    case KITH_MOP_SET_ROLE:
        rc = kith_room_set_role(r->room, member, role, &op);
        break;
    case KITH_MOP_SET_TOPIC:
        rc = kith_room_set_topic(r->room, text, &op);
        break;
    case KITH_MOP_SET_NAME:
        rc = kith_room_set_name(r->room, text, &op);
        break;
    case KITH_MOP_REKEY:
        rc = kith_room_rekey(r->room, &op);
        break;
    case KITH_MOP_LEAVE:
        rc = kith_room_leave(r->room, &op);
        break;
    default:
        rc = KITH_EINVAL;
        break;
    }
    if (!rc)
        rc = node_publish_op(n, r, &op);
    kith_buf_free(&op);
    if (!rc) {
        node_refresh_dials(n);
        node_maybe_rekey(n, r, false);
    }
    return rc;
}

#define REKEY_FALLBACK_MS 30000

/* "Members may also rekey on a schedule": an admin's node gives the room a
 * fresh key when the current one is rekey_every_ms old. The admin due to
 * rekey (the smallest id) does it on time, the other admins an eighth of
 * the period later (spread by id) in case it is offline; concurrent rekeys
 * converge to one key (proto 5.4). The key's age comes from its op's
 * signed wall time; a time in our future (a wrong or lying clock) counts
 * from when we first saw the key, so nobody can postpone rekeys forever. */
static void scheduled_rekey(kith_node *n, nroom *r)
{
    if (n->rekey_every_ms == KITH_REKEY_NEVER || n->loading)
        return;
    const kith_member *me = kith_room_member(r->room, n->self->id_pk);
    if (!me || me->role != KITH_ROLE_ADMIN || !kith_room_current_key(r->room, NULL))
        return;
    uint64_t now = kith_wall_ms(n->env), since = kith_room_key_since(r->room);
    if (since > now)
        since = r->key_seen_wall;
    uint64_t every = n->rekey_every_ms, due = every;
    if (!we_rekey(n, r))
        due += every / 8 + (uint64_t)(me->id[0] % 31) * (every / 256 + 1);
    if (now < since || now - since < due || now < r->sched_retry_wall)
        return;
    int rc = rekey_now(n, r);
    if (rc) {
        r->sched_retry_wall = now + 3600 * 1000; /* e.g. too many members to seal to */
        KITH_LOGW(
            n->env, "scheduled rekey of %s failed: %s", kith_room_name(r->room), kith_strerror(rc));
    }
}

void node_membership_tick(kith_node *n, uint64_t now)
{
    for (size_t i = 0; i < n->nrooms; i++) {
        nroom *r = n->rooms[i];
        scheduled_rekey(n, r);
        const kith_member *me = kith_room_member(r->room, n->self->id_pk);
        if (!kith_room_needs_rekey(r->room) || !me || me->role < KITH_ROLE_MEMBER) {
            r->rekey_since_ms = 0;
            continue;
        }
        if (!r->rekey_since_ms) {
            r->rekey_since_ms = now ? now : 1;
            continue;
        }
        /* Spread the fallback over 30..60 s by member id, so that several
         * waiting members rarely rekey at once (if they do, it converges). */
        if (now - r->rekey_since_ms >= REKEY_FALLBACK_MS + (uint64_t)(me->id[0] % 31) * 1000) {
            r->rekey_since_ms = 0;
            node_maybe_rekey(n, r, true);
        }
    }
}

static int apply_one(
    kith_node *n, nroom *r, const uint8_t *op, size_t len, bool persist, bool notify)
{
    bool was_member = node_is_member(r, n->self->id_pk);
    int rc = kith_room_apply(r->room, op, len);
    if (rc)
        return rc;
    if (persist) {
        rc = node_persist_op(n, r, op, len);
        if (rc)
            KITH_LOGE(n->env, "could not log a membership op: %s", kith_strerror(rc));
    }
    node_refresh_tag(n, r);
    kith_op_info info;
    if (notify && kith_room_op_info(r->room, kith_room_op_count(r->room) - 1, &info) == 0) {
        notify_op(n, r, &info, was_member);
        if (was_member && !node_is_member(r, n->self->id_pk) && info.kind != KITH_OP_REMOVE)
            node_event_info(n, r, "you are no longer a member of %s", kith_room_name(r->room));
    }
    return 0;
}

int node_apply_op(kith_node *n, nroom *r, const uint8_t *op, size_t len, bool persist, bool notify)
{
    int rc = apply_one(n, r, op, len, persist, notify);
    if (rc == KITH_ENOENT)
        return hold_op(n, r, op, len);
    if (rc)
        return rc;
    /* A new op may be the missing parent of held ones. */
    bool progress = true;
    while (progress && r->nheld_ops) {
        progress = false;
        for (size_t i = 0; i < r->nheld_ops; i++) {
            int hrc = apply_one(n, r, r->held_ops[i], r->held_op_len[i], persist, notify);
            if (hrc == KITH_ENOENT)
                continue;
            kith_free(n->env, r->held_ops[i]);
            r->nheld_ops--;
            r->held_ops[i] = r->held_ops[r->nheld_ops];
            r->held_op_len[i] = r->held_op_len[r->nheld_ops];
            progress = true;
            break;
        }
    }
    if (!n->loading) {
        node_refresh_dials(n);
        node_maybe_rekey(n, r, false);
    }
    return 0;
}

/* ---- loading ---- */

typedef struct load_ctx {
    kith_node *n;
    kith_buf ops; /* sequence of (u32 len, bytes) */
    nroom *room; /* second pass: envelopes, replayed in place (not copied) */
    size_t rejected;
    kith_buf invites; /* (secret16, expires8) records */
    kith_buf used; /* invite ids, one per use */
    kith_buf revoked; /* invite ids */
    int bad;
} load_ctx;

static int append_item(kith_buf *b, const uint8_t *p, size_t len)
{
    uint8_t hdr[4];
    kith_put_be32(hdr, (uint32_t)len);
    int rc = kith_buf_append(b, hdr, 4);
    return rc ? rc : kith_buf_append(b, p, len);
}

static int load_rec(void *ud, const uint8_t *rec, size_t len)
{
    load_ctx *lc = ud;
    kith_node *n = lc->n;
    if (len < 1) {
        lc->bad++;
        return 0;
    }
    uint8_t kind = rec[0];
    if (kind == REC_ENVELOPE)
        return 0; /* the second pass, once the room is built */
    uint8_t *plain = kith_malloc(n->env, len);
    if (!plain)
        return KITH_ENOMEM;
    size_t plen = 0;
    int rc = kith_local_open(n->local_key, rec + 1, len - 1, plain, len, &plen);
    if (rc) {
        lc->bad++;
        kith_free(n->env, plain);
        return 0;
    }
    if (kind == REC_OP)
        rc = append_item(&lc->ops, plain, plen);
    else if (kind == REC_INVITE && (plen == INVITE_REC_OLD || plen == INVITE_REC_LEN))
        rc = append_item(&lc->invites, plain, plen);
    else if (kind == REC_INVITE_USED && plen == KITH_HASH_LEN)
        rc = kith_buf_append(&lc->used, plain, plen);
    else if (kind == REC_INVITE_REVOKED && plen == KITH_HASH_LEN)
        rc = kith_buf_append(&lc->revoked, plain, plen);
    else
        lc->bad++;
    sodium_memzero(plain, len);
    kith_free(n->env, plain);
    return rc;
}

static int next_item(const kith_buf *b, size_t *off, const uint8_t **p, size_t *len)
{
    if (*off + 4 > b->len)
        return 0;
    size_t l = kith_get_be32(b->data + *off);
    if (l > b->len - *off - 4)
        return 0;
    *p = b->data + *off + 4;
    *len = l;
    *off += 4 + l;
    return 1;
}

static int load_env(void *ud, uint64_t pos, const uint8_t *rec, size_t len)
{
    load_ctx *lc = ud;
    if (len < 2 || rec[0] != REC_ENVELOPE)
        return 0;
    lc->n->load_pos = pos;
    if (node_accept_envelope(lc->n, lc->room, rec + 1, len - 1, false, false))
        lc->rejected++;
    return 0;
}

static int build_room(kith_node *n, load_ctx *lc, const char *name)
{
    size_t off = 0, len;
    const uint8_t *p;
    if (!next_item(&lc->ops, &off, &p, &len)) {
        KITH_LOGW(n->env, "room log %s has no genesis: skipped", name);
        return 0;
    }
    kith_room *room;
    int rc = kith_room_open(n->env, n->self, p, len, &room);
    if (rc) {
        KITH_LOGW(n->env, "room log %s: bad genesis (%s): skipped", name, kith_strerror(rc));
        return 0;
    }
    nroom *r;
    char expect[33];
    log_name(n, kith_room_id(room), expect);
    if (strcmp(expect, name) != 0 || node_room_by_id(n, kith_room_id(room))) {
        KITH_LOGW(n->env, "room log %s does not belong to this identity: skipped", name);
        kith_room_free(room);
        return 0;
    }
    rc = node_room_add(n, room, &r);
    if (rc) {
        kith_room_free(room);
        return rc;
    }
    while (next_item(&lc->ops, &off, &p, &len)) {
        rc = node_apply_op(n, r, p, len, false, false);
        if (rc && rc != KITH_EEXIST)
            KITH_LOGW(n->env, "room %s: op in log rejected (%s)", kith_room_name(room),
                kith_strerror(rc));
    }
    off = 0;
    while (next_item(&lc->invites, &off, &p, &len)) {
        invite_st *s = kith_realloc(n->env, r->inv, (r->ninv + 1) * sizeof *s);
        if (!s)
            return KITH_ENOMEM;
        r->inv = s;
        s = &r->inv[r->ninv++];
        memset(s, 0, sizeof *s);
        memcpy(s->secret, p, KITH_INVITE_SECRET_LEN);
        s->expires_ms = kith_get_be64(p + KITH_INVITE_SECRET_LEN);
        s->uses = 1; /* records from before --uses */
        if (len == INVITE_REC_LEN) {
            s->uses = kith_get_be32(p + INVITE_REC_OLD);
            s->bound = p[INVITE_REC_OLD + 4] != 0;
            memcpy(s->for_id, p + INVITE_REC_OLD + 5, KITH_ID_LEN);
        }
        kith_invite_id(s->secret, s->id);
        for (size_t u = 0; u + KITH_HASH_LEN <= lc->used.len; u += KITH_HASH_LEN) {
            if (memcmp(lc->used.data + u, s->id, KITH_HASH_LEN) == 0)
                s->nused++;
        }
        s->used = s->nused >= s->uses;
        for (size_t u = 0; u + KITH_HASH_LEN <= lc->revoked.len; u += KITH_HASH_LEN) {
            if (memcmp(lc->revoked.data + u, s->id, KITH_HASH_LEN) == 0)
                s->revoked = true;
        }
    }
    /* Envelopes are read straight from the log, each with its position, so
     * start-up never holds the whole history in memory. */
    lc->room = r;
    rc = kith_store_read_at(n->store, name, load_env, lc);
    if (rc)
        KITH_LOGE(n->env, "could not read room log %s: %s", name, kith_strerror(rc));
    if (lc->rejected)
        KITH_LOGW(n->env, "room %s: %zu logged messages could not be read", kith_room_name(room),
            lc->rejected);
    kith_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = KITH_EV_ROOM;
    ev.history = true;
    node_room_event(n, &ev, r);
    node_push_event(n, &ev, NULL, 0);
    return 0;
}

static int load_log(void *ud, const char *name)
{
    kith_node *n = ud;
    load_ctx lc;
    memset(&lc, 0, sizeof lc);
    lc.n = n;
    kith_buf_init(&lc.ops, n->env, SIZE_MAX / 2);
    kith_buf_init(&lc.invites, n->env, SIZE_MAX / 2);
    kith_buf_init(&lc.used, n->env, SIZE_MAX / 2);
    kith_buf_init(&lc.revoked, n->env, SIZE_MAX / 2);
    int rc = kith_store_read(n->store, name, load_rec, &lc);
    if (rc)
        KITH_LOGE(n->env, "could not read room log %s: %s", name, kith_strerror(rc));
    else
        rc = build_room(n, &lc, name);
    if (lc.bad)
        KITH_LOGW(n->env, "room log %s: %d records could not be read", name, lc.bad);
    kith_buf_free(&lc.ops);
    kith_buf_free(&lc.invites);
    kith_buf_free(&lc.used);
    kith_buf_free(&lc.revoked);
    return rc;
}

typedef struct names {
    const kith_env *env;
    kith_buf buf; /* NUL-separated */
} names;

static int collect_name(void *ud, const char *name)
{
    names *nm = ud;
    return kith_buf_append(&nm->buf, name, strlen(name) + 1);
}

/* The store forbids reading a log from inside its listing, so list first. */
int node_load(kith_node *n)
{
    names nm = { n->env, { 0 } };
    kith_buf_init(&nm.buf, n->env, 1u << 20);
    int rc = kith_store_list(n->store, collect_name, &nm);
    for (size_t off = 0; !rc && off < nm.buf.len;) {
        const char *name = (const char *)nm.buf.data + off;
        off += strlen(name) + 1;
        rc = load_log(n, name);
    }
    kith_buf_free(&nm.buf);
    return rc;
}
