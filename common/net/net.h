/* Sockets over libevent: listeners and plain-or-TLS bufferevents, so the
 * code above never knows whether a connection is encrypted. */
#ifndef LH_NET_H
#define LH_NET_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/base/metrics.h"

/* Binds and listens on "host:port" ("[::1]:0", "0.0.0.0:24224"; port 0 lets
 * the kernel choose). bound receives the actual "host:port". The listener
 * is created disabled-free: it accepts immediately. NULL with err filled. */
struct evconnlistener *lh_net_listen(struct event_base *base, const char *hostport,
                                     evconnlistener_cb cb, void *arg, char *bound,
                                     size_t boundlen, char *err, size_t errlen);

/* Accepted socket → bufferevent; with ssl != NULL a TLS server connection
 * (the bufferevent owns ssl and the fd either way). */
struct bufferevent *lh_net_accept_bev(struct event_base *base, evutil_socket_t fd, SSL *ssl);

/* Outgoing connection to host:port, plain or TLS (owns ssl). Connect
 * progress is reported to the event callback (BEV_EVENT_CONNECTED/ERROR). */
struct bufferevent *lh_net_connect_bev(struct event_base *base, struct evdns_base *dns,
                                       const char *host, int port, SSL *ssl);

/* "ip:port" of a socket address, for logs and the `host` fallback. */
void lh_net_addr_string(const struct sockaddr *sa, char *buf, size_t len);

/* Binds an evhttp server to "host:port" (port 0: the kernel chooses) and
 * logs "http listening on HOST:PORT" with the bound address. what names the
 * setting in errors ("agent.http"). *bs (may be NULL) receives the bound
 * socket, owned by http. 0, or LH_EINVAL / LH_EIO with err. */
int lh_net_http_bind(struct evhttp *http, const char *addr, const char *what,
                     struct evhttp_bound_socket **bs, char *err, size_t errlen);

/* ---- accept gate --------------------------------------------------------
 * Decides when a listener accepts: not while stopped, not past max_conns
 * open connections (new ones wait in the kernel's backlog), and not for a
 * while after accept() failed. Out of descriptors (EMFILE, ENFILE) the
 * listening socket stays readable, so an enabled listener would retry at
 * once, forever: the gate pauses it for LH_NET_ACCEPT_RETRY_MS, and logs
 * at most once per LH_NET_ACCEPT_LOG_MS with the count of failures, while
 * open connections go on being served. Every listener uses one. */
#define LH_NET_ACCEPT_RETRY_MS 250
#define LH_NET_ACCEPT_LOG_MS 10000

struct lh_net_gate;

struct lh_net_gate_cfg {
    const char *what;        /* the listener in logs and the metric label ("http") */
    size_t max_conns;        /* 0: no cap */
    bool stopped;            /* the listener starts disabled (lh_net_gate_stop) */
    struct lh_metrics *reg;  /* registers PREFIX_accept_errors_total{listener} and */
    const char *prefix;      /* PREFIX_accept_paused_total{listener} ("loghaul_agent") */
};

/* lev is borrowed and must outlive the gate; the caller's error callback
 * calls lh_net_gate_accept_failed(). 0 or LH_ENOMEM. */
int lh_net_gate_new(struct event_base *base, struct evconnlistener *lev,
                    const struct lh_net_gate_cfg *cfg, struct lh_net_gate **out);
/* A connection was accepted / has closed. */
void lh_net_gate_opened(struct lh_net_gate *g);
void lh_net_gate_closed(struct lh_net_gate *g);
size_t lh_net_gate_count(const struct lh_net_gate *g);
/* From the listener's error callback (errno as accept() left it). */
void lh_net_gate_accept_failed(struct lh_net_gate *g);
/* Stops or resumes accepting for the listener's owner. */
void lh_net_gate_stop(struct lh_net_gate *g, bool stopped);
/* NULL is fine. Leaves the listener as it is. */
void lh_net_gate_free(struct lh_net_gate *g);

/* Appends name=value (value URL-encoded) to the malloc'd path *buf, after
 * '?' or '&'. 0 or LH_ENOMEM. */
int lh_net_append_query(char **buf, const char *name, const char *value);

#endif
