/* Line parsers of the file input (json, logfmt, regex) and record times
 * taken from a field (time_key + time_format). Each parser adds its fields
 * to a record builder beside the raw `message`; on failure it returns a
 * negative LH_E* and the caller keeps the line raw. No I/O, fuzzable
 * (tests/fuzz/fuzz_parsers.c). */
#ifndef LH_AGENT_PARSE_H
#define LH_AGENT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/core/recbuilder.h"

/* Nesting a JSON line may have, its object included; a deeper line stays
 * raw in message and counts as a parse error. The collector refuses an
 * event nesting more than LH_MP_MAX_DEPTH (32) levels counted from its
 * [tag, time, record] array (the most its store reads back), one level
 * above the record: 24 leaves the record 7 levels to spare. */
#define LH_PARSE_JSON_MAX_DEPTH 24

/* A JSON object line: top-level members become fields, nested objects
 * and arrays msgpack maps and arrays (packed into rb's scratch). Keys and
 * strings point into line, or into scratch when they had escapes, so the
 * record lives until the line or rb changes. 0, or LH_EINVAL (not JSON,
 * not an object, too deep), LH_ETOOBIG, LH_ENOMEM. */
int lh_parse_json(struct lh_recbuilder *rb, const char *line, size_t n);

/* key=value pairs separated by blanks; values may be double-quoted with
 * \" \\ \n \t escapes; a bare key is true. Unescaped values point into
 * line. 0, or LH_EINVAL (no pair, an unterminated quote, an empty key). */
int lh_parse_logfmt(struct lh_recbuilder *rb, const char *line, size_t n);

/* A compiled PCRE2 pattern (JIT when available) with its match data,
 * reused for every line. */
struct lh_regex;
/* 0, or LH_EINVAL with err saying where the pattern is wrong. */
int lh_regex_new(const char *pattern, struct lh_regex **out, char *err, size_t errlen);
void lh_regex_free(struct lh_regex *re);
/* True when the pattern matches somewhere in s[0..n). */
bool lh_regex_match(struct lh_regex *re, const char *s, size_t n);
/* Named groups that matched become fields pointing into line.
 * 0, LH_EINVAL (no match), LH_ETOOBIG, LH_ENOMEM. */
int lh_parse_regex(struct lh_regex *re, struct lh_recbuilder *rb, const char *line, size_t n);
/* Named groups in the pattern (a regex parser needs at least one). */
size_t lh_regex_names(const struct lh_regex *re);

/* time_format: rfc3339 (default), epoch (seconds, may be fractional),
 * epoch_ms, epoch_us, epoch_ns, or a strptime(3) pattern, where %L stands
 * for a fraction of a second and no %z means UTC. */
enum lh_time_kind {
    LH_TIME_RFC3339,
    LH_TIME_EPOCH_S,
    LH_TIME_EPOCH_MS,
    LH_TIME_EPOCH_US,
    LH_TIME_EPOCH_NS,
    LH_TIME_STRPTIME,
};

/* Pattern pieces before and after %L; both empty unless STRPTIME. */
#define LH_TIME_PATTERN_MAX 128
struct lh_time_fmt {
    enum lh_time_kind kind;
    bool fraction;
    char before[LH_TIME_PATTERN_MAX];
    char after[LH_TIME_PATTERN_MAX];
};

/* fmt NULL means rfc3339. 0, or LH_EINVAL with err filled. */
int lh_time_fmt_init(struct lh_time_fmt *tf, const char *fmt, char *err, size_t errlen);
/* The time_format check of the config loader (lh_cfg_check_fn): a name, or
 * a pattern whose every conversion strptime knows. */
int lh_time_fmt_check(const char *fmt, char *why, size_t whylen);
/* The time of field idx of rb: strings by the format, numbers as epoch in
 * the format's unit (seconds for rfc3339 and patterns). 0 or LH_EINVAL. */
int lh_time_from_field(const struct lh_time_fmt *tf, const struct lh_recbuilder *rb, size_t idx,
                       int64_t *ns);
/* The same for a string. */
int lh_time_parse(const struct lh_time_fmt *tf, const char *s, size_t n, int64_t *ns);

#endif
