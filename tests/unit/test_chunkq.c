/* The on-disk chunk queue: group commit, replay, acks, bounds, damage. */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/chunkq/chunkq.h"
#include "common/base/err.h"
#include "common/base/util.h"

static char tmpdir[PATH_MAX];

static void setup(void)
{
    const char *base = getenv("LH_TEST_TMP");
    if (base && *base) {
        ck_assert_int_eq(lh_mkdir_p(base), 0);
        snprintf(tmpdir, sizeof tmpdir, "%s/chunkq-XXXXXX", base);
    } else {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/chunkq-XXXXXX");
    }
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* What a replay reported. */
struct seen {
    struct lh_chunk *chunks[256];
    size_t n;
    uint64_t max_end;
    size_t n_pos;
    int done_calls, done_rc;
    size_t released;
    uint64_t covered_upto; /* the owner's checkpoint; UINT64_MAX: no lag */
};

static void on_pos(void *ud, const struct lh_chunkq_pos *p)
{
    struct seen *s = ud;
    s->n_pos++;
    if (p->end > s->max_end)
        s->max_end = p->end;
}

static void on_chunk(void *ud, struct lh_chunk *c)
{
    struct seen *s = ud;
    ck_assert_uint_lt(s->n, 256);
    s->chunks[s->n++] = c;
}

static void on_release(void *ud)
{
    ((struct seen *)ud)->released++;
}

static bool on_covered(void *ud, const struct lh_chunkq_pos *p)
{
    return p->end <= ((struct seen *)ud)->covered_upto;
}

static void on_done(void *ud, struct lh_chunk *c, int rc)
{
    struct seen *s = ud;
    s->done_calls++;
    s->done_rc = rc;
}

static struct lh_chunkq *open_q(struct seen *s, int64_t max_size, int64_t seg_size)
{
    memset(s, 0, sizeof *s);
    s->covered_upto = UINT64_MAX;
    struct lh_chunkq_opts o = {.dir = tmpdir, .max_size = max_size, .segment_size = seg_size,
                               .on_pos = on_pos, .on_chunk = on_chunk,
                               .on_release = on_release, .covered = on_covered, .ud = s};
    struct lh_chunkq *q = NULL;
    char err[256] = "";
    ck_assert_msg(lh_chunkq_open(&o, &q, err, sizeof err) == 0, "open: %s", err);
    return q;
}

/* Chunk i: id "chunk-i" padded, payload of len bytes of 'a' + i, one
 * position (dev 1, inode 2, end 100 * (i + 1)). */
static struct lh_chunk *put(struct lh_chunkq *q, struct seen *s, int i, size_t len)
{
    char id[LH_CHUNK_ID_LEN + 1], *payload = malloc(len);
    snprintf(id, sizeof id, "chunk-%018d", i);
    memset(payload, 'a' + i % 26, len);
    struct lh_chunkq_pos p = {1, 2, 100 * (uint64_t)(i + 1)};
    struct lh_chunk_meta m = {.id = id, .tag = "app.log", .tag_len = 7, .n_records = (uint32_t)i,
                              .pos = &p, .n_pos = 1};
    struct lh_chunk *c = NULL;
    ck_assert_int_eq(lh_chunkq_append(q, &m, payload, len, on_done, s, &c), 0);
    free(payload);
    return c;
}

static void check_payload(struct lh_chunkq *q, const struct lh_chunk *c, int i, size_t len)
{
    char *p = NULL;
    ck_assert_int_eq(lh_chunkq_read(q, c, &p), 0);
    ck_assert_uint_eq(c->payload_len, len);
    for (size_t k = 0; k < len; k++)
        ck_assert_int_eq(p[k], 'a' + i % 26);
    free(p);
}

START_TEST(done_fires_only_after_sync_for_the_whole_group)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 0);
    ck_assert(!lh_chunkq_dirty(q));
    for (int i = 0; i < 5; i++)
        put(q, &s, i, 1000);
    ck_assert_int_eq(s.done_calls, 0);
    ck_assert(lh_chunkq_dirty(q));
    ck_assert_int_eq(lh_chunkq_sync(q), 0);
    ck_assert_int_eq(s.done_calls, 5);
    ck_assert_int_eq(s.done_rc, 0);
    ck_assert(!lh_chunkq_dirty(q));
    ck_assert_int_eq(lh_chunkq_sync(q), 0);
    ck_assert_int_eq(s.done_calls, 5);
    lh_chunkq_close(q);
}
END_TEST

static size_t count_files(const char *ext);

START_TEST(chunks_acked_before_or_during_their_sync_are_consumed)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 4096);
    struct lh_chunk *c[6];
    for (int i = 0; i < 6; i++)
        c[i] = put(q, &s, i, 1500);
    /* Acked before any sync: out of the waiting list, no callback. */
    ck_assert_ptr_eq(lh_chunkq_oldest_unsynced(q), c[0]);
    ck_assert_int_eq(lh_chunkq_ack(q, c[0]), 0);
    ck_assert_int_eq(lh_chunkq_ack(q, c[2]), 0);
    ck_assert_ptr_eq(lh_chunkq_oldest_unsynced(q), c[1]);
    /* A housekeeping job leaves the chunks waiting. */
    struct lh_chunkq_job *job = NULL;
    ck_assert_int_eq(lh_chunkq_sync_begin(q, false, &job), 0);
    lh_chunkq_sync_run(job);
    ck_assert_int_eq(lh_chunkq_sync_end(q, job), 0);
    ck_assert_int_eq(s.done_calls, 0);
    ck_assert_ptr_eq(lh_chunkq_oldest_unsynced(q), c[1]);
    /* Acked while its job runs: freed at the end, its callback skipped. */
    ck_assert_int_eq(lh_chunkq_sync_begin(q, true, &job), 0);
    ck_assert_ptr_nonnull(job);
    ck_assert_ptr_null(lh_chunkq_oldest_unsynced(q));
    ck_assert_int_eq(lh_chunkq_ack(q, c[3]), 0);
    lh_chunkq_sync_run(job);
    ck_assert_int_eq(lh_chunkq_sync_end(q, job), 0);
    ck_assert_int_eq(s.done_calls, 3); /* c1, c4, c5 */
    lh_chunkq_close(q);
    q = open_q(&s, 0, 4096);
    ck_assert_uint_eq(s.n, 3);
    ck_assert_str_eq(s.chunks[0]->id, "chunk-000000000000000001");
    ck_assert_str_eq(s.chunks[1]->id, "chunk-000000000000000004");
    ck_assert_str_eq(s.chunks[2]->id, "chunk-000000000000000005");
    lh_chunkq_close(q);
}
END_TEST

START_TEST(a_segment_consumed_before_any_sync_is_deleted)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 4096);
    struct lh_chunk *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = put(q, &s, i, 1500);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(lh_chunkq_ack(q, c[i]), 0);
    ck_assert_ptr_null(lh_chunkq_oldest_unsynced(q));
    ck_assert_int_eq(lh_chunkq_sync(q), 0);
    ck_assert_uint_eq(count_files("seg"), 0);
    ck_assert_int_eq(s.done_calls, 0);
    lh_chunkq_close(q);
    q = open_q(&s, 0, 4096);
    ck_assert_uint_eq(s.n, 0);
    lh_chunkq_close(q);
}
END_TEST

START_TEST(a_consumed_segment_waits_for_the_checkpoint)
{
    /* Acks out of order while the owner's checkpoint lags behind an older
     * live chunk: a consumed segment stays until the checkpoint covers its
     * positions (or a restart would read its lines again), then goes even
     * though the older chunk still lives. */
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 4096);
    struct lh_chunk *c[6];
    for (int i = 0; i < 6; i++)
        c[i] = put(q, &s, i, 1500); /* two chunks per segment, ends 100..600 */
    ck_assert_int_eq(lh_chunkq_sync(q), 0);
    s.covered_upto = 0;
    for (int i = 2; i < 6; i++)
        ck_assert_int_eq(lh_chunkq_ack(q, c[i]), 0);
    ck_assert_int_eq(lh_chunkq_sync(q), 0);
    ck_assert_uint_eq(count_files("seg"), 3);
    ck_assert_uint_eq(s.released, 0);
    s.covered_upto = 600; /* c0 and c1 were made durable: the checkpoint moves */
    ck_assert_int_eq(lh_chunkq_sync(q), 0);
    ck_assert_uint_eq(count_files("seg"), 1);
    ck_assert_uint_eq(s.released, 1); /* saved once for both segments */
    lh_chunkq_close(q);
    q = open_q(&s, 0, 4096);
    ck_assert_uint_eq(s.n, 2); /* c0 and c1 replayed */
    lh_chunkq_ack(q, s.chunks[1]);
    lh_chunkq_ack(q, s.chunks[0]);
    ck_assert_int_eq(lh_chunkq_sync(q), 0);
    ck_assert_uint_eq(count_files("seg"), 0);
    lh_chunkq_close(q);
}
END_TEST

START_TEST(replays_unacked_chunks_in_order_with_ids_and_positions)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 0);
    struct lh_chunk *c[6];
    for (int i = 0; i < 6; i++)
        c[i] = put(q, &s, i, 300 + (size_t)i);
    lh_chunkq_sync(q);
    ck_assert_int_eq(lh_chunkq_ack(q, c[0]), 0);
    ck_assert_int_eq(lh_chunkq_ack(q, c[3]), 0);
    lh_chunkq_sync(q);
    lh_chunkq_close(q);

    q = open_q(&s, 0, 0);
    ck_assert_uint_eq(s.n, 4);
    const int want[] = {1, 2, 4, 5};
    for (size_t k = 0; k < 4; k++) {
        char id[LH_CHUNK_ID_LEN + 1];
        snprintf(id, sizeof id, "chunk-%018d", want[k]);
        ck_assert_str_eq(s.chunks[k]->id, id);
        ck_assert_uint_eq(s.chunks[k]->n_records, (unsigned)want[k]);
        check_payload(q, s.chunks[k], want[k], 300 + (size_t)want[k]);
    }
    /* Positions of consumed chunks count too: they are still on disk. */
    ck_assert_uint_eq(s.n_pos, 6);
    ck_assert_uint_eq(s.max_end, 600);
    struct lh_chunkq_stats st;
    lh_chunkq_stats(q, &st);
    ck_assert_uint_eq(st.chunks, 4);
    ck_assert_uint_eq(st.corrupt + st.torn, 0);
    lh_chunkq_close(q);
}
END_TEST

START_TEST(unsynced_appends_at_close_survive)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 0);
    put(q, &s, 0, 100);
    lh_chunkq_close(q);
    q = open_q(&s, 0, 0);
    ck_assert_uint_eq(s.n, 1);
    lh_chunkq_close(q);
}
END_TEST

static size_t count_files(const char *ext)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '\\.%s$'", tmpdir, ext);
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    ck_assert_int_eq(fscanf(p, "%zu", &n), 1);
    pclose(p);
    return n;
}

START_TEST(consumed_segments_are_deleted_and_rolls_bound_them)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 4096);
    struct lh_chunk *c[8];
    for (int i = 0; i < 8; i++)
        c[i] = put(q, &s, i, 1500);
    lh_chunkq_sync(q);
    ck_assert_uint_ge(count_files("seg"), 4);
    for (int i = 0; i < 8; i++)
        lh_chunkq_ack(q, c[i]);
    lh_chunkq_sync(q);
    ck_assert_uint_eq(count_files("seg"), 0);
    ck_assert_uint_eq(count_files("ack"), 0);
    ck_assert_uint_ge(s.released, 4);
    struct lh_chunkq_stats st;
    lh_chunkq_stats(q, &st);
    ck_assert_uint_eq(st.bytes, 0);
    ck_assert_uint_eq(st.chunks, 0);
    /* Appending again after everything was consumed starts a new segment. */
    put(q, &s, 9, 10);
    lh_chunkq_sync(q);
    lh_chunkq_close(q);
    q = open_q(&s, 0, 4096);
    ck_assert_uint_eq(s.n, 1);
    lh_chunkq_close(q);
}
END_TEST

START_TEST(full_bounds_the_bytes_on_disk)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 10000, 4096);
    ck_assert(!lh_chunkq_full(q, 20000)); /* an empty queue takes anything */
    int n = 0;
    while (!lh_chunkq_full(q, 1000))
        put(q, &s, n++, 1000);
    ck_assert_int_ge(n, 8);
    struct lh_chunkq_stats st;
    lh_chunkq_stats(q, &st);
    ck_assert_uint_le(st.bytes, 10000);
    lh_chunkq_close(q);
}
END_TEST

/* Offset of record k in the only segment (records of one size). */
static char *only_segment(char *buf, size_t len)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "ls '%s'/*.seg", tmpdir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(fgets(buf, (int)len, p));
    pclose(p);
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

static void poke(const char *path, off_t off, const char *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, bytes, n, off), (ssize_t)n);
    close(fd);
}

static void corrupt_case(off_t into_record, const char *bytes, size_t n)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 0);
    for (int i = 0; i < 5; i++)
        put(q, &s, i, 700);
    lh_chunkq_sync(q);
    lh_chunkq_close(q);
    char path[PATH_MAX];
    only_segment(path, sizeof path);
    const off_t rec = LH_CHUNKQ_HDR_FIXED + 7 + 24 + 700;
    poke(path, 2 * rec + into_record, bytes, n);

    q = open_q(&s, 0, 0);
    ck_assert_uint_eq(s.n, 4);
    const int want[] = {0, 1, 3, 4};
    for (size_t k = 0; k < 4; k++)
        check_payload(q, s.chunks[k], want[k], 700);
    struct lh_chunkq_stats st;
    lh_chunkq_stats(q, &st);
    ck_assert_uint_eq(st.corrupt, 1);
    ck_assert_uint_eq(st.torn, 0);
    lh_chunkq_close(q);
}

START_TEST(a_damaged_payload_skips_one_chunk)
{
    corrupt_case(400, "XXXX", 4);
}
END_TEST

START_TEST(a_damaged_length_skips_one_chunk)
{
    /* payload length 0xffffff: past the file, and the magic search resyncs */
    corrupt_case(12, "\x00\xff\xff\xff", 4);
}
END_TEST

START_TEST(a_damaged_magic_skips_one_chunk)
{
    corrupt_case(0, "ZZZZ", 4);
}
END_TEST

START_TEST(a_torn_tail_is_counted_and_the_rest_kept)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 0);
    for (int i = 0; i < 3; i++)
        put(q, &s, i, 500);
    lh_chunkq_sync(q);
    lh_chunkq_close(q);
    char path[PATH_MAX];
    only_segment(path, sizeof path);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(truncate(path, sb.st_size - 100), 0);

    q = open_q(&s, 0, 0);
    ck_assert_uint_eq(s.n, 2);
    struct lh_chunkq_stats st;
    lh_chunkq_stats(q, &st);
    ck_assert_uint_eq(st.torn, 1);
    /* New appends go to a new segment and replay after the intact ones. */
    put(q, &s, 7, 10);
    lh_chunkq_sync(q);
    lh_chunkq_close(q);
    q = open_q(&s, 0, 0);
    ck_assert_uint_eq(s.n, 3);
    ck_assert_str_eq(s.chunks[2]->id, "chunk-000000000000000007");
    lh_chunkq_close(q);
}
END_TEST

START_TEST(read_detects_damage_after_open)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 0);
    struct lh_chunk *c = put(q, &s, 0, 800);
    lh_chunkq_sync(q);
    char path[PATH_MAX];
    only_segment(path, sizeof path);
    poke(path, 200, "!", 1);
    char *p = NULL;
    ck_assert_int_eq(lh_chunkq_read(q, c, &p), LH_ECORRUPT);
    struct lh_chunkq_stats st;
    lh_chunkq_stats(q, &st);
    ck_assert_uint_eq(st.corrupt, 1);
    lh_chunkq_close(q);
}
END_TEST

START_TEST(bad_arguments_are_refused)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 0);
    struct lh_chunk_meta m = {.id = "short", .tag = "t", .tag_len = 1};
    struct lh_chunk *c;
    ck_assert_int_eq(lh_chunkq_append(q, &m, "x", 1, on_done, &s, &c), LH_EINVAL);
    m.id = "chunk-000000000000000001";
    ck_assert_int_eq(lh_chunkq_append(q, &m, "x", (size_t)LH_CHUNKQ_MAX_PAYLOAD + 1, on_done, &s,
                                      &c),
                     LH_ETOOBIG);
    struct lh_chunkq_stats st;
    lh_chunkq_stats(q, &st);
    ck_assert_uint_eq(st.chunks, 0);
    lh_chunkq_close(q);
}
END_TEST

START_TEST(garbage_files_do_not_crash_open)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/q-0000000000000001.seg", tmpdir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 5000; i++)
        fputs(i % 7 ? "LHQC\x00\x01\xff\xff" : "garbage!", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/q-0000000000000001.ack", tmpdir);
    f = fopen(path, "w");
    fputs("abc", f);
    fclose(f);
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 0);
    ck_assert_uint_eq(s.n, 0);
    put(q, &s, 1, 10);
    lh_chunkq_sync(q);
    lh_chunkq_close(q);
    q = open_q(&s, 0, 0);
    ck_assert_uint_eq(s.n, 1);
    lh_chunkq_close(q);
}
END_TEST

static void ack_path(char *buf, size_t len)
{
    only_segment(buf, len);
    strcpy(buf + strlen(buf) - 3, "ack");
}

/* After a restart only chunks 1 and 3 of four come back. */
static void expect_1_and_3(void)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 0);
    ck_assert_uint_eq(s.n, 2);
    ck_assert_str_eq(s.chunks[0]->id, "chunk-000000000000000001");
    ck_assert_str_eq(s.chunks[1]->id, "chunk-000000000000000003");
    lh_chunkq_close(q);
}

START_TEST(a_torn_ack_entry_does_not_shift_later_acks)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 0);
    for (int i = 0; i < 4; i++)
        put(q, &s, i, 100);
    lh_chunkq_sync(q);
    lh_chunkq_close(q);
    /* A crash cut the ack of chunk 1 after three bytes. */
    char path[PATH_MAX];
    ack_path(path, sizeof path);
    FILE *f = fopen(path, "w");
    ck_assert_int_eq(fwrite("\0\0\0", 1, 3, f), 3);
    fclose(f);
    q = open_q(&s, 0, 0);
    ck_assert_uint_eq(s.n, 4);
    ck_assert_int_eq(lh_chunkq_ack(q, s.chunks[0]), 0);
    ck_assert_int_eq(lh_chunkq_ack(q, s.chunks[2]), 0);
    lh_chunkq_sync(q);
    lh_chunkq_close(q);
    expect_1_and_3();
}
END_TEST

START_TEST(a_garbage_ack_file_neither_blocks_open_nor_later_acks)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 0);
    for (int i = 0; i < 4; i++)
        put(q, &s, i, 100);
    lh_chunkq_sync(q);
    lh_chunkq_close(q);
    /* More bytes than a segment of four chunks can hold acks for. */
    char path[PATH_MAX], junk[400];
    ack_path(path, sizeof path);
    memset(junk, 0xee, sizeof junk);
    FILE *f = fopen(path, "w");
    ck_assert_int_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    fclose(f);
    q = open_q(&s, 0, 0);
    ck_assert_uint_eq(s.n, 4);
    ck_assert_int_eq(lh_chunkq_ack(q, s.chunks[0]), 0);
    ck_assert_int_eq(lh_chunkq_ack(q, s.chunks[2]), 0);
    lh_chunkq_sync(q);
    lh_chunkq_close(q);
    expect_1_and_3();
}
END_TEST

START_TEST(a_short_ack_write_is_cut_back)
{
    struct seen s;
    struct lh_chunkq *q = open_q(&s, 0, 0);
    struct lh_chunk *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = put(q, &s, i, 100);
    lh_chunkq_sync(q);
    ck_assert_int_eq(lh_chunkq_ack(q, c[0]), 0);
    /* The file size limit lets only three bytes of the next ack through. */
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 8 + 3;
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ck_assert_int_eq(lh_chunkq_ack(q, c[1]), LH_EIO);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    ck_assert_int_eq(lh_chunkq_ack(q, c[2]), 0);
    lh_chunkq_sync(q);
    lh_chunkq_close(q);
    expect_1_and_3();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("chunkq");
    TCase *t = tcase_create("core");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, done_fires_only_after_sync_for_the_whole_group);
    tcase_add_test(t, chunks_acked_before_or_during_their_sync_are_consumed);
    tcase_add_test(t, a_segment_consumed_before_any_sync_is_deleted);
    tcase_add_test(t, a_consumed_segment_waits_for_the_checkpoint);
    tcase_add_test(t, replays_unacked_chunks_in_order_with_ids_and_positions);
    tcase_add_test(t, unsynced_appends_at_close_survive);
    tcase_add_test(t, consumed_segments_are_deleted_and_rolls_bound_them);
    tcase_add_test(t, full_bounds_the_bytes_on_disk);
    tcase_add_test(t, a_damaged_payload_skips_one_chunk);
    tcase_add_test(t, a_damaged_length_skips_one_chunk);
    tcase_add_test(t, a_damaged_magic_skips_one_chunk);
    tcase_add_test(t, a_torn_tail_is_counted_and_the_rest_kept);
    tcase_add_test(t, read_detects_damage_after_open);
    tcase_add_test(t, bad_arguments_are_refused);
    tcase_add_test(t, garbage_files_do_not_crash_open);
    tcase_add_test(t, a_torn_ack_entry_does_not_shift_later_acks);
    tcase_add_test(t, a_short_ack_write_is_cut_back);
    tcase_add_test(t, a_garbage_ack_file_neither_blocks_open_nor_later_acks);
    suite_add_tcase(s, t);
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
