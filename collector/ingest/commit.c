#include "collector/ingest/commit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/base/log.h"

#define COMMIT_LOG "commit"

/* A resend of a chunk whose commit is under way: it gets that outcome. */
struct waiter {
    struct waiter *next;
    lh_commit_done_cb done;
    void *arg;
};

/* A batch the store has not completed yet. Until submit returns, b
 * borrows the submitter's tag and events; a commit still pending then owns
 * a copy of them (buf). The chunk id is always its own (id). */
struct pending {
    struct lh_commit *c;
    struct pending *prev, *next;  /* submission order */
    struct lh_coll_batch b;
    char *buf;                    /* the copy: tag, events */
    size_t buf_len;
    int64_t recv_ns;
    struct lh_store_pos from;     /* where the store put it, or later */
    lh_commit_done_cb done;
    void *arg;
    struct waiter *waiters;
    bool submitting;              /* inside lh_commit_submit */
    bool completed;
    int status;
    char id[];
};

struct lh_commit {
    struct lh_commit_opts o;
    struct lh_commit_sink *sinks;
    size_t n_sinks;
    struct pending *head, *tail;  /* owned; oldest first */
    size_t held;                  /* bytes of the pendings' copies */
    struct lh_metric *records_in, *stored, *dedup_hits;
};

int lh_commit_new(const struct lh_commit_opts *o, struct lh_commit **out)
{
    struct lh_commit *c = calloc(1, sizeof *c);
    if (!c)
        return LH_ENOMEM;
    c->o = *o;
    c->records_in = lh_metrics_get(o->metrics, LH_METRIC_COUNTER,
                                   "loghaul_collector_records_in_total", NULL,
                                   "records accepted (and acked when the sender asked)");
    c->stored = lh_metrics_get(o->metrics, LH_METRIC_COUNTER,
                               "loghaul_collector_records_stored_total", NULL,
                               "records written durably to the store");
    c->dedup_hits = lh_metrics_get(o->metrics, LH_METRIC_COUNTER,
                                   "loghaul_collector_dedup_hits_total", NULL,
                                   "batches acked again without storing (chunk seen)");
    if (!c->records_in || !c->stored || !c->dedup_hits) {
        free(c);
        return LH_ENOMEM;
    }
    *out = c;
    return LH_OK;
}

void lh_commit_free(struct lh_commit *c)
{
    if (!c)
        return;
    free(c->sinks);
    free(c);
}

size_t lh_commit_held(const struct lh_commit *c)
{
    return c->held;
}

int lh_commit_add_sink(struct lh_commit *c, const struct lh_commit_sink *s)
{
    struct lh_commit_sink *g = realloc(c->sinks, (c->n_sinks + 1) * sizeof *g);
    if (!g)
        return LH_ENOMEM;
    c->sinks = g;
    c->sinks[c->n_sinks++] = *s;
    return LH_OK;
}

/* ---- completion --------------------------------------------------------- */

static bool same_chunk(const struct lh_coll_batch *a, const char *chunk, size_t len)
{
    return a->chunk && a->chunk_len == len && memcmp(a->chunk, chunk, len) == 0;
}

static struct pending *in_flight(const struct lh_commit *c, const char *chunk, size_t len)
{
    for (struct pending *p = c->head; p; p = p->next)
        if (same_chunk(&p->b, chunk, len))
            return p;
    return NULL;
}

/* The batch is durable: recorded, then published (b->events NULL: its
 * bytes could not be kept, the sinks miss it). */
static void durable(struct lh_commit *c, const struct lh_coll_batch *b, int64_t recv_ns,
                    const struct lh_store_pos *from)
{
    if (c->o.dedup && lh_dedup_add(c->o.dedup, b->chunk, b->chunk_len, recv_ns, from) != LH_OK)
        LH_WARN(COMMIT_LOG, "out of memory adding a chunk id: a resend of it may be written "
                            "twice");
    lh_metric_add(c->records_in, (int64_t)b->n_events);
    for (size_t i = 0; b->events && i < c->n_sinks; i++)
        c->sinks[i].publish(c->sinks[i].ud, b);
}

static void finish(struct pending *p)
{
    struct lh_commit *c = p->c;
    if (p->status == LH_OK) {
        lh_metric_add(c->stored, (int64_t)p->b.n_events);
        /* Every batch stored before the oldest one in flight is recorded. */
        durable(c, &p->b, p->recv_ns, &c->head->from);
    }
    if (p->prev)
        p->prev->next = p->next;
    else
        c->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        c->tail = p->prev;
    c->held -= p->buf_len;
    free(p->buf);
    p->done(p->arg, p->status);
    for (struct waiter *w = p->waiters, *next; w; w = next) {
        next = w->next;
        if (p->status == LH_OK)
            lh_metric_add(c->dedup_hits, 1);
        w->done(w->arg, p->status);
        free(w);
    }
    free(p);
}

static void on_stored(void *ud, int status)
{
    struct pending *p = ud;
    p->completed = true;
    p->status = status;
    if (!p->submitting)
        finish(p);
}

/* The store completes later: the tag and events are copied out of the
 * submitter's buffers for the sinks. Without memory the sinks miss this
 * batch (logged); its store append, dedup entry and ack are unharmed. */
static void keep_copy(struct pending *p)
{
    struct lh_coll_batch *b = &p->b;
    size_t tag_len = strlen(b->tag);
    p->buf_len = tag_len + 1 + b->events_len;
    p->buf = malloc(p->buf_len);
    if (!p->buf) {
        p->buf_len = 0;
        LH_WARN(COMMIT_LOG, "out of memory: live tails miss a batch of %zu records",
                b->n_events);
        b->events = NULL;
        return;
    }
    memcpy(p->buf, b->tag, tag_len + 1);
    memcpy(p->buf + tag_len + 1, b->events, b->events_len);
    b->tag = p->buf;
    b->events = p->buf + tag_len + 1;
    p->c->held += p->buf_len;
}

/* ---- submit ------------------------------------------------------------- */

static void to_store(struct lh_commit *c, const struct lh_coll_batch *b, int64_t recv_ns,
                     lh_commit_done_cb done, void *arg)
{
    struct pending *p = calloc(1, sizeof *p + b->chunk_len);
    if (!p) {
        done(arg, LH_ENOMEM);
        return;
    }
    *p = (struct pending){.c = c, .prev = c->tail, .b = *b, .recv_ns = recv_ns, .done = done,
                          .arg = arg, .submitting = true};
    if (b->chunk) {
        memcpy(p->id, b->chunk, b->chunk_len);
        p->b.chunk = p->id;
    }
    int rc = lh_store_tail(c->o.store, NULL, NULL, NULL, &p->from);
    if (rc != LH_OK) {
        free(p);
        done(arg, rc);
        return;
    }
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
    const struct lh_store_batch sb = {b->chunk, b->chunk_len, recv_ns, b->events, b->events_len,
                                      b->n_events};
    rc = lh_store_append(c->o.store, &sb, on_stored, p);
    if (rc != LH_OK)
        on_stored(p, rc);
    else if (!p->completed)
        keep_copy(p);
    p->submitting = false;
    if (p->completed)
        finish(p);
}

void lh_commit_submit(struct lh_commit *c, const struct lh_coll_batch *b, int64_t recv_ns,
                      lh_commit_done_cb done, void *arg)
{
    if (b->chunk && c->o.dedup && lh_dedup_has(c->o.dedup, b->chunk, b->chunk_len, recv_ns)) {
        lh_metric_add(c->dedup_hits, 1);
        LH_DEBUG(COMMIT_LOG, "chunk %.*s already committed, acking again", (int)b->chunk_len,
                 b->chunk);
        done(arg, LH_OK);
        return;
    }
    struct pending *p = b->chunk ? in_flight(c, b->chunk, b->chunk_len) : NULL;
    if (p) {
        struct waiter *w = malloc(sizeof *w);
        if (!w) {
            done(arg, LH_ENOMEM);
            return;
        }
        *w = (struct waiter){p->waiters, done, arg};
        p->waiters = w;
        return;
    }
    if (b->n_events == 0) {
        done(arg, LH_OK);
        return;
    }
    int rc = c->o.outputs ? c->o.outputs->write(c->o.outputs->ud, b) : LH_OK;
    if (rc != LH_OK) {
        done(arg, rc);
        return;
    }
    if (c->o.store) {
        to_store(c, b, recv_ns, done, arg);
        return;
    }
    static const struct lh_store_pos none;
    durable(c, b, recv_ns, &none);
    done(arg, LH_OK);
}
