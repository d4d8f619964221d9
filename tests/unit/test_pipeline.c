/* The agent pipeline in process: a fake input and a fake output (vtables
 * of the same shape as the real plugins, handed to the pipeline through
 * lh_agent_ctx.plugins) on a real event_base. Each case drives the
 * pipeline by hand (emit, idle, ack) and checks what the hooks saw. */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/core/pipeline.h"
#include "common/base/err.h"
#include "common/base/metrics.h"
#include "common/base/util.h"
#include "common/codec/record.h"
#include "lh_check.h"

#define MAX_IN 4
#define MAX_OUT 2
#define MAX_SUBS 64
#define T_NS 1700000000123456789LL

struct fx;

struct fake_in_cfg {
    struct lh_cfg_item item;
    const char *tag;
    struct fx *fx;
    int idx;
};

struct fake_in {
    struct fx *fx;
    int idx;
    struct lh_route *route;
    bool paused, stopped;
};

struct fake_out_cfg {
    struct lh_output_cfg base;
    struct lh_batch_limits lim;
    struct fx *fx;
    int idx;
};

/* What the output saw of one submitted batch (kept after the ack frees it). */
struct sub {
    char tag[32];
    size_t n, size, bytes;
    int64_t opened_ms, at_ms;
    char msgs[160];              /* the records' "msg" fields, comma-terminated */
};

struct fake_out {
    struct lh_output *out;
    struct lh_batch *held[MAX_SUBS]; /* submitted, not acked, oldest first */
    size_t n_held;
    struct sub subs[MAX_SUBS];
    size_t n_subs;
};

/* One per test, on its stack: every hook reaches it through its config. */
struct fx {
    char dir[PATH_MAX];
    struct event_base *base;
    struct lh_metrics *metrics;
    struct lh_ckpt *ckpt;
    struct fake_in_cfg in_cfg[MAX_IN];
    struct fake_out_cfg out_cfg[MAX_OUT];
    struct lh_cfg_list ins, outs;
    struct fake_in *in[MAX_IN];
    struct fake_out *out[MAX_OUT];
    struct lh_pipeline *pl;
    char log[256];               /* hook calls: "P0 " pause, "R0 " resume, "S0 " stop */
    bool drained;
    int64_t drained_us;
};

static void fx_log(struct fx *fx, char what, int idx)
{
    size_t n = strlen(fx->log);
    ck_assert_uint_lt(n + 4, sizeof fx->log);
    snprintf(fx->log + n, sizeof fx->log - n, "%c%d ", what, idx);
}

/* ---- the fake input ---------------------------------------------------- */

static const struct lh_cfg_field no_fields[] = {{0}};
static const struct lh_cfg_schema fake_in_schema = {
    .name = "fake input", .size = sizeof(struct fake_in_cfg), .fields = no_fields};
static const struct lh_cfg_schema fake_out_schema = {
    .name = "fake output", .size = sizeof(struct fake_out_cfg), .fields = no_fields};

static int fin_create(const struct lh_cfg_item *item, const struct lh_agent_ctx *ctx,
                      void **state, char *err, size_t errlen)
{
    const struct fake_in_cfg *cfg = (const struct fake_in_cfg *)item;
    struct fake_in *in = calloc(1, sizeof *in);
    if (!in)
        return LH_ENOMEM;
    *state = in;
    in->fx = cfg->fx;
    in->idx = cfg->idx;
    cfg->fx->in[cfg->idx] = in;
    return lh_pipeline_route(ctx->pl, cfg->tag, &in->route);
}

static int fin_start(void *state)
{
    return LH_OK;
}

static void fin_pause(void *state)
{
    struct fake_in *in = state;
    ck_assert_msg(!in->paused, "pause of a paused input");
    in->paused = true;
    fx_log(in->fx, 'P', in->idx);
}

static void fin_resume(void *state)
{
    struct fake_in *in = state;
    ck_assert_msg(in->paused, "resume of a running input");
    in->paused = false;
    fx_log(in->fx, 'R', in->idx);
}

static void fin_stop(void *state)
{
    struct fake_in *in = state;
    in->stopped = true;
    fx_log(in->fx, 'S', in->idx);
}

static void fin_destroy(void *state)
{
    free(state);
}

static void fin_status(void *state, json_t *files)
{
}

static const struct lh_input_ops fake_in_ops = {
    .type = "fake", .schema = &fake_in_schema, .create = fin_create, .start = fin_start,
    .pause = fin_pause, .resume = fin_resume, .stop = fin_stop, .destroy = fin_destroy,
    .status = fin_status,
};

/* ---- the fake output: holds every batch until the test acks it ---------- */

static int fout_create(const struct lh_cfg_item *item, const struct lh_agent_ctx *ctx,
                       struct lh_output *out, struct lh_batch_limits *limits, void **state,
                       char *err, size_t errlen)
{
    const struct fake_out_cfg *cfg = (const struct fake_out_cfg *)item;
    struct fake_out *o = calloc(1, sizeof *o);
    if (!o)
        return LH_ENOMEM;
    o->out = out;
    *limits = cfg->lim;
    *state = o;
    cfg->fx->out[cfg->idx] = o;
    return LH_OK;
}

static int fout_start(void *state)
{
    return LH_OK;
}

/* The "msg" field of every [time, {msg: ...}] entry, checking the time. */
static void read_msgs(const struct lh_batch *b, char *msgs, size_t cap)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0, n = 0;
    msgs[0] = '\0';
    while (msgpack_unpack_next(&u, b->entries.data, b->entries.size, &off) ==
           MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *e = &u.data;
        int64_t ns = 0;
        ck_assert(e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 2);
        ck_assert_int_eq(lh_time_from_obj(&e->via.array.ptr[0], &ns), 0);
        ck_assert_int_eq(ns, T_NS);
        const msgpack_object *m = &e->via.array.ptr[1];
        ck_assert(m->type == MSGPACK_OBJECT_MAP && m->via.map.size == 1);
        const msgpack_object_str *s = &m->via.map.ptr[0].val.via.str;
        size_t len = strlen(msgs);
        snprintf(msgs + len, cap - len, "%.*s,", (int)s->size, s->ptr);
        n++;
    }
    msgpack_unpacked_destroy(&u);
    ck_assert_uint_eq(off, b->entries.size);
    ck_assert_uint_eq(n, b->n_records);
}

static void fout_submit(void *state, struct lh_batch *b)
{
    struct fake_out *o = state;
    ck_assert_uint_lt(o->n_subs, MAX_SUBS);
    struct sub *s = &o->subs[o->n_subs++];
    snprintf(s->tag, sizeof s->tag, "%.*s", (int)b->tag_len, b->tag);
    s->n = b->n_records;
    s->size = b->entries.size;
    s->bytes = b->bytes;
    s->opened_ms = b->opened_ms;
    s->at_ms = lh_mono_ms();
    read_msgs(b, s->msgs, sizeof s->msgs);
    o->held[o->n_held++] = b;
}

static void fout_destroy(void *state)
{
    struct fake_out *o = state;
    for (size_t i = 0; i < o->n_held; i++)
        lh_batch_free(o->held[i]);
    free(o);
}

static void fout_status(void *state, json_t *outputs)
{
}

static const struct lh_output_ops fake_out_ops = {
    .type = "fake", .schema = &fake_out_schema, .create = fout_create, .start = fout_start,
    .submit = fout_submit, .destroy = fout_destroy, .status = fout_status,
};

static const struct lh_input_ops *const fake_inputs[] = {&fake_in_ops, NULL};
static const struct lh_output_ops *const fake_outputs[] = {&fake_out_ops, NULL};
static const struct lh_plugins fake_plugins = {fake_inputs, fake_outputs};

/* ---- the fixture --------------------------------------------------------- */

static void fx_init(struct fx *fx)
{
    memset(fx, 0, sizeof *fx);
    lh_test_mkdtemp(fx->dir, sizeof fx->dir, "pipeline");
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/checkpoints.json", fx->dir);
    ck_assert_int_eq(lh_ckpt_new(path, &fx->ckpt), 0);
    fx->base = event_base_new();
    fx->metrics = lh_metrics_new();
    ck_assert(fx->base && fx->metrics);
}

static void list_append(struct lh_cfg_list *l, struct lh_cfg_item *it)
{
    struct lh_cfg_item **tail = &l->head;
    while (*tail)
        tail = &(*tail)->next;
    *tail = it;
    l->n++;
}

static void fx_add_in(struct fx *fx, const char *tag)
{
    int i = (int)fx->ins.n;
    ck_assert_int_lt(i, MAX_IN);
    fx->in_cfg[i] = (struct fake_in_cfg){
        .item = {.type = "fake", .schema = &fake_in_schema}, .tag = tag, .fx = fx, .idx = i};
    list_append(&fx->ins, &fx->in_cfg[i].item);
}

static void fx_add_out(struct fx *fx, const char *match, int64_t max_records, int64_t max_bytes,
                       int64_t max_wait_ms, int64_t max_in_flight)
{
    int i = (int)fx->outs.n;
    ck_assert_int_lt(i, MAX_OUT);
    fx->out_cfg[i] = (struct fake_out_cfg){
        .base = {.item = {.type = "fake", .schema = &fake_out_schema}, .match = (char *)match},
        .lim = {max_records, max_bytes, max_wait_ms, max_in_flight},
        .fx = fx,
        .idx = i};
    list_append(&fx->outs, &fx->out_cfg[i].base.item);
}

static void fx_start(struct fx *fx)
{
    struct lh_agent_ctx ctx = {.base = fx->base, .host = "testhost", .metrics = fx->metrics,
                               .ckpt = fx->ckpt, .data_dir = fx->dir, .plugins = &fake_plugins};
    char err[256] = "";
    ck_assert_msg(lh_pipeline_new(&ctx, &fx->ins, &fx->outs, &fx->pl, err, sizeof err) == 0,
                  "new: %s", err);
    ck_assert_msg(lh_pipeline_start(fx->pl, err, sizeof err) == 0, "start: %s", err);
}

/* One input "app", one output taking it, max_wait out of the way. */
static void fx_one_to_one(struct fx *fx, int64_t max_records, int64_t max_bytes)
{
    fx_init(fx);
    fx_add_in(fx, "app");
    fx_add_out(fx, "*", max_records, max_bytes, 60000, 100);
    fx_start(fx);
}

static void fx_free(struct fx *fx)
{
    lh_pipeline_free(fx->pl);
    lh_ckpt_free(fx->ckpt);
    lh_metrics_free(fx->metrics);
    event_base_free(fx->base);
    lh_test_rmrf(fx->dir);
}

static int pack_msg(msgpack_sbuffer *sb, void *ud)
{
    const char *msg = ud;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (msgpack_pack_map(&pk, 1) || msgpack_pack_str_with_body(&pk, "msg", 3) ||
        msgpack_pack_str_with_body(&pk, msg, strlen(msg)))
        return LH_ENOMEM;
    return LH_OK;
}

/* One record from input i; f/end as an input with a file position passes. */
static void emit_at(struct fx *fx, int i, struct lh_ckpt_file *f, uint64_t end, const char *msg)
{
    ck_assert_int_eq(lh_route_emit(fx->in[i]->route, f, end, T_NS, pack_msg, (void *)msg), 0);
}

static void emit(struct fx *fx, int i, const char *msg)
{
    emit_at(fx, i, NULL, 0, msg);
}

/* The output's batch held at position i (0 oldest) is safe: ack it. */
static void ack(struct fx *fx, int o, size_t i)
{
    struct fake_out *out = fx->out[o];
    ck_assert_uint_lt(i, out->n_held);
    struct lh_batch *b = out->held[i];
    memmove(&out->held[i], &out->held[i + 1], (out->n_held - i - 1) * sizeof *out->held);
    out->n_held--;
    lh_output_acked(out->out, b);
}

/* Bytes the outputs hold (open + sealed + in flight), as /metrics shows. */
static int64_t held_bytes(struct fx *fx)
{
    return lh_metric_value(lh_metrics_get(fx->metrics, LH_METRIC_GAUGE,
                                          "loghaul_agent_buffer_bytes", NULL, ""));
}

static bool sub_has(const struct fake_out *o, const char *tag, const char *msgs)
{
    for (size_t i = 0; i < o->n_subs; i++)
        if (strcmp(o->subs[i].tag, tag) == 0 && strcmp(o->subs[i].msgs, msgs) == 0)
            return true;
    return false;
}

static void on_poke(evutil_socket_t fd, short what, void *arg)
{
}

/* Turns the loop until cond(fx, arg) holds or ms pass; whether it holds. A
 * 5 ms persistent timer keeps each turn short. */
static bool run_until(struct fx *fx, bool (*cond)(struct fx *, size_t), size_t arg, int64_t ms)
{
    struct event *poke = event_new(fx->base, -1, EV_PERSIST, on_poke, NULL);
    struct timeval tv = {0, 5000};
    ck_assert_ptr_nonnull(poke);
    event_add(poke, &tv);
    int64_t end = lh_mono_ms() + ms;
    bool ok;
    while (!(ok = cond(fx, arg)) && lh_mono_ms() < end)
        event_base_loop(fx->base, EVLOOP_ONCE);
    event_free(poke);
    return ok;
}

static bool subs_of_out0(struct fx *fx, size_t n)
{
    return fx->out[0]->n_subs >= n;
}

static bool is_drained(struct fx *fx, size_t unused)
{
    return fx->drained;
}

static bool never(struct fx *fx, size_t unused)
{
    return false;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_drained(void *ud)
{
    struct fx *fx = ud;
    ck_assert_msg(!fx->drained, "done ran twice");
    fx->drained = true;
    fx->drained_us = mono_us();
}

/* ---- sealing ------------------------------------------------------------- */

START_TEST(test_seal_max_records)
{
    struct fx fx;
    fx_one_to_one(&fx, 3, 1 << 20);
    struct lh_ckpt_file *f = lh_ckpt_file_open(fx.ckpt, 1, 2, "/fake.log", 0);
    ck_assert_ptr_nonnull(f);
    const char *msgs[] = {"a", "b", "c", "d", "e", "f", "g"};
    for (size_t i = 0; i < 7; i++) {
        emit_at(&fx, 0, f, (i + 1) * 10, msgs[i]);
        /* Sealed by the record that reaches max_records, not later. */
        ck_assert_uint_eq(fx.out[0]->n_subs, (i + 1) / 3);
    }
    ck_assert_str_eq(fx.out[0]->subs[0].msgs, "a,b,c,");
    ck_assert_str_eq(fx.out[0]->subs[1].msgs, "d,e,f,");
    ck_assert_uint_eq(fx.out[0]->subs[0].bytes, fx.out[0]->subs[0].size);
    /* The file moves only over what the output acknowledged, in order. */
    ack(&fx, 0, 1);
    ck_assert_uint_eq(f->committed, 0);
    ack(&fx, 0, 0);
    ck_assert_uint_eq(f->committed, 60);
    ck_assert_int_gt(held_bytes(&fx), 0); /* "g" is still open */
    fx_free(&fx);
}
END_TEST

START_TEST(test_seal_max_bytes)
{
    struct fx fx;
    fx_one_to_one(&fx, 100000, 300);
    for (int i = 0; i < 30; i++)
        emit(&fx, 0, "a record of forty bytes, give or take..");
    struct fake_out *o = fx.out[0];
    ck_assert_uint_ge(o->n_subs, 3);
    for (size_t i = 0; i < o->n_subs; i++) {
        struct sub *s = &o->subs[i];
        size_t rec = s->size / s->n;
        ck_assert_uint_eq(s->size % s->n, 0);
        /* At max_bytes, by the record that crossed it. */
        ck_assert_uint_ge(s->size, 300);
        ck_assert_uint_lt(s->size - rec, 300);
    }
    fx_free(&fx);
}
END_TEST

/* Two batches opened 30 ms apart: each is sealed max_wait after it opened,
 * the older first, by one timer re-armed for the younger. */
START_TEST(test_seal_max_wait)
{
    struct fx fx;
    fx_init(&fx);
    fx_add_in(&fx, "a");
    fx_add_in(&fx, "b");
    fx_add_out(&fx, "*", 1000, 1 << 20, 80, 100);
    fx_start(&fx);
    emit(&fx, 0, "first");
    ck_assert(!run_until(&fx, never, 0, 30));
    ck_assert_uint_eq(fx.out[0]->n_subs, 0);
    emit(&fx, 1, "second");
    ck_assert(run_until(&fx, subs_of_out0, 2, 5000));
    struct sub *s = fx.out[0]->subs;
    ck_assert_str_eq(s[0].tag, "a");
    ck_assert_str_eq(s[1].tag, "b");
    for (int i = 0; i < 2; i++) {
        int64_t waited = s[i].at_ms - s[i].opened_ms;
        ck_assert_msg(waited >= 80 && waited < 2000, "batch %d sealed after %lld ms", i,
                      (long long)waited);
    }
    ck_assert_int_ge(s[1].opened_ms - s[0].opened_ms, 30);
    fx_free(&fx);
}
END_TEST

/* An input that has read everything: sealed at once when the output has
 * nothing unacknowledged, else when its acks are in, never by max_wait. */
START_TEST(test_seal_when_idle)
{
    struct fx fx;
    fx_one_to_one(&fx, 1000, 1 << 20);
    struct fake_out *o = fx.out[0];
    lh_route_idle(fx.in[0]->route); /* nothing open: nothing sealed */
    ck_assert_uint_eq(o->n_subs, 0);
    emit(&fx, 0, "a");
    emit(&fx, 0, "b");
    lh_route_idle(fx.in[0]->route);
    ck_assert_uint_eq(o->n_subs, 1);
    ck_assert_str_eq(o->subs[0].msgs, "a,b,");
    /* One batch unacknowledged: the next grows while the output is busy. */
    emit(&fx, 0, "c");
    lh_route_idle(fx.in[0]->route);
    ck_assert(!run_until(&fx, subs_of_out0, 2, 50));
    emit(&fx, 0, "d");
    /* Not sealed inside the ack (an output acks from deep in its code)... */
    ack(&fx, 0, 0);
    ck_assert_uint_eq(o->n_subs, 1);
    /* ...but from the loop right after it. */
    ck_assert(run_until(&fx, subs_of_out0, 2, 2000));
    ck_assert_str_eq(o->subs[1].msgs, "c,d,");
    ck_assert_int_lt(o->subs[1].at_ms - o->subs[1].opened_ms, 2000);
    fx_free(&fx);
}
END_TEST

/* ---- the memory cap and backpressure ------------------------------------ */

/* pipeline.c's cap: (max_in_flight + 2) * max_bytes per output. */
#define CAP_BYTES 200
#define CAP_IN_FLIGHT 1
#define CAP ((CAP_IN_FLIGHT + 2) * CAP_BYTES)

static void cap_fixture(struct fx *fx)
{
    fx_init(fx);
    fx_add_in(fx, "a");
    fx_add_in(fx, "b");
    fx_add_out(fx, "*", 100000, CAP_BYTES, 60000, CAP_IN_FLIGHT);
    fx_start(fx);
}

/* Emits from input 0 until the pipeline pauses; at most limit records. */
static void fill_to_cap(struct fx *fx, int limit)
{
    for (int i = 0; i < limit && !fx->in[0]->paused; i++) {
        int64_t before = held_bytes(fx);
        ck_assert_int_le(before, CAP);
        emit(fx, 0, "forty bytes of record, more or less.....");
    }
    ck_assert_msg(fx->in[0]->paused, "never paused (%lld bytes held)",
                  (long long)held_bytes(fx));
    ck_assert_int_gt(held_bytes(fx), CAP);
}

START_TEST(test_cap_pause_resume)
{
    struct fx fx;
    cap_fixture(&fx);
    fill_to_cap(&fx, 100);
    /* Sealed batches count until the output says they are safe. */
    struct fake_out *o = fx.out[0];
    ck_assert_uint_ge(o->n_held, 2);
    ck_assert_str_eq(fx.log, "P0 P1 ");
    /* Acks bring it back under the cap: resumed then, not before. */
    while (o->n_held > 0 && held_bytes(&fx) > CAP) {
        ck_assert_str_eq(fx.log, "P0 P1 ");
        ck_assert(fx.in[0]->paused && fx.in[1]->paused);
        ack(&fx, 0, 0);
    }
    ck_assert_int_le(held_bytes(&fx), CAP);
    ck_assert_str_eq(fx.log, "P0 P1 R0 R1 ");
    /* Acking the rest resumes nothing twice; filling again pauses again. */
    while (o->n_held > 0)
        ack(&fx, 0, 0);
    ck_assert_str_eq(fx.log, "P0 P1 R0 R1 ");
    fill_to_cap(&fx, 100);
    ck_assert_str_eq(fx.log, "P0 P1 R0 R1 P0 P1 ");
    fx_free(&fx);
}
END_TEST

/* Inside lh_route_hold/release (one read's records) the cap is looked at
 * once, at release. */
START_TEST(test_cap_held_read)
{
    struct fx fx;
    cap_fixture(&fx);
    lh_route_hold(fx.in[0]->route);
    for (int i = 0; i < 30; i++)
        emit(&fx, 0, "forty bytes of record, more or less.....");
    ck_assert_int_gt(held_bytes(&fx), CAP);
    ck_assert_str_eq(fx.log, "");
    lh_route_release(fx.in[0]->route);
    ck_assert_str_eq(fx.log, "P0 P1 ");
    fx_free(&fx);
}
END_TEST

/* ---- stopping ------------------------------------------------------------ */

/* Shutdown stops the inputs, seals what is open, and is done when every
 * batch is acknowledged and the outputs' buffers are delivered; a stopped
 * input is never resumed. */
START_TEST(test_drain_on_stop)
{
    struct fx fx;
    cap_fixture(&fx);
    fill_to_cap(&fx, 100);
    emit(&fx, 1, "the rest of b's read"); /* one record open */
    struct fake_out *o = fx.out[0];
    lh_pipeline_shutdown(fx.pl, 10000, on_drained, &fx);
    ck_assert_str_eq(fx.log, "P0 P1 S0 S1 ");
    ck_assert(sub_has(o, "b", "the rest of b's read,")); /* open batches: sealed at once */
    ck_assert(!fx.drained);
    lh_output_queued(o->out, 500); /* the output's durable buffer */
    while (o->n_held > 1)
        ack(&fx, 0, 0);
    ck_assert(!fx.drained);
    ack(&fx, 0, 0);
    ck_assert_int_eq(held_bytes(&fx), 500); /* nothing left open */
    ck_assert_msg(!fx.drained, "done before the buffer was delivered");
    lh_output_queued(o->out, 0);
    ck_assert(fx.drained);
    ck_assert_str_eq(fx.log, "P0 P1 S0 S1 ");
    fx_free(&fx);
}
END_TEST

/* Acks that never come: done runs at the timeout, which says what is left. */
START_TEST(test_drain_timeout)
{
    struct fx fx;
    fx_one_to_one(&fx, 1000, 1 << 20);
    emit(&fx, 0, "unacked");
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/stderr", fx.dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600), saved = dup(2);
    ck_assert(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    int64_t t0 = mono_us();
    lh_pipeline_shutdown(fx.pl, 60, on_drained, &fx);
    bool drained_at_once = fx.drained;
    bool drained = run_until(&fx, is_drained, 0, 5000);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    ck_assert(!drained_at_once && drained);
    /* libevent's timers read CLOCK_MONOTONIC_COARSE: a tick (4 ms at HZ=250)
     * early at most. */
    ck_assert_int_ge(fx.drained_us - t0, 50000);
    ck_assert_uint_eq(fx.out[0]->n_held, 1);
    char want[96], text[4096] = "";
    snprintf(want, sizeof want, "shutdown timeout: %zu bytes of records not acknowledged",
             fx.out[0]->subs[0].bytes);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    ck_assert_msg(strstr(text, want), "no '%s' in: %s", want, text);
    fx_free(&fx);
}
END_TEST

/* ---- routing --------------------------------------------------------------- */

/* Each output gets the records whose tag its `match` accepts, one tag per
 * batch; a tag no output matches goes nowhere. */
START_TEST(test_route_match)
{
    struct fx fx;
    fx_init(&fx);
    fx_add_in(&fx, "app.web");
    fx_add_in(&fx, "db.err");
    fx_add_in(&fx, "app.err");
    fx_add_in(&fx, "misc");
    fx_add_out(&fx, "app.*", 2, 1 << 20, 60000, 100);
    fx_add_out(&fx, "*.err", 1, 1 << 20, 60000, 100);
    fx_start(&fx);
    emit(&fx, 0, "w1");
    emit(&fx, 1, "d1");
    emit(&fx, 2, "e1");
    emit(&fx, 3, "m1");
    emit(&fx, 0, "w2");
    emit(&fx, 2, "e2");
    struct fake_out *a = fx.out[0], *b = fx.out[1];
    ck_assert_uint_eq(a->n_subs, 2);
    ck_assert(sub_has(a, "app.web", "w1,w2,"));
    ck_assert(sub_has(a, "app.err", "e1,e2,"));
    ck_assert_uint_eq(b->n_subs, 3);
    ck_assert(sub_has(b, "db.err", "d1,"));
    ck_assert(sub_has(b, "app.err", "e1,"));
    ck_assert(sub_has(b, "app.err", "e2,"));
    /* Nothing open anywhere: "misc" was packed into no batch. */
    while (a->n_held > 0)
        ack(&fx, 0, 0);
    while (b->n_held > 0)
        ack(&fx, 1, 0);
    ck_assert_int_eq(held_bytes(&fx), 0);
    fx_free(&fx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_seal_max_records);
    tcase_add_test(tc, test_seal_max_bytes);
    tcase_add_test(tc, test_seal_max_wait);
    tcase_add_test(tc, test_seal_when_idle);
    tcase_add_test(tc, test_cap_pause_resume);
    tcase_add_test(tc, test_cap_held_read);
    tcase_add_test(tc, test_drain_on_stop);
    tcase_add_test(tc, test_drain_timeout);
    tcase_add_test(tc, test_route_match);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(suite());
}
