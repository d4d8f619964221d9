/* An on-disk queue of chunks (the agent's delivery buffer).
 *
 * Layout: DIR/q-<16 hex digits>.seg segment files, numbered in creation
 * order, each a run of chunk records; DIR/q-<same>.ack lists the offsets
 * (u64, big-endian) of the chunks of that segment that were consumed. A
 * short write is cut back at once; at open, an ack file holding damage (a
 * partial entry, more than the segment can hold, offsets naming no intact
 * record) is written again with just the acks that count, so later entries
 * stay aligned. A segment whose chunks are all consumed is deleted with its
 * ack file.
 *
 * A chunk record is a header then the payload, numbers big-endian:
 *   0  magic "LHQC"        4  version u16 (1)     6  tag length u16
 *   8  positions u32       12 payload length u32  16 records u32
 *   20 crc32 (zlib) of the whole record with this field zeroed
 *   24 chunk id (LH_CHUNK_ID_LEN bytes)
 *   48 tag, then per position: dev u64, inode u64, end offset u64
 * The positions say how far into which input file the chunk's records go,
 * so a restarted agent does not read again what is already queued.
 *
 * Durability by group commit: lh_chunkq_append() only writes; the caller
 * runs lh_chunkq_sync() when it chooses, and one fsync covers every chunk
 * appended since the last, whose done callbacks then fire in append order.
 * A chunk is consumed with lh_chunkq_ack(), durable or not yet: it is never
 * replayed after that, and a consumed chunk needs no fsync (a segment
 * consumed whole before any sync is deleted without reaching the disk).
 *
 * Open replays every intact unconsumed chunk in order and skips (counting
 * them) torn or corrupt records: the scan looks for the next magic whose
 * record passes its CRC, so one damaged chunk loses nothing else. Appends
 * always go to a new segment, never after a possibly torn tail.
 *
 * Not thread safe. The queue owns every lh_chunk; the caller may hang its
 * own state on ud. */
#ifndef LH_CHUNKQ_H
#define LH_CHUNKQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/codec/forward.h"

/* A payload longer than this is refused (a batch is at most 64 MiB). */
#define LH_CHUNKQ_MAX_PAYLOAD (80u << 20)
#define LH_CHUNKQ_MAX_POS 4096
#define LH_CHUNKQ_HDR_FIXED 48

struct lh_chunkq;

struct lh_chunkq_pos {
    uint64_t dev, ino, end;
};

struct lh_chunk {
    char id[LH_CHUNK_ID_LEN + 1];
    uint32_t n_records;
    uint32_t payload_len;
    void *ud;                    /* the caller's */
    /* The queue's own. */
    struct lh_chunk *prev, *next;
    struct lh_chunk *unsynced;
    uint8_t sync_state;          /* synced, waiting for a job, in a job */
    bool consumed;               /* acked while its sync job ran */
    struct chunkq_seg *seg;
    uint64_t off;                /* of the record in its segment */
    uint32_t rec_len;
    void (*done)(void *ud, struct lh_chunk *c, int rc);
    void *done_ud;
};

/* What a chunk is made of, for an append. */
struct lh_chunk_meta {
    const char *id;              /* LH_CHUNK_ID_LEN characters */
    const char *tag;
    size_t tag_len;
    uint32_t n_records;
    const struct lh_chunkq_pos *pos;
    size_t n_pos;
};

struct lh_chunkq_opts {
    const char *dir;             /* created when missing */
    int64_t max_size;            /* bytes of segment files; see lh_chunkq_full */
    int64_t segment_size;        /* roll threshold; 0: max_size / 8 in [64 KiB, 64 MiB] */
    /* At open, for every intact chunk still on disk (consumed or not). */
    void (*on_pos)(void *ud, const struct lh_chunkq_pos *p);
    /* At open, for every intact unconsumed chunk, oldest first. */
    void (*on_chunk)(void *ud, struct lh_chunk *c);
    /* Before consumed segments are deleted (the positions in them vanish:
     * the caller saves what it derived from them). */
    void (*on_release)(void *ud);
    /* Whether the caller's saved state, once on_release ran, covers p (no
     * restart would read it again): a consumed segment goes only when
     * every position in it is covered. NULL: always. */
    bool (*covered)(void *ud, const struct lh_chunkq_pos *p);
    void *ud;
};

struct lh_chunkq_stats {
    uint64_t bytes;              /* segment files on disk */
    uint64_t chunks;             /* unconsumed chunks */
    uint64_t segments;
    uint64_t torn;               /* incomplete records skipped at open */
    uint64_t corrupt;            /* damaged records skipped (open or read) */
};

/* Opens (creating the directory), replaying through the callbacks. 0 with
 * *out, or an LH_E* code with err set. */
int lh_chunkq_open(const struct lh_chunkq_opts *o, struct lh_chunkq **out, char *err,
                   size_t errlen);
/* Syncs what was appended (without firing done callbacks) and frees
 * everything. NULL is fine. */
void lh_chunkq_close(struct lh_chunkq *q);

/* True when appending a payload of len bytes would take the queue past
 * max_size. An empty queue takes any chunk, so an oversized one cannot
 * block forever. */
bool lh_chunkq_full(const struct lh_chunkq *q, size_t payload_len);

/* Writes one chunk (not yet durable). done(done_ud, c, rc) runs from a later
 * lh_chunkq_sync(), rc 0 once it is on disk. 0 with *out, or LH_EINVAL,
 * LH_ETOOBIG, LH_ENOMEM, LH_EIO (nothing of it counts then). */
int lh_chunkq_append(struct lh_chunkq *q, const struct lh_chunk_meta *m, const void *payload,
                     size_t len, void (*done)(void *ud, struct lh_chunk *c, int rc),
                     void *done_ud, struct lh_chunk **out);
/* The same with the payload in pieces (written and checksummed in order). */
int lh_chunkq_appendv(struct lh_chunkq *q, const struct lh_chunk_meta *m,
                      const struct iovec *iov, int iovcnt,
                      void (*done)(void *ud, struct lh_chunk *c, int rc), void *done_ud,
                      struct lh_chunk **out);
/* True when appends or acks wait for lh_chunkq_sync(). */
bool lh_chunkq_dirty(const struct lh_chunkq *q);
/* The oldest chunk appended, not consumed and not yet in a sync; NULL when
 * none. */
const struct lh_chunk *lh_chunkq_oldest_unsynced(const struct lh_chunkq *q);
/* One fsync for everything appended or acked since the last; then the done
 * callbacks. 0 or LH_EIO (the callbacks then get LH_EIO). */
int lh_chunkq_sync(struct lh_chunkq *q);

/* The same sync in three steps, so the fsyncs can run on another thread
 * while the owner goes on appending and acking. At most one job at a time.
 * begin (owner's thread): takes everything appended or acked so far (with
 * chunks false, only acks, directory entries and released segments: the
 * unsynced chunks wait); *job is NULL when nothing needed syncing. 0 or
 * LH_ENOMEM. */
struct lh_chunkq_job;
int lh_chunkq_sync_begin(struct lh_chunkq *q, bool chunks, struct lh_chunkq_job **job);
/* Any thread: the fsyncs of the job; touches nothing of the queue. */
void lh_chunkq_sync_run(struct lh_chunkq_job *job);
/* Owner's thread, after run: fires the done callbacks of the job's chunks
 * in append order and frees the job. 0 or LH_EIO. A queue is closed only
 * with no job between begin and end. */
int lh_chunkq_sync_end(struct lh_chunkq *q, struct lh_chunkq_job *job);

/* Reads a chunk's payload back into a malloc'd buffer (caller frees),
 * checking its CRC. 0, LH_ENOMEM, LH_EIO, or LH_ECORRUPT (counted). */
int lh_chunkq_read(struct lh_chunkq *q, const struct lh_chunk *c, char **payload);

/* Consumes a chunk (frees it; one in a running sync job is freed when the
 * job ends, and its done callback does not run). 0, or LH_EIO when its ack
 * could not be recorded (it is consumed in memory anyway and may be
 * replayed once after a restart). */
int lh_chunkq_ack(struct lh_chunkq *q, struct lh_chunk *c);

void lh_chunkq_stats(const struct lh_chunkq *q, struct lh_chunkq_stats *st);

#endif
