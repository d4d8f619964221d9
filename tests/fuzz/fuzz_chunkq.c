/* libFuzzer harness: the chunk queue's replay and recovery (common/chunkq.c)
 * over an arbitrary segment file and ack file. Input: a flags byte, a
 * 16-bit length of the ack file's bytes, those bytes, then the segment's.
 * Flag bit 0 rewrites the checksum of every record the magic and length
 * fields lead to, so mutations reach past the checksum. Each run opens the
 * queue, reads back every replayed chunk, acks every other one, appends one,
 * syncs and closes, then opens again: what comes back must be exactly the
 * chunks not acked plus the new one. Never a crash, a leak or a hang; the
 * temporary directory is made once per process. */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "common/chunkq/chunkq.h"
#include "common/base/log.h"
#include "tests/fuzz/fuzz_dir.h"

#define F_FIX_SUM 1
#define MAX_REPLAY 4096

static void write_file(const char *dir, const char *ext, const uint8_t *p, size_t n)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/q-%016x.%s", dir, 1, ext);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
        abort();
    close(fd);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The record checksum as chunkq.h describes it: XXH3-64 of the record with
 * its checksum field zeroed, folded to 32 bits. */
static void fix_sums(uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= LH_CHUNKQ_HDR_FIXED) {
        const uint8_t *m = memmem(p + off, n - off, "LHQC", 4);
        if (!m || (size_t)(m - p) + LH_CHUNKQ_HDR_FIXED > n)
            return;
        off = (size_t)(m - p);
        uint8_t *h = p + off;
        uint64_t rec = LH_CHUNKQ_HDR_FIXED + (uint64_t)(h[6] << 8 | h[7]) +
                       (uint64_t)be32(h + 8) * 24 + be32(h + 12);
        if (rec > n - off) {
            off++;
            continue;
        }
        memset(h + 20, 0, 4);
        uint64_t d = XXH3_64bits(h, (size_t)rec);
        uint32_t sum = (uint32_t)(d ^ (d >> 32));
        for (int i = 0; i < 4; i++)
            h[20 + i] = (uint8_t)(sum >> (24 - 8 * i));
        off += (size_t)rec;
    }
}

struct replay {
    struct lh_chunk *c[MAX_REPLAY];
    size_t n, total;
};

static void on_chunk(void *ud, struct lh_chunk *c)
{
    struct replay *r = ud;
    if (r->n < MAX_REPLAY)
        r->c[r->n++] = c;
    r->total++;
}

static struct lh_chunkq *open_queue(const char *dir, struct replay *r)
{
    struct lh_chunkq_opts o = {.dir = dir, .max_size = 1 << 30, .on_chunk = on_chunk, .ud = r};
    struct lh_chunkq *q;
    char err[512];
    r->n = r->total = 0;
    return lh_chunkq_open(&o, &q, err, sizeof err) == 0 ? q : NULL;
}

/* Reads each replayed chunk back, acks the even ones; the number acked. */
static size_t consume(struct lh_chunkq *q, struct replay *r)
{
    size_t acked = 0;
    for (size_t i = 0; i < r->n; i++) {
        char *payload = NULL;
        int rc = lh_chunkq_read(q, r->c[i], &payload);
        if (rc == 0 && r->c[i]->payload_len)
            payload[r->c[i]->payload_len - 1] ^= 1; /* ASan checks the length */
        free(payload);
        if (i % 2 == 0) {
            if (lh_chunkq_ack(q, r->c[i]) != 0)
                abort();
            acked++;
        }
    }
    return acked;
}

static void append_one(struct lh_chunkq *q)
{
    static const struct lh_chunkq_pos pos = {1, 2, 3};
    const struct lh_chunk_meta m = {"ABCDEFGHIJKLMNOPQRSTUVWX", "fuzz", 4, 1, &pos, 1};
    struct lh_chunk *c;
    if (lh_chunkq_append(q, &m, "payload", 7, NULL, NULL, &c) != 0 || lh_chunkq_sync(q) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct replay r;
    const char *dir = lh_fuzz_dir("fuzz_chunkq");
    if (size < 3)
        return 0;
    size_t ack_len = (size_t)data[1] << 8 | data[2];
    if (ack_len > size - 3)
        ack_len = size - 3;
    size_t seg_len = size - 3 - ack_len;
    uint8_t *seg = malloc(seg_len ? seg_len : 1);
    if (!seg)
        abort();
    memcpy(seg, data + 3 + ack_len, seg_len);
    if (data[0] & F_FIX_SUM)
        fix_sums(seg, seg_len);
    lh_fuzz_dir_clear(dir);
    write_file(dir, "seg", seg, seg_len);
    if (ack_len)
        write_file(dir, "ack", data + 3, ack_len);
    free(seg);

    struct lh_chunkq *q = open_queue(dir, &r);
    if (!q)
        return 0; /* refused with an error: allowed, crashing is not */
    if (r.total > MAX_REPLAY) {
        lh_chunkq_close(q);
        return 0;
    }
    size_t expect = r.total - consume(q, &r) + 1;
    append_one(q);
    lh_chunkq_close(q);

    q = open_queue(dir, &r);
    if (!q || r.total != expect)
        abort();
    lh_chunkq_close(q);
    return 0;
}
