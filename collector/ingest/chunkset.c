#include "collector/ingest/chunkset.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/base/err.h"

struct entry {
    struct entry *hnext;  /* bucket chain */
    struct entry *qnext;  /* arrival order, oldest first */
    int64_t recv_ns;
    size_t len;
    char id[];
};

struct lh_chunkset {
    struct entry **buckets;
    size_t nbuckets;      /* power of two */
    size_t count;
    struct entry *head, *tail;
};

#define INITIAL_BUCKETS 1024

static size_t bucket_of(const struct lh_chunkset *cs, const char *id, size_t len)
{
    /* Chunk ids are random or content hashes: crc32 spreads them well enough. */
    uLong h = crc32(0L, (const Bytef *)id, (uInt)len);
    return (size_t)h & (cs->nbuckets - 1);
}

struct lh_chunkset *lh_chunkset_new(void)
{
    struct lh_chunkset *cs = calloc(1, sizeof *cs);
    if (!cs)
        return NULL;
    cs->nbuckets = INITIAL_BUCKETS;
    cs->buckets = calloc(cs->nbuckets, sizeof *cs->buckets);
    if (!cs->buckets) {
        free(cs);
        return NULL;
    }
    return cs;
}

void lh_chunkset_free(struct lh_chunkset *cs)
{
    if (!cs)
        return;
    for (struct entry *e = cs->head, *next; e; e = next) {
        next = e->qnext;
        free(e);
    }
    free(cs->buckets);
    free(cs);
}

bool lh_chunkset_has(const struct lh_chunkset *cs, const char *id, size_t len, int64_t since_ns)
{
    for (const struct entry *e = cs->buckets[bucket_of(cs, id, len)]; e; e = e->hnext)
        if (e->len == len && e->recv_ns >= since_ns && memcmp(e->id, id, len) == 0)
            return true;
    return false;
}

static int grow(struct lh_chunkset *cs)
{
    size_t n = cs->nbuckets * 2;
    struct entry **b = calloc(n, sizeof *b);
    if (!b)
        return LH_ENOMEM;
    struct entry **old = cs->buckets;
    size_t oldn = cs->nbuckets;
    cs->buckets = b;
    cs->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        for (struct entry *e = old[i], *next; e; e = next) {
            next = e->hnext;
            size_t k = bucket_of(cs, e->id, e->len);
            e->hnext = b[k];
            b[k] = e;
        }
    }
    free(old);
    return LH_OK;
}

int lh_chunkset_add(struct lh_chunkset *cs, const char *id, size_t len, int64_t recv_ns)
{
    /* A failed grow only makes chains longer. */
    if (cs->count >= cs->nbuckets * 2)
        grow(cs);
    struct entry *e = malloc(sizeof *e + len);
    if (!e)
        return LH_ENOMEM;
    memcpy(e->id, id, len);
    e->len = len;
    e->recv_ns = recv_ns;
    e->qnext = NULL;
    size_t k = bucket_of(cs, id, len);
    e->hnext = cs->buckets[k];
    cs->buckets[k] = e;
    if (cs->tail)
        cs->tail->qnext = e;
    else
        cs->head = e;
    cs->tail = e;
    cs->count++;
    return LH_OK;
}

static void unlink_bucket(struct lh_chunkset *cs, const struct entry *e)
{
    struct entry **pp = &cs->buckets[bucket_of(cs, e->id, e->len)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
}

void lh_chunkset_expire(struct lh_chunkset *cs, int64_t before_ns)
{
    while (cs->head && cs->head->recv_ns < before_ns) {
        struct entry *e = cs->head;
        unlink_bucket(cs, e);
        cs->head = e->qnext;
        if (!cs->head)
            cs->tail = NULL;
        cs->count--;
        free(e);
    }
}

size_t lh_chunkset_count(const struct lh_chunkset *cs)
{
    return cs->count;
}

int lh_chunkset_each(const struct lh_chunkset *cs,
                     int (*cb)(void *ud, const char *id, size_t len, int64_t recv_ns), void *ud)
{
    for (const struct entry *e = cs->head; e; e = e->qnext) {
        int rc = cb(ud, e->id, e->len, e->recv_ns);
        if (rc != 0)
            return rc;
    }
    return 0;
}
