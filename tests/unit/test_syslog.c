/* Syslog parsers (RFC 5424, RFC 3164, auto) and RFC 6587 framing. */
#include <check.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base/err.h"
#include "common/codec/syslog.h"
#include "common/codec/syslog_frame.h"
#include "lh_check.h"

#define NS 1000000000LL
/* 2026-01-02T00:00:00Z: "now" for the year guesses of RFC 3164 stamps. */
#define NOW (1767312000LL * NS)

static struct lh_syslog_msg m;

static int parse(const char *s, enum lh_syslog_format f)
{
    return lh_syslog_parse(s, strlen(s), f, NOW, &m);
}

#define ck_str(field, want)                                                                  \
    do {                                                                                     \
        const char *w_ = (want);                                                             \
        if (!w_) {                                                                           \
            ck_assert_msg((field).p == NULL, #field " should be absent, is '%.*s'",          \
                          (int)(field).n, (field).p);                                        \
        } else {                                                                             \
            ck_assert_msg((field).p != NULL, #field " missing");                             \
            ck_assert_msg((field).n == strlen(w_) && memcmp((field).p, w_, (field).n) == 0,  \
                          #field " is '%.*s', want '%s'", (int)(field).n, (field).p, w_);    \
        }                                                                                    \
    } while (0)

static void utc(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
}

/* ---- RFC 5424 ----------------------------------------------------------- */

START_TEST(rfc5424_example1_bom)
{
    ck_assert_int_eq(parse("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
                           "\xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8",
                           LH_SYSLOG_AUTO),
                     0);
    ck_assert_int_eq(m.format, LH_SYSLOG_RFC5424);
    ck_assert_str_eq(lh_syslog_facility_name(m.facility), "auth");
    ck_assert_str_eq(lh_syslog_severity_name(m.severity), "crit");
    ck_assert(m.has_time);
    ck_assert_int_eq(m.ns, 1065910455LL * NS + 3000000);
    ck_str(m.hostname, "mymachine.example.com");
    ck_str(m.appname, "su");
    ck_str(m.procid, NULL);
    ck_str(m.msgid, "ID47");
    ck_assert_uint_eq(m.n_sd, 0);
    ck_str(m.message, "'su root' failed for lonvick on /dev/pts/8");
}
END_TEST

START_TEST(rfc5424_example2_offset_micro)
{
    ck_assert_int_eq(parse("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
                           "%% It's time to make the do-nuts.",
                           LH_SYSLOG_RFC5424),
                     0);
    ck_assert_str_eq(lh_syslog_facility_name(m.facility), "local4");
    ck_assert_str_eq(lh_syslog_severity_name(m.severity), "notice");
    ck_assert_int_eq(m.ns, 1061727255LL * NS + 3000);
    ck_str(m.hostname, "192.0.2.1");
    ck_str(m.procid, "8710");
    ck_str(m.msgid, NULL);
    ck_str(m.message, "%% It's time to make the do-nuts.");
}
END_TEST

START_TEST(rfc5424_example4_two_sd_no_msg)
{
    ck_assert_int_eq(parse("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - "
                           "ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" "
                           "eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
                           LH_SYSLOG_AUTO),
                     0);
    ck_assert_uint_eq(m.n_sd, 2);
    ck_str(m.sd[0].id, "exampleSDID@32473");
    ck_assert_uint_eq(m.sd[0].n, 3);
    ck_str(m.params[m.sd[0].first + 1].name, "eventSource");
    ck_str(m.params[m.sd[0].first + 1].value, "Application");
    ck_str(m.sd[1].id, "examplePriority@32473");
    ck_assert_uint_eq(m.sd[1].n, 1);
    ck_str(m.params[m.sd[1].first].name, "class");
    ck_str(m.params[m.sd[1].first].value, "high");
    ck_str(m.message, NULL);
}
END_TEST

START_TEST(rfc5424_sd_escapes)
{
    const char *s = "<14>1 - h a - - [x@1 v=\"q\\\"b\\\\c\\]d\\n\" e=\"\"] msg";
    ck_assert_int_eq(parse(s, LH_SYSLOG_AUTO), 0);
    ck_assert_uint_eq(m.n_sd, 1);
    const struct lh_syslog_param *v = &m.params[0];
    char out[64];
    size_t n = lh_syslog_unescape(v->value.p, v->value.n, out);
    ck_assert_uint_eq(n, strlen("q\"b\\c]d\\n"));
    ck_assert(memcmp(out, "q\"b\\c]d\\n", n) == 0); /* \n is not an escape: kept */
    ck_str(m.params[1].name, "e");
    ck_assert_uint_eq(m.params[1].value.n, 0);
    ck_str(m.message, "msg");
}
END_TEST

START_TEST(rfc5424_nilvalues)
{
    ck_assert_int_eq(parse("<13>1 - - - - - -", LH_SYSLOG_AUTO), 0);
    ck_assert_int_eq(m.format, LH_SYSLOG_RFC5424);
    ck_assert(!m.has_time);
    ck_str(m.hostname, NULL);
    ck_str(m.appname, NULL);
    ck_str(m.procid, NULL);
    ck_str(m.msgid, NULL);
    ck_str(m.message, NULL);
    ck_assert_uint_eq(m.n_sd, 0);
    /* An empty MSG after the space, and a BOM alone. */
    ck_assert_int_eq(parse("<13>1 - - - - - - \xEF\xBB\xBF", LH_SYSLOG_RFC5424), 0);
    ck_str(m.message, NULL);
}
END_TEST

START_TEST(rfc5424_timestamps)
{
    ck_assert_int_eq(parse("<13>1 2026-11-24T06:48:32+01:00 h a p m - x", LH_SYSLOG_AUTO), 0);
    ck_assert_int_eq(m.ns, 1795499312LL * NS);
    ck_assert_int_eq(parse("<13>1 2026-11-24T05:48:32.123456789Z h a p m - x", LH_SYSLOG_AUTO),
                     0);
    ck_assert_int_eq(m.ns, 1795499312LL * NS + 123456789);
    ck_assert_int_eq(parse("<13>1 2026-11-24T05:48:32.1Z h a p m - x", LH_SYSLOG_AUTO), 0);
    ck_assert_int_eq(m.ns, 1795499312LL * NS + 100000000);
    /* No zone, a bad month: not RFC 5424 (strict mode refuses them). */
    ck_assert_int_eq(parse("<13>1 2026-11-24T05:48:32 h a p m - x", LH_SYSLOG_RFC5424), LH_EINVAL);
    ck_assert_int_eq(parse("<13>1 2026-13-24T05:48:32Z h a p m - x", LH_SYSLOG_RFC5424),
                     LH_EINVAL);
}
END_TEST

START_TEST(rfc5424_malformed)
{
    static const char *const bad[] = {
        "<13>1 - h a p m [x@1 k=\"unterminated] msg",
        "<13>1 - h a p m [x@1 k=v] msg",
        "<13>1 - h a p m [] msg",
        "<13>1 - h a p m [x@1]junk",
        "<13>1 - h a p m",
        "<13>1 - h aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa p m - x",
        "<13>2 - h a p m - x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(parse(bad[i], LH_SYSLOG_RFC5424) == LH_EINVAL, "accepted %s", bad[i]);
        /* auto keeps it as an RFC 3164 message, the whole body kept. */
        ck_assert_int_eq(parse(bad[i], LH_SYSLOG_AUTO), 0);
        ck_assert_int_eq(m.format, LH_SYSLOG_RFC3164);
        ck_str(m.message, strchr(bad[i], '>') + 1);
    }
}
END_TEST

START_TEST(sd_bounds)
{
    char buf[8192] = "<13>1 - - - - - ";
    for (int i = 0; i <= LH_SYSLOG_MAX_SD; i++)
        strcat(buf, "[a b=\"c\"]");
    ck_assert_int_eq(lh_syslog_parse(buf, strlen(buf), LH_SYSLOG_RFC5424, NOW, &m), LH_EINVAL);
}
END_TEST

/* ---- RFC 3164 ----------------------------------------------------------- */

START_TEST(rfc3164_examples)
{
    utc();
    ck_assert_int_eq(parse("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on "
                           "/dev/pts/8",
                           LH_SYSLOG_AUTO),
                     0);
    ck_assert_int_eq(m.format, LH_SYSLOG_RFC3164);
    ck_assert_str_eq(lh_syslog_facility_name(m.facility), "auth");
    ck_assert_str_eq(lh_syslog_severity_name(m.severity), "crit");
    ck_assert(m.has_time);
    ck_str(m.hostname, "mymachine");
    ck_str(m.appname, "su");
    ck_str(m.procid, NULL);
    ck_str(m.message, "'su root' failed for lonvick on /dev/pts/8");
    /* Single-digit day padded with a space; a host and no tag. */
    ck_assert_int_eq(parse("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", LH_SYSLOG_RFC3164), 0);
    ck_str(m.hostname, "10.0.0.99");
    ck_str(m.appname, NULL);
    ck_str(m.message, "Use the BFG!");
}
END_TEST

START_TEST(rfc3164_tag_pid_no_host)
{
    utc();
    ck_assert_int_eq(parse("<38>Nov 24 06:48:32 sshd[4123]: Accepted publickey", LH_SYSLOG_AUTO),
                     0);
    ck_str(m.hostname, NULL);
    ck_str(m.appname, "sshd");
    ck_str(m.procid, "4123");
    ck_str(m.message, "Accepted publickey");
    ck_assert_str_eq(lh_syslog_facility_name(m.facility), "auth");
    ck_assert_str_eq(lh_syslog_severity_name(m.severity), "info");
    /* Last year's November (now is January 2026). */
    ck_assert_int_eq(m.ns, 1763966912LL * NS);
    ck_assert_int_eq(parse("<13>Nov 24 06:48:32 web1 cron[7]: x", LH_SYSLOG_AUTO), 0);
    ck_str(m.hostname, "web1");
    ck_str(m.appname, "cron");
    ck_str(m.procid, "7");
    ck_str(m.message, "x");
    /* rsyslog's forward format for a message that came in as RFC 5424. */
    ck_assert_int_eq(parse("<155>2026-11-24T09:03:52.313882+00:00 vm app1[4242] via rsyslog",
                           LH_SYSLOG_AUTO),
                     0);
    ck_str(m.hostname, "vm");
    ck_str(m.appname, "app1");
    ck_str(m.procid, "4242");
    ck_str(m.message, "via rsyslog");
}
END_TEST

START_TEST(rfc3164_timestamp_forms)
{
    utc();
    ck_assert_int_eq(parse("<13>2026-11-24T06:48:32.5+01:00 host app: m", LH_SYSLOG_AUTO), 0);
    ck_assert_int_eq(m.ns, 1795499312LL * NS + 500000000);
    ck_str(m.hostname, "host");
    ck_str(m.appname, "app");
    ck_assert_int_eq(parse("<13>Nov 24 2026 05:48:32 host app: m", LH_SYSLOG_AUTO), 0);
    ck_assert_int_eq(m.ns, 1795499312LL * NS);
    ck_assert_int_eq(parse("<13>Dec 31 23:00:00.250 host app: m", LH_SYSLOG_AUTO), 0);
    ck_assert_int_eq(m.ns, 1767222000LL * NS + 250000000);
    /* No timestamp at all: the tag is still found. */
    ck_assert_int_eq(parse("<13>kernel: boot", LH_SYSLOG_AUTO), 0);
    ck_assert(!m.has_time);
    ck_str(m.appname, "kernel");
    ck_str(m.message, "boot");
}
END_TEST

START_TEST(facility_severity_names)
{
    static const char *const fac[] = {"kern", "user", "mail", "daemon", "auth", "syslog",
                                      "lpr", "news", "uucp", "cron", "authpriv", "ftp",
                                      "ntp", "security", "console", "solaris-cron", "local0",
                                      "local1", "local2", "local3", "local4", "local5",
                                      "local6", "local7"};
    for (int i = 0; i < 24; i++)
        ck_assert_str_eq(lh_syslog_facility_name(i), fac[i]);
    ck_assert_str_eq(lh_syslog_severity_name(0), "emerg");
    ck_assert_str_eq(lh_syslog_severity_name(3), "err");
    ck_assert_str_eq(lh_syslog_severity_name(4), "warning");
    ck_assert_str_eq(lh_syslog_severity_name(7), "debug");
    ck_assert_int_eq(parse("<191>x", LH_SYSLOG_AUTO), 0);
    ck_assert_str_eq(lh_syslog_facility_name(m.facility), "local7");
    ck_assert_str_eq(lh_syslog_severity_name(m.severity), "debug");
}
END_TEST

START_TEST(neither_format)
{
    static const char *const bad[] = {"", "plain text", "<", "<>x", "<192>x", "<1234>x",
                                      "<13", "<a>x", "13>x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(parse(bad[i], LH_SYSLOG_AUTO) == LH_EINVAL, "accepted '%s'", bad[i]);
    /* Every prefix of a valid message, without a terminating NUL. */
    const char *full = "<165>1 2003-10-11T22:14:15.003Z h a - ID47 [x@1 a=\"b\\\"\"] m";
    for (size_t n = 0; n <= strlen(full); n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, full, n);
        lh_syslog_parse(copy, n, LH_SYSLOG_AUTO, NOW, &m);
        free(copy);
    }
}
END_TEST

/* ---- framing ------------------------------------------------------------ */

struct got {
    char msg[16][256];
    size_t len[16];
    bool trunc[16];
    size_t n;
};

static void collect(void *ud, const char *p, size_t n, bool truncated)
{
    struct got *g = ud;
    ck_assert_uint_lt(g->n, 16);
    ck_assert_uint_le(n, sizeof g->msg[0]);
    memcpy(g->msg[g->n], p, n);
    g->len[g->n] = n;
    g->trunc[g->n] = truncated;
    g->n++;
}

static void ck_msg(const struct got *g, size_t i, const char *want, bool trunc)
{
    ck_assert_uint_lt(i, g->n);
    ck_assert_msg(g->len[i] == strlen(want) && memcmp(g->msg[i], want, g->len[i]) == 0,
                  "message %zu is '%.*s', want '%s'", i, (int)g->len[i], g->msg[i], want);
    ck_assert_int_eq(g->trunc[i], trunc);
}

/* Feeds s (n bytes) in pieces of step bytes (0: all at once). */
static void feed(struct got *g, size_t max, const char *s, size_t n, size_t step)
{
    struct lh_syslog_frame f;
    lh_syslog_frame_init(&f, max);
    memset(g, 0, sizeof *g);
    if (step == 0)
        step = n ? n : 1;
    for (size_t i = 0; i < n; i += step)
        ck_assert_int_eq(lh_syslog_frame_feed(&f, s + i, n - i < step ? n - i : step, collect, g),
                         0);
    lh_syslog_frame_finish(&f, collect, g);
    lh_syslog_frame_free(&f);
}

static const char mixed[] = "11 <13>1 - - -\n<14>lf line\r\n<15>nul line\0"
                            "5 <1>ab\n\n12345not a count\n3 xyz";

static void ck_mixed(const struct got *g)
{
    ck_assert_uint_eq(g->n, 6);
    ck_msg(g, 0, "<13>1 - - -", false); /* the LF after it is skipped */
    ck_msg(g, 1, "<14>lf line", false);
    ck_msg(g, 2, "<15>nul line", false);
    ck_msg(g, 3, "<1>ab", false);
    ck_msg(g, 4, "12345not a count", false);
    ck_msg(g, 5, "xyz", false);
}

START_TEST(frame_mixed_whole)
{
    struct got g;
    feed(&g, 1024, mixed, sizeof mixed - 1, 0);
    ck_mixed(&g);
}
END_TEST

START_TEST(frame_mixed_byte_by_byte)
{
    struct got g;
    for (size_t step = 1; step <= 7; step++) {
        feed(&g, 1024, mixed, sizeof mixed - 1, step);
        ck_mixed(&g);
    }
}
END_TEST

START_TEST(frame_octet_counting)
{
    struct got g;
    const char s[] = "4 abcd3 e\nf10 0123456789";
    feed(&g, 64, s, sizeof s - 1, 0);
    ck_assert_uint_eq(g.n, 3);
    ck_msg(&g, 0, "abcd", false);
    ck_msg(&g, 1, "e\nf", false);
    ck_msg(&g, 2, "0123456789", false);
}
END_TEST

START_TEST(frame_oversized_truncated)
{
    struct got g;
    char s[512];
    for (size_t step = 0; step <= 3; step++) {
        /* An octet-counted frame of 40 bytes with max 16, then a short one. */
        snprintf(s, sizeof s, "40 %s2 ok", "0123456789abcdefghijklmnopqrstuvwxyzABCD");
        feed(&g, 16, s, strlen(s), step);
        ck_assert_uint_eq(g.n, 2);
        ck_msg(&g, 0, "0123456789abcdef", true);
        ck_msg(&g, 1, "ok", false);
        /* A long line is cut, its rest skipped up to the newline. */
        snprintf(s, sizeof s, "<1>%s\n<2>next\n", "0123456789abcdefghijklmnopqrstuvwxyz");
        feed(&g, 16, s, strlen(s), step);
        ck_assert_uint_eq(g.n, 2);
        ck_msg(&g, 0, "<1>0123456789abc", true);
        ck_msg(&g, 1, "<2>next", false);
        /* Exactly max bytes, CRLF ended: whole, not truncated. */
        feed(&g, 16, "<1>0123456789abc\r\n", 18, step);
        ck_assert_uint_eq(g.n, 1);
        ck_msg(&g, 0, "<1>0123456789abc", false);
    }
}
END_TEST

START_TEST(frame_eof)
{
    struct got g;
    feed(&g, 64, "<1>no newline", 13, 0);
    ck_assert_uint_eq(g.n, 1);
    ck_msg(&g, 0, "<1>no newline", false);
    feed(&g, 64, "10 short", 8, 3);
    ck_assert_uint_eq(g.n, 1);
    ck_msg(&g, 0, "short", true);
    feed(&g, 64, "\n\n\r\n", 4, 1);
    ck_assert_uint_eq(g.n, 0);
}
END_TEST

static void count_only(void *ud, const char *p, size_t n, bool truncated)
{
    (void)p;
    (void)n;
    (void)truncated;
    (*(size_t *)ud)++;
}

/* What the decoder's buffer really occupies (malloc_usable_size, so the
 * check holds whatever the decoder believes it holds). */
static size_t buf_bytes(const struct lh_syslog_frame *f)
{
    return f->buf ? malloc_usable_size(f->buf) : 0;
}

START_TEST(frame_buffer_grows_with_what_it_holds)
{
    struct lh_syslog_frame f;
    size_t got = 0;
    static char big[60000];
    lh_syslog_frame_init(&f, 64 * 1024);
    /* Whole lines in one feed are never copied: no buffer at all. */
    ck_assert_int_eq(lh_syslog_frame_feed(&f, "<1>a\n<2>b\n", 10, count_only, &got), 0);
    ck_assert_uint_eq(got, 2);
    ck_assert_ptr_null(f.buf);
    /* A short partial line costs about its size, not max. */
    ck_assert_int_eq(lh_syslog_frame_feed(&f, "<3>partial", 10, count_only, &got), 0);
    ck_assert_uint_le(buf_bytes(&f), 1024);
    ck_assert_uint_eq(lh_syslog_frame_held(&f), f.cap);
    /* Growing by pieces: never more than twice what is held (plus the
     * first size). */
    memset(big, 'z', sizeof big);
    for (size_t i = 0; i < sizeof big; i += 1000) {
        ck_assert_int_eq(lh_syslog_frame_feed(&f, big + i, 1000, count_only, &got), 0);
        ck_assert_uint_le(lh_syslog_frame_held(&f), 2 * f.len + 256);
        ck_assert_uint_ge(buf_bytes(&f), lh_syslog_frame_held(&f));
    }
    ck_assert_uint_le(lh_syslog_frame_held(&f), 64 * 1024 + 1);
    /* Once the long line is out its buffer goes back. */
    ck_assert_int_eq(lh_syslog_frame_feed(&f, "\n", 1, count_only, &got), 0);
    ck_assert_uint_eq(got, 3);
    ck_assert_ptr_null(f.buf);
    ck_assert_uint_eq(lh_syslog_frame_held(&f), 0);
    lh_syslog_frame_free(&f);
}
END_TEST

/* Messages of one decoding, as (length, flag, bytes), compared whole. */
struct trace {
    char p[1 << 20];
    size_t len, count;
};

static void trace_msg(void *ud, const char *p, size_t n, bool truncated)
{
    struct trace *t = ud;
    ck_assert_uint_le(t->len + n + sizeof n + 1, sizeof t->p);
    memcpy(t->p + t->len, &n, sizeof n);
    t->p[t->len + sizeof n] = (char)truncated;
    memcpy(t->p + t->len + sizeof n + 1, p, n);
    t->len += sizeof n + 1 + n;
    t->count++;
}

/* Under a memory limit the decoder never grows past it, stops at the
 * byte that would need more (LH_AGAIN), and fed the rest later gives the
 * very messages an unlimited decoding gives. */
START_TEST(frame_feed_upto_limits_and_resumes)
{
    static const char *const pieces[] = {"<1>abc", "\n", "12 ", "0123456789ab", "999 ",
                                         "xyz", "\r\n", "4", "0", " ", "1"};
    static const size_t limits[] = {0, 256, 512, 1024, 4096};
    static char stream[200000];
    static struct trace want, got;
    const size_t max = 2048;
    size_t n = 0, agains = 0;
    unsigned seed = 7;
    while (n + 3000 < sizeof stream) {
        const char *pc = pieces[rand_r(&seed) % (sizeof pieces / sizeof pieces[0])];
        size_t rep = strcmp(pc, "xyz") == 0 ? (size_t)(rand_r(&seed) % 900) : 1;
        for (size_t r = 0; r < rep; r++, n += strlen(pc))
            memcpy(stream + n, pc, strlen(pc));
    }
    struct lh_syslog_frame f;
    memset(&want, 0, sizeof want);
    memset(&got, 0, sizeof got);
    lh_syslog_frame_init(&f, max);
    ck_assert_int_eq(lh_syslog_frame_feed(&f, stream, n, trace_msg, &want), 0);
    lh_syslog_frame_finish(&f, trace_msg, &want);
    lh_syslog_frame_free(&f);

    lh_syslog_frame_init(&f, max);
    for (size_t i = 0; i < n;) {
        size_t chunk = (size_t)(rand_r(&seed) % 5000) + 1, used;
        size_t limit = limits[rand_r(&seed) % (sizeof limits / sizeof limits[0])];
        size_t before = lh_syslog_frame_held(&f);
        chunk = chunk < n - i ? chunk : n - i;
        int rc = lh_syslog_frame_feed_upto(&f, stream + i, chunk, limit, trace_msg, &got, &used);
        ck_assert_msg(rc == 0 || rc == LH_AGAIN, "rc %d", rc);
        ck_assert_uint_le(lh_syslog_frame_held(&f), before > limit ? before : limit);
        ck_assert_uint_eq(used == chunk, rc == 0);
        agains += rc == LH_AGAIN;
        i += used;
    }
    /* With room for max + 1 bytes a decoder never has to stop. */
    size_t used;
    ck_assert_int_eq(lh_syslog_frame_feed_upto(&f, "", 0, max + 1, trace_msg, &got, &used), 0);
    lh_syslog_frame_finish(&f, trace_msg, &got);
    lh_syslog_frame_free(&f);
    ck_assert_uint_gt(agains, 5);
    ck_assert_uint_gt(want.count, 100);
    ck_assert_uint_eq(got.count, want.count);
    ck_assert_uint_eq(got.len, want.len);
    ck_assert(memcmp(got.p, want.p, want.len) == 0);
}
END_TEST

START_TEST(frame_feed_upto_max_never_waits)
{
    static char line[70000];
    struct lh_syslog_frame f;
    size_t got = 0, used;
    memset(line, 'q', sizeof line);
    lh_syslog_frame_init(&f, 64 * 1024);
    /* A message cut at max needs max + 1 bytes, never more. */
    for (size_t i = 0; i < sizeof line; i += 700)
        ck_assert_int_eq(lh_syslog_frame_feed_upto(&f, line + i, 700, 64 * 1024 + 1, count_only,
                                                   &got, &used), 0);
    ck_assert_uint_eq(got, 1);
    ck_assert_uint_le(lh_syslog_frame_held(&f), 64 * 1024 + 1);
    lh_syslog_frame_free(&f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("syslog");
    TCase *p = tcase_create("parse");
    tcase_add_test(p, rfc5424_example1_bom);
    tcase_add_test(p, rfc5424_example2_offset_micro);
    tcase_add_test(p, rfc5424_example4_two_sd_no_msg);
    tcase_add_test(p, rfc5424_sd_escapes);
    tcase_add_test(p, rfc5424_nilvalues);
    tcase_add_test(p, rfc5424_timestamps);
    tcase_add_test(p, rfc5424_malformed);
    tcase_add_test(p, sd_bounds);
    tcase_add_test(p, rfc3164_examples);
    tcase_add_test(p, rfc3164_tag_pid_no_host);
    tcase_add_test(p, rfc3164_timestamp_forms);
    tcase_add_test(p, facility_severity_names);
    tcase_add_test(p, neither_format);
    suite_add_tcase(s, p);
    TCase *f = tcase_create("frame");
    tcase_add_test(f, frame_mixed_whole);
    tcase_add_test(f, frame_mixed_byte_by_byte);
    tcase_add_test(f, frame_octet_counting);
    tcase_add_test(f, frame_oversized_truncated);
    tcase_add_test(f, frame_eof);
    tcase_add_test(f, frame_buffer_grows_with_what_it_holds);
    tcase_add_test(f, frame_feed_upto_limits_and_resumes);
    tcase_add_test(f, frame_feed_upto_max_never_waits);
    suite_add_tcase(s, f);
    return s;
}

int main(void)
{
    return lh_test_run(suite());
}
