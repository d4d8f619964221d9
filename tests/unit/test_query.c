/* Query language: every operator against packed records, precedence, errors
 * with their positions, size and depth limits, and random garbage. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base/err.h"
#include "common/query/query.h"
#include "common/codec/record.h"
#include "tests/unit/lh_check.h"

#define T0 1700000000LL /* 2023-11-14T22:13:20Z */

struct rec {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    struct lh_query_record r;
};

static struct rec R1, R2, R3;

static void kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    lh_pack_cstr(pk, k);
    lh_pack_cstr(pk, v);
}

static void kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    lh_pack_cstr(pk, k);
    msgpack_pack_int64(pk, v);
}

static void pack_sd(msgpack_packer *pk)
{
    lh_pack_cstr(pk, "sd");
    msgpack_pack_map(pk, 2);
    lh_pack_cstr(pk, "origin");
    msgpack_pack_map(pk, 1);
    kv_str(pk, "ip", "10.0.0.5");
    lh_pack_cstr(pk, "meta");
    msgpack_pack_map(pk, 1);
    kv_str(pk, "lang", "en");
    lh_pack_cstr(pk, "k8s.pod");
    msgpack_pack_map(pk, 1);
    kv_str(pk, "name", "api");
}

static void pack_odd_types(msgpack_packer *pk)
{
    lh_pack_cstr(pk, "latency");
    msgpack_pack_double(pk, 0.25);
    lh_pack_cstr(pk, "big");
    msgpack_pack_uint64(pk, UINT64_MAX);
    lh_pack_cstr(pk, "ok");
    msgpack_pack_false(pk);
    lh_pack_cstr(pk, "nothing");
    msgpack_pack_nil(pk);
    lh_pack_cstr(pk, "tags");
    msgpack_pack_array(pk, 3);
    lh_pack_cstr(pk, "alpha");
    lh_pack_cstr(pk, "beta");
    msgpack_pack_int(pk, 42);
    lh_pack_cstr(pk, "blob");
    msgpack_pack_bin(pk, 10);
    msgpack_pack_bin_body(pk, "binaryword", 10);
}

/* The main fixture: a syslog-ish record with every value type. */
static void pack_r1(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 20);
    kv_str(pk, "message",
           "Connection refused: timeout after 30s (retry_count=3) \xc3\x9cn\xc3\xaf" "code caf\xc3\xa9");
    kv_str(pk, "host", "web-1");
    kv_str(pk, "level", "error");
    kv_int(pk, "status", 503);
    kv_int(pk, "bytes", 1024);
    kv_int(pk, "neg", -7);
    kv_str(pk, "code", "404");
    kv_str(pk, "ratio", "1.5e2");
    kv_str(pk, "path", "/api/v2/users");
    kv_str(pk, "quote", "he said \"hi\" \\o/");
    kv_str(pk, "a.b", "literal-dotted");
    kv_str(pk, "empty", "");
    pack_sd(pk);
    pack_odd_types(pk);
}

static void rec_build(struct rec *rc, const char *tag, void (*pack)(msgpack_packer *))
{
    msgpack_packer pk;
    size_t off = 0;

    msgpack_sbuffer_init(&rc->sb);
    msgpack_packer_init(&pk, &rc->sb, msgpack_sbuffer_write);
    pack(&pk);
    msgpack_unpacked_init(&rc->u);
    ck_assert_int_eq(msgpack_unpack_next(&rc->u, rc->sb.data, rc->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    rc->r.tag = tag;
    rc->r.tag_len = strlen(tag);
    rc->r.time_ns = T0 * 1000000000LL;
    rc->r.fields = &rc->u.data;
}

static void rec_free(struct rec *rc)
{
    msgpack_unpacked_destroy(&rc->u);
    msgpack_sbuffer_destroy(&rc->sb);
}

/* Fluent Bit style: the line is in `log`. */
static void pack_r2(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    kv_str(pk, "log", "line from fluent bit");
    kv_str(pk, "host", "db-2");
}

static void pack_r3(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    kv_int(pk, "n", 1);
}

static void pack_invalid_utf8(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    kv_str(pk, "message", "ab\xff\xfe cd \xc3");
}

static void setup(void)
{
    rec_build(&R1, "nginx.access", pack_r1);
    rec_build(&R2, "app", pack_r2);
    rec_build(&R3, "bare", pack_r3);
}

static void teardown(void)
{
    rec_free(&R1);
    rec_free(&R2);
    rec_free(&R3);
}

static void expect_on(const struct rec *rc, const char *text, bool want)
{
    struct lh_query *q = NULL;
    struct lh_query_error err;
    int rv = lh_query_parse(text, &q, &err);

    ck_assert_msg(rv == 0, "parse of [%s] failed: %s at %d", text, err.msg, err.position);
    ck_assert_msg(lh_query_match(q, &rc->r) == want, "[%s] should %s", text,
                  want ? "match" : "not match");
    lh_query_free(q);
}

static void yes(const char *text)
{
    expect_on(&R1, text, true);
}

static void no(const char *text)
{
    expect_on(&R1, text, false);
}

static void bad(const char *text, const char *msg, int pos)
{
    struct lh_query *q = (struct lh_query *)1;
    struct lh_query_error err;

    ck_assert_msg(lh_query_parse(text, &q, &err) == LH_EINVAL, "[%s] should not parse", text);
    ck_assert_ptr_null(q);
    ck_assert_msg(strcmp(err.msg, msg) == 0, "[%s]: message [%s], want [%s]", text, err.msg, msg);
    ck_assert_msg(err.position == pos, "[%s]: position %d, want %d", text, err.position, pos);
}

START_TEST(empty_and_star_match_all)
{
    yes("");
    yes("   \t\n");
    yes("*");
    expect_on(&R3, "", true);
    expect_on(&R3, "*", true);
}
END_TEST

START_TEST(words_case_and_boundaries)
{
    yes("timeout");
    yes("TimeOut");
    yes("CONNECTION");
    no("time");
    no("timeouts");
    no("onnection");
    yes("web");      /* "web-1": '-' is a boundary */
    yes("30s");
    yes("retry_count");
    no("retry"); /* '_' is a word character */
    no("count");
    yes("retry_count=3");
    no("503"); /* numbers are not text */
    no("latency"); /* keys are not searched */
}
END_TEST

START_TEST(words_utf8_nested_tag_bin)
{
    yes("caf\xc3\xa9");
    no("caf"); /* bytes >= 0x80 belong to the word */
    yes("\xc3\x9cn\xc3\xaf" "code");
    yes("nginx");
    yes("access");
    yes("en");         /* sd.meta.lang */
    yes("10.0.0.5");   /* sd.origin.ip */
    yes("beta");       /* array element */
    yes("binaryword"); /* bin value */
    yes("api");        /* inside the map under "k8s.pod" */
    expect_on(&R2, "fluent", true);
}
END_TEST

START_TEST(word_prefix)
{
    yes("time*");
    yes("TIMEO*");
    yes("conn*");
    no("onn*");
    no("timeoutx*");
    yes("ngi*"); /* the tag */
}
END_TEST

START_TEST(phrases)
{
    yes("\"connection refused\"");
    yes("\"CONNECTION Refused\"");
    yes("\"refused: timeout\"");
    no("\"connection refuse\"");
    no("\"onnection refused\"");
    no("\"refused timeout\"");
    yes("\"(retry_count=3)\"");
    yes("\"said \\\"hi\\\"\"");
    yes("\"\\\\o/\"");
    yes("\"timeout\"");
    no("\"time\"");
}
END_TEST

START_TEST(field_equals)
{
    yes("level:error");
    no("level:Error");
    no("level:err");
    yes("host:web-1");
    yes("host:\"web-1\"");
    yes("host:web-*");
    yes("host:web*");
    no("host:db-*");
    no("host:\"web-\"*"); /* the quoted value is exact; `*` after it is its own term */
    no("host:\"web-*\"");
    yes("code:404");
    no("code:404.0"); /* strings compare as strings */
    yes("empty:\"\"");
    no("missing:x");
    yes("NOT missing:x");
    yes("-missing:x");
}
END_TEST

START_TEST(field_equals_typed)
{
    yes("status:503");
    yes("status:503.0");
    yes("status:\"503\"");
    no("status:50");
    no("status:five");
    yes("status:5*"); /* integers read as their digits */
    yes("latency:0.25");
    yes("neg:-7");
    yes("big:18446744073709551615");
    no("big:18446744073709551614");
    yes("ok:false");
    no("ok:true");
    yes("nothing:null");
    yes("tags:beta");
    yes("tags:42");
    yes("tags:al*");
    no("tags:gamma");
}
END_TEST

START_TEST(numeric_compare)
{
    yes("status:>=500");
    yes("status:>=503");
    no("status:>503");
    yes("status:<=503");
    yes("status:<600");
    yes("status:=503");
    no("status:=502");
    yes("status:>502.5");
    yes("bytes:<=1024");
    no("bytes:<1024");
    yes("latency:<0.3");
    no("latency:>0.3");
    yes("latency:>=2.5e-1");
    no("latency:>2.5e-1");
    yes("neg:<0");
    yes("neg:>=-7");
    no("neg:>-7");
    yes("neg:>-7.5");
    yes("code:>=400"); /* a string holding a number */
    yes("ratio:=150");
    no("level:>1");
    no("ok:>=0");
    no("missing:>0");
    yes("big:>9223372036854775807");
    yes("big:>1e19");
    no("big:<0");
    yes("tags:>41");
}
END_TEST

START_TEST(regex)
{
    yes("path:~\"^/api/v[0-9]+/\"");
    no("path:~\"^/API\"");
    yes("path:~\"(?i)^/API\"");
    yes("path:~\"users$\"");
    yes("path:~\"v\\d\"");
    yes("message:~\"timeout after \\d+s\"");
    yes("status:~\"^5\"");
    yes("sd.origin.ip:~\"^10\\.\"");
    yes("tag:~\"^nginx\\.\"");
    yes("quote:~\"\\\"hi\\\"\"");
    yes("message:~\"caf.$\""); /* UTF-8: '.' is one character */
    no("missing:~\"\"");
    yes("level:~\"\"");
}
END_TEST

START_TEST(invalid_utf8_in_records)
{
    struct rec r;

    rec_build(&r, "t", pack_invalid_utf8);
    expect_on(&r, "message:~\"cd\"", true);
    expect_on(&r, "message:~\"^ab\"", true);
    expect_on(&r, "message:~\"zz\"", false);
    expect_on(&r, "cd", true);
    expect_on(&r, "ab", false); /* 0xff is a word byte, so "ab" is not a whole word */
    expect_on(&r, "ab*", true);
    rec_free(&r);
}
END_TEST

START_TEST(exists)
{
    yes("level:*");
    no("missing:*");
    yes("nothing:*");
    yes("sd:*");
    yes("sd.origin:*");
    yes("tags:*");
    yes("NOT missing:*");
    yes("tag:*");
    yes("time:*");
}
END_TEST

START_TEST(negation)
{
    no("-timeout");
    no("NOT timeout");
    yes("-nosuchword");
    yes("NOT NOT timeout");
    yes("--timeout");
    no("-(timeout OR nosuch)");
    yes("-level:info");
    no("-level:error");
    yes("timeout -nosuch");
    yes("a-b OR timeout"); /* '-' inside a word is part of it */
}
END_TEST

START_TEST(precedence)
{
    yes("timeout refused");
    no("timeout nope");
    yes("timeout AND refused");
    no("xyz OR nope");
    yes("timeout OR xyz AND nope"); /* timeout OR (xyz AND nope) */
    no("(timeout OR xyz) AND nope");
    yes("NOT timeout OR refused"); /* (NOT timeout) OR refused */
    no("NOT (timeout OR refused)");
    yes("NOT xyz timeout");
    no("-timeout refused");
    yes("((timeout))");
    yes("(xyz OR (refused AND level:error)) -level:info");
}
END_TEST

START_TEST(lowercase_keywords_are_words)
{
    no("and");
    no("timeout or nosuch"); /* three words ANDed */
    yes("timeout \"or\" OR timeout");
}
END_TEST

START_TEST(dotted_paths)
{
    yes("sd.origin.ip:10.0.0.5");
    yes("sd.meta.lang:en");
    no("sd.origin.port:*");
    no("sd.nope.ip:*");
    no("host.x:*");
    yes("a.b:literal-dotted");
    yes("k8s.pod.name:api");
    no("sd.origin.ip:10.0.0");
}
END_TEST

START_TEST(tag_time_and_message_fallback)
{
    yes("tag:nginx.access");
    yes("tag:nginx.*");
    no("tag:nginx");
    no("tag:syslog");
    yes("message:*");
    expect_on(&R2, "message:\"line from fluent bit\"", true);
    expect_on(&R2, "message:line*", true);
    expect_on(&R2, "log:*", true);
    expect_on(&R3, "message:*", false);
    expect_on(&R3, "NOT message:*", true);
    yes("time:>=1700000000");
    no("time:>1700000000");
    yes("time:2023-11-14T22:13:20Z");
    yes("time:=1700000000");
    yes("time:2023-11-14*");
    no("time:<2023-01-01T00:00:00Z");
    yes("time:>2023-11-14T22:13:19.5+00:00");
}
END_TEST

static void stats_of(const char *text, size_t want_n, const char *const *want)
{
    struct lh_query *q = NULL;
    struct lh_query_error err;
    const char *const *by = NULL;
    size_t n = 99;

    ck_assert_msg(lh_query_parse(text, &q, &err) == 0, "[%s]: %s", text, err.msg);
    ck_assert(lh_query_stats(q, &by, &n));
    ck_assert_uint_eq(n, want_n);
    for (size_t i = 0; i < want_n; i++)
        ck_assert_str_eq(by[i], want[i]);
    lh_query_free(q);
}

START_TEST(stats)
{
    static const char *const hl[] = {"host", "level"};
    static const char *const abc[] = {"a", "b.c", "d"};
    struct lh_query *q = NULL;
    struct lh_query_error err;
    const char *const *by;
    size_t n;

    stats_of("level:error | stats count by host, level", 2, hl);
    stats_of("| stats count by host,level", 2, hl);
    stats_of("x | stats count()", 0, NULL);
    stats_of("x | stats count", 0, NULL);
    stats_of("x|stats count ( ) by a , b.c,d", 3, abc);
    ck_assert_int_eq(lh_query_parse("timeout", &q, &err), 0);
    ck_assert(!lh_query_stats(q, &by, &n));
    lh_query_free(q);
    yes("level:error | stats count by host");
    no("level:info | stats count by host");
    yes("| stats count");
}
END_TEST

START_TEST(errors_with_positions)
{
    bad("(timeout", "expected ')'", 8);
    bad("(a b | stats count", "expected ')'", 5);
    bad("\"abc", "unterminated string", 0);
    bad("x:\"abc", "unterminated string", 2);
    bad("a \"b\\\"", "unterminated string", 2);
    bad("status:!=5", "unknown operator '!='", 7);
    bad("status:=<5", "unknown operator '=<'", 7);
    bad("path:~abc", "expected a quoted regex after '~'", 6);
    bad("NOT", "empty expression after NOT", 0);
    bad("a NOT", "empty expression after NOT", 2);
    bad("(NOT )", "empty expression after NOT", 1);
    bad("-", "empty expression after '-'", 0);
    bad("a - b", "empty expression after '-'", 2);
    bad("a AND", "empty expression after AND", 2);
    bad("a AND OR b", "empty expression after AND", 2);
    bad("a OR", "empty expression after OR", 2);
    bad("OR a", "unexpected OR", 0);
    bad("AND", "unexpected AND", 0);
    bad("a )", "unexpected ')'", 2);
    bad("()", "empty parentheses", 0);
    bad("a (|", "unexpected '|'", 3);
    bad("\"\"", "empty phrase", 0);
    bad("level:", "expected a value after ':'", 6);
    bad("level: error", "expected a value after ':'", 6);
    bad(":x", "missing field name before ':'", 0);
    bad("status:>=abc", "expected a number", 9);
    bad("status:>", "expected a number", 8);
    bad("status:<nan", "expected a number", 8);
    bad("status:=0x10", "expected a number", 8);
    bad("time:>=yesterday", "expected a time (RFC 3339 or unix seconds)", 7);
    bad("time:2023-13-01T00:00:00Z", "expected a time (RFC 3339 or unix seconds)", 5);
    bad("a | foo", "unknown command after '|' (expected 'stats count')", 4);
    bad("a |", "unknown command after '|' (expected 'stats count')", 3);
    bad("a | stats sum", "expected 'count' after 'stats'", 10);
    bad("a | stats count foo", "expected 'by' or end of query", 16);
    bad("a | stats count(", "expected ')'", 16);
    bad("a | stats count by", "expected a field name", 18);
    bad("a | stats count by a,", "expected a field name", 21);
    bad("a | stats count by x y", "expected ',' or end of query", 21);
    bad("a | stats count | stats count", "expected 'by' or end of query", 16);
}
END_TEST

START_TEST(bad_regex)
{
    struct lh_query *q = NULL;
    struct lh_query_error err;

    ck_assert_int_eq(lh_query_parse("level:error path:~\"(unclosed\"", &q, &err), LH_EINVAL);
    ck_assert_ptr_null(q);
    ck_assert_int_eq(err.position, 18);
    ck_assert_msg(strncmp(err.msg, "bad regex: ", 11) == 0 && strlen(err.msg) > 15, "%s",
                  err.msg);
    ck_assert_int_eq(lh_query_parse("x:~\"a{2,1}\"", &q, &err), LH_EINVAL);
    ck_assert_int_eq(err.position, 3);
    /* A NULL err is allowed. */
    ck_assert_int_eq(lh_query_parse("x:~\"[\"", &q, NULL), LH_EINVAL);
}
END_TEST

START_TEST(too_many_stats_fields)
{
    char text[512] = "| stats count by f0";
    struct lh_query *q = NULL;
    struct lh_query_error err;

    for (int i = 1; i < 32; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), ",f%d", i);
    ck_assert_int_eq(lh_query_parse(text, &q, &err), 0);
    lh_query_free(q);
    size_t at = strlen(text) + 1;
    strcat(text, ",f32");
    bad(text, "too many stats fields (more than 32)", (int)at);
}
END_TEST

START_TEST(length_limit)
{
    char *text = malloc(LH_QUERY_MAX_LEN + 2);
    struct lh_query *q = NULL;
    struct lh_query_error err;

    ck_assert_ptr_nonnull(text);
    /* "timeout    OR timeout    OR …": a 64 KiB flat chain of the most
     * terms a query may have parses and matches. */
    const size_t unit = LH_QUERY_MAX_LEN / LH_QUERY_MAX_TERMS;
    memset(text, ' ', LH_QUERY_MAX_LEN);
    for (size_t n = 0; n + unit <= LH_QUERY_MAX_LEN; n += unit) {
        memcpy(text + n, "timeout", 7);
        if (n + unit < LH_QUERY_MAX_LEN)
            memcpy(text + n + unit - 3, "OR", 2);
    }
    text[LH_QUERY_MAX_LEN] = '\0';
    ck_assert_int_eq(lh_query_parse(text, &q, &err), 0);
    ck_assert(lh_query_match(q, &R1.r));
    lh_query_free(q);
    text[LH_QUERY_MAX_LEN] = 'x';
    text[LH_QUERY_MAX_LEN + 1] = '\0';
    bad(text, "query too long (more than 65536 bytes)", LH_QUERY_MAX_LEN);
    free(text);
}
END_TEST

/* prefix, then "zq0<tail> OR zq1<tail> OR … zq<n-1><tail>", then suffix,
 * in a buffer the caller frees. */
static char *or_terms(const char *prefix, int n, const char *tail, const char *suffix)
{
    size_t len = strlen(prefix) + strlen(suffix) + (size_t)n * (strlen(tail) + 16) + 1, at;
    char *s = malloc(len);

    ck_assert_ptr_nonnull(s);
    at = (size_t)snprintf(s, len, "%s", prefix);
    for (int i = 0; i < n; i++)
        at += (size_t)snprintf(s + at, len - at, "%szq%d%s", i ? " OR " : "", i, tail);
    snprintf(s + at, len - at, "%s", suffix);
    return s;
}

static char *or_chain(const char *prefix, int n, const char *suffix)
{
    return or_terms(prefix, n, "", suffix);
}

START_TEST(term_limit)
{
    char *s = or_chain("NOT (", LH_QUERY_MAX_TERMS, ")");
    yes(s);
    free(s);
    s = or_chain("", LH_QUERY_MAX_TERMS + 1, "");
    const char *last = strrchr(s, ' ') + 1;
    bad(s, "query has too many terms (more than 1024)", (int)(last - s));
    free(s);
    /* Parentheses, NOT and operators are not terms; `*` is one. */
    s = or_chain("level:* OR ", LH_QUERY_MAX_TERMS - 1, "");
    yes(s);
    free(s);
    s = or_chain("* ", LH_QUERY_MAX_TERMS, "");
    bad(s, "query has too many terms (more than 1024)", (int)(strrchr(s, ' ') + 1 - s));
    free(s);
}
END_TEST

/* count copies of open, then core, then count copies of close. */
static char *nest(const char *open, int count, const char *core, const char *close)
{
    size_t lo = strlen(open), lc = strlen(close), n = 0;
    char *s = malloc((lo + lc) * (size_t)count + strlen(core) + 1);

    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < count; i++, n += lo)
        memcpy(s + n, open, lo);
    strcpy(s + n, core);
    n += strlen(core);
    for (int i = 0; i < count; i++, n += lc)
        memcpy(s + n, close, lc);
    s[n] = '\0';
    return s;
}

START_TEST(depth_limit)
{
    char *s;

    s = nest("(", LH_QUERY_MAX_DEPTH, "timeout", ")");
    yes(s);
    free(s);
    s = nest("(", LH_QUERY_MAX_DEPTH + 1, "timeout", ")");
    bad(s, "query nested too deeply (more than 64 levels)", LH_QUERY_MAX_DEPTH);
    free(s);
    s = nest("NOT ", LH_QUERY_MAX_DEPTH, "timeout", "");
    yes(s); /* an even count cancels out */
    free(s);
    s = nest("NOT ", LH_QUERY_MAX_DEPTH + 1, "timeout", "");
    bad(s, "query nested too deeply (more than 64 levels)", 4 * LH_QUERY_MAX_DEPTH);
    free(s);
    s = nest("-(", 40, "timeout", ")");
    bad(s, "query nested too deeply (more than 64 levels)", 64);
    free(s);
    /* Far deeper than any stack would survive without the cap. */
    s = nest("(", 30000, "x", ")");
    bad(s, "query nested too deeply (more than 64 levels)", LH_QUERY_MAX_DEPTH);
    free(s);
}
END_TEST

START_TEST(random_garbage_never_crashes)
{
    static const char *const pieces[] = {
        "(", ")", "\"", "\\", "|", "-", "*", ":", "~", ">", "<", "=", "!", " ", ",",
        "AND", "OR", "NOT", "stats", "count", "by", "timeout", "level", "status:", "500",
        "1e9", "-3.5", "\xc3\xa9", "\xff", "tag", "time", "message", "sd.origin.ip", "[",
        "(?", "\t", "x", "y*"};
    const size_t np = sizeof pieces / sizeof pieces[0];
    char buf[256];
    unsigned seed = 20261124;
    int parsed = 0;

    srand(seed);
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = 0, parts = (size_t)(rand() % 16);
        for (size_t i = 0; i < parts; i++) {
            const char *p = pieces[(size_t)rand() % np];
            if (len + strlen(p) >= sizeof buf)
                break;
            memcpy(buf + len, p, strlen(p));
            len += strlen(p);
        }
        buf[len] = '\0';
        struct lh_query *q = NULL;
        struct lh_query_error err;
        int rv = lh_query_parse(buf, &q, &err);
        if (rv == 0) {
            parsed++;
            lh_query_match(q, &R1.r);
            lh_query_match(q, &R2.r);
            lh_query_match(q, &R3.r);
            lh_query_free(q);
        } else {
            ck_assert_int_eq(rv, LH_EINVAL);
            ck_assert_ptr_null(q);
            ck_assert_msg(err.msg[0] != '\0', "[%s]: no message", buf);
            ck_assert_msg(err.position >= 0 && (size_t)err.position <= len, "[%s]: position %d",
                          buf, err.position);
        }
    }
    /* The generator must exercise both paths to mean anything. */
    ck_assert_int_gt(parsed, 1000);
    ck_assert_int_lt(parsed, 19000);
}
END_TEST

/* ---- regex bounds --------------------------------------------------------- */

/* A record whose message is `n` copies of unit followed by tail. */
static void rec_message(struct rec *rc, const char *unit, size_t n, const char *tail)
{
    size_t ul = strlen(unit), tl = strlen(tail);
    char *msg = malloc(n * ul + tl);
    msgpack_packer pk;
    size_t off = 0;

    ck_assert_ptr_nonnull(msg);
    for (size_t i = 0; i < n; i++)
        memcpy(msg + i * ul, unit, ul);
    memcpy(msg + n * ul, tail, tl);
    msgpack_sbuffer_init(&rc->sb);
    msgpack_packer_init(&pk, &rc->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    lh_pack_cstr(&pk, "message");
    lh_pack_strn(&pk, msg, n * ul + tl);
    free(msg);
    msgpack_unpacked_init(&rc->u);
    ck_assert_int_eq(msgpack_unpack_next(&rc->u, rc->sb.data, rc->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    rc->r = (struct lh_query_record){.tag = "t", .tag_len = 1, .fields = &rc->u.data};
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* (a+)+$ on a^30 b needs ~2^30 steps: the match limit stops it in
 * milliseconds, and the query knows its answer is not to be trusted. */
START_TEST(catastrophic_regex_is_bounded_and_reported)
{
    static const char text[] = "level:* OR message:~\"(a+)+$\"";
    struct rec rc, ok;
    struct lh_query *q;
    struct lh_query_error err = {.position = -1};

    rec_message(&rc, "a", 30, "b");
    rec_message(&ok, "a", 5, "");
    ck_assert_int_eq(lh_query_parse(text, &q, &err), 0);
    ck_assert(lh_query_match(q, &ok.r));
    ck_assert_int_eq(lh_query_status(q, &err), 0);

    /* One bounded match: milliseconds, not seconds. */
    double t0 = mono_s();
    ck_assert(!lh_query_match(q, &rc.r));
    ck_assert_msg(mono_s() - t0 < 0.5, "one match took %.3fs", mono_s() - t0);
    ck_assert_int_eq(lh_query_status(q, &err), LH_ETOOBIG);
    ck_assert_msg(strstr(err.msg, "regex \"(a+)+$\"") != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "backtracks") != NULL, "%s", err.msg);
    ck_assert_int_eq(err.position, 11);

    /* From then on the regex is not run again: cheap, and never a match. */
    t0 = mono_s();
    for (int i = 0; i < 1000; i++)
        ck_assert(!lh_query_match(q, &rc.r));
    ck_assert_msg(mono_s() - t0 < 0.5, "undecided matches must cost nothing: %.3fs",
                  mono_s() - t0);
    ck_assert(!lh_query_match(q, &ok.r));
    ck_assert(lh_query_match(q, &R1.r)); /* level:* still decides */
    ck_assert_int_eq(lh_query_status(q, NULL), LH_ETOOBIG);
    lh_query_free(q);
    rec_free(&rc);
    rec_free(&ok);
}
END_TEST

/* The JIT stack is bounded but fits ordinary patterns on long lines; past
 * it the query is told, not handed a wrong "no match". */
START_TEST(regex_stack_bound)
{
    struct rec line, huge;
    struct lh_query *q;
    struct lh_query_error err;

    rec_message(&line, "ab", 8000, "c");    /* 16 KB */
    rec_message(&huge, "ab", 200000, "c");  /* 400 KB */
    ck_assert_int_eq(lh_query_parse("message:~\"(a|b)*c\"", &q, NULL), 0);
    ck_assert(lh_query_match(q, &line.r));
    ck_assert_int_eq(lh_query_status(q, NULL), 0);
    ck_assert(!lh_query_match(q, &huge.r));
    ck_assert_int_eq(lh_query_status(q, &err), LH_ETOOBIG);
    ck_assert_msg(strstr(err.msg, "too much memory") != NULL, "%s", err.msg);
    lh_query_free(q);
    /* A query without regexes never reports anything. */
    ck_assert_int_eq(lh_query_parse("message:c*", &q, NULL), 0);
    lh_query_match(q, &huge.r);
    ck_assert_int_eq(lh_query_status(q, NULL), 0);
    lh_query_free(q);
    rec_free(&line);
    rec_free(&huge);
}
END_TEST

/* ---- the cost budget ------------------------------------------------------ */

struct polls {
    int calls;
    int stop_at; /* spent says stop from this call on; 0: never */
};

static bool count_poll(void *ud)
{
    struct polls *p = ud;
    return ++p->calls >= p->stop_at && p->stop_at != 0;
}

static void pack_many_keys(msgpack_packer *pk)
{
    char k[16];

    msgpack_pack_map(pk, 200000);
    for (int i = 0; i < 200000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        kv_int(pk, k, i);
    }
}

static void pack_long_list(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    lh_pack_cstr(pk, "nums");
    msgpack_pack_array(pk, 500000);
    for (int i = 0; i < 500000; i++)
        msgpack_pack_int(pk, i);
}

/* Each shape of large record under a large query costs seconds to match
 * whole (a thousand terms, each reading megabytes, or hundreds of
 * thousands of keys or elements): the budget is asked in the middle of
 * that one record, the match stops when it says so, and asks nothing
 * again. */
START_TEST(budget_stops_a_match_midway)
{
    struct rec text, keys, list;
    rec_message(&text, "lorem ipsum ", 1 << 18, "");
    rec_build(&keys, "t", pack_many_keys);
    rec_build(&list, "t", pack_long_list);
    const struct {
        const struct rec *rec;
        const char *tail;
    } cases[] = {{&text, ""}, {&keys, ":1"}, {&list, ""}};

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text_q = or_terms("NOT (", 1000, cases[i].tail, ")");
        struct lh_query *q;
        ck_assert_int_eq(lh_query_parse(text_q, &q, NULL), 0);
        struct polls p = {.stop_at = 3};
        struct lh_query_budget b = {.every = 1 << 20, .spent = count_poll, .ud = &p};
        double t0 = mono_s();
        ck_assert_int_eq(lh_query_match_within(q, &cases[i].rec->r, &b), LH_ETIMEDOUT);
        ck_assert_msg(mono_s() - t0 < 1.0, "case %zu: stopped after %.3fs", i, mono_s() - t0);
        ck_assert_int_eq(p.calls, 3);
        ck_assert(b.stopped);
        /* Spent stays spent, without asking again. */
        ck_assert_int_eq(lh_query_match_within(q, &R1.r, &b), LH_ETIMEDOUT);
        ck_assert_int_eq(p.calls, 3);
        lh_query_free(q);
        free(text_q);
    }
    rec_free(&text);
    rec_free(&keys);
    rec_free(&list);
}
END_TEST

/* Long text is searched a window at a time: a word straddling a window's
 * edge is found, and the bytes on either side of it still decide its
 * boundaries. */
START_TEST(long_text_across_windows)
{
    static const size_t len = 200000, edge = 64 * 1024;

    for (size_t at = edge - 8; at <= edge + 8; at++) {
        char *msg = malloc(len + 1);
        ck_assert_ptr_nonnull(msg);
        memset(msg, ' ', len);
        msg[len] = '\0';
        memcpy(msg + at, "needle", 6);
        struct rec rc;
        rec_message(&rc, msg, 1, "");
        expect_on(&rc, "needle", true);
        expect_on(&rc, "needl*", true);
        rec_free(&rc);
        msg[at - 1] = 'x';
        rec_message(&rc, msg, 1, "");
        expect_on(&rc, "needle", false);
        expect_on(&rc, "xneedle", true);
        rec_free(&rc);
        msg[at - 1] = ' ';
        msg[at + 6] = 's';
        rec_message(&rc, msg, 1, "");
        expect_on(&rc, "needle", false);
        expect_on(&rc, "needle*", true);
        rec_free(&rc);
        free(msg);
    }
}
END_TEST

/* Small records are charged little: thousands of matches between two
 * questions, so a scan does not read the clock per record. */
START_TEST(budget_asks_rarely_for_small_records)
{
    struct lh_query *q;
    struct polls p = {0};
    struct lh_query_budget b = {.every = 1 << 20, .spent = count_poll, .ud = &p};

    ck_assert_int_eq(lh_query_parse("timeout level:error -host:db-*", &q, NULL), 0);
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(lh_query_match_within(q, &R1.r, &b), 1);
        ck_assert_int_eq(lh_query_match_within(q, &R2.r, &b), 0);
    }
    ck_assert_int_ge(p.calls, 1); /* the first charge asks */
    ck_assert_int_le(p.calls, 10);
    lh_query_free(q);
}
END_TEST

/* A regex run may cost milliseconds whatever the text's length, so even
 * over short values it is charged enough that the budget is asked at
 * least every few dozen runs. */
START_TEST(budget_charges_regex_runs_their_worst)
{
    static const int n = 1000;
    struct rec r;
    struct lh_query *q;
    struct polls p = {0};
    struct lh_query_budget b = {.every = 1 << 20, .spent = count_poll, .ud = &p};
    msgpack_packer pk;
    size_t off = 0;

    msgpack_sbuffer_init(&r.sb);
    msgpack_packer_init(&pk, &r.sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    lh_pack_cstr(&pk, "tags");
    msgpack_pack_array(&pk, (size_t)n);
    for (int i = 0; i < n; i++)
        lh_pack_cstr(&pk, "a");
    msgpack_unpacked_init(&r.u);
    ck_assert_int_eq(msgpack_unpack_next(&r.u, r.sb.data, r.sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    r.r = (struct lh_query_record){.tag = "t", .tag_len = 1, .fields = &r.u.data};
    ck_assert_int_eq(lh_query_parse("tags:~\"b\"", &q, NULL), 0);
    ck_assert_int_eq(lh_query_match_within(q, &r.r, &b), 0);
    ck_assert_int_ge(p.calls, n / 32);
    lh_query_free(q);
    rec_free(&r);
}
END_TEST

/* Far-off times are valid bounds, clamped to the nanosecond range. */
START_TEST(time_terms_clamp)
{
    yes("time:<9999999999");
    yes("time:<=99999999999999999999");
    no("time:>9999999999");
    yes("time:>-9999999999");
    yes("time:<9999-12-31T23:59:59Z");
    yes("time:>1000-01-01T00:00:00Z");
    bad("time:>soon", "expected a time (RFC 3339 or unix seconds)", 6);
}
END_TEST

START_TEST(stats_names_must_be_utf8)
{
    bad("x | stats count by ok, b\xff", "a stats field name must be valid UTF-8", 23);
}
END_TEST

static Suite *query_suite(void)
{
    Suite *s = suite_create("query");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, empty_and_star_match_all);
    tcase_add_test(tc, words_case_and_boundaries);
    tcase_add_test(tc, words_utf8_nested_tag_bin);
    tcase_add_test(tc, word_prefix);
    tcase_add_test(tc, phrases);
    tcase_add_test(tc, field_equals);
    tcase_add_test(tc, field_equals_typed);
    tcase_add_test(tc, numeric_compare);
    tcase_add_test(tc, regex);
    tcase_add_test(tc, invalid_utf8_in_records);
    tcase_add_test(tc, exists);
    tcase_add_test(tc, negation);
    tcase_add_test(tc, precedence);
    tcase_add_test(tc, lowercase_keywords_are_words);
    tcase_add_test(tc, dotted_paths);
    tcase_add_test(tc, tag_time_and_message_fallback);
    tcase_add_test(tc, stats);
    tcase_add_test(tc, errors_with_positions);
    tcase_add_test(tc, bad_regex);
    tcase_add_test(tc, too_many_stats_fields);
    tcase_add_test(tc, length_limit);
    tcase_add_test(tc, depth_limit);
    tcase_add_test(tc, term_limit);
    tcase_add_test(tc, budget_stops_a_match_midway);
    tcase_add_test(tc, budget_asks_rarely_for_small_records);
    tcase_add_test(tc, long_text_across_windows);
    tcase_add_test(tc, budget_charges_regex_runs_their_worst);
    tcase_add_test(tc, random_garbage_never_crashes);
    tcase_add_test(tc, catastrophic_regex_is_bounded_and_reported);
    tcase_add_test(tc, regex_stack_bound);
    tcase_add_test(tc, time_terms_clamp);
    tcase_add_test(tc, stats_names_must_be_utf8);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(query_suite());
}
