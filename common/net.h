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
 * setting in errors ("agent.http"). 0, or LH_EINVAL / LH_EIO with err. */
int lh_net_http_bind(struct evhttp *http, const char *addr, const char *what, char *err,
                     size_t errlen);

/* Appends name=value (value URL-encoded) to the malloc'd path *buf, after
 * '?' or '&'. 0 or LH_ENOMEM. */
int lh_net_append_query(char **buf, const char *name, const char *value);

#endif
