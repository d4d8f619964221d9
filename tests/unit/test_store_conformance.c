/* The store contract (collector/store/store.h), written against the
 * interface only and run against every implementation listed in impls[]:
 * append and its completion, scans by time range, query, order and limit
 * (with and without the consumer's cut), the deadline, snapshots that hold
 * still while appends and retention go on, retention by age and by size,
 * reopening, a torn tail (made by the implementation's own hook), and the
 * tail of chunk ids from a position that ingest's dedup index reads. */
#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collector/store/store.h"
#include "common/base/err.h"
#include "common/base/util.h"
#include "common/codec/record.h"
#include "common/query/query.h"
#include "tests/unit/lh_check.h"

#define SEC LH_NS_PER_SEC
#define PER_BATCH 10
#define MAX_EVENTS 4096
#define UNIT 4096 /* segment_size: small, so retention has units to drop */

/* What the suite needs from an implementation beyond the interface. */
struct impl {
    const struct lh_store_ops *ops;
    /* Leaves what a crash in the middle of an append leaves in dir (the
     * store closed): part of one more batch's bytes. */
    void (*tear)(const char *dir);
};

static void tear_segments(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char last[256] = "", path[PATH_MAX + 300];
    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "seg-", 4) == 0 && strcmp(de->d_name, last) > 0)
            snprintf(last, sizeof last, "%s", de->d_name);
    closedir(d);
    ck_assert_str_ne(last, "");
    snprintf(path, sizeof path, "%s/%s", dir, last);
    /* A record header announcing 200 bytes, and 11 of them. */
    static const unsigned char part[] = {0, 0, 0, 200, 1, 2, 3, 4, 0x83, 0xa5, 'c', 'h',
                                         'u', 'n', 'k', 0xc0, 0xa4, 'r', 'e'};
    FILE *f = fopen(path, "ab");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(part, 1, sizeof part, f), sizeof part);
    fclose(f);
}

static const struct impl impls[] = {
    {&lh_store_segments, tear_segments},
};
#define N_IMPLS ((int)(sizeof impls / sizeof impls[0]))

static char tmpdir[PATH_MAX];
static char storedir[PATH_MAX + 16];

static void setup(void)
{
    lh_test_mkdtemp(tmpdir, sizeof tmpdir, "test_store_conformance");
    snprintf(storedir, sizeof storedir, "%s/store", tmpdir);
}

static void teardown(void)
{
    lh_test_rmrf(tmpdir);
}

static struct lh_store *open_impl(int i, int64_t max_age_ns, int64_t max_size)
{
    struct lh_store_opts o = {.impl = impls[i].ops, .dir = storedir,
                              .max_age_ns = max_age_ns,
                              .max_size = max_size, .segment_size = UNIT};
    struct lh_store *s = NULL;
    char err[512] = "";
    int rc = lh_store_open(&o, &s, err, sizeof err);
    ck_assert_msg(rc == 0, "%s: open: %s (%s)", impls[i].ops->name, lh_strerror(rc), err);
    ck_assert_ptr_eq(s->ops, impls[i].ops);
    return s;
}

/* ---- the events the suite stores ---------------------------------------- */

/* Event n (global, in append order): time spread out of order over 0..997
 * seconds, with ties; level error for every fourth; tag t.<n % 3>. */
static int64_t time_of(int n)
{
    return (int64_t)((n * 37) % 101) * SEC + 1000 * SEC;
}

static bool is_error(int n)
{
    return n % 4 == 0;
}

/* Completions seen: each append's done must be called exactly once. */
struct done {
    int calls;
    int status;
};

static void on_done(void *ud, int status)
{
    struct done *d = ud;
    d->calls++;
    d->status = status;
}

/* Appends events first..first+n-1 as one batch received at recv_ns, each
 * with a field of pad bytes when pad is not 0. */
static void append_padded(struct lh_store *s, int first, int n, int64_t recv_ns, size_t pad)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char tag[16], msg[32];
    char *padding = pad ? calloc(1, pad) : NULL;
    ck_assert(pad == 0 || padding != NULL);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int k = first; k < first + n; k++) {
        snprintf(tag, sizeof tag, "t.%d", k % 3);
        snprintf(msg, sizeof msg, "event %d", k);
        msgpack_pack_array(&pk, 3);
        lh_pack_cstr(&pk, tag);
        lh_pack_time(&pk, time_of(k));
        msgpack_pack_map(&pk, pad ? 4 : 3);
        lh_pack_cstr(&pk, "message");
        lh_pack_cstr(&pk, msg);
        lh_pack_cstr(&pk, "level");
        lh_pack_cstr(&pk, is_error(k) ? "error" : "info");
        lh_pack_cstr(&pk, "n");
        msgpack_pack_int(&pk, k);
        if (pad) {
            lh_pack_cstr(&pk, "pad");
            lh_pack_strn(&pk, padding, pad);
        }
    }
    free(padding);
    char chunk[32];
    snprintf(chunk, sizeof chunk, "chunk-%d", first);
    const struct lh_store_batch b = {chunk, strlen(chunk), recv_ns, sb.data, sb.size,
                                     (size_t)n};
    struct done d = {0};
    ck_assert_int_eq(lh_store_append(s, &b, on_done, &d), 0);
    /* Here the store's completion would be awaited; every implementation
     * listed so far completes before returning. */
    ck_assert_int_eq(d.calls, 1);
    ck_assert_int_eq(d.status, 0);
    msgpack_sbuffer_destroy(&sb);
}

static void append_events(struct lh_store *s, int first, int n, int64_t recv_ns)
{
    append_padded(s, first, n, recv_ns, 0);
}

static void append_batches(struct lh_store *s, int from_batch, int n_batches, int64_t recv_ns)
{
    for (int b = from_batch; b < from_batch + n_batches; b++)
        append_events(s, b * PER_BATCH, PER_BATCH, recv_ns);
}

/* ---- a consumer --------------------------------------------------------- */

struct got {
    int n[MAX_EVENTS];       /* event numbers, in delivery order */
    uint64_t seq[MAX_EVENTS];
    int64_t time[MAX_EVENTS];
    size_t count;
    const struct lh_store_scan_req *req;
    /* top-k kept like the search executor does, when keep > 0 */
    size_t keep;
    int best[MAX_EVENTS];    /* indexes into n[], best first */
    size_t nbest;
    struct lh_store_cut cut;
    int stop_at;             /* non-zero: stop with 9 after this many */
    bool stall;              /* the first event takes until past req's deadline */
};

static bool before(const struct got *g, size_t a, size_t b)
{
    return lh_store_ranks_before(g->req->asc, g->time[a], g->seq[a], g->time[b], g->seq[b]);
}

static void keep_best(struct got *g, size_t idx)
{
    size_t pos = g->nbest;
    while (pos > 0 && before(g, idx, (size_t)g->best[pos - 1]))
        pos--;
    if (pos >= g->keep)
        return;
    size_t end = g->nbest < g->keep ? g->nbest : g->keep - 1;
    memmove(&g->best[pos + 1], &g->best[pos], (end - pos) * sizeof g->best[0]);
    g->best[pos] = (int)idx;
    g->nbest = end + 1;
    size_t w = (size_t)g->best[g->nbest - 1];
    g->cut = (struct lh_store_cut){.full = g->nbest == g->keep, .time_ns = g->time[w],
                                   .seq = g->seq[w]};
}

static int collect(void *ud, const struct lh_store_event *ev)
{
    struct got *g = ud;
    const msgpack_object *n = lh_map_get(ev->fields, "n");
    ck_assert_ptr_nonnull(n);
    ck_assert_uint_lt(g->count, MAX_EVENTS);
    g->n[g->count] = (int)n->via.i64;
    g->seq[g->count] = ev->seq;
    g->time[g->count] = ev->time_ns;
    ck_assert_int_eq(ev->time_ns, time_of(g->n[g->count]));
    ck_assert_uint_eq(ev->tag_len, 3);
    ck_assert_int_eq(ev->tag[2] - '0', g->n[g->count] % 3);
    if (g->keep)
        keep_best(g, g->count);
    for (int i = 0; g->stall && g->count == 0 && lh_mono_ms() <= g->req->deadline_ms; i++) {
        ck_assert_int_lt(i, 10000);
        usleep(1000);
    }
    g->count++;
    return g->stop_at && (int)g->count >= g->stop_at ? 9 : 0;
}

static int scan_req(struct lh_store_snap *snap, const struct lh_store_scan_req *req,
                    struct got *g)
{
    g->req = req;
    return lh_store_scan(snap, req, collect, g);
}

/* A scan of a fresh snapshot; g zeroed but for keep. */
static int scan_now(struct lh_store *s, const struct lh_store_scan_req *req, struct got *g)
{
    struct lh_store_snap *snap;
    ck_assert_int_eq(lh_store_snapshot(s, &snap), 0);
    int rc = scan_req(snap, req, g);
    lh_store_release(snap);
    return rc;
}

static const struct lh_store_scan_req all_req = {.from_ns = INT64_MIN, .to_ns = INT64_MAX};

/* Each of events lo..hi-1 delivered exactly once, nothing else, with seq
 * rising in append order. */
static void assert_exactly(const struct got *g, int lo, int hi)
{
    static unsigned char seen[MAX_EVENTS];
    memset(seen, 0, sizeof seen);
    ck_assert_uint_eq(g->count, (size_t)(hi - lo));
    for (size_t i = 0; i < g->count; i++) {
        ck_assert_int_ge(g->n[i], lo);
        ck_assert_int_lt(g->n[i], hi);
        ck_assert_msg(!seen[g->n[i]]++, "event %d delivered twice", g->n[i]);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg((g->n[j] < g->n[i]) == (g->seq[j] < g->seq[i]),
                          "seq of events %d and %d against their storage order", g->n[j],
                          g->n[i]);
    }
}

/* A scan of everything now gives exactly events lo..hi-1. */
static void assert_holds(struct lh_store *s, int lo, int hi)
{
    struct got *g = calloc(1, sizeof *g);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(scan_now(s, &all_req, g), 0);
    assert_exactly(g, lo, hi);
    free(g);
}

/* ---- append ------------------------------------------------------------- */

START_TEST(append_completes_once_and_refuses_at_once)
{
    struct lh_store *s = open_impl(_i, 0, 0);
    append_events(s, 0, 3, lh_now_ns());
    char id[LH_STORE_MAX_CHUNK_ID + 2];
    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    const struct lh_store_batch b = {id, strlen(id), lh_now_ns(), "", 0, 0};
    struct done d = {0};
    ck_assert_int_eq(lh_store_append(s, &b, on_done, &d), LH_EINVAL);
    ck_assert_int_eq(d.calls, 0);
    assert_holds(s, 0, 3);
    lh_store_close(s);
}
END_TEST

/* ---- scans -------------------------------------------------------------- */

START_TEST(scan_delivers_every_event_once_in_range)
{
    struct lh_store *s = open_impl(_i, 0, 0);
    append_batches(s, 0, 20, lh_now_ns());
    assert_holds(s, 0, 200);

    /* Inclusive bounds, on times that several events share. */
    const int64_t from = time_of(3), to = time_of(5);
    struct lh_store_scan_req r = {.from_ns = from, .to_ns = to};
    struct got g = {0};
    ck_assert_int_eq(scan_now(s, &r, &g), 0);
    size_t want = 0;
    for (int k = 0; k < 200; k++)
        want += time_of(k) >= from && time_of(k) <= to;
    ck_assert_uint_gt(want, 10);
    ck_assert_uint_eq(g.count, want);
    for (size_t i = 0; i < g.count; i++)
        ck_assert(g.time[i] >= from && g.time[i] <= to);
    lh_store_close(s);
}
END_TEST

START_TEST(scan_filters_by_query)
{
    struct lh_store *s = open_impl(_i, 0, 0);
    append_batches(s, 0, 8, lh_now_ns());
    struct lh_query *q;
    ck_assert_int_eq(lh_query_parse("level:error -tag:t.1", &q, NULL), 0);
    struct lh_store_scan_req r = {.from_ns = INT64_MIN, .to_ns = INT64_MAX, .query = q};
    struct got g = {0};
    ck_assert_int_eq(scan_now(s, &r, &g), 0);
    size_t want = 0;
    for (int k = 0; k < 80; k++)
        want += is_error(k) && k % 3 != 1;
    ck_assert_uint_eq(g.count, want);
    for (size_t i = 0; i < g.count; i++)
        ck_assert(is_error(g.n[i]) && g.n[i] % 3 != 1);
    lh_query_free(q);
    lh_store_close(s);
}
END_TEST

/* The `limit` first events of 0..n-1 in (from, to) by req's order, by
 * brute force: ranks by time, ties by append order. */
static size_t expected_top(const struct lh_store_scan_req *r, int n, int *out)
{
    size_t m = 0;
    for (int k = 0; k < n; k++) {
        if (time_of(k) < r->from_ns || time_of(k) > r->to_ns)
            continue;
        size_t pos = m;
        while (pos > 0 && lh_store_ranks_before(r->asc, time_of(k), (uint64_t)k,
                                                time_of(out[pos - 1]), (uint64_t)out[pos - 1]))
            pos--;
        memmove(&out[pos + 1], &out[pos], (m - pos) * sizeof *out);
        out[pos] = k;
        m++;
    }
    return m < r->limit ? m : r->limit;
}

static void check_top(struct lh_store *s, bool asc, size_t limit, bool with_cut)
{
    struct got *g = calloc(1, sizeof *g);
    int want[MAX_EVENTS];
    g->keep = limit;
    struct lh_store_scan_req r = {.from_ns = time_of(1), .to_ns = time_of(90), .asc = asc,
                                  .limit = limit, .cut = with_cut ? &g->cut : NULL};
    ck_assert_int_eq(scan_now(s, &r, g), 0);
    size_t m = expected_top(&r, 300, want);
    ck_assert_uint_eq(g->nbest, m);
    for (size_t i = 0; i < m; i++)
        ck_assert_msg(g->n[g->best[i]] == want[i], "%s limit %zu%s: #%zu is event %d, not %d",
                      asc ? "asc" : "desc", limit, with_cut ? " (cut)" : "", i,
                      g->n[g->best[i]], want[i]);
    free(g);
}

START_TEST(scan_with_order_and_limit_gives_the_first)
{
    struct lh_store *s = open_impl(_i, 0, 0);
    append_batches(s, 0, 30, lh_now_ns());
    static const size_t limits[] = {1, 2, 7, 100, 300};
    for (int asc = 0; asc < 2; asc++)
        for (size_t l = 0; l < sizeof limits / sizeof *limits; l++)
            for (int cut = 0; cut < 2; cut++)
                check_top(s, asc, limits[l], cut);
    lh_store_close(s);
}
END_TEST

START_TEST(scan_stops_when_the_callback_says)
{
    struct lh_store *s = open_impl(_i, 0, 0);
    append_batches(s, 0, 3, lh_now_ns());
    struct got g = {.stop_at = 5};
    ck_assert_int_eq(scan_now(s, &all_req, &g), 9);
    ck_assert_uint_eq(g.count, 5);
    lh_store_close(s);
}
END_TEST

START_TEST(scan_past_its_deadline_times_out)
{
    struct lh_store *s = open_impl(_i, 0, 0);
    append_batches(s, 0, 256 / PER_BATCH, lh_now_ns());
    struct lh_store_scan_req r = all_req;
    r.deadline_ms = lh_mono_ms() - 1;
    ck_assert_int_gt(r.deadline_ms, 0);
    struct got g = {0};
    ck_assert_int_eq(scan_now(s, &r, &g), LH_ETIMEDOUT);
    /* The clock is read before the first event is tested. */
    ck_assert_uint_eq(g.count, 0);
    lh_store_close(s);
}
END_TEST

/* The deadline is read by cost, not by count: past it, a scan of large
 * events stops within LH_STORE_CLOCK_COST of their bytes, not after some
 * number of them (once every 64 events, 20 events of 256 KiB were all
 * read and delivered). */
START_TEST(scan_reads_the_clock_by_cost)
{
    enum { PAD = 256 * 1024, N = 20 };
    struct lh_store *s = open_impl(_i, 0, 0);
    for (int b = 0; b < N / 5; b++)
        append_padded(s, b * 5, 5, lh_now_ns(), PAD);
    struct lh_store_scan_req r = all_req;
    r.deadline_ms = lh_mono_ms() + 500; /* well after the first event is read */
    struct got g = {.stall = true};
    ck_assert_int_eq(scan_now(s, &r, &g), LH_ETIMEDOUT);
    ck_assert_uint_ge(g.count, 1);
    ck_assert_uint_le(g.count, 2 + LH_STORE_CLOCK_COST / PAD);
    lh_store_close(s);
}
END_TEST

/* ---- snapshots ---------------------------------------------------------- */

START_TEST(snapshot_holds_still_while_appends_go_on)
{
    struct lh_store *s = open_impl(_i, 0, 0);
    append_batches(s, 0, 10, lh_now_ns());
    struct lh_store_snap *snap;
    ck_assert_int_eq(lh_store_snapshot(s, &snap), 0);
    struct got *g = calloc(1, sizeof *g);
    for (int round = 0; round < 3; round++) {
        /* enough to fill new units between scans */
        append_batches(s, 10 + round * 10, 10, lh_now_ns());
        memset(g, 0, sizeof *g);
        ck_assert_int_eq(scan_req(snap, &all_req, g), 0);
        assert_exactly(g, 0, 100);
    }
    assert_holds(s, 0, 400);
    lh_store_release(snap);
    free(g);
    lh_store_close(s);
}
END_TEST

START_TEST(retention_leaves_what_a_snapshot_holds)
{
    int64_t now = lh_now_ns();
    struct lh_store *s = open_impl(_i, 3600 * SEC, 0);
    append_batches(s, 0, 30, now - 7200 * SEC);
    struct lh_store_snap *snap;
    ck_assert_int_eq(lh_store_snapshot(s, &snap), 0);
    append_batches(s, 30, 2, now);
    ck_assert_int_eq(lh_store_retain(s, now), 0);
    struct got *g = calloc(1, sizeof *g);
    ck_assert_int_eq(scan_req(snap, &all_req, g), 0);
    assert_exactly(g, 0, 300);
    lh_store_release(snap);
    ck_assert_int_gt(lh_store_retain(s, now), 0);
    free(g);
    lh_store_close(s);
}
END_TEST

/* ---- retention ---------------------------------------------------------- */

/* What survived is a run of whole batches ending with the newest: every
 * event from some batch on, none before. Returns the first survivor. */
static int assert_suffix(struct lh_store *s, int total)
{
    struct got *g = calloc(1, sizeof *g);
    ck_assert_int_eq(scan_now(s, &all_req, g), 0);
    int first = total;
    for (size_t i = 0; i < g->count; i++)
        first = g->n[i] < first ? g->n[i] : first;
    ck_assert_int_eq(first % PER_BATCH, 0);
    assert_exactly(g, first, total);
    free(g);
    return first;
}

START_TEST(retention_by_age_drops_only_old_batches)
{
    int64_t now = lh_now_ns();
    struct lh_store *s = open_impl(_i, 3600 * SEC, 0);
    append_batches(s, 0, 30, now - 7200 * SEC);
    append_batches(s, 30, 30, now - 60 * SEC);
    ck_assert_int_gt(lh_store_retain(s, now), 0);
    int first = assert_suffix(s, 600);
    ck_assert_int_gt(first, 0);
    ck_assert_int_le(first, 300);
    /* Nothing young goes, however often retention runs. */
    ck_assert_int_ge(lh_store_retain(s, now), 0);
    ck_assert_int_le(assert_suffix(s, 600), 300);
    lh_store_close(s);
}
END_TEST

START_TEST(retention_by_size_keeps_the_newest_within_the_limit)
{
    int64_t now = lh_now_ns();
    struct lh_store *s = open_impl(_i, 0, 3 * UNIT);
    append_batches(s, 0, 60, now);
    struct lh_store_stats before_st, after_st;
    lh_store_stats(s, &before_st);
    ck_assert_uint_gt(before_st.bytes, 6 * UNIT);
    ck_assert_int_gt(lh_store_retain(s, now), 0);
    lh_store_stats(s, &after_st);
    ck_assert_uint_le(after_st.bytes, 4 * UNIT);
    ck_assert_int_gt(assert_suffix(s, 600), 0);
    lh_store_close(s);
}
END_TEST

/* ---- durability --------------------------------------------------------- */

START_TEST(reopen_keeps_everything)
{
    struct lh_store *s = open_impl(_i, 0, 0);
    append_batches(s, 0, 25, lh_now_ns());
    lh_store_close(s);
    s = open_impl(_i, 0, 0);
    assert_holds(s, 0, 250);
    append_batches(s, 25, 1, lh_now_ns());
    lh_store_close(s);
    s = open_impl(_i, 0, 0);
    assert_holds(s, 0, 260);
    lh_store_close(s);
}
END_TEST

START_TEST(torn_tail_loses_only_the_unfinished_append)
{
    struct lh_store *s = open_impl(_i, 0, 0);
    append_batches(s, 0, 5, lh_now_ns());
    lh_store_close(s);
    impls[_i].tear(storedir);
    s = open_impl(_i, 0, 0);
    assert_holds(s, 0, 50);
    append_batches(s, 5, 1, lh_now_ns());
    lh_store_close(s);
    s = open_impl(_i, 0, 0);
    assert_holds(s, 0, 60);
    lh_store_close(s);
}
END_TEST

/* ---- tail --------------------------------------------------------------- */

struct chunks {
    char ids[64][32];
    size_t n;
};

static int note_chunk(void *ud, const char *chunk, size_t len, int64_t recv_ns)
{
    struct chunks *c = ud;
    ck_assert_uint_lt(c->n, 64);
    ck_assert_ptr_nonnull(chunk);
    ck_assert_int_gt(recv_ns, 0);
    snprintf(c->ids[c->n++], sizeof c->ids[0], "%.*s", (int)len, chunk);
    return 0;
}

static bool pos_eq(const struct lh_store_pos *a, const struct lh_store_pos *b)
{
    return a->segment == b->segment && a->offset == b->offset;
}

/* chunk-<first event> of batches from..to-1, in order, and nothing else. */
static void assert_tail(struct lh_store *s, const struct lh_store_pos *from, int lo, int hi,
                        struct lh_store_pos *end)
{
    struct chunks c = {.n = 0};
    ck_assert_int_eq(lh_store_tail(s, from, note_chunk, &c, end), 0);
    ck_assert_uint_eq(c.n, (size_t)(hi - lo));
    for (int b = lo; b < hi; b++) {
        char want[32];
        snprintf(want, sizeof want, "chunk-%d", b * PER_BATCH);
        ck_assert_str_eq(c.ids[b - lo], want);
    }
}

START_TEST(tail_lists_the_batches_appended_from_a_position)
{
    struct lh_store *s = open_impl(_i, 0, 0);
    struct lh_store_pos start, mid, end, again;
    ck_assert_int_eq(lh_store_tail(s, NULL, note_chunk, NULL, &start), 0);
    append_batches(s, 0, 3, lh_now_ns());
    assert_tail(s, &start, 0, 3, &mid);
    append_batches(s, 3, 12, lh_now_ns()); /* into new units */
    assert_tail(s, &mid, 3, 15, &end);
    assert_tail(s, &end, 15, 15, &again);
    ck_assert(pos_eq(&end, &again));
    const struct lh_store_pos past = {end.segment + 1, 0};
    struct chunks c = {.n = 0};
    ck_assert_int_eq(lh_store_tail(s, &past, note_chunk, &c, &again), LH_ENOENT);
    ck_assert(pos_eq(&end, &again));
    lh_store_close(s);

    /* Reopened after a torn append: the same batches, the same end. */
    impls[_i].tear(storedir);
    s = open_impl(_i, 0, 0);
    assert_tail(s, &mid, 3, 15, &again);
    ck_assert(pos_eq(&end, &again));
    append_batches(s, 15, 1, lh_now_ns());
    assert_tail(s, &end, 15, 16, &again);
    lh_store_close(s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("store_conformance");
    TCase *tc = tcase_create("contract");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, append_completes_once_and_refuses_at_once, 0, N_IMPLS);
    tcase_add_loop_test(tc, scan_delivers_every_event_once_in_range, 0, N_IMPLS);
    tcase_add_loop_test(tc, scan_filters_by_query, 0, N_IMPLS);
    tcase_add_loop_test(tc, scan_with_order_and_limit_gives_the_first, 0, N_IMPLS);
    tcase_add_loop_test(tc, scan_stops_when_the_callback_says, 0, N_IMPLS);
    tcase_add_loop_test(tc, scan_past_its_deadline_times_out, 0, N_IMPLS);
    tcase_add_loop_test(tc, scan_reads_the_clock_by_cost, 0, N_IMPLS);
    tcase_add_loop_test(tc, snapshot_holds_still_while_appends_go_on, 0, N_IMPLS);
    tcase_add_loop_test(tc, retention_leaves_what_a_snapshot_holds, 0, N_IMPLS);
    tcase_add_loop_test(tc, retention_by_age_drops_only_old_batches, 0, N_IMPLS);
    tcase_add_loop_test(tc, retention_by_size_keeps_the_newest_within_the_limit, 0, N_IMPLS);
    tcase_add_loop_test(tc, reopen_keeps_everything, 0, N_IMPLS);
    tcase_add_loop_test(tc, torn_tail_loses_only_the_unfinished_append, 0, N_IMPLS);
    tcase_add_loop_test(tc, tail_lists_the_batches_appended_from_a_position, 0, N_IMPLS);
    suite_add_tcase(su, tc);
    return lh_test_run(su);
}
