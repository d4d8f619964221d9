/* The collector's `http` output: accepted batches whose tag matches are
 * POSTed to an HTTP endpoint as NDJSON, either plain records (format:
 * ndjson, the lines `loghaul search` prints) or an Elasticsearch/OpenSearch
 * bulk body (format: es_bulk, an index action before each record).
 *
 * As with the forward output, a write first makes the rendered body durable
 * in the output's spool (spool.h, under data_dir/outputs/http-N), which
 * hands the bodies over in order, one request at a time: a 2xx answer
 * consumes a body, 429 and 5xx answers and failed connections are retried
 * after a backoff, and any other status is a permanent refusal: the body
 * is dropped and counted (retrying it would stall everything behind it). An es_bulk answer with
 * "errors": true is counted too (its failed items are not retried one by
 * one). */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <jansson.h>
#include <limits.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/outputs/output.h"
#include "collector/outputs/spool.h"
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

struct out_http {
    const struct http_cfg *cfg;
    struct event_base *base;
    bool tls;
    char host[256];
    int port;
    char *path;
    SSL_CTX *ssl_ctx;
    struct lh_coll_spool *sp;
    struct lh_coll_spool_item *cur; /* the body of the request under way */
    struct evhttp_connection *evcon;
    struct event *done_ev;
    int last_status;            /* of the request under way, read in done_ev */
    bool bulk_errors;
    struct lh_coll_output_metrics m;
    struct lh_metric *sent;
};

/* ---- rendering ----------------------------------------------------------- */

/* The batch's body: NDJSON, with an index action before each record for
 * es_bulk. */
static int http_render(void *ud, const struct lh_coll_batch *b, const char *id,
                       msgpack_sbuffer *out)
{
    struct out_http *o = ud;
    if (o->cfg->format != FMT_ES_BULK)
        return lh_coll_batch_ndjson(b, NULL, out);
    json_t *a = json_pack("{s{ss}}", "index", "_index", o->cfg->index);
    char *action = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    int rc = action ? lh_coll_batch_ndjson(b, action, out) : LH_ENOMEM;
    free(action);
    return rc;
}

/* ---- delivery ------------------------------------------------------------ */

/* What the status means for the body: 2xx delivered, 429/5xx or no answer
 * worth retrying, anything else refused for good. */
static enum lh_flush judge(struct out_http *o, int st, const struct lh_chunk *c)
{
    if (st >= 200 && st < 300) {
        lh_metric_add(o->sent, 1);
        if (o->bulk_errors) {
            LH_WARN(HTTP_LOG, "%s: the bulk answer reports failed items", o->cfg->url);
            lh_metric_add(o->m.errors, 1);
        }
        return LH_FLUSH_OK;
    }
    if (st == 0 || st == 429 || st >= 500) {
        if (st)
            LH_WARN(HTTP_LOG, "%s answered %d; retrying", o->cfg->url, st);
        else
            LH_WARN(HTTP_LOG, "%s: no answer (connection failed or timed out); retrying",
                    o->cfg->url);
        return LH_FLUSH_RETRY;
    }
    LH_ERROR(HTTP_LOG, "%s refused a batch with status %d: %u records dropped", o->cfg->url, st,
             c->n_records);
    return LH_FLUSH_FAIL;
}

/* After the request: the connection is freed here, outside its callback. */
static void on_done_ev(evutil_socket_t fd, short what, void *arg)
{
    struct out_http *o = arg;
    struct lh_coll_spool_item *it = o->cur;
    o->cur = NULL;
    if (o->evcon) {
        evhttp_connection_free(o->evcon);
        o->evcon = NULL;
    }
    lh_coll_spool_answer(o->sp, it, judge(o, o->last_status, it->chunk));
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

/* One request at a time (the spool's window is 1): a request that cannot
 * start is answered like one that got no answer, from done_ev. */
static int http_deliver(void *ud, struct lh_coll_spool_item *it, char *payload, size_t len)
{
    struct out_http *o = ud;
    o->cur = it;
    int rc = post(o, payload, len);
    free(payload);
    if (rc != 0) {
        o->last_status = 0;
        event_active(o->done_ev, EV_TIMEOUT, 0);
    }
    return LH_OK;
}

/* ---- the output ---------------------------------------------------------- */

static int http_write(void *state, const struct lh_coll_batch *b)
{
    return lh_coll_spool_write(((struct out_http *)state)->sp, b);
}

static int open_spool(struct out_http *o, const struct lh_coll_output_ctx *ctx, size_t index,
                      char *err, size_t errlen)
{
    struct lh_coll_spool_opts so = {.type = "http", .max_size = o->cfg->max_size,
                                    .max_in_flight = 1, .backoff_min_ms = BACKOFF_MIN_MS,
                                    .backoff_max_ms = BACKOFF_MAX_MS, .match = o->cfg->match,
                                    .render = http_render, .deliver = http_deliver, .ud = o};
    return lh_coll_spool_open(ctx, index, o->cfg->item.line, &so, &o->sp, err, errlen);
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
    int rc = parse_url(o->cfg->url, &o->tls, o->host, sizeof o->host, &o->port, &o->path);
    if (rc == 0)
        rc = lh_coll_output_metrics(ctx->metrics, "http", &o->m);
    o->sent = lh_metrics_get(ctx->metrics, LH_METRIC_COUNTER,
                             "loghaul_collector_output_requests_total", "output=\"http\"",
                             "Requests an endpoint accepted");
    o->done_ev = event_new(o->base, -1, 0, on_done_ev, o);
    if (rc != 0 || !o->sent || !o->done_ev) {
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
    if ((rc = open_spool(o, ctx, index, err, errlen)) != 0)
        return rc;
    lh_coll_spool_kick(o->sp);
    return LH_OK;
}

static void http_destroy(void *state)
{
    struct out_http *o = state;
    if (!o)
        return;
    if (o->evcon)
        evhttp_connection_free(o->evcon);
    if (o->done_ev)
        event_free(o->done_ev);
    lh_coll_spool_close(o->sp);
    SSL_CTX_free(o->ssl_ctx);
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
