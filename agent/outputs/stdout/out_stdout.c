/* The `stdout` output (NDJSON, one record per line) and the `null` output
 * (count and discard, for benchmarks). Both acknowledge at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/core/pipeline.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/codec/record.h"

/* These outputs have no `batch` keys: batches stay small so lines show up
 * promptly, and the memory cap stays modest. */
static const struct lh_batch_limits local_limits = {
    .max_records = 1024,
    .max_bytes = 1 << 20,
    .max_wait_ms = 200,
    .max_in_flight = 4,
};

static const struct lh_cfg_field fields[] = {
    {.key = "match", .type = LH_CFG_STR, .offset = offsetof(struct lh_output_cfg, match),
     .defval = "*", .help = "fnmatch(3) glob on the tag"},
    {0},
};

const struct lh_cfg_schema lh_out_stdout_schema = {
    .name = "stdout output",
    .size = sizeof(struct lh_output_cfg),
    .fields = fields,
};

const struct lh_cfg_schema lh_out_null_schema = {
    .name = "null output",
    .size = sizeof(struct lh_output_cfg),
    .fields = fields,
};

struct local_out {
    struct lh_output *out;
    const char *host;
    bool print;
    uint64_t records;
    struct lh_metric *dropped_decode;
    struct lh_metric *dropped_write;
};

static int local_create(const struct lh_agent_ctx *ctx, struct lh_output *out,
                        struct lh_batch_limits *limits, void **state, bool print)
{
    struct local_out *o = calloc(1, sizeof *o);
    if (!o)
        return LH_ENOMEM;
    o->out = out;
    o->host = ctx->host;
    o->print = print;
    if (print) {
        o->dropped_decode = lh_pipeline_dropped(ctx->pl, "decode");
        o->dropped_write = lh_pipeline_dropped(ctx->pl, "write");
    }
    *limits = local_limits;
    *state = o;
    return LH_OK;
}

static int stdout_create(const struct lh_cfg_item *cfg, const struct lh_agent_ctx *ctx,
                         struct lh_output *out, struct lh_batch_limits *limits, void **state,
                         char *err, size_t errlen)
{
    return local_create(ctx, out, limits, state, true);
}

static int null_create(const struct lh_cfg_item *cfg, const struct lh_agent_ctx *ctx,
                       struct lh_output *out, struct lh_batch_limits *limits, void **state,
                       char *err, size_t errlen)
{
    return local_create(ctx, out, limits, state, false);
}

static int local_start(void *state)
{
    return LH_OK;
}

/* One entry [time, record] → one JSON line. */
static int print_entry(struct local_out *o, const struct lh_batch *b, const msgpack_object *e)
{
    int64_t ns = 0;
    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
        lh_time_from_obj(&e->via.array.ptr[0], &ns) != 0 ||
        e->via.array.ptr[1].type != MSGPACK_OBJECT_MAP)
        return LH_EPROTO;
    char *json = lh_record_json(b->tag, b->tag_len, ns, &e->via.array.ptr[1], o->host);
    if (!json)
        return LH_ENOMEM;
    int rc = fputs(json, stdout) < 0 || putchar('\n') == EOF ? LH_EIO : LH_OK;
    free(json);
    return rc;
}

static void print_batch(struct local_out *o, const struct lh_batch *b)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0, done = 0;
    int rc = LH_OK;
    while (rc == LH_OK && done < b->n_records) {
        if (msgpack_unpack_next(&u, b->entries.data, b->entries.size, &off) !=
            MSGPACK_UNPACK_SUCCESS) {
            rc = LH_EPROTO;
            break;
        }
        rc = print_entry(o, b, &u.data);
        if (rc == LH_OK)
            done++;
    }
    msgpack_unpacked_destroy(&u);
    if (fflush(stdout) != 0 && rc == LH_OK)
        rc = LH_EIO;
    if (rc == LH_OK)
        return;
    LH_ERROR("out_stdout", "%s: %zu records not printed", lh_strerror(rc), b->n_records - done);
    lh_metric_add(rc == LH_EIO ? o->dropped_write : o->dropped_decode,
                  (int64_t)(b->n_records - done));
}

static void local_submit(void *state, struct lh_batch *b)
{
    struct local_out *o = state;
    if (o->print)
        print_batch(o, b);
    o->records += b->n_records;
    lh_output_acked(o->out, b);
}

static void local_destroy(void *state)
{
    free(state);
}

static void local_status(void *state, json_t *outputs)
{
    struct local_out *o = state;
    json_array_append_new(outputs, json_pack("{sssIsi}", "type", o->print ? "stdout" : "null",
                                             "records", (json_int_t)o->records, "in_flight", 0));
}

const struct lh_output_ops lh_out_stdout_ops = {
    .type = "stdout",
    .schema = &lh_out_stdout_schema,
    .create = stdout_create,
    .start = local_start,
    .submit = local_submit,
    .destroy = local_destroy,
    .status = local_status,
};

const struct lh_output_ops lh_out_null_ops = {
    .type = "null",
    .schema = &lh_out_null_schema,
    .create = null_create,
    .start = local_start,
    .submit = local_submit,
    .destroy = local_destroy,
    .status = local_status,
};
