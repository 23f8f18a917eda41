/* fuzz_ircline: arbitrary bytes to the IRC gateway's line parser, and the
 * name mappings applied to whatever it parsed. Checks the parser's own
 * promises: pointers stay inside the input, at most 15 params, the command
 * is upper-case letters and digits; the mappings always give a NUL-ended
 * name within their caps that starts with '#' (channels). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/irc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_in(const char *base, size_t size, const char *p, size_t n)
{
    if (p && (p < base || p + n > base + size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > KITH_IRC_LINE_MAX + 64)
        return 0;
    const char *s = (const char *)data;
    kith_irc_msg m;
    if (kith_irc_parse(s, size, &m) == 0) {
        if (m.nparams > KITH_IRC_PARAMS_MAX || !m.command[0])
            abort();
        for (const char *c = m.command; *c; c++)
            if (!((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
                abort();
        check_in(s, size, m.tags, m.tags_len);
        check_in(s, size, m.prefix, m.prefix_len);
        for (size_t i = 0; i < m.nparams; i++) {
            check_in(s, size, m.params[i], m.param_len[i]);
            char name[KITH_IRC_LINE_MAX + 1];
            size_t n = m.param_len[i];
            memcpy(name, m.params[i], n);
            name[n] = '\0';
            uint8_t id[KITH_ROOM_ID_LEN] = { 1 };
            char out[KITH_IRC_CHAN_MAX + 16];
            size_t l = kith_irc_channel(name, id, out, sizeof out);
            if (l == 0 || l > KITH_IRC_CHAN_MAX || out[0] != '#' || strlen(out) != l)
                abort();
            for (size_t k = 0; k < l; k++)
                if ((unsigned char)out[k] <= 0x20 || out[k] == ',' || out[k] == 0x7f)
                    abort();
            l = kith_irc_nick(name, out, sizeof out);
            if (l == 0 || l > KITH_IRC_NICK_MAX || strlen(out) != l)
                abort();
            (void)kith_irc_name_eq(name, n, out, l);
        }
    }
    return 0;
}
