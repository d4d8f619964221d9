/* gzip for Forward's CompressedPackedForward mode (zlib): one member out,
 * any number of members back to back in, inflated output capped. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/base/err.h"
#include "common/codec/forward.h"

/* ---- gzip --------------------------------------------------------------- */

/* zlib counts in uInt; feed size_t buffers in pieces. */
static void z_feed(z_stream *zs, size_t *in_left)
{
    size_t n;

    if (zs->avail_in != 0 || *in_left == 0)
        return;
    n = *in_left < UINT_MAX ? *in_left : UINT_MAX;
    zs->avail_in = (uInt)n;
    *in_left -= n;
}

static uInt z_room(size_t n)
{
    return (uInt)(n < UINT_MAX ? n : UINT_MAX);
}

/* Level 1: the agent compresses on every server it runs on, and log text
 * is so repetitive that level 1 keeps most of level 6's ratio at several
 * times the speed. */
#define LH_GZIP_LEVEL 1

int lh_gzip(const void *in, size_t len, char **out, size_t *out_len)
{
    z_stream zs;
    size_t in_left = len, cap;
    char *buf = NULL;
    int zrc, rc = LH_ENOMEM;

    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, LH_GZIP_LEVEL, Z_DEFLATED, MAX_WBITS + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return LH_ENOMEM;
    cap = deflateBound(&zs, len);
    buf = malloc(cap);
    if (buf == NULL)
        goto fail;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.next_out = (Bytef *)buf;
    for (;;) {
        z_feed(&zs, &in_left);
        if (zs.avail_out == 0)
            zs.avail_out = z_room(cap - (size_t)((char *)zs.next_out - buf));
        zrc = deflate(&zs, in_left == 0 ? Z_FINISH : Z_NO_FLUSH);
        if (zrc == Z_STREAM_END)
            break;
        if ((zrc != Z_OK && zrc != Z_BUF_ERROR) ||
            (zs.avail_out == 0 && (size_t)((char *)zs.next_out - buf) == cap)) {
            rc = LH_EIO; /* past deflateBound: not expected */
            goto fail;
        }
    }
    *out_len = (size_t)((char *)zs.next_out - buf);
    *out = buf;
    deflateEnd(&zs);
    return 0;
fail:
    free(buf);
    deflateEnd(&zs);
    return rc;
}

/* Makes room for more output, never past max + 1 bytes: producing that
 * last byte is how an over-cap payload is detected. */
static int gunzip_grow(z_stream *zs, char **buf, size_t *cap, size_t max, size_t in_len)
{
    size_t used = (size_t)((char *)zs->next_out - *buf);
    size_t limit = max < SIZE_MAX ? max + 1 : SIZE_MAX;
    size_t want;
    char *nb;

    if (*cap == 0)
        want = in_len < SIZE_MAX / 4 && in_len * 4 > 4096 ? in_len * 4 : 4096;
    else
        want = *cap < SIZE_MAX / 2 ? *cap * 2 : SIZE_MAX;
    if (want > limit)
        want = limit;
    if (want <= used)
        return LH_ETOOBIG;
    nb = realloc(*buf, want);
    if (nb == NULL)
        return LH_ENOMEM;
    *buf = nb;
    *cap = want;
    zs->next_out = (Bytef *)(nb + used);
    zs->avail_out = z_room(want - used);
    return 0;
}

/* Runs inflate over every member; 0 when the input ended on a member end. */
static int gunzip_run(z_stream *zs, size_t in_left, char **buf, size_t *cap, size_t max,
                      size_t len)
{
    int zrc, rc;

    for (;;) {
        z_feed(zs, &in_left);
        if (zs->avail_out == 0 && (rc = gunzip_grow(zs, buf, cap, max, len)) != 0)
            return rc;
        zrc = inflate(zs, Z_NO_FLUSH);
        if (zrc == Z_STREAM_END) {
            if (zs->avail_in == 0 && in_left == 0)
                return 0;
            if (inflateReset(zs) != Z_OK)
                return LH_EPROTO;
        } else if (zrc == Z_MEM_ERROR) {
            return LH_ENOMEM;
        } else if (zrc != Z_OK && !(zrc == Z_BUF_ERROR && zs->avail_out == 0)) {
            return LH_EPROTO; /* corrupt, or input ends inside a member */
        }
    }
}

int lh_gunzip(const void *in, size_t len, size_t max, char **out, size_t *out_len)
{
    z_stream zs;
    char *buf = NULL;
    size_t cap = 0, used;
    int rc;

    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, MAX_WBITS + 16) != Z_OK)
        return LH_ENOMEM;
    zs.next_in = (Bytef *)(uintptr_t)in;
    rc = gunzip_run(&zs, len, &buf, &cap, max, len);
    inflateEnd(&zs);
    used = buf != NULL ? (size_t)((char *)zs.next_out - buf) : 0;
    if (rc == 0 && used > max)
        rc = LH_ETOOBIG;
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = used;
    return 0;
}
