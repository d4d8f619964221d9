#include "common/base/err.h"

const char *lh_strerror(int code)
{
    switch (code) {
    case LH_OK: return "ok";
    case LH_AGAIN: return "need more data";
    case LH_ENOMEM: return "out of memory";
    case LH_EINVAL: return "invalid input";
    case LH_EPROTO: return "protocol error";
    case LH_ETOOBIG: return "too large";
    case LH_EIO: return "I/O error";
    case LH_EAUTH: return "authentication failed";
    case LH_ETLS: return "TLS error";
    case LH_ECONFIG: return "invalid configuration";
    case LH_ENOENT: return "not found";
    case LH_ECORRUPT: return "corrupt data";
    case LH_EEXIST: return "already exists";
    case LH_ETIMEDOUT: return "timed out";
    default: return "unknown error";
    }
}
