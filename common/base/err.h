/* Error codes shared by every module.
 *
 * Functions return 0 (LH_OK) or a negative LH_E* code; never 0 for failure.
 * LH_AGAIN is not an error: a resumable parser wants more bytes. */
#ifndef LH_ERR_H
#define LH_ERR_H

enum {
    LH_OK = 0,
    LH_AGAIN = -1,    /* need more input; call again with more bytes */
    LH_ENOMEM = -2,
    LH_EINVAL = -3,   /* bad argument or malformed input */
    LH_EPROTO = -4,   /* protocol violation (wrong frame, wrong handshake) */
    LH_ETOOBIG = -5,  /* a length or size over its cap */
    LH_EIO = -6,      /* system call failed; errno says more */
    LH_EAUTH = -7,    /* authentication failed (shared key, certificate) */
    LH_ETLS = -8,     /* OpenSSL failure */
    LH_ECONFIG = -9,  /* configuration invalid */
    LH_ENOENT = -10,  /* no such file or entry */
    LH_ECORRUPT = -11,/* stored data failed its checksum */
    LH_EEXIST = -12,
    LH_ETIMEDOUT = -13, /* a time budget ran out (search.query_timeout) */
};

/* Static description of an LH_E* code (never NULL). */
const char *lh_strerror(int code);

#endif
