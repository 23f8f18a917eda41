/* fuzz_names: arbitrary bytes as the chosen names of up to 8 people (one
 * per line, cut to KITH_NICK_MAX bytes as the node keeps them) through
 * kith_nick_skeleton and kith_display_names. Checks the rule of proto 5.7:
 * every display name fits, no two are equal, and a '~' in one is followed
 * only by digits of that person's own fingerprint. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "room/room.h"
#include "util/util.h"

#include "fuzzenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PEOPLE 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char nick[PEOPLE][KITH_NICK_MAX + 1];
    const char *nicks[PEOPLE];
    uint8_t ids[PEOPLE][KITH_ID_LEN];
    size_t count = 0, i = 0;
    while (count < PEOPLE && i <= size) {
        size_t st = i;
        while (i < size && data[i] != '\n')
            i++;
        size_t n = KITH_MIN(i - st, (size_t)KITH_NICK_MAX);
        memcpy(nick[count], data + st, n);
        nick[count][n] = '\0'; /* an embedded NUL just ends the name */
        nicks[count] = nick[count];
        memset(ids[count], 0, KITH_ID_LEN);
        ids[count][0] = (uint8_t)count;
        count++;
        i++;
    }
    char skel[KITH_NICK_MAX * 4 + 1];
    for (size_t k = 0; k < count; k++)
        if (kith_nick_skeleton(nicks[k], skel, sizeof skel) != strlen(skel))
            abort();
    char out[PEOPLE][KITH_DISPLAY_MAX + 1];
    if (kith_display_names(&fuzz_env, count, (const uint8_t(*)[KITH_ID_LEN])ids, nicks, out) != 0)
        abort();
    for (size_t k = 0; k < count; k++) {
        if (strnlen(out[k], KITH_DISPLAY_MAX + 1) > KITH_DISPLAY_MAX)
            abort();
        const char *t = strchr(out[k], '~');
        if (t) {
            char fpr[KITH_FPR_STRLEN], digits[KITH_FPR_STRLEN];
            kith_fingerprint(ids[k], fpr);
            size_t d = 0;
            for (size_t j = 0; fpr[j]; j++)
                if (fpr[j] != '-')
                    digits[d++] = fpr[j];
            digits[d] = '\0';
            size_t sl = strlen(t + 1);
            if (sl < KITH_FPR_SUFFIX_MIN || strncmp(t + 1, digits, sl) != 0)
                abort();
        }
        for (size_t j = 0; j < k; j++)
            if (strcmp(out[j], out[k]) == 0)
                abort();
    }
    return 0;
}
