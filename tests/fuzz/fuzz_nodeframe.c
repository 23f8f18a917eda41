/* Fuzz target: the node protocol frame decoder (src/node/frame.c), and the
 * accessors for JOIN_OK op lists and SYNC vectors, on arbitrary bytes. */
#include <stdlib.h>

#include "fuzzenv.h"
#include "node/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kith_wire_doc *doc;
    kith_env env = fuzz_env;
    if (!doc)
        doc = malloc(sizeof *doc);
    kith_frame f;
    if (kith_frame_decode(&env, data, size, doc, &f) != 0)
        return 0;
    for (size_t i = 0; i < f.count; i++) {
        const uint8_t *op;
        size_t len;
        uint8_t author[32];
        uint64_t seq;
        if (f.type == KITH_FR_JOIN_OK && kith_frame_op_at(&f, i, &op, &len) == 0
            && len > KITH_OP_MAX)
            abort();
        if (f.type == KITH_FR_SYNC && kith_frame_vec_at(&f, i, author, &seq) != 0)
            break;
    }
    if (f.type == KITH_FR_ADDR) {
        /* The record inside: parse and verify (a fuzzed signature fails). */
        static kith_wire_doc *doc2;
        if (!doc2)
            doc2 = malloc(sizeof *doc2);
        kith_addr_rec rec;
        if (kith_addr_verify(&env, f.data, f.len, f.cert, FUZZ_NOW_MS, doc2, &rec) == 0
            && (!rec.addr[0] || rec.expires_ms <= rec.issued_ms
                || rec.expires_ms - rec.issued_ms > KITH_ADDR_TTL_MAX))
            abort();
    }
    if ((f.type == KITH_FR_OP && f.len > KITH_OP_MAX)
        || (f.type == KITH_FR_MSG && f.len > KITH_MSG_MAX_ENVELOPE)
        || strlen(f.nick) > KITH_NICK_MAX || strlen(f.addr) > KITH_ADDR_MAX)
        abort();
    return 0;
}
