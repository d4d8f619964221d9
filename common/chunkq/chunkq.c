#include "common/chunkq/chunkq.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "common/base/err.h"
#include "common/base/log.h"
#include "common/base/util.h"

#define CQ_LOG "chunkq"
#define CQ_MAGIC "LHQC"
#define CQ_VERSION 2 /* 2: XXH3 checksums (1 had zlib CRC32) */
#define CQ_POS_LEN 24
#define CQ_IO_STEP (64u << 10)
#define CQ_SEG_MIN (64LL << 10)
#define CQ_SEG_MAX (64LL << 20)

enum { CQ_SYNCED, CQ_UNSYNCED, CQ_IN_JOB };

struct chunkq_seg {
    struct chunkq_seg *next;
    uint64_t no;
    int fd;
    int ack_fd;                 /* -1 until the first ack */
    uint64_t size;
    uint32_t n_live;            /* chunks not consumed */
    bool data_dirty, ack_dirty;
    /* The furthest position per input file of its chunks: the segment may
     * go only once the owner's checkpoint covers them all. */
    struct lh_chunkq_pos *pos;
    size_t n_pos;
    bool pos_lost;              /* out of memory noting them: goes only first */
};

/* A released segment whose files wait to be unlinked: an unlink ends in
 * the filesystem freeing (on some mounts discarding) every block, which
 * is slow enough to keep off the owner's loop; the next sync job does it. */
struct chunkq_gone {
    struct chunkq_gone *next;
    char path[]; /* DIR/q-<no> without the extension */
};

struct lh_chunkq {
    struct lh_chunkq_opts o;
    struct chunkq_gone *gone;
    char *dir;
    int64_t seg_size;
    struct chunkq_seg *segs, *active;
    struct lh_chunk *head, *tail;             /* live chunks, oldest first */
    struct lh_chunk *unsynced, *unsynced_tail;
    struct lh_chunk *syncing;                 /* the chunks of the job under way */
    uint64_t next_no;
    bool dir_dirty;
    struct lh_chunkq_stats st;
};

/* A record header as read back. */
struct hdr {
    uint16_t tag_len;
    uint32_t n_pos, payload_len, n_records, crc;
    char id[LH_CHUNK_ID_LEN + 1];
    uint32_t hdr_len, rec_len;
};

/* ---- encoding ----------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* Validates the fixed part; the lengths are checked against their caps
 * before anything is allocated from them. */
static int parse_fixed(const uint8_t *p, struct hdr *h)
{
    if (memcmp(p, CQ_MAGIC, 4) != 0 || (p[4] << 8 | p[5]) != CQ_VERSION)
        return LH_ECORRUPT;
    h->tag_len = (uint16_t)(p[6] << 8 | p[7]);
    h->n_pos = get32(p + 8);
    h->payload_len = get32(p + 12);
    h->n_records = get32(p + 16);
    h->crc = get32(p + 20);
    memcpy(h->id, p + 24, LH_CHUNK_ID_LEN);
    h->id[LH_CHUNK_ID_LEN] = '\0';
    if (h->n_pos > LH_CHUNKQ_MAX_POS || h->payload_len > LH_CHUNKQ_MAX_PAYLOAD)
        return LH_ECORRUPT;
    h->hdr_len = LH_CHUNKQ_HDR_FIXED + h->tag_len + h->n_pos * CQ_POS_LEN;
    h->rec_len = h->hdr_len + h->payload_len;
    return LH_OK;
}

/* The chunk checksum: XXH3-64 of the header (its checksum field read as
 * zero) and the payload, folded to 32 bits. XXH3 runs at memory speed, where
 * zlib's CRC32 cost the agent a fifth of its CPU. */
struct cq_sum {
    XXH3_state_t st;
};

static void sum_begin(struct cq_sum *s, const uint8_t *hdr, size_t len)
{
    static const uint8_t zero[4];
    XXH3_64bits_reset(&s->st);
    XXH3_64bits_update(&s->st, hdr, 20);
    XXH3_64bits_update(&s->st, zero, 4);
    XXH3_64bits_update(&s->st, hdr + 24, len - 24);
}

static void sum_add(struct cq_sum *s, const void *data, size_t len)
{
    XXH3_64bits_update(&s->st, data, len);
}

static uint32_t sum_end(struct cq_sum *s)
{
    uint64_t h = XXH3_64bits_digest(&s->st);
    return (uint32_t)(h ^ (h >> 32));
}

/* Checksum of a whole record held in memory. */
static uint32_t record_sum(const uint8_t *rec, const struct hdr *h)
{
    struct cq_sum sum;
    sum_begin(&sum, rec, h->hdr_len);
    sum_add(&sum, rec + h->hdr_len, h->payload_len);
    return sum_end(&sum);
}

/* ---- files -------------------------------------------------------------- */

static void seg_path(const struct lh_chunkq *q, uint64_t no, const char *ext, char *buf,
                     size_t len)
{
    snprintf(buf, len, "%s/q-%016" PRIx64 ".%s", q->dir, no, ext);
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return LH_EIO;
        done += (size_t)n;
    }
    return LH_OK;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return LH_EIO;
        done += (size_t)n;
    }
    return LH_OK;
}

static void seg_free(struct chunkq_seg *s)
{
    if (s->fd >= 0)
        close(s->fd);
    if (s->ack_fd >= 0)
        close(s->ack_fd);
    free(s->pos);
    free(s);
}

static void seg_note_pos(struct chunkq_seg *s, const struct lh_chunkq_pos *p)
{
    for (size_t i = 0; i < s->n_pos; i++) {
        if (s->pos[i].dev == p->dev && s->pos[i].ino == p->ino) {
            if (s->pos[i].end < p->end)
                s->pos[i].end = p->end;
            return;
        }
    }
    struct lh_chunkq_pos *v = realloc(s->pos, (s->n_pos + 1) * sizeof *v);
    if (!v) {
        s->pos_lost = true;
        return;
    }
    s->pos = v;
    s->pos[s->n_pos++] = *p;
}

static struct chunkq_seg *seg_add(struct lh_chunkq *q, uint64_t no, int fd, uint64_t size)
{
    struct chunkq_seg *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->no = no;
    s->fd = fd;
    s->ack_fd = -1;
    s->size = size;
    struct chunkq_seg **p = &q->segs;
    while (*p)
        p = &(*p)->next;
    *p = s;
    q->st.segments++;
    q->st.bytes += size;
    if (no >= q->next_no)
        q->next_no = no + 1;
    return s;
}

/* Deletes a consumed segment: the caller saves first what it derived from
 * the positions in it. */
/* Unlinks BASE.seg and BASE.ack. */
static void unlink_seg(const char *base)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s.seg", base);
    if (unlink(path) != 0)
        LH_WARN(CQ_LOG, "removing %s: %m", path);
    snprintf(path, sizeof path, "%s.ack", base);
    unlink(path);
}

/* Unlinks and frees a list of released segments. */
static void gone_run(struct chunkq_gone *g)
{
    while (g) {
        struct chunkq_gone *next = g->next;
        unlink_seg(g->path);
        free(g);
        g = next;
    }
}

/* Deletes a consumed segment (its files go with the next sync job); the
 * caller has saved first what it derived from the positions in it. */
static void seg_release(struct lh_chunkq *q, struct chunkq_seg *s)
{
    char base[PATH_MAX];
    int n = snprintf(base, sizeof base, "%s/q-%016" PRIx64, q->dir, s->no);
    struct chunkq_gone *g = malloc(sizeof *g + (size_t)n + 1);
    if (g) {
        memcpy(g->path, base, (size_t)n + 1);
        g->next = q->gone;
        q->gone = g;
    } else {
        unlink_seg(base);
    }
    for (struct chunkq_seg **p = &q->segs; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    if (q->active == s)
        q->active = NULL;
    q->st.segments--;
    q->st.bytes -= s->size;
    q->dir_dirty = true;
    seg_free(s);
}

static bool seg_unsynced(const struct lh_chunkq *q, const struct chunkq_seg *s)
{
    for (const struct lh_chunk *c = q->unsynced; c; c = c->unsynced)
        if (c->seg == s)
            return true;
    for (const struct lh_chunk *c = q->syncing; c; c = c->unsynced)
        if (c->seg == s)
            return true;
    return false;
}

/* Whether a consumed segment may go: its positions must be covered by the
 * owner's checkpoint, or a restart would read again what they cover (the
 * checkpoint may lag while an older chunk is held). */
static bool seg_covered(const struct lh_chunkq *q, const struct chunkq_seg *s)
{
    if (s->pos_lost)
        return q->segs == s;
    for (size_t i = 0; i < s->n_pos && q->o.covered; i++)
        if (!q->o.covered(q->o.ud, &s->pos[i]))
            return false;
    return true;
}

static bool seg_goes(const struct lh_chunkq *q, const struct chunkq_seg *s)
{
    return s->n_live == 0 && !seg_unsynced(q, s) && seg_covered(q, s);
}

/* Releases every consumed, covered segment, the owner saving its state
 * once first (the positions vanish with them). */
static void release_idle(struct lh_chunkq *q)
{
    bool saved = false;
    for (struct chunkq_seg *s = q->segs, *next; s; s = next) {
        next = s->next;
        if (!seg_goes(q, s))
            continue;
        if (!saved && q->o.on_release)
            q->o.on_release(q->o.ud);
        saved = true;
        seg_release(q, s);
    }
}

/* ---- chunks ------------------------------------------------------------- */

static struct lh_chunk *chunk_new(struct lh_chunkq *q, struct chunkq_seg *s, uint64_t off,
                                  const struct hdr *h)
{
    struct lh_chunk *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    memcpy(c->id, h->id, sizeof c->id);
    c->n_records = h->n_records;
    c->payload_len = h->payload_len;
    c->seg = s;
    c->off = off;
    c->rec_len = h->rec_len;
    c->prev = q->tail;
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
    s->n_live++;
    q->st.chunks++;
    return c;
}

static void chunk_unlink(struct lh_chunkq *q, struct lh_chunk *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        q->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        q->tail = c->prev;
    c->seg->n_live--;
    q->st.chunks--;
}

/* ---- replay ------------------------------------------------------------- */

/* Checks the record at off: 0 with h and its variable header in *var
 * (malloc'd), LH_ECORRUPT, or LH_EIO. */
static int check_record(int fd, uint64_t off, uint64_t size, struct hdr *h, uint8_t **var)
{
    uint8_t fixed[LH_CHUNKQ_HDR_FIXED];
    *var = NULL;
    if (size - off < LH_CHUNKQ_HDR_FIXED)
        return LH_ECORRUPT;
    if (pread_all(fd, fixed, sizeof fixed, off) != 0)
        return LH_EIO;
    if (parse_fixed(fixed, h) != 0 || h->rec_len > size - off)
        return LH_ECORRUPT;
    uint8_t *hb = malloc(h->hdr_len);
    uint8_t *buf = malloc(CQ_IO_STEP);
    int rc = hb && buf ? LH_OK : LH_ENOMEM;
    if (rc == 0) {
        memcpy(hb, fixed, sizeof fixed);
        rc = pread_all(fd, hb + sizeof fixed, h->hdr_len - sizeof fixed, off + sizeof fixed);
    }
    struct cq_sum sum;
    if (rc == 0)
        sum_begin(&sum, hb, h->hdr_len);
    for (uint32_t done = 0; rc == 0 && done < h->payload_len;) {
        uint32_t n = h->payload_len - done < CQ_IO_STEP ? h->payload_len - done : CQ_IO_STEP;
        rc = pread_all(fd, buf, n, off + h->hdr_len + done);
        if (rc == 0)
            sum_add(&sum, buf, n);
        done += n;
    }
    free(buf);
    if (rc == 0 && sum_end(&sum) != h->crc)
        rc = LH_ECORRUPT;
    if (rc == 0)
        *var = hb;
    else
        free(hb);
    return rc;
}

/* Offset of the next magic at or after from, or size when there is none. */
static uint64_t find_magic(int fd, uint64_t from, uint64_t size)
{
    uint8_t *buf = malloc(CQ_IO_STEP);
    uint64_t found = size;
    while (buf && from + 4 <= size) {
        size_t n = size - from < CQ_IO_STEP ? (size_t)(size - from) : CQ_IO_STEP;
        if (pread_all(fd, buf, n, from) != 0)
            break;
        const uint8_t *m = memmem(buf, n, CQ_MAGIC, 4);
        if (m) {
            found = from + (uint64_t)(m - buf);
            break;
        }
        from += n - 3;
    }
    free(buf);
    return found;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The ack file of a segment as read at open. */
struct acks {
    uint64_t *v;        /* consumed offsets, sorted */
    size_t n;
    uint64_t *kept;     /* those that name an intact record, in file order */
    size_t n_kept;
    bool tidy;          /* whole entries only, no more than the segment can hold */
};

static void acks_free(struct acks *a)
{
    free(a->v);
    free(a->kept);
}

/* Reads the ack file of segment no. At most one ack per record, and a
 * record is at least the fixed header: bytes past that, and a partial
 * entry (a torn or short write), are damage and not read. */
static int load_acks(struct lh_chunkq *q, uint64_t no, uint64_t seg_size, struct acks *a)
{
    char path[PATH_MAX];
    *a = (struct acks){.tidy = true};
    seg_path(q, no, "ack", path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? LH_OK : LH_EIO;
    uint64_t cap = (seg_size / LH_CHUNKQ_HDR_FIXED + 1) * 8;
    struct stat sb;
    int rc = fstat(fd, &sb) == 0 ? LH_OK : LH_EIO;
    uint64_t len = rc == LH_OK ? (uint64_t)sb.st_size : 0;
    if (len > cap || len % 8 != 0) {
        LH_WARN(CQ_LOG, "%s: %" PRIu64 " bytes are not whole acks of this segment; reading "
                        "%" PRIu64 " (chunks may be sent again, the collector drops copies)",
                path, len, len > cap ? cap : len - len % 8);
        a->tidy = false;
        len = len > cap ? cap : len - len % 8;
    }
    a->n = (size_t)(len / 8);
    uint8_t *data = malloc(len ? (size_t)len : 1);
    a->v = malloc((a->n ? a->n : 1) * sizeof *a->v);
    a->kept = malloc((a->n ? a->n : 1) * sizeof *a->kept);
    if (rc == LH_OK && (!data || !a->v || !a->kept))
        rc = LH_ENOMEM;
    if (rc == LH_OK)
        rc = pread_all(fd, data, (size_t)len, 0);
    close(fd);
    for (size_t i = 0; rc == LH_OK && i < a->n; i++)
        a->v[i] = get64(data + 8 * i);
    free(data);
    if (rc != LH_OK) {
        acks_free(a);
        return rc;
    }
    qsort(a->v, a->n, sizeof *a->v, cmp_u64);
    return LH_OK;
}

/* An ack file holding damage, or entries naming no intact record, is
 * written again with just the acks that count, so that appends after it
 * stay readable. A failure is only logged: the old file still reads. */
static void tidy_acks(struct lh_chunkq *q, const struct chunkq_seg *s, const struct acks *a)
{
    char path[PATH_MAX];
    seg_path(q, s->no, "ack", path, sizeof path);
    uint8_t *buf = malloc(a->n_kept ? a->n_kept * 8 : 1);
    int rc = buf ? LH_OK : LH_ENOMEM;
    for (size_t i = 0; rc == LH_OK && i < a->n_kept; i++)
        put64(buf + 8 * i, a->kept[i]);
    if (rc == LH_OK)
        rc = lh_write_file_atomic(path, buf, a->n_kept * 8);
    free(buf);
    if (rc != LH_OK)
        LH_WARN(CQ_LOG, "%s: cannot write the acks again: %s", path, lh_strerror(rc));
}

static int replay_record(struct lh_chunkq *q, struct chunkq_seg *s, uint64_t off,
                         const struct hdr *h, const uint8_t *var, struct acks *a)
{
    const uint8_t *pp = var + LH_CHUNKQ_HDR_FIXED + h->tag_len;
    for (uint32_t i = 0; i < h->n_pos; i++) {
        struct lh_chunkq_pos p = {get64(pp), get64(pp + 8), get64(pp + 16)};
        if (q->o.on_pos)
            q->o.on_pos(q->o.ud, &p);
        seg_note_pos(s, &p);
        pp += CQ_POS_LEN;
    }
    if (a->n && bsearch(&off, a->v, a->n, sizeof *a->v, cmp_u64)) {
        a->kept[a->n_kept++] = off;
        return LH_OK;
    }
    struct lh_chunk *c = chunk_new(q, s, off, h);
    if (!c)
        return LH_ENOMEM;
    if (q->o.on_chunk)
        q->o.on_chunk(q->o.ud, c);
    return LH_OK;
}

/* Every intact record of a segment; a damaged run followed by an intact
 * record is corrupt, one running to the end is a torn tail. */
static int scan_segment(struct lh_chunkq *q, struct chunkq_seg *s)
{
    struct acks a;
    int rc = load_acks(q, s->no, s->size, &a);
    bool damaged = false;
    uint64_t off = 0;
    while (rc == 0 && off < s->size) {
        struct hdr h;
        uint8_t *var;
        rc = check_record(s->fd, off, s->size, &h, &var);
        if (rc == LH_ECORRUPT) {
            damaged = true;
            off = find_magic(s->fd, off + 1, s->size);
            rc = LH_OK;
            continue;
        }
        if (rc != 0)
            break;
        if (damaged)
            q->st.corrupt++;
        damaged = false;
        rc = replay_record(q, s, off, &h, var, &a);
        free(var);
        off += h.rec_len;
    }
    if (damaged)
        q->st.torn++;
    if (rc == 0 && (!a.tidy || a.n_kept != a.n))
        tidy_acks(q, s, &a);
    acks_free(&a);
    return rc;
}

static bool parse_seg_name(const char *name, uint64_t *no)
{
    char hex[17];
    if (strlen(name) != 22 || strncmp(name, "q-", 2) != 0 || strcmp(name + 18, ".seg") != 0)
        return false;
    memcpy(hex, name + 2, 16);
    hex[16] = '\0';
    char *end;
    errno = 0;
    *no = strtoull(hex, &end, 16);
    return errno == 0 && *end == '\0';
}

/* Segment numbers in dir, ascending. */
static int list_segments(const char *dir, uint64_t **nos, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return LH_EIO;
    size_t cap = 0;
    int rc = LH_OK;
    *nos = NULL;
    *n = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        uint64_t no;
        if (!parse_seg_name(e->d_name, &no))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *v = realloc(*nos, cap * sizeof *v);
            if (!v) {
                rc = LH_ENOMEM;
                break;
            }
            *nos = v;
        }
        (*nos)[(*n)++] = no;
    }
    closedir(d);
    if (rc == 0 && *n)
        qsort(*nos, *n, sizeof **nos, cmp_u64);
    return rc;
}

static int open_segment(struct lh_chunkq *q, uint64_t no, char *err, size_t errlen)
{
    char path[PATH_MAX];
    seg_path(q, no, "seg", path, sizeof path);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return LH_EIO;
    }
    struct chunkq_seg *s = seg_add(q, no, fd, (uint64_t)sb.st_size);
    if (!s) {
        close(fd);
        return LH_ENOMEM;
    }
    int rc = scan_segment(q, s);
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", path, lh_strerror(rc));
    return rc;
}

int lh_chunkq_open(const struct lh_chunkq_opts *o, struct lh_chunkq **out, char *err,
                   size_t errlen)
{
    struct lh_chunkq *q = calloc(1, sizeof *q);
    if (!q)
        return LH_ENOMEM;
    q->o = *o;
    q->dir = strdup(o->dir);
    q->seg_size = o->segment_size;
    if (q->seg_size <= 0) {
        q->seg_size = o->max_size / 8;
        q->seg_size = q->seg_size < CQ_SEG_MIN ? CQ_SEG_MIN : q->seg_size;
        q->seg_size = q->seg_size > CQ_SEG_MAX ? CQ_SEG_MAX : q->seg_size;
    }
    uint64_t *nos = NULL;
    size_t n = 0;
    int rc = q->dir ? LH_OK : LH_ENOMEM;
    if (rc == 0 && lh_mkdir_p(q->dir) != 0) {
        snprintf(err, errlen, "%s: %s", q->dir, strerror(errno));
        rc = LH_EIO;
    }
    if (rc == 0 && (rc = list_segments(q->dir, &nos, &n)) != 0)
        snprintf(err, errlen, "%s: %s", q->dir, lh_strerror(rc));
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = open_segment(q, nos[i], err, errlen);
    free(nos);
    if (rc != 0) {
        lh_chunkq_close(q);
        return rc;
    }
    *out = q;
    return LH_OK;
}

void lh_chunkq_close(struct lh_chunkq *q)
{
    if (!q)
        return;
    for (struct chunkq_seg *s = q->segs; s; s = s->next) {
        if (s->data_dirty && fdatasync(s->fd) != 0)
            LH_ERROR(CQ_LOG, "syncing segment %016" PRIx64 ": %m", s->no);
        if (s->ack_dirty)
            fdatasync(s->ack_fd);
    }
    gone_run(q->gone);
    if (q->dir_dirty && q->dir)
        lh_fsync_dir(q->dir);
    while (q->head) {
        struct lh_chunk *c = q->head;
        q->head = c->next;
        free(c);
    }
    while (q->segs) {
        struct chunkq_seg *s = q->segs;
        q->segs = s->next;
        seg_free(s);
    }
    free(q->dir);
    free(q);
}

/* ---- appending ---------------------------------------------------------- */

bool lh_chunkq_full(const struct lh_chunkq *q, size_t payload_len)
{
    if (q->o.max_size <= 0 || q->st.bytes == 0)
        return false;
    return q->st.bytes + payload_len + LH_CHUNKQ_HDR_FIXED > (uint64_t)q->o.max_size;
}

static int roll(struct lh_chunkq *q)
{
    /* The old segment stays data_dirty: the next sync job covers it. */
    char path[PATH_MAX];
    seg_path(q, q->next_no, "seg", path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        LH_ERROR(CQ_LOG, "creating %s: %m", path);
        return LH_EIO;
    }
    struct chunkq_seg *s = seg_add(q, q->next_no, fd, 0);
    if (!s) {
        close(fd);
        unlink(path);
        return LH_ENOMEM;
    }
    q->active = s;
    q->dir_dirty = true;
    return LH_OK;
}

static int build_header(const struct lh_chunk_meta *m, size_t len, uint8_t **out,
                        struct hdr *h)
{
    if (!m->id || strlen(m->id) != LH_CHUNK_ID_LEN)
        return LH_EINVAL;
    if (len > LH_CHUNKQ_MAX_PAYLOAD || m->n_pos > LH_CHUNKQ_MAX_POS || m->tag_len > UINT16_MAX)
        return LH_ETOOBIG;
    h->hdr_len = (uint32_t)(LH_CHUNKQ_HDR_FIXED + m->tag_len + m->n_pos * CQ_POS_LEN);
    h->payload_len = (uint32_t)len;
    h->rec_len = h->hdr_len + h->payload_len;
    h->n_records = m->n_records;
    memcpy(h->id, m->id, sizeof h->id);
    uint8_t *p = calloc(1, h->hdr_len);
    if (!p)
        return LH_ENOMEM;
    memcpy(p, CQ_MAGIC, 4);
    put16(p + 4, CQ_VERSION);
    put16(p + 6, (uint16_t)m->tag_len);
    put32(p + 8, (uint32_t)m->n_pos);
    put32(p + 12, (uint32_t)len);
    put32(p + 16, m->n_records);
    memcpy(p + 24, m->id, LH_CHUNK_ID_LEN);
    memcpy(p + LH_CHUNKQ_HDR_FIXED, m->tag, m->tag_len);
    uint8_t *pp = p + LH_CHUNKQ_HDR_FIXED + m->tag_len;
    for (size_t i = 0; i < m->n_pos; i++, pp += CQ_POS_LEN) {
        put64(pp, m->pos[i].dev);
        put64(pp + 8, m->pos[i].ino);
        put64(pp + 16, m->pos[i].end);
    }
    *out = p;
    return LH_OK;
}

int lh_chunkq_append(struct lh_chunkq *q, const struct lh_chunk_meta *m, const void *payload,
                     size_t len, void (*done)(void *ud, struct lh_chunk *c, int rc),
                     void *done_ud, struct lh_chunk **out)
{
    struct iovec iov = {(void *)payload, len};
    return lh_chunkq_appendv(q, m, &iov, 1, done, done_ud, out);
}

int lh_chunkq_appendv(struct lh_chunkq *q, const struct lh_chunk_meta *m,
                      const struct iovec *iov, int iovcnt,
                      void (*done)(void *ud, struct lh_chunk *c, int rc), void *done_ud,
                      struct lh_chunk **out)
{
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    struct hdr h;
    uint8_t *hb;
    int rc = build_header(m, len, &hb, &h);
    if (rc != 0)
        return rc;
    struct cq_sum sum;
    sum_begin(&sum, hb, h.hdr_len);
    for (int i = 0; i < iovcnt; i++)
        sum_add(&sum, iov[i].iov_base, iov[i].iov_len);
    put32(hb + 20, sum_end(&sum));
    if (!q->active || (q->active->size > 0 && q->active->size + h.rec_len > (uint64_t)q->seg_size))
        rc = roll(q);
    struct chunkq_seg *s = q->active;
    uint64_t at = s ? s->size + h.hdr_len : 0;
    if (rc == 0) {
        rc = pwrite_all(s->fd, hb, h.hdr_len, s->size);
        for (int i = 0; i < iovcnt && rc == 0; at += iov[i].iov_len, i++)
            rc = pwrite_all(s->fd, iov[i].iov_base, iov[i].iov_len, at);
        if (rc != 0)
            LH_WARN(CQ_LOG, "writing to %s: %s", q->dir, strerror(errno));
    }
    free(hb);
    struct lh_chunk *c = rc == 0 ? chunk_new(q, s, s->size, &h) : NULL;
    if (!c) {
        /* Nothing of a failed append may be replayed. */
        if (s && ftruncate(s->fd, (off_t)s->size) != 0)
            LH_ERROR(CQ_LOG, "cannot cut a failed append: %m");
        return rc ? rc : LH_ENOMEM;
    }
    s->size += h.rec_len;
    s->data_dirty = true;
    q->st.bytes += h.rec_len;
    for (size_t i = 0; i < m->n_pos; i++)
        seg_note_pos(s, &m->pos[i]);
    c->done = done;
    c->done_ud = done_ud;
    c->sync_state = CQ_UNSYNCED;
    if (q->unsynced_tail)
        q->unsynced_tail->unsynced = c;
    else
        q->unsynced = c;
    q->unsynced_tail = c;
    *out = c;
    return LH_OK;
}

bool lh_chunkq_dirty(const struct lh_chunkq *q)
{
    if (q->unsynced || q->dir_dirty)
        return true;
    for (const struct chunkq_seg *s = q->segs; s; s = s->next)
        if (s->ack_dirty || s->n_live == 0)
            return true;
    return false;
}

/* The fsyncs of one group commit, on descriptors of its own so that a
 * segment released meanwhile cannot pull one from under it. */
struct lh_chunkq_job {
    int *fds;
    size_t n_fds;
    char *dir;                  /* NULL: the directory needs no fsync */
    struct chunkq_gone *gone;   /* unlinked after the fsyncs */
    struct lh_chunk *chunks;    /* linked by ->unsynced, append order */
    int rc;
};

static void job_free(struct lh_chunkq_job *job)
{
    for (size_t i = 0; i < job->n_fds; i++)
        close(job->fds[i]);
    free(job->fds);
    free(job->dir);
    gone_run(job->gone);
    free(job);
}

static int job_add_fd(struct lh_chunkq_job *job, int fd)
{
    int d = dup(fd);
    if (d < 0)
        return LH_EIO;
    job->fds[job->n_fds++] = d;
    return LH_OK;
}

const struct lh_chunk *lh_chunkq_oldest_unsynced(const struct lh_chunkq *q)
{
    return q->unsynced;
}

static bool in_unsynced(const struct lh_chunkq *q, const struct chunkq_seg *s)
{
    for (const struct lh_chunk *c = q->unsynced; c; c = c->unsynced)
        if (c->seg == s)
            return true;
    return false;
}

/* Whether a job syncs s's data: only for chunks not yet consumed (those
 * written and consumed since the last sync need no disk). */
static bool sync_data(const struct lh_chunkq *q, const struct chunkq_seg *s, bool chunks)
{
    return chunks && s->data_dirty && in_unsynced(q, s);
}

int lh_chunkq_sync_begin(struct lh_chunkq *q, bool chunks, struct lh_chunkq_job **out)
{
    *out = NULL;
    release_idle(q);
    size_t n = 0;
    for (struct chunkq_seg *s = q->segs; s; s = s->next)
        n += sync_data(q, s, chunks) + s->ack_dirty;
    if (n == 0 && !(chunks && q->unsynced) && !q->dir_dirty && !q->gone)
        return LH_OK;
    struct lh_chunkq_job *job = calloc(1, sizeof *job);
    if (!job || !(job->fds = calloc(n ? n : 1, sizeof *job->fds)) ||
        (q->dir_dirty && !(job->dir = strdup(q->dir)))) {
        if (job)
            job_free(job);
        return LH_ENOMEM;
    }
    for (struct chunkq_seg *s = q->segs; s; s = s->next) {
        if (sync_data(q, s, chunks) && job_add_fd(job, s->fd) != 0)
            job->rc = LH_EIO;
        if (s->ack_dirty && job_add_fd(job, s->ack_fd) != 0)
            LH_WARN(CQ_LOG, "syncing acks of segment %016" PRIx64 ": %m", s->no);
        if (chunks)
            s->data_dirty = false;
        s->ack_dirty = false;
    }
    q->dir_dirty = false;
    job->gone = q->gone;
    q->gone = NULL;
    if (chunks) {
        for (struct lh_chunk *c = q->unsynced; c; c = c->unsynced)
            c->sync_state = CQ_IN_JOB;
        job->chunks = q->syncing = q->unsynced;
        q->unsynced = q->unsynced_tail = NULL;
    }
    *out = job;
    return LH_OK;
}

void lh_chunkq_sync_run(struct lh_chunkq_job *job)
{
    for (size_t i = 0; i < job->n_fds; i++) {
        if (fdatasync(job->fds[i]) != 0) {
            LH_ERROR(CQ_LOG, "fdatasync in the disk buffer: %m");
            job->rc = LH_EIO;
        }
    }
    if (job->dir && lh_fsync_dir(job->dir) != 0) {
        LH_ERROR(CQ_LOG, "syncing %s: %m", job->dir);
        job->rc = LH_EIO;
    }
    gone_run(job->gone);
    job->gone = NULL;
}

int lh_chunkq_sync_end(struct lh_chunkq *q, struct lh_chunkq_job *job)
{
    if (!job)
        return LH_OK;
    struct lh_chunk *c = job->chunks;
    int rc = job->rc;
    q->syncing = NULL;
    job_free(job);
    /* The callbacks may append or ack: the list is detached first. */
    while (c) {
        struct lh_chunk *next = c->unsynced;
        c->unsynced = NULL;
        c->sync_state = CQ_SYNCED;
        if (c->consumed)
            free(c);
        else if (c->done)
            c->done(c->done_ud, c, rc);
        c = next;
    }
    return rc;
}

int lh_chunkq_sync(struct lh_chunkq *q)
{
    struct lh_chunkq_job *job;
    int rc = lh_chunkq_sync_begin(q, true, &job);
    if (rc != 0 || !job)
        return rc;
    lh_chunkq_sync_run(job);
    return lh_chunkq_sync_end(q, job);
}

/* ---- reading and consuming ---------------------------------------------- */

int lh_chunkq_read(struct lh_chunkq *q, const struct lh_chunk *c, char **payload)
{
    uint8_t *buf = malloc(c->rec_len);
    if (!buf)
        return LH_ENOMEM;
    struct hdr h;
    int rc = pread_all(c->seg->fd, buf, c->rec_len, c->off);
    if (rc == 0 && (parse_fixed(buf, &h) != 0 || h.rec_len != c->rec_len ||
                    record_sum(buf, &h) != h.crc))
        rc = LH_ECORRUPT;
    if (rc != 0) {
        if (rc == LH_ECORRUPT)
            q->st.corrupt++;
        free(buf);
        return rc;
    }
    memmove(buf, buf + h.hdr_len, h.payload_len);
    *payload = (char *)buf;
    return LH_OK;
}

static int record_ack(struct lh_chunkq *q, struct chunkq_seg *s, uint64_t off)
{
    if (s->ack_fd < 0) {
        char path[PATH_MAX];
        seg_path(q, s->no, "ack", path, sizeof path);
        s->ack_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (s->ack_fd < 0)
            return LH_EIO;
        q->dir_dirty = true;
    }
    uint8_t b[8];
    put64(b, off);
    ssize_t n = write(s->ack_fd, b, sizeof b);
    if (n == (ssize_t)sizeof b) {
        s->ack_dirty = true;
        return LH_OK;
    }
    /* Part of an entry would shift every later one: cut it back. */
    struct stat sb;
    if (n > 0 && (fstat(s->ack_fd, &sb) != 0 || ftruncate(s->ack_fd, sb.st_size - n) != 0))
        LH_WARN(CQ_LOG, "cannot cut a short ack write back: %m");
    return LH_EIO;
}

/* Takes a chunk out of the list waiting for the next job. */
static void drop_unsynced(struct lh_chunkq *q, struct lh_chunk *c)
{
    struct lh_chunk **p = &q->unsynced, *prev = NULL;
    while (*p && *p != c) {
        prev = *p;
        p = &(*p)->unsynced;
    }
    if (!*p)
        return;
    *p = c->unsynced;
    if (q->unsynced_tail == c)
        q->unsynced_tail = prev;
    c->unsynced = NULL;
    c->sync_state = CQ_SYNCED;
}

int lh_chunkq_ack(struct lh_chunkq *q, struct lh_chunk *c)
{
    struct chunkq_seg *s = c->seg;
    chunk_unlink(q, c);
    if (c->sync_state == CQ_UNSYNCED)
        drop_unsynced(q, c);
    int rc = LH_OK;
    /* A segment about to be deleted needs no ack file. */
    if (!seg_goes(q, s))
        rc = record_ack(q, s, c->off);
    if (c->sync_state == CQ_IN_JOB)
        c->consumed = true; /* the job's list still holds it */
    else
        free(c);
    release_idle(q);
    if (rc != 0)
        LH_WARN(CQ_LOG, "recording an ack in %s: %m (the chunk may be sent again after a "
                        "restart; the collector drops the copy)", q->dir);
    return rc;
}

void lh_chunkq_stats(const struct lh_chunkq *q, struct lh_chunkq_stats *st)
{
    *st = q->st;
}
