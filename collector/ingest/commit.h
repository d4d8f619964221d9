/* The ingest seam: a listener hands every decoded batch to
 * lh_commit_submit() and acks it from the done callback.
 *
 * A commit runs, in this order:
 *   1. dedup: a chunk id committed within the window is done at once (ack
 *      again, written nowhere); one whose commit is still under way waits
 *      for that commit's outcome and shares it;
 *   2. the outputs (synchronous, each durable in its own way);
 *   3. the store (asynchronous completion), when it is on;
 *   4. the dedup index entry, then the sinks (live tails) and done(0).
 * Outputs come before the store because the store's append is what makes
 * the chunk id known to dedup: a resend of a known id is acked without
 * being written anywhere, so an output failing after the store took the
 * batch would lose it for good. The other way round, an output failing
 * means no store append, no dedup entry and no ack: the sender's resend
 * goes through the whole commit again. Any failure ends the commit with
 * done(code): nothing is acked.
 *
 * done may run before submit returns (the reference store completes at
 * once) or later from the event loop; the listener must not ack before it,
 * and must let it run even when the connection has gone meanwhile (done
 * then sends nothing). Everything runs on the collector's event loop. */
#ifndef LH_COMMIT_H
#define LH_COMMIT_H

#include <stddef.h>

#include "collector/ingest/dedup.h"
#include "collector/outputs/output.h"
#include "collector/store/store.h"
#include "common/base/metrics.h"

struct lh_commit;

/* The outputs as commit sees them: write returns 0 once every output has
 * the batch durably (lh_coll_outputs_write), else the first failure. */
struct lh_commit_outputs {
    int (*write)(void *ud, const struct lh_coll_batch *b);
    void *ud;
};

/* A subscriber to committed batches (live tail; later replication): called
 * once a batch is durable, before its ack; b is borrowed for the call. */
struct lh_commit_sink {
    void (*publish)(void *ud, const struct lh_coll_batch *b);
    void *ud;
};

/* What a commit uses, all borrowed and outliving it. */
struct lh_commit_opts {
    struct lh_dedup *dedup;               /* NULL: no dedup */
    const struct lh_commit_outputs *outputs; /* NULL: none */
    struct lh_store *store;               /* NULL: the store is off */
    struct lh_metrics *metrics;
};

/* 0 with *out, or LH_ENOMEM. */
int lh_commit_new(const struct lh_commit_opts *o, struct lh_commit **out);
/* Every submitted batch must be done first (the store completed it). */
void lh_commit_free(struct lh_commit *c);

/* Adds a sink (copied); sinks are called in the order added. 0 or
 * LH_ENOMEM. */
int lh_commit_add_sink(struct lh_commit *c, const struct lh_commit_sink *s);

/* done(arg, status): 0 once the batch is durable everywhere (or was
 * already: a duplicate), else the failure (the batch is not acked; the
 * sender resends). Called exactly once. */
typedef void (*lh_commit_done_cb)(void *arg, int status);

/* Bytes of the batches copied for a store that completes later, until it
 * does: the listener counts them against its memory budget. Each copy is
 * freed before its done runs. */
size_t lh_commit_held(const struct lh_commit *c);

/* Commits b (borrowed for the call: what a later completion needs is
 * copied), received at recv_ns. A batch without events is done at once
 * and recorded nowhere. */
void lh_commit_submit(struct lh_commit *c, const struct lh_coll_batch *b, int64_t recv_ns,
                      lh_commit_done_cb done, void *arg);

#endif
