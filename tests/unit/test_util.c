/* Shared helpers: units, time formats, host:port, files. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/err.h"
#include "common/base/util.h"
#include "tests/unit/lh_check.h"

static char tmpdir[PATH_MAX];

static void setup(void)
{
    lh_test_mkdtemp(tmpdir, sizeof tmpdir, "util");
}

static void teardown(void)
{
    lh_test_rmrf(tmpdir);
}

/* tmpdir + "/" + name */
static const char *tmp_path(char *buf, size_t cap, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", tmpdir, name);
    ck_assert(n > 0 && (size_t)n < cap);
    return buf;
}

/* ---- sizes and durations -------------------------------------------- */

START_TEST(test_parse_size)
{
    static const struct {
        const char *s;
        int64_t want;
    } ok[] = {
        {"512", 512},          {"0", 0},          {"64KiB", 65536},
        {"64kib", 65536},      {"2MiB", 2 << 20}, {"1GiB", 1LL << 30},
        {"1TiB", 1LL << 40},   {"10MB", 10000000}, {"1kb", 1000},
        {"1k", 1024},          {"1.5KiB", 1536},  {"100b", 100},
        {"  2 MiB", 2 << 20},  {"0.5", 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -1;
        ck_assert_msg(lh_parse_size(ok[i].s, &v) == 0, "%s", ok[i].s);
        ck_assert_msg(v == ok[i].want, "%s: %lld", ok[i].s, (long long)v);
    }
    static const char *const bad[] = {"", "abc", "-1", "12XB", "KiB", "1 2", "0x10", "1e3",
                                      "1.2.3", "inf", "nan", "5 MiBs"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 42;
        ck_assert_msg(lh_parse_size(bad[i], &v) == LH_EINVAL, "%s accepted", bad[i]);
        ck_assert_int_eq(v, 42);
    }
    int64_t v;
    ck_assert_int_eq(lh_parse_size(NULL, &v), LH_EINVAL);
    ck_assert_int_eq(lh_parse_size("99999999TiB", &v), LH_ETOOBIG);
    ck_assert_int_eq(lh_parse_size("99999999999999999999999", &v), LH_ETOOBIG);
    ck_assert_int_eq(lh_parse_size("8000000TiB", &v), 0);
    ck_assert_int_eq(v, 8000000LL << 40);
}
END_TEST

START_TEST(test_parse_duration)
{
    static const struct {
        const char *s;
        int64_t want;
    } ok[] = {
        {"200ms", 200}, {"2s", 2000},        {"15m", 900000},     {"2h", 7200000},
        {"7d", 604800000}, {"1w", 604800000}, {"1.5s", 1500},     {"30", 30000},
        {"0", 0},       {"0.25", 250},       {"10MS", 10},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -1;
        ck_assert_msg(lh_parse_duration(ok[i].s, &v) == 0, "%s", ok[i].s);
        ck_assert_msg(v == ok[i].want, "%s: %lld", ok[i].s, (long long)v);
    }
    static const char *const bad[] = {"", "soon", "-5s", "5x", "s", "1 d 2h", "0x1s", "1e2s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 42;
        ck_assert_msg(lh_parse_duration(bad[i], &v) == LH_EINVAL, "%s accepted", bad[i]);
        ck_assert_int_eq(v, 42);
    }
    int64_t v;
    ck_assert_int_eq(lh_parse_duration("999999999999999d", &v), LH_ETOOBIG);
}
END_TEST

/* ---- time ----------------------------------------------------------- */

START_TEST(test_format_time)
{
    char buf[LH_TIME_STRLEN];
    ck_assert_str_eq(lh_format_time(0, buf), "1970-01-01T00:00:00.000000000Z");
    ck_assert_str_eq(lh_format_time(-1, buf), "1969-12-31T23:59:59.999999999Z");
    ck_assert_str_eq(lh_format_time(1700000000123456789LL, buf),
                     "2023-11-14T22:13:20.123456789Z");
    ck_assert_str_eq(lh_format_time(INT64_MAX, buf), "2262-04-11T23:47:16.854775807Z");
    ck_assert_str_eq(lh_format_time(INT64_MIN, buf), "1677-09-21T00:12:43.145224192Z");
}
END_TEST

START_TEST(test_time_round_trip)
{
    static const int64_t values[] = {0,  1,  -1, 1700000000123456789LL, -1700000000987654321LL,
                                     951782400000000000LL, /* 2000-02-29 */
                                     INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char buf[LH_TIME_STRLEN];
        int64_t back = 0;
        lh_format_time(values[i], buf);
        ck_assert_msg(lh_parse_time(buf, &back) == 0, "%s", buf);
        ck_assert_msg(back == values[i], "%s -> %lld", buf, (long long)back);
    }
}
END_TEST

START_TEST(test_parse_time_valid)
{
    static const struct {
        const char *s;
        int64_t want;
    } ok[] = {
        {"2023-11-14T22:13:20Z", 1700000000LL * 1000000000},
        {"2023-11-14t22:13:20z", 1700000000LL * 1000000000},
        {"2023-11-14 22:13:20Z", 1700000000LL * 1000000000},
        {"2023-11-14T23:13:20+01:00", 1700000000LL * 1000000000},
        {"2023-11-14T17:43:20-04:30", 1700000000LL * 1000000000},
        {"2023-11-14T22:13:20.1Z", 1700000000100000000LL},
        {"2023-11-14T22:13:20.123Z", 1700000000123000000LL},
        {"2023-11-14T22:13:20.123456Z", 1700000000123456000LL},
        {"2023-11-14T22:13:20.123456789Z", 1700000000123456789LL},
        {"2023-11-14T22:13:20.1234567899Z", 1700000000123456789LL},
        {"2023-11-14T22:13:20.5+00:00", 1700000000500000000LL},
        {"2024-02-29T00:00:00Z", 1709164800LL * 1000000000},
        {"1700000000", 1700000000LL * 1000000000},
        {"1700000000.5", 1700000000500000000LL},
        {"1700000000.123456789", 1700000000123456789LL},
        {"0", 0},
        {"-1.5", -1500000000LL},
        {"-0.5", -500000000LL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -42;
        ck_assert_msg(lh_parse_time(ok[i].s, &v) == 0, "%s rejected", ok[i].s);
        ck_assert_msg(v == ok[i].want, "%s: %lld", ok[i].s, (long long)v);
    }
}
END_TEST

START_TEST(test_parse_time_invalid)
{
    static const char *const bad[] = {
        "",
        "abc",
        "2023-11-14",
        "2023-11-14T22:13:20",
        "2023-13-01T00:00:00Z",
        "2023-00-01T00:00:00Z",
        "2023-11-14T25:00:00Z",
        "2023-11-14T22:61:00Z",
        "2023-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2023-04-31T00:00:00Z",
        "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20+0100",
        "2023-11-14T22:13:20+01",
        "2023-11-14T22:13:20+24:00",
        "2023-11-14T22:13:20Zjunk",
        "23-11-14T22:13:20Z",
        "1700000000x",
        "1700000000.",
        "1.2.3",
        "99999999999999999999",
        "10000000000000",
        "9999-12-31T23:59:59Z",
        "1000-01-01T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 42;
        ck_assert_msg(lh_parse_time(bad[i], &v) == LH_EINVAL, "%s accepted", bad[i]);
        ck_assert_int_eq(v, 42);
    }
    int64_t v;
    ck_assert_int_eq(lh_parse_time(NULL, &v), LH_EINVAL);
}
END_TEST

/* ---- host:port ------------------------------------------------------ */

START_TEST(test_split_hostport)
{
    char host[64];
    int port = -1;
    ck_assert_int_eq(lh_split_hostport("127.0.0.1:24224", host, sizeof host, &port), 0);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_int_eq(port, 24224);
    ck_assert_int_eq(lh_split_hostport("[::1]:9800", host, sizeof host, &port), 0);
    ck_assert_str_eq(host, "::1");
    ck_assert_int_eq(port, 9800);
    ck_assert_int_eq(lh_split_hostport("[fe80::1%eth0]:0", host, sizeof host, &port), 0);
    ck_assert_str_eq(host, "fe80::1%eth0");
    ck_assert_int_eq(port, 0);
    ck_assert_int_eq(lh_split_hostport("c1.example:65535", host, sizeof host, &port), 0);
    ck_assert_str_eq(host, "c1.example");
    ck_assert_int_eq(port, 65535);
    ck_assert_int_eq(lh_split_hostport(":514", host, sizeof host, &port), 0);
    ck_assert_str_eq(host, "");
    ck_assert_int_eq(port, 514);

    static const char *const bad[] = {"nohost", "[::1]", "[::1]80", "[::1:80", "h:", "h:65536",
                                      "h:-1", "h:80x", "h: 80", "::1:80", "fe80::1:80", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        port = 42;
        ck_assert_msg(lh_split_hostport(bad[i], host, sizeof host, &port) == LH_EINVAL,
                      "%s accepted", bad[i]);
        ck_assert_int_eq(port, 42);
    }
    char small[4];
    ck_assert_int_eq(lh_split_hostport("abcd:1", small, sizeof small, &port), LH_EINVAL);
    ck_assert_int_eq(lh_split_hostport("abc:1", small, sizeof small, &port), 0);
    ck_assert_str_eq(small, "abc");
}
END_TEST

/* ---- files ---------------------------------------------------------- */

START_TEST(test_write_read_file)
{
    char path[PATH_MAX + 32], tmp[PATH_MAX + 64];
    tmp_path(path, sizeof path, "state.bin");
    const char data[] = "line one\n\0binary\xff tail";
    ck_assert_int_eq(lh_write_file_atomic(path, data, sizeof data), 0);
    char *got = NULL;
    size_t len = 0;
    ck_assert_int_eq(lh_read_file(path, 1 << 20, &got, &len), 0);
    ck_assert_uint_eq(len, sizeof data);
    ck_assert_int_eq(memcmp(got, data, sizeof data), 0);
    ck_assert_int_eq(got[len], '\0');
    free(got);

    /* Overwrite: the new content whole, no temporary file left behind. */
    ck_assert_int_eq(lh_write_file_atomic(path, "new", 3), 0);
    ck_assert_int_eq(lh_read_file(path, 1 << 20, &got, NULL), 0);
    ck_assert_str_eq(got, "new");
    free(got);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_eq(access(tmp, F_OK), -1);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640);

    ck_assert_int_eq(lh_write_file_atomic(path, "", 0), 0);
    ck_assert_int_eq(lh_read_file(path, 16, &got, &len), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(got, "");
    free(got);

    char missing[PATH_MAX + 32];
    tmp_path(missing, sizeof missing, "no/such/dir/file");
    ck_assert_int_eq(lh_write_file_atomic(missing, "x", 1), LH_EIO);
    ck_assert_int_eq(lh_read_file(missing, 16, &got, &len), LH_ENOENT);
    tmp_path(missing, sizeof missing, "absent");
    ck_assert_int_eq(lh_read_file(missing, 16, &got, &len), LH_ENOENT);
}
END_TEST

/* The cap is exact: a file of max bytes loads, one byte more does not,
 * for caps below and above the initial buffer size. */
START_TEST(test_read_file_cap)
{
    static const size_t caps[] = {1, 100, 4095, 4096, 4097, 10000, 65536};
    char path[PATH_MAX + 32];
    tmp_path(path, sizeof path, "cap.txt");
    char *buf = malloc(65537);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 'a', 65537);
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        char *got = NULL;
        size_t len = 0;
        ck_assert_int_eq(lh_write_file_atomic(path, buf, caps[i]), 0);
        ck_assert_msg(lh_read_file(path, caps[i], &got, &len) == 0, "exactly %zu", caps[i]);
        ck_assert_uint_eq(len, caps[i]);
        free(got);
        ck_assert_int_eq(lh_write_file_atomic(path, buf, caps[i] + 1), 0);
        got = NULL;
        ck_assert_msg(lh_read_file(path, caps[i], &got, &len) == LH_ETOOBIG, "over %zu",
                      caps[i]);
        ck_assert_ptr_null(got);
    }
    free(buf);
}
END_TEST

START_TEST(test_mkdir_p)
{
    char path[PATH_MAX + 32];
    struct stat st;
    tmp_path(path, sizeof path, "a/b/c");
    ck_assert_int_eq(lh_mkdir_p(path), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    mode_t mask = umask(0);
    umask(mask);
    ck_assert_int_eq(st.st_mode & 0777, 0750 & ~mask);
    ck_assert_int_eq(lh_mkdir_p(path), 0); /* existing is fine */
    tmp_path(path, sizeof path, "a/b/d/");
    ck_assert_int_eq(lh_mkdir_p(path), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));

    /* A file in the way is an error, as a component or as the target. */
    char file[PATH_MAX + 32];
    tmp_path(file, sizeof file, "a/file");
    ck_assert_int_eq(lh_write_file_atomic(file, "x", 1), 0);
    tmp_path(path, sizeof path, "a/file/sub");
    ck_assert_int_eq(lh_mkdir_p(path), LH_EIO);
    ck_assert_int_eq(lh_mkdir_p(file), LH_EIO);
    ck_assert_int_eq(lh_mkdir_p(""), LH_EINVAL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_parse_size);
    tcase_add_test(tc, test_parse_duration);
    tcase_add_test(tc, test_format_time);
    tcase_add_test(tc, test_time_round_trip);
    tcase_add_test(tc, test_parse_time_valid);
    tcase_add_test(tc, test_parse_time_invalid);
    tcase_add_test(tc, test_split_hostport);
    tcase_add_test(tc, test_write_read_file);
    tcase_add_test(tc, test_read_file_cap);
    tcase_add_test(tc, test_mkdir_p);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(suite());
}
