#include "collector/http/http_api.h"

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
#include <time.h>

#include "common/net/http_guard.h"
#include "common/net/http_reply.h"
#include "collector/search/routes.h"
#include "collector/http/ui.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/net/net.h"
#include "common/base/util.h"

#define HTTP_LOG "http"
#define MAX_TOKEN_FILE 4096

struct lh_http_api {
    struct evhttp *http;
    struct lh_metrics *metrics;
    struct lh_routes *routes;  /* search, histogram, stats, tail, federation */
    char *token;               /* NULL: open */
    struct lh_http_guard *guard;
};

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

/* ---- routing ------------------------------------------------------------ */

static void on_metrics(struct lh_http_api *api, struct evhttp_request *req)
{
    char *text = lh_metrics_render(api->metrics);
    struct evbuffer *out = evbuffer_new();
    if (!text || !out || evbuffer_add(out, text, strlen(text)) != 0 ||
        lh_routes_render_metrics(api->routes, out) != 0)
        evhttp_send_error(req, 500, "out of memory");
    else
        lh_reply_buf(req, 200, "text/plain; version=0.0.4", out);
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
    lh_http_guard_request(api->guard, req);
    lh_reply_secure_headers(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        lh_reply_error(req, 405, "method not allowed", -1);
    } else if (strcmp(path, "/healthz") == 0) {
        lh_reply_str(req, 200, "text/plain", "ok\n");
    } else if (strcmp(path, "/") == 0) {
        lh_ui_reply(req);
    } else if (!authorized(api, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        lh_reply_error(req, 401, "unauthorized", -1);
    } else if (lh_routes_handle(api->routes, req, path)) {
        LH_DEBUG(HTTP_LOG, "%s answered by the search routes", path);
    } else if (strcmp(path, "/metrics") == 0) {
        on_metrics(api, req);
    } else {
        lh_reply_error(req, 404, "not found: try /api/v1/search, /metrics, /healthz", -1);
    }
}

/* ---- setup -------------------------------------------------------------- */

int lh_http_api_new(struct event_base *base, const char *addr,
                    const struct lh_http_limits *lim, struct lh_store *store,
                    struct lh_metrics *metrics, const char *token, struct lh_http_api **out,
                    char *err, size_t errlen)
{
    struct lh_http_api *api = calloc(1, sizeof *api);
    int rc = LH_ENOMEM;
    if (!api || !(api->http = evhttp_new(base)) || lh_http_api_set_token(api, token) != 0 ||
        lh_routes_new(base, store, metrics, &api->routes) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    api->metrics = metrics;
    evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(api->http, on_request, api);
    rc = lh_http_guard_new(base, api->http, addr, "listen.http.address", lim, metrics,
                           "loghaul_collector", &api->guard, err, errlen);
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

void lh_http_api_set_query_timeout(struct lh_http_api *api, int64_t ms)
{
    lh_routes_set_query_timeout(api->routes, ms);
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

struct lh_tail *lh_http_api_tail(struct lh_http_api *api)
{
    return lh_routes_tail(api->routes);
}

void lh_http_api_free(struct lh_http_api *api)
{
    if (!api)
        return;
    lh_routes_free(api->routes);
    if (api->http)
        evhttp_free(api->http);
    lh_http_guard_free(api->guard); /* after the connections evhttp_free closed */
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
