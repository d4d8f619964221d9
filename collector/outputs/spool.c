#include "collector/outputs/spool.h"

#include <fnmatch.h>
#include <limits.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/base/log.h"
#include "common/chunkq/chunkq.h"
#include "common/codec/forward.h"

#define SYNC_EVERY_S 1

/* The public part first, so an lh_coll_spool_item is an item. */
struct item {
    struct lh_coll_spool_item pub;
    struct item *prev, *next;    /* spool order */
    bool in_flight;
};

struct lh_coll_spool {
    struct lh_coll_spool_opts o;
    char type[32];
    char log[40];                /* out_TYPE, as the output logs */
    char dir[PATH_MAX];
    struct lh_chunkq *q;
    struct item *head, *tail;
    size_t n, n_in_flight;
    unsigned fails;              /* backoffs in a row, reset by an OK */
    bool pumping, again;         /* a kick or answer from inside deliver() */
    struct event *retry, *tick;
    msgpack_sbuffer text;        /* the batch being spooled, rendered */
    struct lh_coll_output_metrics m;
    struct lh_metric *delivered, *retries, *dropped;
};

static void pump(struct lh_coll_spool *sp);

/* ---- the list ------------------------------------------------------------ */

static void push(struct lh_coll_spool *sp, struct item *it)
{
    it->prev = sp->tail;
    it->next = NULL;
    if (sp->tail)
        sp->tail->next = it;
    else
        sp->head = it;
    sp->tail = it;
    sp->n++;
}

/* Takes it out of the list and consumes its chunk. */
static void consume(struct lh_coll_spool *sp, struct item *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else
        sp->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        sp->tail = it->prev;
    sp->n--;
    if (it->in_flight)
        sp->n_in_flight--;
    struct lh_chunkq_stats before, after;
    lh_chunkq_stats(sp->q, &before);
    if (lh_chunkq_ack(sp->q, it->pub.chunk) != 0)
        LH_WARN(sp->log, "%s: recording a consumed batch failed (it may be sent again "
                         "after a restart)", sp->dir);
    free(it);
    /* A segment consumed whole goes from the disk now, not at the next
     * tick: a restart (or the next process on this spool) finds nothing of
     * it to send again. */
    lh_chunkq_stats(sp->q, &after);
    if (after.segments < before.segments && lh_chunkq_sync(sp->q) != 0)
        LH_WARN(sp->log, "syncing spool %s failed", sp->dir);
}

static void drop(struct lh_coll_spool *sp, struct item *it)
{
    lh_metric_add(sp->dropped, (int64_t)it->pub.chunk->n_records);
    lh_metric_add(sp->m.errors, 1);
    consume(sp, it);
}

/* The oldest batch not awaiting an answer: at most n_in_flight steps in. */
static struct item *first_waiting(const struct lh_coll_spool *sp)
{
    struct item *it = sp->head;
    while (it && it->in_flight)
        it = it->next;
    return it;
}

/* ---- backoff ------------------------------------------------------------- */

int64_t lh_coll_spool_backoff_ms(unsigned fails, int64_t min_ms, int64_t max_ms, uint32_t r)
{
    int64_t d = min_ms;
    for (unsigned i = 1; i < fails && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    return d / 2 + (int64_t)(r % (uint32_t)(d / 2 + 1));
}

/* Nothing new goes out until the timer fires; failures while it runs wait
 * for the same timer, so a window failing at once is one step, not many. */
static void back_off(struct lh_coll_spool *sp)
{
    if (evtimer_pending(sp->retry, NULL))
        return;
    uint32_t r = 0;
    RAND_bytes((unsigned char *)&r, sizeof r);
    int64_t d = lh_coll_spool_backoff_ms(++sp->fails, sp->o.backoff_min_ms,
                                         sp->o.backoff_max_ms, r);
    struct timeval tv = {d / 1000, (d % 1000) * 1000};
    evtimer_add(sp->retry, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    pump(arg);
}

/* ---- delivery ------------------------------------------------------------ */

static void settle(struct lh_coll_spool *sp, struct item *it, enum lh_flush answer)
{
    switch (answer) {
    case LH_FLUSH_OK:
        lh_metric_add(sp->delivered, (int64_t)it->pub.chunk->n_records);
        sp->fails = 0;
        consume(sp, it);
        break;
    case LH_FLUSH_FAIL:
        drop(sp, it);
        break;
    case LH_FLUSH_RETRY:
        it->in_flight = false;
        sp->n_in_flight--;
        lh_metric_add(sp->retries, 1);
        back_off(sp);
        break;
    }
}

/* Hands the next batch over; 0 when the next may follow. */
static int deliver_one(struct lh_coll_spool *sp)
{
    struct item *it = sp->n_in_flight < sp->o.max_in_flight && !evtimer_pending(sp->retry, NULL)
                          ? first_waiting(sp)
                          : NULL;
    if (!it || (sp->o.ready && !sp->o.ready(sp->o.ud)))
        return LH_AGAIN;
    char *payload = NULL;
    int rc = lh_chunkq_read(sp->q, it->pub.chunk, &payload);
    if (rc == LH_ECORRUPT) {
        LH_ERROR(sp->log, "%s: spooled batch %s failed its checksum: %u records dropped",
                 sp->dir, it->pub.chunk->id, it->pub.chunk->n_records);
        drop(sp, it);
        return LH_OK;
    }
    if (rc != 0) {
        LH_WARN(sp->log, "%s: reading a spooled batch back: %s (retrying)", sp->dir,
                lh_strerror(rc));
        back_off(sp);
        return rc;
    }
    it->in_flight = true;
    sp->n_in_flight++;
    /* From here it may be answered, and freed, inside deliver(); a refused
     * one is not freed, but may have been requeued already. */
    rc = sp->o.deliver(sp->o.ud, &it->pub, payload, it->pub.chunk->payload_len);
    if (rc == LH_AGAIN && it->in_flight) {
        it->in_flight = false;
        sp->n_in_flight--;
    } else if (rc != 0 && it->in_flight) {
        settle(sp, it, LH_FLUSH_RETRY);
    }
    return rc;
}

static void pump(struct lh_coll_spool *sp)
{
    if (sp->pumping) {
        sp->again = true;
        return;
    }
    sp->pumping = true;
    do {
        sp->again = false;
        while (deliver_one(sp) == 0)
            ;
    } while (sp->again);
    sp->pumping = false;
}

void lh_coll_spool_answer(struct lh_coll_spool *sp, struct lh_coll_spool_item *pub,
                          enum lh_flush answer)
{
    settle(sp, (struct item *)pub, answer);
    pump(sp);
}

void lh_coll_spool_requeue(struct lh_coll_spool *sp)
{
    for (struct item *it = sp->head; it && sp->n_in_flight; it = it->next) {
        if (!it->in_flight)
            continue;
        it->in_flight = false;
        sp->n_in_flight--;
        lh_metric_add(sp->retries, 1);
    }
}

void lh_coll_spool_kick(struct lh_coll_spool *sp)
{
    pump(sp);
}

size_t lh_coll_spool_queued(const struct lh_coll_spool *sp)
{
    return sp->n;
}

size_t lh_coll_spool_in_flight(const struct lh_coll_spool *sp)
{
    return sp->n_in_flight;
}

/* ---- appending ----------------------------------------------------------- */

static int append(struct lh_coll_spool *sp, const struct lh_coll_batch *b, const char *id)
{
    if (lh_chunkq_full(sp->q, sp->text.size)) {
        LH_WARN(sp->log, "spool %s is full (max_size): a batch is refused, its sender will "
                         "retry", sp->dir);
        return LH_ETOOBIG;
    }
    struct item *it = calloc(1, sizeof *it);
    if (!it)
        return LH_ENOMEM;
    struct lh_chunk_meta m = {.id = id, .tag = b->tag, .tag_len = strlen(b->tag),
                              .n_records = (uint32_t)b->n_events};
    int rc = lh_chunkq_append(sp->q, &m, sp->text.data, sp->text.size, NULL, NULL,
                              &it->pub.chunk);
    if (rc == 0 && (rc = lh_chunkq_sync(sp->q)) != 0)
        lh_chunkq_ack(sp->q, it->pub.chunk); /* not acked upstream: its sender resends it */
    if (rc != 0) {
        free(it);
        return rc;
    }
    push(sp, it);
    return LH_OK;
}

int lh_coll_spool_write(struct lh_coll_spool *sp, const struct lh_coll_batch *b)
{
    if (b->n_events == 0 || fnmatch(sp->o.match, b->tag, 0) != 0)
        return LH_OK;
    char id[LH_CHUNK_ID_LEN + 1];
    sp->text.size = 0;
    int rc = lh_fwd_chunk_id(id);
    if (rc == 0)
        rc = sp->o.render(sp->o.ud, b, id, &sp->text);
    if (rc == 0)
        rc = append(sp, b, id);
    if (rc != 0) {
        lh_metric_add(sp->m.errors, 1);
        return rc;
    }
    lh_metric_add(sp->m.records, (int64_t)b->n_events);
    lh_metric_add(sp->m.batches, 1);
    pump(sp);
    return LH_OK;
}

/* ---- life ---------------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct lh_coll_spool *sp = arg;
    /* Consumed batches since the last append: made durable (and their
     * segments deleted) here, so a restart resends little. */
    if (lh_chunkq_dirty(sp->q) && lh_chunkq_sync(sp->q) != 0)
        LH_WARN(sp->log, "syncing spool %s failed", sp->dir);
}

static void on_replay(void *ud, struct lh_chunk *c)
{
    struct lh_coll_spool *sp = ud;
    struct item *it = calloc(1, sizeof *it);
    if (!it) {
        LH_ERROR(sp->log, "out of memory replaying %s: batch %s waits for the next start",
                 sp->dir, c->id);
        return;
    }
    it->pub.chunk = c;
    push(sp, it);
}

static int metrics(struct lh_coll_spool *sp, struct lh_metrics *reg)
{
    char label[64];
    snprintf(label, sizeof label, "output=\"%s\"", sp->type);
    sp->delivered = lh_metrics_get(reg, LH_METRIC_COUNTER,
                                   "loghaul_collector_output_delivered_total", label,
                                   "Records a downstream system confirmed");
    sp->retries = lh_metrics_get(reg, LH_METRIC_COUNTER, "loghaul_collector_output_retries_total",
                                 label, "Batches sent again after a failed delivery");
    sp->dropped = lh_metrics_get(reg, LH_METRIC_COUNTER, "loghaul_collector_output_dropped_total",
                                 label, "Records dropped for good (refused downstream, or "
                                        "damaged in the spool)");
    int rc = lh_coll_output_metrics(reg, sp->type, &sp->m);
    return rc == 0 && sp->delivered && sp->retries && sp->dropped ? LH_OK : LH_ENOMEM;
}

int lh_coll_spool_open(const struct lh_coll_output_ctx *ctx, size_t index, int line,
                       const struct lh_coll_spool_opts *o, struct lh_coll_spool **out,
                       char *err, size_t errlen)
{
    char why[512] = "out of memory";
    struct lh_coll_spool *sp = calloc(1, sizeof *sp);
    if (!sp) {
        snprintf(err, errlen, "%s output (line %d): out of memory", o->type, line);
        return LH_ENOMEM;
    }
    sp->o = *o;
    msgpack_sbuffer_init(&sp->text);
    snprintf(sp->type, sizeof sp->type, "%s", o->type);
    snprintf(sp->log, sizeof sp->log, "out_%s", sp->type);
    snprintf(sp->dir, sizeof sp->dir, "%s/outputs/%s-%zu", ctx->data_dir, sp->type, index);
    sp->o.type = sp->type;
    sp->retry = evtimer_new(ctx->base, on_retry, sp);
    sp->tick = event_new(ctx->base, -1, EV_PERSIST, on_tick, sp);
    static const struct timeval every = {SYNC_EVERY_S, 0};
    int rc = sp->retry && sp->tick && event_add(sp->tick, &every) == 0
                 ? metrics(sp, ctx->metrics)
                 : LH_ENOMEM;
    struct lh_chunkq_opts qo = {.dir = sp->dir, .max_size = o->max_size, .on_chunk = on_replay,
                                .ud = sp};
    if (rc == 0)
        rc = lh_chunkq_open(&qo, &sp->q, why, sizeof why);
    if (rc != 0) {
        snprintf(err, errlen, "%s output (line %d): spool: %s", sp->type, line, why);
        goto fail;
    }
    if (sp->n)
        LH_INFO(sp->log, "spool %s: %zu batches to send from the last run", sp->dir, sp->n);
    *out = sp;
    return LH_OK;
fail:
    lh_coll_spool_close(sp);
    return rc;
}

void lh_coll_spool_close(struct lh_coll_spool *sp)
{
    if (!sp)
        return;
    if (sp->retry)
        event_free(sp->retry);
    if (sp->tick)
        event_free(sp->tick);
    while (sp->head) {
        struct item *it = sp->head;
        sp->head = it->next;
        free(it);
    }
    lh_chunkq_close(sp->q);
    msgpack_sbuffer_destroy(&sp->text);
    free(sp);
}
