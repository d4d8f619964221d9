/* The collector's store, first version: append-only segment files, scanned
 * in full by searches. An indexed store replaces it later, so the API stays
 * narrow: open, append, scan, retention, close.
 *
 * Layout: DIR/seg-<16 hex digits>.lhs, numbered in creation order. Each
 * batch is one record: [u32 length][u32 crc32][msgpack payload], both
 * numbers big-endian, the crc (zlib) over the payload, which is
 *   {"chunk": id-or-nil, "recv": ns, "events": [[tag, EventTime, fields], ...]}
 * with the keys in that order. The files carry no magic or version (the
 * format is version 0; see docs/ARCHITECTURE.md for what its successor
 * adds). An append returns only after the bytes are fdatasync'd (and the
 * directory fsync'd when the append created a segment): a caller may ack
 * on 0.
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

#define LH_STORE_SEGMENT_SIZE (64LL * 1024 * 1024)
/* A record longer than this is corrupt (no batch can be that large). */
#define LH_STORE_MAX_RECORD (1024LL * 1024 * 1024)
#define LH_STORE_MAX_CHUNK_ID 1024

struct lh_store;

struct lh_store_opts {
    const char *dir;            /* created when missing */
    int64_t dedup_window_ns;    /* chunk ids remembered this long after receipt */
    int64_t max_age_ns;         /* retention: 0 = no age limit */
    int64_t max_size;           /* retention: total bytes, 0 = no size limit */
    int64_t segment_size;       /* roll threshold; 0 = LH_STORE_SEGMENT_SIZE */
    /* NULL, or where the store registers loghaul_collector_store_* counters
     * (unreadable events, damaged records by reason). */
    struct lh_metrics *metrics;
};

struct lh_store_stats {
    uint64_t segments;
    uint64_t bytes;             /* total size of the segment files */
    uint64_t batches;           /* records (batches) present */
    uint64_t torn;              /* tails truncated at open */
    uint64_t corrupt;           /* damaged runs skipped (checksum), kept on disk */
    uint64_t undecodable;       /* checksum-valid records that are no batch, skipped */
    uint64_t unreadable_events; /* events of valid batches that cannot be decoded */
    uint64_t dropped_segments;  /* removed by retention since open */
    uint64_t chunks;            /* chunk ids in the dedup set */
};

/* Opens (creating dir when missing): reads every segment, truncates a torn
 * tail of the last one (see recovery above), rebuilds the dedup set from
 * batches received within the window. 0 with *out, or an LH_E* code with
 * err set. */
int lh_store_open(const struct lh_store_opts *o, struct lh_store **out, char *err,
                  size_t errlen);
void lh_store_close(struct lh_store *s);

/* True when chunk was stored within the dedup window (then the batch must
 * be acked again, not stored twice). */
bool lh_store_has_chunk(struct lh_store *s, const char *chunk, size_t len, int64_t now_ns);

/* Appends one batch durably. events holds n_events concatenated msgpack
 * arrays [tag, EventTime, fields]; the store copies what it needs. chunk
 * may be NULL (len at most LH_STORE_MAX_CHUNK_ID). 0, LH_EINVAL,
 * LH_ETOOBIG, LH_ENOMEM or LH_EIO (nothing of the batch remains then). */
int lh_store_append(struct lh_store *s, const char *chunk, size_t chunk_len, int64_t recv_ns,
                    const char *events, size_t events_len, size_t n_events);

/* One event as a scan sees it; pointers valid only during the callback. */
struct lh_store_event {
    const char *tag;
    size_t tag_len;
    int64_t time_ns;
    const msgpack_object *fields;  /* a map */
    uint64_t seq;                  /* storage order within this scan */
};

/* Non-zero stops the scan, which returns that value. */
typedef int (*lh_store_scan_cb)(void *ud, const struct lh_store_event *ev);

/* Calls cb for every readable stored event, oldest segment first, in
 * append order. Damage and unreadable events are skipped (counted once in
 * stats); the scan goes on with the next event and the next record. */
int lh_store_scan(struct lh_store *s, lh_store_scan_cb cb, void *ud);

/* Drops whole segments (never the one being appended to), oldest first,
 * while the newest batch in one is older than max_age or the store is over
 * max_size. Returns the number of segments dropped, or LH_EIO. */
int lh_store_retain(struct lh_store *s, int64_t now_ns);

void lh_store_stats(const struct lh_store *s, struct lh_store_stats *st);

#endif
