#include "collector/outputs/output.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/record.h"

static const struct lh_coll_output_ops *const all_ops[] = {
    &lh_coll_out_null_ops, &lh_coll_out_file_ops, &lh_coll_out_forward_ops,
    &lh_coll_out_http_ops, &lh_coll_out_kafka_ops, NULL};

struct one {
    const struct lh_coll_output_ops *ops;
    void *state;
};

struct lh_coll_outputs {
    struct one *v;
    size_t n;
};

static const struct lh_coll_output_ops *find_ops(const struct lh_cfg_item *item)
{
    for (size_t i = 0; all_ops[i]; i++)
        if (all_ops[i]->schema == item->schema)
            return all_ops[i];
    return NULL;
}

static int add_line(msgpack_sbuffer *out, const char *s)
{
    if (msgpack_sbuffer_write(out, s, strlen(s)) != 0 || msgpack_sbuffer_write(out, "\n", 1) != 0)
        return LH_ENOMEM;
    return LH_OK;
}

int lh_coll_batch_ndjson(const struct lh_coll_batch *b, const char *before, msgpack_sbuffer *out)
{
    msgpack_unpacked ev;
    size_t off = 0;
    int rc = LH_OK;
    out->size = 0;
    msgpack_unpacked_init(&ev);
    while (rc == LH_OK && off < b->events_len) {
        const msgpack_object *a = &ev.data;
        int64_t ns;
        if (msgpack_unpack_next(&ev, b->events, b->events_len, &off) != MSGPACK_UNPACK_SUCCESS ||
            a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != 3 ||
            a->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
            lh_time_from_obj(&a->via.array.ptr[1], &ns) != 0) {
            rc = LH_EPROTO;
            break;
        }
        const msgpack_object *tag = &a->via.array.ptr[0];
        char *line = lh_record_json(tag->via.str.ptr, tag->via.str.size, ns, &a->via.array.ptr[2],
                                    NULL);
        if (!line || (before && add_line(out, before) != 0) || add_line(out, line) != 0)
            rc = LH_ENOMEM;
        free(line);
    }
    msgpack_unpacked_destroy(&ev);
    return rc;
}

int lh_coll_output_metrics(struct lh_metrics *metrics, const char *type,
                           struct lh_coll_output_metrics *m)
{
    char label[64];
    snprintf(label, sizeof label, "output=\"%s\"", type);
    m->records = lh_metrics_get(metrics, LH_METRIC_COUNTER,
                                "loghaul_collector_output_records_total", label,
                                "Records written to an output");
    m->batches = lh_metrics_get(metrics, LH_METRIC_COUNTER,
                                "loghaul_collector_output_batches_total", label,
                                "Batches written to an output");
    m->errors = lh_metrics_get(metrics, LH_METRIC_COUNTER, "loghaul_collector_output_errors_total",
                               label, "Batches an output could not write (not acknowledged)");
    return m->records && m->batches && m->errors ? LH_OK : LH_ENOMEM;
}

int lh_coll_outputs_new(const struct lh_cfg_list *list, const struct lh_coll_output_ctx *ctx,
                        struct lh_coll_outputs **out, char *err, size_t errlen)
{
    struct lh_coll_outputs *o = calloc(1, sizeof *o);
    if (!o || (list->n && !(o->v = calloc(list->n, sizeof *o->v)))) {
        free(o);
        snprintf(err, errlen, "out of memory");
        return LH_ENOMEM;
    }
    *out = o;
    for (const struct lh_cfg_item *it = list->head; it; it = it->next) {
        const struct lh_coll_output_ops *ops = find_ops(it);
        if (!ops) {
            snprintf(err, errlen, "output '%s' (line %d): unknown type", it->type, it->line);
            return LH_ECONFIG;
        }
        size_t index = 0;
        for (size_t i = 0; i < o->n; i++)
            index += o->v[i].ops == ops;
        struct one *slot = &o->v[o->n++];
        slot->ops = ops;
        int rc = ops->create(it, ctx, index, &slot->state, err, errlen);
        if (rc != 0)
            return rc;
    }
    return LH_OK;
}

int lh_coll_outputs_write(struct lh_coll_outputs *o, const struct lh_coll_batch *b)
{
    for (size_t i = 0; i < o->n; i++) {
        int rc = o->v[i].ops->write(o->v[i].state, b);
        if (rc != 0)
            return rc;
    }
    return LH_OK;
}

size_t lh_coll_outputs_count(const struct lh_coll_outputs *o)
{
    return o ? o->n : 0;
}

void lh_coll_outputs_free(struct lh_coll_outputs *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++)
        if (o->v[i].ops->destroy)
            o->v[i].ops->destroy(o->v[i].state);
    free(o->v);
    free(o);
}
