/* The collector's append-only store: durability across reopen, torn and
 * corrupt tails, damage in the middle and undecodable events (skipped,
 * counted, never truncated), which chunk ids the store's tail holds,
 * segment rolling and retention. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "collector/store/store.h"
#include "tests/unit/lh_store_test.h"
#include "common/base/err.h"
#include "common/codec/forward.h"
#include "common/base/metrics.h"
#include "common/codec/record.h"
#include "common/base/util.h"
#include "tests/unit/lh_check.h"

#define SEC LH_NS_PER_SEC

static char tmpdir[PATH_MAX];
static char storedir[PATH_MAX + 16];

static void setup(void)
{
    lh_test_mkdtemp(tmpdir, sizeof tmpdir, "test_store");
    snprintf(storedir, sizeof storedir, "%s/store", tmpdir);
}

static void teardown(void)
{
    lh_test_rmrf(tmpdir);
}

static struct lh_store *open_store(int64_t segment_size, int64_t max_size, int64_t max_age_ns)
{
    struct lh_store_opts o = {.dir = storedir,
                              .max_age_ns = max_age_ns, .max_size = max_size,
                              .segment_size = segment_size};
    struct lh_store *s = NULL;
    char err[512] = "";
    int rc = lh_store_open(&o, &s, err, sizeof err);
    ck_assert_msg(rc == 0, "open: %s (%s)", lh_strerror(rc), err);
    return s;
}

static struct lh_store *open_default(void)
{
    return open_store(0, 0, 0);
}

/* The chunk ids the store's tail lists from its beginning. */
struct tail_ids {
    char ids[8][32];
    int64_t recv[8];
    int n;
};

static int tail_id(void *ud, const char *chunk, size_t len, int64_t recv_ns)
{
    struct tail_ids *t = ud;
    ck_assert_int_lt(t->n, 8);
    snprintf(t->ids[t->n], sizeof t->ids[0], "%.*s", chunk ? (int)len : 0, chunk ? chunk : "");
    t->recv[t->n++] = recv_ns;
    return 0;
}

static bool stored(struct lh_store *s, const char *chunk)
{
    struct tail_ids t = {0};
    struct lh_store_pos start = {0, 0}, end;
    ck_assert_int_eq(lh_store_tail(s, &start, tail_id, &t, &end), 0);
    for (int i = 0; i < t.n; i++)
        if (strcmp(t.ids[i], chunk) == 0)
            return true;
    return false;
}

/* Batch b holds n events tagged "t.b<b>" with messages "b<b> e<i>" at
 * times base+i seconds. */
static void append_batch(struct lh_store *s, int b, int n, int64_t base, const char *chunk,
                         int64_t recv_ns)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char tag[32], msg[64];
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    snprintf(tag, sizeof tag, "t.b%d", b);
    for (int i = 0; i < n; i++) {
        snprintf(msg, sizeof msg, "b%d e%d", b, i);
        msgpack_pack_array(&pk, 3);
        lh_pack_cstr(&pk, tag);
        lh_pack_time(&pk, base + i * SEC);
        msgpack_pack_map(&pk, 2);
        lh_pack_cstr(&pk, "message");
        lh_pack_cstr(&pk, msg);
        lh_pack_cstr(&pk, "host");
        lh_pack_cstr(&pk, "h1");
    }
    int rc = lh_test_store_append(s, chunk, chunk ? strlen(chunk) : 0, recv_ns, sb.data,
                                  sb.size, (size_t)n);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_msg(rc == 0, "append: %s", lh_strerror(rc));
}

struct seen {
    char msgs[256][64];
    int64_t times[256];
    size_t n;
    size_t stop_after;   /* 0: never */
};

static int collect(void *ud, const struct lh_store_event *ev)
{
    struct seen *s = ud;
    const msgpack_object *m = lh_map_get(ev->fields, "message");
    const char *p;
    size_t len;
    ck_assert(m && lh_obj_bytes(m, &p, &len));
    ck_assert_uint_lt(s->n, 256);
    snprintf(s->msgs[s->n], sizeof s->msgs[0], "%.*s", (int)len, p);
    s->times[s->n] = ev->time_ns;
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

static void scan_all(struct lh_store *s, struct seen *out)
{
    memset(out, 0, sizeof *out);
    ck_assert_int_eq(lh_test_store_scan(s, collect, out), 0);
}

static char *last_segment(char *buf, size_t len)
{
    DIR *d = opendir(storedir);
    struct dirent *de;
    char best[256] = "";
    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "seg-", 4) == 0 && strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", de->d_name);
    closedir(d);
    ck_assert_str_ne(best, "");
    snprintf(buf, len, "%s/%s", storedir, best);
    return buf;
}

static int count_segments(void)
{
    DIR *d = opendir(storedir);
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d)) != NULL)
        n += strncmp(de->d_name, "seg-", 4) == 0;
    if (d)
        closedir(d);
    return n;
}

START_TEST(append_reopen_scan_in_order)
{
    int64_t now = lh_now_ns();
    struct lh_store *s = open_default();
    append_batch(s, 0, 3, 1000 * SEC, "c0", now);
    append_batch(s, 1, 2, 500 * SEC, NULL, now);
    lh_store_close(s);

    s = open_default();
    struct lh_store_stats st;
    lh_store_stats(s, &st);
    ck_assert_uint_eq(st.batches, 2);
    ck_assert_uint_eq(st.torn, 0);
    struct seen seen;
    scan_all(s, &seen);
    ck_assert_uint_eq(seen.n, 5);
    const char *want[] = {"b0 e0", "b0 e1", "b0 e2", "b1 e0", "b1 e1"};
    for (size_t i = 0; i < 5; i++)
        ck_assert_str_eq(seen.msgs[i], want[i]);
    ck_assert_int_eq(seen.times[1], 1001 * SEC);
    ck_assert_int_eq(seen.times[4], 501 * SEC);
    lh_store_close(s);
}
END_TEST

START_TEST(scan_stops_when_asked)
{
    struct lh_store *s = open_default();
    append_batch(s, 0, 5, SEC, NULL, lh_now_ns());
    struct seen seen = {.stop_after = 2};
    ck_assert_int_eq(lh_test_store_scan(s, collect, &seen), 7);
    ck_assert_uint_eq(seen.n, 2);
    lh_store_close(s);
}
END_TEST

static void torn_case(bool flip_byte)
{
    int64_t now = lh_now_ns();
    struct lh_store *s = open_default();
    append_batch(s, 0, 2, SEC, "a", now);
    append_batch(s, 1, 2, SEC, "b", now);
    append_batch(s, 2, 2, SEC, "c", now);
    lh_store_close(s);

    char path[PATH_MAX * 2];
    struct stat sb;
    last_segment(path, sizeof path);
    ck_assert_int_eq(stat(path, &sb), 0);
    if (flip_byte) {
        int fd = open(path, O_RDWR);
        unsigned char c;
        ck_assert_int_eq(pread(fd, &c, 1, sb.st_size - 3), 1);
        c ^= 0x5a;
        ck_assert_int_eq(pwrite(fd, &c, 1, sb.st_size - 3), 1);
        close(fd);
    } else {
        ck_assert_int_eq(truncate(path, sb.st_size - 3), 0);
    }

    s = open_default();
    struct lh_store_stats st;
    lh_store_stats(s, &st);
    ck_assert_uint_eq(st.torn, 1);
    ck_assert_uint_eq(st.batches, 2);
    struct seen seen;
    scan_all(s, &seen);
    ck_assert_uint_eq(seen.n, 4);
    ck_assert_str_eq(seen.msgs[3], "b1 e1");
    ck_assert(stored(s, "b"));
    ck_assert(!stored(s, "c"));
    /* The store takes appends after the cut and keeps them. */
    append_batch(s, 3, 1, SEC, "d", now);
    lh_store_close(s);

    s = open_default();
    lh_store_stats(s, &st);
    ck_assert_uint_eq(st.torn, 0);
    scan_all(s, &seen);
    ck_assert_uint_eq(seen.n, 5);
    ck_assert_str_eq(seen.msgs[4], "b3 e0");
    lh_store_close(s);
}

START_TEST(torn_tail_is_truncated)
{
    torn_case(false);
}
END_TEST

START_TEST(corrupt_tail_is_truncated)
{
    torn_case(true);
}
END_TEST

static int64_t file_size(const char *path)
{
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    return sb.st_size;
}

/* One event [tag, time, {"message": msg, "deep": [[...[nil]...]]}] nesting
 * depth containers counted from its own array (depth >= 3). */
static void pack_deep_event(msgpack_packer *pk, int depth, const char *msg)
{
    msgpack_pack_array(pk, 3);
    lh_pack_cstr(pk, "t.deep");
    lh_pack_time(pk, 7 * SEC);
    msgpack_pack_map(pk, 2);
    lh_pack_cstr(pk, "message");
    lh_pack_cstr(pk, msg);
    lh_pack_cstr(pk, "deep");
    for (int i = 2; i < depth; i++)
        msgpack_pack_array(pk, 1);
    msgpack_pack_nil(pk);
}

static void pack_plain_event(msgpack_packer *pk, const char *msg)
{
    msgpack_pack_array(pk, 3);
    lh_pack_cstr(pk, "t.plain");
    lh_pack_time(pk, 8 * SEC);
    msgpack_pack_map(pk, 1);
    lh_pack_cstr(pk, "message");
    lh_pack_cstr(pk, msg);
}

/* A batch of [deep event, "after deep"] */
static void append_deep_batch(struct lh_store *s, int depth)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_deep_event(&pk, depth, "deep");
    pack_plain_event(&pk, "after deep");
    ck_assert_int_eq(lh_test_store_append(s, "deep", 4, lh_now_ns(), sb.data, sb.size, 2), 0);
    msgpack_sbuffer_destroy(&sb);
}

static struct lh_store *open_with_metrics(struct lh_metrics *m)
{
    struct lh_store_opts o = {.dir = storedir, .metrics = m};
    struct lh_store *s = NULL;
    char err[512] = "";
    int rc = lh_store_open(&o, &s, err, sizeof err);
    ck_assert_msg(rc == 0, "open: %s (%s)", lh_strerror(rc), err);
    return s;
}

static int64_t metric(struct lh_metrics *m, const char *name, const char *labels)
{
    return lh_metric_value(lh_metrics_get(m, LH_METRIC_COUNTER, name, labels, "x"));
}

/* Depths the reader decodes (up to LH_MP_MAX_DEPTH from the event array)
 * come back, the event after them too; a batch a whole-batch unpack could
 * not read never hides the batches after it, and reopening keeps every
 * byte. */
static void deep_case(int depth, int unreadable)
{
    bool readable = unreadable == 0;
    size_t want = 5 - (size_t)unreadable;
    struct lh_metrics *m = lh_metrics_new();
    struct lh_store *s = open_with_metrics(m);
    append_batch(s, 0, 1, SEC, "a", lh_now_ns());
    append_deep_batch(s, depth);
    append_batch(s, 1, 2, SEC, "b", lh_now_ns());
    struct seen seen;
    for (int round = 0; round < 2; round++) {
        scan_all(s, &seen);
        ck_assert_uint_eq(seen.n, want);
        ck_assert_str_eq(seen.msgs[0], "b0 e0");
        if (readable)
            ck_assert_str_eq(seen.msgs[1], "deep");
        if (unreadable < 2)
            ck_assert_str_eq(seen.msgs[readable ? 2 : 1], "after deep");
        ck_assert_str_eq(seen.msgs[seen.n - 1], "b1 e1");
    }
    /* Found by the first scan, counted once. */
    struct lh_store_stats st;
    lh_store_stats(s, &st);
    ck_assert_uint_eq(st.unreadable_events, (uint64_t)unreadable);
    ck_assert_int_eq(metric(m, "loghaul_collector_store_unreadable_events_total", NULL),
                     unreadable);
    lh_store_close(s);
    lh_metrics_free(m);

    char path[PATH_MAX * 2];
    int64_t size = file_size(last_segment(path, sizeof path));
    m = lh_metrics_new();
    s = open_with_metrics(m);
    lh_store_stats(s, &st);
    ck_assert_uint_eq(st.torn, 0);
    ck_assert_uint_eq(st.batches, 3);
    ck_assert_uint_eq(st.unreadable_events, (uint64_t)unreadable);
    ck_assert_int_eq(file_size(path), size);
    ck_assert(stored(s, "b"));
    ck_assert_int_eq(metric(m, "loghaul_collector_store_unreadable_events_total", NULL),
                     unreadable);
    ck_assert_int_eq(metric(m, "loghaul_collector_store_damaged_records_total",
                            "reason=\"torn\""), 0);
    scan_all(s, &seen);
    ck_assert_uint_eq(seen.n, want);
    ck_assert_str_eq(seen.msgs[seen.n - 1], "b1 e1");
    lh_store_close(s);
    lh_metrics_free(m);
    ck_assert_int_eq(file_size(path), size);
}

START_TEST(event_30_deep_is_read_with_the_rest)
{
    deep_case(30, 0);
}
END_TEST

START_TEST(event_31_deep_is_read_with_the_rest)
{
    deep_case(31, 0);
}
END_TEST

START_TEST(event_at_the_depth_limit_is_read_with_the_rest)
{
    deep_case(LH_MP_MAX_DEPTH, 0);
}
END_TEST

START_TEST(event_past_the_depth_limit_is_counted_and_skipped)
{
    deep_case(LH_MP_MAX_DEPTH + 1, 1);
}
END_TEST

START_TEST(event_too_deep_to_skip_ends_only_its_batch)
{
    /* Its end cannot be found, so the rest of its batch goes with it; the
     * next batch does not. */
    deep_case(LH_MP_WALK_MAX + 1, 2);
}
END_TEST

/* Three batches in one segment; returns the offsets of the second and
 * third records. */
static void three_batches(int64_t *second, int64_t *third)
{
    char path[PATH_MAX * 2];
    struct lh_store *s = open_default();
    append_batch(s, 0, 2, SEC, "a", lh_now_ns());
    lh_store_close(s);
    *second = file_size(last_segment(path, sizeof path));
    s = open_default();
    append_batch(s, 1, 2, SEC, "b", lh_now_ns());
    lh_store_close(s);
    *third = file_size(path);
    s = open_default();
    append_batch(s, 2, 2, SEC, "c", lh_now_ns());
    lh_store_close(s);
}

static void poke(int64_t off, const void *bytes, size_t n)
{
    char path[PATH_MAX * 2];
    int fd = open(last_segment(path, sizeof path), O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, bytes, n, off), (ssize_t)n);
    close(fd);
}

/* The middle record damaged by bytes at off: skipped, the third read, the
 * file not cut. */
static void middle_case(int64_t off, const void *bytes, size_t n)
{
    char path[PATH_MAX * 2];
    poke(off, bytes, n);
    int64_t size = file_size(last_segment(path, sizeof path));
    struct lh_store *s = open_default();
    struct lh_store_stats st;
    lh_store_stats(s, &st);
    ck_assert_uint_eq(st.torn, 0);
    ck_assert_uint_eq(st.corrupt, 1);
    ck_assert_uint_eq(st.batches, 2);
    ck_assert_int_eq(file_size(path), size);
    ck_assert(stored(s, "c"));
    ck_assert(!stored(s, "b"));
    struct seen seen;
    scan_all(s, &seen);
    ck_assert_uint_eq(seen.n, 4);
    ck_assert_str_eq(seen.msgs[1], "b0 e1");
    ck_assert_str_eq(seen.msgs[2], "b2 e0");
    lh_store_close(s);
}

START_TEST(checksum_failing_middle_record_is_skipped)
{
    int64_t second, third;
    three_batches(&second, &third);
    middle_case(third - 2, "\xff", 1);
}
END_TEST

START_TEST(garbage_length_in_the_middle_is_skipped)
{
    int64_t second, third;
    three_batches(&second, &third);
    middle_case(second, "\xff\xff\xff\xff", 4);
}
END_TEST

START_TEST(length_past_the_next_record_is_skipped)
{
    /* In range and inside the file, but wrong: the search finds the third. */
    int64_t second, third;
    three_batches(&second, &third);
    uint32_t len = (uint32_t)(third - second - 8 + 3);
    uint8_t be[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                     (uint8_t)len};
    middle_case(second, be, 4);
}
END_TEST

START_TEST(length_pointing_past_a_valid_record_hides_nothing)
{
    /* The second record's length reaches exactly to a fourth record, over
     * the third: trusted, it would hide the third. */
    int64_t second, third;
    three_batches(&second, &third);
    char path[PATH_MAX * 2];
    int64_t fourth = file_size(last_segment(path, sizeof path));
    struct lh_store *s = open_default();
    append_batch(s, 3, 1, SEC, "d", lh_now_ns());
    lh_store_close(s);
    uint32_t len = (uint32_t)(fourth - second - 8);
    uint8_t be[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                     (uint8_t)len};
    poke(second, be, 4);
    s = open_default();
    struct seen seen;
    scan_all(s, &seen);
    ck_assert_uint_eq(seen.n, 5);
    ck_assert_str_eq(seen.msgs[2], "b2 e0");
    ck_assert_str_eq(seen.msgs[4], "b3 e0");
    lh_store_close(s);
}
END_TEST

START_TEST(garbage_length_at_the_tail_is_truncated)
{
    int64_t second, third;
    three_batches(&second, &third);
    char path[PATH_MAX * 2];
    poke(third, "\x7f\xff\xff\xff", 4);
    struct lh_store *s = open_default();
    struct lh_store_stats st;
    lh_store_stats(s, &st);
    ck_assert_uint_eq(st.torn, 1);
    ck_assert_uint_eq(st.batches, 2);
    ck_assert_int_eq(file_size(last_segment(path, sizeof path)), third);
    lh_store_close(s);
}
END_TEST

START_TEST(half_a_record_is_truncated)
{
    int64_t second, third;
    three_batches(&second, &third);
    char path[PATH_MAX * 2];
    int64_t size = file_size(last_segment(path, sizeof path));
    ck_assert_int_eq(truncate(path, third + (size - third) / 2), 0);
    struct lh_store *s = open_default();
    struct lh_store_stats st;
    lh_store_stats(s, &st);
    ck_assert_uint_eq(st.torn, 1);
    ck_assert_uint_eq(st.batches, 2);
    ck_assert_int_eq(file_size(path), third);
    lh_store_close(s);
}
END_TEST

START_TEST(valid_record_that_is_no_batch_is_kept)
{
    /* A checksum-valid payload the reader cannot take as a batch: [1, 2]. */
    int64_t second, third;
    three_batches(&second, &third);
    char path[PATH_MAX * 2];
    int64_t size = file_size(last_segment(path, sizeof path));
    const uint8_t payload[] = {0x92, 0x01, 0x02};
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), payload, sizeof payload);
    uint8_t rec[8 + sizeof payload] = {0, 0, 0, sizeof payload, (uint8_t)(crc >> 24),
                                       (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
    memcpy(rec + 8, payload, sizeof payload);
    poke(size, rec, sizeof rec);
    struct lh_store *s = open_default();
    append_batch(s, 3, 1, SEC, "d", lh_now_ns());
    lh_store_close(s);

    s = open_default();
    struct lh_store_stats st;
    lh_store_stats(s, &st);
    ck_assert_uint_eq(st.torn, 0);
    ck_assert_uint_eq(st.undecodable, 1);
    ck_assert_uint_eq(st.batches, 4);
    struct seen seen;
    scan_all(s, &seen);
    ck_assert_uint_eq(seen.n, 7);
    ck_assert_str_eq(seen.msgs[6], "b3 e0");
    lh_store_close(s);
}
END_TEST

START_TEST(damage_in_an_older_segment_hides_nothing_after_it)
{
    struct lh_store *s = open_store(1024, 0, 0);
    for (int b = 0; b < 10; b++)
        append_batch(s, b, 8, SEC, NULL, lh_now_ns());
    lh_store_close(s);
    char first[PATH_MAX * 2];
    snprintf(first, sizeof first, "%s/seg-%016x.lhs", storedir, 1);
    int64_t size = file_size(first);
    int fd = open(first, O_RDWR);
    ck_assert_int_eq(pwrite(fd, "\xff\xff\xff\xff", 4, 0), 4);
    close(fd);
    s = open_store(1024, 0, 0);
    struct seen seen;
    scan_all(s, &seen);
    /* Only the first batch is lost; the first segment's others are read. */
    ck_assert_uint_eq(seen.n, 72);
    ck_assert_str_eq(seen.msgs[0], "b1 e0");
    struct lh_store_stats st;
    lh_store_stats(s, &st);
    ck_assert_uint_eq(st.corrupt, 1);
    ck_assert_uint_eq(st.torn, 0);
    lh_store_close(s);
    ck_assert_int_eq(file_size(first), size);
}
END_TEST

/* The tail hands out the chunk ids of what the store holds, across a
 * reopen, and from a position on only what was appended from there. */
START_TEST(tail_lists_stored_chunks)
{
    int64_t now = lh_now_ns();
    struct lh_store *s = open_store(0, 0, 0);
    ck_assert(!stored(s, "fresh"));
    struct lh_store_pos mid;
    append_batch(s, 0, 1, SEC, "fresh", now);
    ck_assert_int_eq(lh_store_tail(s, NULL, NULL, NULL, &mid), 0);
    append_batch(s, 1, 1, SEC, "older", now - 120 * SEC);
    append_batch(s, 2, 1, SEC, NULL, now);
    ck_assert(stored(s, "fresh") && stored(s, "older"));
    ck_assert(!stored(s, "fres"));
    lh_store_close(s);

    s = open_store(0, 0, 0);
    ck_assert(stored(s, "fresh") && stored(s, "older"));
    struct tail_ids t = {0};
    struct lh_store_pos end;
    ck_assert_int_eq(lh_store_tail(s, &mid, tail_id, &t, &end), 0);
    ck_assert_int_eq(t.n, 2);
    ck_assert_str_eq(t.ids[0], "older");
    ck_assert_str_eq(t.ids[1], "");
    ck_assert(t.recv[0] == now - 120 * SEC);
    /* nothing past the end; a position beyond it is refused */
    t.n = 0;
    ck_assert_int_eq(lh_store_tail(s, &end, tail_id, &t, &end), 0);
    ck_assert_int_eq(t.n, 0);
    struct lh_store_pos past = {end.segment, end.offset + 1};
    ck_assert_int_eq(lh_store_tail(s, &past, tail_id, &t, &end), LH_ENOENT);
    lh_store_close(s);
}
END_TEST

START_TEST(segments_roll)
{
    int64_t now = lh_now_ns();
    struct lh_store *s = open_store(1024, 0, 0);
    for (int b = 0; b < 10; b++)
        append_batch(s, b, 8, SEC, NULL, now);
    struct lh_store_stats st;
    lh_store_stats(s, &st);
    ck_assert_uint_ge(st.segments, 3);
    ck_assert_int_eq(count_segments(), (int)st.segments);
    lh_store_close(s);

    s = open_store(1024, 0, 0);
    struct seen seen;
    scan_all(s, &seen);
    ck_assert_uint_eq(seen.n, 80);
    ck_assert_str_eq(seen.msgs[0], "b0 e0");
    ck_assert_str_eq(seen.msgs[79], "b9 e7");
    lh_store_close(s);
}
END_TEST

START_TEST(retention_drops_oldest_by_size)
{
    int64_t now = lh_now_ns();
    struct lh_store *s = open_store(1024, 3000, 0);
    for (int b = 0; b < 10; b++)
        append_batch(s, b, 8, SEC, NULL, now);
    struct lh_store_stats before, after;
    lh_store_stats(s, &before);
    ck_assert_uint_gt(before.bytes, 3000);
    int dropped = lh_store_retain(s, now);
    ck_assert_int_gt(dropped, 0);
    lh_store_stats(s, &after);
    ck_assert_uint_le(after.bytes, 3000);
    ck_assert_uint_eq(after.segments, before.segments - (uint64_t)dropped);
    ck_assert_int_eq(count_segments(), (int)after.segments);
    struct seen seen;
    scan_all(s, &seen);
    ck_assert_uint_lt(seen.n, 80);
    ck_assert_str_ne(seen.msgs[0], "b0 e0");
    ck_assert_str_eq(seen.msgs[seen.n - 1], "b9 e7");
    lh_store_close(s);
}
END_TEST

START_TEST(retention_drops_old_segments_by_age)
{
    int64_t now = lh_now_ns();
    struct lh_store *s = open_store(1024, 0, 3600 * SEC);
    for (int b = 0; b < 4; b++)
        append_batch(s, b, 8, SEC, NULL, now - 7200 * SEC);
    for (int b = 4; b < 8; b++)
        append_batch(s, b, 8, SEC, NULL, now);
    ck_assert_int_gt(lh_store_retain(s, now), 0);
    struct seen seen;
    scan_all(s, &seen);
    for (size_t i = 0; i < seen.n; i++)
        ck_assert_msg(seen.msgs[i][1] >= '3', "old batch survived: %s", seen.msgs[i]);
    ck_assert_str_eq(seen.msgs[seen.n - 1], "b7 e7");
    ck_assert_int_eq(lh_store_retain(s, now), 0);
    lh_store_close(s);
}
END_TEST

START_TEST(rejects_oversized_chunk_id)
{
    struct lh_store *s = open_default();
    char id[LH_STORE_MAX_CHUNK_ID + 2];
    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    ck_assert_int_eq(lh_test_store_append(s, id, strlen(id), lh_now_ns(), "", 0, 0),
                     LH_EINVAL);
    lh_store_close(s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, append_reopen_scan_in_order);
    tcase_add_test(tc, scan_stops_when_asked);
    tcase_add_test(tc, torn_tail_is_truncated);
    tcase_add_test(tc, corrupt_tail_is_truncated);
    tcase_add_test(tc, tail_lists_stored_chunks);
    tcase_add_test(tc, segments_roll);
    tcase_add_test(tc, retention_drops_oldest_by_size);
    tcase_add_test(tc, retention_drops_old_segments_by_age);
    tcase_add_test(tc, rejects_oversized_chunk_id);
    tcase_add_test(tc, event_30_deep_is_read_with_the_rest);
    tcase_add_test(tc, event_31_deep_is_read_with_the_rest);
    tcase_add_test(tc, event_at_the_depth_limit_is_read_with_the_rest);
    tcase_add_test(tc, event_past_the_depth_limit_is_counted_and_skipped);
    tcase_add_test(tc, event_too_deep_to_skip_ends_only_its_batch);
    tcase_add_test(tc, checksum_failing_middle_record_is_skipped);
    tcase_add_test(tc, garbage_length_in_the_middle_is_skipped);
    tcase_add_test(tc, length_past_the_next_record_is_skipped);
    tcase_add_test(tc, length_pointing_past_a_valid_record_hides_nothing);
    tcase_add_test(tc, garbage_length_at_the_tail_is_truncated);
    tcase_add_test(tc, half_a_record_is_truncated);
    tcase_add_test(tc, valid_record_that_is_no_batch_is_kept);
    tcase_add_test(tc, damage_in_an_older_segment_hides_nothing_after_it);
    suite_add_tcase(su, tc);
    return lh_test_run(su);
}
