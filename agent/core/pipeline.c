#include "agent/core/pipeline.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/base/log.h"
#include "common/codec/mpwrite.h"
#include "common/base/util.h"

#define PL_LOG "pipeline"

/* One open batch per (output, tag): a PackedForward frame has one tag. */
struct slot {
    char *tag;
    struct lh_batch *open;
};

struct lh_output {
    struct lh_output *next;
    struct lh_pipeline *pl;
    const struct lh_output_ops *ops;
    void *state;
    const struct lh_output_cfg *cfg;
    struct lh_batch_limits lim;
    struct slot *slots;
    size_t n_slots;
    size_t bytes;               /* open + sealed + in flight */
    size_t sealed;              /* batches submitted, not yet acked */
    bool seal_when_acked;       /* an input went idle while sealed > 0 */
    size_t cap;                 /* past it, inputs pause */
    uint64_t queued;            /* in the output's durable buffer */
    size_t index;               /* among the outputs of its type */
    struct event *wait_timer;   /* seals batches older than max_wait */
    struct event *acked_ev;     /* seal_when_acked, run from the loop */
    struct lh_metric *acked;
};

struct target {
    struct lh_output *out;
    size_t slot;
};

struct lh_route {
    struct lh_route *next;
    struct lh_pipeline *pl;
    struct target *t;
    size_t n;
    struct lh_metric *read, *bytes;
    bool held;                  /* inside lh_route_hold/lh_route_release */
    uint64_t held_reads;        /* records emitted while held, not yet counted */
};

struct input {
    struct input *next;
    const struct lh_input_ops *ops;
    void *state;
};

struct lh_pipeline {
    struct lh_agent_ctx ctx;
    struct input *inputs;
    struct lh_output *outputs;
    struct lh_route *routes;
    size_t bytes;
    uint64_t queued;
    bool paused, stopping;
    struct event *tick;
    struct event *deadline;
    void (*done)(void *ud);
    void *done_ud;
    struct lh_metric *buffer_bytes;
    struct lh_metric *dropped_encode;
};

/* ---- batches ------------------------------------------------------------ */

void lh_batch_free(struct lh_batch *b)
{
    if (!b)
        return;
    msgpack_sbuffer_destroy(&b->entries);
    msgpack_sbuffer_destroy(&b->wire);
    free(b->segs);
    free(b);
}

/* Room for a full batch and the record that crosses max_bytes: the buffer
 * never grows by doubling (each step a copy of everything packed so far),
 * and pages not written are not resident. */
#define BATCH_SLACK (64u * 1024)

static struct lh_batch *batch_new(struct lh_output *out, const char *tag)
{
    struct lh_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    msgpack_sbuffer_init(&b->entries);
    msgpack_sbuffer_init(&b->wire);
    size_t want = (size_t)out->lim.max_bytes + BATCH_SLACK;
    if ((b->entries.data = malloc(want)))
        b->entries.alloc = want;
    if (lh_fwd_chunk_id(b->chunk) != 0) {
        lh_batch_free(b);
        return NULL;
    }
    b->out = out;
    b->tag = tag;
    b->tag_len = strlen(tag);
    b->opened_ms = lh_mono_ms();
    return b;
}

static int batch_add_seg(struct lh_batch *b, struct lh_ckpt_seg *s)
{
    if (b->n_segs == b->cap_segs) {
        size_t cap = b->cap_segs ? b->cap_segs * 2 : 4;
        struct lh_ckpt_seg **v = realloc(b->segs, cap * sizeof *v);
        if (!v)
            return LH_ENOMEM;
        b->segs = v;
        b->cap_segs = cap;
    }
    b->segs[b->n_segs++] = s;
    return LH_OK;
}

/* ---- outputs ------------------------------------------------------------ */

static void arm_wait_timer(struct lh_output *out, int64_t delay_ms)
{
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    evtimer_add(out->wait_timer, &tv);
}

static void seal(struct lh_output *out, struct slot *s)
{
    struct lh_batch *b = s->open;
    s->open = NULL;
    for (size_t i = 0; i < b->n_segs; i++)
        b->segs[i]->sealed = true;
    b->bytes = b->entries.size;
    out->sealed++;
    out->ops->submit(out->state, b);
}

static void on_wait_timer(evutil_socket_t fd, short what, void *arg)
{
    struct lh_output *out = arg;
    int64_t now = lh_mono_ms(), next = -1;
    for (size_t i = 0; i < out->n_slots; i++) {
        struct lh_batch *b = out->slots[i].open;
        if (!b)
            continue;
        int64_t due = b->opened_ms + out->lim.max_wait_ms;
        if (due <= now)
            seal(out, &out->slots[i]);
        else if (next < 0 || due - now < next)
            next = due - now;
    }
    if (next >= 0)
        arm_wait_timer(out, next);
}

static void flush_output(struct lh_output *out)
{
    for (size_t i = 0; i < out->n_slots; i++)
        if (out->slots[i].open)
            seal(out, &out->slots[i]);
}

static void on_acked_ev(evutil_socket_t fd, short what, void *arg)
{
    struct lh_output *out = arg;
    if (!out->seal_when_acked || out->sealed > 0)
        return;
    out->seal_when_acked = false;
    flush_output(out);
}

static void set_paused(struct lh_pipeline *pl, bool paused)
{
    if (pl->paused == paused || pl->stopping)
        return;
    pl->paused = paused;
    LH_DEBUG(PL_LOG, "%s inputs (%zu bytes held by outputs)", paused ? "pausing" : "resuming",
             pl->bytes);
    for (struct input *in = pl->inputs; in; in = in->next) {
        if (paused)
            in->ops->pause(in->state);
        else
            in->ops->resume(in->state);
    }
}

static bool over_cap(const struct lh_pipeline *pl)
{
    for (const struct lh_output *o = pl->outputs; o; o = o->next)
        if (o->bytes > o->cap)
            return true;
    return false;
}

static void count_bytes(struct lh_output *out, size_t add, size_t sub)
{
    out->bytes = out->bytes + add - sub;
    out->pl->bytes = out->pl->bytes + add - sub;
    lh_metric_set(out->pl->buffer_bytes, (int64_t)(out->pl->bytes + out->pl->queued));
}

static void check_drained(struct lh_pipeline *pl)
{
    if (!pl->stopping || !pl->done || pl->bytes > 0 || pl->queued > 0)
        return;
    void (*done)(void *) = pl->done;
    pl->done = NULL;
    done(pl->done_ud);
}

void lh_output_acked(struct lh_output *out, struct lh_batch *b)
{
    struct lh_pipeline *pl = out->pl;
    count_bytes(out, 0, b->bytes);
    out->sealed--;
    lh_metric_add(out->acked, (int64_t)b->n_records);
    for (size_t i = 0; i < b->n_segs; i++)
        lh_ckpt_release(pl->ctx.ckpt, b->segs[i]);
    lh_batch_free(b);
    /* Not sealed here: an output acks from deep inside its own code. */
    if (out->seal_when_acked && out->sealed == 0) {
        static const struct timeval now = {0, 0};
        evtimer_add(out->acked_ev, &now);
    }
    if (pl->paused && !over_cap(pl))
        set_paused(pl, false);
    check_drained(pl);
}

void lh_output_queued(struct lh_output *out, uint64_t bytes)
{
    struct lh_pipeline *pl = out->pl;
    pl->queued = pl->queued - out->queued + bytes;
    out->queued = bytes;
    lh_metric_set(pl->buffer_bytes, (int64_t)(pl->bytes + pl->queued));
    check_drained(pl);
}

size_t lh_output_index(const struct lh_output *out)
{
    return out->index;
}

struct lh_metric *lh_pipeline_dropped(struct lh_pipeline *pl, const char *reason)
{
    char labels[96];
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    return lh_metrics_get(pl->ctx.metrics, LH_METRIC_COUNTER, "loghaul_agent_records_dropped_total",
                          labels, "Records lost, by reason");
}

static int output_new(struct lh_pipeline *pl, const struct lh_cfg_item *item, char *err,
                      size_t errlen)
{
    const struct lh_output_ops *ops = lh_output_ops_find(pl->ctx.plugins, item);
    struct lh_output *out = calloc(1, sizeof *out);
    if (!ops || !out) {
        free(out);
        snprintf(err, errlen, "output '%s': %s", item->type, ops ? "out of memory" : "unknown type");
        return ops ? LH_ENOMEM : LH_ECONFIG;
    }
    out->pl = pl;
    out->ops = ops;
    out->cfg = (const struct lh_output_cfg *)item;
    struct lh_output **tail = &pl->outputs;
    for (; *tail; tail = &(*tail)->next)
        out->index += (*tail)->ops == ops;
    *tail = out;
    char labels[96];
    snprintf(labels, sizeof labels, "output=\"%s\"", ops->type);
    out->acked = lh_metrics_get(pl->ctx.metrics, LH_METRIC_COUNTER,
                                "loghaul_agent_records_acked_total", labels,
                                "Records acknowledged by an output");
    out->wait_timer = evtimer_new(pl->ctx.base, on_wait_timer, out);
    out->acked_ev = evtimer_new(pl->ctx.base, on_acked_ev, out);
    if (!out->wait_timer || !out->acked_ev) {
        snprintf(err, errlen, "output '%s': out of memory", item->type);
        return LH_ENOMEM;
    }
    int rc = ops->create(item, &pl->ctx, out, &out->lim, &out->state, err, errlen);
    if (rc != 0)
        return rc;
    out->cap = (size_t)((out->lim.max_in_flight + 2) * out->lim.max_bytes);
    return LH_OK;
}

static void output_free(struct lh_output *out)
{
    for (size_t i = 0; i < out->n_slots; i++) {
        lh_batch_free(out->slots[i].open);
        free(out->slots[i].tag);
    }
    free(out->slots);
    if (out->state)
        out->ops->destroy(out->state);
    if (out->wait_timer)
        event_free(out->wait_timer);
    if (out->acked_ev)
        event_free(out->acked_ev);
    free(out);
}

static int output_slot(struct lh_output *out, const char *tag, size_t *idx)
{
    for (size_t i = 0; i < out->n_slots; i++) {
        if (strcmp(out->slots[i].tag, tag) == 0) {
            *idx = i;
            return LH_OK;
        }
    }
    struct slot *v = realloc(out->slots, (out->n_slots + 1) * sizeof *v);
    if (!v)
        return LH_ENOMEM;
    out->slots = v;
    v[out->n_slots] = (struct slot){.tag = strdup(tag)};
    if (!v[out->n_slots].tag)
        return LH_ENOMEM;
    *idx = out->n_slots++;
    return LH_OK;
}

/* ---- routes ------------------------------------------------------------- */

int lh_pipeline_route(struct lh_pipeline *pl, const char *tag, struct lh_route **route)
{
    struct lh_route *r = calloc(1, sizeof *r);
    if (!r)
        return LH_ENOMEM;
    r->pl = pl;
    r->next = pl->routes;
    pl->routes = r;
    char labels[300];
    snprintf(labels, sizeof labels, "input=\"%s\"", tag);
    r->read = lh_metrics_get(pl->ctx.metrics, LH_METRIC_COUNTER,
                             "loghaul_agent_records_read_total", labels, "Records read by an input");
    r->bytes = lh_metrics_get(pl->ctx.metrics, LH_METRIC_COUNTER,
                              "loghaul_agent_bytes_read_total", labels,
                              "Bytes an input read (file bytes, syslog message bytes)");
    for (struct lh_output *o = pl->outputs; o; o = o->next) {
        if (fnmatch(o->cfg->match, tag, 0) != 0)
            continue;
        struct target *t = realloc(r->t, (r->n + 1) * sizeof *t);
        if (!t)
            return LH_ENOMEM;
        r->t = t;
        t[r->n].out = o;
        if (output_slot(o, tag, &t[r->n].slot) != 0)
            return LH_ENOMEM;
        r->n++;
    }
    if (r->n == 0)
        LH_WARN(PL_LOG, "records tagged '%s' match no output's `match`: they are read and "
                        "not sent anywhere", tag);
    *route = r;
    return LH_OK;
}

static struct lh_batch *open_batch(struct lh_output *out, size_t slot)
{
    struct slot *s = &out->slots[slot];
    if (!s->open) {
        s->open = batch_new(out, s->tag);
        if (s->open && !evtimer_pending(out->wait_timer, NULL))
            arm_wait_timer(out, out->lim.max_wait_ms);
    }
    return s->open;
}

/* A Forward entry's array header and time (the bytes of
 * lh_fwd_pack_entry_begin) written inline: msgpack_packer's callback per
 * value showed up in profiles of this path. */
static int entry_head(msgpack_sbuffer *sb, int64_t ns)
{
    char *p = lh_mpw_reserve(sb, 1 + LH_MPW_EVENT_TIME_LEN);
    if (!p || !(p = lh_mpw_event_time(lh_mpw_array_hdr(p, 2), ns)))
        return LH_ENOMEM;
    lh_mpw_commit(sb, p);
    return LH_OK;
}

/* Packs into one target. *holds_seg: the batch now references seg (and
 * releases it on ack), even when packing the record itself failed. */
static int emit_one(struct target *t, struct lh_ckpt_seg *seg, int64_t ns, lh_pack_fields_fn fn,
                    void *ud, bool *holds_seg)
{
    *holds_seg = false;
    struct lh_batch *b = open_batch(t->out, t->slot);
    if (!b || (seg && batch_add_seg(b, seg) != 0))
        return LH_ENOMEM;
    *holds_seg = seg != NULL;
    size_t before = b->entries.size;
    if (entry_head(&b->entries, ns) != 0 || fn(&b->entries, ud) != 0) {
        b->entries.size = before; /* drop the half-packed entry */
        return LH_ENOMEM;
    }
    b->n_records++;
    count_bytes(t->out, b->entries.size - before, 0);
    if ((int64_t)b->n_records >= t->out->lim.max_records ||
        (int64_t)b->entries.size >= t->out->lim.max_bytes)
        seal(t->out, &t->out->slots[t->slot]);
    return LH_OK;
}

int lh_route_emit(struct lh_route *r, struct lh_ckpt_file *f, uint64_t end, int64_t ns,
                  lh_pack_fields_fn fn, void *ud)
{
    struct lh_pipeline *pl = r->pl;
    if (r->held)
        r->held_reads++;
    else
        lh_metric_add(r->read, 1);
    bool fresh = false;
    /* Inputs without a file position (syslog) have nothing to checkpoint. */
    struct lh_ckpt_seg *seg =
        f ? lh_ckpt_track(pl->ctx.ckpt, f, end, (unsigned)r->n, &fresh) : NULL;
    if (!seg && fresh) {
        lh_metric_add(pl->dropped_encode, 1);
        return LH_ENOMEM;
    }
    int rc = LH_OK;
    for (size_t i = 0; i < r->n; i++) {
        bool held = false;
        if (emit_one(&r->t[i], fresh ? seg : NULL, ns, fn, ud, &held) == 0)
            continue;
        /* Counted as lost, so the file's checkpoint must not wait on it. */
        if (fresh && !held)
            lh_ckpt_release(pl->ctx.ckpt, seg);
        lh_metric_add(pl->dropped_encode, 1);
        rc = LH_ENOMEM;
    }
    if (!r->held && !pl->paused && over_cap(pl))
        set_paused(pl, true);
    return rc;
}

void lh_route_bytes(struct lh_route *r, uint64_t n)
{
    lh_metric_add(r->bytes, (int64_t)n);
}

void lh_route_hold(struct lh_route *r)
{
    r->held = true;
}

void lh_route_release(struct lh_route *r)
{
    struct lh_pipeline *pl = r->pl;
    r->held = false;
    if (r->held_reads)
        lh_metric_add(r->read, (int64_t)r->held_reads);
    r->held_reads = 0;
    if (!pl->paused && over_cap(pl))
        set_paused(pl, true);
}

void lh_route_idle(struct lh_route *r)
{
    for (size_t i = 0; i < r->n; i++) {
        struct lh_output *out = r->t[i].out;
        if (!out->slots[r->t[i].slot].open)
            continue;
        if (out->sealed == 0)
            seal(out, &out->slots[r->t[i].slot]);
        else
            out->seal_when_acked = true;
    }
}

/* ---- the pipeline ------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct lh_pipeline *pl = arg;
    if (pl->ctx.ckpt->dirty)
        lh_pipeline_save(pl);
}

int lh_pipeline_save(struct lh_pipeline *pl)
{
    int rc = lh_ckpt_save(pl->ctx.ckpt);
    if (rc != 0)
        LH_ERROR(PL_LOG, "saving checkpoints to %s: %s", pl->ctx.ckpt->path, lh_strerror(rc));
    return rc;
}

static int input_new(struct lh_pipeline *pl, const struct lh_cfg_item *item, char *err,
                     size_t errlen)
{
    const struct lh_input_ops *ops = lh_input_ops_find(pl->ctx.plugins, item);
    struct input *in = calloc(1, sizeof *in);
    if (!ops || !in) {
        free(in);
        snprintf(err, errlen, "input '%s': %s", item->type, ops ? "out of memory" : "unknown type");
        return ops ? LH_ENOMEM : LH_ECONFIG;
    }
    in->ops = ops;
    struct input **tail = &pl->inputs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = in;
    return ops->create(item, &pl->ctx, &in->state, err, errlen);
}

int lh_pipeline_new(const struct lh_agent_ctx *ctx, const struct lh_cfg_list *inputs,
                    const struct lh_cfg_list *outputs, struct lh_pipeline **out, char *err,
                    size_t errlen)
{
    struct lh_pipeline *pl = calloc(1, sizeof *pl);
    if (!pl)
        return LH_ENOMEM;
    *out = pl;
    pl->ctx = *ctx;
    pl->ctx.pl = pl;
    if (!pl->ctx.plugins)
        pl->ctx.plugins = &lh_agent_plugins;
    pl->buffer_bytes = lh_metrics_get(ctx->metrics, LH_METRIC_GAUGE, "loghaul_agent_buffer_bytes",
                                      NULL, "Bytes held by outputs (memory and disk buffers), "
                                      "not yet delivered");
    /* Every reason a record can be lost, so /metrics shows them at 0. */
    pl->dropped_encode = lh_pipeline_dropped(pl, "encode");
    lh_pipeline_dropped(pl, "decode");
    lh_pipeline_dropped(pl, "write");
    lh_pipeline_dropped(pl, "buffer_full");
    lh_pipeline_dropped(pl, "buffer_corrupt");
    pl->tick = event_new(ctx->base, -1, EV_PERSIST, on_tick, pl);
    if (!pl->tick) {
        snprintf(err, errlen, "out of memory");
        return LH_ENOMEM;
    }
    int rc = 0;
    for (const struct lh_cfg_item *it = outputs->head; it && rc == 0; it = it->next)
        rc = output_new(pl, it, err, errlen);
    for (const struct lh_cfg_item *it = inputs->head; it && rc == 0; it = it->next)
        rc = input_new(pl, it, err, errlen);
    return rc;
}

int lh_pipeline_start(struct lh_pipeline *pl, char *err, size_t errlen)
{
    for (struct lh_output *o = pl->outputs; o; o = o->next) {
        int rc = o->ops->start(o->state);
        if (rc != 0) {
            snprintf(err, errlen, "%s output: %s", o->ops->type, lh_strerror(rc));
            return rc;
        }
    }
    for (struct input *in = pl->inputs; in; in = in->next) {
        int rc = in->ops->start(in->state);
        if (rc != 0) {
            snprintf(err, errlen, "%s input: %s", in->ops->type, lh_strerror(rc));
            return rc;
        }
    }
    struct timeval sec = {1, 0};
    event_add(pl->tick, &sec);
    return LH_OK;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct lh_pipeline *pl = arg;
    LH_WARN(PL_LOG, "shutdown timeout: %zu bytes of records not acknowledged and %llu "
                    "buffered bytes not delivered; they are read again or sent from the buffer "
                    "at the next start", pl->bytes, (unsigned long long)pl->queued);
    void (*done)(void *) = pl->done;
    pl->done = NULL;
    if (done)
        done(pl->done_ud);
}

void lh_pipeline_shutdown(struct lh_pipeline *pl, int64_t timeout_ms, void (*done)(void *ud),
                          void *ud)
{
    if (pl->stopping)
        return;
    for (struct input *in = pl->inputs; in; in = in->next)
        in->ops->stop(in->state);
    pl->stopping = true;
    pl->done = done;
    pl->done_ud = ud;
    for (struct lh_output *o = pl->outputs; o; o = o->next)
        flush_output(o);
    pl->deadline = evtimer_new(pl->ctx.base, on_deadline, pl);
    if (pl->deadline) {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(pl->deadline, &tv);
    }
    check_drained(pl);
}

void lh_pipeline_free(struct lh_pipeline *pl)
{
    if (!pl)
        return;
    while (pl->inputs) {
        struct input *in = pl->inputs;
        pl->inputs = in->next;
        in->ops->destroy(in->state);
        free(in);
    }
    while (pl->outputs) {
        struct lh_output *o = pl->outputs;
        pl->outputs = o->next;
        output_free(o);
    }
    while (pl->routes) {
        struct lh_route *r = pl->routes;
        pl->routes = r->next;
        free(r->t);
        free(r);
    }
    if (pl->tick)
        event_free(pl->tick);
    if (pl->deadline)
        event_free(pl->deadline);
    free(pl);
}

json_t *lh_pipeline_status(struct lh_pipeline *pl)
{
    json_t *files = json_array(), *outputs = json_array();
    json_t *root = json_pack("{soso}", "files", files, "outputs", outputs);
    if (!root)
        return NULL;
    for (struct input *in = pl->inputs; in; in = in->next)
        in->ops->status(in->state, files);
    for (struct lh_output *o = pl->outputs; o; o = o->next)
        o->ops->status(o->state, outputs);
    return root;
}
