/* What happens to a line between the reader and lh_route_emit: the record
 * is built (message, host, source, truncated), the input's parser adds its
 * fields and may take the time from time_key, then the filters whose
 * `match` accepts the input's tag run in config order.
 *
 * A line the parser cannot parse stays raw and is counted in
 * loghaul_agent_parse_errors_total{input=TAG}; a record a filter drops is
 * counted in loghaul_agent_records_filtered_total{input=TAG}. */
#ifndef LH_AGENT_TRANSFORM_H
#define LH_AGENT_TRANSFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/transform/filters/filter.h"
#include "agent/transform/parsers/parse.h"
#include "agent/core/recbuilder.h"
#include "common/config/config.h"
#include "common/base/metrics.h"

enum { LH_PARSER_NONE, LH_PARSER_JSON, LH_PARSER_LOGFMT, LH_PARSER_REGEX };
extern const char *const lh_parser_names[]; /* for LH_CFG_ENUM */

/* The parser keys of an input's config (strings borrowed). */
struct lh_tx_cfg {
    int parser;
    char *regex;
    char *time_key;
    char *time_format;
    bool keep_raw;
};

/* Checks parser keys that go together (regex for parser: regex, a valid
 * pattern with named groups, a valid time_format). 0 or LH_ECONFIG with
 * err filled. */
int lh_tx_cfg_check(const struct lh_tx_cfg *c, char *err, size_t errlen);

struct lh_transform;

/* metrics may be NULL (tests). filters may be NULL. 0, or LH_E* with err
 * filled. */
int lh_transform_new(const struct lh_tx_cfg *c, const char *tag, const struct lh_cfg_list *filters,
                     struct lh_metrics *metrics, struct lh_transform **out, char *err,
                     size_t errlen);
void lh_transform_free(struct lh_transform *t);

/* One line as the reader found it; all borrowed until the record is
 * packed. */
struct lh_tx_line {
    const char *p;
    size_t n;
    const char *host;
    size_t host_len;
    const char *source;
    size_t source_len;
    bool truncated;
};

/* Builds the record of line into rb (reset first) and sets *ns when the
 * parser found a time. False when a filter dropped it. The record points
 * into the line and into memory the transform holds until its next call. */
bool lh_transform_line(struct lh_transform *t, struct lh_recbuilder *rb,
                       const struct lh_tx_line *line, int64_t *ns);

/* Counted records, for tests and the status page. */
uint64_t lh_transform_parse_errors(const struct lh_transform *t);
uint64_t lh_transform_filtered(const struct lh_transform *t);

#endif
