/* For store implementations (not their callers): the test every scan
 * applies to a candidate event, so each implementation filters, keeps the
 * deadline and honours the cut the same way. */
#ifndef LH_STORE_IMPL_H
#define LH_STORE_IMPL_H

#include <stdint.h>

#include "collector/store/store.h"

/* Per scan, set up in place by lh_store_filter_init (the budget points
 * back at it: not to be copied). */
struct lh_store_filter {
    const struct lh_store_scan_req *req;
    struct lh_query_budget budget; /* the deadline, read by cost */
};

void lh_store_filter_init(struct lh_store_filter *f, const struct lh_store_scan_req *req);

/* 1 when ev is wanted (in the time range, ranking before a full cut,
 * matching the query), 0 when not, or a negative code that stops the scan:
 * LH_ETIMEDOUT past the deadline, lh_query_status's when a match is
 * undecided. Call it for every readable event, in storage order: it
 * charges each one's size to the deadline's budget, and the query charges
 * its work there too (see LH_STORE_CLOCK_COST). Cheap tests come first,
 * so the query runs only on events that could be in the answer. */
int lh_store_filter_test(struct lh_store_filter *f, const struct lh_store_event *ev);

#endif
