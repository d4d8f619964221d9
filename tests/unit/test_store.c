/* The collector's append-only store: durability across reopen, torn and
 * corrupt tails, the dedup set, segment rolling and retention. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collector/store/store.h"
#include "common/err.h"
#include "common/record.h"
#include "common/util.h"
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

static struct lh_store *open_store(int64_t segment_size, int64_t max_size, int64_t max_age_ns,
                                   int64_t window_ns)
{
    struct lh_store_opts o = {.dir = storedir, .dedup_window_ns = window_ns,
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
    return open_store(0, 0, 0, 3600 * SEC);
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
    int rc = lh_store_append(s, chunk, chunk ? strlen(chunk) : 0, recv_ns, sb.data, sb.size,
                             (size_t)n);
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
    ck_assert_int_eq(lh_store_scan(s, collect, out), 0);
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
    ck_assert_int_eq(lh_store_scan(s, collect, &seen), 7);
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
    ck_assert(lh_store_has_chunk(s, "b", 1, now));
    ck_assert(!lh_store_has_chunk(s, "c", 1, now));
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

START_TEST(dedup_set_survives_reopen)
{
    int64_t now = lh_now_ns();
    struct lh_store *s = open_store(0, 0, 0, 60 * SEC);
    ck_assert(!lh_store_has_chunk(s, "fresh", 5, now));
    append_batch(s, 0, 1, SEC, "fresh", now);
    append_batch(s, 1, 1, SEC, "stale", now - 120 * SEC);
    ck_assert(lh_store_has_chunk(s, "fresh", 5, now));
    ck_assert(!lh_store_has_chunk(s, "fres", 4, now));
    lh_store_close(s);

    s = open_store(0, 0, 0, 60 * SEC);
    struct lh_store_stats st;
    lh_store_stats(s, &st);
    ck_assert_uint_eq(st.chunks, 1);
    ck_assert(lh_store_has_chunk(s, "fresh", 5, now));
    ck_assert(!lh_store_has_chunk(s, "stale", 5, now));
    /* Past the window the id is forgotten. */
    ck_assert(!lh_store_has_chunk(s, "fresh", 5, now + 61 * SEC));
    lh_store_close(s);
}
END_TEST

START_TEST(segments_roll)
{
    int64_t now = lh_now_ns();
    struct lh_store *s = open_store(1024, 0, 0, 3600 * SEC);
    for (int b = 0; b < 10; b++)
        append_batch(s, b, 8, SEC, NULL, now);
    struct lh_store_stats st;
    lh_store_stats(s, &st);
    ck_assert_uint_ge(st.segments, 3);
    ck_assert_int_eq(count_segments(), (int)st.segments);
    lh_store_close(s);

    s = open_store(1024, 0, 0, 3600 * SEC);
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
    struct lh_store *s = open_store(1024, 3000, 0, 3600 * SEC);
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
    struct lh_store *s = open_store(1024, 0, 3600 * SEC, 3600 * SEC);
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
    ck_assert_int_eq(lh_store_append(s, id, strlen(id), lh_now_ns(), "", 0, 0), LH_EINVAL);
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
    tcase_add_test(tc, dedup_set_survives_reopen);
    tcase_add_test(tc, segments_roll);
    tcase_add_test(tc, retention_drops_oldest_by_size);
    tcase_add_test(tc, retention_drops_old_segments_by_age);
    tcase_add_test(tc, rejects_oversized_chunk_id);
    suite_add_tcase(su, tc);
    return lh_test_run(su);
}
