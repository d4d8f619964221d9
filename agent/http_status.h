/* The agent's own HTTP port: GET /metrics (Prometheus text), /healthz,
 * /status (JSON: files and outputs). evhttp on the agent's event_base. */
#ifndef LH_AGENT_HTTP_STATUS_H
#define LH_AGENT_HTTP_STATUS_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/core/pipeline.h"
#include "common/base/metrics.h"

struct lh_http_status;

/* Listens on addr ("host:port", port 0 = any) and logs the bound address.
 * Requests are small GETs: headers are capped at 16 KiB, bodies at 64 KiB;
 * max_connections and read_timeout_ms come from the agent section.
 * metrics and pl are borrowed: metrics must outlive the server, pl must
 * stay valid until it is replaced with lh_http_status_set_pipeline().
 * 0 or LH_EIO with err filled. */
int lh_http_status_new(struct event_base *base, const char *addr, int64_t max_connections,
                       int64_t read_timeout_ms, struct lh_metrics *metrics,
                       struct lh_pipeline *pl, struct lh_http_status **out, char *err,
                       size_t errlen);
/* The pipeline /status describes (a reload replaces it). NULL while none
 * runs: /status answers 503. h NULL is fine. */
void lh_http_status_set_pipeline(struct lh_http_status *h, struct lh_pipeline *pl);
void lh_http_status_free(struct lh_http_status *h);

#endif
