#include "collector/store/segread.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common/base/err.h"
#include "common/codec/forward.h"
#include "common/codec/record.h"

/* Every batch payload the store writes starts with these bytes (a map of
 * three, then the key "chunk"); the search for the next record after
 * damage looks for them right after a header. */
#define BATCH_SIG "\x83\xa5" "chunk"
#define BATCH_SIG_LEN 7
#define RESYNC_WINDOW 8192

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* LH_AGAIN when the file ends first. */
static int read_full(int fd, void *buf, size_t len, int64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + (int64_t)done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return LH_EIO;
        if (n == 0)
            return LH_AGAIN;
        done += (size_t)n;
    }
    return LH_OK;
}

/* Whether a checksum-valid record starts at off (its payload then in
 * *c->buf, its length in *len). LH_ECORRUPT when not; LH_EIO, LH_ENOMEM. */
static int valid_at(struct lh_seg_cursor *c, int64_t off, uint32_t *len)
{
    uint8_t hdr[LH_SEG_HEADER];
    *len = 0;
    if (c->size - off < LH_SEG_HEADER)
        return LH_ECORRUPT;
    int rc = read_full(c->fd, hdr, sizeof hdr, off);
    if (rc != LH_OK)
        return rc == LH_AGAIN ? LH_ECORRUPT : rc;
    *len = get_be32(hdr);
    if (*len == 0 || *len > LH_STORE_MAX_RECORD || *len > c->size - off - LH_SEG_HEADER)
        return LH_ECORRUPT;
    if (*len > *c->cap) {
        uint8_t *g = realloc(*c->buf, *len);
        if (!g)
            return LH_ENOMEM;
        *c->buf = g;
        *c->cap = *len;
    }
    rc = read_full(c->fd, *c->buf, *len, off + LH_SEG_HEADER);
    if (rc != LH_OK)
        return rc == LH_AGAIN ? LH_ECORRUPT : rc;
    return crc32(crc32(0L, Z_NULL, 0), *c->buf, *len) == get_be32(hdr + 4) ? LH_OK
                                                                             : LH_ECORRUPT;
}

/* The first checksum-valid record starting at or after from, found by its
 * payload's first bytes. LH_AGAIN when there is none. */
static int resync(struct lh_seg_cursor *c, int64_t from, int64_t *at, uint32_t *len)
{
    uint8_t win[RESYNC_WINDOW];
    int64_t pos = from + LH_SEG_HEADER; /* file offset of win[0] */
    while (c->size - pos >= BATCH_SIG_LEN) {
        size_t n = c->size - pos < (int64_t)sizeof win ? (size_t)(c->size - pos) : sizeof win;
        int rc = read_full(c->fd, win, n, pos);
        if (rc != LH_OK)
            return rc;
        const uint8_t *p = win;
        while ((p = memmem(p, n - (size_t)(p - win), BATCH_SIG, BATCH_SIG_LEN)) != NULL) {
            *at = pos + (p - win) - LH_SEG_HEADER;
            rc = valid_at(c, *at, len);
            if (rc != LH_ECORRUPT)
                return rc;
            p++;
        }
        /* The windows overlap so that a signature across a border is seen. */
        pos += (int64_t)(n - (BATCH_SIG_LEN - 1));
    }
    return LH_AGAIN;
}

int lh_seg_next(struct lh_seg_cursor *c, struct lh_seg_record *r)
{
    int64_t start = c->off, at = start;
    uint32_t len;
    if (start >= c->size)
        return LH_AGAIN;
    int rc = valid_at(c, start, &len);
    /* Not the bad record's length but a search finds what follows it: a
     * length pointing past a valid record would hide that record. */
    if (rc == LH_ECORRUPT)
        rc = resync(c, start + 1, &at, &len);
    if (rc != LH_OK)
        return rc;
    *r = (struct lh_seg_record){.off = at, .damaged_off = start, .damaged = at - start,
                                .payload = *c->buf, .len = len};
    c->off = at + LH_SEG_HEADER + (int64_t)len;
    return LH_OK;
}

/* ---- batches ------------------------------------------------------------ */

/* Unpacks exactly p[0..n) (one object whose extent is known) into zone. */
static int unpack_exact(const uint8_t *p, size_t n, msgpack_zone *zone, msgpack_object *o)
{
    size_t used = 0;
    if (msgpack_unpack((const char *)p, n, &used, zone, o) != MSGPACK_UNPACK_SUCCESS ||
        used != n)
        return LH_ECORRUPT;
    return LH_OK;
}

/* msgpack-c reads whole objects only; the events array is walked by
 * hand, so its header is read here. */
static int array_head(const uint8_t *p, size_t n, uint32_t *count, size_t *hdr)
{
    if (n >= 1 && (p[0] & 0xf0) == 0x90) {
        *count = p[0] & 0x0f;
        *hdr = 1;
    } else if (n >= 3 && p[0] == 0xdc) {
        *count = (uint32_t)p[1] << 8 | p[2];
        *hdr = 3;
    } else if (n >= 5 && p[0] == 0xdd) {
        *count = get_be32(p + 1);
        *hdr = 5;
    } else {
        return LH_ECORRUPT;
    }
    return LH_OK;
}

static bool key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

/* One head entry other than events; unknown keys are passed over. */
static int head_value(struct lh_batch *b, const msgpack_object *k, const msgpack_object *v,
                      bool *have_recv)
{
    if (key_is(k, "recv")) {
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
            v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return LH_ECORRUPT;
        b->recv_ns = v->via.i64;
        *have_recv = true;
    } else if (key_is(k, "chunk") && v->type != MSGPACK_OBJECT_NIL) {
        /* msgpack-c points strings into the payload, not the zone. */
        if (!lh_obj_bytes(v, &b->chunk, &b->chunk_len))
            return LH_ECORRUPT;
    }
    return LH_OK;
}

int lh_batch_open(struct lh_batch *b, const uint8_t *p, size_t len, msgpack_zone *zone)
{
    uint64_t n;
    size_t off, hdr;
    bool have_recv = false;
    memset(b, 0, sizeof *b);
    msgpack_zone_clear(zone);
    if (lh_mp_map_head((const char *)p, len, &n, &off) != 0)
        return LH_ECORRUPT;
    for (uint64_t i = 0; i < n; i++) {
        msgpack_object k, v;
        size_t kl = lh_mp_extent(p + off, len - off);
        if (kl == 0 || unpack_exact(p + off, kl, zone, &k) != LH_OK)
            return LH_ECORRUPT;
        off += kl;
        if (key_is(&k, "events")) {
            if (i + 1 != n || !have_recv || array_head(p + off, len - off, &b->n_events, &hdr))
                return LH_ECORRUPT;
            b->p = p + off + hdr;
            b->len = len - off - hdr;
            return LH_OK;
        }
        size_t vl = lh_mp_extent(p + off, len - off);
        if (vl == 0 || unpack_exact(p + off, vl, zone, &v) != LH_OK ||
            head_value(b, &k, &v, &have_recv) != LH_OK)
            return LH_ECORRUPT;
        off += vl;
    }
    return LH_ECORRUPT;
}

static int decode_event(const msgpack_object *e, struct lh_store_event *ev)
{
    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 3)
        return LH_ECORRUPT;
    const msgpack_object *a = e->via.array.ptr;
    if (!lh_obj_bytes(&a[0], &ev->tag, &ev->tag_len) ||
        lh_time_from_obj(&a[1], &ev->time_ns) != LH_OK || a[2].type != MSGPACK_OBJECT_MAP)
        return LH_ECORRUPT;
    ev->fields = &a[2];
    return LH_OK;
}

int lh_batch_next(struct lh_batch *b, msgpack_zone *zone, struct lh_store_event *ev,
                  uint32_t *lost)
{
    if (b->done == b->n_events)
        return LH_AGAIN;
    const uint8_t *p = b->p + b->off;
    size_t e, left = b->len - b->off;
    int rc = lh_mp_walk(p, left, LH_MP_MAX_DEPTH, &e);
    /* Too deep to decode, its end may still be found: the events after it
     * are read. */
    if (rc == LH_ETOOBIG)
        rc = lh_mp_walk(p, left, LH_MP_WALK_MAX, &e) == 0 ? LH_ECORRUPT : LH_ETOOBIG;
    if (rc != LH_OK && rc != LH_ECORRUPT) {
        *lost = b->n_events - b->done;
        b->done = b->n_events;
        return LH_ECORRUPT;
    }
    b->off += e;
    b->done++;
    *lost = 1;
    if (rc != LH_OK)
        return rc;
    msgpack_zone_clear(zone);
    msgpack_object o;
    ev->bytes = e;
    return unpack_exact(p, e, zone, &o) == LH_OK ? decode_event(&o, ev) : LH_ECORRUPT;
}
