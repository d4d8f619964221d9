/* The collector outputs' spool sender, driven by a fake deliver() that
 * answers OK / RETRY / FAIL in patterns: order, replay after reopen,
 * consumption only on an answer that ends a batch, the window, bounded
 * jittered backoff, drops counted. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector/outputs/spool.h"
#include "common/base/err.h"
#include "common/base/util.h"
#include "common/chunkq/chunkq.h"
#include "lh_check.h"

#define MAXN 64

static char tmpdir[PATH_MAX];

static void setup(void)
{
    lh_test_mkdtemp(tmpdir, sizeof tmpdir, "spool");
}

static void teardown(void)
{
    lh_test_rmrf(tmpdir);
}

/* The output: what it was handed, in order, and how it answers. The
 * pattern holds one letter per delivery (past its end: 'o'):
 *   o, r, f  answer OK, RETRY, FAIL from inside deliver()
 *   h        take it and hold it (the test answers later)
 *   a        not ready: LH_AGAIN
 *   e        cannot take it: LH_EIO */
struct fake {
    struct event_base *base;
    struct lh_metrics *metrics;
    struct lh_coll_spool *sp;
    const char *pattern;
    size_t step;
    char got[MAXN][16];           /* payloads taken */
    int64_t at_ms[MAXN];
    size_t n_got, n_calls;
    char rendered_id[LH_CHUNK_ID_LEN + 1], delivered_id[LH_CHUNK_ID_LEN + 1];
    bool not_ready;               /* what the ready hook says */
    size_t n_ready_asked;
    struct lh_coll_spool_item *held[MAXN];
    char held_name[MAXN][16];
    size_t n_held;
};

static int fake_deliver(void *ud, struct lh_coll_spool_item *it, char *payload, size_t len)
{
    struct fake *f = ud;
    char what = f->pattern[f->step] ? f->pattern[f->step++] : 'o';
    char name[16];
    ck_assert_uint_eq(len, it->chunk->payload_len);
    snprintf(name, sizeof name, "%.*s", (int)len, payload);
    free(payload);
    f->n_calls++;
    ck_assert_uint_lt(f->n_calls, MAXN);
    if (what == 'a')
        return LH_AGAIN;
    if (what == 'e')
        return LH_EIO;
    snprintf(f->delivered_id, sizeof f->delivered_id, "%s", it->chunk->id);
    snprintf(f->got[f->n_got], sizeof f->got[0], "%s", name);
    f->at_ms[f->n_got++] = lh_mono_ms();
    if (what == 'h') {
        snprintf(f->held_name[f->n_held], sizeof f->held_name[0], "%s", name);
        f->held[f->n_held++] = it;
        return LH_OK;
    }
    lh_coll_spool_answer(f->sp, it, what == 'o' ? LH_FLUSH_OK
                                    : what == 'r' ? LH_FLUSH_RETRY
                                                  : LH_FLUSH_FAIL);
    return LH_OK;
}

/* The batch's events are the payload; a tag "tbad" does not render. */
static int fake_render(void *ud, const struct lh_coll_batch *b, const char *id,
                       msgpack_sbuffer *out)
{
    struct fake *f = ud;
    ck_assert_uint_eq(strlen(id), LH_CHUNK_ID_LEN);
    snprintf(f->rendered_id, sizeof f->rendered_id, "%s", id);
    if (strcmp(b->tag, "tbad") == 0)
        return LH_EPROTO;
    return msgpack_sbuffer_write(out, b->events, b->events_len) == 0 ? LH_OK : LH_ENOMEM;
}

static bool fake_ready(void *ud)
{
    struct fake *f = ud;
    f->n_ready_asked++;
    return !f->not_ready;
}

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof *f);
    f->pattern = "";
    ck_assert_ptr_nonnull(f->base = event_base_new());
    ck_assert_ptr_nonnull(f->metrics = lh_metrics_new());
}

static void fake_answers(struct fake *f, const char *pattern)
{
    f->pattern = pattern;
    f->step = 0;
}

static void fake_open(struct fake *f, const char *pattern, size_t window, int64_t min_ms,
                      int64_t max_ms, int64_t max_size)
{
    char err[256] = "";
    fake_answers(f, pattern);
    struct lh_coll_output_ctx ctx = {.base = f->base, .metrics = f->metrics, .data_dir = tmpdir};
    struct lh_coll_spool_opts o = {.type = "fake", .max_size = max_size,
                                   .max_in_flight = window, .backoff_min_ms = min_ms,
                                   .backoff_max_ms = max_ms, .match = "t*",
                                   .render = fake_render, .deliver = fake_deliver,
                                   .ready = fake_ready, .ud = f};
    ck_assert_msg(lh_coll_spool_open(&ctx, 0, 1, &o, &f->sp, err, sizeof err) == 0,
                  "open: %s", err);
}

static void fake_start(struct fake *f, const char *pattern, size_t window, int64_t min_ms,
                       int64_t max_ms, int64_t max_size)
{
    fake_init(f);
    fake_open(f, pattern, window, min_ms, max_ms, max_size);
}

static void fake_reopen(struct fake *f, const char *pattern, size_t window)
{
    lh_coll_spool_close(f->sp);
    f->n_got = f->n_calls = f->n_held = 0;
    fake_open(f, pattern, window, 10, 40, 1 << 20);
}

/* What a reopen finds: nothing unconsumed. */
static void expect_nothing_left(struct fake *f)
{
    fake_reopen(f, "", 1);
    ck_assert_uint_eq(lh_coll_spool_queued(f->sp), 0);
}

static void fake_free(struct fake *f)
{
    lh_coll_spool_close(f->sp);
    lh_metrics_free(f->metrics);
    event_base_free(f->base);
}

/* Spools a batch of n records that renders as name. */
static int put(struct fake *f, const char *name, size_t n)
{
    struct lh_coll_batch b = {.tag = "t", .events = name, .events_len = strlen(name),
                              .n_events = n};
    return lh_coll_spool_write(f->sp, &b);
}

/* Appends p0 .. p(n-1), one record each. */
static void put_seq(struct fake *f, int n)
{
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        ck_assert_int_eq(put(f, name, 1), 0);
    }
}

static int64_t metric(struct fake *f, const char *name)
{
    return lh_metric_value(
        lh_metrics_get(f->metrics, LH_METRIC_COUNTER, name, "output=\"fake\"", "x"));
}

/* Runs the loop until n payloads were taken; bounded by 5 s. */
static void run_until_got(struct fake *f, size_t n)
{
    int64_t end = lh_mono_ms() + 5000;
    while (f->n_got < n && lh_mono_ms() < end)
        event_base_loop(f->base, EVLOOP_ONCE);
    ck_assert_uint_eq(f->n_got, n);
}

static void expect_got(const struct fake *f, const char *const *want, size_t n)
{
    ck_assert_uint_eq(f->n_got, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(f->got[i], want[i]);
}

START_TEST(answers_consume_drop_or_retry_in_order)
{
    struct fake f;
    fake_start(&f, "ofroo", 1, 10, 40, 1 << 20);
    ck_assert_int_eq(put(&f, "p0", 1), 0);
    ck_assert_int_eq(put(&f, "p1", 2), 0);
    ck_assert_int_eq(put(&f, "p2", 4), 0);
    ck_assert_int_eq(put(&f, "p3", 8), 0);
    run_until_got(&f, 5);
    static const char *const want[] = {"p0", "p1", "p2", "p2", "p3"};
    expect_got(&f, want, 5);
    ck_assert_uint_eq(lh_coll_spool_queued(f.sp), 0);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_delivered_total"), 1 + 4 + 8);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_dropped_total"), 2);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_retries_total"), 1);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_errors_total"), 1);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_records_total"), 15);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_batches_total"), 4);
    expect_nothing_left(&f);
    fake_free(&f);
}
END_TEST

START_TEST(unanswered_batches_are_replayed_in_order_after_reopen)
{
    struct fake f;
    fake_start(&f, "hhhhh", 2, 10, 40, 1 << 20);
    put_seq(&f, 5);
    static const char *const first[] = {"p0", "p1"};
    expect_got(&f, first, 2); /* the window */
    ck_assert_uint_eq(lh_coll_spool_in_flight(f.sp), 2);
    lh_coll_spool_answer(f.sp, f.held[1], LH_FLUSH_OK); /* out of order */
    static const char *const second[] = {"p0", "p1", "p2"};
    expect_got(&f, second, 3);
    /* p0 and p2 in flight, p3 and p4 waiting: all four come back. */
    fake_reopen(&f, "", 1);
    ck_assert_uint_eq(lh_coll_spool_queued(f.sp), 4);
    ck_assert_uint_eq(f.n_calls, 0); /* nothing before the kick */
    lh_coll_spool_kick(f.sp);
    static const char *const replayed[] = {"p0", "p2", "p3", "p4"};
    expect_got(&f, replayed, 4);
    expect_nothing_left(&f);
    fake_free(&f);
}
END_TEST

START_TEST(a_retried_batch_goes_again_in_its_place_after_the_backoff)
{
    struct fake f;
    fake_start(&f, "hhhh", 3, 50, 50, 1 << 20);
    put_seq(&f, 4);
    ck_assert_uint_eq(f.n_got, 3);
    lh_coll_spool_answer(f.sp, f.held[1], LH_FLUSH_RETRY);
    lh_coll_spool_answer(f.sp, f.held[0], LH_FLUSH_OK);
    /* The window has room, but nothing new goes out during the backoff. */
    ck_assert_uint_eq(f.n_got, 3);
    ck_assert_uint_eq(lh_coll_spool_in_flight(f.sp), 1);
    run_until_got(&f, 5);
    static const char *const want[] = {"p0", "p1", "p2", "p1", "p3"};
    expect_got(&f, want, 5);
    ck_assert_int_ge(f.at_ms[3] - f.at_ms[1], 25);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_retries_total"), 1);
    fake_free(&f);
}
END_TEST

START_TEST(backoff_doubles_to_its_bound_with_jitter)
{
    int64_t d = 500;
    for (unsigned fails = 1; fails <= 12; fails++) {
        int64_t lo = INT64_MAX, hi = 0;
        for (uint32_t r = 0; r < 40000; r += 7) {
            int64_t w = lh_coll_spool_backoff_ms(fails, 500, 30000, r * 2654435761u);
            lo = w < lo ? w : lo;
            hi = w > hi ? w : hi;
        }
        ck_assert_int_ge(lo, d / 2);
        ck_assert_int_le(hi, d);
        ck_assert_int_gt(hi - lo, d / 4); /* jittered, not one value */
        d = d * 2 < 30000 ? d * 2 : 30000;
    }
    ck_assert_int_eq(lh_coll_spool_backoff_ms(1, 1000, 1000, 0), 500);
    ck_assert_int_eq(lh_coll_spool_backoff_ms(40, 1000, 1000, 500), 1000);
    ck_assert_int_le(lh_coll_spool_backoff_ms(UINT32_MAX, 500, 30000, UINT32_MAX), 30000);
}
END_TEST

START_TEST(a_failing_delivery_waits_its_backoff)
{
    struct fake f;
    fake_start(&f, "rrro", 1, 80, 160, 1 << 20);
    ck_assert_int_eq(put(&f, "p0", 3), 0);
    run_until_got(&f, 4);
    /* Waits of at least 40, 80 and 80 ms (each the lower end of its
     * jittered range). */
    ck_assert_int_ge(f.at_ms[1] - f.at_ms[0], 40);
    ck_assert_int_ge(f.at_ms[2] - f.at_ms[1], 80);
    ck_assert_int_ge(f.at_ms[3] - f.at_ms[2], 80);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_retries_total"), 3);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_delivered_total"), 3);
    fake_free(&f);
}
END_TEST

START_TEST(a_refused_handover_is_retried_and_not_ready_waits_for_a_kick)
{
    struct fake f;
    fake_start(&f, "aa", 1, 20, 20, 1 << 20);
    put_seq(&f, 2);
    ck_assert_uint_eq(f.n_calls, 2); /* one try per append, none taken */
    ck_assert_uint_eq(f.n_got, 0);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_retries_total"), 0);
    fake_answers(&f, "eo");
    lh_coll_spool_kick(f.sp);
    ck_assert_uint_eq(f.n_got, 0); /* LH_EIO: backing off */
    run_until_got(&f, 2);
    static const char *const want[] = {"p0", "p1"};
    expect_got(&f, want, 2);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_retries_total"), 1);
    ck_assert_uint_eq(lh_coll_spool_queued(f.sp), 0);
    fake_free(&f);
}
END_TEST

START_TEST(a_write_spools_only_matching_rendered_batches_under_their_id)
{
    struct fake f;
    fake_start(&f, "h", 1, 10, 40, 1 << 20);
    struct lh_coll_batch other = {.tag = "x", .events = "px", .events_len = 2, .n_events = 1};
    struct lh_coll_batch empty = {.tag = "t", .events = "", .n_events = 0};
    struct lh_coll_batch bad = {.tag = "tbad", .events = "pb", .events_len = 2, .n_events = 1};
    ck_assert_int_eq(lh_coll_spool_write(f.sp, &other), 0);
    ck_assert_int_eq(lh_coll_spool_write(f.sp, &empty), 0);
    ck_assert_int_eq(lh_coll_spool_write(f.sp, &bad), LH_EPROTO);
    ck_assert_uint_eq(lh_coll_spool_queued(f.sp), 0);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_errors_total"), 1);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_batches_total"), 0);
    ck_assert_int_eq(put(&f, "p0", 1), 0);
    static const char *const want[] = {"p0"};
    expect_got(&f, want, 1);
    ck_assert_str_eq(f.delivered_id, f.rendered_id); /* the frame's id is the chunk's */
    fake_free(&f);
}
END_TEST

START_TEST(nothing_is_read_or_handed_over_until_the_output_is_ready)
{
    struct fake f;
    fake_start(&f, "", 2, 10, 40, 1 << 20);
    f.not_ready = true;
    put_seq(&f, 3);
    ck_assert_uint_eq(f.n_calls, 0);
    ck_assert_uint_eq(f.n_ready_asked, 3); /* each append asks */
    f.not_ready = false;
    ck_assert_uint_eq(f.n_calls, 0); /* until the kick */
    lh_coll_spool_kick(f.sp);
    static const char *const want[] = {"p0", "p1", "p2"};
    expect_got(&f, want, 3);
    fake_free(&f);
}
END_TEST

START_TEST(requeue_hands_the_window_back_in_order)
{
    struct fake f;
    fake_start(&f, "hhh", 4, 10, 40, 1 << 20);
    put_seq(&f, 3);
    ck_assert_uint_eq(lh_coll_spool_in_flight(f.sp), 3);
    lh_coll_spool_requeue(f.sp);
    ck_assert_uint_eq(lh_coll_spool_in_flight(f.sp), 0);
    ck_assert_uint_eq(f.n_got, 3); /* no delivery before the kick */
    lh_coll_spool_kick(f.sp);
    static const char *const want[] = {"p0", "p1", "p2", "p0", "p1", "p2"};
    expect_got(&f, want, 6);
    ck_assert_uint_eq(lh_coll_spool_queued(f.sp), 0);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_retries_total"), 3);
    fake_free(&f);
}
END_TEST

/* Flips a byte of the first segment file where it holds needle. */
static void damage(const char *needle)
{
    char dir[PATH_MAX + 32], path[2 * PATH_MAX];
    snprintf(dir, sizeof dir, "%s/outputs/fake-0", tmpdir);
    DIR *d = opendir(dir);
    struct dirent *e;
    ck_assert_ptr_nonnull(d);
    path[0] = '\0';
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".seg"))
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    closedir(d);
    char buf[4096];
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    char *at = n > 0 ? memmem(buf, (size_t)n, needle, strlen(needle)) : NULL;
    ck_assert_ptr_nonnull(at);
    char x = (char)(*at ^ 0x20);
    ck_assert_int_eq(pwrite(fd, &x, 1, at - buf), 1);
    close(fd);
}

START_TEST(a_damaged_batch_is_dropped_and_counted)
{
    struct fake f;
    fake_start(&f, "aa", 1, 10, 40, 1 << 20);
    ck_assert_int_eq(put(&f, "damaged", 5), 0);
    ck_assert_int_eq(put(&f, "intact", 1), 0);
    damage("damaged");
    fake_answers(&f, "");
    lh_coll_spool_kick(f.sp);
    static const char *const want[] = {"intact"};
    expect_got(&f, want, 1);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_dropped_total"), 5);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_errors_total"), 1);
    ck_assert_uint_eq(lh_coll_spool_queued(f.sp), 0);
    fake_free(&f);
}
END_TEST

START_TEST(a_full_spool_refuses_and_counts)
{
    struct fake f;
    fake_start(&f, "a", 1, 10, 40, 64 << 10);
    static char big[48 << 10];
    memset(big, 'x', sizeof big - 1);
    struct lh_coll_batch b = {.tag = "t", .events = big, .events_len = sizeof big,
                              .n_events = 1};
    ck_assert_int_eq(lh_coll_spool_write(f.sp, &b), 0);
    ck_assert_int_eq(lh_coll_spool_write(f.sp, &b), LH_ETOOBIG);
    ck_assert_uint_eq(lh_coll_spool_queued(f.sp), 1);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_errors_total"), 1);
    ck_assert_int_eq(metric(&f, "loghaul_collector_output_batches_total"), 1);
    fake_free(&f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("spool");
    TCase *t = tcase_create("core");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, answers_consume_drop_or_retry_in_order);
    tcase_add_test(t, unanswered_batches_are_replayed_in_order_after_reopen);
    tcase_add_test(t, a_retried_batch_goes_again_in_its_place_after_the_backoff);
    tcase_add_test(t, backoff_doubles_to_its_bound_with_jitter);
    tcase_add_test(t, a_failing_delivery_waits_its_backoff);
    tcase_add_test(t, a_refused_handover_is_retried_and_not_ready_waits_for_a_kick);
    tcase_add_test(t, a_write_spools_only_matching_rendered_batches_under_their_id);
    tcase_add_test(t, nothing_is_read_or_handed_over_until_the_output_is_ready);
    tcase_add_test(t, requeue_hands_the_window_back_in_order);
    tcase_add_test(t, a_damaged_batch_is_dropped_and_counted);
    tcase_add_test(t, a_full_spool_refuses_and_counts);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return lh_test_run(suite());
}
