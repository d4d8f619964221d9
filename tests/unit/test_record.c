/* Record helpers: EventTime, map access, record -> JSON line. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/record.h"
#include "tests/unit/lh_check.h"

#define T0 1700000000LL /* 2023-11-14T22:13:20Z */
#define NS(s, frac) ((s) * 1000000000LL + (frac))

struct mp {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
};

static void mp_init(struct mp *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
    msgpack_unpacked_init(&m->u);
}

static void mp_free(struct mp *m)
{
    msgpack_unpacked_destroy(&m->u);
    msgpack_sbuffer_destroy(&m->sb);
}

/* Unpacks what was packed; the object lives until mp_free. */
static const msgpack_object *mp_obj(struct mp *m)
{
    size_t off = 0;

    ck_assert_int_eq(msgpack_unpack_next(&m->u, m->sb.data, m->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, m->sb.size);
    return &m->u.data;
}

static const msgpack_object *obj_from_bytes(msgpack_unpacked *u, const char *b, size_t n)
{
    size_t off = 0;

    ck_assert_int_eq(msgpack_unpack_next(u, b, n, &off), MSGPACK_UNPACK_SUCCESS);
    return &u->data;
}

static void kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    lh_pack_cstr(pk, k);
    lh_pack_cstr(pk, v);
}

static char *render(struct mp *m, const char *default_host)
{
    char *s = lh_record_json("app.web", 7, NS(T0, 123456789), mp_obj(m), default_host);

    ck_assert_ptr_nonnull(s);
    return s;
}

START_TEST(event_time_roundtrip)
{
    static const unsigned char wire[] = {0xd7, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x07, 0x5b, 0xcd, 0x15};
    struct mp m;
    int64_t ns = 0;

    mp_init(&m);
    ck_assert_int_eq(lh_pack_time(&m.pk, NS(T0, 123456789)), 0);
    ck_assert_uint_eq(m.sb.size, sizeof(wire));
    ck_assert_mem_eq(m.sb.data, wire, sizeof(wire));
    ck_assert_int_eq(lh_time_from_obj(mp_obj(&m), &ns), 0);
    ck_assert_int_eq(ns, NS(T0, 123456789));
    mp_free(&m);
}
END_TEST

START_TEST(event_time_ext8)
{
    /* ext8 (c7 08 00) carries the same EventTime as fixext8. */
    static const char wire[] = "\xc7\x08\x00\x65\x53\xf1\x00\x00\x00\x00\x2a";
    msgpack_unpacked u;
    int64_t ns = 0;

    msgpack_unpacked_init(&u);
    ck_assert_int_eq(lh_time_from_obj(obj_from_bytes(&u, wire, sizeof(wire) - 1), &ns), 0);
    ck_assert_int_eq(ns, NS(T0, 42));
    msgpack_unpacked_destroy(&u);
}
END_TEST

START_TEST(event_time_out_of_range)
{
    struct mp m;

    mp_init(&m);
    ck_assert_int_eq(lh_pack_time(&m.pk, -1), LH_EINVAL);
    ck_assert_int_eq(lh_pack_time(&m.pk, NS(4294967296LL, 0)), LH_EINVAL);
    ck_assert_int_eq(lh_pack_time(&m.pk, NS(4294967295LL, 999999999)), 0);
    mp_free(&m);
}
END_TEST

static int time_of(void (*pack)(msgpack_packer *), int64_t *ns)
{
    struct mp m;
    int rc;

    mp_init(&m);
    pack(&m.pk);
    rc = lh_time_from_obj(mp_obj(&m), ns);
    mp_free(&m);
    return rc;
}

static void p_int(msgpack_packer *pk) { msgpack_pack_uint32(pk, (uint32_t)T0); }
static void p_neg(msgpack_packer *pk) { msgpack_pack_int64(pk, -5); }
static void p_f64(msgpack_packer *pk) { msgpack_pack_double(pk, 1.5); }
static void p_f32(msgpack_packer *pk) { msgpack_pack_float(pk, 2.25f); }
static void p_huge(msgpack_packer *pk) { msgpack_pack_uint64(pk, UINT64_MAX); }
static void p_str(msgpack_packer *pk) { lh_pack_cstr(pk, "1700000000"); }
static void p_nan(msgpack_packer *pk) { msgpack_pack_double(pk, 0.0 / 0.0); }
static void p_ext1(msgpack_packer *pk)
{
    msgpack_pack_ext(pk, 8, 1);
    msgpack_pack_ext_body(pk, "\0\0\0\1\0\0\0\0", 8);
}
static void p_ext4(msgpack_packer *pk)
{
    msgpack_pack_ext(pk, 4, 0);
    msgpack_pack_ext_body(pk, "\0\0\0\1", 4);
}

START_TEST(time_int_float_and_rejects)
{
    int64_t ns = 0;

    ck_assert_int_eq(time_of(p_int, &ns), 0);
    ck_assert_int_eq(ns, NS(T0, 0));
    ck_assert_int_eq(time_of(p_neg, &ns), 0);
    ck_assert_int_eq(ns, 0); /* clamped, see time_clamped_to_event_time */
    ck_assert_int_eq(time_of(p_f64, &ns), 0);
    ck_assert_int_eq(ns, 1500000000LL);
    ck_assert_int_eq(time_of(p_f32, &ns), 0);
    ck_assert_int_eq(ns, 2250000000LL);
    ck_assert_int_eq(time_of(p_huge, &ns), 0);
    ck_assert_int_eq(ns, LH_TIME_MAX_NS);
    ck_assert_int_eq(time_of(p_str, &ns), LH_EINVAL);
    ck_assert_int_eq(time_of(p_nan, &ns), LH_EINVAL);
    ck_assert_int_eq(time_of(p_ext1, &ns), LH_EINVAL);
    ck_assert_int_eq(time_of(p_ext4, &ns), LH_EINVAL);
}
END_TEST

static void p_5e9(msgpack_packer *pk) { msgpack_pack_uint64(pk, 5000000000ULL); }
static void p_2106(msgpack_packer *pk) { msgpack_pack_uint64(pk, 4294967295ULL); }
static void p_fneg(msgpack_packer *pk) { msgpack_pack_double(pk, -1.5); }
static void p_f5e9(msgpack_packer *pk) { msgpack_pack_double(pk, 5e9); }
static void p_fbig(msgpack_packer *pk) { msgpack_pack_double(pk, 1e300); }
static void p_finf(msgpack_packer *pk) { msgpack_pack_double(pk, 1.0 / 0.0); }
static void p_nsec_max(msgpack_packer *pk)
{
    msgpack_pack_ext(pk, 8, 0);
    msgpack_pack_ext_body(pk, "\x65\x53\xf1\x00\xff\xff\xff\xff", 8);
}
static void p_nsec_1e9(msgpack_packer *pk)
{
    msgpack_pack_ext(pk, 8, 0);
    msgpack_pack_ext_body(pk, "\x65\x53\xf1\x00\x3b\x9a\xca\x00", 8);
}

/* Whatever lh_time_from_obj reads, lh_pack_time packs: a time outside
 * EventTime's range is clamped to the nearer end, and a nanoseconds field
 * past 999999999 stays in its second. Before, -5 and 5e9 seconds were read
 * and then refused by lh_pack_time (the collector closed the connection
 * without an ack: resent forever), and 0xffffffff ns moved a record 4.29 s
 * later. */
START_TEST(time_clamped_to_event_time)
{
    static const struct {
        void (*pack)(msgpack_packer *);
        int64_t want;
    } cases[] = {
        {p_neg, 0},
        {p_fneg, 0},
        {p_5e9, LH_TIME_MAX_NS},
        {p_f5e9, LH_TIME_MAX_NS},
        {p_fbig, LH_TIME_MAX_NS},
        {p_huge, LH_TIME_MAX_NS},
        {p_2106, 4294967295LL * 1000000000LL},
        {p_nsec_max, NS(T0, 999999999)},
        {p_nsec_1e9, NS(T0, 999999999)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ns = -1;
        struct mp m;
        ck_assert_int_eq(time_of(cases[i].pack, &ns), 0);
        ck_assert_msg(ns == cases[i].want, "case %zu: %lld, want %lld", i, (long long)ns,
                      (long long)cases[i].want);
        mp_init(&m);
        ck_assert_int_eq(lh_pack_time(&m.pk, ns), 0);
        mp_free(&m);
    }
    int64_t ns;
    ck_assert_int_eq(time_of(p_finf, &ns), LH_EINVAL);
    ck_assert_int_eq(lh_event_time_body_ns("\x65\x53\xf1\x00\xff\xff\xff\xff"),
                     NS(T0, 999999999));
}
END_TEST

START_TEST(map_get)
{
    struct mp m;
    const msgpack_object *o, *v;
    const char *p;
    size_t n;

    mp_init(&m);
    msgpack_pack_map(&m.pk, 4);
    kv_str(&m.pk, "a", "1");
    msgpack_pack_bin(&m.pk, 2);
    msgpack_pack_bin_body(&m.pk, "bk", 2);
    msgpack_pack_int(&m.pk, 7);
    msgpack_pack_int(&m.pk, 3);
    lh_pack_cstr(&m.pk, "three");
    kv_str(&m.pk, "ab", "2");
    o = mp_obj(&m);
    v = lh_map_get(o, "a");
    ck_assert_ptr_nonnull(v);
    ck_assert(lh_obj_bytes(v, &p, &n));
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(p[0], '1');
    v = lh_map_get(o, "bk");
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(v->via.i64, 7);
    ck_assert_ptr_null(lh_map_get(o, "missing"));
    ck_assert_ptr_null(lh_map_get(o, "3"));
    ck_assert_ptr_null(lh_map_get(&o->via.map.ptr[0].val, "a"));
    ck_assert(!lh_obj_bytes(v, &p, &n));
    mp_free(&m);
}
END_TEST

START_TEST(json_order_fixed)
{
    struct mp m;
    char *s;

    mp_init(&m);
    msgpack_pack_map(&m.pk, 5);
    kv_str(&m.pk, "zeta", "z");
    kv_str(&m.pk, "message", "hello");
    msgpack_pack_str(&m.pk, 5);
    msgpack_pack_str_body(&m.pk, "count", 5);
    msgpack_pack_int(&m.pk, 3);
    kv_str(&m.pk, "alpha", "a");
    kv_str(&m.pk, "host", "web1");
    s = render(&m, "fallback");
    ck_assert_str_eq(s, "{\"time\":\"2023-11-14T22:13:20.123456789Z\",\"tag\":\"app.web\","
                        "\"host\":\"web1\",\"message\":\"hello\",\"zeta\":\"z\",\"count\":3,"
                        "\"alpha\":\"a\"}");
    free(s);
    mp_free(&m);
}
END_TEST

START_TEST(json_keeps_insertion_order)
{
    /* jansson 2.14 keeps object keys in insertion order: 40 keys packed in
     * descending order must come out the same way, not sorted or hashed. */
    char key[8], expect[1024] = "", *s, *p;
    struct mp m;

    mp_init(&m);
    msgpack_pack_map(&m.pk, 40);
    for (int i = 39; i >= 0; i--) {
        snprintf(key, sizeof(key), "k%02d", i);
        lh_pack_cstr(&m.pk, key);
        msgpack_pack_int(&m.pk, i);
        snprintf(expect + strlen(expect), sizeof(expect) - strlen(expect), ",\"k%02d\":%d", i, i);
    }
    s = render(&m, NULL);
    p = strstr(s, ",\"k39\"");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(strncmp(s, "{\"time\":", 8), 0);
    ck_assert_uint_eq(strlen(p), strlen(expect) + 1);
    ck_assert_int_eq(strncmp(p, expect, strlen(expect)), 0);
    free(s);
    mp_free(&m);
}
END_TEST

START_TEST(json_log_becomes_message)
{
    struct mp m;
    char *s;

    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    kv_str(&m.pk, "stream", "stdout");
    kv_str(&m.pk, "log", "a line");
    s = render(&m, "agent1");
    ck_assert_str_eq(s, "{\"time\":\"2023-11-14T22:13:20.123456789Z\",\"tag\":\"app.web\","
                        "\"host\":\"agent1\",\"message\":\"a line\",\"stream\":\"stdout\"}");
    free(s);
    mp_free(&m);

    /* With a message present, log is an ordinary field. */
    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    kv_str(&m.pk, "log", "raw");
    kv_str(&m.pk, "message", "msg");
    s = render(&m, NULL);
    ck_assert_str_eq(s, "{\"time\":\"2023-11-14T22:13:20.123456789Z\",\"tag\":\"app.web\","
                        "\"message\":\"msg\",\"log\":\"raw\"}");
    free(s);
    mp_free(&m);
}
END_TEST

START_TEST(json_host_fallback)
{
    struct mp m;
    char *s;

    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    kv_str(&m.pk, "message", "m");
    s = render(&m, "10.0.0.5");
    ck_assert_ptr_nonnull(strstr(s, "\"tag\":\"app.web\",\"host\":\"10.0.0.5\",\"message\""));
    free(s);
    s = render(&m, NULL);
    ck_assert_ptr_null(strstr(s, "\"host\""));
    free(s);
    mp_free(&m);
}
END_TEST

START_TEST(json_reserved_fields_not_duplicated)
{
    struct mp m;
    char *s;

    mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    kv_str(&m.pk, "time", "yesterday");
    kv_str(&m.pk, "tag", "other");
    kv_str(&m.pk, "message", "m");
    s = render(&m, NULL);
    ck_assert_str_eq(s, "{\"time\":\"2023-11-14T22:13:20.123456789Z\",\"tag\":\"app.web\","
                        "\"message\":\"m\"}");
    free(s);
    mp_free(&m);
}
END_TEST

START_TEST(json_invalid_utf8)
{
    /* Each byte that starts no valid sequence becomes U+FFFD; valid
     * multi-byte text stays raw UTF-8, not \u escapes. */
    static const char bad[] = "a\xff" "b\xc0\xaf" "c\xed\xa0\x80" "d\xe2\x82";
    static const char good[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    struct mp m;
    char *s;

    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    kv_str(&m.pk, "message", bad);
    kv_str(&m.pk, "ok", good);
    s = render(&m, NULL);
    ck_assert_ptr_nonnull(strstr(s, "\"message\":\"a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
                                    "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                    "d\xef\xbf\xbd\xef\xbf\xbd\""));
    ck_assert_ptr_nonnull(strstr(s, "\"ok\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}"));
    free(s);
    mp_free(&m);
}
END_TEST

START_TEST(json_nested_and_odd_types)
{
    struct mp m;
    char *s;

    mp_init(&m);
    msgpack_pack_map(&m.pk, 7);
    kv_str(&m.pk, "message", "x");
    lh_pack_cstr(&m.pk, "sd");
    msgpack_pack_map(&m.pk, 1);
    lh_pack_cstr(&m.pk, "origin@1");
    msgpack_pack_map(&m.pk, 1);
    lh_pack_cstr(&m.pk, "ip");
    msgpack_pack_array(&m.pk, 4);
    msgpack_pack_int(&m.pk, -1);
    msgpack_pack_true(&m.pk);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_double(&m.pk, 1.5);
    msgpack_pack_int(&m.pk, 5);
    lh_pack_cstr(&m.pk, "five");
    lh_pack_cstr(&m.pk, "raw");
    msgpack_pack_bin(&m.pk, 4);
    msgpack_pack_bin_body(&m.pk, "b\0\xfe!", 4);
    lh_pack_cstr(&m.pk, "at");
    lh_pack_time(&m.pk, NS(T0, 5));
    lh_pack_cstr(&m.pk, "blob");
    msgpack_pack_ext(&m.pk, 3, 9);
    msgpack_pack_ext_body(&m.pk, "\x01\xab\xff", 3);
    lh_pack_cstr(&m.pk, "big");
    msgpack_pack_uint64(&m.pk, UINT64_MAX);
    s = render(&m, NULL);
    ck_assert_str_eq(s, "{\"time\":\"2023-11-14T22:13:20.123456789Z\",\"tag\":\"app.web\","
                        "\"message\":\"x\","
                        "\"sd\":{\"origin@1\":{\"ip\":[-1,true,null,1.5]}},"
                        "\"5\":\"five\",\"raw\":\"b\\u0000\xef\xbf\xbd!\","
                        "\"at\":\"2023-11-14T22:13:20.000000005Z\",\"blob\":\"01abff\","
                        "\"big\":1.8446744073709552e19}");
    free(s);
    mp_free(&m);
}
END_TEST

/* Bad UTF-8 of every kind, wherever it sits in a record, comes out as JSON
 * a strict parser reads back, each offending byte as U+FFFD. */
#define REPL "\xef\xbf\xbd"

struct utf8_case {
    const char *in;
    size_t len;
    const char *want; /* what the JSON string decodes to */
};

static const struct utf8_case utf8_cases[] = {
    {"x\x80y", 3, "x" REPL "y"},                          /* lone continuation */
    {"\xbf\xbf", 2, REPL REPL},
    {"\xc0\xaf", 2, REPL REPL},                           /* overlong '/' */
    {"\xc1\xbf", 2, REPL REPL},
    {"\xe0\x80\xaf", 3, REPL REPL REPL},                  /* overlong, 3 bytes */
    {"\xf0\x80\x80\xaf", 4, REPL REPL REPL REPL},         /* overlong, 4 bytes */
    {"end\xe2\x82", 5, "end" REPL REPL},                  /* truncated at the end */
    {"\xe2\x82z", 3, REPL REPL "z"},                      /* truncated inside */
    {"\xf0\x9f\x98", 3, REPL REPL REPL},
    {"\xed\xa0\x80", 3, REPL REPL REPL},                  /* surrogate U+D800 */
    {"\xed\xbf\xbf", 3, REPL REPL REPL},                  /* surrogate U+DFFF */
    {"\xff", 1, REPL},
    {"\xfe\xff", 2, REPL REPL},
    {"\xf4\x90\x80\x80", 4, REPL REPL REPL REPL},         /* past U+10FFFF */
    {"\xf5\x80", 2, REPL REPL},
    {"ok \xc3\xa9 \xf0\x9f\x98\x80", 10, "ok \xc3\xa9 \xf0\x9f\x98\x80"}, /* valid stays */
    {"ctl\x01\x1f\x7f\n\t\"\\", 10, NULL},                 /* escapes: compared by length */
};

static void pack_bytes(msgpack_packer *pk, const char *p, size_t n)
{
    ck_assert_int_eq(lh_pack_strn(pk, p, n), 0);
}

/* fields: {message: B, host: B, B: "k", nested: {B: [B, bin B]}} */
static char *render_everywhere(const struct utf8_case *c)
{
    struct mp m;

    mp_init(&m);
    msgpack_pack_map(&m.pk, 4);
    lh_pack_cstr(&m.pk, "message");
    pack_bytes(&m.pk, c->in, c->len);
    lh_pack_cstr(&m.pk, "host");
    pack_bytes(&m.pk, c->in, c->len);
    pack_bytes(&m.pk, c->in, c->len);
    lh_pack_cstr(&m.pk, "k");
    lh_pack_cstr(&m.pk, "nested");
    msgpack_pack_map(&m.pk, 1);
    pack_bytes(&m.pk, c->in, c->len);
    msgpack_pack_array(&m.pk, 2);
    pack_bytes(&m.pk, c->in, c->len);
    msgpack_pack_bin(&m.pk, c->len);
    msgpack_pack_bin_body(&m.pk, c->in, c->len);
    char *s = lh_record_json(c->in, c->len, NS(T0, 0), mp_obj(&m), NULL);
    mp_free(&m);
    ck_assert_ptr_nonnull(s);
    return s;
}

static void check_str(const json_t *v, const struct utf8_case *c, const char *where)
{
    ck_assert_msg(json_is_string(v), "%s: not a string", where);
    if (c->want == NULL) {
        ck_assert_uint_eq(json_string_length(v), c->len);
        ck_assert(memcmp(json_string_value(v), c->in, c->len) == 0);
        return;
    }
    ck_assert_msg(json_string_length(v) == strlen(c->want) &&
                      memcmp(json_string_value(v), c->want, strlen(c->want)) == 0,
                  "%s: got [%s] want [%s]", where, json_string_value(v), c->want);
}

/* The one key of obj other than the ones named. */
static const char *other_key(json_t *obj, size_t *len)
{
    const char *k;
    size_t kl;
    json_t *v;

    json_object_keylen_foreach(obj, k, kl, v)
    {
        (void)v;
        if (strcmp(k, "time") && strcmp(k, "tag") && strcmp(k, "host") && strcmp(k, "message") &&
            strcmp(k, "nested")) {
            *len = kl;
            return k;
        }
    }
    return NULL;
}

START_TEST(json_always_valid)
{
    for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
        const struct utf8_case *c = &utf8_cases[i];
        char *line = render_everywhere(c);
        json_error_t e;
        /* Strict UTF-8 parsing; NUL is only allowed as the \u0000 escape. */
        json_t *o = json_loads(line, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &e);
        ck_assert_msg(json_is_object(o), "case %zu: %s in %s", i, e.text, line);
        ck_assert_msg(strchr(line, '\n') == NULL && strchr(line, '\x01') == NULL,
                      "case %zu: raw control bytes in %s", i, line);
        check_str(json_object_get(o, "tag"), c, "tag");
        check_str(json_object_get(o, "host"), c, "host");
        check_str(json_object_get(o, "message"), c, "message");
        size_t kl;
        const char *k = other_key(o, &kl);
        ck_assert_ptr_nonnull(k);
        json_t *key = json_stringn(k, kl);
        check_str(key, c, "key");
        json_decref(key);
        json_t *nested = json_object_get(o, "nested");
        ck_assert_uint_eq(json_object_size(nested), 1);
        json_t *arr = json_object_iter_value(json_object_iter(nested));
        key = json_stringn(json_object_iter_key(json_object_iter(nested)),
                           json_object_iter_key_len(json_object_iter(nested)));
        check_str(key, c, "nested key");
        json_decref(key);
        check_str(json_array_get(arr, 0), c, "array element");
        check_str(json_array_get(arr, 1), c, "bin");
        json_decref(o);
        free(line);
    }
}
END_TEST

/* NUL is kept, as \u0000, in values and keys alike (jansson reads it back
 * in values only). */
START_TEST(json_nul_escaped)
{
    struct mp m;
    char *s;

    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    pack_bytes(&m.pk, "message", 7);
    pack_bytes(&m.pk, "a\0b", 3);
    pack_bytes(&m.pk, "k\0", 2);
    pack_bytes(&m.pk, "v", 1);
    s = render(&m, NULL);
    ck_assert_str_eq(s, "{\"time\":\"2023-11-14T22:13:20.123456789Z\",\"tag\":\"app.web\","
                        "\"message\":\"a\\u0000b\",\"k\\u0000\":\"v\"}");
    free(s);
    mp_free(&m);
}
END_TEST

START_TEST(utf8_validator)
{
    for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
        const struct utf8_case *c = &utf8_cases[i];
        bool valid = c->want == NULL || strcmp(c->in, c->want) == 0;
        ck_assert_msg(lh_utf8_valid(c->in, c->len) == valid, "case %zu", i);
    }
    ck_assert(lh_utf8_valid("", 0));
}
END_TEST

static Suite *record_suite(void)
{
    Suite *s = suite_create("record");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, event_time_roundtrip);
    tcase_add_test(tc, event_time_ext8);
    tcase_add_test(tc, event_time_out_of_range);
    tcase_add_test(tc, time_int_float_and_rejects);
    tcase_add_test(tc, time_clamped_to_event_time);
    tcase_add_test(tc, map_get);
    tcase_add_test(tc, json_order_fixed);
    tcase_add_test(tc, json_keeps_insertion_order);
    tcase_add_test(tc, json_log_becomes_message);
    tcase_add_test(tc, json_host_fallback);
    tcase_add_test(tc, json_reserved_fields_not_duplicated);
    tcase_add_test(tc, json_invalid_utf8);
    tcase_add_test(tc, json_nested_and_odd_types);
    tcase_add_test(tc, json_always_valid);
    tcase_add_test(tc, json_nul_escaped);
    tcase_add_test(tc, utf8_validator);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(record_suite());
}
