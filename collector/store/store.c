#include "collector/store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "collector/store/segread.h"
#include "collector/store/store_impl.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/base/metrics.h"
#include "common/codec/record.h"
#include "common/base/util.h"

#define STORE_LOG "store"

struct segment {
    uint64_t id;
    int64_t size;
    int64_t newest_recv_ns;  /* 0 when the segment holds no batch */
    int64_t counted;         /* damage before this offset has been counted */
};

/* A snapshot: the segments and their sizes when it was taken. Live ones
 * are listed in the store, so retention leaves what they hold. */
struct segsnap {
    struct lh_store_snap base;
    struct segsnap *next;
    struct segment *segs;    /* copies: id and size count */
    size_t nsegs;
};

struct segstore {
    struct lh_store base;    /* first: the handle callers hold */
    struct lh_store_opts o;
    char *dir;
    struct segment *segs;    /* ascending id; the last one takes appends */
    size_t nsegs, capsegs;
    int fd;                  /* the last segment, opened for appending; -1 until needed */
    struct segsnap *snaps;   /* live snapshots */
    uint8_t *rbuf;           /* scan buffer, grown to the largest record */
    size_t rcap;
    struct lh_store_stats st;
    struct {                 /* in o.metrics; NULL without */
        struct lh_metric *unreadable, *torn, *checksum, *undecodable;
    } m;
};

/* ---- file names --------------------------------------------------------- */

static int seg_path(const struct segstore *s, uint64_t id, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/seg-%016" PRIx64 ".lhs", s->dir, id);
    return n > 0 && (size_t)n < len ? LH_OK : LH_EINVAL;
}

static bool parse_seg_name(const char *name, uint64_t *id)
{
    char *end;
    if (strncmp(name, "seg-", 4) != 0 || strlen(name) != 4 + 16 + 4 ||
        strcmp(name + 20, ".lhs") != 0)
        return false;
    errno = 0;
    unsigned long long v = strtoull(name + 4, &end, 16);
    if (errno || end != name + 20)
        return false;
    *id = v;
    return true;
}

static int cmp_seg(const void *a, const void *b)
{
    const struct segment *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int push_seg(struct segstore *s, uint64_t id, int64_t size)
{
    if (s->nsegs == s->capsegs) {
        size_t cap = s->capsegs ? s->capsegs * 2 : 16;
        struct segment *g = realloc(s->segs, cap * sizeof *g);
        if (!g)
            return LH_ENOMEM;
        s->segs = g;
        s->capsegs = cap;
    }
    s->segs[s->nsegs++] = (struct segment){.id = id, .size = size};
    return LH_OK;
}

static int list_segments(struct segstore *s, char *err, size_t errlen)
{
    DIR *d = opendir(s->dir);
    if (!d) {
        snprintf(err, errlen, "cannot open store directory %s: %s", s->dir, strerror(errno));
        return LH_EIO;
    }
    int rc = LH_OK;
    struct dirent *de;
    while (rc == LH_OK && (de = readdir(d)) != NULL) {
        uint64_t id;
        if (parse_seg_name(de->d_name, &id))
            rc = push_seg(s, id, 0);
    }
    closedir(d);
    if (rc != LH_OK)
        snprintf(err, errlen, "out of memory listing %s", s->dir);
    else if (s->nsegs > 1)
        qsort(s->segs, s->nsegs, sizeof *s->segs, cmp_seg);
    return rc;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int open_segment_file(const struct segstore *s, uint64_t id, int flags, int *fd)
{
    char path[PATH_MAX];
    if (seg_path(s, id, path, sizeof path) != LH_OK)
        return LH_EINVAL;
    *fd = open(path, flags | O_CLOEXEC, 0640);
    return *fd < 0 ? LH_EIO : LH_OK;
}

/* ---- reading segments --------------------------------------------------- */

/* A walk over stored records: a load (cb NULL) notes each batch, a scan
 * hands each event its filter wants to cb. */
struct walk {
    msgpack_zone *zone;
    lh_store_scan_cb cb;
    void *ud;
    uint64_t seq;
    struct lh_store_filter filter;
};

static void note_batch(struct segstore *s, struct segment *seg, const struct lh_batch *b)
{
    s->st.batches++;
    if (b->recv_ns > seg->newest_recv_ns)
        seg->newest_recv_ns = b->recv_ns;
}

/* Damage is counted once, by the first walk that reads past it (the load,
 * or for records appended since, the first scan): seg->counted says how far
 * that is. */
static void note_damage(struct segstore *s, const struct segment *seg, int64_t off, int64_t n)
{
    if (off < seg->counted)
        return;
    LH_WARN(STORE_LOG, "segment %016" PRIx64 ": %lld damaged bytes at offset %lld hold no "
                       "record that passes its checksum; skipped, kept on disk",
            seg->id, (long long)n, (long long)off);
    s->st.corrupt++;
    lh_metric_add(s->m.checksum, 1);
}

static void note_unreadable(struct segstore *s, const struct segment *seg, int64_t off,
                            uint32_t lost, bool fresh)
{
    if (!fresh)
        return;
    LH_WARN(STORE_LOG, "segment %016" PRIx64 ": the batch at offset %lld passes its checksum "
                       "but %u of its events cannot be decoded; they are skipped, the rest "
                       "is read", seg->id, (long long)off, lost);
    s->st.unreadable_events += lost;
    lh_metric_add(s->m.unreadable, lost);
}

static int walk_batch(struct segstore *s, struct segment *seg, const struct lh_seg_record *r,
                      struct walk *w, bool fresh)
{
    struct lh_batch b;
    if (lh_batch_open(&b, r->payload, r->len, w->zone) != LH_OK) {
        if (fresh) {
            LH_WARN(STORE_LOG, "segment %016" PRIx64 ": the record at offset %lld passes its "
                               "checksum but is no batch; skipped, kept on disk", seg->id,
                    (long long)r->off);
            s->st.undecodable++;
            lh_metric_add(s->m.undecodable, 1);
        }
        return 0;
    }
    if (!w->cb)
        note_batch(s, seg, &b);
    struct lh_store_event ev;
    uint32_t lost;
    int rc, stop = 0;
    /* A stopped scan still walks the rest of a fresh batch, so that its
     * unreadable events are counted exactly once. */
    while ((rc = lh_batch_next(&b, w->zone, &ev, &lost)) != LH_AGAIN) {
        if (rc != LH_OK) {
            note_unreadable(s, seg, r->off, lost, fresh);
        } else if (w->cb && !stop) {
            ev.seq = w->seq++;
            int want = lh_store_filter_test(&w->filter, &ev);
            stop = want > 0 ? w->cb(w->ud, &ev) : want;
        }
        if (stop && !fresh)
            break;
    }
    return stop;
}

/* Walks every checksum-valid record in the first size bytes of seg; *tail
 * is where the bytes that hold none begin (size when there are none). */
static int walk_segment(struct segstore *s, struct segment *seg, int fd, int64_t size,
                        struct walk *w, int64_t *tail)
{
    struct lh_seg_cursor c = {.fd = fd, .size = size, .buf = &s->rbuf, .cap = &s->rcap};
    struct lh_seg_record r;
    int rc;
    while ((rc = lh_seg_next(&c, &r)) == LH_OK) {
        if (r.damaged)
            note_damage(s, seg, r.damaged_off, r.damaged);
        bool fresh = r.off >= seg->counted;
        rc = walk_batch(s, seg, &r, w, fresh);
        if (fresh)
            seg->counted = c.off;
        if (rc != 0)
            return rc;
    }
    *tail = c.off;
    return rc == LH_AGAIN ? 0 : rc;
}

/* ---- open --------------------------------------------------------------- */

/* The tail of the last segment holds no checksum-valid record: a write the
 * crash interrupted (never acked), so dropping it loses nothing. */
static int truncate_tail(struct segstore *s, struct segment *seg, int fd, int64_t off)
{
    LH_WARN(STORE_LOG, "segment %016" PRIx64 ": torn record at offset %lld, truncating %lld "
                       "bytes of unacknowledged tail (no record in it passes its checksum)",
            seg->id, (long long)off, (long long)(seg->size - off));
    if (ftruncate(fd, off) != 0 || fdatasync(fd) != 0)
        return LH_EIO;
    seg->size = off;
    s->st.torn++;
    lh_metric_add(s->m.torn, 1);
    return LH_OK;
}

static int load_segment(struct segstore *s, struct segment *seg, bool last, struct walk *w)
{
    int fd;
    int rc = open_segment_file(s, seg->id, last ? O_RDWR : O_RDONLY, &fd);
    struct stat sb;
    if (rc != LH_OK || fstat(fd, &sb) != 0) {
        if (rc == LH_OK)
            close(fd);
        return LH_EIO;
    }
    seg->size = sb.st_size;
    int64_t tail;
    rc = walk_segment(s, seg, fd, seg->size, w, &tail);
    /* Only the last segment takes appends, so only its tail can be torn; an
     * older one's is damage, kept. */
    if (rc == LH_OK && tail < seg->size && last)
        rc = truncate_tail(s, seg, fd, tail);
    else if (rc == LH_OK && tail < seg->size)
        note_damage(s, seg, tail, seg->size - tail);
    seg->counted = seg->size;
    close(fd);
    return rc;
}

static int load_all(struct segstore *s, char *err, size_t errlen)
{
    msgpack_zone *zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    if (!zone) {
        snprintf(err, errlen, "out of memory");
        return LH_ENOMEM;
    }
    struct walk w = {.zone = zone};
    int rc = LH_OK;
    for (size_t i = 0; i < s->nsegs && rc == LH_OK; i++) {
        rc = load_segment(s, &s->segs[i], i + 1 == s->nsegs, &w);
        if (rc != LH_OK)
            snprintf(err, errlen, "cannot read store segment %016" PRIx64 " in %s: %s",
                     s->segs[i].id, s->dir, rc == LH_EIO ? strerror(errno) : lh_strerror(rc));
    }
    msgpack_zone_free(zone);
    return rc;
}

/* Registered before the load, which counts what it finds. */
static int register_metrics(struct segstore *s, struct lh_metrics *reg)
{
    static const char damaged[] = "loghaul_collector_store_damaged_records_total";
    static const char help[] = "Store records found damaged: torn tails truncated at open "
                               "(never acknowledged), checksum failures and records that are "
                               "no batch skipped (kept on disk)";
    if (!reg)
        return LH_OK;
    s->m.unreadable = lh_metrics_get(reg, LH_METRIC_COUNTER,
                                     "loghaul_collector_store_unreadable_events_total", NULL,
                                     "Stored events the reader cannot decode (kept on disk, "
                                     "skipped by every search)");
    s->m.torn = lh_metrics_get(reg, LH_METRIC_COUNTER, damaged, "reason=\"torn\"", help);
    s->m.checksum = lh_metrics_get(reg, LH_METRIC_COUNTER, damaged, "reason=\"checksum\"", help);
    s->m.undecodable = lh_metrics_get(reg, LH_METRIC_COUNTER, damaged, "reason=\"undecodable\"",
                                      help);
    return s->m.unreadable && s->m.torn && s->m.checksum && s->m.undecodable ? LH_OK
                                                                            : LH_ENOMEM;
}

static void seg_close(struct lh_store *base);

static int seg_open(const struct lh_store_opts *o, struct lh_store **out, char *err,
                    size_t errlen)
{
    struct segstore *s = calloc(1, sizeof *s);
    int rc = LH_ENOMEM;
    if (!s || !(s->dir = strdup(o->dir)) ||
        register_metrics(s, o->metrics) != LH_OK) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->base.ops = &lh_store_segments;
    s->o = *o;
    s->o.dir = s->dir;
    if (s->o.segment_size <= 0)
        s->o.segment_size = LH_STORE_SEGMENT_SIZE;
    s->fd = -1;
    if (lh_mkdir_p(s->dir) != LH_OK) {
        snprintf(err, errlen, "cannot create store directory %s: %s", s->dir, strerror(errno));
        rc = LH_EIO;
        goto fail;
    }
    rc = list_segments(s, err, errlen);
    if (rc == LH_OK)
        rc = load_all(s, err, errlen);
    if (rc != LH_OK)
        goto fail;
    LH_INFO(STORE_LOG, "store %s: %zu segments, %" PRIu64 " batches%s", s->dir, s->nsegs,
            s->st.batches, s->st.torn ? " (a torn tail was truncated)" : "");
    *out = &s->base;
    return LH_OK;
fail:
    seg_close(s ? &s->base : NULL);
    return rc;
}

static void seg_close(struct lh_store *base)
{
    struct segstore *s = (struct segstore *)base;
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    free(s->segs);
    free(s->rbuf);
    free(s->dir);
    free(s);
}

/* ---- append ------------------------------------------------------------- */

static int new_segment(struct segstore *s)
{
    uint64_t id = s->nsegs ? s->segs[s->nsegs - 1].id + 1 : 1;
    int fd;
    if (open_segment_file(s, id, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, &fd) != LH_OK) {
        LH_ERROR(STORE_LOG, "cannot create segment %016" PRIx64 " in %s: %s", id, s->dir,
                 strerror(errno));
        return LH_EIO;
    }
    /* The new name must survive a crash before anything in it is acked. */
    if (lh_fsync_dir(s->dir) != LH_OK || push_seg(s, id, 0) != LH_OK) {
        close(fd);
        char path[PATH_MAX];
        if (seg_path(s, id, path, sizeof path) == LH_OK)
            unlink(path);
        return LH_EIO;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = fd;
    return LH_OK;
}

/* Makes s->fd the segment that takes a record of len bytes. */
static int active_segment(struct segstore *s, int64_t len)
{
    struct segment *last = s->nsegs ? &s->segs[s->nsegs - 1] : NULL;
    if (last && last->size > 0 && last->size + len > s->o.segment_size)
        return new_segment(s);
    if (!last)
        return new_segment(s);
    if (s->fd < 0 && open_segment_file(s, last->id, O_WRONLY | O_APPEND, &s->fd) != LH_OK) {
        LH_ERROR(STORE_LOG, "cannot open segment %016" PRIx64 " for appending: %s", last->id,
                 strerror(errno));
        return LH_EIO;
    }
    return LH_OK;
}

static int write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return LH_EIO;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return LH_OK;
}

static int pack_head(msgpack_sbuffer *sb, const char *chunk, size_t chunk_len, int64_t recv_ns,
                     size_t n_events)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, 3);
    rc |= lh_pack_cstr(&pk, "chunk");
    rc |= chunk ? lh_pack_strn(&pk, chunk, chunk_len) : msgpack_pack_nil(&pk);
    rc |= lh_pack_cstr(&pk, "recv");
    rc |= msgpack_pack_int64(&pk, recv_ns);
    rc |= lh_pack_cstr(&pk, "events");
    rc |= msgpack_pack_array(&pk, (uint32_t)n_events);
    return rc ? LH_ENOMEM : LH_OK;
}

/* Writes hdr+head+events at the end of the active segment and syncs it;
 * on any failure the segment is cut back to its old length. */
static int write_record(struct segstore *s, const msgpack_sbuffer *head, const char *events,
                        size_t events_len)
{
    size_t len = head->size + events_len;
    uint8_t hdr[LH_SEG_HEADER];
    uLong crc = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)head->data, (uInt)head->size);
    crc = crc32_z(crc, (const Bytef *)events, events_len);
    put_be32(hdr, (uint32_t)len);
    put_be32(hdr + 4, (uint32_t)crc);
    int rc = active_segment(s, LH_SEG_HEADER + (int64_t)len);
    if (rc != LH_OK)
        return rc;
    struct segment *seg = &s->segs[s->nsegs - 1];
    struct iovec iov[3] = {{hdr, sizeof hdr}, {head->data, head->size},
                           {(void *)events, events_len}};
    rc = write_all(s->fd, iov, 3);
    if (rc == LH_OK && fdatasync(s->fd) != 0)
        rc = LH_EIO;
    if (rc != LH_OK) {
        LH_ERROR(STORE_LOG, "append to segment %016" PRIx64 " failed: %s", seg->id,
                 strerror(errno));
        if (ftruncate(s->fd, seg->size) != 0)
            LH_ERROR(STORE_LOG, "cannot cut segment %016" PRIx64 " back: %s", seg->id,
                     strerror(errno));
        return LH_EIO;
    }
    seg->size += LH_SEG_HEADER + (int64_t)len;
    return LH_OK;
}

static int seg_append(struct lh_store *base, const struct lh_store_batch *b,
                      lh_store_done_cb done, void *ud)
{
    struct segstore *s = (struct segstore *)base;
    if (b->chunk && b->chunk_len > LH_STORE_MAX_CHUNK_ID)
        return LH_EINVAL;
    if (b->n_events > UINT32_MAX || b->events_len > LH_STORE_MAX_RECORD - 4096)
        return LH_ETOOBIG;
    msgpack_sbuffer head;
    msgpack_sbuffer_init(&head);
    int rc = pack_head(&head, b->chunk, b->chunk_len, b->recv_ns, b->n_events);
    if (rc == LH_OK)
        rc = write_record(s, &head, b->events, b->events_len);
    msgpack_sbuffer_destroy(&head);
    if (rc == LH_OK) {
        struct segment *seg = &s->segs[s->nsegs - 1];
        if (b->recv_ns > seg->newest_recv_ns)
            seg->newest_recv_ns = b->recv_ns;
        s->st.batches++;
    }
    done(ud, rc);
    return LH_OK;
}

/* ---- snapshots and scans ------------------------------------------------ */

static int seg_snapshot(struct lh_store *base, struct lh_store_snap **out)
{
    struct segstore *s = (struct segstore *)base;
    struct segsnap *sn = calloc(1, sizeof *sn);
    if (!sn || (s->nsegs && !(sn->segs = malloc(s->nsegs * sizeof *sn->segs)))) {
        free(sn);
        return LH_ENOMEM;
    }
    if (s->nsegs)
        memcpy(sn->segs, s->segs, s->nsegs * sizeof *sn->segs);
    sn->nsegs = s->nsegs;
    sn->base.store = base;
    sn->next = s->snaps;
    s->snaps = sn;
    *out = &sn->base;
    return LH_OK;
}

static void seg_release(struct lh_store_snap *base)
{
    struct segsnap *sn = (struct segsnap *)base;
    struct segstore *s = (struct segstore *)base->store;
    for (struct segsnap **p = &s->snaps; *p; p = &(*p)->next) {
        if (*p == sn) {
            *p = sn->next;
            break;
        }
    }
    free(sn->segs);
    free(sn);
}

/* The store's own entry for a segment a snapshot holds (retention leaves
 * those, so it is there). */
static struct segment *find_seg(struct segstore *s, uint64_t id)
{
    struct segment key = {.id = id};
    return bsearch(&key, s->segs, s->nsegs, sizeof *s->segs, cmp_seg);
}

/* Reads seg up to the size the snapshot saw, not past it. */
static int scan_segment(struct segstore *s, struct segment *seg, int64_t size, struct walk *w)
{
    int fd;
    if (open_segment_file(s, seg->id, O_RDONLY, &fd) != LH_OK)
        return LH_EIO;
    int64_t tail;
    int rc = walk_segment(s, seg, fd, size, w, &tail);
    if (rc == 0 && tail < size) {
        note_damage(s, seg, tail, size - tail);
        if (tail >= seg->counted)
            seg->counted = size;
    }
    close(fd);
    return rc;
}

static int seg_scan(struct lh_store_snap *base, const struct lh_store_scan_req *req,
                    lh_store_scan_cb cb, void *ud)
{
    struct segsnap *sn = (struct segsnap *)base;
    struct segstore *s = (struct segstore *)base->store;
    struct walk w = {.zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE), .cb = cb, .ud = ud};
    lh_store_filter_init(&w.filter, req);
    if (!w.zone)
        return LH_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < sn->nsegs && rc == 0; i++) {
        struct segment *seg = find_seg(s, sn->segs[i].id);
        rc = seg ? scan_segment(s, seg, sn->segs[i].size, &w) : LH_EIO;
    }
    msgpack_zone_free(w.zone);
    return rc;
}

/* ---- tail --------------------------------------------------------------- */

/* The chunk ids of seg's batches from offset off on. */
static int tail_segment(struct segstore *s, const struct segment *seg, int64_t off,
                        msgpack_zone *zone, lh_store_chunk_cb cb, void *ud)
{
    int fd;
    if (open_segment_file(s, seg->id, O_RDONLY, &fd) != LH_OK)
        return LH_EIO;
    struct lh_seg_cursor c = {.fd = fd, .size = seg->size, .off = off, .buf = &s->rbuf,
                              .cap = &s->rcap};
    struct lh_seg_record r;
    struct lh_batch b;
    int rc;
    while ((rc = lh_seg_next(&c, &r)) == LH_OK)
        if (lh_batch_open(&b, r.payload, r.len, zone) == LH_OK &&
            (rc = cb(ud, b.chunk, b.chunk_len, b.recv_ns)) != 0)
            break;
    close(fd);
    return rc == LH_AGAIN ? 0 : rc;
}

static int seg_tail(struct lh_store *base, const struct lh_store_pos *from,
                    lh_store_chunk_cb cb, void *ud, struct lh_store_pos *end)
{
    struct segstore *s = (struct segstore *)base;
    const struct segment *last = s->nsegs ? &s->segs[s->nsegs - 1] : NULL;
    *end = (struct lh_store_pos){last ? last->id : 0, last ? last->size : 0};
    if (!from)
        return 0;
    if (end->segment < from->segment ||
        (end->segment == from->segment && end->offset < from->offset))
        return LH_ENOENT;
    msgpack_zone *zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    if (!zone)
        return LH_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < s->nsegs && rc == 0; i++)
        if (s->segs[i].id >= from->segment)
            rc = tail_segment(s, &s->segs[i], s->segs[i].id == from->segment ? from->offset : 0,
                              zone, cb, ud);
    msgpack_zone_free(zone);
    return rc;
}

/* ---- retention ---------------------------------------------------------- */

static int64_t total_size(const struct segstore *s)
{
    int64_t t = 0;
    for (size_t i = 0; i < s->nsegs; i++)
        t += s->segs[i].size;
    return t;
}

static int drop_oldest(struct segstore *s, const char *why)
{
    char path[PATH_MAX];
    struct segment *seg = &s->segs[0];
    if (seg_path(s, seg->id, path, sizeof path) != LH_OK || unlink(path) != 0) {
        LH_ERROR(STORE_LOG, "retention: cannot remove segment %016" PRIx64 ": %s", seg->id,
                 strerror(errno));
        return LH_EIO;
    }
    LH_INFO(STORE_LOG, "retention: dropped segment %016" PRIx64 " (%lld bytes, %s)", seg->id,
            (long long)seg->size, why);
    memmove(s->segs, s->segs + 1, (s->nsegs - 1) * sizeof *s->segs);
    s->nsegs--;
    s->st.dropped_segments++;
    return LH_OK;
}

/* True when a live snapshot holds segment id. */
static bool pinned(const struct segstore *s, uint64_t id)
{
    for (const struct segsnap *sn = s->snaps; sn; sn = sn->next)
        if (sn->nsegs && sn->segs[0].id <= id)
            return true;
    return false;
}

static int seg_retain(struct lh_store *base, int64_t now_ns)
{
    struct segstore *s = (struct segstore *)base;
    int dropped = 0;
    int64_t total = total_size(s);
    while (s->nsegs > 1 && !pinned(s, s->segs[0].id)) {
        const struct segment *seg = &s->segs[0];
        bool old = s->o.max_age_ns > 0 && seg->newest_recv_ns < now_ns - s->o.max_age_ns;
        bool big = s->o.max_size > 0 && total > s->o.max_size;
        if (!old && !big)
            break;
        int64_t size = seg->size;
        if (drop_oldest(s, old ? "older than max_age" : "store over max_size") != LH_OK)
            return LH_EIO;
        total -= size;
        dropped++;
    }
    if (dropped && lh_fsync_dir(s->dir) != LH_OK)
        return LH_EIO;
    return dropped;
}

static void seg_stats(const struct lh_store *base, struct lh_store_stats *st)
{
    const struct segstore *s = (const struct segstore *)base;
    *st = s->st;
    st->segments = s->nsegs;
    st->bytes = (uint64_t)total_size(s);
}

const struct lh_store_ops lh_store_segments = {
    .name = "segments",
    .open = seg_open,
    .append = seg_append,
    .snapshot = seg_snapshot,
    .scan = seg_scan,
    .release = seg_release,
    .retain = seg_retain,
    .stats = seg_stats,
    .tail = seg_tail,
    .close = seg_close,
};
