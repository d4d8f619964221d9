/* Search executor over the store: the records matching a query in a time
 * range, the `limit` newest (or oldest) first, rendered as SPEC section 2
 * JSON lines. Runs on the collector's single event-loop thread for now
 * (it scans synchronously). */
#ifndef LH_SEARCH_H
#define LH_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/store/store.h"
#include "common/query/query.h"

#define LH_SEARCH_MAX_LIMIT 100000

/* A query's time budget (search.query_timeout). Scans read the clock every
 * LH_SEARCH_CLOCK_EVERY records only, so it costs nothing per record; one
 * record costs at most a few milliseconds (the regex bounds), so the
 * budget is kept to within a fraction of a second. */
#define LH_SEARCH_CLOCK_EVERY 64

struct lh_search_budget {
    int64_t deadline_ms; /* lh_mono_ms() past which the scan stops; 0: none */
    uint32_t n;          /* records seen */
};

/* Counts one record: 0, or LH_ETIMEDOUT once past the deadline. */
int lh_search_budget_tick(struct lh_search_budget *b);

struct lh_search_req {
    const struct lh_query *query;  /* NULL matches everything */
    int64_t from_ns;               /* inclusive */
    int64_t to_ns;                 /* inclusive */
    size_t limit;                  /* 1..LH_SEARCH_MAX_LIMIT */
    bool asc;                      /* false: newest first */
    int64_t deadline_ms;           /* lh_mono_ms() deadline; 0: none */
};

/* Receives each result line (JSON without newline) in result order;
 * non-zero stops the output and is returned. */
typedef int (*lh_search_emit_cb)(void *ud, const char *line, size_t len);

/* Equal times keep storage order: ascending order lists the earlier stored
 * first, descending the later stored first, so results are the same on
 * every run. 0, LH_EINVAL, LH_ENOMEM, LH_EIO, LH_ETIMEDOUT (past the
 * deadline, nothing emitted), LH_ETOOBIG (a regex match hit its bounds:
 * lh_query_status says which), or what emit returned. */
int lh_search_run(struct lh_store *store, const struct lh_search_req *req, lh_search_emit_cb emit,
                  void *ud);

#endif
