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

#include "collector/store/chunkset.h"
#include "common/err.h"
#include "common/log.h"
#include "common/record.h"
#include "common/util.h"

#define STORE_LOG "store"
#define REC_HEADER 8

struct segment {
    uint64_t id;
    int64_t size;
    int64_t newest_recv_ns;  /* 0 when the segment holds no batch */
};

struct lh_store {
    struct lh_store_opts o;
    char *dir;
    struct segment *segs;    /* ascending id; the last one takes appends */
    size_t nsegs, capsegs;
    int fd;                  /* the last segment, opened for appending; -1 until needed */
    struct lh_chunkset *chunks;
    uint8_t *rbuf;           /* scan buffer, grown to the largest record */
    size_t rcap;
    struct lh_store_stats st;
};

/* A decoded batch record; pointers into a msgpack zone. */
struct batch {
    const char *chunk;
    size_t chunk_len;
    int64_t recv_ns;
    const msgpack_object *events;  /* array */
};

/* ---- file names --------------------------------------------------------- */

static int seg_path(const struct lh_store *s, uint64_t id, char *buf, size_t len)
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

static int push_seg(struct lh_store *s, uint64_t id, int64_t size)
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

static int list_segments(struct lh_store *s, char *err, size_t errlen)
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

/* ---- reading records ---------------------------------------------------- */

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int read_full(int fd, void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return LH_EIO;
        if (n == 0)
            return LH_AGAIN;
        done += (size_t)n;
    }
    return LH_OK;
}

static int decode_batch(const msgpack_object *o, struct batch *b)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return LH_ECORRUPT;
    const msgpack_object *chunk = lh_map_get(o, "chunk");
    const msgpack_object *recv = lh_map_get(o, "recv");
    b->events = lh_map_get(o, "events");
    if (!recv || !b->events || b->events->type != MSGPACK_OBJECT_ARRAY ||
        (recv->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
         recv->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
        return LH_ECORRUPT;
    b->recv_ns = recv->via.i64;
    b->chunk = NULL;
    b->chunk_len = 0;
    if (chunk && chunk->type != MSGPACK_OBJECT_NIL && !lh_obj_bytes(chunk, &b->chunk, &b->chunk_len))
        return LH_ECORRUPT;
    return LH_OK;
}

/* Reads the record at off (file size limit) into s->rbuf and decodes it in
 * zone. *next is the offset after it. LH_AGAIN for a short (torn) record,
 * LH_ECORRUPT for a bad length, checksum or payload. */
static int read_record(struct lh_store *s, int fd, off_t off, int64_t limit, msgpack_zone *zone,
                       struct batch *b, off_t *next)
{
    uint8_t hdr[REC_HEADER];
    if (limit - off < REC_HEADER)
        return LH_AGAIN;
    int rc = read_full(fd, hdr, sizeof hdr, off);
    if (rc != LH_OK)
        return rc;
    uint32_t len = get_be32(hdr), crc = get_be32(hdr + 4);
    if (len == 0 || len > LH_STORE_MAX_RECORD)
        return LH_ECORRUPT;
    if (limit - off - REC_HEADER < (int64_t)len)
        return LH_AGAIN;
    if (len > s->rcap) {
        uint8_t *g = realloc(s->rbuf, len);
        if (!g)
            return LH_ENOMEM;
        s->rbuf = g;
        s->rcap = len;
    }
    rc = read_full(fd, s->rbuf, len, off + REC_HEADER);
    if (rc != LH_OK)
        return rc;
    if (crc32(crc32(0L, Z_NULL, 0), s->rbuf, len) != crc)
        return LH_ECORRUPT;
    msgpack_object obj;
    size_t used = 0;
    msgpack_zone_clear(zone);
    if (msgpack_unpack((const char *)s->rbuf, len, &used, zone, &obj) != MSGPACK_UNPACK_SUCCESS ||
        used != len || decode_batch(&obj, b) != LH_OK)
        return LH_ECORRUPT;
    *next = off + REC_HEADER + (off_t)len;
    return LH_OK;
}

/* ---- open --------------------------------------------------------------- */

static int open_segment_file(const struct lh_store *s, uint64_t id, int flags, int *fd)
{
    char path[PATH_MAX];
    if (seg_path(s, id, path, sizeof path) != LH_OK)
        return LH_EINVAL;
    *fd = open(path, flags | O_CLOEXEC, 0640);
    return *fd < 0 ? LH_EIO : LH_OK;
}

static void note_batch(struct lh_store *s, struct segment *seg, const struct batch *b)
{
    s->st.batches++;
    if (b->recv_ns > seg->newest_recv_ns)
        seg->newest_recv_ns = b->recv_ns;
    if (b->chunk && b->chunk_len <= LH_STORE_MAX_CHUNK_ID &&
        b->recv_ns >= lh_now_ns() - s->o.dedup_window_ns &&
        lh_chunkset_add(s->chunks, b->chunk, b->chunk_len, b->recv_ns) != LH_OK)
        LH_WARN(STORE_LOG, "out of memory rebuilding the dedup set: retries may be stored twice");
}

/* The good prefix of a bad last segment is kept; the rest is a write the
 * crash interrupted (never acked), so dropping it loses nothing. */
static int truncate_tail(struct lh_store *s, struct segment *seg, int fd, off_t off, int why)
{
    LH_WARN(STORE_LOG, "segment %016" PRIx64 ": %s record at offset %lld, truncating %lld "
                       "bytes of unacknowledged tail",
            seg->id, why == LH_AGAIN ? "torn" : "corrupt", (long long)off,
            (long long)(seg->size - off));
    if (ftruncate(fd, off) != 0 || fdatasync(fd) != 0)
        return LH_EIO;
    seg->size = off;
    s->st.torn++;
    return LH_OK;
}

static int load_segment(struct lh_store *s, struct segment *seg, bool last, msgpack_zone *zone)
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
    off_t off = 0;
    struct batch b;
    while (off < seg->size && (rc = read_record(s, fd, off, seg->size, zone, &b, &off)) == LH_OK)
        note_batch(s, seg, &b);
    if (off >= seg->size || rc == LH_OK) {
        rc = LH_OK;
    } else if (rc == LH_AGAIN || rc == LH_ECORRUPT) {
        if (last) {
            rc = truncate_tail(s, seg, fd, off, rc);
        } else {
            LH_WARN(STORE_LOG, "segment %016" PRIx64 ": corrupt record at offset %lld; the "
                               "rest of this segment cannot be read", seg->id, (long long)off);
            s->st.corrupt++;
            rc = LH_OK;
        }
    }
    close(fd);
    return rc;
}

static int load_all(struct lh_store *s, char *err, size_t errlen)
{
    msgpack_zone *zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    if (!zone) {
        snprintf(err, errlen, "out of memory");
        return LH_ENOMEM;
    }
    int rc = LH_OK;
    for (size_t i = 0; i < s->nsegs && rc == LH_OK; i++) {
        rc = load_segment(s, &s->segs[i], i + 1 == s->nsegs, zone);
        if (rc != LH_OK)
            snprintf(err, errlen, "cannot read store segment %016" PRIx64 " in %s: %s",
                     s->segs[i].id, s->dir, rc == LH_EIO ? strerror(errno) : lh_strerror(rc));
    }
    msgpack_zone_free(zone);
    return rc;
}

int lh_store_open(const struct lh_store_opts *o, struct lh_store **out, char *err,
                  size_t errlen)
{
    struct lh_store *s = calloc(1, sizeof *s);
    int rc = LH_ENOMEM;
    if (!s || !(s->dir = strdup(o->dir)) || !(s->chunks = lh_chunkset_new())) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
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
    LH_INFO(STORE_LOG, "store %s: %zu segments, %" PRIu64 " batches, %zu chunk ids for dedup%s",
            s->dir, s->nsegs, s->st.batches, lh_chunkset_count(s->chunks),
            s->st.torn ? " (a torn tail was truncated)" : "");
    *out = s;
    return LH_OK;
fail:
    lh_store_close(s);
    return rc;
}

void lh_store_close(struct lh_store *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    lh_chunkset_free(s->chunks);
    free(s->segs);
    free(s->rbuf);
    free(s->dir);
    free(s);
}

/* ---- append ------------------------------------------------------------- */

static int new_segment(struct lh_store *s)
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
static int active_segment(struct lh_store *s, int64_t len)
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
static int write_record(struct lh_store *s, const msgpack_sbuffer *head, const char *events,
                        size_t events_len)
{
    size_t len = head->size + events_len;
    uint8_t hdr[REC_HEADER];
    uLong crc = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)head->data, (uInt)head->size);
    crc = crc32_z(crc, (const Bytef *)events, events_len);
    put_be32(hdr, (uint32_t)len);
    put_be32(hdr + 4, (uint32_t)crc);
    int rc = active_segment(s, REC_HEADER + (int64_t)len);
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
    seg->size += REC_HEADER + (int64_t)len;
    return LH_OK;
}

int lh_store_append(struct lh_store *s, const char *chunk, size_t chunk_len, int64_t recv_ns,
                    const char *events, size_t events_len, size_t n_events)
{
    if (chunk && chunk_len > LH_STORE_MAX_CHUNK_ID)
        return LH_EINVAL;
    if (n_events > UINT32_MAX || events_len > LH_STORE_MAX_RECORD - 4096)
        return LH_ETOOBIG;
    msgpack_sbuffer head;
    msgpack_sbuffer_init(&head);
    int rc = pack_head(&head, chunk, chunk_len, recv_ns, n_events);
    if (rc == LH_OK)
        rc = write_record(s, &head, events, events_len);
    msgpack_sbuffer_destroy(&head);
    if (rc != LH_OK)
        return rc;
    struct segment *seg = &s->segs[s->nsegs - 1];
    if (recv_ns > seg->newest_recv_ns)
        seg->newest_recv_ns = recv_ns;
    s->st.batches++;
    lh_chunkset_expire(s->chunks, recv_ns - s->o.dedup_window_ns);
    if (chunk && lh_chunkset_add(s->chunks, chunk, chunk_len, recv_ns) != LH_OK)
        LH_WARN(STORE_LOG, "out of memory adding a chunk id: a retry of it may be stored twice");
    return LH_OK;
}

bool lh_store_has_chunk(struct lh_store *s, const char *chunk, size_t len, int64_t now_ns)
{
    return lh_chunkset_has(s->chunks, chunk, len, now_ns - s->o.dedup_window_ns);
}

/* ---- scan --------------------------------------------------------------- */

static int scan_batch(const struct batch *b, lh_store_scan_cb cb, void *ud, uint64_t *seq)
{
    const msgpack_object_array *a = &b->events->via.array;
    for (uint32_t i = 0; i < a->size; i++) {
        const msgpack_object *e = &a->ptr[i];
        struct lh_store_event ev = {.seq = (*seq)++};
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 3 ||
            !lh_obj_bytes(&e->via.array.ptr[0], &ev.tag, &ev.tag_len) ||
            lh_time_from_obj(&e->via.array.ptr[1], &ev.time_ns) != LH_OK ||
            e->via.array.ptr[2].type != MSGPACK_OBJECT_MAP)
            continue;
        ev.fields = &e->via.array.ptr[2];
        int rc = cb(ud, &ev);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int scan_segment(struct lh_store *s, const struct segment *seg, msgpack_zone *zone,
                        lh_store_scan_cb cb, void *ud, uint64_t *seq)
{
    int fd;
    if (open_segment_file(s, seg->id, O_RDONLY, &fd) != LH_OK)
        return LH_EIO;
    off_t off = 0;
    int rc = 0;
    struct batch b;
    while (rc == 0 && off < seg->size) {
        int rr = read_record(s, fd, off, seg->size, zone, &b, &off);
        if (rr == LH_ENOMEM || rr == LH_EIO) {
            rc = rr;
        } else if (rr != LH_OK) {
            s->st.corrupt++;
            break;
        } else {
            rc = scan_batch(&b, cb, ud, seq);
        }
    }
    close(fd);
    return rc;
}

int lh_store_scan(struct lh_store *s, lh_store_scan_cb cb, void *ud)
{
    msgpack_zone *zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    if (!zone)
        return LH_ENOMEM;
    uint64_t seq = 0;
    int rc = 0;
    for (size_t i = 0; i < s->nsegs && rc == 0; i++)
        rc = scan_segment(s, &s->segs[i], zone, cb, ud, &seq);
    msgpack_zone_free(zone);
    return rc;
}

/* ---- retention ---------------------------------------------------------- */

static int64_t total_size(const struct lh_store *s)
{
    int64_t t = 0;
    for (size_t i = 0; i < s->nsegs; i++)
        t += s->segs[i].size;
    return t;
}

static int drop_oldest(struct lh_store *s, const char *why)
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

int lh_store_retain(struct lh_store *s, int64_t now_ns)
{
    int dropped = 0;
    int64_t total = total_size(s);
    while (s->nsegs > 1) {
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

void lh_store_stats(const struct lh_store *s, struct lh_store_stats *st)
{
    *st = s->st;
    st->segments = s->nsegs;
    st->bytes = (uint64_t)total_size(s);
    st->chunks = lh_chunkset_count(s->chunks);
}
