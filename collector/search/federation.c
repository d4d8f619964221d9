#include "collector/search/federation.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "common/base/err.h"
#include "common/base/log.h"
#include "common/net/tls.h"

#define FED_LOG "federation"

struct peer {
    char *url;
    char host[256];           /* without IPv6 brackets */
    int port;
    bool tls;
    char *prefix;             /* path before /api/..., no trailing slash */
};

struct slot {
    struct call *call;
    size_t idx;
    struct evhttp_connection *evcon;
    SSL *ssl;                 /* owned by the bufferevent */
    struct evbuffer *body;
    int status;
    bool done, have_error;
    enum evhttp_request_error error;
    char why[256];
};

struct call {
    struct lh_fed *f;
    lh_fed_done_cb done;
    void *ud;
    size_t pending;
    struct event *finish;     /* runs done outside evhttp's callbacks */
    struct slot *slots;
    LIST_ENTRY(call) link;
};

struct lh_fed {
    struct event_base *base;
    struct evdns_base *dns;
    SSL_CTX *ssl_ctx;         /* built on the first https request */
    struct peer *peers;
    size_t n;
    LIST_HEAD(, call) calls;
};

/* ---- peers -------------------------------------------------------------- */

static int parse_peer(const char *url, struct peer *p, char *err, size_t errlen)
{
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, EVHTTP_URI_NONCONFORMANT);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    int rc = LH_EINVAL;
    size_t hl = host ? strlen(host) : 0;
    if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) || hl == 0 ||
        hl >= sizeof p->host || evhttp_uri_get_query(u)) {
        snprintf(err, errlen, "peers: '%s' is not an http:// or https:// URL of a collector",
                 url);
        goto out;
    }
    if (host[0] == '[' && host[hl - 1] == ']')
        snprintf(p->host, sizeof p->host, "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(p->host, sizeof p->host, "%s", host);
    p->tls = strcmp(scheme, "https") == 0;
    p->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : (p->tls ? 443 : 80);
    size_t pl = path ? strlen(path) : 0;
    while (pl > 0 && path[pl - 1] == '/')
        pl--;
    rc = LH_ENOMEM;
    if (!(p->url = strdup(url)) || !(p->prefix = strndup(pl ? path : "", pl)))
        snprintf(err, errlen, "out of memory");
    else
        rc = 0;
out:
    if (u)
        evhttp_uri_free(u);
    return rc;
}

int lh_fed_new(struct event_base *base, char *const *peers, size_t n, struct lh_fed **out,
               char *err, size_t errlen)
{
    if (n > LH_FED_MAX_PEERS) {
        snprintf(err, errlen, "peers: at most %d", LH_FED_MAX_PEERS);
        return LH_EINVAL;
    }
    struct lh_fed *f = calloc(1, sizeof *f);
    int rc = LH_ENOMEM;
    if (!f || (n && !(f->peers = calloc(n, sizeof *f->peers)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    f->base = base;
    LIST_INIT(&f->calls);
    for (size_t i = 0; i < n; i++) {
        f->n = i + 1; /* a half-parsed peer is freed too */
        if ((rc = parse_peer(peers[i], &f->peers[i], err, errlen)) != 0)
            goto fail;
    }
    *out = f;
    return 0;
fail:
    lh_fed_free(f);
    return rc;
}

size_t lh_fed_peers(const struct lh_fed *f)
{
    return f ? f->n : 0;
}

static void call_free(struct call *c)
{
    LIST_REMOVE(c, link);
    for (size_t i = 0; i < c->f->n; i++) {
        if (c->slots[i].evcon)
            evhttp_connection_free(c->slots[i].evcon);
        if (c->slots[i].body)
            evbuffer_free(c->slots[i].body);
    }
    if (c->finish)
        event_free(c->finish);
    free(c->slots);
    free(c);
}

void lh_fed_free(struct lh_fed *f)
{
    if (!f)
        return;
    while (!LIST_EMPTY(&f->calls))
        call_free(LIST_FIRST(&f->calls));
    for (size_t i = 0; i < f->n; i++) {
        free(f->peers[i].url);
        free(f->peers[i].prefix);
    }
    free(f->peers);
    if (f->ssl_ctx)
        SSL_CTX_free(f->ssl_ctx);
    if (f->dns)
        evdns_base_free(f->dns, 0);
    free(f);
}

/* ---- answers ------------------------------------------------------------ */

static void on_finish(evutil_socket_t fd, short what, void *arg)
{
    struct call *c = arg;
    size_t n = c->f->n;
    struct lh_fed_answer *a = calloc(n, sizeof *a);
    for (size_t i = 0; a && i < n; i++) {
        struct slot *s = &c->slots[i];
        a[i].peer = c->f->peers[i].url;
        a[i].status = s->status;
        a[i].ok = s->status == 200;
        a[i].len = s->body ? evbuffer_get_length(s->body) : 0;
        a[i].body = a[i].len ? (const char *)evbuffer_pullup(s->body, -1) : "";
        if (!a[i].body) {
            a[i].ok = false;
            snprintf(s->why, sizeof s->why, "out of memory");
        }
        a[i].why = s->why;
    }
    c->done(c->ud, a, a ? n : 0);
    free(a);
    call_free(c);
}

static const char *error_text(const struct slot *s)
{
    if (s->ssl && SSL_get_verify_result(s->ssl) != X509_V_OK)
        return X509_verify_cert_error_string(SSL_get_verify_result(s->ssl));
    if (!s->have_error)
        return "connection refused";
    switch (s->error) {
    case EVREQ_HTTP_TIMEOUT: return "timed out";
    case EVREQ_HTTP_DATA_TOO_LONG: return "answer too large";
    case EVREQ_HTTP_INVALID_HEADER: return "invalid HTTP answer";
    default: return "connection closed before a complete answer";
    }
}

static void on_error(enum evhttp_request_error e, void *arg)
{
    struct slot *s = arg;
    s->have_error = true;
    s->error = e;
}

static void on_done(struct evhttp_request *req, void *arg)
{
    struct slot *s = arg;
    s->status = req ? evhttp_request_get_response_code(req) : 0;
    if (s->status == 0)
        snprintf(s->why, sizeof s->why, "%s", error_text(s));
    else if (s->status != 200)
        snprintf(s->why, sizeof s->why, "HTTP %d", s->status);
    if (req && (s->body = evbuffer_new()) != NULL)
        evbuffer_add_buffer(s->body, evhttp_request_get_input_buffer(req));
    if (s->status != 200)
        LH_WARN(FED_LOG, "peer %s: %s", s->call->f->peers[s->idx].url, s->why);
    s->done = true;
    if (--s->call->pending == 0)
        event_active(s->call->finish, 0, 0);
}

/* ---- requests ----------------------------------------------------------- */

static struct bufferevent *new_bev(struct lh_fed *f, const struct peer *p, struct slot *s)
{
    if (!p->tls)
        return bufferevent_socket_new(f->base, -1, BEV_OPT_CLOSE_ON_FREE);
    char err[256];
    struct lh_tls_cfg cfg = {.present = true, .enabled = true, .verify = true};
    if (!f->ssl_ctx && !(f->ssl_ctx = lh_tls_client_ctx(&cfg, err, sizeof err))) {
        LH_ERROR(FED_LOG, "TLS for peers: %s", err);
        return NULL;
    }
    if (!(s->ssl = lh_tls_client_ssl(f->ssl_ctx, p->host)))
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        f->base, -1, s->ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        SSL_free(s->ssl);
        s->ssl = NULL;
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static int send_one(struct lh_fed *f, struct slot *s, const char *path_query,
                    const char *authorization)
{
    const struct peer *p = &f->peers[s->idx];
    struct bufferevent *bev = new_bev(f, p, s);
    if (!bev)
        return LH_ENOMEM;
    s->evcon = evhttp_connection_base_bufferevent_new(f->base, f->dns, bev, p->host,
                                                      (ev_uint16_t)p->port);
    if (!s->evcon) {
        bufferevent_free(bev);
        return LH_ENOMEM;
    }
    evhttp_connection_set_timeout(s->evcon, LH_FED_TIMEOUT_S);
    evhttp_connection_set_max_body_size(s->evcon, LH_FED_MAX_BODY);
    struct evhttp_request *req = evhttp_request_new(on_done, s);
    size_t tlen = strlen(p->prefix) + strlen(path_query) + 1;
    char *target = malloc(tlen);
    char hostport[300];
    snprintf(hostport, sizeof hostport, strchr(p->host, ':') ? "[%s]:%d" : "%s:%d", p->host,
             p->port);
    struct evkeyvalq *h = req ? evhttp_request_get_output_headers(req) : NULL;
    if (!req || !target || evhttp_add_header(h, "Host", hostport) != 0 ||
        (authorization && evhttp_add_header(h, "Authorization", authorization) != 0)) {
        free(target);
        if (req)
            evhttp_request_free(req);
        return LH_ENOMEM;
    }
    evhttp_request_set_error_cb(req, on_error);
    snprintf(target, tlen, "%s%s", p->prefix, path_query);
    int rc = evhttp_make_request(s->evcon, req, EVHTTP_REQ_GET, target); /* frees req on failure */
    free(target);
    return rc == 0 ? 0 : LH_EIO;
}

int lh_fed_ask(struct lh_fed *f, const char *path_query, const char *authorization,
               lh_fed_done_cb done, void *ud)
{
    if (!f->dns && !(f->dns = evdns_base_new(f->base, EVDNS_BASE_INITIALIZE_NAMESERVERS)))
        LH_WARN(FED_LOG, "no DNS resolver: peers given by name are resolved blocking");
    struct call *c = calloc(1, sizeof *c);
    if (!c)
        return LH_ENOMEM;
    c->f = f;
    c->done = done;
    c->ud = ud;
    LIST_INSERT_HEAD(&f->calls, c, link);
    c->finish = event_new(f->base, -1, 0, on_finish, c);
    c->slots = calloc(f->n ? f->n : 1, sizeof *c->slots);
    if (!c->finish || !c->slots) {
        call_free(c);
        return LH_ENOMEM;
    }
    for (size_t i = 0; i < f->n; i++) {
        struct slot *s = &c->slots[i];
        s->call = c;
        s->idx = i;
        c->pending++;
        if (send_one(f, s, path_query, authorization) != 0) {
            snprintf(s->why, sizeof s->why, "cannot start the request");
            s->done = true;
            c->pending--;
        }
    }
    if (c->pending == 0)
        event_active(c->finish, 0, 0);
    return 0;
}
