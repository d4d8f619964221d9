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
 * `tag` and `time` are queryable like fields (always the record's own, not
 * a field of that name); `time:` values are RFC 3339 or unix seconds, and
 * `time:2026-11-24*` is a prefix of the RFC 3339 form. `message` falls back
 * to `log` when a record has no `message`. An empty query, or `*`, matches
 * everything. `f:*` tests that a field exists.
 *
 * Words and phrases match case-insensitively (ASCII folding) on word
 * boundaries in any string or bin value of the record, nested ones included,
 * and in the tag; a word ending in `*` is a prefix. Word characters are
 * [A-Za-z0-9_] and every byte >= 0x80. Field values match case-sensitively;
 * `f:N` on a numeric field compares numerically, `f:>=N` also reads strings
 * holding numbers; a list matches when one of its elements does. Regexes
 * are unanchored UTF-8 searches (invalid UTF-8 in records is tolerated) with
 * \" and \\ the only escapes the quotes remove. Dotted field
 * names (`sd.origin.ip`) are tried as a literal key first, then descend into
 * nested maps. A missing field matches nothing (so `NOT f:x` matches it). */
#ifndef LH_QUERY_H
#define LH_QUERY_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lh_query;

#define LH_QUERY_MAX_LEN 65536 /* bytes of query text */
#define LH_QUERY_MAX_DEPTH 64  /* nesting of '(', NOT and '-' */
/* Words, phrases and field terms in one query: what a record costs to
 * match grows with them, and a live tail matches every new record without
 * a time budget. The common bound of such systems (Elasticsearch's
 * max_clause_count was 1024 for years). */
#define LH_QUERY_MAX_TERMS 1024

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

/* 0 with *out (caller frees with lh_query_free), or LH_EINVAL with err
 * (err may be NULL), or LH_ENOMEM. Error messages are plain English, the
 * position the byte offset of the offending token: what SPEC section 7
 * returns as {"error": msg, "position": position}. */
int lh_query_parse(const char *text, struct lh_query **out, struct lh_query_error *err);
void lh_query_free(struct lh_query *q);
/* Allocates nothing. Not reentrant for one query: regex matching uses
 * scratch space kept in the query, so one query is matched from one thread
 * at a time (the store runs each query on one thread). Distinct queries are
 * independent. */
bool lh_query_match(const struct lh_query *q, const struct lh_query_record *r);

/* Matching within a budget, so the caller can stop a long match: the
 * matcher charges units of work as it goes (a byte of text searched, a
 * term, map key or list element looked at, a regex run) and each time
 * `every` more were charged asks spent(ud) whether to stop, in the middle
 * of one record too: a large query over a large record costs at most
 * about `every` units past the moment spent first says yes. The caller
 * sets every, spent (NULL: never) and ud and zeroes the rest; left 0 asks
 * at the first charge. One budget may be shared by many matches (a scan)
 * and charged by the caller for its own work too. */
struct lh_query_budget {
    uint64_t every;
    bool (*spent)(void *ud);
    void *ud;
    uint64_t left;  /* units before spent is asked again */
    bool stopped;   /* spent said stop; every charge from then on says so */
};

/* The slow path of lh_query_charge: asks spent. */
bool lh_query_budget_poll(struct lh_query_budget *b);

/* Charges units to b: true when b is spent. One compare in the common
 * case, so it can be charged per item. */
static inline bool lh_query_charge(struct lh_query_budget *b, uint64_t units)
{
    if (b->left > units) {
        b->left -= units;
        return false;
    }
    return lh_query_budget_poll(b);
}

/* lh_query_match within b: 1 (matches), 0 (does not), LH_ETIMEDOUT once b
 * is spent, before or during this record (its answer is unknown), or
 * lh_query_status's code. */
int lh_query_match_within(const struct lh_query *q, const struct lh_query_record *r,
                          struct lh_query_budget *b);

/* 0 while every regex match so far was decided. LH_ETOOBIG once a regex
 * match hit PCRE2's bounds (match limit, JIT stack, depth or heap): that
 * record counted as no match and later matches of that regex are skipped,
 * so the caller should fail the query; err (may be NULL) then names the
 * regex and points at its term. Cheap enough to call after every match. */
int lh_query_status(const struct lh_query *q, struct lh_query_error *err);

/* `| stats count by f1, f2`: true when present; fields listed in *by (owned
 * by q; *by may be NULL when n_by is 0, for `| stats count`). */
bool lh_query_stats(const struct lh_query *q, const char *const **by, size_t *n_by);

#endif
