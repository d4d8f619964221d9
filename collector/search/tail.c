#include "collector/search/tail.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "common/base/err.h"
#include "common/base/log.h"
#include "common/codec/record.h"

#define TAIL_LOG "tail"
/* A client whose queue does not shrink for this long is gone or stuck. */
#define TAIL_WRITE_TIMEOUT_S 60
/* Room kept for a {"dropped": N} line ahead of a record. */
#define DROPPED_LINE_MAX 32

struct client {
    struct lh_tail *t;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct lh_query *q;
    struct evbuffer *batch;   /* lines of the batch being published */
    uint64_t dropped;         /* not yet announced */
    bool ending;              /* its query failed: the stream ends at the flush */
    bool cut;                 /* cut off for max_memory once the record is offered */
    LIST_ENTRY(client) link;
};

struct lh_tail {
    LIST_HEAD(, client) clients;
    size_t n_clients;
    size_t max_clients, max_memory;
    size_t queued;            /* all clients' queues, while a batch is published */
    size_t n_cut;             /* clients marked cut, not yet closed */
    struct lh_metric *gauge, *drops, *cuts;
};

int lh_tail_new(struct lh_metrics *metrics, struct lh_tail **out)
{
    struct lh_tail *t = calloc(1, sizeof *t);
    if (!t)
        return LH_ENOMEM;
    LIST_INIT(&t->clients);
    t->max_clients = LH_TAIL_MAX_CLIENTS;
    t->max_memory = LH_TAIL_MAX_MEMORY;
    t->gauge = lh_metrics_get(metrics, LH_METRIC_GAUGE, "loghaul_collector_tail_clients", NULL,
                              "live tail streams open");
    t->drops = lh_metrics_get(metrics, LH_METRIC_COUNTER, "loghaul_collector_tail_dropped_total",
                              NULL, "records not sent to a live tail client that read too slowly");
    t->cuts = lh_metrics_get(metrics, LH_METRIC_COUNTER, "loghaul_collector_tail_cut_total", NULL,
                             "live tails cut off, the one with the most queued, when "
                             "search.tail_max_memory was full");
    if (!t->gauge || !t->drops || !t->cuts) {
        free(t);
        return LH_ENOMEM;
    }
    *out = t;
    return 0;
}

void lh_tail_set_limits(struct lh_tail *t, size_t max_clients, size_t max_memory)
{
    t->max_clients = max_clients;
    t->max_memory = max_memory;
}

static void client_free(struct client *c)
{
    LIST_REMOVE(c, link);
    c->t->n_clients--;
    lh_metric_set(c->t->gauge, (int64_t)c->t->n_clients);
    lh_query_free(c->q);
    if (c->batch)
        evbuffer_free(c->batch);
    free(c);
}

void lh_tail_free(struct lh_tail *t)
{
    if (!t)
        return;
    struct client *c;
    while ((c = LIST_FIRST(&t->clients)) != NULL) {
        evhttp_connection_set_closecb(c->evcon, NULL, NULL);
        evhttp_send_reply_end(c->req);
        client_free(c);
    }
    free(t);
}

/* The client went away. When evhttp detached the request from its dying
 * connection, ending the reply is what frees the request; otherwise the
 * connection frees it. */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
    struct client *c = arg;
    (void)evcon;
    LH_DEBUG(TAIL_LOG, "a live tail client left");
    if (!evhttp_request_get_connection(c->req))
        evhttp_send_reply_end(c->req);
    client_free(c);
}

int lh_tail_start(struct lh_tail *t, struct evhttp_request *req, struct lh_query *q)
{
    if (t->n_clients >= t->max_clients) {
        lh_query_free(q);
        return LH_ETOOBIG;
    }
    struct client *c = calloc(1, sizeof *c);
    if (!c || !(c->batch = evbuffer_new())) {
        free(c);
        lh_query_free(q);
        return LH_ENOMEM;
    }
    c->t = t;
    c->req = req;
    c->q = q;
    c->evcon = evhttp_request_get_connection(req);
    LIST_INSERT_HEAD(&t->clients, c, link);
    t->n_clients++;
    lh_metric_set(t->gauge, (int64_t)t->n_clients);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/x-ndjson");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_connection_set_closecb(c->evcon, on_close, c);
    evhttp_send_reply_start(req, 200, "OK");
    /* The stream is idle for as long as nothing matches: no read timeout;
     * a write that cannot drain for a minute ends it. */
    struct timeval wt = {TAIL_WRITE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(evhttp_connection_get_bufferevent(c->evcon), NULL, &wt);
    return 0;
}

/* ---- publishing --------------------------------------------------------- */

struct event_view {
    const char *tag;
    size_t tag_len;
    int64_t time_ns;
    const msgpack_object *fields;
    char *json;               /* rendered once, for the first client wanting it */
    size_t json_len;
};

static size_t queued(const struct client *c)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
    return evbuffer_get_length(bufferevent_get_output(bev)) + evbuffer_get_length(c->batch);
}

/* A regex PCRE2 gave up on would make the stream silently miss records
 * from now on: the client gets the error as a last line instead,
 * {"error": "...", "position": N}, and the stream ends. */
static void fail_query(struct client *c)
{
    struct lh_query_error qe = {.position = 0};
    lh_query_status(c->q, &qe);
    json_t *o = json_pack("{s:s, s:i}", "error", qe.msg, "position", qe.position);
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (!line || evbuffer_add_printf(c->batch, "%s\n", line) < 0)
        LH_WARN(TAIL_LOG, "a live tail ends on a regex too costly to match");
    free(line);
    json_decref(o);
    c->ending = true;
}

/* Marks the client with the most queued to be cut off (closed after the
 * record being offered): its queue no longer counts. */
static struct client *cut_largest(struct lh_tail *t)
{
    struct client *c, *big = NULL;
    size_t most = 0;
    LIST_FOREACH(c, &t->clients, link) {
        if (c->cut || c->ending)
            continue;
        size_t q = queued(c);
        if (!big || q > most) {
            big = c;
            most = q;
        }
    }
    if (big) {
        big->cut = true;
        t->n_cut++;
        t->queued -= most < t->queued ? most : t->queued;
    }
    return big;
}

/* Makes room for need more bytes under max_memory; false when c itself
 * was cut off for it. */
static bool make_room(struct lh_tail *t, struct client *c, size_t need)
{
    while (t->queued + need > t->max_memory) {
        struct client *v = cut_largest(t);
        if (!v || v == c)
            return false;
    }
    return true;
}

/* Closes the clients cut off: the end of a stream they do not read would
 * wait behind all they have queued, so the connection goes, and with it
 * the memory. */
static void close_cut(struct lh_tail *t)
{
    struct client *c = LIST_FIRST(&t->clients), *next;
    for (; c; c = next) {
        next = LIST_NEXT(c, link);
        if (!c->cut)
            continue;
        struct evhttp_connection *evcon = c->evcon;
        char *addr = NULL;
        ev_uint16_t port = 0;
        evhttp_connection_get_peer(evcon, &addr, &port);
        LH_WARN(TAIL_LOG, "cutting off the live tail of %s:%u: search.tail_max_memory (%zu "
                "bytes) is full and it has the most queued (%zu bytes; it reads too slowly)",
                addr ? addr : "?", (unsigned)port, t->max_memory, queued(c));
        lh_metric_add(t->cuts, 1);
        evhttp_connection_set_closecb(evcon, NULL, NULL);
        client_free(c);
        evhttp_connection_free(evcon);
    }
    t->n_cut = 0;
}

static void offer(struct client *c, struct event_view *ev)
{
    if (c->ending || c->cut)
        return;
    if (c->q) {
        struct lh_query_record qr = {.tag = ev->tag, .tag_len = ev->tag_len,
                                     .time_ns = ev->time_ns, .fields = ev->fields};
        if (!lh_query_match(c->q, &qr)) {
            if (lh_query_status(c->q, NULL) != 0)
                fail_query(c);
            return;
        }
    }
    if (!ev->json) {
        ev->json = lh_record_json(ev->tag, ev->tag_len, ev->time_ns, ev->fields, NULL);
        ev->json_len = ev->json ? strlen(ev->json) : 0;
    }
    if (!ev->json || queued(c) + ev->json_len + 1 > LH_TAIL_MAX_BACKLOG) {
        c->dropped++;
        lh_metric_add(c->t->drops, 1);
        return;
    }
    if (!make_room(c->t, c, ev->json_len + 1 + DROPPED_LINE_MAX))
        return;
    size_t before = evbuffer_get_length(c->batch);
    if (c->dropped && evbuffer_add_printf(c->batch, "{\"dropped\":%llu}\n",
                                          (unsigned long long)c->dropped) > 0)
        c->dropped = 0;
    if (evbuffer_add(c->batch, ev->json, ev->json_len) != 0 ||
        evbuffer_add(c->batch, "\n", 1) != 0) {
        c->dropped++;
        lh_metric_add(c->t->drops, 1);
    }
    c->t->queued += evbuffer_get_length(c->batch) - before;
}

static bool decode_event(const msgpack_object *o, struct event_view *ev)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3)
        return false;
    const msgpack_object *a = o->via.array.ptr;
    if (!lh_obj_bytes(&a[0], &ev->tag, &ev->tag_len) ||
        lh_time_from_obj(&a[1], &ev->time_ns) != 0 || a[2].type != MSGPACK_OBJECT_MAP)
        return false;
    ev->fields = &a[2];
    return true;
}

static void publish_event(struct lh_tail *t, const msgpack_object *o)
{
    struct event_view ev = {0};
    if (!decode_event(o, &ev))
        return;
    struct client *c;
    LIST_FOREACH(c, &t->clients, link)
        offer(c, &ev);
    free(ev.json);
    if (t->n_cut)
        close_cut(t);
}

static void flush_all(struct lh_tail *t)
{
    struct client *c = LIST_FIRST(&t->clients), *next;
    for (; c; c = next) {
        next = LIST_NEXT(c, link);
        if (evbuffer_get_length(c->batch))
            evhttp_send_reply_chunk(c->req, c->batch);
        if (c->ending) {
            evhttp_connection_set_closecb(c->evcon, NULL, NULL);
            evhttp_send_reply_end(c->req);
            client_free(c);
        }
    }
}

void lh_tail_publish(struct lh_tail *t, const char *events, size_t len, size_t n_events)
{
    if (t->n_clients == 0)
        return;
    struct client *c;
    t->queued = 0;
    LIST_FOREACH(c, &t->clients, link)
        t->queued += queued(c);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    for (size_t i = 0; i < n_events; i++) {
        if (msgpack_unpack_next(&u, events, len, &off) != MSGPACK_UNPACK_SUCCESS)
            break;
        publish_event(t, &u.data);
    }
    msgpack_unpacked_destroy(&u);
    flush_all(t);
}
