/* Aggregations over the store for the HTTP API (SPEC sections 7 and 8):
 * a histogram of matching records per time bucket, and `| stats count by
 * f1, f2` groups. Both scan the store synchronously on the event loop,
 * as searches do; both answer in JSON (jansson) so answers from peers
 * merge with local ones the same way. */
#ifndef LH_AGGREGATE_H
#define LH_AGGREGATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/store/store.h"
#include "common/query/query.h"

#define LH_HIST_MAX_BUCKETS 10000
#define LH_STATS_MAX_GROUPS 100000
#define LH_STATS_MAX_FIELDS 16

/* Buckets start at multiples of step_s (unix seconds): the first holds
 * from, the last holds to, empty ones included. */
struct lh_hist_req {
    const struct lh_query *query;  /* NULL matches everything */
    int64_t from_ns, to_ns;        /* inclusive */
    int64_t step_s;                /* >= 1 */
    int64_t deadline_ms;           /* lh_mono_ms() deadline; 0: none */
};

/* Number of buckets req spans (may exceed LH_HIST_MAX_BUCKETS). */
int64_t lh_hist_buckets(const struct lh_hist_req *req);

/* [{"t": unix, "count": n}, ...] oldest first in *out (caller decrefs).
 * 0, LH_ETOOBIG (too many buckets, or a regex match hit its bounds:
 * lh_query_status says which), LH_ETIMEDOUT (past the deadline), LH_ENOMEM
 * or a scan error. */
int lh_hist_run(struct lh_store *store, const struct lh_hist_req *req, json_t **out);

/* Adds the counts of a peer's answer (same buckets) into mine; elements
 * whose t is not one of mine, and control elements, are ignored. */
void lh_hist_merge(json_t *mine, const json_t *theirs);

struct lh_stats_req {
    const struct lh_query *query;  /* NULL matches everything */
    int64_t from_ns, to_ns;        /* inclusive */
    const char *const *by;         /* field names (dotted paths allowed) */
    size_t n_by;                   /* 0..LH_STATS_MAX_FIELDS */
    int64_t deadline_ms;           /* lh_mono_ms() deadline; 0: none */
};

/* Rows [{"f1": v, ..., "count": n}, ...] in *out, not yet sorted (see
 * lh_stats_finish). A missing field counts as null; `tag` is the record's
 * tag and `message` falls back to `log`, as in queries. Values are any
 * bytes (a NUL included); a field name or value that is not UTF-8 comes
 * out repaired as in records. 0, LH_EINVAL (too many fields), LH_ETOOBIG
 * (more than LH_STATS_MAX_GROUPS groups, or a regex match hit its bounds:
 * lh_query_status says which), LH_ETIMEDOUT, LH_ENOMEM or a scan error. */
int lh_stats_run(struct lh_store *store, const struct lh_stats_req *req, json_t **out);

/* Adds a peer's rows into mine: rows with equal values for every field of
 * by are one group, their counts summed. Rows without a count (control
 * elements) are ignored. 0 or LH_ENOMEM. */
int lh_stats_merge(json_t *mine, const json_t *theirs, const char *const *by, size_t n_by);

/* Sorts rows by count, largest first (ties by their JSON text, so the
 * order is the same on every run). */
void lh_stats_finish(json_t *rows);

#endif
