/* Fluent Forward v1: frame scanner, event decoding, PackedForward encoding,
 * chunk ids and acks. The handshake is in forward_handshake.c, gzip in
 * forward_gzip.c. */
#include "common/codec/forward.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/record.h"

/* ---- frame scanner ------------------------------------------------------ */

enum mp_kind { MP_FIXED, MP_BYTES, MP_ARRAY, MP_MAP };

/* What one msgpack header announces. */
struct mp_head {
    size_t hdr;        /* header bytes, length field and ext type included */
    unsigned lenw;     /* width of the big-endian length field at offset 1 */
    enum mp_kind kind;
    uint64_t payload;  /* bytes after the header */
    uint64_t children; /* objects nested inside */
};

static void head_set(struct mp_head *h, size_t hdr, unsigned lenw, enum mp_kind kind,
                     uint64_t n)
{
    h->hdr = hdr;
    h->lenw = lenw;
    h->kind = kind;
    h->payload = kind == MP_FIXED || kind == MP_BYTES ? n : 0;
    h->children = kind == MP_ARRAY ? n : kind == MP_MAP ? 2 * n : 0;
}

/* Types whose first byte alone says everything but the length field. */
static int classify_c0(uint8_t b, struct mp_head *h)
{
    static const uint8_t fixed[0x20] = {
        [0xc0 - 0xc0] = 1, [0xc2 - 0xc0] = 1, [0xc3 - 0xc0] = 1, [0xca - 0xc0] = 5,
        [0xcb - 0xc0] = 9, [0xcc - 0xc0] = 2, [0xcd - 0xc0] = 3, [0xce - 0xc0] = 5,
        [0xcf - 0xc0] = 9, [0xd0 - 0xc0] = 2, [0xd1 - 0xc0] = 3, [0xd2 - 0xc0] = 5,
        [0xd3 - 0xc0] = 9,
    };
    static const uint8_t w124[] = {1, 2, 4};

    if (b >= 0xc4 && b <= 0xc6) /* bin 8/16/32 */
        head_set(h, 1 + w124[b - 0xc4], w124[b - 0xc4], MP_BYTES, 0);
    else if (b >= 0xc7 && b <= 0xc9) /* ext 8/16/32: length, then type */
        head_set(h, 2 + w124[b - 0xc7], w124[b - 0xc7], MP_BYTES, 0);
    else if (b >= 0xd4 && b <= 0xd8) /* fixext 1/2/4/8/16 */
        head_set(h, 2, 0, MP_FIXED, 1u << (b - 0xd4));
    else if (b >= 0xd9 && b <= 0xdb) /* str 8/16/32 */
        head_set(h, 1 + w124[b - 0xd9], w124[b - 0xd9], MP_BYTES, 0);
    else if (b == 0xdc || b == 0xdd)
        head_set(h, b == 0xdc ? 3 : 5, b == 0xdc ? 2 : 4, MP_ARRAY, 0);
    else if (b == 0xde || b == 0xdf)
        head_set(h, b == 0xde ? 3 : 5, b == 0xde ? 2 : 4, MP_MAP, 0);
    else if (fixed[b - 0xc0] != 0)
        head_set(h, fixed[b - 0xc0], 0, MP_FIXED, 0);
    else
        return LH_EINVAL; /* 0xc1, never used */
    return 0;
}

static int classify(uint8_t b, struct mp_head *h)
{
    if (b <= 0x7f || b >= 0xe0)
        head_set(h, 1, 0, MP_FIXED, 0);
    else if (b <= 0x8f)
        head_set(h, 1, 0, MP_MAP, b & 0x0f);
    else if (b <= 0x9f)
        head_set(h, 1, 0, MP_ARRAY, b & 0x0f);
    else if (b <= 0xbf)
        head_set(h, 1, 0, MP_BYTES, b & 0x1f);
    else
        return classify_c0(b, h);
    return 0;
}

/* msgpack-c checks its depth limit on every container, empty ones too. */
static bool is_container(const struct mp_head *h)
{
    return h->kind == MP_ARRAY || h->kind == MP_MAP;
}

static uint64_t read_be(const uint8_t *p, unsigned w)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < w; i++)
        v = v << 8 | p[i];
    return v;
}

void lh_mp_scan_init(struct lh_mp_scan *s)
{
    memset(s, 0, sizeof(*s));
}

/* Checks that the object at s->pos, its payload and every object still owed
 * (each at least one byte) fit in max. */
static int scan_fits(const struct lh_mp_scan *s, const struct mp_head *h, uint64_t rest,
                     size_t max)
{
    uint64_t room = max - s->pos;

    if (h->hdr > room || h->payload > room - h->hdr)
        return LH_ETOOBIG;
    room -= h->hdr + h->payload;
    if (rest > room || h->children > room - rest)
        return LH_ETOOBIG;
    return 0;
}

/* Walks the header (and payload) of one object. */
static int scan_one(struct lh_mp_scan *s, const uint8_t *buf, size_t len, size_t max)
{
    uint64_t pending = s->started ? s->pending : 1;
    struct mp_head h;
    int rc;

    if (pending > max - s->pos)
        return LH_ETOOBIG;
    if (s->pos >= len)
        return LH_AGAIN;
    if (classify(buf[s->pos], &h) != 0)
        return LH_EINVAL;
    if (h.hdr > max - s->pos)
        return LH_ETOOBIG;
    if (len - s->pos < h.hdr)
        return LH_AGAIN;
    if (h.lenw > 0)
        head_set(&h, h.hdr, h.lenw, h.kind, read_be(buf + s->pos + 1, h.lenw));
    rc = scan_fits(s, &h, pending - 1, max);
    if (rc != 0)
        return rc;
    if (is_container(&h) && s->depth == LH_MP_MAX_DEPTH)
        return LH_EINVAL;
    if (len - s->pos - h.hdr < h.payload)
        return LH_AGAIN;

    s->pos += h.hdr + (size_t)h.payload;
    s->started = true;
    if (s->depth > 0)
        s->left[s->depth - 1]--;
    s->pending = pending - 1 + h.children;
    if (h.children > 0)
        s->left[s->depth++] = h.children;
    while (s->depth > 0 && s->left[s->depth - 1] == 0)
        s->depth--;
    return 0;
}

int lh_mp_scan(struct lh_mp_scan *s, const uint8_t *buf, size_t len, size_t max,
               size_t *frame_len)
{
    int rc;

    if (s->pos > max)
        return LH_ETOOBIG;
    while (!s->started || s->depth > 0) {
        rc = scan_one(s, buf, len, max);
        if (rc != 0)
            return rc;
    }
    *frame_len = s->pos;
    return 0;
}

/* ---- raw msgpack -------------------------------------------------------- */

/* The checks of lh_mp_scan (every length and count bounded by the bytes left,
 * msgpack-c's depth rule) without its resumable state: this runs once per
 * entry of every packed frame. */
int lh_mp_walk_depth(const uint8_t *p, size_t n, unsigned max_depth, size_t *len,
                     unsigned *deepest)
{
    uint64_t left[LH_MP_WALK_MAX];
    uint64_t owed = 1; /* objects not yet walked, each at least one byte */
    unsigned depth = 0;
    size_t pos = 0;
    struct mp_head h;

    *deepest = 0;
    if (max_depth > LH_MP_WALK_MAX)
        max_depth = LH_MP_WALK_MAX;
    do {
        if (owed > n - pos || classify(p[pos], &h) != 0 || h.hdr > n - pos)
            return LH_EPROTO;
        if (h.lenw > 0)
            head_set(&h, h.hdr, h.lenw, h.kind, read_be(p + pos + 1, h.lenw));
        if (h.payload > n - pos - h.hdr)
            return LH_EPROTO;
        if (is_container(&h)) {
            if (depth == max_depth)
                return LH_ETOOBIG;
            if (depth + 1 > *deepest)
                *deepest = depth + 1;
        }
        pos += h.hdr + (size_t)h.payload;
        owed = owed - 1 + h.children;
        if (depth > 0)
            left[depth - 1]--;
        if (h.children > 0)
            left[depth++] = h.children;
        while (depth > 0 && left[depth - 1] == 0)
            depth--;
    } while (depth > 0);
    *len = pos;
    return 0;
}

int lh_mp_walk(const uint8_t *p, size_t n, unsigned max_depth, size_t *len)
{
    unsigned deepest;

    return lh_mp_walk_depth(p, n, max_depth, len, &deepest);
}

size_t lh_mp_extent(const uint8_t *p, size_t n)
{
    size_t len;

    return lh_mp_walk(p, n, LH_MP_MAX_DEPTH, &len) == 0 ? len : 0;
}

/* The count and header bytes of the array or map header at p[0..n). */
static int container_head(const uint8_t *p, size_t n, enum mp_kind kind, uint64_t *count,
                          size_t *hdr)
{
    struct mp_head h;

    if (n == 0 || classify(p[0], &h) != 0 || h.kind != kind || h.hdr > n)
        return LH_EPROTO;
    *count = h.lenw > 0 ? read_be(p + 1, h.lenw) : h.children / (kind == MP_MAP ? 2 : 1);
    *hdr = h.hdr;
    return 0;
}

int lh_mp_map_head(const char *map, size_t len, uint64_t *count, size_t *hdr)
{
    return container_head((const uint8_t *)map, len, MP_MAP, count, hdr);
}

/* True when p[0..n) is exactly a str or bin equal to key: the key forms
 * rendering and lh_map_get accept (ext shares the kind, not the role). */
static bool is_key(const uint8_t *p, size_t n, const char *key, size_t klen)
{
    struct mp_head h;

    if (classify(p[0], &h) != 0 || h.kind != MP_BYTES || (p[0] >= 0xc7 && p[0] <= 0xc9))
        return false;
    return n == h.hdr + klen && memcmp(p + h.hdr, key, klen) == 0;
}

bool lh_mp_map_has_key(const char *map, size_t len, const char *key, size_t klen)
{
    const uint8_t *p = (const uint8_t *)map;
    uint64_t n;
    size_t off, kl, vl;

    if (container_head(p, len, MP_MAP, &n, &off) != 0)
        return false;
    for (uint64_t i = 0; i < n; i++) {
        kl = lh_mp_extent(p + off, len - off);
        vl = kl ? lh_mp_extent(p + off + kl, len - off - kl) : 0;
        if (vl == 0)
            return false;
        if (is_key(p + off, kl, key, klen))
            return true;
        off += kl + vl;
    }
    return false;
}

/* ---- decoding events ---------------------------------------------------- */

/* Frames are walked as bytes. msgpack-c unpacks only the small parts (an
 * options map, an entry head that is not a plain EventTime, a Message
 * time), each capped: an unpacked object costs up to ~24 bytes per byte of
 * input, so nothing is unpacked in proportion to a frame's element count. */

struct decoder {
    lh_fwd_event_cb cb;
    void *ud;
    const char *tag;
    size_t tag_len;
    msgpack_zone zone; /* the small parts; cleared after each use */
};

/* The bytes of one complete msgpack object. */
struct span {
    const uint8_t *p;
    size_t n;
};

/* Unpacks the small object s (one complete object, already walked). */
static int unpack_small(struct decoder *d, struct span s, msgpack_object *o)
{
    size_t off = 0;
    msgpack_unpack_return ur;

    if (s.n > LH_FWD_MAX_SMALL)
        return LH_EPROTO;
    ur = msgpack_unpack((const char *)s.p, s.n, &off, &d->zone, o);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
        return LH_ENOMEM;
    return ur == MSGPACK_UNPACK_SUCCESS && off == s.n ? 0 : LH_EPROTO;
}

/* A time in any form lh_time_from_obj reads; a plain EventTime (the
 * common case) without msgpack-c. */
static int span_time(struct decoder *d, struct span s, int64_t *ns)
{
    msgpack_object o;
    int rc;

    if (s.n == 10 && s.p[0] == 0xd7 && s.p[1] == 0) {
        *ns = lh_event_time_body_ns((const char *)s.p + 2);
        return 0;
    }
    rc = unpack_small(d, s, &o);
    if (rc == 0 && lh_time_from_obj(&o, ns) != 0)
        rc = LH_EPROTO;
    return rc;
}

/* The head of an entry: a time, or Fluent Bit 2's [time, metadata]. */
static int entry_head(struct decoder *d, struct span s, struct lh_fwd_event *ev)
{
    msgpack_object h;
    int rc;

    if (s.n == 0 || s.p[0] < 0x90 || s.p[0] > 0x9f)
        return span_time(d, s, &ev->time_ns);
    rc = unpack_small(d, s, &h);
    if (rc != 0)
        return rc;
    if (h.via.array.size != 2 || h.via.array.ptr[1].type != MSGPACK_OBJECT_MAP ||
        lh_time_from_obj(&h.via.array.ptr[0], &ev->time_ns) != 0)
        return LH_EPROTO;
    ev->metadata = &h.via.array.ptr[1];
    return 0;
}

static int emit(struct decoder *d, struct lh_fwd_event *ev, struct span record)
{
    uint64_t n;
    size_t hdr;
    int rc;

    if (lh_mp_map_head((const char *)record.p, record.n, &n, &hdr) != 0)
        return LH_EPROTO;
    ev->tag = d->tag;
    ev->tag_len = d->tag_len;
    ev->record = (const char *)record.p;
    ev->record_len = record.n;
    rc = d->cb(d->ud, ev);
    msgpack_zone_clear(&d->zone);
    return rc;
}

/* One entry, e[0..len) exactly: [time, record] or [[time, metadata],
 * record]. The record's bytes go to the callback as they are. */
static int decode_entry(struct decoder *d, const uint8_t *e, size_t len, unsigned depth)
{
    struct lh_fwd_event ev = {.depth = depth};
    struct span head;
    uint64_t n;
    size_t hdr;
    int rc;

    if (container_head(e, len, MP_ARRAY, &n, &hdr) != 0 || n != 2)
        return LH_EPROTO;
    head = (struct span){e + hdr, lh_mp_extent(e + hdr, len - hdr)};
    if (head.n == 0)
        return LH_EPROTO;
    rc = entry_head(d, head, &ev);
    if (rc != 0)
        return rc;
    return emit(d, &ev, (struct span){head.p + head.n, len - hdr - head.n});
}

/* Entries back to back up to p + n. Each is walked before msgpack-c sees
 * any part of it, so every claimed length and count is bounded by the bytes
 * present. Records may nest up to LH_MP_WALK_MAX levels: how deep a
 * consumer can take is its own check (lh_fwd_event). */
static int decode_entries(struct decoder *d, const uint8_t *p, size_t n)
{
    size_t off = 0, used;
    unsigned deepest;
    int rc = 0;

    while (rc == 0 && off < n) {
        if (lh_mp_walk_depth(p + off, n - off, LH_MP_WALK_MAX, &used, &deepest) != 0)
            return LH_EPROTO;
        rc = decode_entry(d, p + off, used, deepest - 1);
        off += used;
    }
    return rc;
}

static int decode_compressed(struct decoder *d, struct span body, size_t max)
{
    char *plain = NULL;
    size_t plain_len = 0;
    int rc = lh_gunzip(body.p, body.n, max, &plain, &plain_len);

    if (rc == 0)
        rc = decode_entries(d, (const uint8_t *)plain, plain_len);
    free(plain);
    return rc;
}

static int option_compressed(const msgpack_object *v, bool *gzip)
{
    const char *p;
    size_t n;

    if (!lh_obj_bytes(v, &p, &n))
        return LH_EPROTO;
    /* Fluentd labels uncompressed payloads "text"; other codecs (zstd) are
     * refused rather than misread as plain entries. */
    if (n == 4 && memcmp(p, "gzip", 4) == 0)
        *gzip = true;
    else if (n == 4 && memcmp(p, "text", 4) == 0)
        *gzip = false;
    else
        return LH_EPROTO;
    return 0;
}

/* Options map (or nil: old Docker drivers send one). Unknown keys ignored.
 * The chunk points into the frame's bytes (msgpack-c references strings). */
static int parse_options(struct decoder *d, const struct span *s, struct lh_fwd_options *opts)
{
    msgpack_object o;
    const msgpack_object *v;
    int rc;

    *opts = (struct lh_fwd_options){.size = -1};
    if (s == NULL || (s->n == 1 && s->p[0] == 0xc0))
        return 0;
    if ((s->p[0] & 0xf0) != 0x80 && s->p[0] != 0xde && s->p[0] != 0xdf)
        return LH_EPROTO;
    if ((rc = unpack_small(d, *s, &o)) != 0)
        return rc;
    v = lh_map_get(&o, "chunk");
    if (v != NULL && !lh_obj_bytes(v, &opts->chunk, &opts->chunk_len))
        return LH_EPROTO;
    v = lh_map_get(&o, "size");
    if (v != NULL) {
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > INT64_MAX)
            return LH_EPROTO;
        opts->size = (int64_t)v->via.u64;
    }
    v = lh_map_get(&o, "compressed");
    if (v != NULL && (rc = option_compressed(v, &opts->compressed)) != 0)
        return rc;
    msgpack_zone_clear(&d->zone);
    return 0;
}

/* The payload of the str or bin s; false for any other type. */
static bool span_bytes(struct span s, bool bin_ok, const uint8_t **p, size_t *n)
{
    uint8_t b = s.p[0];
    struct mp_head h;

    if (!((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb) ||
          (bin_ok && b >= 0xc4 && b <= 0xc6)))
        return false;
    classify(b, &h);
    *p = s.p + h.hdr;
    *n = s.n - h.hdr;
    return true;
}

/* The mode a frame's second element announces: entries as str or bin
 * (PackedForward), an array (Forward) or a time (Message). */
static int body_mode(uint8_t b, enum lh_fwd_mode *mode)
{
    if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb) || (b >= 0xc4 && b <= 0xc6))
        *mode = LH_FWD_PACKED;
    else if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd)
        *mode = LH_FWD_FORWARD;
    else if (b <= 0x7f || b >= 0xe0 || (b >= 0xc7 && b <= 0xd8))
        *mode = LH_FWD_MESSAGE; /* integer, float or ext (EventTime) */
    else
        return LH_EPROTO;
    return 0;
}

struct frame {
    struct span el[4];
    uint64_t n;
    enum lh_fwd_mode mode;
    const struct span *options; /* NULL when absent */
};

/* Splits the frame into its elements, checking the shape from headers
 * first: an array of 2 to 4 elements starting with a string tag. */
static int frame_shape(const uint8_t *p, size_t len, struct frame *fr)
{
    size_t off, used;
    uint64_t fixed;

    if (lh_fwd_check_head(p, len) != 0 || len < 3 || p[0] == 0xc0)
        return LH_EPROTO;
    container_head(p, len, MP_ARRAY, &fr->n, &off);
    for (uint64_t i = 0; i < fr->n; i++) {
        used = lh_mp_extent(p + off, len - off);
        if (used == 0)
            return LH_EPROTO;
        fr->el[i] = (struct span){p + off, used};
        off += used;
    }
    if (off != len || body_mode(fr->el[1].p[0], &fr->mode) != 0)
        return LH_EPROTO;
    fixed = fr->mode == LH_FWD_MESSAGE ? 3 : 2;
    if (fr->n != fixed && fr->n != fixed + 1)
        return LH_EPROTO;
    fr->options = fr->n > fixed ? &fr->el[fixed] : NULL;
    return 0;
}

int lh_fwd_check_head(const uint8_t *p, size_t n)
{
    uint64_t count;
    size_t hdr;

    if (n == 0)
        return LH_AGAIN;
    if (p[0] == 0xc0)
        return 0;
    if ((p[0] < 0x90 || p[0] > 0x9f) && p[0] != 0xdc && p[0] != 0xdd)
        return LH_EPROTO;
    if (container_head(p, n, MP_ARRAY, &count, &hdr) != 0)
        return LH_AGAIN; /* the length field has not arrived */
    if (count < 2 || count > 4)
        return LH_EPROTO;
    if (n == hdr)
        return LH_AGAIN;
    return (p[hdr] >= 0xa0 && p[hdr] <= 0xbf) || (p[hdr] >= 0xd9 && p[hdr] <= 0xdb)
               ? 0
               : LH_EPROTO;
}

static int decode_body(struct decoder *d, const struct frame *fr, enum lh_fwd_mode m,
                       size_t max_decompressed)
{
    struct lh_fwd_event ev = {0};
    const uint8_t *bp;
    size_t bn, hdr, used;
    uint64_t count;
    int rc;

    switch (m) {
    case LH_FWD_MESSAGE:
        rc = span_time(d, fr->el[1], &ev.time_ns);
        if (rc == 0 && lh_mp_walk_depth(fr->el[2].p, fr->el[2].n, LH_MP_WALK_MAX, &used,
                                        &ev.depth) != 0)
            rc = LH_EPROTO;
        return rc != 0 ? rc : emit(d, &ev, fr->el[2]);
    case LH_FWD_FORWARD:
        if (container_head(fr->el[1].p, fr->el[1].n, MP_ARRAY, &count, &hdr) != 0)
            return LH_EPROTO;
        return decode_entries(d, fr->el[1].p + hdr, fr->el[1].n - hdr);
    case LH_FWD_PACKED:
        if (!span_bytes(fr->el[1], true, &bp, &bn))
            return LH_EPROTO;
        return decode_entries(d, bp, bn);
    case LH_FWD_COMPRESSED:
        if (!span_bytes(fr->el[1], true, &bp, &bn))
            return LH_EPROTO;
        return decode_compressed(d, (struct span){bp, bn}, max_decompressed);
    }
    return LH_EPROTO;
}

int lh_fwd_decode(const uint8_t *frame, size_t len, size_t max_decompressed, lh_fwd_event_cb cb,
                  void *ud, struct lh_fwd_options *opts, enum lh_fwd_mode *mode)
{
    struct decoder d = {.cb = cb, .ud = ud};
    struct lh_fwd_options o;
    struct frame fr;
    const uint8_t *tag;
    int rc;

    rc = frame_shape(frame, len, &fr);
    if (rc != 0)
        return rc;
    if (!msgpack_zone_init(&d.zone, 2048))
        return LH_ENOMEM;
    rc = parse_options(&d, fr.options, &o);
    if (rc != 0)
        goto out;
    if (fr.mode == LH_FWD_PACKED && o.compressed)
        fr.mode = LH_FWD_COMPRESSED;
    if (opts != NULL)
        *opts = o;
    if (mode != NULL)
        *mode = fr.mode;
    if (!span_bytes(fr.el[0], false, &tag, &d.tag_len)) {
        rc = LH_EPROTO;
        goto out;
    }
    d.tag = (const char *)tag;
    rc = decode_body(&d, &fr, fr.mode, max_decompressed);
out:
    msgpack_zone_destroy(&d.zone);
    return rc;
}

/* ---- encoding ----------------------------------------------------------- */

int lh_fwd_pack_entry_begin(msgpack_packer *pk, int64_t ns)
{
    if (msgpack_pack_array(pk, 2) != 0)
        return LH_ENOMEM;
    return lh_pack_time(pk, ns);
}

static int pack_packed_options(msgpack_packer *pk, size_t n_entries, const char *chunk,
                               size_t chunk_len, bool gzip)
{
    int rc;

    if (msgpack_pack_map(pk, 1 + (chunk != NULL) + gzip) != 0)
        return LH_ENOMEM;
    if ((rc = lh_pack_cstr(pk, "size")) != 0)
        return rc;
    if (msgpack_pack_uint64(pk, n_entries) != 0)
        return LH_ENOMEM;
    if (chunk != NULL && ((rc = lh_pack_cstr(pk, "chunk")) != 0 ||
                          (rc = lh_pack_strn(pk, chunk, chunk_len)) != 0))
        return rc;
    if (gzip && ((rc = lh_pack_cstr(pk, "compressed")) != 0 || (rc = lh_pack_cstr(pk, "gzip")) != 0))
        return rc;
    return 0;
}

int lh_fwd_pack_packed(msgpack_packer *pk, const char *tag, size_t tag_len, const char *entries,
                       size_t entries_len, size_t n_entries, const char *chunk, size_t chunk_len,
                       bool gzip)
{
    char *z = NULL;
    size_t zlen = 0;
    int rc;

    if (gzip) {
        rc = lh_gzip(entries, entries_len, &z, &zlen);
        if (rc != 0)
            return rc;
        entries = z;
        entries_len = zlen;
    }
    rc = lh_fwd_pack_packed_head(pk, tag, tag_len, entries_len);
    if (rc == 0 && msgpack_pack_bin_body(pk, entries, entries_len) != 0)
        rc = LH_ENOMEM;
    if (rc == 0)
        rc = pack_packed_options(pk, n_entries, chunk, chunk_len, gzip);
    free(z);
    return rc;
}

int lh_fwd_pack_packed_head(msgpack_packer *pk, const char *tag, size_t tag_len,
                            size_t entries_len)
{
    if (msgpack_pack_array(pk, 3) != 0 || lh_pack_strn(pk, tag, tag_len) != 0 ||
        msgpack_pack_bin(pk, entries_len) != 0)
        return LH_ENOMEM;
    return 0;
}

int lh_fwd_pack_packed_tail(msgpack_packer *pk, size_t n_entries, const char *chunk,
                            size_t chunk_len, bool gzip)
{
    return pack_packed_options(pk, n_entries, chunk, chunk_len, gzip);
}

/* ---- chunk ids and acks ------------------------------------------------- */

int lh_fwd_chunk_id(char out[LH_CHUNK_ID_LEN + 1])
{
    unsigned char raw[16];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return LH_EIO;
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
    return 0;
}

int lh_fwd_pack_ack(msgpack_packer *pk, const char *chunk, size_t chunk_len)
{
    if (msgpack_pack_map(pk, 1) != 0)
        return LH_ENOMEM;
    if (lh_pack_cstr(pk, "ack") != 0)
        return LH_ENOMEM;
    return lh_pack_strn(pk, chunk, chunk_len);
}

int lh_fwd_parse_ack(const msgpack_object *o, const char **chunk, size_t *chunk_len)
{
    const msgpack_object *v = lh_map_get(o, "ack");

    if (v == NULL || !lh_obj_bytes(v, chunk, chunk_len))
        return LH_EPROTO;
    return 0;
}
