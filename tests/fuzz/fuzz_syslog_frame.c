/* libFuzzer harness: RFC 6587 framing alone, checked against itself. The
 * stream is decoded three ways -- in one feed, in the pieces the first
 * byte chooses, and a byte at a time -- and each must give the same
 * messages with the same truncated flags (the decoder is resumable),
 * and no message longer than max; a fourth decoding within memory limits
 * must agree too. The second byte chooses max. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/syslog_frame.h"

/* The messages of one decoding, concatenated as (length, flag, bytes). */
struct trace {
    unsigned char *p;
    size_t len, cap;
    size_t max;
    size_t count;
};

static void put(struct trace *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = (t->len + n) * 2 + 64;
        unsigned char *grown = realloc(t->p, cap);
        if (!grown)
            abort();
        t->p = grown;
        t->cap = cap;
    }
    memcpy(t->p + t->len, p, n);
    t->len += n;
}

static void record(void *ud, const char *p, size_t n, bool truncated)
{
    struct trace *t = ud;
    if (n > t->max) {
        fprintf(stderr, "message of %zu bytes (max %zu, truncated %d)\n", n, t->max, truncated);
        abort();
    }
    unsigned char flag = truncated;
    put(t, &n, sizeof n);
    put(t, &flag, 1);
    put(t, p, n);
    t->count++;
}

/* Feeds data in pieces: piece i is sizes[i % nsizes] bytes. */
static void decode(struct trace *t, size_t max, const uint8_t *data, size_t size,
                   const uint8_t *sizes, size_t nsizes)
{
    struct lh_syslog_frame f;
    lh_syslog_frame_init(&f, max);
    t->max = f.max;
    for (size_t i = 0, k = 0; i < size; k++) {
        size_t step = nsizes ? (size_t)sizes[k % nsizes] % 64 + 1 : size;
        if (step > size - i)
            step = size - i;
        if (lh_syslog_frame_feed(&f, (const char *)data + i, step, record, t) != 0)
            abort();
        i += step;
    }
    lh_syslog_frame_finish(&f, record, t);
    lh_syslog_frame_free(&f);
}

/* Fed within memory limits the sizes choose (0 to a few KiB): the buffer
 * never grows past one, LH_AGAIN stops at a byte the decoder resumes from
 * under the next limit; one of max + 1 never has to stop. */
static void decode_limited(struct trace *t, size_t max, const uint8_t *data, size_t size,
                           const uint8_t *sizes, size_t nsizes)
{
    struct lh_syslog_frame f;
    lh_syslog_frame_init(&f, max);
    t->max = f.max;
    for (size_t i = 0, k = 0; i < size; k++) {
        size_t limit = k % 4 == 3 ? f.max + 1 : (size_t)sizes[k % nsizes] * 16;
        size_t before = lh_syslog_frame_held(&f), used;
        int rc = lh_syslog_frame_feed_upto(&f, (const char *)data + i, size - i, limit, record,
                                           t, &used);
        size_t held = lh_syslog_frame_held(&f);
        if ((rc != 0 && rc != LH_AGAIN) || (rc == LH_AGAIN && limit > f.max) ||
            (held > limit && held > before) || (rc == 0) != (used == size - i))
            abort();
        i += used;
    }
    lh_syslog_frame_finish(&f, record, t);
    lh_syslog_frame_free(&f);
}

static void same(const struct trace *a, const struct trace *b, const char *how)
{
    if (a->len == b->len && a->count == b->count && (a->len == 0 || !memcmp(a->p, b->p, a->len)))
        return;
    fprintf(stderr, "decoding %s gave %zu messages, in one feed %zu\n", how, b->count, a->count);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t nsizes = data[0] % 8 + 1, max = (size_t)data[1] * 4 + 1;
    data += 2;
    size -= 2;
    if (nsizes > size)
        nsizes = size;
    const uint8_t *sizes = data;
    struct trace whole = {0}, pieces = {0}, bytes = {0}, limited = {0};
    decode(&whole, max, data, size, NULL, 0);
    decode(&pieces, max, data, size, sizes, nsizes);
    same(&whole, &pieces, "in pieces");
    decode_limited(&limited, max, data, size, sizes, nsizes);
    same(&whole, &limited, "within memory limits");
    if (size <= 4096) {
        static const uint8_t one[] = {0};
        decode(&bytes, max, data, size, one, 1);
        same(&whole, &bytes, "a byte at a time");
    }
    free(whole.p);
    free(pieces.p);
    free(bytes.p);
    free(limited.p);
    return 0;
}
