#include "collector/ingest/dedup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "collector/ingest/chunkset.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/base/util.h"

#define DEDUP_LOG "dedup"
#define MAGIC "lhdedup"        /* with its NUL: 8 bytes */
#define HEADER_LEN 16
#define ENTRY_HEAD 8           /* u32 length, u32 crc */
#define BODY_FIXED 26          /* recv, segment, offset, chunk length */
#define BODY_MAX (BODY_FIXED + LH_STORE_MAX_CHUNK_ID)
/* Entries the file may hold beyond twice the window's before a rewrite. */
#define COMPACT_SLACK 4096
/* The index is read whole at open; one this large is not ours. */
#define MAX_INDEX (4LL * 1024 * 1024 * 1024)

struct lh_dedup {
    struct lh_dedup_opts o;
    char *path;
    int fd;                     /* the index, opened for appending */
    int64_t size;               /* bytes of it that hold whole entries */
    size_t entries;             /* entries in the file */
    struct lh_chunkset *set;
    struct lh_store_pos pos;    /* the newest entry's */
    struct lh_metric *damaged, *write_errors, *caught_up;
};

/* ---- encoding ----------------------------------------------------------- */

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t crc(const uint8_t *p, size_t len)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)len);
}

static void encode_header(uint8_t h[HEADER_LEN])
{
    memcpy(h, MAGIC, 8);
    put_be(h + 8, LH_DEDUP_VERSION, 4);
    put_be(h + 12, crc(h, 12), 4);
}

/* One entry into e (ENTRY_HEAD + BODY_MAX bytes); its length. */
static size_t encode_entry(uint8_t *e, const char *chunk, size_t len, int64_t recv_ns,
                           const struct lh_store_pos *pos)
{
    uint8_t *b = e + ENTRY_HEAD;
    put_be(b, (uint64_t)recv_ns, 8);
    put_be(b + 8, pos->segment, 8);
    put_be(b + 16, (uint64_t)pos->offset, 8);
    put_be(b + 24, len, 2);
    if (len)
        memcpy(b + BODY_FIXED, chunk, len);
    put_be(e, BODY_FIXED + len, 4);
    put_be(e + 4, crc(b, BODY_FIXED + len), 4);
    return ENTRY_HEAD + BODY_FIXED + len;
}

static bool pos_before(const struct lh_store_pos *a, const struct lh_store_pos *b)
{
    return a->segment != b->segment ? a->segment < b->segment : a->offset < b->offset;
}

/* ---- the set ------------------------------------------------------------ */

static int remember(struct lh_dedup *d, const char *chunk, size_t len, int64_t recv_ns)
{
    if (!chunk || len == 0 || lh_chunkset_has(d->set, chunk, len, recv_ns - d->o.window_ns))
        return LH_OK;
    lh_chunkset_expire(d->set, recv_ns - d->o.window_ns);
    return lh_chunkset_add(d->set, chunk, len, recv_ns);
}

bool lh_dedup_has(const struct lh_dedup *d, const char *chunk, size_t len, int64_t now_ns)
{
    return lh_chunkset_has(d->set, chunk, len, now_ns - d->o.window_ns);
}

size_t lh_dedup_count(const struct lh_dedup *d)
{
    return lh_chunkset_count(d->set);
}

/* ---- the file ----------------------------------------------------------- */

/* Appends one entry; a short or failed write is cut back so the file keeps
 * whole entries (the store's tail covers what is missing). */
static int write_entry(struct lh_dedup *d, const char *chunk, size_t len, int64_t recv_ns,
                       const struct lh_store_pos *pos)
{
    uint8_t e[ENTRY_HEAD + BODY_MAX];
    size_t n = encode_entry(e, chunk, len, recv_ns, pos);
    if (d->fd < 0 || lh_write_all(d->fd, e, n) != LH_OK) {
        lh_metric_add(d->write_errors, 1);
        LH_WARN(DEDUP_LOG, "cannot write the dedup index %s: %s; the next start reads more of "
                           "the store", d->path, strerror(errno));
        if (d->fd >= 0 && ftruncate(d->fd, d->size) != 0) {
            close(d->fd);
            d->fd = -1;
        }
        return LH_EIO;
    }
    d->size += (int64_t)n;
    d->entries++;
    return LH_OK;
}

/* The file as a compaction writes it: every entry carries the newest
 * position, true of the file as a whole since it is written at once. */
struct rewrite {
    uint8_t *buf;
    size_t len, cap;
    struct lh_store_pos pos;
};

static int reserve(struct rewrite *w, size_t more)
{
    if (w->cap - w->len >= more)
        return LH_OK;
    size_t cap = w->cap * 2 + more;
    uint8_t *g = realloc(w->buf, cap);
    if (!g)
        return LH_ENOMEM;
    w->buf = g;
    w->cap = cap;
    return LH_OK;
}

static int rewrite_put(void *ud, const char *id, size_t len, int64_t recv_ns)
{
    struct rewrite *w = ud;
    if (reserve(w, ENTRY_HEAD + BODY_MAX) != LH_OK)
        return LH_ENOMEM;
    w->len += encode_entry(w->buf + w->len, id, len, recv_ns, &w->pos);
    return LH_OK;
}

static int reopen_append(struct lh_dedup *d)
{
    if (d->fd >= 0)
        close(d->fd);
    d->fd = open(d->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    return d->fd < 0 ? LH_EIO : LH_OK;
}

/* Writes the file anew, atomically: the header, the set's ids oldest
 * first, and an entry without id so that even an empty set keeps the
 * position the next open catches up from. */
static int compact(struct lh_dedup *d)
{
    struct rewrite w = {.pos = d->pos};
    int rc = reserve(&w, HEADER_LEN);
    if (rc == LH_OK) {
        encode_header(w.buf);
        w.len = HEADER_LEN;
        rc = lh_chunkset_each(d->set, rewrite_put, &w);
    }
    if (rc == LH_OK)
        rc = rewrite_put(&w, NULL, 0, lh_now_ns());
    if (rc == LH_OK)
        rc = lh_write_file_atomic(d->path, w.buf, w.len);
    if (rc == LH_OK)
        rc = reopen_append(d);
    if (rc == LH_OK) {
        d->size = (int64_t)w.len;
        d->entries = lh_chunkset_count(d->set) + 1;
    } else {
        LH_WARN(DEDUP_LOG, "cannot rewrite the dedup index %s: %s", d->path, lh_strerror(rc));
    }
    free(w.buf);
    return rc;
}

int lh_dedup_add(struct lh_dedup *d, const char *chunk, size_t len, int64_t recv_ns,
                 const struct lh_store_pos *from)
{
    if (chunk && len > LH_STORE_MAX_CHUNK_ID)
        return LH_EINVAL;
    int rc = remember(d, chunk, len, recv_ns);
    if (pos_before(&d->pos, from))
        d->pos = *from;
    write_entry(d, chunk, len, recv_ns, &d->pos);
    if (d->entries > 2 * lh_chunkset_count(d->set) + COMPACT_SLACK)
        compact(d);
    return rc;
}

/* ---- open --------------------------------------------------------------- */

/* Reads the entries of buf[0..len) past the header into the set; *good is
 * where the whole, checksum-valid entries end. */
static int load_entries(struct lh_dedup *d, const uint8_t *buf, size_t len, size_t *good,
                        int64_t now)
{
    size_t off = HEADER_LEN;
    while (len - off >= ENTRY_HEAD) {
        size_t n = (size_t)get_be(buf + off, 4);
        const uint8_t *b = buf + off + ENTRY_HEAD;
        if (n < BODY_FIXED || n > BODY_MAX || n > len - off - ENTRY_HEAD ||
            get_be(buf + off + 4, 4) != crc(b, n) || get_be(b + 24, 2) != n - BODY_FIXED)
            break;
        int64_t recv = (int64_t)get_be(b, 8);
        struct lh_store_pos p = {get_be(b + 8, 8), (int64_t)get_be(b + 16, 8)};
        if (pos_before(&d->pos, &p))
            d->pos = p;
        if (recv >= now - d->o.window_ns &&
            remember(d, (const char *)b + BODY_FIXED, n - BODY_FIXED, recv) != LH_OK)
            return LH_ENOMEM;
        off += ENTRY_HEAD + n;
        d->entries++;
    }
    *good = off;
    return LH_OK;
}

/* An index that cannot be read at all is kept aside, for a look. */
static void set_aside(const struct lh_dedup *d, const char *why)
{
    char bad[4096];
    snprintf(bad, sizeof bad, "%s.bad", d->path);
    LH_WARN(DEDUP_LOG, "dedup index %s %s: renamed to %s, rebuilt from the store", d->path, why,
            bad);
    lh_metric_add(d->damaged, 1);
    if (rename(d->path, bad) != 0)
        unlink(d->path);
}

static int load_file(struct lh_dedup *d, int64_t now, char *err, size_t errlen)
{
    char *data = NULL;
    size_t len = 0, good;
    int rc = lh_read_file(d->path, (size_t)MAX_INDEX, &data, &len);
    if (rc == LH_ENOENT)
        return LH_OK;
    if (rc != LH_OK) {
        snprintf(err, errlen, "cannot read the dedup index %s: %s", d->path, lh_strerror(rc));
        return rc;
    }
    const uint8_t *buf = (const uint8_t *)data;
    if (len < HEADER_LEN || memcmp(buf, MAGIC, 8) != 0 || get_be(buf + 12, 4) != crc(buf, 12)) {
        set_aside(d, "has no valid header");
    } else if (get_be(buf + 8, 4) < LH_DEDUP_VERSION) {
        set_aside(d, "is of a version no reader is left for");
    } else if (get_be(buf + 8, 4) > LH_DEDUP_VERSION) {
        snprintf(err, errlen, "dedup index %s is version %" PRIu64 ", this collector reads "
                              "version %d: left untouched", d->path, get_be(buf + 8, 4),
                 LH_DEDUP_VERSION);
        rc = LH_ECORRUPT;
    } else if ((rc = load_entries(d, buf, len, &good, now)) == LH_OK) {
        d->size = (int64_t)good;
        if (good < len) {
            LH_WARN(DEDUP_LOG, "dedup index %s: %zu bytes at offset %zu hold no whole entry; "
                               "dropped, the store's tail covers them", d->path, len - good,
                    good);
            lh_metric_add(d->damaged, 1);
        }
    }
    free(data);
    return rc;
}

static int catch_up_one(void *ud, const char *chunk, size_t len, int64_t recv_ns)
{
    struct lh_dedup *d = ud;
    if (recv_ns < lh_now_ns() - d->o.window_ns ||
        (chunk && lh_chunkset_has(d->set, chunk, len, recv_ns - d->o.window_ns)))
        return LH_OK;
    lh_metric_add(d->caught_up, 1);
    return remember(d, chunk, len, recv_ns);
}

/* Reads the store's tail from the newest entry's position; an index ahead
 * of the store is thrown away and the whole store read instead. */
static int catch_up(struct lh_dedup *d, char *err, size_t errlen)
{
    struct lh_store_pos end;
    int rc = lh_store_tail(d->o.store, &d->pos, catch_up_one, d, &end);
    if (rc == LH_ENOENT) {
        LH_WARN(DEDUP_LOG, "dedup index %s names store position %" PRIu64 ":%lld past the "
                           "store's end %" PRIu64 ":%lld (was the store replaced?): rebuilt "
                           "from the whole store", d->path, d->pos.segment,
                (long long)d->pos.offset, end.segment, (long long)end.offset);
        lh_metric_add(d->damaged, 1);
        lh_chunkset_free(d->set);
        d->set = lh_chunkset_new();
        d->pos = (struct lh_store_pos){0, 0};
        rc = d->set ? lh_store_tail(d->o.store, &d->pos, catch_up_one, d, &end) : LH_ENOMEM;
    }
    if (rc != LH_OK) {
        snprintf(err, errlen, "dedup: cannot read the store's tail: %s", lh_strerror(rc));
        return rc;
    }
    d->pos = end;
    return LH_OK;
}

static int register_metrics(struct lh_dedup *d, struct lh_metrics *reg)
{
    if (!reg)
        return LH_OK;
    d->damaged = lh_metrics_get(reg, LH_METRIC_COUNTER,
                                "loghaul_collector_dedup_index_damaged_total", NULL,
                                "dedup index damage found at open (cut or rebuilt from the "
                                "store)");
    d->write_errors = lh_metrics_get(reg, LH_METRIC_COUNTER,
                                     "loghaul_collector_dedup_index_write_errors_total", NULL,
                                     "dedup index writes that failed (the next start reads "
                                     "more of the store)");
    d->caught_up = lh_metrics_get(reg, LH_METRIC_COUNTER,
                                  "loghaul_collector_dedup_caught_up_total", NULL,
                                  "chunk ids found in the store's tail at start, missing "
                                  "from the dedup index");
    return d->damaged && d->write_errors && d->caught_up ? LH_OK : LH_ENOMEM;
}

int lh_dedup_open(const struct lh_dedup_opts *o, struct lh_dedup **out, char *err,
                  size_t errlen)
{
    struct lh_dedup *d = calloc(1, sizeof *d);
    int rc = LH_ENOMEM;
    if (!d || !(d->path = strdup(o->path)) || !(d->set = lh_chunkset_new()) ||
        register_metrics(d, o->metrics) != LH_OK) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    d->o = *o;
    d->o.path = d->path;
    d->fd = -1;
    rc = load_file(d, lh_now_ns(), err, errlen);
    if (rc == LH_OK && o->store)
        rc = catch_up(d, err, errlen);
    /* The file starts anew from the set: expired entries go, and a missing
     * or damaged file gets its header. */
    if (rc == LH_OK && (rc = compact(d)) != LH_OK)
        snprintf(err, errlen, "cannot write the dedup index %s: %s", d->path, lh_strerror(rc));
    if (rc != LH_OK)
        goto fail;
    LH_INFO(DEDUP_LOG, "dedup index %s: %zu chunk ids within the window", d->path,
            lh_chunkset_count(d->set));
    *out = d;
    return LH_OK;
fail:
    lh_dedup_close(d);
    return rc;
}

void lh_dedup_close(struct lh_dedup *d)
{
    if (!d)
        return;
    if (d->fd >= 0) {
        fdatasync(d->fd);
        close(d->fd);
    }
    lh_chunkset_free(d->set);
    free(d->path);
    free(d);
}
