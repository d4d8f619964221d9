/* Reading a store segment (internal to the store; the format is in
 * store.h): finding the checksum-valid records of a file, stepping over
 * damage, and decoding a batch record one event at a time.
 *
 * Nothing here unpacks a whole batch: the batch head and the events array
 * are walked as raw msgpack, and each event is unpacked on its own, so
 * memory is bounded by the largest event and depth is counted from the
 * event's own array. */
#ifndef LH_STORE_SEGREAD_H
#define LH_STORE_SEGREAD_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/store/store.h"

#define LH_SEG_HEADER 8

/* A cursor over one segment file. buf/cap are the caller's scan buffer,
 * grown here (the caller frees it). */
struct lh_seg_cursor {
    int fd;
    int64_t size;    /* bytes of the file that count */
    int64_t off;     /* where the next record is looked for */
    uint8_t **buf;
    size_t *cap;
};

/* One checksum-valid record found by lh_seg_next(). */
struct lh_seg_record {
    int64_t off;          /* of its header */
    int64_t damaged_off;  /* start of the damage passed over before it */
    int64_t damaged;      /* bytes passed over (0: none) */
    const uint8_t *payload;  /* in *buf, until the next call */
    size_t len;
};

/* The next checksum-valid record at or after c->off (then c->off is past
 * it). After a bad record (header cut short, length out of range or past
 * the end, checksum failing) the next one is the first checksum-valid
 * record found by searching the following bytes for a header followed by
 * a batch's first bytes. LH_AGAIN when no valid record is left: c->off is
 * then the start of the tail that holds none (c->size when there is no
 * tail). LH_EIO or LH_ENOMEM. */
int lh_seg_next(struct lh_seg_cursor *c, struct lh_seg_record *r);

/* The decoded head of a batch record, and a walk over its events. */
struct lh_batch {
    const char *chunk;    /* NULL for none; points into the payload */
    size_t chunk_len;
    int64_t recv_ns;
    uint32_t n_events;    /* as the events array says */
    const uint8_t *p;     /* the events, raw */
    size_t len, off;
    uint32_t done;        /* events walked so far */
};

/* Decodes the head {chunk, recv, events} (keys in any order, events last)
 * of the payload p[0..len). 0 or LH_ECORRUPT. zone is cleared. */
int lh_batch_open(struct lh_batch *b, const uint8_t *p, size_t len, msgpack_zone *zone);

/* The next event into *ev (its fields in zone, which is cleared first).
 * 0; LH_ECORRUPT for an event that cannot be decoded, which is stepped
 * over (*lost = 1) or, when its end cannot even be found (malformed, or
 * nesting past LH_MP_WALK_MAX), ends the walk (*lost = every event left);
 * LH_AGAIN when all events were walked. */
int lh_batch_next(struct lh_batch *b, msgpack_zone *zone, struct lh_store_event *ev,
                  uint32_t *lost);

#endif
