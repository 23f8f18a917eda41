/* fuzz_wire: arbitrary bytes through the wire reader, with and without
 * KITH_WIRE_CANONICAL. Checks that the pre-scan and the parse agree, that
 * every str/bin/container span lies inside the input, and that a document
 * accepted as canonical re-encodes through the writer to the very same bytes
 * (canonical means exactly one encoding). Aborts on any disagreement. */
#include <stdio.h>
#include <stdlib.h>

#include "kith/env.h"
#include "wire/wire.h"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_wire: %s\n", what);
        abort();
    }
}

static void encode(const kith_wire_doc *doc, const kith_wire_node *n, kith_wire_writer *w)
{
    switch (n->type) {
    case KITH_WIRE_NIL:
        kith_wire_nil(w);
        break;
    case KITH_WIRE_BOOL:
        kith_wire_bool(w, n->u != 0);
        break;
    case KITH_WIRE_UINT:
        kith_wire_uint(w, n->u);
        break;
    case KITH_WIRE_INT:
        check(n->i < 0, "INT node holds a non-negative value");
        kith_wire_int(w, n->i);
        break;
    case KITH_WIRE_STR:
        kith_wire_str(w, (const char *)n->p, n->len);
        break;
    case KITH_WIRE_BIN:
        kith_wire_bin(w, n->p, n->len);
        break;
    case KITH_WIRE_ARRAY:
        kith_wire_array(w, n->n);
        for (size_t i = 0; i < n->n; i++)
            encode(doc, kith_wire_elem(doc, n, i), w);
        break;
    case KITH_WIRE_MAP:
        kith_wire_map(w, n->n);
        for (size_t i = 0; i < 2 * (size_t)n->n; i++)
            encode(doc, &doc->nodes[n->first + i], w);
        break;
    default:
        check(false, "unknown node type");
    }
}

static void check_spans(const kith_wire_doc *doc, const uint8_t *data, size_t size)
{
    check(doc->count >= 1 && doc->count <= KITH_WIRE_MAX_NODES, "node count out of range");
    for (size_t i = 0; i < doc->count; i++) {
        const kith_wire_node *n = &doc->nodes[i];
        if (n->type == KITH_WIRE_STR || n->type == KITH_WIRE_BIN || n->type == KITH_WIRE_ARRAY
            || n->type == KITH_WIRE_MAP) {
            check(n->len <= size, "span longer than input");
            if (n->len)
                check(n->p >= data && n->p + n->len <= data + size, "span outside input");
        }
        if (n->type == KITH_WIRE_ARRAY || n->type == KITH_WIRE_MAP) {
            size_t kids = n->type == KITH_WIRE_MAP ? 2 * (size_t)n->n : n->n;
            check(n->first <= doc->count && kids <= doc->count - n->first, "children out of range");
        }
    }
    const kith_wire_node *r = kith_wire_root(doc);
    if (r->type == KITH_WIRE_ARRAY || r->type == KITH_WIRE_MAP)
        check(r->p == data && r->len == size, "root span is not the whole input");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kith_wire_doc *doc;
    static kith_env env;
    if (!doc) {
        kith_env_init_real(&env);
        env.log_level = KITH_LOG_ERROR;
        doc = calloc(1, sizeof *doc); /* kept for the whole run: ~200 KiB */
        if (!doc)
            abort();
    }

    for (unsigned flags = 0; flags <= KITH_WIRE_CANONICAL; flags++) {
        int pre = kith_wire_prescan(data, size, KITH_WIRE_MAX_FRAME, flags);
        int rc = kith_wire_parse(&env, data, size, KITH_WIRE_MAX_FRAME, flags, doc);
        check(rc == pre || rc == KITH_ENOMEM, "parse and prescan disagree");
        if (rc) {
            check(doc->count == 0, "failed parse left nodes");
            continue;
        }
        check_spans(doc, data, size);
        if (!(flags & KITH_WIRE_CANONICAL))
            continue;

        kith_buf out;
        kith_buf_init(&out, &env, KITH_WIRE_MAX_FRAME);
        kith_wire_writer w;
        kith_wire_writer_init(&w, &out);
        encode(doc, kith_wire_root(doc), &w);
        check(kith_wire_finish(&w) == 0, "writer failed on a canonical document");
        check(out.len == size && memcmp(out.data, data, size) == 0,
            "canonical input did not re-encode to the same bytes");
        kith_buf_free(&out);

        /* Canonical input is also accepted without the flag, with the same tree. */
        size_t count = doc->count;
        check(kith_wire_parse(&env, data, size, KITH_WIRE_MAX_FRAME, 0, doc) == 0,
            "canonical input refused without the flag");
        check(doc->count == count, "node count depends on the flag");
    }
    return 0;
}
