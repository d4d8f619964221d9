/* Ingest's dedup index: it survives a restart, is never out of step with
 * the store after a crash (an entry missing for a stored batch is found in
 * the store's tail; an index ahead of the store is rebuilt), reads only the
 * store's tail at start, drops what is past the window, cuts a torn end,
 * refuses a newer version, and works with the store off. */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "collector/ingest/dedup.h"
#include "collector/store/store.h"
#include "common/base/err.h"
#include "common/base/util.h"
#include "common/codec/record.h"
#include "tests/unit/lh_check.h"
#include "tests/unit/lh_store_test.h"

#define SEC LH_NS_PER_SEC
#define HOUR (3600 * SEC)

static char tmpdir[PATH_MAX];
static char storedir[PATH_MAX + 16];
static char idx[PATH_MAX + 16];

static void setup(void)
{
    lh_test_mkdtemp(tmpdir, sizeof tmpdir, "test_dedup");
    snprintf(storedir, sizeof storedir, "%s/store", tmpdir);
    snprintf(idx, sizeof idx, "%s/dedup.idx", tmpdir);
}

static void teardown(void)
{
    lh_test_rmrf(tmpdir);
}

static struct lh_store *open_store(void)
{
    const struct lh_store_opts o = {.dir = storedir};
    struct lh_store *s = NULL;
    char err[512] = "";
    int rc = lh_store_open(&o, &s, err, sizeof err);
    ck_assert_msg(rc == 0, "store open: %s (%s)", lh_strerror(rc), err);
    return s;
}

static struct lh_dedup *open_dedup(struct lh_store *s, int64_t window_ns)
{
    const struct lh_dedup_opts o = {.path = idx, .window_ns = window_ns, .store = s};
    struct lh_dedup *d = NULL;
    char err[512] = "";
    int rc = lh_dedup_open(&o, &d, err, sizeof err);
    ck_assert_msg(rc == 0, "dedup open: %s (%s)", lh_strerror(rc), err);
    return d;
}

/* One event [tag, time, {message}] as the store takes it. */
static void one_event(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    lh_pack_cstr(&pk, "t");
    lh_pack_time(&pk, SEC);
    msgpack_pack_map(&pk, 1);
    lh_pack_cstr(&pk, "message");
    lh_pack_cstr(&pk, "m");
}

/* What commit does for a batch, up to `steps`: 1 the store's append, 2 the
 * index entry too (the real order: the store first). */
static void commit_batch(struct lh_store *s, struct lh_dedup *d, const char *chunk, int steps)
{
    struct lh_store_pos from;
    msgpack_sbuffer sb;
    one_event(&sb);
    ck_assert_int_eq(lh_store_tail(s, NULL, NULL, NULL, &from), 0);
    int64_t now = lh_now_ns();
    ck_assert_int_eq(lh_test_store_append(s, chunk, strlen(chunk), now, sb.data, sb.size, 1), 0);
    if (steps >= 2)
        ck_assert_int_eq(lh_dedup_add(d, chunk, strlen(chunk), now, &from), 0);
    msgpack_sbuffer_destroy(&sb);
}

/* A restart: both closed, then opened again. */
static void reopen(struct lh_store **s, struct lh_dedup **d, int64_t window_ns)
{
    lh_dedup_close(*d);
    lh_store_close(*s);
    *s = open_store();
    *d = open_dedup(*s, window_ns);
}

static bool has(struct lh_dedup *d, const char *chunk)
{
    return lh_dedup_has(d, chunk, strlen(chunk), lh_now_ns());
}

START_TEST(survives_restart)
{
    struct lh_store *s = open_store();
    struct lh_dedup *d = open_dedup(s, HOUR);
    commit_batch(s, d, "a", 2);
    commit_batch(s, d, "b", 2);
    ck_assert(has(d, "a") && has(d, "b") && !has(d, "c"));
    reopen(&s, &d, HOUR);
    ck_assert(has(d, "a") && has(d, "b") && !has(d, "c"));
    ck_assert_uint_eq(lh_dedup_count(d), 2);
    lh_dedup_close(d);
    lh_store_close(s);
}
END_TEST

/* The crash between the store's append and the index entry: after the
 * restart the stored chunk is known (its resend is acked, not stored
 * twice), and one that never reached the store is not (its resend is
 * stored, not lost). */
START_TEST(crash_after_store_before_index)
{
    struct lh_store *s = open_store();
    struct lh_dedup *d = open_dedup(s, HOUR);
    commit_batch(s, d, "a", 2);
    commit_batch(s, d, "b", 1);
    reopen(&s, &d, HOUR);
    ck_assert_msg(has(d, "b"), "stored before the crash, missing from the index");
    ck_assert(has(d, "a"));
    ck_assert_msg(!has(d, "never-stored"), "only what the store holds is known");
    lh_dedup_close(d);
    lh_store_close(s);
    /* The catch-up went into the index: a second restart finds it there. */
    d = open_dedup(NULL, HOUR);
    ck_assert(has(d, "b"));
    lh_dedup_close(d);
}
END_TEST

/* The store emptied behind the index's back: the index must not ack a
 * resend of what the store no longer has. */
START_TEST(index_ahead_of_store_is_rebuilt)
{
    struct lh_store *s = open_store();
    struct lh_dedup *d = open_dedup(s, HOUR);
    commit_batch(s, d, "a", 2);
    commit_batch(s, d, "b", 2);
    commit_batch(s, d, "b2", 2);
    lh_dedup_close(d);
    lh_store_close(s);
    lh_test_rmrf(storedir);
    /* A new store, shorter than where the index stood. */
    s = open_store();
    commit_batch(s, NULL, "c", 1);
    d = open_dedup(s, HOUR);
    ck_assert(!has(d, "a") && !has(d, "b") && !has(d, "b2"));
    ck_assert_msg(has(d, "c"), "rebuilt from the whole store");
    lh_dedup_close(d);
    lh_store_close(s);
}
END_TEST

/* A torn end (a crash in the middle of an entry's write): cut, and the
 * store's tail gives back what was lost. */
START_TEST(torn_index_is_cut_and_caught_up)
{
    struct lh_store *s = open_store();
    struct lh_dedup *d = open_dedup(s, HOUR);
    commit_batch(s, d, "a", 2);
    commit_batch(s, d, "bbbbbbbb", 2);
    lh_dedup_close(d);
    struct stat st;
    ck_assert_int_eq(stat(idx, &st), 0);
    ck_assert_int_eq(truncate(idx, st.st_size - 3), 0);
    d = open_dedup(s, HOUR);
    ck_assert(has(d, "a") && has(d, "bbbbbbbb"));
    lh_dedup_close(d);
    lh_store_close(s);
}
END_TEST

START_TEST(window_expires)
{
    struct lh_dedup *d = open_dedup(NULL, 60 * SEC);
    static const struct lh_store_pos none;
    int64_t now = lh_now_ns();
    ck_assert_int_eq(lh_dedup_add(d, "old", 3, now - 120 * SEC, &none), 0);
    ck_assert_int_eq(lh_dedup_add(d, "new", 3, now, &none), 0);
    ck_assert(!has(d, "old") && has(d, "new"));
    ck_assert(!lh_dedup_has(d, "new", 3, now + 61 * SEC));
    lh_dedup_close(d);
    d = open_dedup(NULL, 60 * SEC);
    ck_assert(!has(d, "old") && has(d, "new"));
    ck_assert_uint_eq(lh_dedup_count(d), 1);
    lh_dedup_close(d);
}
END_TEST

/* The window across a reopen, the store on: an id received before it is
 * not loaded again even though the store keeps its batch, and one within
 * it is forgotten once the window has passed. */
START_TEST(window_survives_reopen)
{
    struct lh_store *s = open_store();
    struct lh_dedup *d = open_dedup(s, 60 * SEC);
    int64_t now = lh_now_ns();
    ck_assert(!lh_dedup_has(d, "fresh", 5, now));
    msgpack_sbuffer sb;
    one_event(&sb);
    const char *ids[2] = {"fresh", "stale"};
    int64_t recv[2] = {now, now - 120 * SEC};
    for (int i = 0; i < 2; i++) {
        struct lh_store_pos from;
        ck_assert_int_eq(lh_store_tail(s, NULL, NULL, NULL, &from), 0);
        ck_assert_int_eq(lh_test_store_append(s, ids[i], 5, recv[i], sb.data, sb.size, 1), 0);
        ck_assert_int_eq(lh_dedup_add(d, ids[i], 5, recv[i], &from), 0);
    }
    msgpack_sbuffer_destroy(&sb);
    ck_assert(lh_dedup_has(d, "fresh", 5, now));
    ck_assert(!lh_dedup_has(d, "fres", 4, now));

    reopen(&s, &d, 60 * SEC);
    ck_assert_uint_eq(lh_dedup_count(d), 1);
    ck_assert(lh_dedup_has(d, "fresh", 5, now));
    ck_assert(!lh_dedup_has(d, "stale", 5, now));
    ck_assert(!lh_dedup_has(d, "fresh", 5, now + 61 * SEC));
    lh_dedup_close(d);
    lh_store_close(s);
}
END_TEST

/* With the store off the index alone remembers, across a restart. */
START_TEST(store_off_persists)
{
    struct lh_dedup *d = open_dedup(NULL, HOUR);
    static const struct lh_store_pos none;
    ck_assert_int_eq(lh_dedup_add(d, "x", 1, lh_now_ns(), &none), 0);
    lh_dedup_close(d);
    d = open_dedup(NULL, HOUR);
    ck_assert(has(d, "x"));
    lh_dedup_close(d);
}
END_TEST

START_TEST(newer_version_refused_untouched)
{
    struct lh_dedup *d = open_dedup(NULL, HOUR);
    lh_dedup_close(d);
    int fd = open(idx, O_RDWR);
    ck_assert_int_ge(fd, 0);
    /* version 2, its header checksum right, so only the version is new */
    uint8_t h[16];
    ck_assert_int_eq(pread(fd, h, 16, 0), 16);
    h[11] = 2;
    uLong c = crc32(crc32(0L, Z_NULL, 0), h, 12);
    h[12] = (uint8_t)(c >> 24), h[13] = (uint8_t)(c >> 16), h[14] = (uint8_t)(c >> 8),
    h[15] = (uint8_t)c;
    ck_assert_int_eq(pwrite(fd, h, 16, 0), 16);
    close(fd);
    struct stat before, after;
    ck_assert_int_eq(stat(idx, &before), 0);
    const struct lh_dedup_opts o = {.path = idx, .window_ns = HOUR};
    char err[512] = "";
    ck_assert_int_eq(lh_dedup_open(&o, &d, err, sizeof err), LH_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "version 2"));
    ck_assert_int_eq(stat(idx, &after), 0);
    ck_assert_int_eq(before.st_size, after.st_size);
}
END_TEST

/* ---- restart cost: a store that counts what its tail reads ------------- */

#define BIG 20000

struct countstore {
    struct lh_store base;
    size_t n;          /* batches "stored": chunk "k<i>" at position {1, i} */
    size_t read;       /* batches the tail handed out */
};

static int count_tail(struct lh_store *base, const struct lh_store_pos *from,
                      lh_store_chunk_cb cb, void *ud, struct lh_store_pos *end)
{
    struct countstore *s = (struct countstore *)base;
    *end = (struct lh_store_pos){1, (int64_t)s->n};
    for (size_t i = from ? (size_t)from->offset : s->n; i < s->n; i++) {
        char id[32];
        snprintf(id, sizeof id, "k%zu", i);
        s->read++;
        int rc = cb(ud, id, strlen(id), lh_now_ns());
        if (rc != 0)
            return rc;
    }
    return 0;
}

static const struct lh_store_ops count_ops = {.name = "count", .tail = count_tail};

START_TEST(restart_reads_only_the_tail)
{
    struct countstore cs = {.base = {&count_ops}, .n = 0};
    struct lh_dedup *d = open_dedup(&cs.base, HOUR);
    for (size_t i = 0; i < BIG; i++) {
        char id[32];
        snprintf(id, sizeof id, "k%zu", i);
        struct lh_store_pos from = {1, (int64_t)i};
        cs.n++;
        /* the last two batches are stored, their entries lost */
        if (i < BIG - 2)
            ck_assert_int_eq(lh_dedup_add(d, id, strlen(id), lh_now_ns(), &from), 0);
    }
    lh_dedup_close(d);
    cs.read = 0;
    d = open_dedup(&cs.base, HOUR);
    ck_assert_uint_eq(lh_dedup_count(d), BIG);
    ck_assert(has(d, "k0") && has(d, "k19998") && has(d, "k19999"));
    /* the newest entry's own batch and the two after it, not 20000 */
    ck_assert_uint_le(cs.read, 3);
    lh_dedup_close(d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dedup");
    TCase *tc = tcase_create("index");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, survives_restart);
    tcase_add_test(tc, crash_after_store_before_index);
    tcase_add_test(tc, index_ahead_of_store_is_rebuilt);
    tcase_add_test(tc, torn_index_is_cut_and_caught_up);
    tcase_add_test(tc, window_expires);
    tcase_add_test(tc, window_survives_reopen);
    tcase_add_test(tc, store_off_persists);
    tcase_add_test(tc, newer_version_refused_untouched);
    tcase_add_test(tc, restart_reads_only_the_tail);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(suite());
}
