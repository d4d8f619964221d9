/* The collector's `http` output: accepted batches whose tag matches are
 * POSTed to an HTTP endpoint as NDJSON, either plain records (format:
 * ndjson, the lines `loghaul search` prints) or an Elasticsearch/OpenSearch
 * bulk body (format: es_bulk, an index action before each record).
 *
 * As with the forward output, a write first makes the rendered body durable
 * in a spool (common/chunkq under data_dir/outputs/http-N, fsync'd before
 * the upstream ack); a sender on the loop POSTs the spool in order, one
 * request at a time, and consumes a body on a 2xx answer. 429 and 5xx
 * answers and failed connections are retried after a backoff; any other
 * status is a permanent refusal: the body is dropped and counted (retrying
 * it would stall everything behind it). An es_bulk answer with
 * "errors": true is counted too (its failed items are not retried one by
 * one). */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <fnmatch.h>
#include <jansson.h>
#include <limits.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/outputs/output.h"
#include "common/chunkq/chunkq.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/net/tls.h"
#include "common/base/util.h"

#define HTTP_LOG "out_http"
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define MAX_ANSWER (4u << 20)

enum { FMT_NDJSON, FMT_ES_BULK };

static const char *const format_values[] = {"ndjson", "es_bulk", NULL};

struct http_cfg {
    struct lh_cfg_item item;
    char *match;
    char *url;
    int format;
    char *index;
    struct lh_tls_cfg tls;
    int64_t timeout_ms;
    int64_t max_size;
};

/* The parts of url that matter; 0 or LH_EINVAL. */
static int parse_url(const char *url, bool *tls, char *host, size_t hostlen, int *port,
                     char **path)
{
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, EVHTTP_URI_NONCONFORMANT);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *h = u ? evhttp_uri_get_host(u) : NULL;
    int rc = LH_EINVAL;
    if (scheme && h && h[0] && strlen(h) < hostlen &&
        (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0)) {
        *tls = strcmp(scheme, "https") == 0;
        snprintf(host, hostlen, "%s", h);
        *port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : *tls ? 443 : 80;
        const char *p = evhttp_uri_get_path(u), *q = evhttp_uri_get_query(u);
        size_t n = (p && *p ? strlen(p) : 1) + (q ? strlen(q) + 1 : 0) + 1;
        if (path && (*path = malloc(n)))
            snprintf(*path, n, "%s%s%s", p && *p ? p : "/", q ? "?" : "", q ? q : "");
        rc = !path || *path ? 0 : LH_ENOMEM;
    }
    if (u)
        evhttp_uri_free(u);
    return rc;
}

static int validate(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct http_cfg *c = obj;
    bool tls;
    char host[256];
    int port;
    if (parse_url(c->url, &tls, host, sizeof host, &port, NULL) != 0)
        return lh_cfg_error(d, line, col, "http output: url '%s' is not an http:// or https:// "
                                          "URL", c->url);
    return 0;
}

static const struct lh_cfg_field fields[] = {
    {.key = "match", .type = LH_CFG_STR, .offset = offsetof(struct http_cfg, match), .defval = "*",
     .help = "fnmatch(3) glob on the tag"},
    {.key = "url", .type = LH_CFG_STR, .offset = offsetof(struct http_cfg, url),
     .flags = LH_CFG_F_REQUIRED, .help = "where batches are POSTed (http:// or https://)",
     .check = lh_cfg_check_http_url},
    {.key = "format", .type = LH_CFG_ENUM, .offset = offsetof(struct http_cfg, format),
     .defval = "ndjson", .enum_values = format_values,
     .help = "ndjson (one record per line) | es_bulk (Elasticsearch/OpenSearch _bulk body)"},
    {.key = "index", .type = LH_CFG_STR, .offset = offsetof(struct http_cfg, index),
     .defval = "loghaul", .help = "es_bulk: the index each record goes to"},
    {.key = "tls", .type = LH_CFG_SECTION, .offset = offsetof(struct http_cfg, tls),
     .sub = &lh_tls_cfg_schema, .help = "TLS for https:// (ca, cert, key, verify)"},
    {.key = "timeout", .type = LH_CFG_DURATION, .offset = offsetof(struct http_cfg, timeout_ms),
     .defval = "30s", .min = 1000, .max = 3600000, .help = "per request"},
    {.key = "max_size", .type = LH_CFG_SIZE, .offset = offsetof(struct http_cfg, max_size),
     .defval = "1GiB", .min = 64 << 10, .max = INT64_MAX / 2,
     .help = "spool bound; past it writes are refused (the sender retries)"},
    {0},
};

const struct lh_cfg_schema lh_coll_out_http_schema = {
    .name = "http output",
    .size = sizeof(struct http_cfg),
    .fields = fields,
    .validate = validate,
};

/* A spooled body, oldest first. */
struct body {
    struct body *next;
    struct lh_chunk *c;
};

struct out_http {
    const struct http_cfg *cfg;
    struct event_base *base;
    bool tls;
    char host[256];
    int port;
    char *path;
    SSL_CTX *ssl_ctx;
    struct lh_chunkq *q;
    char dir[PATH_MAX];
    struct body *head, *tail;
    struct evhttp_connection *evcon; /* the request under way, or NULL */
    unsigned fails;
    struct event *retry, *done_ev, *tick;
    int last_status;            /* of the request under way, read in done_ev */
    bool bulk_errors;
    msgpack_sbuffer text;
    struct lh_coll_output_metrics m;
    struct lh_metric *sent, *refused;
};

static void post_next(struct out_http *o);

/* ---- rendering ----------------------------------------------------------- */

/* The batch's body in o->text: NDJSON, with an index action before each
 * record for es_bulk. */
static int render(struct out_http *o, const struct lh_coll_batch *b)
{
    if (o->cfg->format != FMT_ES_BULK)
        return lh_coll_batch_ndjson(b, NULL, &o->text);
    json_t *a = json_pack("{s{ss}}", "index", "_index", o->cfg->index);
    char *action = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    int rc = action ? lh_coll_batch_ndjson(b, action, &o->text) : LH_ENOMEM;
    free(action);
    return rc;
}

/* ---- the sender ---------------------------------------------------------- */

static void schedule_retry(struct out_http *o)
{
    int64_t d = BACKOFF_MIN_MS;
    for (unsigned i = 1; i < o->fails && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    d = d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS;
    struct timeval tv = {d / 1000, (d % 1000) * 1000};
    evtimer_add(o->retry, &tv);
}

static void consume_head(struct out_http *o)
{
    struct body *b = o->head;
    o->head = b->next;
    if (!o->head)
        o->tail = NULL;
    lh_chunkq_ack(o->q, b->c);
    free(b);
}

/* After the request: the connection is freed here, outside its callback. */
static void on_done_ev(evutil_socket_t fd, short what, void *arg)
{
    struct out_http *o = arg;
    int st = o->last_status;
    if (o->evcon) {
        evhttp_connection_free(o->evcon);
        o->evcon = NULL;
    }
    if (st >= 200 && st < 300) {
        lh_metric_add(o->sent, 1);
        if (o->bulk_errors) {
            LH_WARN(HTTP_LOG, "%s: the bulk answer reports failed items", o->cfg->url);
            lh_metric_add(o->m.errors, 1);
        }
        o->fails = 0;
        consume_head(o);
        post_next(o);
    } else if (st == 0 || st == 429 || st >= 500) {
        o->fails++;
        if (st)
            LH_WARN(HTTP_LOG, "%s answered %d; retrying", o->cfg->url, st);
        else
            LH_WARN(HTTP_LOG, "%s: no answer (connection failed or timed out); retrying",
                    o->cfg->url);
        schedule_retry(o);
    } else {
        LH_ERROR(HTTP_LOG, "%s refused a batch with status %d: %u records dropped", o->cfg->url,
                 st, o->head->c->n_records);
        lh_metric_add(o->refused, (int64_t)o->head->c->n_records);
        lh_metric_add(o->m.errors, 1);
        consume_head(o);
        post_next(o);
    }
}

static void on_answer(struct evhttp_request *req, void *arg)
{
    struct out_http *o = arg;
    o->last_status = req ? evhttp_request_get_response_code(req) : 0;
    o->bulk_errors = false;
    if (req && o->cfg->format == FMT_ES_BULK && o->last_status / 100 == 2) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
        json_t *j = p ? json_loadb(p, n, 0, NULL) : NULL;
        o->bulk_errors = j && json_is_true(json_object_get(j, "errors"));
        json_decref(j);
    }
    event_active(o->done_ev, EV_TIMEOUT, 0);
}

static struct bufferevent *new_bev(struct out_http *o)
{
    if (!o->tls)
        return bufferevent_socket_new(o->base, -1, BEV_OPT_CLOSE_ON_FREE);
    const char *name = o->cfg->tls.server_name ? o->cfg->tls.server_name : o->host;
    SSL *ssl = lh_tls_client_ssl(o->ssl_ctx, name);
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        o->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static int post(struct out_http *o, const char *data, size_t len)
{
    struct bufferevent *bev = new_bev(o);
    if (!bev)
        return LH_ENOMEM;
    o->evcon = evhttp_connection_base_bufferevent_new(o->base, NULL, bev, o->host,
                                                      (ev_uint16_t)o->port);
    if (!o->evcon) {
        bufferevent_free(bev);
        return LH_ENOMEM;
    }
    evhttp_connection_set_timeout(o->evcon, (int)(o->cfg->timeout_ms / 1000));
    evhttp_connection_set_max_body_size(o->evcon, MAX_ANSWER);
    struct evhttp_request *req = evhttp_request_new(on_answer, o);
    char hostport[300];
    snprintf(hostport, sizeof hostport, "%s:%d", o->host, o->port);
    struct evkeyvalq *h = req ? evhttp_request_get_output_headers(req) : NULL;
    if (!req || evhttp_add_header(h, "Host", hostport) != 0 ||
        evhttp_add_header(h, "Content-Type", "application/x-ndjson") != 0 ||
        evbuffer_add(evhttp_request_get_output_buffer(req), data, len) != 0) {
        if (req)
            evhttp_request_free(req);
        return LH_ENOMEM;
    }
    return evhttp_make_request(o->evcon, req, EVHTTP_REQ_POST, o->path) == 0 ? 0 : LH_EIO;
}

static void post_next(struct out_http *o)
{
    while (o->head && !o->evcon && !evtimer_pending(o->retry, NULL)) {
        char *data = NULL;
        int rc = lh_chunkq_read(o->q, o->head->c, &data);
        if (rc == LH_ECORRUPT) {
            LH_ERROR(HTTP_LOG, "spooled body in %s failed its checksum: %u records dropped",
                     o->dir, o->head->c->n_records);
            lh_metric_add(o->m.errors, 1);
            consume_head(o);
            continue;
        }
        if (rc == 0)
            rc = post(o, data, o->head->c->payload_len);
        free(data);
        if (rc != 0) {
            o->last_status = 0;
            event_active(o->done_ev, EV_TIMEOUT, 0);
        }
        return;
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    post_next(arg);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct out_http *o = arg;
    if (lh_chunkq_dirty(o->q) && lh_chunkq_sync(o->q) != 0)
        LH_WARN(HTTP_LOG, "syncing spool %s failed", o->dir);
}

/* ---- the output ---------------------------------------------------------- */

static int http_write(void *state, const struct lh_coll_batch *b)
{
    struct out_http *o = state;
    if (b->n_events == 0 || fnmatch(o->cfg->match, b->tag, 0) != 0)
        return LH_OK;
    int rc = render(o, b);
    struct body *bd = rc == 0 ? calloc(1, sizeof *bd) : NULL;
    if (rc == 0 && !bd)
        rc = LH_ENOMEM;
    if (rc == 0)
        rc = lh_coll_spool(o->q, o->dir, b, NULL, o->text.data, o->text.size, &bd->c);
    if (rc != 0) {
        free(bd);
        lh_metric_add(o->m.errors, 1);
        return rc;
    }
    if (o->tail)
        o->tail->next = bd;
    else
        o->head = bd;
    o->tail = bd;
    lh_metric_add(o->m.records, (int64_t)b->n_events);
    lh_metric_add(o->m.batches, 1);
    post_next(o);
    return LH_OK;
}

static void on_replay(void *ud, struct lh_chunk *c)
{
    struct out_http *o = ud;
    struct body *bd = calloc(1, sizeof *bd);
    if (!bd) {
        LH_ERROR(HTTP_LOG, "out of memory replaying %s: a body waits for the next start", o->dir);
        return;
    }
    bd->c = c;
    if (o->tail)
        o->tail->next = bd;
    else
        o->head = bd;
    o->tail = bd;
}

static int http_create(const struct lh_cfg_item *item, const struct lh_coll_output_ctx *ctx,
                       size_t index, void **state, char *err, size_t errlen)
{
    struct out_http *o = calloc(1, sizeof *o);
    if (!o)
        return LH_ENOMEM;
    *state = o;
    o->cfg = (const struct http_cfg *)item;
    o->base = ctx->base;
    msgpack_sbuffer_init(&o->text);
    int rc = parse_url(o->cfg->url, &o->tls, o->host, sizeof o->host, &o->port, &o->path);
    if (rc == 0)
        rc = lh_coll_output_metrics(ctx->metrics, "http", &o->m);
    o->sent = lh_metrics_get(ctx->metrics, LH_METRIC_COUNTER,
                             "loghaul_collector_output_requests_total", "output=\"http\"",
                             "Requests an endpoint accepted");
    o->refused = lh_metrics_get(ctx->metrics, LH_METRIC_COUNTER,
                                "loghaul_collector_output_dropped_total", "output=\"http\"",
                                "Records an endpoint refused for good (4xx), dropped");
    o->retry = evtimer_new(o->base, on_retry, o);
    o->done_ev = event_new(o->base, -1, 0, on_done_ev, o);
    o->tick = event_new(o->base, -1, EV_PERSIST, on_tick, o);
    static const struct timeval sec = {1, 0};
    if (rc != 0 || !o->sent || !o->refused || !o->retry || !o->done_ev || !o->tick ||
        event_add(o->tick, &sec) != 0) {
        snprintf(err, errlen, "http output: out of memory");
        return LH_ENOMEM;
    }
    if (o->tls) {
        struct lh_tls_cfg t = o->cfg->tls;
        t.present = t.enabled = true;
        if (!o->cfg->tls.present)
            t.verify = true;
        char why[512] = "";
        if (!(o->ssl_ctx = lh_tls_client_ctx(&t, why, sizeof why))) {
            snprintf(err, errlen, "http output (line %d): TLS: %s", item->line, why);
            return LH_ETLS;
        }
    }
    snprintf(o->dir, sizeof o->dir, "%s/outputs/http-%zu", ctx->data_dir, index);
    struct lh_chunkq_opts qo = {.dir = o->dir, .max_size = o->cfg->max_size,
                                .on_chunk = on_replay, .ud = o};
    char why[512] = "";
    if ((rc = lh_chunkq_open(&qo, &o->q, why, sizeof why)) != 0) {
        snprintf(err, errlen, "http output (line %d): spool: %s", item->line, why);
        return rc;
    }
    post_next(o);
    return LH_OK;
}

static void http_destroy(void *state)
{
    struct out_http *o = state;
    if (!o)
        return;
    if (o->evcon)
        evhttp_connection_free(o->evcon);
    if (o->retry)
        event_free(o->retry);
    if (o->done_ev)
        event_free(o->done_ev);
    if (o->tick)
        event_free(o->tick);
    while (o->head) {
        struct body *b = o->head;
        o->head = b->next;
        free(b);
    }
    lh_chunkq_close(o->q);
    SSL_CTX_free(o->ssl_ctx);
    msgpack_sbuffer_destroy(&o->text);
    free(o->path);
    free(o);
}

const struct lh_coll_output_ops lh_coll_out_http_ops = {
    .type = "http",
    .schema = &lh_coll_out_http_schema,
    .create = http_create,
    .write = http_write,
    .destroy = http_destroy,
};
