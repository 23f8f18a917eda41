/* kith error codes. Every fallible function returns 0 or one of these
 * negative values; kith_strerror() turns one into words for people. */
#ifndef KITH_ERR_H
#define KITH_ERR_H

#define KITH_WUR __attribute__((warn_unused_result))

typedef enum kith_err {
    KITH_OK = 0,
    KITH_ENOMEM = -1, /* allocation failed */
    KITH_EINVAL = -2, /* bad argument or user input */
    KITH_EPROTO = -3, /* malformed bytes from the network or disk */
    KITH_ETOOBIG = -4, /* a length is over its cap */
    KITH_ECRYPTO = -5, /* authentication, signature or key check failed */
    KITH_ENOENT = -6, /* no such thing (room, member, file, record) */
    KITH_EEXIST = -7, /* already there (duplicate message, room, member) */
    KITH_EIO = -8, /* the operating system refused a read, write or sync */
    KITH_ESTATE = -9, /* called in the wrong state (poisoned session, closed node) */
    KITH_EAGAIN = -10, /* need more bytes or time */
    KITH_EPERM = -11, /* not allowed (role, invite expired or used) */
    KITH_EREPLAY = -12, /* replayed or equivocating message */
    KITH_ENONCANON = -13, /* signed structure not in canonical encoding */
    KITH_EEXPIRED = -14, /* invite or record past its expiry */
    KITH_EPASS = -15, /* wrong passphrase */
} kith_err;

const char *kith_strerror(int err);

#endif
