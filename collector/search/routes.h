/* The search endpoints beyond the plain local search (SPEC section 7),
 * called by the HTTP API's router after the token check:
 *
 *   GET /api/v1/histogram?q=&from=&to=&step=   JSON [{"t": unix, "count": n}, ...]
 *   GET /api/v1/stats?q=Q | stats count by f&from=&to=
 *                                              JSON [{"f": v, "count": n}, ...]
 *   GET /api/v1/search with a `| stats` query  the same rows as /api/v1/stats
 *   GET /api/v1/tail?q=                        live NDJSON stream (see tail.h)
 *
 * With peers, search, histogram and stats are answered from this collector
 * and every peer (asked with local=1, which makes any collector answer
 * alone) and merged; a peer that fails is named in a last element
 * {"partial": true, "failed": [URL, ...]} (a last NDJSON line for search,
 * a last array element for the JSON answers) instead of failing the query. */
#ifndef LH_ROUTES_H
#define LH_ROUTES_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/store/store.h"
#include "common/base/metrics.h"

struct lh_routes;

/* store and metrics are borrowed. 0 or LH_ENOMEM. */
int lh_routes_new(struct event_base *base, struct lh_store *store, struct lh_metrics *metrics,
                  struct lh_routes **out);
/* Ends live tails and abandons federated requests in flight. */
void lh_routes_free(struct lh_routes *r);
/* The live tails (owned by r), for main to subscribe to ingest. */
struct lh_tail *lh_routes_tail(struct lh_routes *r);

/* Peers to federate with (URLs copied). 0, or LH_EINVAL / LH_ENOMEM with
 * err. */
int lh_routes_set_peers(struct lh_routes *r, char *const *peers, size_t n, char *err,
                        size_t errlen);

/* A query whose scan runs past ms answers 503 (default 30 s). */
void lh_routes_set_query_timeout(struct lh_routes *r, int64_t ms);

/* Answers req and returns true when path is /api/v1/search or one of the
 * endpoints above; false leaves req alone. */
bool lh_routes_handle(struct lh_routes *r, struct evhttp_request *req, const char *path);

/* Appends loghaul_collector_query_duration_seconds (a histogram) to out. */
int lh_routes_render_metrics(const struct lh_routes *r, struct evbuffer *out);

#endif
