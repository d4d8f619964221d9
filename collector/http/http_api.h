/* The collector's HTTP API (SPEC section 7) on libevent's evhttp:
 * GET /api/v1/search, /healthz, /metrics, with an optional bearer token.
 *
 * Runs on the collector's single event_base for now: a search scans the
 * store synchronously inside the request callback. */
#ifndef LH_HTTP_API_H
#define LH_HTTP_API_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/store/store.h"
#include "common/net/http_guard.h"
#include "common/base/metrics.h"

struct lh_http_api;

/* Binds addr ("host:port", port 0 allowed) and logs "http listening on
 * HOST:PORT", with the limits lim (copied). store and metrics are borrowed. token: required bearer token,
 * copied; NULL leaves the API open. 0 with *out, or an LH_E* code with err. */
int lh_http_api_new(struct event_base *base, const char *addr,
                    const struct lh_http_limits *lim, struct lh_store *store,
                    struct lh_metrics *metrics, const char *token, struct lh_http_api **out,
                    char *err, size_t errlen);
/* Replaces the token (copied; NULL: no token needed). 0 or LH_ENOMEM. */
int lh_http_api_set_token(struct lh_http_api *api, const char *token);
/* Peers that searches, histograms and stats federate over (SPEC section
 * 7; URLs copied). 0, or LH_EINVAL / LH_ENOMEM with err. */
int lh_http_api_set_peers(struct lh_http_api *api, char *const *peers, size_t n, char *err,
                          size_t errlen);
/* Time budget of one query's scan (search.query_timeout). */
void lh_http_api_set_query_timeout(struct lh_http_api *api, int64_t ms);
void lh_http_api_free(struct lh_http_api *api);
/* The API's live tails (owned by it), for main to subscribe to ingest. */
struct lh_tail *lh_http_api_tail(struct lh_http_api *api);

/* Reads a token file: its contents with surrounding white space removed.
 * *token is malloc'd (caller frees). 0, or LH_ENOENT/LH_EIO/LH_ETOOBIG/
 * LH_EINVAL (empty) with err naming the file. */
int lh_http_read_token(const char *path, char **token, char *err, size_t errlen);

#endif
