/* Writes the seed corpora of fuzz_store and fuzz_chunkq from files the
 * store and the chunk queue themselves write:
 *   gen_fuzz_corpus DIR   (DIR/store/ and DIR/chunkq/ must exist)
 * Each seed is the harness's input layout: for fuzz_store a flags byte, a
 * 16-bit split offset and the segment bytes; for fuzz_chunkq a flags byte,
 * a 16-bit ack file length, the ack file and the segment. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector/store/store.h"
#include "tests/unit/lh_store_test.h"
#include "common/chunkq/chunkq.h"
#include "common/base/err.h"
#include "common/codec/forward.h"
#include "common/base/log.h"
#include "common/codec/record.h"
#include "common/base/util.h"

#define SEC 1000000000LL

static void die(const char *what)
{
    fprintf(stderr, "gen_fuzz_corpus: %s\n", what);
    exit(1);
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[PATH_MAX + 300];
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void slurp(const char *path, char **data, size_t *len)
{
    if (lh_read_file(path, 1 << 20, data, len) != 0 || *len < 8)
        die(path);
}

static void put_seed(const char *dir, const char *name, uint8_t flags, size_t word,
                     const char *a, size_t alen, const char *b, size_t blen)
{
    char path[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    uint8_t head[3] = {flags, (uint8_t)(word >> 8), (uint8_t)word};
    if (!f || fwrite(head, 1, 3, f) != 3 || (alen && fwrite(a, 1, alen, f) != alen) ||
        (blen && fwrite(b, 1, blen, f) != blen) || fclose(f) != 0)
        die(path);
}

/* ---- store -------------------------------------------------------------- */

static void pack_event(msgpack_packer *pk, int depth, const char *msg)
{
    msgpack_pack_array(pk, 3);
    lh_pack_cstr(pk, "app.web");
    lh_pack_time(pk, 1795502912 * SEC + 42);
    msgpack_pack_map(pk, depth > 2 ? 3 : 2);
    lh_pack_cstr(pk, "message");
    lh_pack_cstr(pk, msg);
    lh_pack_cstr(pk, "host");
    lh_pack_cstr(pk, "h1");
    if (depth > 2) {
        lh_pack_cstr(pk, "deep");
        for (int i = 2; i < depth; i++)
            msgpack_pack_array(pk, 1);
        msgpack_pack_nil(pk);
    }
}

static void append(struct lh_store *s, const char *chunk, int n, int depth)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < n; i++)
        pack_event(&pk, i == 0 ? depth : 2, "GET /index.html 200");
    if (lh_test_store_append(s, chunk, chunk ? strlen(chunk) : 0, 7 * SEC, sb.data, sb.size,
                             (size_t)n) != 0)
        die("store append");
    msgpack_sbuffer_destroy(&sb);
}

static struct lh_store *store_open(const char *dir, int64_t segment_size)
{
    struct lh_store_opts o = {.dir = dir, .segment_size = segment_size};
    struct lh_store *s;
    char err[512];
    if (lh_store_open(&o, &s, err, sizeof err) != 0)
        die(err);
    return s;
}

static void store_seeds(const char *work, const char *out)
{
    char dir[PATH_MAX + 16], seg1[PATH_MAX + 64], seg2[PATH_MAX + 64];
    char *a, *b;
    size_t alen, blen;
    snprintf(dir, sizeof dir, "%s/store", work);
    snprintf(seg1, sizeof seg1, "%s/seg-%016x.lhs", dir, 1);
    snprintf(seg2, sizeof seg2, "%s/seg-%016x.lhs", dir, 2);

    struct lh_store *s = store_open(dir, 0);
    append(s, "c1", 2, 2);
    append(s, NULL, 1, 2);
    append(s, "c3", 3, 31);
    append(s, "c4", 1, LH_MP_MAX_DEPTH + 1);
    lh_store_close(s);
    slurp(seg1, &a, &alen);
    put_seed(out, "batches", 0, 0, a, alen, NULL, 0);
    put_seed(out, "batches_fixcrc", 1, 0, a, alen, NULL, 0);
    put_seed(out, "torn_tail", 0, 0, a, alen - 5, NULL, 0);
    free(a);
    rm_dir(dir);

    s = store_open(dir, 200);
    append(s, "s1", 2, 2);
    append(s, "s2", 2, 2);
    lh_store_close(s);
    slurp(seg1, &a, &alen);
    slurp(seg2, &b, &blen);
    put_seed(out, "two_segments", 2, alen, a, alen, b, blen);
    free(a);
    free(b);
    rm_dir(dir);
}

/* ---- chunk queue -------------------------------------------------------- */

struct replayed {
    struct lh_chunk *c[8];
    size_t n;
};

static void on_chunk(void *ud, struct lh_chunk *c)
{
    struct replayed *r = ud;
    if (r->n < 8)
        r->c[r->n++] = c;
}

static void chunkq_seeds(const char *work, const char *out)
{
    struct replayed r = {.n = 0};
    char dir[PATH_MAX + 16], seg[PATH_MAX + 64], ack[PATH_MAX + 64], err[512];
    snprintf(dir, sizeof dir, "%s/chunkq", work);
    /* The queue numbers its first segment 0. */
    snprintf(seg, sizeof seg, "%s/q-%016x.seg", dir, 0);
    snprintf(ack, sizeof ack, "%s/q-%016x.ack", dir, 0);
    struct lh_chunkq_opts o = {.dir = dir, .max_size = 1 << 20, .on_chunk = on_chunk,
                              .ud = &r};
    struct lh_chunkq *q;
    if (lh_chunkq_open(&o, &q, err, sizeof err) != 0)
        die(err);
    const struct lh_chunkq_pos pos[2] = {{1, 2, 300}, {1, 3, 4000}};
    const char *ids[] = {"AAAAAAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBBBB",
                         "CCCCCCCCCCCCCCCCCCCCCCCC"};
    for (size_t i = 0; i < 3; i++) {
        const struct lh_chunk_meta m = {ids[i], "app.web", 7, (uint32_t)i + 1, pos, i};
        struct lh_chunk *c;
        if (lh_chunkq_append(q, &m, "\x92\xa1x\xa1y", 5, NULL, NULL, &c) != 0)
            die("chunkq append");
    }
    if (lh_chunkq_sync(q) != 0)
        die("chunkq sync");
    lh_chunkq_close(q);
    char *s, *a;
    size_t slen, alen;
    slurp(seg, &s, &slen);
    put_seed(out, "chunks", 0, 0, NULL, 0, s, slen);
    put_seed(out, "chunks_fixsum", 1, 0, NULL, 0, s, slen);
    put_seed(out, "torn_tail", 0, 0, NULL, 0, s, slen - 9);
    free(s);

    /* Replayed, the middle one acked: the queue writes its ack file. */
    if (lh_chunkq_open(&o, &q, err, sizeof err) != 0 || r.n != 3 ||
        lh_chunkq_ack(q, r.c[1]) != 0 || lh_chunkq_sync(q) != 0)
        die("chunkq replay");
    lh_chunkq_close(q);
    slurp(seg, &s, &slen);
    slurp(ack, &a, &alen);
    put_seed(out, "chunks_acked", 0, alen, a, alen, s, slen);
    free(s);
    free(a);
    rm_dir(dir);
}

int main(int argc, char **argv)
{
    char out[PATH_MAX + 16], work[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    if (argc != 2)
        die("usage: gen_fuzz_corpus CORPUS_DIR");
    lh_log_set_level(LH_LOG_ERROR);
    snprintf(work, sizeof work, "%s/gen_fuzz_corpus-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(work))
        die("mkdtemp");
    snprintf(out, sizeof out, "%s/store", argv[1]);
    store_seeds(work, out);
    snprintf(out, sizeof out, "%s/chunkq", argv[1]);
    chunkq_seeds(work, out);
    rmdir(work);
    return 0;
}
