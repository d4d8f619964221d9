#include "agent/transform/transform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/base/log.h"

const char *const lh_parser_names[] = {"none", "json", "logfmt", "regex", NULL};

struct lh_transform {
    const struct lh_tx_cfg *cfg;
    struct lh_regex *re;
    struct lh_time_fmt tf;
    struct lh_filter_chain filters;
    uint64_t parse_errors, filtered;
    struct lh_metric *m_parse_errors, *m_filtered;
};

int lh_tx_cfg_check(const struct lh_tx_cfg *c, char *err, size_t errlen)
{
    struct lh_time_fmt tf;
    if (lh_time_fmt_init(&tf, c->time_format, err, errlen) != 0)
        return LH_ECONFIG;
    if (c->parser != LH_PARSER_REGEX)
        return LH_OK; /* a stray regex is ignored; the input warns about it */
    if (!c->regex) {
        snprintf(err, errlen, "parser: regex needs a regex with named groups");
        return LH_ECONFIG;
    }
    struct lh_regex *re = NULL;
    int rc = lh_regex_new(c->regex, &re, err, errlen);
    if (rc == 0 && lh_regex_names(re) == 0) {
        snprintf(err, errlen, "regex has no named group (?<name>...): it would add no field");
        rc = LH_ECONFIG;
    }
    lh_regex_free(re);
    return rc ? LH_ECONFIG : LH_OK;
}

int lh_transform_new(const struct lh_tx_cfg *c, const char *tag, const struct lh_cfg_list *filters,
                     struct lh_metrics *metrics, struct lh_transform **out, char *err,
                     size_t errlen)
{
    struct lh_transform *t = calloc(1, sizeof *t);
    *out = t;
    if (!t)
        return LH_ENOMEM;
    t->cfg = c;
    int rc = lh_time_fmt_init(&t->tf, c->time_format, err, errlen);
    if (rc == 0 && c->parser == LH_PARSER_REGEX)
        rc = lh_regex_new(c->regex ? c->regex : "", &t->re, err, errlen);
    if (rc == 0)
        rc = lh_filter_chain_init(&t->filters, tag, filters, err, errlen);
    if (rc != 0 || !metrics)
        return rc;
    char labels[300];
    snprintf(labels, sizeof labels, "input=\"%s\"", tag);
    t->m_parse_errors =
        lh_metrics_get(metrics, LH_METRIC_COUNTER, "loghaul_agent_parse_errors_total", labels,
                       "Lines the input's parser could not parse (kept raw)");
    t->m_filtered = lh_metrics_get(metrics, LH_METRIC_COUNTER,
                                   "loghaul_agent_records_filtered_total", labels,
                                   "Records a grep filter dropped on purpose");
    return LH_OK;
}

void lh_transform_free(struct lh_transform *t)
{
    if (!t)
        return;
    lh_filter_chain_free(&t->filters);
    lh_regex_free(t->re);
    free(t);
}

uint64_t lh_transform_parse_errors(const struct lh_transform *t)
{
    return t->parse_errors;
}

uint64_t lh_transform_filtered(const struct lh_transform *t)
{
    return t->filtered;
}

static int base_fields(struct lh_recbuilder *rb, const struct lh_tx_line *l)
{
    lh_rb_reset(rb);
    int rc = lh_rb_add_str(rb, "message", 7, l->p, l->n);
    rc = rc ? rc : lh_rb_add_str(rb, "host", 4, l->host, l->host_len);
    rc = rc ? rc : lh_rb_add_str(rb, "source", 6, l->source, l->source_len);
    if (rc == 0 && l->truncated) {
        struct lh_rb_val v = {.kind = LH_RBV_BOOL, .num.b = true};
        rc = lh_rb_set(rb, "truncated", 9, &v);
    }
    return rc;
}

static int run_parser(struct lh_transform *t, struct lh_recbuilder *rb, const struct lh_tx_line *l)
{
    switch (t->cfg->parser) {
    case LH_PARSER_JSON:
        return lh_parse_json(rb, l->p, l->n);
    case LH_PARSER_LOGFMT:
        return lh_parse_logfmt(rb, l->p, l->n);
    case LH_PARSER_REGEX:
        return lh_parse_regex(t->re, rb, l->p, l->n);
    default:
        return LH_OK;
    }
}

static void parse_failed(struct lh_transform *t)
{
    t->parse_errors++;
    lh_metric_add(t->m_parse_errors, 1);
}

/* The parser's fields, the time from time_key, keep_raw. A line the parser
 * rejects is rebuilt raw. */
static void parse(struct lh_transform *t, struct lh_recbuilder *rb, const struct lh_tx_line *l,
                  int64_t *ns)
{
    if (run_parser(t, rb, l) != 0) {
        parse_failed(t);
        base_fields(rb, l);
        return;
    }
    if (t->cfg->time_key) {
        int idx = lh_rb_find(rb, t->cfg->time_key, strlen(t->cfg->time_key));
        int64_t when;
        if (idx >= 0 && lh_time_from_field(&t->tf, rb, (size_t)idx, &when) == 0)
            *ns = when;
        else
            parse_failed(t);
    }
    if (!t->cfg->keep_raw) {
        /* Only the raw line goes: a parsed field called message stays. */
        int idx = lh_rb_find(rb, "message", 7);
        if (idx >= 0 && rb->f[idx].v.kind == LH_RBV_STR && rb->f[idx].v.p == l->p)
            lh_rb_remove(rb, (size_t)idx);
    }
}

bool lh_transform_line(struct lh_transform *t, struct lh_recbuilder *rb,
                       const struct lh_tx_line *l, int64_t *ns)
{
    if (base_fields(rb, l) != 0) {
        LH_ERROR("transform", "out of memory building a record");
        return true;
    }
    if (t->cfg->parser != LH_PARSER_NONE)
        parse(t, rb, l, ns);
    if (lh_filter_chain_keep(&t->filters, rb))
        return true;
    t->filtered++;
    lh_metric_add(t->m_filtered, 1);
    return false;
}
