/* Checkpoint store: persistence and the contiguous-ack rule. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/core/checkpoint.h"
#include "common/base/err.h"
#include "common/base/util.h"

static char tmpdir[PATH_MAX];
static char ckpt_path[PATH_MAX + 32];

static void setup(void)
{
    const char *base = getenv("LH_TEST_TMP");
    if (base && *base) {
        ck_assert_int_eq(lh_mkdir_p(base), 0);
        snprintf(tmpdir, sizeof tmpdir, "%s/ckpt-XXXXXX", base);
    } else {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/ckpt-XXXXXX");
    }
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(ckpt_path, sizeof ckpt_path, "%s/checkpoints.json", tmpdir);
}

static void teardown(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static struct lh_ckpt *load_store(void)
{
    struct lh_ckpt *c = NULL;
    char err[512] = "";
    ck_assert_int_eq(lh_ckpt_new(ckpt_path, &c), 0);
    ck_assert_msg(lh_ckpt_load(c, err, sizeof err) == 0, "load: %s", err);
    return c;
}

START_TEST(test_round_trip)
{
    struct lh_ckpt *c = load_store();
    ck_assert_uint_eq(c->n_saved, 0);
    ck_assert_ptr_nonnull(lh_ckpt_file_open(c, 7, 1001, "/var/log/a.log", 123));
    ck_assert_ptr_nonnull(lh_ckpt_file_open(c, 7, 1002, "/var/log/b \"q\".log", 1ULL << 40));
    ck_assert(c->dirty);
    ck_assert_int_eq(lh_ckpt_save(c), 0);
    ck_assert(!c->dirty);
    lh_ckpt_free(c);

    c = load_store();
    ck_assert_uint_eq(c->n_saved, 2);
    uint64_t off = 0;
    ck_assert(lh_ckpt_lookup(c, 7, 1001, "/var/log/a.log", 500, &off));
    ck_assert_uint_eq(off, 123);
    ck_assert(lh_ckpt_lookup(c, 7, 1002, "/var/log/b \"q\".log", 1ULL << 41, &off));
    ck_assert_uint_eq(off, 1ULL << 40);
    /* Renamed by rotation: same inode, new path, still resumes. */
    ck_assert(lh_ckpt_lookup(c, 7, 1001, "/var/log/a.log.1", 500, &off));
    ck_assert_uint_eq(off, 123);
    /* Same path, new inode: a new file, read from its start. */
    ck_assert(!lh_ckpt_lookup(c, 7, 9999, "/var/log/a.log", 500, &off));
    /* Shorter than the saved offset: the inode was reused. */
    ck_assert(!lh_ckpt_lookup(c, 7, 1001, "/var/log/a.log", 50, &off));
    lh_ckpt_free(c);
}
END_TEST

/* Positions found in the disk buffer win over a lagging checkpoint file,
 * never move an entry back, and cover files the file never listed. */
START_TEST(test_recover_from_buffer)
{
    struct lh_ckpt *c;
    ck_assert_int_eq(lh_ckpt_new(ckpt_path, &c), 0);
    struct lh_ckpt_file *f = lh_ckpt_file_open(c, 7, 1001, "/var/log/a.log", 100);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(lh_ckpt_save(c), 0);
    lh_ckpt_free(c);

    char err[256];
    ck_assert_int_eq(lh_ckpt_new(ckpt_path, &c), 0);
    ck_assert_int_eq(lh_ckpt_load(c, err, sizeof err), 0);
    ck_assert_int_eq(lh_ckpt_recover(c, 7, 1001, 400), 0);
    ck_assert_int_eq(lh_ckpt_recover(c, 7, 1001, 250), 0);
    ck_assert_int_eq(lh_ckpt_recover(c, 7, 2002, 90), 0);
    uint64_t off = 0;
    ck_assert(lh_ckpt_lookup(c, 7, 1001, "/var/log/a.log", 1000, &off));
    ck_assert_uint_eq(off, 400);
    ck_assert(lh_ckpt_lookup(c, 7, 2002, "/var/log/new.log", 1000, &off));
    ck_assert_uint_eq(off, 90);
    /* A file now shorter than the buffered position was replaced. */
    ck_assert(!lh_ckpt_lookup(c, 7, 2002, "/var/log/new.log", 50, &off));
    lh_ckpt_free(c);
}
END_TEST

START_TEST(test_crash_leaves_tmp)
{
    struct lh_ckpt *c = load_store();
    ck_assert_ptr_nonnull(lh_ckpt_file_open(c, 1, 2, "/x.log", 42));
    ck_assert_int_eq(lh_ckpt_save(c), 0);
    lh_ckpt_free(c);

    /* A crash during the next save leaves a half-written temporary file. */
    char tmp[sizeof ckpt_path + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", ckpt_path);
    write_text(tmp, "{\"files\": [{\"dev\": 1, \"ino");

    c = load_store();
    uint64_t off = 0;
    ck_assert(lh_ckpt_lookup(c, 1, 2, "/x.log", 100, &off));
    ck_assert_uint_eq(off, 42);
    /* The next save replaces both. */
    ck_assert_ptr_nonnull(lh_ckpt_file_open(c, 1, 2, "/x.log", 77));
    ck_assert_int_eq(lh_ckpt_save(c), 0);
    lh_ckpt_free(c);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    c = load_store();
    ck_assert(lh_ckpt_lookup(c, 1, 2, "/x.log", 100, &off));
    ck_assert_uint_eq(off, 77);
    lh_ckpt_free(c);
}
END_TEST

static void expect_corrupt(const char *text, const char *needle)
{
    write_text(ckpt_path, text);
    struct lh_ckpt *c = NULL;
    char err[512] = "";
    ck_assert_int_eq(lh_ckpt_new(ckpt_path, &c), 0);
    ck_assert_int_eq(lh_ckpt_load(c, err, sizeof err), LH_ECORRUPT);
    ck_assert_msg(strstr(err, ckpt_path) != NULL, "error does not name the file: %s", err);
    ck_assert_msg(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
    ck_assert_uint_eq(c->n_saved, 0);
    lh_ckpt_free(c);
}

START_TEST(test_corrupt_files)
{
    expect_corrupt("not json at all", "not a checkpoint file");
    expect_corrupt("{\"something\": 1}", "no \"files\" array");
    expect_corrupt("{\"files\": [{\"dev\": 1, \"inode\": 2, \"path\": \"/a\", \"offset\": 3},"
                   " {\"dev\": 1, \"path\": \"/b\"}]}",
                   "entry 1");
    expect_corrupt("{\"files\": [{\"dev\": 1, \"inode\": 2, \"path\": \"/a\", \"offset\": -5}]}",
                   "entry 0");
}
END_TEST

/* The fingerprint travels with the offset, so a restart can tell a file
 * from another that got its inode; files saved before fingerprints load. */
START_TEST(test_fingerprint_saved)
{
    struct lh_ckpt *c = load_store();
    struct lh_ckpt_file *f = lh_ckpt_file_open(c, 7, 1001, "/var/log/a.log", 300);
    ck_assert_int_eq(lh_ckpt_save(c), 0);
    lh_ckpt_file_set_fp(c, f, 0xfedcba9876543210ULL, 512);
    ck_assert(c->dirty);
    ck_assert_int_eq(lh_ckpt_save(c), 0);
    lh_ckpt_file_set_fp(c, f, 0xfedcba9876543210ULL, 512);
    ck_assert(!c->dirty);
    lh_ckpt_free(c);

    c = load_store();
    const struct lh_ckpt_saved *s = lh_ckpt_find(c, 7, 1001, "/var/log/a.log", 1000);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(s->offset, 300);
    ck_assert_uint_eq(s->fp_hash, 0xfedcba9876543210ULL);
    ck_assert_uint_eq(s->fp_len, 512);
    ck_assert_ptr_null(lh_ckpt_find(c, 7, 1001, "/var/log/a.log", 299));
    lh_ckpt_free(c);

    write_text(ckpt_path, "{\"files\": [{\"dev\": 1, \"inode\": 2, \"path\": \"/a\", "
                          "\"offset\": 3}]}");
    c = load_store();
    s = lh_ckpt_find(c, 1, 2, "/a", 3);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(s->fp_len, 0);
    lh_ckpt_free(c);
}
END_TEST

START_TEST(test_fingerprint_corrupt)
{
    const char *head = "{\"files\": [{\"dev\": 1, \"inode\": 2, \"path\": \"/a\", "
                       "\"offset\": 3, ";
    char text[256];
    static const char *const bad[] = {
        "\"fp\": \"12\", \"fp_len\": 4",
        "\"fp\": \"-123456789abcdef\", \"fp_len\": 4",
        "\"fp\": \"0123456789abcdeg\", \"fp_len\": 4",
        "\"fp\": \"0123456789abcdef\"",
        "\"fp_len\": 4",
        "\"fp\": \"0123456789abcdef\", \"fp_len\": -1",
        "\"fp\": 5, \"fp_len\": 4",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "%s%s}]}", head, bad[i]);
        expect_corrupt(text, "entry 0");
    }
}
END_TEST

START_TEST(test_out_of_order_acks)
{
    struct lh_ckpt *c = load_store();
    struct lh_ckpt_file *f = lh_ckpt_file_open(c, 1, 1, "/f", 100);
    bool fresh = false;

    /* Three batches of one output: records up to 150, 220, 300. */
    struct lh_ckpt_seg *s1 = lh_ckpt_track(c, f, 120, 1, &fresh);
    ck_assert(fresh);
    ck_assert_ptr_eq(lh_ckpt_track(c, f, 150, 1, &fresh), s1);
    ck_assert(!fresh);
    s1->sealed = true;
    struct lh_ckpt_seg *s2 = lh_ckpt_track(c, f, 220, 1, &fresh);
    ck_assert(fresh && s2 != s1);
    s2->sealed = true;
    struct lh_ckpt_seg *s3 = lh_ckpt_track(c, f, 300, 1, &fresh);
    s3->sealed = true;

    lh_ckpt_release(c, s3);
    ck_assert_uint_eq(f->committed, 100);
    lh_ckpt_release(c, s2);
    ck_assert_uint_eq(f->committed, 100);
    /* A buffer segment holding records up to 300 must not go yet. */
    ck_assert(lh_ckpt_covers(c, 1, 1, 100));
    ck_assert(!lh_ckpt_covers(c, 1, 1, 220));
    lh_ckpt_release(c, s1);
    ck_assert_uint_eq(f->committed, 300);
    ck_assert(lh_ckpt_covers(c, 1, 1, 300));
    ck_assert(!lh_ckpt_covers(c, 1, 1, 301));
    ck_assert(lh_ckpt_covers(c, 9, 9, 1000)); /* a file the store does not know */
    ck_assert_ptr_null(f->head);
    lh_ckpt_free(c);
}
END_TEST

START_TEST(test_every_output_must_ack)
{
    struct lh_ckpt *c = load_store();
    struct lh_ckpt_file *f = lh_ckpt_file_open(c, 1, 1, "/f", 0);
    bool fresh = false;
    struct lh_ckpt_seg *a = lh_ckpt_track(c, f, 10, 2, &fresh);
    a->sealed = true; /* output 1 sealed its batch; output 2's stays open */
    struct lh_ckpt_seg *b = lh_ckpt_track(c, f, 20, 2, &fresh);
    ck_assert(fresh);
    b->sealed = true;

    lh_ckpt_release(c, a); /* output 1 acks its first batch */
    ck_assert_uint_eq(f->committed, 0);
    lh_ckpt_release(c, b); /* output 1 acks its second batch */
    ck_assert_uint_eq(f->committed, 0);
    lh_ckpt_release(c, a); /* output 2 acks its one batch (holding a and b) */
    lh_ckpt_release(c, b);
    ck_assert_uint_eq(f->committed, 20);
    ck_assert(c->dirty);
    lh_ckpt_free(c);
}
END_TEST

START_TEST(test_unrouted_and_close)
{
    struct lh_ckpt *c = load_store();
    struct lh_ckpt_file *f = lh_ckpt_file_open(c, 1, 1, "/f", 0);
    bool fresh = true;
    ck_assert_ptr_null(lh_ckpt_track(c, f, 50, 0, &fresh));
    ck_assert(!fresh);
    ck_assert_uint_eq(f->committed, 50);

    struct lh_ckpt_seg *s = lh_ckpt_track(c, f, 80, 1, &fresh);
    /* Closed with a segment pending: kept (and saved) until acknowledged. */
    lh_ckpt_file_close(c, f);
    ck_assert_ptr_eq(c->files, f);
    ck_assert_int_eq(lh_ckpt_save(c), 0);
    s->sealed = true;
    lh_ckpt_release(c, s);
    ck_assert_ptr_null(c->files);
    lh_ckpt_free(c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_crash_leaves_tmp);
    tcase_add_test(tc, test_recover_from_buffer);
    tcase_add_test(tc, test_corrupt_files);
    tcase_add_test(tc, test_fingerprint_saved);
    tcase_add_test(tc, test_fingerprint_corrupt);
    tcase_add_test(tc, test_out_of_order_acks);
    tcase_add_test(tc, test_every_output_must_ack);
    tcase_add_test(tc, test_unrouted_and_close);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
