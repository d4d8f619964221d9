/* Fluent Forward v1: frame scanner, event decoding, PackedForward encoding,
 * gzip, chunk ids and acks. The handshake is in forward_handshake.c. */
#include "common/forward.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/err.h"
#include "common/record.h"

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
    if (h.children > 0 && s->depth == LH_MP_MAX_DEPTH)
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
 * nesting at most LH_MP_MAX_DEPTH) without its resumable state: this runs
 * once per entry of every packed frame. */
size_t lh_mp_extent(const uint8_t *p, size_t n)
{
    uint64_t left[LH_MP_MAX_DEPTH];
    uint64_t owed = 1; /* objects not yet walked, each at least one byte */
    unsigned depth = 0;
    size_t pos = 0;
    struct mp_head h;

    do {
        if (owed > n - pos || classify(p[pos], &h) != 0 || h.hdr > n - pos)
            return 0;
        if (h.lenw > 0)
            head_set(&h, h.hdr, h.lenw, h.kind, read_be(p + pos + 1, h.lenw));
        if (h.payload > n - pos - h.hdr)
            return 0;
        pos += h.hdr + (size_t)h.payload;
        owed = owed - 1 + h.children;
        if (depth > 0)
            left[depth - 1]--;
        if (h.children > 0) {
            if (depth == LH_MP_MAX_DEPTH)
                return 0;
            left[depth++] = h.children;
        }
        while (depth > 0 && left[depth - 1] == 0)
            depth--;
    } while (depth > 0);
    return pos;
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

/* True when p[0..n) is exactly a string equal to key. */
static bool is_str(const uint8_t *p, size_t n, const char *key, size_t klen)
{
    struct mp_head h;

    if (classify(p[0], &h) != 0 || h.kind != MP_BYTES || (p[0] >= 0xc4 && p[0] <= 0xc9))
        return false; /* not a str (bin and ext share the kind) */
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
        if (is_str(p + off, kl, key, klen))
            return true;
        off += kl + vl;
    }
    return false;
}

/* ---- decoding events ---------------------------------------------------- */

struct decoder {
    lh_fwd_event_cb cb;
    void *ud;
    const char *tag;
    size_t tag_len;
    msgpack_sbuffer *scratch; /* records of unpacked modes, packed again */
};

static int check_record(const struct lh_fwd_event *ev)
{
    uint64_t n;
    size_t hdr;

    return lh_mp_map_head(ev->record, ev->record_len, &n, &hdr);
}

/* An event whose record is a msgpack object (Message and Forward modes):
 * the callback takes records as bytes, so it is packed again. */
static int emit(const struct decoder *d, const msgpack_object *time, const msgpack_object *meta,
                const msgpack_object *record)
{
    struct lh_fwd_event ev = {.tag = d->tag, .tag_len = d->tag_len, .metadata = meta};

    if (lh_time_from_obj(time, &ev.time_ns) != 0 || record->type != MSGPACK_OBJECT_MAP)
        return LH_EPROTO;
    if (meta != NULL && meta->type != MSGPACK_OBJECT_MAP)
        return LH_EPROTO;
    d->scratch->size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, d->scratch, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *record) != 0)
        return LH_ENOMEM;
    ev.record = d->scratch->data;
    ev.record_len = d->scratch->size;
    return d->cb(d->ud, &ev);
}

/* [time, record] or Fluent Bit 2's [[time, metadata], record]. */
static int decode_entry(const struct decoder *d, const msgpack_object *e)
{
    const msgpack_object *head;

    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2)
        return LH_EPROTO;
    head = &e->via.array.ptr[0];
    if (head->type != MSGPACK_OBJECT_ARRAY)
        return emit(d, head, NULL, &e->via.array.ptr[1]);
    if (head->via.array.size != 2)
        return LH_EPROTO;
    return emit(d, &head->via.array.ptr[0], &head->via.array.ptr[1], &e->via.array.ptr[1]);
}

static int decode_forward(const struct decoder *d, const msgpack_object *entries)
{
    int rc;

    for (uint32_t i = 0; i < entries->via.array.size; i++) {
        rc = decode_entry(d, &entries->via.array.ptr[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The head of a packed entry that is not a plain EventTime: unpacked (it
 * is small, and already scanned whole, so every count in it is bounded). */
static int entry_head(const uint8_t *p, size_t n, msgpack_zone *zone, struct lh_fwd_event *ev)
{
    msgpack_object h;
    const msgpack_object *time = &h;
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack((const char *)p, n, &off, zone, &h);

    if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
        return LH_ENOMEM;
    if (ur != MSGPACK_UNPACK_SUCCESS || off != n)
        return LH_EPROTO;
    if (h.type == MSGPACK_OBJECT_ARRAY) {
        if (h.via.array.size != 2 || h.via.array.ptr[1].type != MSGPACK_OBJECT_MAP)
            return LH_EPROTO;
        time = &h.via.array.ptr[0];
        ev->metadata = &h.via.array.ptr[1];
    }
    return lh_time_from_obj(time, &ev->time_ns) == 0 ? 0 : LH_EPROTO;
}

/* One packed entry, scanned whole: the record's bytes go to the callback
 * as they are, never unpacked (the hot path of a collector). */
static int decode_raw_entry(const struct decoder *d, const uint8_t *e, size_t len,
                            msgpack_zone *zone)
{
    struct lh_fwd_event ev = {.tag = d->tag, .tag_len = d->tag_len};
    uint64_t n;
    size_t hdr, head_len;
    int rc;

    if (container_head(e, len, MP_ARRAY, &n, &hdr) != 0 || n != 2)
        return LH_EPROTO;
    head_len = lh_mp_extent(e + hdr, len - hdr);
    if (head_len == 0)
        return LH_EPROTO;
    if (head_len == 10 && e[hdr] == 0xd7 && e[hdr + 1] == 0)
        ev.time_ns = lh_event_time_body_ns((const char *)e + hdr + 2);
    else if ((rc = entry_head(e + hdr, head_len, zone, &ev)) != 0)
        return rc;
    ev.record = (const char *)e + hdr + head_len;
    ev.record_len = len - hdr - head_len;
    if (check_record(&ev) != 0)
        return LH_EPROTO;
    return d->cb(d->ud, &ev);
}

/* Entries back to back. The scan bounds every claimed length and count by
 * the bytes present, so msgpack-c never sizes an allocation from an
 * unchecked count. */
static int decode_packed(const struct decoder *d, const char *p, size_t n)
{
    msgpack_zone zone;
    size_t off = 0, used;
    int rc = 0;

    if (!msgpack_zone_init(&zone, 1024))
        return LH_ENOMEM;
    while (rc == 0 && off < n) {
        used = lh_mp_extent((const uint8_t *)p + off, n - off);
        if (used == 0) {
            rc = LH_EPROTO;
            break;
        }
        rc = decode_raw_entry(d, (const uint8_t *)p + off, used, &zone);
        msgpack_zone_clear(&zone);
        off += used;
    }
    msgpack_zone_destroy(&zone);
    return rc;
}

static int decode_compressed(const struct decoder *d, const char *p, size_t n, size_t max)
{
    char *plain = NULL;
    size_t plain_len = 0;
    int rc = lh_gunzip(p, n, max, &plain, &plain_len);

    if (rc == 0)
        rc = decode_packed(d, plain, plain_len);
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

/* Options map (or nil: old Docker drivers send one). Unknown keys ignored. */
static int parse_options(const msgpack_object *o, struct lh_fwd_options *opts)
{
    const msgpack_object *v;

    *opts = (struct lh_fwd_options){.size = -1};
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (o->type != MSGPACK_OBJECT_MAP)
        return LH_EPROTO;
    v = lh_map_get(o, "chunk");
    if (v != NULL && !lh_obj_bytes(v, &opts->chunk, &opts->chunk_len))
        return LH_EPROTO;
    v = lh_map_get(o, "size");
    if (v != NULL) {
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > INT64_MAX)
            return LH_EPROTO;
        opts->size = (int64_t)v->via.u64;
    }
    v = lh_map_get(o, "compressed");
    if (v != NULL)
        return option_compressed(v, &opts->compressed);
    return 0;
}

static int frame_mode(const msgpack_object *frame, enum lh_fwd_mode *mode)
{
    switch (frame->via.array.ptr[1].type) {
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        *mode = LH_FWD_PACKED;
        return 0;
    case MSGPACK_OBJECT_ARRAY:
        *mode = LH_FWD_FORWARD;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
    case MSGPACK_OBJECT_EXT:
        *mode = LH_FWD_MESSAGE;
        return 0;
    default:
        return LH_EPROTO;
    }
}

/* Checks the frame's shape; sets the mode and the options object (or NULL). */
static int frame_shape(const msgpack_object *frame, enum lh_fwd_mode *mode,
                       const msgpack_object **optobj)
{
    uint32_t n, fixed;

    if (frame->type != MSGPACK_OBJECT_ARRAY || frame->via.array.size < 2)
        return LH_EPROTO;
    n = frame->via.array.size;
    if (frame->via.array.ptr[0].type != MSGPACK_OBJECT_STR || frame_mode(frame, mode) != 0)
        return LH_EPROTO;
    fixed = *mode == LH_FWD_MESSAGE ? 3 : 2;
    if (n != fixed && n != fixed + 1)
        return LH_EPROTO;
    *optobj = n > fixed ? &frame->via.array.ptr[fixed] : NULL;
    return 0;
}

int lh_fwd_decode(const msgpack_object *frame, size_t max_decompressed, lh_fwd_event_cb cb,
                  void *ud, struct lh_fwd_options *opts, enum lh_fwd_mode *mode)
{
    struct lh_fwd_options o;
    const msgpack_object *optobj, *body;
    enum lh_fwd_mode m;
    msgpack_sbuffer scratch;
    struct decoder d = {.cb = cb, .ud = ud, .scratch = &scratch};
    int rc;

    rc = frame_shape(frame, &m, &optobj);
    if (rc == 0)
        rc = parse_options(optobj, &o);
    if (rc != 0)
        return rc;
    if (m == LH_FWD_PACKED && o.compressed)
        m = LH_FWD_COMPRESSED;
    if (opts != NULL)
        *opts = o;
    if (mode != NULL)
        *mode = m;
    d.tag = frame->via.array.ptr[0].via.str.ptr;
    d.tag_len = frame->via.array.ptr[0].via.str.size;
    body = &frame->via.array.ptr[1];
    msgpack_sbuffer_init(&scratch);
    switch (m) {
    case LH_FWD_MESSAGE:
        rc = emit(&d, body, NULL, &frame->via.array.ptr[2]);
        break;
    case LH_FWD_FORWARD:
        rc = decode_forward(&d, body);
        break;
    case LH_FWD_PACKED:
        rc = decode_packed(&d, body->via.bin.ptr, body->via.bin.size);
        break;
    case LH_FWD_COMPRESSED:
        rc = decode_compressed(&d, body->via.bin.ptr, body->via.bin.size, max_decompressed);
        break;
    }
    msgpack_sbuffer_destroy(&scratch);
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
