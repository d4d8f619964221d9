/* Search executor over the store: the records matching a query in a time
 * range, the `limit` newest (or oldest) first, rendered as SPEC section 2
 * JSON lines. It asks the store for them (lh_store_scan with the whole
 * request) and keeps the `limit` first of what comes back, telling the
 * store its cut as it goes. Runs on the collector's single event-loop
 * thread for now (it scans synchronously). */
#ifndef LH_SEARCH_H
#define LH_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/store/store.h"
#include "common/query/query.h"

#define LH_SEARCH_MAX_LIMIT 100000

/* Scans a snapshot of store taken now (every executor's way in). 0,
 * LH_ENOMEM or what lh_store_scan returns. */
int lh_search_scan(struct lh_store *store, const struct lh_store_scan_req *req,
                   lh_store_scan_cb cb, void *ud);

/* Receives each result line (JSON without newline) in result order;
 * non-zero stops the output and is returned. */
typedef int (*lh_search_emit_cb)(void *ud, const char *line, size_t len);

/* The answer to req (limit 1..LH_SEARCH_MAX_LIMIT; its cut is the
 * executor's own, any given is ignored). Equal times keep storage order
 * (lh_store_ranks_before), so results are the same on every run. 0,
 * LH_EINVAL, LH_ENOMEM, LH_EIO, LH_ETIMEDOUT (past the deadline,
 * search.query_timeout: nothing emitted), LH_ETOOBIG (a regex match hit its
 * bounds: lh_query_status says which), or what emit returned. */
int lh_search_run(struct lh_store *store, const struct lh_store_scan_req *req,
                  lh_search_emit_cb emit, void *ud);

#endif
