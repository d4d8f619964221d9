/* The `null` output: counts batches and records, keeps nothing. With the
 * store off it is the durable end by intention (benchmarks of the transport,
 * or a collector whose only job is to acknowledge), so a batch counts as
 * written as soon as it is counted. */
#include <stdlib.h>

#include "collector/output.h"
#include "common/err.h"

struct null_cfg {
    struct lh_cfg_item item;
};

static const struct lh_cfg_field fields[] = {{0}};

const struct lh_cfg_schema lh_coll_out_null_schema = {
    .name = "null output",
    .size = sizeof(struct null_cfg),
    .fields = fields,
};

struct out_null {
    struct lh_metric *records, *batches;
};

static int null_create(const struct lh_cfg_item *cfg, struct lh_metrics *metrics, void **state,
                       char *err, size_t errlen)
{
    struct out_null *o = calloc(1, sizeof *o);
    if (!o)
        return LH_ENOMEM;
    *state = o;
    o->records = lh_metrics_get(metrics, LH_METRIC_COUNTER,
                                "loghaul_collector_output_records_total", "output=\"null\"",
                                "Records written to an output");
    o->batches = lh_metrics_get(metrics, LH_METRIC_COUNTER,
                                "loghaul_collector_output_batches_total", "output=\"null\"",
                                "Batches written to an output");
    return o->records && o->batches ? LH_OK : LH_ENOMEM;
}

static int null_write(void *state, const struct lh_coll_batch *b)
{
    struct out_null *o = state;
    lh_metric_add(o->records, (int64_t)b->n_events);
    lh_metric_add(o->batches, 1);
    return LH_OK;
}

const struct lh_coll_output_ops lh_coll_out_null_ops = {
    .type = "null",
    .schema = &lh_coll_out_null_schema,
    .create = null_create,
    .write = null_write,
    .destroy = free,
};
