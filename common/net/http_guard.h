/* Limits for the daemons' evhttp servers (the collector's API, the agent's
 * status port): header, URI and body sizes, a connection cap, and read and
 * write timeouts, so a slow or hostile client holds neither memory nor a
 * connection for long.
 *
 * libevent 2.1's evhttp bounds headers (the request line included: a long
 * URI counts against it) and bodies itself, answering 413. It has no
 * connection cap, no deadline for a request that trickles in, and its one
 * timeout would also end long answers (export, tail) whose client sends
 * nothing. It accepts on its own listener and hands nobody the socket, so
 * the guard sees each connection through evhttp's bufferevent callback,
 * learns its descriptor a loop turn later, and checks once a second which
 * are still open (same descriptor, same socket inode). A connection whose
 * request is not whole read_timeout after it opened, or after the previous
 * answer, is shut down; that covers idle keep-alive connections too. */
#ifndef LH_HTTP_GUARD_H
#define LH_HTTP_GUARD_H

#include <event2/event.h>
#include <event2/http.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/metrics.h"

struct lh_http_limits {
    int64_t max_connections;   /* past it new connections wait in the backlog */
    int64_t max_header_size;   /* request line + headers, bytes (413 past it) */
    int64_t max_body_size;     /* bytes (413 past it) */
    int64_t read_timeout_ms;   /* a whole request, from open or the last answer */
    int64_t write_timeout_ms;  /* an answer that cannot be written for this long */
};

struct lh_http_guard;

/* Binds http to addr (via lh_net_http_bind; what names the setting) and
 * applies lim. Metrics PREFIX_http_timeouts_total and the listener gate's
 * (listener="http") go to reg. Free the guard after evhttp_free(http).
 * 0, or LH_E* with err. */
int lh_http_guard_new(struct event_base *base, struct evhttp *http, const char *addr,
                      const char *what, const struct lh_http_limits *lim, struct lh_metrics *reg,
                      const char *prefix, struct lh_http_guard **out, char *err, size_t errlen);
/* Called when a request has been read whole: its connection's read
 * deadline starts again from here. */
void lh_http_guard_request(struct lh_http_guard *g, struct evhttp_request *req);
/* Open connections counted (for tests and /status). */
size_t lh_http_guard_connections(const struct lh_http_guard *g);
void lh_http_guard_free(struct lh_http_guard *g);

#endif
