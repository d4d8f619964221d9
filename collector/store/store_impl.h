/* For store implementations (not their callers): the test every scan
 * applies to a candidate event, so each implementation filters, keeps the
 * deadline and honours the cut the same way. */
#ifndef LH_STORE_IMPL_H
#define LH_STORE_IMPL_H

#include <stdint.h>

#include "collector/store/store.h"

/* Per scan; zero it but for req. */
struct lh_store_filter {
    const struct lh_store_scan_req *req;
    uint32_t n;                 /* events tested, for the clock */
};

/* 1 when ev is wanted (in the time range, ranking before a full cut,
 * matching the query), 0 when not, or a negative code that stops the scan:
 * LH_ETIMEDOUT past the deadline, lh_query_status's when a match is
 * undecided. Call it for every readable event, in storage order: it also
 * counts them for the clock. Cheap tests come first, so the query runs
 * only on events that could be in the answer. */
int lh_store_filter_test(struct lh_store_filter *f, const struct lh_store_event *ev);

#endif
