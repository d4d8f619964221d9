/* Collector outputs: where an accepted batch goes besides (or, with
 * store.enabled false, instead of) the store. Each output type is a const
 * vtable plus a config schema; collector_config.c lists the schemas and
 * output.c finds the vtable of a loaded item.
 *
 * A write is synchronous and returns 0 only once the batch is as durable as
 * that output makes it: the listener acks the batch after every output and
 * the store (when on) returned 0. */
#ifndef LH_COLLECTOR_OUTPUT_H
#define LH_COLLECTOR_OUTPUT_H

#include <event2/event.h>
#include <msgpack.h>
#include <stddef.h>

#include "common/config/config.h"
#include "common/base/metrics.h"

/* One accepted batch, borrowed for the write. events: n_events concatenated
 * msgpack arrays [tag, EventTime, fields] (the store's event form). */
struct lh_coll_batch {
    const char *tag;             /* every event's (a frame has one), NUL-terminated */
    const char *chunk;           /* NULL when the sender asked no ack */
    size_t chunk_len;
    const char *events;
    size_t events_len;
    size_t n_events;
};

/* What outputs get from the collector (borrowed for their life). */
struct lh_coll_output_ctx {
    struct event_base *base;
    struct lh_metrics *metrics;
    const char *data_dir;        /* spools live under data_dir/outputs */
    const char *host;            /* this collector's name (Forward hostname) */
};

struct lh_coll_output_ops {
    const char *type;
    const struct lh_cfg_schema *schema;
    /* cfg is borrowed for the output's life; index counts the outputs of
     * this type before it. *state may be half-built on failure (destroy
     * frees it). */
    int (*create)(const struct lh_cfg_item *cfg, const struct lh_coll_output_ctx *ctx,
                  size_t index, void **state, char *err, size_t errlen);
    int (*write)(void *state, const struct lh_coll_batch *b);
    void (*destroy)(void *state);    /* NULL is fine */
};

extern const struct lh_cfg_schema lh_coll_out_null_schema;
extern const struct lh_coll_output_ops lh_coll_out_null_ops;
extern const struct lh_cfg_schema lh_coll_out_file_schema;
extern const struct lh_coll_output_ops lh_coll_out_file_ops;
extern const struct lh_cfg_schema lh_coll_out_forward_schema;
extern const struct lh_coll_output_ops lh_coll_out_forward_ops;
extern const struct lh_cfg_schema lh_coll_out_http_schema;
extern const struct lh_coll_output_ops lh_coll_out_http_ops;
extern const struct lh_cfg_schema lh_coll_out_kafka_schema;
extern const struct lh_coll_output_ops lh_coll_out_kafka_ops;

/* The counters every output keeps, labelled output="TYPE". */
struct lh_coll_output_metrics {
    struct lh_metric *records, *batches, *errors;
};
/* 0, or LH_ENOMEM. */
int lh_coll_output_metrics(struct lh_metrics *metrics, const char *type,
                           struct lh_coll_output_metrics *m);

/* The batch as NDJSON (the lines `loghaul search` prints), each record
 * preceded by the line before when it is not NULL, in out (emptied first).
 * 0, LH_ENOMEM or LH_EPROTO. */
int lh_coll_batch_ndjson(const struct lh_coll_batch *b, const char *before, msgpack_sbuffer *out);

struct lh_coll_outputs;

/* Builds every output of list (items borrowed for the outputs' life). 0
 * with *out (an empty list gives an empty set), or an LH_E* code with err
 * set. */
int lh_coll_outputs_new(const struct lh_cfg_list *list, const struct lh_coll_output_ctx *ctx,
                        struct lh_coll_outputs **out, char *err, size_t errlen);
/* Writes b to every output in config order; the first failure stops and is
 * returned (the batch is then not acked and the sender retries). */
int lh_coll_outputs_write(struct lh_coll_outputs *o, const struct lh_coll_batch *b);
size_t lh_coll_outputs_count(const struct lh_coll_outputs *o);
void lh_coll_outputs_free(struct lh_coll_outputs *o);

#endif
