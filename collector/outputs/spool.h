/* The spool sender of the collector's network outputs (forward, http,
 * kafka): a durable chunkq of rendered batches, handed in order to the
 * output's deliver() and consumed only when the output answers
 * LH_FLUSH_OK.
 *
 * A write renders the batch through the output's render() and fsyncs it
 * before it returns, so the upstream ack may promise it. At open, every unconsumed batch of the last run is queued
 * again, oldest first. Batches go out in spool order, at most
 * max_in_flight awaiting an answer:
 *   LH_FLUSH_OK     delivered: consumed (loghaul_collector_output_delivered_total)
 *   LH_FLUSH_RETRY  not delivered: back in line in its place, and nothing new
 *                   goes out until a backoff (exponential, jittered) passes
 *                   (loghaul_collector_output_retries_total)
 *   LH_FLUSH_FAIL   refused for good: consumed and its records counted in
 *                   loghaul_collector_output_dropped_total (retrying it would
 *                   stall everything behind it)
 * A batch that fails its checksum when read back is dropped and counted the
 * same way. Consumed batches are made durable by a sync once a second.
 *
 * Everything runs on the loop thread of the event_base given at open. */
#ifndef LH_COLLECTOR_SPOOL_H
#define LH_COLLECTOR_SPOOL_H

#include <event2/event.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/outputs/output.h"
#include "common/base/metrics.h"

/* What an output answers for one delivery. */
enum lh_flush { LH_FLUSH_OK, LH_FLUSH_RETRY, LH_FLUSH_FAIL };

struct lh_chunk;

/* One spooled batch. The spool owns it; the output may keep the pointer
 * from deliver() until it answers (or requeues) it, not longer. */
struct lh_coll_spool_item {
    struct lh_chunk *chunk;      /* id, n_records, payload_len: read only */
};

/* Hands one batch to the output. payload (chunk->payload_len bytes,
 * malloc'd) is the output's in every case: it frees it or hands it on.
 * 0: taken, and exactly one lh_coll_spool_answer() for it follows (it may
 * come from inside this call), unless lh_coll_spool_requeue() takes it back
 * first. LH_AGAIN: not ready (no connection yet...): the batch stays first
 * in line and nothing more is handed over until lh_coll_spool_kick().
 * Another LH_E* code: not taken, the output logged why; as RETRY (unless
 * the output requeued it inside the call). */
typedef int (*lh_coll_deliver_fn)(void *ud, struct lh_coll_spool_item *it, char *payload,
                                  size_t len);

struct lh_coll_spool_opts {
    const char *type;            /* the output's type: metric label, log name, directory */
    int64_t max_size;            /* spool bound; past it appends are refused */
    size_t max_in_flight;        /* deliveries awaiting an answer, >= 1 */
    int64_t backoff_min_ms;      /* the first retry waits in [min/2, min] */
    int64_t backoff_max_ms;      /* ... doubling up to [max/2, max] */
    const char *match;           /* fnmatch(3) glob on the tag, borrowed */
    /* The batch as this output spools it, in out (emptied first); id is
     * its fresh chunk id (LH_CHUNK_ID_LEN characters), for an output that
     * sends it. 0, or an LH_E* code: the batch is refused. */
    int (*render)(void *ud, const struct lh_coll_batch *b, const char *id, msgpack_sbuffer *out);
    lh_coll_deliver_fn deliver;
    /* Whether deliver() would take a batch now (NULL: always), asked
     * before a batch is read back from disk. An output not ready may start
     * getting ready here (connecting) and kicks the spool once it is. */
    bool (*ready)(void *ud);
    void *ud;
};

struct lh_coll_spool;

/* Opens the spool of output number index of its type (the one at config
 * line line), ctx->data_dir/outputs/TYPE-INDEX, and queues what the last
 * run left, delivering nothing yet (the output kicks once it is ready). 0
 * with *out, or an LH_E* code with err set. */
int lh_coll_spool_open(const struct lh_coll_output_ctx *ctx, size_t index, int line,
                       const struct lh_coll_spool_opts *o, struct lh_coll_spool **out,
                       char *err, size_t errlen);
/* Frees every item, in flight or not (the output dropped its references
 * first) and closes the queue; what was not consumed is there next start.
 * NULL is fine. */
void lh_coll_spool_close(struct lh_coll_spool *sp);

/* Spools a batch: one with no events or a tag match does not take is
 * skipped (0); else it is rendered, fsync'd and queued for delivery, and
 * once this returns 0 it may be acked upstream. LH_ETOOBIG when the spool
 * is full (logged), render's or the queue's error; each failure counts in
 * output_errors_total (the upstream sender retries). */
int lh_coll_spool_write(struct lh_coll_spool *sp, const struct lh_coll_batch *b);

/* The output's answer for a batch it took (see lh_coll_deliver_fn). */
void lh_coll_spool_answer(struct lh_coll_spool *sp, struct lh_coll_spool_item *it,
                          enum lh_flush answer);
/* Every batch awaiting an answer goes back in line, in spool order, with
 * no backoff of the spool's own: for an output that lost its connection
 * and paces reconnecting itself. Delivery resumes at the next kick. */
void lh_coll_spool_requeue(struct lh_coll_spool *sp);
/* The output is ready (again): deliver what waits. */
void lh_coll_spool_kick(struct lh_coll_spool *sp);

/* Batches in the spool, and of them awaiting an answer. */
size_t lh_coll_spool_queued(const struct lh_coll_spool *sp);
size_t lh_coll_spool_in_flight(const struct lh_coll_spool *sp);

/* The wait before retrying after fails failures in a row (>= 1): min_ms
 * doubled fails-1 times, at most max_ms, then a jitter from r (a random
 * number) puts it in [d/2, d] so outputs restarted together do not retry in
 * step. */
int64_t lh_coll_spool_backoff_ms(unsigned fails, int64_t min_ms, int64_t max_ms, uint32_t r);

#endif
