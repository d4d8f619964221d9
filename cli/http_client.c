#include "cli/http_client.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/net/tls.h"

struct http_req {
    struct lh_http_client *client;
    struct evhttp_connection *evcon; /* owns the bufferevent and its SSL */
    SSL *ssl;                        /* borrowed from the bufferevent; NULL for http */
    lh_http_cb cb;
    lh_http_chunk_cb chunk; /* NULL: the whole body at the end */
    void *arg;
    bool have_error;
    enum evhttp_request_error error;
    int error_errno;
    char reason[512];
    struct http_req *next;
};

struct lh_http_client {
    struct event_base *base;
    struct evdns_base *dns;
    SSL_CTX *ssl_ctx; /* built on the first https request */
    struct lh_http_opts opts;
    struct http_req *reqs;
};

int lh_http_client_create(struct event_base *base, const struct lh_http_opts *opts,
                          struct lh_http_client **out, char *err, size_t errlen)
{
    struct lh_http_client *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return LH_ENOMEM;
    }
    c->base = base;
    c->opts = *opts;
    c->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!c->dns) {
        snprintf(err, errlen, "cannot set up DNS resolution");
        lh_http_client_destroy(c);
        return LH_EIO;
    }
    *out = c;
    return 0;
}

void lh_http_client_destroy(struct lh_http_client *c)
{
    if (!c)
        return;
    while (c->reqs) {
        struct http_req *r = c->reqs;
        c->reqs = r->next;
        if (r->evcon)
            evhttp_connection_free(r->evcon);
        free(r);
    }
    if (c->ssl_ctx)
        SSL_CTX_free(c->ssl_ctx);
    if (c->dns)
        evdns_base_free(c->dns, 0);
    free(c);
}

static const char *request_error_text(enum evhttp_request_error e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        return "timed out";
    case EVREQ_HTTP_EOF:
        return "connection closed before a complete answer";
    case EVREQ_HTTP_INVALID_HEADER:
        return "invalid HTTP answer";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "read or write error";
    case EVREQ_HTTP_REQUEST_CANCEL:
        return "request cancelled";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "answer too large";
    }
    return "request failed";
}

/* Socket errors worth naming; any other errno at that point is stale. */
static bool network_errno(int e)
{
    return e == ECONNREFUSED || e == ECONNRESET || e == ETIMEDOUT || e == EHOSTUNREACH ||
           e == ENETUNREACH || e == EPIPE;
}

/* Why a request got no answer, from the most specific evidence at hand:
 * a certificate verdict, a resolver error, OpenSSL's error queue, then the
 * evhttp error kind. evhttp reports a refused connect without any error
 * kind (it resets the connection and runs the callback directly), and the
 * errno it leaves behind then comes from that reset, so it is not used. */
static void describe_failure(struct http_req *r)
{
    struct bufferevent *bev = r->evcon ? evhttp_connection_get_bufferevent(r->evcon) : NULL;
    long verdict = r->ssl ? SSL_get_verify_result(r->ssl) : X509_V_OK;
    int dns_err = bev ? bufferevent_socket_get_dns_error(bev) : 0;
    /* bufferevent_openssl also queues bare SSL_get_error() codes (library 0),
     * which say less than the evhttp error kind. */
    unsigned long ssl_err = (r->ssl && bev) ? bufferevent_get_openssl_error(bev) : 0;
    if (verdict != X509_V_OK) {
        snprintf(r->reason, sizeof(r->reason), "TLS certificate verification failed: %s",
                 X509_verify_cert_error_string(verdict));
    } else if (dns_err) {
        snprintf(r->reason, sizeof(r->reason), "cannot resolve the host: %s",
                 evutil_gai_strerror(dns_err));
    } else if (ssl_err && ERR_GET_LIB(ssl_err) != 0) {
        char buf[256];
        ERR_error_string_n(ssl_err, buf, sizeof(buf));
        snprintf(r->reason, sizeof(r->reason), "TLS error: %s", buf);
    } else if (!r->have_error) {
        snprintf(r->reason, sizeof(r->reason), "connection refused");
    } else if (r->error == EVREQ_HTTP_TIMEOUT) {
        snprintf(r->reason, sizeof(r->reason), "timed out after %d s", r->client->opts.timeout_s);
    } else if (r->error == EVREQ_HTTP_DATA_TOO_LONG) {
        snprintf(r->reason, sizeof(r->reason), "answer larger than %zu bytes",
                 r->client->opts.max_body);
    } else if (r->error == EVREQ_HTTP_EOF && network_errno(r->error_errno)) {
        snprintf(r->reason, sizeof(r->reason), "%s", strerror(r->error_errno));
    } else {
        snprintf(r->reason, sizeof(r->reason), "%s", request_error_text(r->error));
    }
}

static void on_error(enum evhttp_request_error e, void *arg)
{
    struct http_req *r = arg;
    r->have_error = true;
    r->error = e;
    r->error_errno = errno; /* evhttp restores the socket error for this call */
}

static void on_done(struct evhttp_request *req, void *arg)
{
    struct http_req *r = arg;
    struct lh_http_response res = {0};
    int status = req ? evhttp_request_get_response_code(req) : 0;
    if (status == 0) {
        describe_failure(r);
        res.reason = r->reason;
        r->cb(&res, r->arg);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    res.status = status;
    res.reason = evhttp_request_get_response_code_line(req);
    res.body_len = evbuffer_get_length(in);
    res.body = res.body_len ? (const char *)evbuffer_pullup(in, -1) : "";
    if (!res.body) {
        res.status = 0;
        res.reason = "out of memory";
        res.body_len = 0;
        res.body = "";
    }
    r->cb(&res, r->arg);
}

/* A stream may stay quiet for long: once its answer has begun, only
 * writes keep a timeout. */
static int on_header(struct evhttp_request *req, void *arg)
{
    struct http_req *r = arg;
    struct timeval wt = {r->client->opts.timeout_s, 0};
    if (evhttp_request_get_response_code(req) == 200)
        bufferevent_set_timeouts(evhttp_connection_get_bufferevent(r->evcon), NULL, &wt);
    return 0;
}

static void on_chunk(struct evhttp_request *req, void *arg)
{
    struct http_req *r = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *p = n ? (const char *)evbuffer_pullup(in, -1) : NULL;
    if (p && evhttp_request_get_response_code(req) == 200) {
        r->chunk(p, n, r->arg);
        evbuffer_drain(in, n);
    }
}

/* The target of the request: the URL's own path (a prefix, as behind a
 * reverse proxy) without its trailing slash, then path_query. */
static char *request_target(const struct evhttp_uri *uri, const char *path_query)
{
    const char *path = evhttp_uri_get_path(uri);
    size_t plen = path ? strlen(path) : 0;
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    size_t n = plen + strlen(path_query) + 1;
    char *t = malloc(n);
    if (t)
        snprintf(t, n, "%.*s%s", (int)plen, plen ? path : "", path_query);
    return t;
}

static SSL *new_client_ssl(struct lh_http_client *c, const char *host, char *err, size_t errlen)
{
    if (!c->ssl_ctx) {
        struct lh_tls_cfg cfg = {
            .present = true,
            .enabled = true,
            .ca = (char *)c->opts.ca_file,
            .verify = !c->opts.insecure,
        };
        c->ssl_ctx = lh_tls_client_ctx(&cfg, err, errlen);
        if (!c->ssl_ctx)
            return NULL;
    }
    SSL *ssl = lh_tls_client_ssl(c->ssl_ctx, host);
    if (!ssl)
        snprintf(err, errlen, "cannot create a TLS session for %s", host);
    return ssl;
}

static int open_connection(struct http_req *r, const char *host, int port, bool tls, char *err,
                           size_t errlen)
{
    struct lh_http_client *c = r->client;
    struct bufferevent *bev;
    if (tls) {
        r->ssl = new_client_ssl(c, host, err, errlen);
        if (!r->ssl)
            return LH_ETLS;
        bev = bufferevent_openssl_socket_new(c->base, -1, r->ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!bev) {
            SSL_free(r->ssl);
            r->ssl = NULL;
        } else {
            /* Many servers close TLS without close_notify once the answer is
             * sent; the body length already tells when it is complete. */
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
        }
    } else {
        bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!bev) {
        snprintf(err, errlen, "out of memory");
        return LH_ENOMEM;
    }
    r->evcon = evhttp_connection_base_bufferevent_new(c->base, c->dns, bev, host,
                                                      (ev_uint16_t)port);
    if (!r->evcon) {
        bufferevent_free(bev);
        r->ssl = NULL;
        snprintf(err, errlen, "out of memory");
        return LH_ENOMEM;
    }
    evhttp_connection_set_timeout(r->evcon, c->opts.timeout_s);
    evhttp_connection_set_max_body_size(r->evcon, (ev_ssize_t)c->opts.max_body);
    return 0;
}

static int add_headers(struct evhttp_request *req, const char *host, int port,
                       const char *token)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char hostport[300];
    snprintf(hostport, sizeof(hostport), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    if (evhttp_add_header(h, "Host", hostport) || evhttp_add_header(h, "Accept", "*/*") ||
        evhttp_add_header(h, "Connection", "close"))
        return LH_ENOMEM;
    if (token) {
        size_t n = strlen(token) + 8;
        char *v = malloc(n);
        if (!v)
            return LH_ENOMEM;
        snprintf(v, n, "Bearer %s", token);
        int rc = evhttp_add_header(h, "Authorization", v);
        free(v);
        if (rc)
            return LH_ENOMEM;
    }
    return 0;
}

/* Checks the URL and fills host, port and whether it is https. */
static int parse_base_url(const struct evhttp_uri *uri, const char *url, bool *tls, int *port,
                          char *err, size_t errlen)
{
    const char *scheme = evhttp_uri_get_scheme(uri);
    const char *host = evhttp_uri_get_host(uri);
    if (!scheme || (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
        snprintf(err, errlen, "%s: URL must start with http:// or https://", url);
        return LH_EINVAL;
    }
    if (!host || !*host) {
        snprintf(err, errlen, "%s: URL has no host", url);
        return LH_EINVAL;
    }
    if (evhttp_uri_get_query(uri) || evhttp_uri_get_fragment(uri)) {
        snprintf(err, errlen, "%s: URL must not have a query or fragment", url);
        return LH_EINVAL;
    }
    *tls = strcmp(scheme, "https") == 0;
    *port = evhttp_uri_get_port(uri);
    if (*port < 0)
        *port = *tls ? 443 : 80;
    return 0;
}

static int start_request(struct http_req *r, const struct evhttp_uri *uri, const char *url,
                         const char *path_query, char *err, size_t errlen)
{
    bool tls;
    int port;
    int rc = parse_base_url(uri, url, &tls, &port, err, errlen);
    if (rc)
        return rc;
    /* evhttp keeps the brackets of an IPv6 literal; resolvers and
     * certificate checks want the bare address. */
    char host[256];
    const char *h = evhttp_uri_get_host(uri);
    size_t hlen = strlen(h);
    if (hlen > 2 && h[0] == '[' && h[hlen - 1] == ']')
        snprintf(host, sizeof(host), "%.*s", (int)(hlen - 2), h + 1);
    else if (hlen < sizeof(host))
        snprintf(host, sizeof(host), "%s", h);
    else {
        snprintf(err, errlen, "%s: host name too long", url);
        return LH_EINVAL;
    }
    rc = open_connection(r, host, port, tls, err, errlen);
    if (rc)
        return rc;
    char *target = request_target(uri, path_query);
    struct evhttp_request *req = evhttp_request_new(on_done, r);
    if (!target || !req || add_headers(req, host, port, r->client->opts.bearer_token)) {
        free(target);
        if (req)
            evhttp_request_free(req);
        snprintf(err, errlen, "out of memory");
        return LH_ENOMEM;
    }
    evhttp_request_set_error_cb(req, on_error);
    if (r->chunk) {
        evhttp_request_set_header_cb(req, on_header);
        evhttp_request_set_chunked_cb(req, on_chunk);
    }
    /* evhttp_make_request frees req itself when it fails. */
    rc = evhttp_make_request(r->evcon, req, EVHTTP_REQ_GET, target);
    free(target);
    if (rc) {
        snprintf(err, errlen, "%s: cannot start the request", url);
        return LH_EIO;
    }
    return 0;
}

static int http_start(struct lh_http_client *c, const char *base_url, const char *path_query,
                      lh_http_chunk_cb chunk, lh_http_cb cb, void *arg, char *err,
                      size_t errlen)
{
    struct evhttp_uri *uri = evhttp_uri_parse_with_flags(base_url, EVHTTP_URI_NONCONFORMANT);
    if (!uri) {
        snprintf(err, errlen, "%s: not a valid URL", base_url);
        return LH_EINVAL;
    }
    struct http_req *r = calloc(1, sizeof(*r));
    if (!r) {
        evhttp_uri_free(uri);
        snprintf(err, errlen, "out of memory");
        return LH_ENOMEM;
    }
    r->client = c;
    r->cb = cb;
    r->chunk = chunk;
    r->arg = arg;
    r->next = c->reqs;
    c->reqs = r;
    int rc = start_request(r, uri, base_url, path_query, err, errlen);
    evhttp_uri_free(uri);
    return rc;
}

int lh_http_get(struct lh_http_client *c, const char *base_url, const char *path_query,
                lh_http_cb cb, void *arg, char *err, size_t errlen)
{
    return http_start(c, base_url, path_query, NULL, cb, arg, err, errlen);
}

int lh_http_stream(struct lh_http_client *c, const char *base_url, const char *path_query,
                   lh_http_chunk_cb chunk, lh_http_cb cb, void *arg, char *err, size_t errlen)
{
    return http_start(c, base_url, path_query, chunk, cb, arg, err, errlen);
}
