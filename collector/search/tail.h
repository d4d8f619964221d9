/* Live tail (GET /api/v1/tail): clients hold a chunked NDJSON reply open
 * and receive each record stored from then on that matches their query.
 *
 * main subscribes each registry to ingest's commit (a sink calling
 * lh_tail_publish() once a batch is durable), so neither side knows the
 * other. Everything runs on the collector's single event-loop thread.
 *
 * A client that reads slower than records arrive keeps at most
 * LH_TAIL_MAX_BACKLOG bytes queued: records beyond it are dropped for that
 * client, counted in loghaul_collector_tail_dropped_total, and announced
 * by a control line {"dropped": N} once its queue has room again.
 *
 * All clients together keep at most max_memory queued (lh_tail_set_limits):
 * past it the client with the most queued is cut off (its connection
 * closed: a line in a stream it does not read would never arrive), logged
 * and counted in loghaul_collector_tail_cut_total. At most max_clients
 * streams are open at once. */
#ifndef LH_TAIL_H
#define LH_TAIL_H

#include <event2/http.h>
#include <stddef.h>

#include "common/base/metrics.h"
#include "common/query/query.h"

#define LH_TAIL_MAX_BACKLOG (4 * 1024 * 1024)
/* Until lh_tail_set_limits: search.max_tails and search.tail_max_memory's
 * defaults. */
#define LH_TAIL_MAX_CLIENTS 64
#define LH_TAIL_MAX_MEMORY (32 * 1024 * 1024)

struct lh_tail;

/* metrics is borrowed (tail client gauge and drop counter). 0 or
 * LH_ENOMEM. */
int lh_tail_new(struct lh_metrics *metrics, struct lh_tail **out);
/* Ends every open stream (final chunk). */
void lh_tail_free(struct lh_tail *t);
/* Streams open at most, and bytes all of them keep queued at most; applies
 * to what comes next (open streams stay). */
void lh_tail_set_limits(struct lh_tail *t, size_t max_clients, size_t max_memory);

/* Answers req with a stream that stays open. Takes q (NULL: everything)
 * in every case. 0, or LH_ETOOBIG (too many clients: the caller answers
 * req) / LH_ENOMEM. */
int lh_tail_start(struct lh_tail *t, struct evhttp_request *req, struct lh_query *q);

/* Sends a durable batch to t's live tails: events holds n_events
 * concatenated msgpack arrays [tag, EventTime, fields], as given to
 * lh_store_append. Cheap when nobody tails. */
void lh_tail_publish(struct lh_tail *t, const char *events, size_t len, size_t n_events);

#endif
