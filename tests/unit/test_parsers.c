/* Line parsers (json, logfmt, regex), time_key/time_format, and the
 * transform that keeps unparsable lines raw. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/transform/parsers/parse.h"
#include "agent/core/recbuilder.h"
#include "agent/transform/transform.h"
#include "common/base/err.h"
#include "common/codec/forward.h"
#include "common/base/metrics.h"
#include "common/codec/record.h"
#include "lh_check.h"

/* The builder packed and unpacked again, as a batch would hold it. */
struct packed {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
};


static void do_pack(struct lh_recbuilder *rb, struct packed *p)
{
    msgpack_sbuffer_init(&p->sb);
    ck_assert_int_eq(lh_rb_pack(&p->sb, rb), 0);
    msgpack_unpacked_init(&p->u);
    size_t off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&p->u, p->sb.data, p->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, p->sb.size);
    ck_assert_int_eq(p->u.data.type, MSGPACK_OBJECT_MAP);
}

static void done(struct packed *p)
{
    msgpack_unpacked_destroy(&p->u);
    msgpack_sbuffer_destroy(&p->sb);
}

static void assert_str(const msgpack_object *map, const char *key, const char *want)
{
    const msgpack_object *o = lh_map_get(map, key);
    ck_assert_msg(o != NULL, "no field %s", key);
    const char *p;
    size_t n;
    ck_assert(lh_obj_bytes(o, &p, &n));
    ck_assert_uint_eq(n, strlen(want));
    ck_assert(memcmp(p, want, n) == 0);
}

static int64_t get_int(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = lh_map_get(map, key);
    ck_assert_ptr_nonnull(o);
    ck_assert(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
              o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    return o->via.i64;
}

/* ---- json ----------------------------------------------------------------- */

START_TEST(json_flat_and_nested)
{
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    const char *line = "{\"level\":\"info\",\"n\":-42,\"f\":1.5,\"ok\":true,\"no\":null,"
                       "\"req\":{\"path\":\"/x\",\"hdr\":{\"a\":[1,\"b\",{}]}},\"list\":[1,2]}";
    ck_assert_int_eq(lh_parse_json(&rb, line, strlen(line)), 0);
    struct packed p;
    do_pack(&rb, &p);
    const msgpack_object *m = &p.u.data;
    ck_assert_uint_eq(m->via.map.size, 7);
    assert_str(m, "level", "info");
    ck_assert_int_eq(get_int(m, "n"), -42);
    ck_assert(fabs(lh_map_get(m, "f")->via.f64 - 1.5) < 1e-9);
    ck_assert_int_eq(lh_map_get(m, "ok")->type, MSGPACK_OBJECT_BOOLEAN);
    ck_assert_int_eq(lh_map_get(m, "no")->type, MSGPACK_OBJECT_NIL);
    const msgpack_object *req = lh_map_get(m, "req");
    ck_assert_int_eq(req->type, MSGPACK_OBJECT_MAP);
    assert_str(req, "path", "/x");
    const msgpack_object *hdr = lh_map_get(req, "hdr");
    ck_assert_int_eq(hdr->type, MSGPACK_OBJECT_MAP);
    const msgpack_object *a = lh_map_get(hdr, "a");
    ck_assert_int_eq(a->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(a->via.array.size, 3);
    ck_assert_int_eq(a->via.array.ptr[2].type, MSGPACK_OBJECT_MAP);
    ck_assert_int_eq(lh_map_get(m, "list")->type, MSGPACK_OBJECT_ARRAY);
    done(&p);
    lh_rb_free(&rb);
}
END_TEST

START_TEST(json_malformed)
{
    static const char *bad[] = {
        "", "   ", "not json", "[1,2,3]", "\"str\"", "42", "{", "{\"a\":", "{\"a\":1,}",
        "{\"a\":1} trailing", "{'a':1}", "{\"a\":\"\\uZZZZ\"}", "{\"a\":1}{\"b\":2}",
    };
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lh_rb_reset(&rb);
        ck_assert_msg(lh_parse_json(&rb, bad[i], strlen(bad[i])) < 0, "accepted %s",
                      bad[i]);
    }
    /* Deeper than the cap: rejected, not a stack overflow. */
    char deep[600];
    size_t n = 0;
    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = 'a';
    deep[n++] = '"';
    deep[n++] = ':';
    for (int i = 0; i < 200; i++)
        deep[n++] = '[';
    for (int i = 0; i < 200; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    lh_rb_reset(&rb);
    ck_assert_int_lt(lh_parse_json(&rb, deep, n), 0);
    lh_rb_free(&rb);
}
END_TEST

/* Parses line (which must be accepted) and unpacks the fields. */
static void parse_ok(struct lh_recbuilder *rb, const char *line, size_t n, struct packed *p)
{
    lh_rb_reset(rb);
    ck_assert_msg(lh_parse_json(rb, line, n) == 0, "rejected %.*s", (int)n, line);
    do_pack(rb, p);
}

static int parse_rc(struct lh_recbuilder *rb, const char *line, size_t n)
{
    lh_rb_reset(rb);
    int rc = lh_parse_json(rb, line, n);
    return rc;
}

/* {"a": + levels-1 arrays, the innermost holding 7 }: levels of nesting. */
static size_t nested_line(char *buf, int levels)
{
    size_t n = (size_t)sprintf(buf, "{\"a\":");
    for (int i = 1; i < levels; i++)
        buf[n++] = '[';
    buf[n++] = '7';
    for (int i = 1; i < levels; i++)
        buf[n++] = ']';
    buf[n++] = '}';
    return n;
}

START_TEST(json_depth_cap)
{
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    char line[300];
    /* Up to the cap, including the line's object, and readable back. */
    size_t n = nested_line(line, LH_PARSE_JSON_MAX_DEPTH);
    struct packed p;
    parse_ok(&rb, line, n, &p);
    const msgpack_object *o = lh_map_get(&p.u.data, "a");
    for (int i = 1; i < LH_PARSE_JSON_MAX_DEPTH; i++) {
        ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(o->via.array.size, 1);
        o = &o->via.array.ptr[0];
    }
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_int_eq(o->via.i64, 7);
    done(&p);
    n = nested_line(line, LH_PARSE_JSON_MAX_DEPTH + 1);
    ck_assert_int_eq(parse_rc(&rb, line, n), LH_EINVAL);
    lh_rb_free(&rb);
}
END_TEST

START_TEST(json_numbers)
{
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    const char *line = "{\"max\":9223372036854775807,\"min\":-9223372036854775808,\"zero\":-0,"
                       "\"e\":1e3,\"neg\":-0.25,\"in\":[3,-4,2.5]}";
    struct packed p;
    parse_ok(&rb, line, strlen(line), &p);
    const msgpack_object *m = &p.u.data;
    ck_assert_int_eq(get_int(m, "max"), INT64_MAX);
    ck_assert_int_eq(get_int(m, "min"), INT64_MIN);
    ck_assert_int_eq(get_int(m, "zero"), 0);
    ck_assert_int_eq(lh_map_get(m, "e")->type, MSGPACK_OBJECT_FLOAT64);
    ck_assert(lh_map_get(m, "e")->via.f64 == 1000.0);
    ck_assert(lh_map_get(m, "neg")->via.f64 == -0.25);
    const msgpack_object *in = lh_map_get(m, "in");
    ck_assert_int_eq(in->via.array.ptr[0].via.i64, 3);
    ck_assert_int_eq(in->via.array.ptr[1].via.i64, -4);
    ck_assert_int_eq(in->via.array.ptr[2].type, MSGPACK_OBJECT_FLOAT64);
    done(&p);
    static const char *bad[] = {"{\"a\":9223372036854775808}", "{\"a\":1e999}", "{\"a\":01}",
                                "{\"a\":1.}", "{\"a\":+1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(parse_rc(&rb, bad[i], strlen(bad[i])) < 0, "accepted %s", bad[i]);
    lh_rb_free(&rb);
}
END_TEST

/* Escaped strings are unescaped into a buffer the parser reuses: every
 * key and value must still be right once the whole line is parsed. */
START_TEST(json_escapes)
{
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    const char *line = "{\"k\\u00e9y\":\"caf\\u00e9 \\\"q\\\"\",\"t\\tab\":\"\\ud83d\\ude00\","
                       "\"n\\u0041me\":{\"x\\u0042\":\"\\u0043\\n\",\"l\":[\"\\/\",\"plain\"]},"
                       "\"plain\":\"a\\\\b\"}";
    struct packed p;
    parse_ok(&rb, line, strlen(line), &p);
    const msgpack_object *m = &p.u.data;
    ck_assert_uint_eq(m->via.map.size, 4);
    assert_str(m, "k\xc3\xa9y", "caf\xc3\xa9 \"q\"");
    assert_str(m, "t\tab", "\xf0\x9f\x98\x80");
    assert_str(m, "plain", "a\\b");
    const msgpack_object *nm = lh_map_get(m, "nAme");
    ck_assert_ptr_nonnull(nm);
    ck_assert_int_eq(nm->type, MSGPACK_OBJECT_MAP);
    assert_str(nm, "xB", "C\n");
    const msgpack_object *l = lh_map_get(nm, "l");
    ck_assert_uint_eq(l->via.array.size, 2);
    ck_assert_uint_eq(l->via.array.ptr[0].via.str.size, 1);
    ck_assert(memcmp(l->via.array.ptr[0].via.str.ptr, "/", 1) == 0);
    done(&p);
    /* \u0000 is kept as a byte of the string. */
    line = "{\"z\":\"x\\u0000y\"}";
    parse_ok(&rb, line, strlen(line), &p);
    const msgpack_object *z = lh_map_get(&p.u.data, "z");
    ck_assert_uint_eq(z->via.str.size, 3);
    ck_assert(memcmp(z->via.str.ptr, "x\0y", 3) == 0);
    done(&p);
    /* Raw bytes that are not UTF-8, and control characters, are not JSON. */
    ck_assert_int_lt(parse_rc(&rb, "{\"a\":\"\xff\"}", 9), 0);
    ck_assert_int_lt(parse_rc(&rb, "{\"a\":\"x\ty\"}", 11), 0);
    lh_rb_free(&rb);
}
END_TEST

/* Container headers are patched to the element counts, whatever size. */
START_TEST(json_large_containers)
{
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    const size_t counts[] = {0, 15, 16, 65535, 65536};
    size_t cap = 16 + 16 * 65536;
    char *line = malloc(cap);
    ck_assert_ptr_nonnull(line);
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        size_t n = (size_t)sprintf(line, "{\"m\":{");
        for (size_t i = 0; i < counts[c]; i++)
            n += (size_t)sprintf(line + n, "%s\"%zx\":[%zu]", i ? "," : "", i, i);
        n += (size_t)sprintf(line + n, "},\"z\":1}");
        struct packed p;
        parse_ok(&rb, line, n, &p);
        const msgpack_object *m = lh_map_get(&p.u.data, "m");
        ck_assert_int_eq(m->type, MSGPACK_OBJECT_MAP);
        ck_assert_uint_eq(m->via.map.size, counts[c]);
        if (counts[c] > 0) {
            const msgpack_object_kv *last = &m->via.map.ptr[counts[c] - 1];
            ck_assert_uint_eq(last->val.via.array.size, 1);
            ck_assert_uint_eq(last->val.via.array.ptr[0].via.u64, counts[c] - 1);
        }
        ck_assert_int_eq(get_int(&p.u.data, "z"), 1);
        done(&p);
    }
    free(line);
    lh_rb_free(&rb);
}
END_TEST

START_TEST(json_duplicate_and_message)
{
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    lh_rb_add_str(&rb, "message", 7, "raw", 3);
    const char *line = "{\"a\":1,\"message\":\"parsed\",\"a\":{\"b\":2}}";
    ck_assert_int_eq(lh_parse_json(&rb, line, strlen(line)), 0);
    struct packed p;
    do_pack(&rb, &p);
    ck_assert_uint_eq(p.u.data.via.map.size, 2);
    assert_str(&p.u.data, "message", "parsed");
    ck_assert_int_eq(lh_map_get(&p.u.data, "a")->type, MSGPACK_OBJECT_MAP);
    done(&p);
    lh_rb_free(&rb);
}
END_TEST

/* ---- logfmt --------------------------------------------------------------- */

START_TEST(logfmt_pairs)
{
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    const char *line = "level=warn msg=\"disk \\\"sda\\\" at 91%\\n\" took=12ms  debug path=/a=b";
    ck_assert_int_eq(lh_parse_logfmt(&rb, line, strlen(line)), 0);
    struct packed p;
    do_pack(&rb, &p);
    assert_str(&p.u.data, "level", "warn");
    assert_str(&p.u.data, "msg", "disk \"sda\" at 91%\n");
    assert_str(&p.u.data, "took", "12ms");
    assert_str(&p.u.data, "path", "/a=b");
    ck_assert_int_eq(lh_map_get(&p.u.data, "debug")->type, MSGPACK_OBJECT_BOOLEAN);
    done(&p);
    lh_rb_free(&rb);
}
END_TEST

START_TEST(logfmt_malformed)
{
    static const char *bad[] = {"", "just some words", "a=\"unterminated", "=value",
                                "a=1 \"q\"=2", "k=\"x\\"};
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lh_rb_reset(&rb);
        ck_assert_msg(lh_parse_logfmt(&rb, bad[i], strlen(bad[i])) < 0, "accepted %s", bad[i]);
    }
    lh_rb_free(&rb);
}
END_TEST

/* ---- regex ---------------------------------------------------------------- */

START_TEST(regex_named_groups)
{
    struct lh_regex *re = NULL;
    char err[256];
    ck_assert_int_eq(lh_regex_new("^(?<ip>\\S+) (?<method>[A-Z]+) (?<path>\\S+)(?: (?<code>\\d+))?",
                                  &re, err, sizeof err),
                     0);
    ck_assert_uint_eq(lh_regex_names(re), 4);
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    const char *line = "10.0.0.1 GET /index.html";
    ck_assert_int_eq(lh_parse_regex(re, &rb, line, strlen(line)), 0);
    struct packed p;
    do_pack(&rb, &p);
    assert_str(&p.u.data, "ip", "10.0.0.1");
    assert_str(&p.u.data, "method", "GET");
    assert_str(&p.u.data, "path", "/index.html");
    ck_assert_ptr_null(lh_map_get(&p.u.data, "code")); /* optional group unset */
    done(&p);
    lh_rb_reset(&rb);
    ck_assert_int_lt(lh_parse_regex(re, &rb, "no match here", 13), 0);
    /* Invalid UTF-8 in the line: matched around, no error. */
    const char bin[] = "1.2.3.4 PUT /\xff\xfe";
    lh_rb_reset(&rb);
    ck_assert_int_eq(lh_parse_regex(re, &rb, bin, sizeof bin - 1), 0);
    lh_rb_free(&rb);
    lh_regex_free(re);
}
END_TEST

START_TEST(regex_bad_pattern)
{
    struct lh_regex *re = NULL;
    char err[256] = "";
    ck_assert_int_eq(lh_regex_new("(?<open>abc", &re, err, sizeof err), LH_EINVAL);
    ck_assert_ptr_null(re);
    ck_assert_ptr_nonnull(strstr(err, "offset"));
    struct lh_tx_cfg c = {.parser = LH_PARSER_REGEX, .regex = (char *)"(\\d+)"};
    ck_assert_int_eq(lh_tx_cfg_check(&c, err, sizeof err), LH_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "named group"));
    c.regex = NULL;
    ck_assert_int_eq(lh_tx_cfg_check(&c, err, sizeof err), LH_ECONFIG);
}
END_TEST

/* ---- time ----------------------------------------------------------------- */

static int64_t parse_with(const char *fmt, const char *s)
{
    struct lh_time_fmt tf;
    char err[256];
    ck_assert_int_eq(lh_time_fmt_init(&tf, fmt, err, sizeof err), 0);
    int64_t ns = 0;
    ck_assert_msg(lh_time_parse(&tf, s, strlen(s), &ns) == 0, "%s rejected %s", fmt ? fmt : "rfc3339", s);
    return ns;
}

static int time_fails(const char *fmt, const char *s)
{
    struct lh_time_fmt tf;
    char err[256];
    ck_assert_int_eq(lh_time_fmt_init(&tf, fmt, err, sizeof err), 0);
    int64_t ns;
    return lh_time_parse(&tf, s, strlen(s), &ns) != 0;
}

START_TEST(time_formats)
{
    const int64_t t0 = 1795502912LL * 1000000000; /* 2026-11-24T06:48:32Z */
    ck_assert_int_eq(parse_with(NULL, "2026-11-24T06:48:32.5Z"), t0 + 500000000);
    ck_assert_int_eq(parse_with("rfc3339", "2026-11-24T08:48:32+02:00"), t0);
    ck_assert_int_eq(parse_with("epoch", "1795502912"), t0);
    ck_assert_int_eq(parse_with("epoch", "1795502912.25"), t0 + 250000000);
    ck_assert_int_eq(parse_with("epoch_ms", "1795502912123"), t0 + 123000000);
    ck_assert_int_eq(parse_with("epoch_us", "1795502912123456"), t0 + 123456000);
    ck_assert_int_eq(parse_with("epoch_ns", "1795502912123456789"), t0 + 123456789);
    ck_assert_int_eq(parse_with("%d/%b/%Y:%H:%M:%S %z", "24/Nov/2026:07:48:32 +0100"), t0);
    ck_assert_int_eq(parse_with("%Y-%m-%d %H:%M:%S.%L", "2026-11-24 06:48:32.042"),
                     t0 + 42000000);
    ck_assert_int_eq(parse_with("%Y-%m-%d %H:%M:%S", "2026-11-24 06:48:32"), t0);
    ck_assert(time_fails(NULL, "yesterday"));
    ck_assert(time_fails("epoch", "12abc"));
    ck_assert(time_fails("epoch_ns", "99999999999999999999999"));
    ck_assert(time_fails("%Y-%m-%d", "2026-11-24 trailing"));
    ck_assert(time_fails("%Y-%m-%d %H:%M:%S.%L", "2026-11-24 06:48:32."));
    struct lh_time_fmt tf;
    char err[256];
    ck_assert_int_eq(lh_time_fmt_init(&tf, "iso", err, sizeof err), LH_EINVAL);
    ck_assert_int_eq(lh_time_fmt_init(&tf, "%L %L", err, sizeof err), LH_EINVAL);
}
END_TEST

/* ---- transform ------------------------------------------------------------ */

static struct lh_tx_line mkline(const char *s)
{
    return (struct lh_tx_line){s, strlen(s), "h1", 2, "/var/log/x.log", 14, false};
}

START_TEST(transform_json_time_key_keep_raw)
{
    struct lh_tx_cfg c = {.parser = LH_PARSER_JSON, .time_key = (char *)"ts",
                          .time_format = (char *)"epoch_ms", .keep_raw = false};
    struct lh_transform *t = NULL;
    char err[256];
    ck_assert_int_eq(lh_transform_new(&c, "app", NULL, NULL, &t, err, sizeof err), 0);
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    struct lh_tx_line l = mkline("{\"ts\":1795502912123,\"msg\":\"hi\"}");
    int64_t ns = 7;
    ck_assert(lh_transform_line(t, &rb, &l, &ns));
    ck_assert_int_eq(ns, 1795502912123LL * 1000000);
    struct packed p;
    do_pack(&rb, &p);
    ck_assert_ptr_null(lh_map_get(&p.u.data, "message")); /* keep_raw: false */
    assert_str(&p.u.data, "host", "h1");
    assert_str(&p.u.data, "source", "/var/log/x.log");
    assert_str(&p.u.data, "msg", "hi");
    done(&p);
    ck_assert_uint_eq(lh_transform_parse_errors(t), 0);
    lh_rb_free(&rb);
    lh_transform_free(t);
}
END_TEST

START_TEST(transform_malformed_kept_raw)
{
    static const int parsers[] = {LH_PARSER_JSON, LH_PARSER_LOGFMT, LH_PARSER_REGEX};
    for (size_t i = 0; i < 3; i++) {
        struct lh_tx_cfg c = {.parser = parsers[i], .regex = (char *)"^(?<a>x+)$",
                              .keep_raw = false};
        struct lh_transform *t = NULL;
        char err[256];
        ck_assert_int_eq(lh_transform_new(&c, "app", NULL, NULL, &t, err, sizeof err), 0);
        struct lh_recbuilder rb;
        lh_rb_init(&rb);
        struct lh_tx_line l = mkline("{broken \"line");
        int64_t ns = 7;
        ck_assert(lh_transform_line(t, &rb, &l, &ns));
        ck_assert_int_eq(ns, 7);
        struct packed p;
        do_pack(&rb, &p);
        ck_assert_uint_eq(p.u.data.via.map.size, 3);
        assert_str(&p.u.data, "message", "{broken \"line");
        assert_str(&p.u.data, "host", "h1");
        done(&p);
        ck_assert_uint_eq(lh_transform_parse_errors(t), 1);
        lh_rb_free(&rb);
        lh_transform_free(t);
    }
}
END_TEST

/* The record in a collector's stored event [tag, time, record]: whether
 * the collector's per-event rule (lh_mp_extent) reads it. */
static bool collector_reads(const struct packed *p)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    lh_pack_cstr(&pk, "app");
    lh_pack_time(&pk, 1);
    msgpack_sbuffer_write(&sb, p->sb.data, p->sb.size);
    bool ok = lh_mp_extent((const uint8_t *)sb.data, sb.size) == sb.size;
    msgpack_sbuffer_destroy(&sb);
    return ok;
}

START_TEST(transform_deep_json_kept_raw_and_counted)
{
    struct lh_tx_cfg c = {.parser = LH_PARSER_JSON, .keep_raw = false};
    struct lh_metrics *m = lh_metrics_new();
    struct lh_transform *t = NULL;
    char err[256], line[300];
    ck_assert_int_eq(lh_transform_new(&c, "app", NULL, m, &t, err, sizeof err), 0);
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    int64_t ns = 7;
    struct packed p;
    /* At the cap: parsed, and the collector reads the record back. */
    size_t n = nested_line(line, LH_PARSE_JSON_MAX_DEPTH);
    struct lh_tx_line l = {line, n, "h1", 2, "/var/log/x.log", 14, false};
    ck_assert(lh_transform_line(t, &rb, &l, &ns));
    do_pack(&rb, &p);
    ck_assert_ptr_null(lh_map_get(&p.u.data, "message"));
    ck_assert(collector_reads(&p));
    done(&p);
    ck_assert_uint_eq(lh_transform_parse_errors(t), 0);
    /* Deeper, even far deeper than the collector reads: kept raw. */
    const int depths[] = {LH_PARSE_JSON_MAX_DEPTH + 1, LH_MP_MAX_DEPTH + 8};
    for (size_t i = 0; i < 2; i++) {
        l.n = nested_line(line, depths[i]);
        ck_assert(lh_transform_line(t, &rb, &l, &ns));
        do_pack(&rb, &p);
        ck_assert_uint_eq(p.u.data.via.map.size, 3);
        const msgpack_object *msg = lh_map_get(&p.u.data, "message");
        ck_assert(msg && msg->type == MSGPACK_OBJECT_STR && msg->via.str.size == l.n &&
                  memcmp(msg->via.str.ptr, line, l.n) == 0);
        ck_assert_ptr_null(lh_map_get(&p.u.data, "a"));
        ck_assert(collector_reads(&p));
        done(&p);
    }
    ck_assert_uint_eq(lh_transform_parse_errors(t), 2);
    ck_assert_int_eq(lh_metric_value(lh_metrics_get(m, LH_METRIC_COUNTER,
                                                    "loghaul_agent_parse_errors_total",
                                                    "input=\"app\"", "x")),
                     2);
    lh_rb_free(&rb);
    lh_transform_free(t);
    lh_metrics_free(m);
}
END_TEST

START_TEST(transform_bad_time_counted)
{
    struct lh_tx_cfg c = {.parser = LH_PARSER_LOGFMT, .time_key = (char *)"at", .keep_raw = true};
    struct lh_transform *t = NULL;
    char err[256];
    ck_assert_int_eq(lh_transform_new(&c, "app", NULL, NULL, &t, err, sizeof err), 0);
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    struct lh_tx_line l = mkline("at=notatime x=1");
    int64_t ns = 7;
    ck_assert(lh_transform_line(t, &rb, &l, &ns));
    ck_assert_int_eq(ns, 7);
    ck_assert_uint_eq(lh_transform_parse_errors(t), 1);
    struct packed p;
    do_pack(&rb, &p);
    assert_str(&p.u.data, "message", "at=notatime x=1");
    assert_str(&p.u.data, "x", "1");
    done(&p);
    lh_rb_free(&rb);
    lh_transform_free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("parsers");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, json_flat_and_nested);
    tcase_add_test(tc, json_malformed);
    tcase_add_test(tc, json_depth_cap);
    tcase_add_test(tc, json_numbers);
    tcase_add_test(tc, json_escapes);
    tcase_add_test(tc, json_large_containers);
    tcase_add_test(tc, json_duplicate_and_message);
    tcase_add_test(tc, logfmt_pairs);
    tcase_add_test(tc, logfmt_malformed);
    tcase_add_test(tc, regex_named_groups);
    tcase_add_test(tc, regex_bad_pattern);
    tcase_add_test(tc, time_formats);
    tcase_add_test(tc, transform_json_time_key_keep_raw);
    tcase_add_test(tc, transform_deep_json_kept_raw_and_counted);
    tcase_add_test(tc, transform_malformed_kept_raw);
    tcase_add_test(tc, transform_bad_time_counted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(suite());
}
