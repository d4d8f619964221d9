#include "agent/http_status.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/base/log.h"
#include "common/net/http_guard.h"
#include "common/net/http_reply.h"
#include "common/net/net.h"
#include "common/base/util.h"

#define STATUS_MAX_HEADER (16 * 1024)
#define STATUS_MAX_BODY (64 * 1024)
#define STATUS_WRITE_TIMEOUT_MS 60000

struct lh_http_status {
    struct evhttp *http;
    struct lh_http_guard *guard;
    struct lh_metrics *metrics;
    struct lh_pipeline *pl;
};

static bool only_get(struct lh_http_status *h, struct evhttp_request *req)
{
    lh_http_guard_request(h->guard, req);
    lh_reply_secure_headers(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)
        return true;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
    lh_reply_str(req, 405, "text/plain", "method not allowed\n");
    return false;
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct lh_http_status *h = arg;
    if (!only_get(h, req))
        return;
    char *text = lh_metrics_render(h->metrics);
    if (!text) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    lh_reply_str(req, 200, "text/plain; version=0.0.4", text);
    free(text);
}

static void on_healthz(struct evhttp_request *req, void *arg)
{
    if (only_get(arg, req))
        lh_reply_str(req, 200, "text/plain", "ok\n");
}

static void on_status(struct evhttp_request *req, void *arg)
{
    struct lh_http_status *h = arg;
    if (!only_get(h, req))
        return;
    if (!h->pl) {
        lh_reply_str(req, 503, "text/plain", "no pipeline is running\n");
        return;
    }
    json_t *st = lh_pipeline_status(h->pl);
    char *text = st ? json_dumps(st, JSON_INDENT(2)) : NULL;
    json_decref(st);
    if (!text) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    lh_reply_str(req, 200, "application/json", text);
    free(text);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    struct lh_http_status *h = arg;
    lh_http_guard_request(h->guard, req);
    lh_reply_secure_headers(req);
    lh_reply_str(req, 404, "text/plain", "not found: try /metrics, /healthz, /status\n");
}

int lh_http_status_new(struct event_base *base, const char *addr, int64_t max_connections,
                       int64_t read_timeout_ms, struct lh_metrics *metrics,
                       struct lh_pipeline *pl, struct lh_http_status **out, char *err,
                       size_t errlen)
{
    struct lh_http_status *h = calloc(1, sizeof *h);
    if (!h || !(h->http = evhttp_new(base))) {
        free(h);
        snprintf(err, errlen, "out of memory");
        return LH_ENOMEM;
    }
    h->metrics = metrics;
    h->pl = pl;
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_cb(h->http, "/metrics", on_metrics, h);
    evhttp_set_cb(h->http, "/healthz", on_healthz, h);
    evhttp_set_cb(h->http, "/status", on_status, h);
    evhttp_set_gencb(h->http, on_other, h);
    const struct lh_http_limits lim = {
        .max_connections = max_connections,
        .max_header_size = STATUS_MAX_HEADER,
        .max_body_size = STATUS_MAX_BODY,
        .read_timeout_ms = read_timeout_ms,
        .write_timeout_ms = STATUS_WRITE_TIMEOUT_MS,
    };
    int rc = lh_http_guard_new(base, h->http, addr, "agent.http", &lim, metrics, "loghaul_agent",
                               &h->guard, err, errlen);
    if (rc != 0) {
        lh_http_status_free(h);
        return rc;
    }
    *out = h;
    return LH_OK;
}

void lh_http_status_set_pipeline(struct lh_http_status *h, struct lh_pipeline *pl)
{
    if (h)
        h->pl = pl;
}

void lh_http_status_free(struct lh_http_status *h)
{
    if (!h)
        return;
    if (h->http)
        evhttp_free(h->http);
    lh_http_guard_free(h->guard); /* after the connections evhttp_free closed */
    free(h);
}
