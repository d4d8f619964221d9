#include "common/net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/base/err.h"
#include "common/base/log.h"
#include "common/base/util.h"

#define LISTEN_BACKLOG 1024
/* Deferred callbacks: nothing fires before the caller has set its callbacks
 * after we return, even when a connect fails at once. */
#define BEV_FLAGS (BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)

void lh_net_addr_string(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    if (len == 0)
        return;
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(buf, len, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        snprintf(buf, len, "unix:%.*s", (int)sizeof un->sun_path, un->sun_path);
        break;
    }
    default:
        snprintf(buf, len, "unknown");
    }
}

static int resolve_passive(const char *hostport, struct addrinfo **res, char *err, size_t errlen)
{
    char host[256], port_s[8];
    int port;
    if (lh_split_hostport(hostport, host, sizeof host, &port) != LH_OK) {
        snprintf(err, errlen, "invalid listen address '%s' (expected host:port or [v6]:port)",
                 hostport);
        return LH_EINVAL;
    }
    snprintf(port_s, sizeof port_s, "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
    };
    int rc = getaddrinfo(host[0] ? host : NULL, port_s, &hints, res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve listen address '%s': %s", hostport,
                 gai_strerror(rc));
        return LH_EINVAL;
    }
    return LH_OK;
}

struct evconnlistener *lh_net_listen(struct event_base *base, const char *hostport,
                                     evconnlistener_cb cb, void *arg, char *bound,
                                     size_t boundlen, char *err, size_t errlen)
{
    const unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    struct addrinfo *res;
    struct evconnlistener *lev = NULL;
    int saved = 0;
    if (resolve_passive(hostport, &res, err, errlen) != LH_OK)
        return NULL;
    for (struct addrinfo *ai = res; ai && !lev; ai = ai->ai_next) {
        lev = evconnlistener_new_bind(base, cb, arg, flags, LISTEN_BACKLOG, ai->ai_addr,
                                      (int)ai->ai_addrlen);
        if (!lev)
            saved = errno;
    }
    freeaddrinfo(res);
    if (!lev) {
        snprintf(err, errlen, "cannot listen on %s: %s", hostport, strerror(saved));
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errlen, "cannot read the address bound for %s: %s", hostport,
                 strerror(errno));
        evconnlistener_free(lev);
        return NULL;
    }
    if (bound)
        lh_net_addr_string((struct sockaddr *)&ss, bound, boundlen);
    return lev;
}

struct bufferevent *lh_net_accept_bev(struct event_base *base, evutil_socket_t fd, SSL *ssl)
{
    struct bufferevent *bev;
    if (!ssl) {
        bev = bufferevent_socket_new(base, fd, BEV_FLAGS);
        if (!bev)
            evutil_closesocket(fd);
        return bev;
    }
    /* Without an fd libevent cannot fail after taking ssl, so a NULL here
     * leaves both to us; once the fd is set, freeing the bev releases both. */
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_FLAGS);
    if (!bev) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        return NULL;
    }
    if (bufferevent_setfd(bev, fd) != 0) {
        bufferevent_free(bev);
        return NULL;
    }
    /* Agents often vanish without close_notify; what they sent still counts. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* Socket options such as TCP_NODELAY need the connected fd: the caller sets
 * them on BEV_EVENT_CONNECTED (bufferevent_getfd). */
struct bufferevent *lh_net_connect_bev(struct event_base *base, struct evdns_base *dns,
                                       const char *host, int port, SSL *ssl)
{
    struct bufferevent *bev;
    if (ssl) {
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_FLAGS);
        if (!bev) {
            SSL_free(ssl);
            return NULL;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(base, -1, BEV_FLAGS);
        if (!bev)
            return NULL;
    }
    /* With dns NULL libevent resolves with a blocking getaddrinfo(). A
     * resolution or connect failure is reported as BEV_EVENT_ERROR. */
    if (bufferevent_socket_connect_hostname(bev, dns, AF_UNSPEC, host, port) != 0) {
        bufferevent_free(bev);
        return NULL;
    }
    return bev;
}

int lh_net_http_bind(struct evhttp *http, const char *addr, const char *what,
                     struct evhttp_bound_socket **bs_out, char *err, size_t errlen)
{
    char host[256];
    int port = 0;
    if (lh_split_hostport(addr, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "%s '%s' is not host:port", what, addr);
        return LH_EINVAL;
    }
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (!bs) {
        snprintf(err, errlen, "cannot listen on %s for HTTP: %s", addr, strerror(errno));
        return LH_EIO;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char bound[300] = "";
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
        lh_net_addr_string((struct sockaddr *)&ss, bound, sizeof bound);
    LH_INFO("http", "http listening on %s", bound[0] ? bound : addr);
    if (bs_out)
        *bs_out = bs;
    return LH_OK;
}

int lh_net_append_query(char **buf, const char *name, const char *value)
{
    char *enc = evhttp_uriencode(value, -1, 0);
    size_t n = enc ? strlen(*buf) + strlen(name) + strlen(enc) + 3 : 0;
    char *grown = enc ? realloc(*buf, n) : NULL;
    if (grown) {
        size_t used = strlen(grown);
        snprintf(grown + used, n - used, "%s%s=%s", strchr(grown, '?') ? "&" : "?", name, enc);
        *buf = grown;
    }
    free(enc);
    return grown ? 0 : LH_ENOMEM;
}

/* ---- accept gate -------------------------------------------------------- */

struct lh_net_gate {
    struct evconnlistener *lev;   /* borrowed */
    struct event *retry;          /* ends a pause after a failed accept() */
    char what[96];
    size_t n, max;
    bool stopped, backoff, enabled, full;
    uint64_t fails;               /* since the last report */
    uint64_t fails_unreported;    /* since accepting last worked */
    int64_t last_log_ms;          /* 0: nothing logged yet */
    struct lh_metric *m_errors, *m_paused;
};

static void gate_apply(struct lh_net_gate *g)
{
    bool full = g->max && g->n >= g->max;
    if (full && !g->full) {
        lh_metric_add(g->m_paused, 1);
        LH_WARN("net", "%s: %zu connections open (max_connections): new ones wait until one "
                "closes", g->what, g->n);
    } else if (!full && g->full) {
        LH_INFO("net", "%s: below max_connections again: accepting", g->what);
    }
    g->full = full;
    bool want = !g->stopped && !g->backoff && !full;
    if (want == g->enabled)
        return;
    g->enabled = want;
    if (want)
        evconnlistener_enable(g->lev);
    else
        evconnlistener_disable(g->lev);
}

static void gate_retry(evutil_socket_t fd, short what, void *arg)
{
    struct lh_net_gate *g = arg;
    g->backoff = false;
    gate_apply(g);
}

int lh_net_gate_new(struct event_base *base, struct evconnlistener *lev,
                    const struct lh_net_gate_cfg *cfg, struct lh_net_gate **out)
{
    struct lh_net_gate *g = calloc(1, sizeof *g);
    if (!g || !(g->retry = evtimer_new(base, gate_retry, g)))
        goto fail;
    g->lev = lev;
    snprintf(g->what, sizeof g->what, "%s", cfg->what);
    g->max = cfg->max_conns;
    g->stopped = cfg->stopped;
    g->enabled = !cfg->stopped;
    if (cfg->reg) {
        char labels[160];
        snprintf(labels, sizeof labels, "listener=\"%s\"", cfg->what);
        char name[128];
        snprintf(name, sizeof name, "%s_accept_errors_total", cfg->prefix);
        g->m_errors = lh_metrics_get(cfg->reg, LH_METRIC_COUNTER, name, labels,
                                     "accept() failures (accepting pauses briefly after one)");
        snprintf(name, sizeof name, "%s_accept_paused_total", cfg->prefix);
        g->m_paused = lh_metrics_get(cfg->reg, LH_METRIC_COUNTER, name, labels,
                                     "times a listener reached max_connections and paused");
        if (!g->m_errors || !g->m_paused)
            goto fail;
    }
    gate_apply(g);
    *out = g;
    return LH_OK;
fail:
    lh_net_gate_free(g);
    return LH_ENOMEM;
}

void lh_net_gate_opened(struct lh_net_gate *g)
{
    if (g->fails_unreported) {
        LH_INFO("net", "%s: accepting again after %llu failed accept() calls", g->what,
                (unsigned long long)g->fails_unreported);
        g->fails_unreported = 0;
        g->fails = 0;
        g->last_log_ms = 0;
    }
    g->n++;
    gate_apply(g);
}

void lh_net_gate_closed(struct lh_net_gate *g)
{
    if (g->n > 0)
        g->n--;
    gate_apply(g);
}

size_t lh_net_gate_count(const struct lh_net_gate *g)
{
    return g->n;
}

void lh_net_gate_accept_failed(struct lh_net_gate *g)
{
    int e = errno;
    int64_t now = lh_mono_ms();
    g->fails++;
    g->fails_unreported++;
    lh_metric_add(g->m_errors, 1);
    if (!g->last_log_ms || now - g->last_log_ms >= LH_NET_ACCEPT_LOG_MS) {
        LH_WARN("net", "%s: accept failed: %s (%llu times since the last report); pausing "
                "accepts for %dms at a time, open connections are still served",
                g->what, strerror(e), (unsigned long long)g->fails, LH_NET_ACCEPT_RETRY_MS);
        g->fails = 0;
        g->last_log_ms = now;
    }
    g->backoff = true;
    gate_apply(g);
    struct timeval tv = {0, LH_NET_ACCEPT_RETRY_MS * 1000};
    evtimer_add(g->retry, &tv);
}

void lh_net_gate_stop(struct lh_net_gate *g, bool stopped)
{
    g->stopped = stopped;
    gate_apply(g);
}

void lh_net_gate_free(struct lh_net_gate *g)
{
    if (!g)
        return;
    if (g->retry)
        event_free(g->retry);
    free(g);
}
