/* Writes msgpack straight into a msgpack_sbuffer, for the agent's
 * per-record hot path. msgpack_packer sends every header and value through
 * an indirect callback and a small memcpy; here a writer reserves room for
 * a whole record once (an upper bound) and then stores bytes through a
 * cursor with inline functions.
 *
 * The bytes are exactly those msgpack-c's packer writes for the same
 * values (the smallest encoding it picks), so records packed either way
 * compare equal and the collector, chunk checksums and tests see no
 * difference.
 *
 * Usage: p = lh_mpw_reserve(sb, bound); p = lh_mpw_...(p, ...); ...;
 * lh_mpw_commit(sb, p). Nothing between reserve and commit may touch sb. */
#ifndef LH_COMMON_MPWRITE_H
#define LH_COMMON_MPWRITE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/util.h"

/* Upper bounds of what one call writes, for sizing a reservation. */
#define LH_MPW_HDR_MAX 5        /* str, map or array header */
#define LH_MPW_SCALAR_MAX 9     /* int, uint, double, bool, nil */
#define LH_MPW_EVENT_TIME_LEN 10

/* Out of line: growing is rare once a buffer has reached its working size. */
__attribute__((noinline, unused)) static char *lh_mpw_grow(msgpack_sbuffer *sb, size_t n)
{
    if (n > SIZE_MAX - sb->size)
        return NULL;
    size_t want = sb->size + n;
    /* Doubling as msgpack_sbuffer_write does, so the copies stay amortised. */
    size_t cap = sb->alloc ? sb->alloc : MSGPACK_SBUFFER_INIT_SIZE;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    char *d = realloc(sb->data, cap);
    if (!d)
        return NULL;
    sb->data = d;
    sb->alloc = cap;
    return d + sb->size;
}

/* Room for n (> 0) more bytes after sb->size: the cursor to write them
 * at, or NULL (size overflow, ENOMEM; sb is then unchanged). sb->size
 * moves only at lh_mpw_commit. */
static inline char *lh_mpw_reserve(msgpack_sbuffer *sb, size_t n)
{
    if (sb->alloc - sb->size >= n)
        return sb->data + sb->size;
    return lh_mpw_grow(sb, n);
}

/* Takes the bytes written up to cursor p into sb. */
static inline void lh_mpw_commit(msgpack_sbuffer *sb, const char *p)
{
    sb->size = (size_t)(p - sb->data);
}

static inline char *lh_mpw_be16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
    return p + 2;
}

static inline char *lh_mpw_be32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
    return p + 4;
}

static inline char *lh_mpw_be64(char *p, uint64_t v)
{
    return lh_mpw_be32(lh_mpw_be32(p, (uint32_t)(v >> 32)), (uint32_t)v);
}

static inline char *lh_mpw_tag8(char *p, unsigned char tag, uint8_t v)
{
    p[0] = (char)tag;
    p[1] = (char)v;
    return p + 2;
}

static inline char *lh_mpw_tag16(char *p, unsigned char tag, uint16_t v)
{
    *p = (char)tag;
    return lh_mpw_be16(p + 1, v);
}

static inline char *lh_mpw_tag32(char *p, unsigned char tag, uint32_t v)
{
    *p = (char)tag;
    return lh_mpw_be32(p + 1, v);
}

static inline char *lh_mpw_tag64(char *p, unsigned char tag, uint64_t v)
{
    *p = (char)tag;
    return lh_mpw_be64(p + 1, v);
}

/* Lengths past 32 bits are cut to 32 as msgpack-c does; nothing the agent
 * packs comes near (lines are capped by max_line). */
static inline char *lh_mpw_str_hdr(char *p, size_t n)
{
    if (n < 32) {
        *p = (char)(0xa0 | n);
        return p + 1;
    }
    if (n < 256)
        return lh_mpw_tag8(p, 0xd9, (uint8_t)n);
    if (n < 65536)
        return lh_mpw_tag16(p, 0xda, (uint16_t)n);
    return lh_mpw_tag32(p, 0xdb, (uint32_t)n);
}

static inline char *lh_mpw_str(char *p, const char *s, size_t n)
{
    p = lh_mpw_str_hdr(p, n);
    memcpy(p, s, n);
    return p + n;
}

/* Bytes that are msgpack already. */
static inline char *lh_mpw_raw(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static inline char *lh_mpw_map_hdr(char *p, size_t n)
{
    if (n < 16) {
        *p = (char)(0x80 | n);
        return p + 1;
    }
    if (n < 65536)
        return lh_mpw_tag16(p, 0xde, (uint16_t)n);
    return lh_mpw_tag32(p, 0xdf, (uint32_t)n);
}

static inline char *lh_mpw_array_hdr(char *p, size_t n)
{
    if (n < 16) {
        *p = (char)(0x90 | n);
        return p + 1;
    }
    if (n < 65536)
        return lh_mpw_tag16(p, 0xdc, (uint16_t)n);
    return lh_mpw_tag32(p, 0xdd, (uint32_t)n);
}

static inline char *lh_mpw_uint(char *p, uint64_t v)
{
    if (v < 128) {
        *p = (char)v;
        return p + 1;
    }
    if (v < 256)
        return lh_mpw_tag8(p, 0xcc, (uint8_t)v);
    if (v < 65536)
        return lh_mpw_tag16(p, 0xcd, (uint16_t)v);
    if (v <= UINT32_MAX)
        return lh_mpw_tag32(p, 0xce, (uint32_t)v);
    return lh_mpw_tag64(p, 0xcf, v);
}

/* msgpack_pack_int64's choice: non-negative values as unsigned, negative
 * fixint down to -32, then the smallest signed width. */
static inline char *lh_mpw_int(char *p, int64_t v)
{
    if (v >= 0)
        return lh_mpw_uint(p, (uint64_t)v);
    if (v >= -32) {
        *p = (char)(uint8_t)v;
        return p + 1;
    }
    if (v >= INT8_MIN)
        return lh_mpw_tag8(p, 0xd0, (uint8_t)v);
    if (v >= INT16_MIN)
        return lh_mpw_tag16(p, 0xd1, (uint16_t)v);
    if (v >= INT32_MIN)
        return lh_mpw_tag32(p, 0xd2, (uint32_t)v);
    return lh_mpw_tag64(p, 0xd3, (uint64_t)v);
}

/* Always float 64, as msgpack_pack_double. */
static inline char *lh_mpw_double(char *p, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return lh_mpw_tag64(p, 0xcb, bits);
}

static inline char *lh_mpw_bool(char *p, bool b)
{
    *p = (char)(b ? 0xc3 : 0xc2);
    return p + 1;
}

static inline char *lh_mpw_nil(char *p)
{
    *p = (char)0xc0;
    return p + 1;
}

/* Fluent EventTime, the bytes lh_pack_time writes: fixext 8 of type 0,
 * be32 seconds, be32 nanoseconds. NULL when ns is before 1970 or past
 * 2106 (the seconds are unsigned 32-bit). */
static inline char *lh_mpw_event_time(char *p, int64_t ns)
{
    if (ns < 0 || ns / LH_NS_PER_SEC > (int64_t)UINT32_MAX)
        return NULL;
    p[0] = (char)0xd7;
    p[1] = 0;
    p = lh_mpw_be32(p + 2, (uint32_t)(ns / LH_NS_PER_SEC));
    return lh_mpw_be32(p, (uint32_t)(ns % LH_NS_PER_SEC));
}

#endif
