#include "collector/search/http_api.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include "collector/search/routes.h"
#include "collector/search/search.h"
#include "collector/search/ui.h"
#include "common/err.h"
#include "common/log.h"
#include "common/net.h"
#include "common/util.h"

#define HTTP_LOG "http"
#define DEFAULT_LIMIT 100
#define MAX_TOKEN_FILE 4096
#define LATENCY_METRIC "loghaul_collector_query_duration_seconds"

/* Upper bounds (seconds) of the query latency histogram's buckets. */
static const double latency_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,   1,    2.5,   5,    10};
#define N_BOUNDS (sizeof latency_bounds / sizeof latency_bounds[0])

/* The registry has counters and gauges only: the histogram is kept here
 * (every request runs on the one event_base thread) and rendered after it. */
struct latency {
    uint64_t le[N_BOUNDS];     /* observations <= bound (not cumulative) */
    uint64_t count;
    double sum;
};

struct lh_http_api {
    struct evhttp *http;
    struct lh_store *store;
    struct lh_metrics *metrics;
    struct lh_metric *queries;
    struct lh_routes *routes;  /* histogram, stats, tail, federation */
    struct latency latency;
    char *token;               /* NULL: open */
};

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void latency_observe(struct latency *l, double seconds)
{
    for (size_t i = 0; i < N_BOUNDS; i++) {
        if (seconds <= latency_bounds[i]) {
            l->le[i]++;
            break;
        }
    }
    l->count++;
    l->sum += seconds;
}

/* Prometheus histogram text: cumulative buckets, +Inf, _sum, _count. */
static int latency_render(const struct latency *l, struct evbuffer *out)
{
    int rc = evbuffer_add_printf(out, "# HELP %s Time to answer a search request\n"
                                      "# TYPE %s histogram\n", LATENCY_METRIC, LATENCY_METRIC);
    uint64_t cum = 0;
    for (size_t i = 0; i < N_BOUNDS && rc >= 0; i++) {
        cum += l->le[i];
        rc = evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", LATENCY_METRIC,
                                 latency_bounds[i], (unsigned long long)cum);
    }
    if (rc >= 0)
        rc = evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
                                 LATENCY_METRIC, (unsigned long long)l->count, LATENCY_METRIC,
                                 l->sum, LATENCY_METRIC, (unsigned long long)l->count);
    return rc < 0 ? LH_ENOMEM : 0;
}

/* ---- replies ------------------------------------------------------------ */

static void reply_buf(struct evhttp_request *req, int code, const char *reason, const char *type,
                      struct evbuffer *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_send_reply(req, code, reason, body);
}

static void reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                  const char *body)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf || evbuffer_add(buf, body, strlen(body)) != 0) {
        evhttp_send_error(req, 500, "out of memory");
    } else {
        reply_buf(req, code, reason, type, buf);
    }
    if (buf)
        evbuffer_free(buf);
}

/* {"error": msg} or, with position >= 0, {"error": msg, "position": N}. */
static void reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg,
                        int position)
{
    json_t *o = position >= 0 ? json_pack("{s:s, s:i}", "error", msg, "position", position)
                              : json_pack("{s:s}", "error", msg);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (!line) {
        free(text);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    memcpy(line + n, "\n", 2);
    reply(req, code, reason, "application/json", line);
    free(line);
}

/* ---- authentication ----------------------------------------------------- */

static bool authorized(const struct lh_http_api *api, struct evhttp_request *req)
{
    if (!api->token)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *given = h + 7;
    size_t n = strlen(api->token);
    return strlen(given) == n && CRYPTO_memcmp(given, api->token, n) == 0;
}

/* ---- search ------------------------------------------------------------- */

static int parse_limit(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v <= 0)
        return LH_EINVAL;
    *out = v > LH_SEARCH_MAX_LIMIT ? LH_SEARCH_MAX_LIMIT : (size_t)v;
    return 0;
}

/* Fills req from the URL parameters; msg says what is wrong otherwise. */
static int parse_params(const struct evkeyvalq *p, struct lh_search_req *req, const char **msg)
{
    const char *limit = evhttp_find_header(p, "limit");
    const char *order = evhttp_find_header(p, "order");
    const char *from = evhttp_find_header(p, "from");
    const char *to = evhttp_find_header(p, "to");
    *req = (struct lh_search_req){.from_ns = INT64_MIN, .to_ns = INT64_MAX,
                                  .limit = DEFAULT_LIMIT};
    if (limit && parse_limit(limit, &req->limit) != 0)
        *msg = "limit must be a positive integer";
    else if (order && strcmp(order, "desc") != 0 && strcmp(order, "asc") != 0)
        *msg = "order must be desc or asc";
    else if (from && from[0] && lh_parse_time(from, &req->from_ns) != 0)
        *msg = "from must be RFC 3339 or unix seconds";
    else if (to && to[0] && lh_parse_time(to, &req->to_ns) != 0)
        *msg = "to must be RFC 3339 or unix seconds";
    else if (req->from_ns > req->to_ns)
        *msg = "from is after to";
    else
        *msg = NULL;
    req->asc = order && strcmp(order, "asc") == 0;
    return *msg ? LH_EINVAL : 0;
}

static int emit_line(void *ud, const char *line, size_t len)
{
    struct evbuffer *out = ud;
    if (evbuffer_add(out, line, len) != 0 || evbuffer_add(out, "\n", 1) != 0)
        return LH_ENOMEM;
    return 0;
}

static void run_search(struct lh_http_api *api, struct evhttp_request *req,
                       struct lh_search_req *sr)
{
    struct evbuffer *out = evbuffer_new();
    double t0 = mono_seconds();
    int rc = out ? lh_search_run(api->store, sr, emit_line, out) : LH_ENOMEM;
    latency_observe(&api->latency, mono_seconds() - t0);
    lh_metric_add(api->queries, 1);
    if (rc == 0) {
        reply_buf(req, 200, "OK", "application/x-ndjson", out);
    } else {
        LH_ERROR(HTTP_LOG, "search failed: %s", lh_strerror(rc));
        reply_error(req, 500, "Internal Server Error", lh_strerror(rc), -1);
    }
    if (out)
        evbuffer_free(out);
}

static void on_search(struct lh_http_api *api, struct evhttp_request *req)
{
    const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (qs && evhttp_parse_query_str(qs, &params) != 0) {
        reply_error(req, 400, "Bad Request", "malformed query string", -1);
        return;
    }
    struct lh_search_req sr;
    const char *msg;
    const char *text = evhttp_find_header(&params, "q");
    struct lh_query *q = NULL;
    struct lh_query_error qe = {.position = 0};
    const char *const *by;
    size_t n_by;
    if (parse_params(&params, &sr, &msg) != 0) {
        reply_error(req, 400, "Bad Request", msg, -1);
    } else if (lh_query_parse(text ? text : "", &q, &qe) != 0) {
        reply_error(req, 400, "Bad Request", qe.msg[0] ? qe.msg : "invalid query", qe.position);
    } else if (lh_query_stats(q, &by, &n_by)) {
        reply_error(req, 400, "Bad Request",
                    "'| stats' is not supported by /api/v1/search yet", -1);
    } else {
        sr.query = q;
        run_search(api, req, &sr);
    }
    lh_query_free(q);
    evhttp_clear_headers(&params);
}

/* ---- routing ------------------------------------------------------------ */

static void on_metrics(struct lh_http_api *api, struct evhttp_request *req)
{
    char *text = lh_metrics_render(api->metrics);
    struct evbuffer *out = evbuffer_new();
    if (!text || !out || evbuffer_add(out, text, strlen(text)) != 0 ||
        latency_render(&api->latency, out) != 0)
        evhttp_send_error(req, 500, "out of memory");
    else
        reply_buf(req, 200, "OK", "text/plain; version=0.0.4", out);
    free(text);
    if (out)
        evbuffer_free(out);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct lh_http_api *api = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (!path)
        path = "/";
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply_error(req, 405, "Method Not Allowed", "method not allowed", -1);
    } else if (strcmp(path, "/healthz") == 0) {
        reply(req, 200, "OK", "text/plain", "ok\n");
    } else if (strcmp(path, "/") == 0) {
        lh_ui_reply(req);
    } else if (!authorized(api, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        reply_error(req, 401, "Unauthorized", "unauthorized", -1);
    } else if (lh_routes_handle(api->routes, req, path)) {
        LH_DEBUG(HTTP_LOG, "%s answered by the search routes", path);
    } else if (strcmp(path, "/api/v1/search") == 0) {
        on_search(api, req);
    } else if (strcmp(path, "/metrics") == 0) {
        on_metrics(api, req);
    } else {
        reply_error(req, 404, "Not Found", "not found: try /api/v1/search, /metrics, /healthz",
                    -1);
    }
}

/* ---- setup -------------------------------------------------------------- */

static int bind_and_log(struct lh_http_api *api, const char *addr, char *err, size_t errlen)
{
    char host[256];
    int port = 0;
    if (lh_split_hostport(addr, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "listen.http.address '%s' is not host:port", addr);
        return LH_EINVAL;
    }
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(api->http, host, (ev_uint16_t)port);
    if (!bs) {
        snprintf(err, errlen, "cannot listen on %s for HTTP: %s", addr, strerror(errno));
        return LH_EIO;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char bound[300] = "";
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
        lh_net_addr_string((struct sockaddr *)&ss, bound, sizeof bound);
    LH_INFO(HTTP_LOG, "http listening on %s", bound[0] ? bound : addr);
    return LH_OK;
}

int lh_http_api_new(struct event_base *base, const char *addr, struct lh_store *store,
                    struct lh_metrics *metrics, const char *token, struct lh_http_api **out,
                    char *err, size_t errlen)
{
    struct lh_http_api *api = calloc(1, sizeof *api);
    int rc = LH_ENOMEM;
    if (!api || !(api->http = evhttp_new(base)) || lh_http_api_set_token(api, token) != 0 ||
        lh_routes_new(base, store, metrics, &api->routes) != 0 ||
        !(api->queries = lh_metrics_get(metrics, LH_METRIC_COUNTER,
                                        "loghaul_collector_queries_total", NULL,
                                        "search requests answered"))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    api->store = store;
    api->metrics = metrics;
    evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(api->http, on_request, api);
    rc = bind_and_log(api, addr, err, errlen);
    if (rc != 0)
        goto fail;
    *out = api;
    return 0;
fail:
    lh_http_api_free(api);
    return rc;
}

int lh_http_api_set_peers(struct lh_http_api *api, char *const *peers, size_t n, char *err,
                          size_t errlen)
{
    return lh_routes_set_peers(api->routes, peers, n, err, errlen);
}

int lh_http_api_set_token(struct lh_http_api *api, const char *token)
{
    char *copy = NULL;
    if (token && !(copy = strdup(token)))
        return LH_ENOMEM;
    free(api->token);
    api->token = copy;
    return 0;
}

void lh_http_api_free(struct lh_http_api *api)
{
    if (!api)
        return;
    lh_routes_free(api->routes);
    if (api->http)
        evhttp_free(api->http);
    free(api->token);
    free(api);
}

int lh_http_read_token(const char *path, char **token, char *err, size_t errlen)
{
    char *data;
    size_t len;
    int rc = lh_read_file(path, MAX_TOKEN_FILE, &data, &len);
    if (rc != 0) {
        snprintf(err, errlen, "auth_token_file %s: %s", path,
                 rc == LH_ENOENT ? "no such file" : lh_strerror(rc));
        return rc;
    }
    size_t start = 0;
    while (start < len && isspace((unsigned char)data[start]))
        start++;
    while (len > start && isspace((unsigned char)data[len - 1]))
        len--;
    if (len == start || memchr(data + start, '\0', len - start)) {
        free(data);
        snprintf(err, errlen, "auth_token_file %s: %s", path,
                 len == start ? "the file is empty" : "the token holds a NUL byte");
        return LH_EINVAL;
    }
    memmove(data, data + start, len - start);
    data[len - start] = '\0';
    *token = data;
    return 0;
}
