/* The `null` output: counts batches and records, keeps nothing. With the
 * store off it is the durable end by intention (benchmarks of the transport,
 * or a collector whose only job is to acknowledge), so a batch counts as
 * written as soon as it is counted. */
#include <stdlib.h>

#include "collector/outputs/output.h"
#include "common/base/err.h"

struct null_cfg {
    struct lh_cfg_item item;
};

static const struct lh_cfg_field fields[] = {{0}};

const struct lh_cfg_schema lh_coll_out_null_schema = {
    .name = "null output",
    .size = sizeof(struct null_cfg),
    .fields = fields,
};

static int null_create(const struct lh_cfg_item *cfg, const struct lh_coll_output_ctx *ctx,
                       size_t index, void **state, char *err, size_t errlen)
{
    struct lh_coll_output_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return LH_ENOMEM;
    *state = m;
    return lh_coll_output_metrics(ctx->metrics, "null", m);
}

static int null_write(void *state, const struct lh_coll_batch *b)
{
    struct lh_coll_output_metrics *m = state;
    lh_metric_add(m->records, (int64_t)b->n_events);
    lh_metric_add(m->batches, 1);
    return LH_OK;
}

const struct lh_coll_output_ops lh_coll_out_null_ops = {
    .type = "null",
    .schema = &lh_coll_out_null_schema,
    .create = null_create,
    .write = null_write,
    .destroy = free,
};
