/* The collector's store: an interface (open, append with asynchronous
 * completion, snapshot, scan(request), retention, close) and its reference
 * implementation, lh_store_segments. Every implementation passes
 * tests/unit/test_store_conformance.c; the indexed store will widen the
 * interface (columns, pushed-down stats, top-K) when it lands.
 *
 * The reference implementation, first version: append-only segment files,
 * scanned in full by searches.
 *
 * Layout: DIR/seg-<16 hex digits>.lhs, numbered in creation order. Each
 * batch is one record: [u32 length][u32 crc32][msgpack payload], both
 * numbers big-endian, the crc (zlib) over the payload, which is
 *   {"chunk": id-or-nil, "recv": ns, "events": [[tag, EventTime, fields], ...]}
 * with the keys in that order. The files carry no magic or version (the
 * format is version 0; see docs/ARCHITECTURE.md for what its successor
 * adds). An append completes only after the bytes are fdatasync'd (and the
 * directory fsync'd when the append created a segment), before it returns.
 *
 * What the reader decodes. A batch is never unpacked whole: its head and
 * its events array are walked as raw msgpack and each event is unpacked on
 * its own. An event is readable when lh_mp_extent() finds its end, i.e. it
 * nests at most LH_MP_MAX_DEPTH containers counted from (and including) the
 * event's own [tag, time, fields] array, msgpack-c unpacks exactly those
 * bytes, tag is a str or bin, time what lh_time_from_obj() takes and fields
 * a map.
 * Ingest must refuse (never ack) an event that fails this; the reader skips
 * and counts one (stats.unreadable_events), and reads on.
 *
 * Recovery (open) never deletes a record that passes its checksum. At a bad
 * record (header cut short, length 0 or past LH_STORE_MAX_RECORD or past
 * the end of the file, checksum failing) the reader looks for the next
 * checksum-valid record by searching the following bytes for a record
 * header followed by a batch's first bytes; the bad record's own length is
 * not trusted (garbage there could point past good records). If one is
 * found, the bad bytes are a damaged middle: skipped and counted
 * (stats.corrupt), kept on disk. If none is, the bad record is the last
 * one, whatever its length says: a torn tail, truncated in the last
 * segment (the only one a crash can tear; stats.torn) and kept in an older
 * one. A checksum-valid record that is no batch is kept, skipped and
 * counted (stats.undecodable). Scans follow the same rules; each damaged
 * record is counted once, by the first walk (open or scan) that reads it.
 *
 * Not thread safe: the collector runs the store on its single event loop
 * thread for now. */
#ifndef LH_STORE_H
#define LH_STORE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/metrics.h"
#include "common/query/query.h"

#define LH_STORE_SEGMENT_SIZE (64LL * 1024 * 1024)
/* A record longer than this is corrupt (no batch can be that large). */
#define LH_STORE_MAX_RECORD (1024LL * 1024 * 1024)
#define LH_STORE_MAX_CHUNK_ID 1024
/* Scans read the clock for their deadline by cost, not by count: each
 * event charges its stored size plus LH_STORE_EVENT_COST, the query's
 * matcher charges its own work (lh_query_budget: bytes searched, terms,
 * keys, regex runs), and the clock is read each LH_STORE_CLOCK_COST units,
 * also in the middle of matching one event. A unit is about a byte
 * searched (a nanosecond), so a deadline is kept to within milliseconds
 * whatever the records' sizes and the query's shape (a regex run is the
 * coarsest step: 16 of them at their match limit, ~0.1 s), while a scan of
 * small records reads the clock once per thousands of them. */
#define LH_STORE_CLOCK_COST (1u << 20)
#define LH_STORE_EVENT_COST 256

/* ---- the interface ------------------------------------------------------ */

struct lh_store_ops;

/* A store handle: every implementation's own struct starts with it. */
struct lh_store {
    const struct lh_store_ops *ops;
};

/* A stable view of a store (see lh_store_snapshot). */
struct lh_store_snap {
    struct lh_store *store;
};

struct lh_store_opts {
    const struct lh_store_ops *impl;  /* NULL: lh_store_segments */
    const char *dir;            /* created when missing */
    int64_t max_age_ns;         /* retention: 0 = no age limit */
    int64_t max_size;           /* retention: total bytes, 0 = no size limit */
    /* The unit retention drops (a segment for the reference store); 0 = the
     * implementation's default (LH_STORE_SEGMENT_SIZE). */
    int64_t segment_size;
    /* NULL, or where the store registers loghaul_collector_store_* counters
     * (unreadable events, damaged records by reason). */
    struct lh_metrics *metrics;
};

/* Counts an implementation has no notion of stay 0. */
struct lh_store_stats {
    uint64_t segments;
    uint64_t bytes;             /* total size of the stored files */
    uint64_t batches;           /* records (batches) present */
    uint64_t torn;              /* tails truncated at open */
    uint64_t corrupt;           /* damaged runs skipped (checksum), kept on disk */
    uint64_t undecodable;       /* checksum-valid records that are no batch, skipped */
    uint64_t unreadable_events; /* events of valid batches that cannot be decoded */
    uint64_t dropped_segments;  /* removed by retention since open */
};

/* One batch to append: events holds n_events concatenated msgpack arrays
 * [tag, EventTime, fields]; chunk may be NULL (len at most
 * LH_STORE_MAX_CHUNK_ID). Borrowed for the call: the store copies what it
 * needs before lh_store_append returns. */
struct lh_store_batch {
    const char *chunk;
    size_t chunk_len;
    int64_t recv_ns;
    const char *events;
    size_t events_len;
    size_t n_events;
};

/* An append's outcome: 0 once the batch is durable (it may be acked), else
 * LH_EIO or LH_ENOMEM (nothing of the batch remains). */
typedef void (*lh_store_done_cb)(void *ud, int status);

/* One event as a scan sees it; pointers valid only during the callback. */
struct lh_store_event {
    const char *tag;
    size_t tag_len;
    int64_t time_ns;
    const msgpack_object *fields;  /* a map */
    uint64_t seq;                  /* storage order within the snapshot */
    size_t bytes;                  /* its stored size, what reading it cost */
};

/* Where a consumer keeping the `limit` first events stands, written by it
 * from its callback: once it holds limit events (full), the one it ranks
 * last. An event that does not rank before it cannot be in the answer, so
 * the store need not test or deliver it. */
struct lh_store_cut {
    bool full;
    int64_t time_ns;
    uint64_t seq;
};

/* What a scan is for. The store may use any of it to read less; the
 * consumer still picks the `limit` first itself (see lh_store_scan). */
struct lh_store_scan_req {
    int64_t from_ns, to_ns;            /* inclusive */
    const struct lh_query *query;      /* NULL matches everything */
    bool asc;                          /* order: oldest first; false: newest first */
    size_t limit;                      /* 0: every match is wanted */
    const struct lh_store_cut *cut;    /* NULL, or kept by the consumer */
    int64_t deadline_ms;               /* lh_mono_ms() deadline; 0: none */
};

/* Non-zero stops the scan, which returns that value. */
typedef int (*lh_store_scan_cb)(void *ud, const struct lh_store_event *ev);

/* A place in the store's append order, compared as (segment, offset): a
 * batch appended later is at a greater one. {0, 0} is the beginning. */
struct lh_store_pos {
    uint64_t segment;
    int64_t offset;
};

/* One batch of a tail: its chunk id (NULL: none) and receive time.
 * Non-zero stops the walk, which returns that value. */
typedef int (*lh_store_chunk_cb)(void *ud, const char *chunk, size_t len, int64_t recv_ns);

struct lh_store_ops {
    const char *name;
    int (*open)(const struct lh_store_opts *o, struct lh_store **out, char *err,
                size_t errlen);
    int (*append)(struct lh_store *s, const struct lh_store_batch *b, lh_store_done_cb done,
                  void *ud);
    int (*snapshot)(struct lh_store *s, struct lh_store_snap **out);
    int (*scan)(struct lh_store_snap *snap, const struct lh_store_scan_req *req,
                lh_store_scan_cb cb, void *ud);
    void (*release)(struct lh_store_snap *snap);
    int (*retain)(struct lh_store *s, int64_t now_ns);
    void (*stats)(const struct lh_store *s, struct lh_store_stats *st);
    int (*tail)(struct lh_store *s, const struct lh_store_pos *from, lh_store_chunk_cb cb,
                void *ud, struct lh_store_pos *end);
    void (*close)(struct lh_store *s);
};

/* Opens o->impl's store (creating dir when missing), recovering what a
 * crash left (for the reference store, see recovery above). 0 with *out,
 * or an LH_E* code with err set. */
int lh_store_open(const struct lh_store_opts *o, struct lh_store **out, char *err,
                  size_t errlen);
/* Every snapshot must have been released. NULL is a no-op. */
void lh_store_close(struct lh_store *s);

/* Hands one batch to the store. 0: done is called exactly once with the
 * outcome, possibly before lh_store_append returns (the reference store
 * does), possibly later from the store's thread of control; the caller
 * must not ack before it. LH_EINVAL (chunk id too long) or LH_ETOOBIG (a
 * batch too large to store): refused at once, done is not called. */
int lh_store_append(struct lh_store *s, const struct lh_store_batch *b, lh_store_done_cb done,
                    void *ud);

/* A view holding exactly the batches whose append completed before the
 * call: appends after it are not seen by its scans, and retention does not
 * take what it holds away while it lives. Release it with
 * lh_store_release. 0 or LH_ENOMEM. */
int lh_store_snapshot(struct lh_store *s, struct lh_store_snap **out);
void lh_store_release(struct lh_store_snap *snap);

/* Calls cb for events of snap in [from_ns, to_ns] matching query, each at
 * most once, in no promised order, with seq giving storage order (append
 * order, then the order within a batch), so equal times rank by it. Every
 * such event is delivered, except that with a limit the store may leave
 * out one that cannot be among the `limit` first in req's order: one that
 * does not rank before *cut while cut->full, or that ranks after `limit`
 * events already delivered. Damage and unreadable events are skipped
 * (counted once in stats). 0, cb's non-zero value, LH_ETIMEDOUT (past the
 * deadline), LH_ETOOBIG (a regex match hit its bounds: lh_query_status
 * says which), LH_EIO or LH_ENOMEM. */
int lh_store_scan(struct lh_store_snap *snap, const struct lh_store_scan_req *req,
                  lh_store_scan_cb cb, void *ud);

/* True when event (time a, seq a) comes before (time b, seq b) in the
 * order asc says; ties in time rank by storage order both ways: ascending
 * lists the earlier stored first, descending the later stored first. */
static inline bool lh_store_ranks_before(bool asc, int64_t a_ns, uint64_t a_seq, int64_t b_ns,
                                         uint64_t b_seq)
{
    if (a_ns != b_ns)
        return asc ? a_ns < b_ns : a_ns > b_ns;
    return asc ? a_seq < b_seq : a_seq > b_seq;
}

/* Drops stored batches, oldest first, that are older than max_age
 * (received before now - max_age) or while the store is over max_size, in
 * the implementation's own units (the reference store: whole segments,
 * never the one being appended to, so it may keep more than the limits
 * say). Never drops a batch a live snapshot holds, nor one newer than a
 * batch it keeps. The number of units dropped, or LH_EIO. */
int lh_store_retain(struct lh_store *s, int64_t now_ns);

void lh_store_stats(const struct lh_store *s, struct lh_store_stats *st);

/* The store's tail, for ingest's dedup index: cb gets every batch appended
 * at or after *from, oldest first (from NULL: none), and *end is set to
 * where the next append goes. Reads only those batches: an index that
 * notes the end before each append catches up after a crash by reading
 * what it may have missed, not the whole store. 0, cb's non-zero value,
 * LH_ENOENT when *from lies past the end (the store no longer has batches
 * the caller saw; *end is set), LH_EIO or LH_ENOMEM. */
int lh_store_tail(struct lh_store *s, const struct lh_store_pos *from, lh_store_chunk_cb cb,
                  void *ud, struct lh_store_pos *end);

/* ---- the reference implementation -------------------------------------- */

extern const struct lh_store_ops lh_store_segments;

#endif
