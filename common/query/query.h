/* The query language (SPEC section 8): parse once, match many records.
 *
 *   timeout                 word in any string field (case-insensitive)
 *   "connection refused"    phrase
 *   level:error             field equals;  host:web-*  prefix
 *   status:>=500            numeric compare (> >= < <= =)
 *   path:~"^/api/v[0-9]+/"  regex (PCRE2)
 *   a b  a AND b  a OR b  NOT a  -a  ( … )
 *   … | stats count by host, level
 *
 * `tag` and `time` are queryable like fields. `message` falls back to `log`
 * when a record has no `message`. An empty query matches everything. */
#ifndef LH_QUERY_H
#define LH_QUERY_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lh_query;

struct lh_query_error {
    char msg[256];
    int position; /* 0-based byte offset in the query text */
};

/* What a query is matched against; fields is the record's msgpack map. */
struct lh_query_record {
    const char *tag;
    size_t tag_len;
    int64_t time_ns;
    const msgpack_object *fields;
};

/* 0 with *out (caller frees with lh_query_free), or LH_EINVAL with err. */
int lh_query_parse(const char *text, struct lh_query **out, struct lh_query_error *err);
void lh_query_free(struct lh_query *q);
bool lh_query_match(const struct lh_query *q, const struct lh_query_record *r);

/* `| stats count by f1, f2`: true when present; fields listed in *by. */
bool lh_query_stats(const struct lh_query *q, const char *const **by, size_t *n_by);

#endif
