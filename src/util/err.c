/* util/err: words for kith's error codes, for people reading a log or a
 * client error line. */
#include "kith/err.h"

const char *kith_strerror(int err)
{
    switch (err) {
    case KITH_OK:
        return "success";
    case KITH_ENOMEM:
        return "out of memory";
    case KITH_EINVAL:
        return "invalid argument";
    case KITH_EPROTO:
        return "malformed data";
    case KITH_ETOOBIG:
        return "too large";
    case KITH_ECRYPTO:
        return "authentication failed";
    case KITH_ENOENT:
        return "not found";
    case KITH_EEXIST:
        return "already exists";
    case KITH_EIO:
        return "input/output error";
    case KITH_ESTATE:
        return "invalid state";
    case KITH_EAGAIN:
        return "try again";
    case KITH_EPERM:
        return "not permitted";
    case KITH_EREPLAY:
        return "replayed message";
    case KITH_ENONCANON:
        return "non-canonical encoding";
    case KITH_EEXPIRED:
        return "expired";
    case KITH_EPASS:
        return "wrong passphrase";
    }
    return "unknown error";
}
