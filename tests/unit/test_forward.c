/* Forward v1 codec: every mode round trip, the frame scanner, gzip, acks,
 * malformed frames, and random mutations of valid frames. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/forward.h"
#include "common/codec/record.h"
#include "tests/unit/lh_check.h"

#define T0 1700000000LL
#define NS(s, frac) ((s) * 1000000000LL + (frac))
#define MAX_EV 16
#define MIB (1024 * 1024)

/* ---- helpers ------------------------------------------------------------ */

struct got {
    int n;
    int stop_after; /* 0: never */
    char tag[64];
    int64_t time[MAX_EV];
    char msg[MAX_EV][64];
    char meta[MAX_EV][64]; /* metadata "k" value, "" when no metadata */
};

static void copy_field(const msgpack_object *map, const char *key, char *dst, size_t cap)
{
    const msgpack_object *v = lh_map_get(map, key);
    const char *p;
    size_t n;

    dst[0] = '\0';
    if (v != NULL && lh_obj_bytes(v, &p, &n) && n < cap) {
        memcpy(dst, p, n);
        dst[n] = '\0';
    }
}

static int collect(void *ud, const struct lh_fwd_event *ev)
{
    struct got *g = ud;

    ck_assert_int_lt(g->n, MAX_EV);
    ck_assert_uint_lt(ev->tag_len, sizeof(g->tag));
    memcpy(g->tag, ev->tag, ev->tag_len);
    g->tag[ev->tag_len] = '\0';
    /* The record arrives as bytes: exactly one map. */
    msgpack_unpacked rec;
    size_t off = 0;
    msgpack_unpacked_init(&rec);
    ck_assert_int_eq(msgpack_unpack_next(&rec, ev->record, ev->record_len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, ev->record_len);
    ck_assert_int_eq(rec.data.type, MSGPACK_OBJECT_MAP);
    g->time[g->n] = ev->time_ns;
    copy_field(&rec.data, "message", g->msg[g->n], sizeof(g->msg[0]));
    msgpack_unpacked_destroy(&rec);
    if (ev->metadata != NULL)
        copy_field(ev->metadata, "k", g->meta[g->n], sizeof(g->meta[0]));
    else
        g->meta[g->n][0] = '\0';
    g->n++;
    return g->stop_after != 0 && g->n == g->stop_after ? 42 : 0;
}

struct pk {
    msgpack_sbuffer sb;
    msgpack_packer p;
};

static void pk_init(struct pk *k)
{
    msgpack_sbuffer_init(&k->sb);
    msgpack_packer_init(&k->p, &k->sb, msgpack_sbuffer_write);
}

static void pk_clear(struct pk *k)
{
    msgpack_sbuffer_clear(&k->sb);
}

static void pk_free(struct pk *k)
{
    msgpack_sbuffer_destroy(&k->sb);
}

/* Unpacks the packed bytes into u (valid until u is reused). */
static const msgpack_object *pk_obj(struct pk *k, msgpack_unpacked *u)
{
    size_t off = 0;

    ck_assert_int_eq(msgpack_unpack_next(u, k->sb.data, k->sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    return &u->data;
}

static void record(msgpack_packer *p, const char *msg)
{
    msgpack_pack_map(p, 2);
    lh_pack_cstr(p, "message");
    lh_pack_cstr(p, msg);
    lh_pack_cstr(p, "n");
    msgpack_pack_int(p, 1);
}

/* Scans and decodes (from its bytes) one whole frame held in buf. */
static int decode_buf(const char *buf, size_t len, size_t max_z, struct got *g,
                      struct lh_fwd_options *opts, enum lh_fwd_mode *mode)
{
    struct lh_mp_scan sc;
    size_t flen = 0;

    lh_mp_scan_init(&sc);
    ck_assert_int_eq(lh_mp_scan(&sc, (const uint8_t *)buf, len, 64 * MIB, &flen), 0);
    ck_assert_uint_eq(flen, len);
    memset(g, 0, sizeof(*g));
    return lh_fwd_decode((const uint8_t *)buf, len, max_z, collect, g, opts, mode);
}

static int decode_pk(struct pk *k, struct got *g, struct lh_fwd_options *o, enum lh_fwd_mode *m)
{
    return decode_buf(k->sb.data, k->sb.size, MIB, g, o, m);
}

/* Two entries; the second has Fluent Bit 2 metadata when meta is set. */
static void pack_entries(struct pk *k, bool meta)
{
    lh_fwd_pack_entry_begin(&k->p, NS(T0, 1));
    record(&k->p, "first");
    msgpack_pack_array(&k->p, 2);
    if (meta) {
        msgpack_pack_array(&k->p, 2);
        lh_pack_time(&k->p, NS(T0 + 1, 2));
        msgpack_pack_map(&k->p, 1);
        lh_pack_cstr(&k->p, "k");
        lh_pack_cstr(&k->p, "mv");
    } else {
        lh_pack_time(&k->p, NS(T0 + 1, 2));
    }
    record(&k->p, "second");
}

static void check_two(const struct got *g, bool meta)
{
    ck_assert_int_eq(g->n, 2);
    ck_assert_str_eq(g->tag, "app.log");
    ck_assert_int_eq(g->time[0], NS(T0, 1));
    ck_assert_int_eq(g->time[1], NS(T0 + 1, 2));
    ck_assert_str_eq(g->msg[0], "first");
    ck_assert_str_eq(g->msg[1], "second");
    ck_assert_str_eq(g->meta[0], "");
    ck_assert_str_eq(g->meta[1], meta ? "mv" : "");
}

/* ---- round trips -------------------------------------------------------- */

START_TEST(message_mode)
{
    struct lh_fwd_options o;
    enum lh_fwd_mode m;
    struct got g;
    struct pk k;

    pk_init(&k);
    msgpack_pack_array(&k.p, 4);
    lh_pack_cstr(&k.p, "app.log");
    lh_pack_time(&k.p, NS(T0, 7));
    record(&k.p, "hello");
    msgpack_pack_map(&k.p, 1);
    lh_pack_cstr(&k.p, "chunk");
    lh_pack_cstr(&k.p, "c-1");
    ck_assert_int_eq(decode_pk(&k, &g, &o, &m), 0);
    ck_assert_int_eq(m, LH_FWD_MESSAGE);
    ck_assert_int_eq(g.n, 1);
    ck_assert_str_eq(g.tag, "app.log");
    ck_assert_int_eq(g.time[0], NS(T0, 7));
    ck_assert_str_eq(g.msg[0], "hello");
    ck_assert_uint_eq(o.chunk_len, 3);
    ck_assert_mem_eq(o.chunk, "c-1", 3);
    ck_assert_int_eq(o.size, -1);
    ck_assert(!o.compressed);

    /* Integer seconds, no options. */
    pk_clear(&k);
    msgpack_pack_array(&k.p, 3);
    lh_pack_cstr(&k.p, "app.log");
    msgpack_pack_uint32(&k.p, (uint32_t)T0);
    record(&k.p, "int");
    ck_assert_int_eq(decode_pk(&k, &g, &o, &m), 0);
    ck_assert_int_eq(m, LH_FWD_MESSAGE);
    ck_assert_int_eq(g.time[0], NS(T0, 0));
    ck_assert_ptr_null(o.chunk);
    pk_free(&k);
}
END_TEST

START_TEST(forward_mode)
{
    struct lh_fwd_options o;
    enum lh_fwd_mode m;
    struct got g;
    struct pk k;

    for (int meta = 0; meta < 2; meta++) {
        pk_init(&k);
        msgpack_pack_array(&k.p, 3);
        lh_pack_cstr(&k.p, "app.log");
        msgpack_pack_array(&k.p, 2);
        pack_entries(&k, meta);
        msgpack_pack_map(&k.p, 2);
        lh_pack_cstr(&k.p, "size");
        msgpack_pack_int(&k.p, 2);
        lh_pack_cstr(&k.p, "chunk");
        msgpack_pack_bin(&k.p, 3);
        msgpack_pack_bin_body(&k.p, "b\0n", 3);
        ck_assert_int_eq(decode_pk(&k, &g, &o, &m), 0);
        ck_assert_int_eq(m, LH_FWD_FORWARD);
        check_two(&g, meta);
        ck_assert_int_eq(o.size, 2);
        ck_assert_uint_eq(o.chunk_len, 3);
        ck_assert_mem_eq(o.chunk, "b\0n", 3);
        pk_free(&k);
    }
}
END_TEST

START_TEST(packed_modes_via_encoder)
{
    struct lh_fwd_options o;
    enum lh_fwd_mode m;
    struct pk ent, k;
    struct got g;

    for (int gz = 0; gz < 2; gz++) {
        for (int meta = 0; meta < 2; meta++) {
            pk_init(&ent);
            pk_init(&k);
            pack_entries(&ent, meta);
            ck_assert_int_eq(lh_fwd_pack_packed(&k.p, "app.log", 7, ent.sb.data, ent.sb.size, 2,
                                                "chunk-id", 8, gz),
                             0);
            ck_assert_int_eq(decode_pk(&k, &g, &o, &m), 0);
            ck_assert_int_eq(m, gz ? LH_FWD_COMPRESSED : LH_FWD_PACKED);
            ck_assert(o.compressed == (bool)gz);
            check_two(&g, meta);
            ck_assert_int_eq(o.size, 2);
            ck_assert_uint_eq(o.chunk_len, 8);
            ck_assert_mem_eq(o.chunk, "chunk-id", 8);
            pk_free(&ent);
            pk_free(&k);
        }
    }
}
END_TEST

START_TEST(packed_as_str_without_chunk)
{
    /* Fluentd sends the entries as a str; no chunk means no ack wanted. */
    struct lh_fwd_options o;
    enum lh_fwd_mode m;
    struct pk ent, k;
    struct got g;

    pk_init(&ent);
    pk_init(&k);
    pack_entries(&ent, false);
    msgpack_pack_array(&k.p, 2);
    lh_pack_cstr(&k.p, "app.log");
    lh_pack_strn(&k.p, ent.sb.data, ent.sb.size);
    ck_assert_int_eq(decode_pk(&k, &g, &o, &m), 0);
    ck_assert_int_eq(m, LH_FWD_PACKED);
    check_two(&g, false);
    ck_assert_ptr_null(o.chunk);

    /* The encoder without chunk omits it. */
    pk_clear(&k);
    ck_assert_int_eq(
        lh_fwd_pack_packed(&k.p, "app.log", 7, ent.sb.data, ent.sb.size, 2, NULL, 0, false), 0);
    ck_assert_int_eq(decode_pk(&k, &g, &o, &m), 0);
    ck_assert_ptr_null(o.chunk);
    ck_assert_int_eq(o.size, 2);
    pk_free(&ent);
    pk_free(&k);
}
END_TEST

START_TEST(options_lenient)
{
    /* nil options (old Docker) and unknown keys (Fluent Bit) are fine;
     * "compressed": "text" means uncompressed. */
    struct lh_fwd_options o;
    enum lh_fwd_mode m;
    struct pk ent, k;
    struct got g;

    pk_init(&ent);
    pk_init(&k);
    pack_entries(&ent, false);
    for (int variant = 0; variant < 2; variant++) {
        pk_clear(&k);
        msgpack_pack_array(&k.p, 3);
        lh_pack_cstr(&k.p, "app.log");
        msgpack_pack_bin(&k.p, ent.sb.size);
        msgpack_pack_bin_body(&k.p, ent.sb.data, ent.sb.size);
        if (variant == 0) {
            msgpack_pack_nil(&k.p);
        } else {
            msgpack_pack_map(&k.p, 3);
            lh_pack_cstr(&k.p, "fluent_signal");
            msgpack_pack_int(&k.p, 0);
            lh_pack_cstr(&k.p, "metadata");
            msgpack_pack_map(&k.p, 0);
            lh_pack_cstr(&k.p, "compressed");
            lh_pack_cstr(&k.p, "text");
        }
        ck_assert_int_eq(decode_pk(&k, &g, &o, &m), 0);
        ck_assert_int_eq(m, LH_FWD_PACKED);
        check_two(&g, false);
    }
    pk_free(&ent);
    pk_free(&k);
}
END_TEST

START_TEST(callback_stops_decoding)
{
    struct pk ent, k;
    struct got g;

    pk_init(&ent);
    pk_init(&k);
    pack_entries(&ent, false);
    lh_fwd_pack_packed(&k.p, "app.log", 7, ent.sb.data, ent.sb.size, 2, NULL, 0, false);
    memset(&g, 0, sizeof(g));
    g.stop_after = 1;
    ck_assert_int_eq(lh_fwd_decode((const uint8_t *)k.sb.data, k.sb.size, MIB, collect, &g, NULL,
                                   NULL),
                     42);
    ck_assert_int_eq(g.n, 1);
    pk_free(&ent);
    pk_free(&k);
}
END_TEST

/* ---- gzip --------------------------------------------------------------- */

START_TEST(gzip_multi_member_and_cap)
{
    char *a, *b, *both, *out;
    size_t alen, blen, outlen;
    static char text[100000];

    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + (i * 7 + i / 13) % 26);
    ck_assert_int_eq(lh_gzip(text, 60000, &a, &alen), 0);
    ck_assert_int_eq(lh_gzip(text + 60000, 40000, &b, &blen), 0);
    ck_assert(alen > 18 && (unsigned char)a[0] == 0x1f && (unsigned char)a[1] == 0x8b);
    both = malloc(alen + blen + 4);
    memcpy(both, a, alen);
    memcpy(both + alen, b, blen);

    ck_assert_int_eq(lh_gunzip(both, alen + blen, sizeof(text), &out, &outlen), 0);
    ck_assert_uint_eq(outlen, sizeof(text));
    ck_assert_mem_eq(out, text, sizeof(text));
    free(out);
    ck_assert_int_eq(lh_gunzip(both, alen + blen, sizeof(text) - 1, &out, &outlen), LH_ETOOBIG);
    ck_assert_int_eq(lh_gunzip(both, alen + blen, 1000, &out, &outlen), LH_ETOOBIG);
    ck_assert_int_eq(lh_gunzip(both, alen + blen, 0, &out, &outlen), LH_ETOOBIG);
    /* Truncated member, trailing garbage, nothing at all: not gzip. */
    ck_assert_int_eq(lh_gunzip(both, alen + blen - 3, MIB, &out, &outlen), LH_EPROTO);
    memcpy(both + alen + blen, "junk", 4);
    ck_assert_int_eq(lh_gunzip(both, alen + blen + 4, MIB, &out, &outlen), LH_EPROTO);
    ck_assert_int_eq(lh_gunzip(both, 0, MIB, &out, &outlen), LH_EPROTO);
    ck_assert_int_eq(lh_gunzip("plain text", 10, MIB, &out, &outlen), LH_EPROTO);
    free(a);
    free(b);
    free(both);
}
END_TEST

START_TEST(gzip_empty_input)
{
    char *z, *out;
    size_t zlen, outlen;

    ck_assert_int_eq(lh_gzip("", 0, &z, &zlen), 0);
    ck_assert_int_eq(lh_gunzip(z, zlen, 10, &out, &outlen), 0);
    ck_assert_uint_eq(outlen, 0);
    free(out);
    free(z);
}
END_TEST

START_TEST(compressed_frame_multi_member_and_cap)
{
    /* Fluentd appends one gzip member per flush into the same chunk. */
    struct lh_fwd_options o;
    enum lh_fwd_mode m;
    struct pk e1, e2, k;
    char *z1, *z2;
    size_t z1len, z2len;
    struct got g;

    pk_init(&e1);
    pk_init(&e2);
    pk_init(&k);
    lh_fwd_pack_entry_begin(&e1.p, NS(T0, 1));
    record(&e1.p, "first");
    lh_fwd_pack_entry_begin(&e2.p, NS(T0 + 1, 2));
    record(&e2.p, "second");
    ck_assert_int_eq(lh_gzip(e1.sb.data, e1.sb.size, &z1, &z1len), 0);
    ck_assert_int_eq(lh_gzip(e2.sb.data, e2.sb.size, &z2, &z2len), 0);
    msgpack_pack_array(&k.p, 3);
    lh_pack_cstr(&k.p, "app.log");
    msgpack_pack_bin(&k.p, z1len + z2len);
    msgpack_pack_bin_body(&k.p, z1, z1len);
    msgpack_pack_bin_body(&k.p, z2, z2len);
    msgpack_pack_map(&k.p, 1);
    lh_pack_cstr(&k.p, "compressed");
    lh_pack_cstr(&k.p, "gzip");
    ck_assert_int_eq(decode_pk(&k, &g, &o, &m), 0);
    ck_assert_int_eq(m, LH_FWD_COMPRESSED);
    check_two(&g, false);
    ck_assert_int_eq(decode_buf(k.sb.data, k.sb.size, e1.sb.size + e2.sb.size - 1, &g, &o, &m),
                     LH_ETOOBIG);
    free(z1);
    free(z2);
    pk_free(&e1);
    pk_free(&e2);
    pk_free(&k);
}
END_TEST

/* ---- scanner ------------------------------------------------------------ */

/* One array holding every msgpack type, in both the packer's encodings and
 * hand-written wide forms it never picks. */
static void pack_every_type(struct pk *k)
{
    static const char wide[] =
        "\xd9\x01z"              /* str8 */
        "\xda\x00\x01z"          /* str16 */
        "\xdb\x00\x00\x00\x01z"  /* str32 */
        "\xc4\x01z"              /* bin8 */
        "\xc5\x00\x01z"          /* bin16 */
        "\xc6\x00\x00\x00\x01z"  /* bin32 */
        "\xdc\x00\x01\xc0"       /* array16 */
        "\xdd\x00\x00\x00\x01\xc0" /* array32 */
        "\xde\x00\x01\xc0\xc0"   /* map16 */
        "\xdf\x00\x00\x00\x01\xc0\xc0" /* map32 */
        "\xd4\x01z"              /* fixext1 */
        "\xd5\x01zz"             /* fixext2 */
        "\xd6\x01zzzz"           /* fixext4 */
        "\xd8\x01zzzzzzzzzzzzzzzz" /* fixext16 */
        "\xc7\x00\x05"           /* ext8, empty */
        "\xc8\x00\x01\x05z"      /* ext16 */
        "\xc9\x00\x00\x00\x01\x05z" /* ext32 */
        "\xcc\x01\xcd\x00\x01\xce\x00\x00\x00\x01\xcf\x00\x00\x00\x00\x00\x00\x00\x01"
        "\xd0\xff\xd1\xff\xff\xd2\xff\xff\xff\xff\xd3\xff\xff\xff\xff\xff\xff\xff\xff";
    static char big[70000];

    memset(big, 'x', sizeof(big));
    msgpack_pack_array(&k->p, 21);
    msgpack_pack_nil(&k->p);
    msgpack_pack_true(&k->p);
    msgpack_pack_false(&k->p);
    msgpack_pack_int(&k->p, 5);
    msgpack_pack_int(&k->p, -5);
    msgpack_pack_uint64(&k->p, UINT64_MAX);
    msgpack_pack_int64(&k->p, INT64_MIN);
    msgpack_pack_float(&k->p, 1.5f);
    msgpack_pack_double(&k->p, 2.5);
    lh_pack_strn(&k->p, big, 300);    /* str16 */
    lh_pack_strn(&k->p, big, 70000);  /* str32 */
    msgpack_pack_bin(&k->p, 70000);   /* bin32 */
    msgpack_pack_bin_body(&k->p, big, 70000);
    msgpack_pack_array(&k->p, 20);    /* array16 */
    for (int i = 0; i < 20; i++)
        msgpack_pack_int(&k->p, i);
    msgpack_pack_map(&k->p, 17);      /* map16 */
    for (int i = 0; i < 17; i++) {
        msgpack_pack_int(&k->p, i);
        msgpack_pack_array(&k->p, 0);
    }
    msgpack_pack_map(&k->p, 1);       /* fixmap */
    lh_pack_cstr(&k->p, "k");
    msgpack_pack_map(&k->p, 0);
    lh_pack_time(&k->p, NS(T0, 0));  /* fixext8 */
    msgpack_pack_ext(&k->p, 300, 3);  /* ext16 */
    msgpack_pack_ext_body(&k->p, big, 300);
    msgpack_pack_ext(&k->p, 70000, 3); /* ext32 */
    msgpack_pack_ext_body(&k->p, big, 70000);
    msgpack_pack_array(&k->p, 1);
    msgpack_pack_array(&k->p, 1);
    msgpack_pack_nil(&k->p);
    msgpack_pack_array(&k->p, 0);
    msgpack_pack_array(&k->p, 25); /* the hand-written wide forms */
    msgpack_sbuffer_write(&k->sb, wide, sizeof(wide) - 1);
}

START_TEST(scan_every_type)
{
    struct lh_mp_scan sc;
    msgpack_unpacked u;
    size_t flen = 0, off = 0, total;
    struct pk k;

    pk_init(&k);
    pack_every_type(&k);
    total = k.sb.size;
    /* Trailing bytes of a next frame must not be counted. */
    msgpack_pack_array(&k.p, 3);
    lh_mp_scan_init(&sc);
    ck_assert_int_eq(lh_mp_scan(&sc, (uint8_t *)k.sb.data, k.sb.size, 64 * MIB, &flen), 0);
    ck_assert_uint_eq(flen, total);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, k.sb.data, k.sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, total);
    msgpack_unpacked_destroy(&u);
    pk_free(&k);
}
END_TEST

START_TEST(scan_byte_at_a_time)
{
    struct lh_mp_scan sc;
    size_t flen = 0, len;
    struct pk k;
    int rc = LH_AGAIN;

    pk_init(&k);
    pack_every_type(&k);
    lh_mp_scan_init(&sc);
    for (len = 0; len <= k.sb.size && rc == LH_AGAIN; len++) {
        rc = lh_mp_scan(&sc, (uint8_t *)k.sb.data, len, 64 * MIB, &flen);
        if (len < k.sb.size)
            ck_assert_int_eq(rc, LH_AGAIN);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(len, k.sb.size + 1);
    ck_assert_uint_eq(flen, k.sb.size);
    /* Asking again after completion gives the same answer. */
    ck_assert_int_eq(lh_mp_scan(&sc, (uint8_t *)k.sb.data, k.sb.size, 64 * MIB, &flen), 0);
    ck_assert_uint_eq(flen, k.sb.size);
    pk_free(&k);
}
END_TEST

static int scan_bytes(const char *b, size_t n, size_t max)
{
    struct lh_mp_scan sc;
    size_t flen = 0;

    lh_mp_scan_init(&sc);
    return lh_mp_scan(&sc, (const uint8_t *)b, n, max, &flen);
}

START_TEST(scan_truncated_and_caps)
{
    /* Truncated anywhere: more bytes needed. */
    ck_assert_int_eq(scan_bytes("", 0, 100), LH_AGAIN);
    ck_assert_int_eq(scan_bytes("\x92\xa3" "ab", 4, 100), LH_AGAIN);
    ck_assert_int_eq(scan_bytes("\xcd\x01", 2, 100), LH_AGAIN);
    ck_assert_int_eq(scan_bytes("\x92\xc0", 2, 100), LH_AGAIN);
    /* A frame that needs more than max bytes. */
    ck_assert_int_eq(scan_bytes("\x92\xc0\xc0", 3, 3), 0);
    ck_assert_int_eq(scan_bytes("\x92\xc0\xc0", 3, 2), LH_ETOOBIG);
    ck_assert_int_eq(scan_bytes("\xc0", 1, 0), LH_ETOOBIG);
    /* Huge claimed lengths and counts are refused from their header alone,
     * before any of the announced bytes exist. */
    ck_assert_int_eq(scan_bytes("\xdb\xff\xff\xff\xff", 5, MIB), LH_ETOOBIG);
    ck_assert_int_eq(scan_bytes("\xc6\x00\x10\x00\x01", 5, MIB), LH_ETOOBIG);
    ck_assert_int_eq(scan_bytes("\xc6\x00\x10\x00\x00", 5, MIB), LH_ETOOBIG);
    ck_assert_int_eq(scan_bytes("\xc6\x00\x0f\xff\xfb", 5, MIB), LH_AGAIN);
    ck_assert_int_eq(scan_bytes("\xdd\xff\xff\xff\xff", 5, MIB), LH_ETOOBIG);
    ck_assert_int_eq(scan_bytes("\xdf\x80\x00\x00\x00", 5, 64 * MIB), LH_ETOOBIG);
    ck_assert_int_eq(scan_bytes("\xc9\xff\xff\xff\xff\x01", 6, MIB), LH_ETOOBIG);
    /* A map of n entries needs 2n objects: 3 entries cannot fit in 6 bytes. */
    ck_assert_int_eq(scan_bytes("\x83", 1, 6), LH_ETOOBIG);
    ck_assert_int_eq(scan_bytes("\x83", 1, 7), LH_AGAIN);
    /* Elements still owed by outer containers count too. */
    ck_assert_int_eq(scan_bytes("\x93\xa4", 2, 6), LH_ETOOBIG);
    ck_assert_int_eq(scan_bytes("\x93\xa4", 2, 8), LH_AGAIN);
}
END_TEST

START_TEST(scan_invalid_and_depth)
{
    char deep[LH_MP_MAX_DEPTH + 2];
    msgpack_unpacked u;
    size_t off = 0;

    ck_assert_int_eq(scan_bytes("\xc1", 1, 100), LH_EINVAL);
    ck_assert_int_eq(scan_bytes("\x92\xc0\xc1", 3, 100), LH_EINVAL);
    /* LH_MP_MAX_DEPTH nested arrays are fine, and msgpack-c agrees. */
    memset(deep, 0x91, sizeof(deep));
    deep[LH_MP_MAX_DEPTH] = (char)0xc0;
    ck_assert_int_eq(scan_bytes(deep, LH_MP_MAX_DEPTH + 1, 100), 0);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, deep, LH_MP_MAX_DEPTH + 1, &off),
                     MSGPACK_UNPACK_SUCCESS);
    msgpack_unpacked_destroy(&u);
    /* One more level is refused. */
    deep[LH_MP_MAX_DEPTH] = (char)0x91;
    deep[LH_MP_MAX_DEPTH + 1] = (char)0xc0;
    ck_assert_int_eq(scan_bytes(deep, LH_MP_MAX_DEPTH + 2, 100), LH_EINVAL);
}
END_TEST

/* ---- malformed frames --------------------------------------------------- */

static int decode_raw(const char *b, size_t n)
{
    struct got g;
    return decode_buf(b, n, MIB, &g, NULL, NULL);
}

#define RAW(s) decode_raw(s, sizeof(s) - 1)
/* An EventTime and a one-field record, for building frames by hand. */
#define ET "\xd7\x00\x65\x53\xf1\x00\x00\x00\x00\x00"
#define REC "\x81\xa1m\xa1x"

START_TEST(malformed_frames)
{
    ck_assert_int_eq(RAW("\x93\xa1t" ET REC), 0); /* the well-formed base */
    ck_assert_int_eq(RAW("\xa1t"), LH_EPROTO);                      /* not an array */
    ck_assert_int_eq(RAW("\x91\xa1t"), LH_EPROTO);                  /* too short */
    ck_assert_int_eq(RAW("\x93\x01" ET REC), LH_EPROTO);            /* tag not a string */
    ck_assert_int_eq(RAW("\x93\xa1t" ET "\xa1x"), LH_EPROTO);       /* record not a map */
    ck_assert_int_eq(RAW("\x93\xa1t\xc0" REC), LH_EPROTO);          /* nil time */
    ck_assert_int_eq(RAW("\x93\xa1t\xd4\x05\x00" REC), LH_EPROTO);  /* ext, not a time */
    ck_assert_int_eq(RAW("\x95\xa1t" ET REC "\x80\xc0"), LH_EPROTO); /* too long */
    ck_assert_int_eq(RAW("\x94\xa1t" ET REC "\x07"), LH_EPROTO);    /* options not a map */
    /* Forward: entries must be [time, record] arrays. */
    ck_assert_int_eq(RAW("\x92\xa1t\x91\x92" ET REC), 0);
    ck_assert_int_eq(RAW("\x92\xa1t\x92\x01\x02"), LH_EPROTO);
    ck_assert_int_eq(RAW("\x92\xa1t\x91\x93" ET REC "\xc0"), LH_EPROTO);
    ck_assert_int_eq(RAW("\x92\xa1t\x91\x92\xa3" "bad" REC), LH_EPROTO);
    ck_assert_int_eq(RAW("\x92\xa1t\x91\x92\x91" ET REC), LH_EPROTO);       /* [[time]] */
    ck_assert_int_eq(RAW("\x92\xa1t\x91\x92\x92" ET "\x01" REC), LH_EPROTO); /* meta not map */
    /* Packed: garbage or truncation inside the payload. */
    ck_assert_int_eq(RAW("\x92\xa1t\xc4\x10\x92" ET REC), 0);
    ck_assert_int_eq(RAW("\x92\xa1t\xc4\x02\xc1\x00"), LH_EPROTO);
    ck_assert_int_eq(RAW("\x92\xa1t\xc4\x0f\x92" ET "\x81\xa1m\xa1"), LH_EPROTO);
    ck_assert_int_eq(RAW("\x92\xa1t\xc4\x05\xdd\xff\xff\xff\xff"), LH_EPROTO);
    ck_assert_int_eq(RAW("\x92\xa1t\xc4\x01\x07"), LH_EPROTO);
    /* Options with wrong types, or a codec we cannot read. */
    ck_assert_int_eq(RAW("\x93\xa1t\xc4\x00\x81\xa5" "chunk\x01"), LH_EPROTO);
    ck_assert_int_eq(RAW("\x93\xa1t\xc4\x00\x81\xa4size\xa1" "1"), LH_EPROTO);
    ck_assert_int_eq(RAW("\x93\xa1t\xc4\x00\x81\xaa" "compressed\xa4zstd"), LH_EPROTO);
    ck_assert_int_eq(RAW("\x93\xa1t\xc4\x01\x00\x81\xaa" "compressed\xa4gzip"), LH_EPROTO);
}
END_TEST

/* ---- acks and chunk ids ------------------------------------------------- */

START_TEST(ack_pack_parse)
{
    static const char wire[] = "\x81\xa3" "ack\xa3" "abc";
    msgpack_unpacked u;
    const char *id;
    size_t n;
    struct pk k;

    pk_init(&k);
    ck_assert_int_eq(lh_fwd_pack_ack(&k.p, "abc", 3), 0);
    ck_assert_uint_eq(k.sb.size, sizeof(wire) - 1);
    ck_assert_mem_eq(k.sb.data, wire, sizeof(wire) - 1);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(lh_fwd_parse_ack(pk_obj(&k, &u), &id, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(id, "abc", 3);
    pk_clear(&k);
    msgpack_pack_map(&k.p, 1);
    lh_pack_cstr(&k.p, "ack");
    msgpack_pack_int(&k.p, 1);
    ck_assert_int_eq(lh_fwd_parse_ack(pk_obj(&k, &u), &id, &n), LH_EPROTO);
    pk_clear(&k);
    msgpack_pack_array(&k.p, 0);
    ck_assert_int_eq(lh_fwd_parse_ack(pk_obj(&k, &u), &id, &n), LH_EPROTO);
    msgpack_unpacked_destroy(&u);
    pk_free(&k);
}
END_TEST

START_TEST(chunk_ids)
{
    char a[LH_CHUNK_ID_LEN + 1], b[LH_CHUNK_ID_LEN + 1];

    ck_assert_int_eq(lh_fwd_chunk_id(a), 0);
    ck_assert_int_eq(lh_fwd_chunk_id(b), 0);
    ck_assert_uint_eq(strlen(a), LH_CHUNK_ID_LEN);
    ck_assert_uint_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="),
                      LH_CHUNK_ID_LEN);
    ck_assert_str_eq(a + 22, "==");
    ck_assert_str_ne(a, b);
}
END_TEST

/* ---- random mutations --------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static int count_cb(void *ud, const struct lh_fwd_event *ev)
{
    (void)ev;
    (*(int *)ud)++;
    return 0;
}

/* Feeds a byte stream through scan + unpack + decode as a connection would.
 * Returns the number of frames decoded without error. Whenever the scanner
 * declares a frame complete, msgpack-c must parse exactly those bytes. */
static int run_stream(const char *buf, size_t len, int *events)
{
    struct lh_mp_scan sc;
    msgpack_unpacked u;
    size_t pos = 0, flen, off;
    int ok = 0;

    msgpack_unpacked_init(&u);
    while (pos < len) {
        lh_mp_scan_init(&sc);
        if (lh_mp_scan(&sc, (const uint8_t *)buf + pos, len - pos, 4 * MIB, &flen) != 0)
            break;
        off = 0;
        ck_assert_int_eq(msgpack_unpack_next(&u, buf + pos, flen, &off), MSGPACK_UNPACK_SUCCESS);
        ck_assert_uint_eq(off, flen);
        if (lh_fwd_decode((const uint8_t *)buf + pos, flen, 64 * 1024, count_cb, events, NULL,
                          NULL) == 0)
            ok++;
        pos += flen;
    }
    msgpack_unpacked_destroy(&u);
    return ok;
}

static void build_stream(struct pk *k)
{
    struct pk ent;

    pk_init(&ent);
    pack_entries(&ent, true);
    msgpack_pack_array(&k->p, 4);
    lh_pack_cstr(&k->p, "m");
    lh_pack_time(&k->p, NS(T0, 0));
    record(&k->p, "msg");
    msgpack_pack_map(&k->p, 1);
    lh_pack_cstr(&k->p, "chunk");
    lh_pack_cstr(&k->p, "id");
    msgpack_pack_array(&k->p, 2);
    lh_pack_cstr(&k->p, "f");
    msgpack_pack_array(&k->p, 2);
    pack_entries(k, false);
    lh_fwd_pack_packed(&k->p, "p", 1, ent.sb.data, ent.sb.size, 2, "c", 1, false);
    lh_fwd_pack_packed(&k->p, "z", 1, ent.sb.data, ent.sb.size, 2, "c", 1, true);
    msgpack_pack_nil(&k->p); /* heartbeat */
    pk_free(&ent);
}

START_TEST(random_mutations)
{
    struct pk k;
    char *buf;
    size_t len;
    int events = 0, clean = 0, broken = 0;

    pk_init(&k);
    build_stream(&k);
    ck_assert_int_eq(run_stream(k.sb.data, k.sb.size, &events), 4);
    ck_assert_int_eq(events, 7);
    buf = malloc(k.sb.size + 64);
    rng_state = 0x9e3779b97f4a7c15ULL;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, k.sb.data, k.sb.size);
        len = k.sb.size;
        for (uint32_t nmut = 1 + rnd() % 4; nmut > 0; nmut--) {
            size_t at = rnd() % len;
            switch (rnd() % 4) {
            case 0: buf[at] ^= (char)(1u << (rnd() % 8)); break;
            case 1: buf[at] = (char)rnd(); break;
            case 2: len = at + 1; break;
            default: buf[at] = (char)(0xc0 | (rnd() % 0x40)); break;
            }
        }
        if (run_stream(buf, len, &events) == 4)
            clean++;
        else
            broken++;
    }
    /* The mutations must actually exercise both paths. */
    ck_assert_int_gt(clean, 0);
    ck_assert_int_gt(broken, 1000);
    free(buf);
    pk_free(&k);
}
END_TEST

static Suite *forward_suite(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, message_mode);
    tcase_add_test(tc, forward_mode);
    tcase_add_test(tc, packed_modes_via_encoder);
    tcase_add_test(tc, packed_as_str_without_chunk);
    tcase_add_test(tc, options_lenient);
    tcase_add_test(tc, callback_stops_decoding);
    tcase_add_test(tc, gzip_multi_member_and_cap);
    tcase_add_test(tc, gzip_empty_input);
    tcase_add_test(tc, compressed_frame_multi_member_and_cap);
    tcase_add_test(tc, scan_every_type);
    tcase_add_test(tc, scan_byte_at_a_time);
    tcase_add_test(tc, scan_truncated_and_caps);
    tcase_add_test(tc, scan_invalid_and_depth);
    tcase_add_test(tc, malformed_frames);
    tcase_add_test(tc, ack_pack_parse);
    tcase_add_test(tc, chunk_ids);
    tcase_add_test(tc, random_mutations);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(forward_suite());
}
