/* grep: keep records whose field matches `include`, drop those whose field
 * matches `exclude` (PCRE2). A record without the field fails an include
 * and passes an exclude. */
#include <stdlib.h>
#include <string.h>

#include "agent/transform/filters/filter.h"
#include "agent/transform/parsers/parse.h"
#include "common/base/err.h"

struct grep_rule {
    char *field;
    char *regex;
    bool present;
};

struct grep_cfg {
    struct lh_filter_cfg base;
    struct grep_rule include, exclude;
};

static int check_rule(const struct grep_rule *r, const char *which, struct lh_cfg_diag *d,
                      int line, int col)
{
    if (!r->field || !r->field[0] || !r->regex)
        return lh_cfg_error(d, line, col, "grep filter: %s needs field and regex", which);
    struct lh_regex *re = NULL;
    char err[300];
    int rc = lh_regex_new(r->regex, &re, err, sizeof err);
    lh_regex_free(re);
    return rc ? lh_cfg_error(d, line, col, "grep filter: %s %s", which, err) : 0;
}

static int validate_rule(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    return check_rule(obj, "rule", d, line, col);
}

static const struct lh_cfg_field rule_fields[] = {
    {.key = "field", .type = LH_CFG_STR, .offset = offsetof(struct grep_rule, field),
     .help = "name of the field to test, e.g. message"},
    {.key = "regex", .type = LH_CFG_STR, .offset = offsetof(struct grep_rule, regex),
     .help = "PCRE2 pattern searched in the field's text"},
    {0},
};

static const struct lh_cfg_schema rule_schema = {
    .name = "grep rule",
    .size = sizeof(struct grep_rule),
    .fields = rule_fields,
    .present_offset1 = offsetof(struct grep_rule, present) + 1,
    .validate = validate_rule,
};

static int validate(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct grep_cfg *c = obj;
    if (!c->include.present && !c->exclude.present)
        return lh_cfg_error(d, line, col, "grep filter: needs include or exclude");
    return 0;
}

static const struct lh_cfg_field fields[] = {
    {.key = "match", .type = LH_CFG_STR, .offset = offsetof(struct lh_filter_cfg, match),
     .defval = "*", .help = "fnmatch(3) glob on the tag"},
    {.key = "include", .type = LH_CFG_SECTION, .offset = offsetof(struct grep_cfg, include),
     .sub = &rule_schema, .help = "{field, regex}: keep only records that match"},
    {.key = "exclude", .type = LH_CFG_SECTION, .offset = offsetof(struct grep_cfg, exclude),
     .sub = &rule_schema, .help = "{field, regex}: drop records that match"},
    {0},
};

const struct lh_cfg_schema lh_filter_grep_schema = {
    .name = "grep filter",
    .size = sizeof(struct grep_cfg),
    .fields = fields,
    .validate = validate,
};

struct grep {
    const struct grep_cfg *cfg;
    struct lh_regex *include, *exclude;
};

static bool field_matches(struct lh_recbuilder *rb, const char *field, struct lh_regex *re)
{
    int idx = lh_rb_find(rb, field, strlen(field));
    char buf[64];
    const char *p;
    size_t n;
    return idx >= 0 && lh_rb_text(rb, (size_t)idx, buf, sizeof buf, &p, &n) &&
           lh_regex_match(re, p, n);
}

static int grep_apply(void *state, struct lh_recbuilder *rb)
{
    struct grep *g = state;
    if (g->include && !field_matches(rb, g->cfg->include.field, g->include))
        return LH_FILTER_DROP;
    if (g->exclude && field_matches(rb, g->cfg->exclude.field, g->exclude))
        return LH_FILTER_DROP;
    return LH_FILTER_KEEP;
}

static void grep_destroy(void *state)
{
    struct grep *g = state;
    if (!g)
        return;
    lh_regex_free(g->include);
    lh_regex_free(g->exclude);
    free(g);
}

static int grep_create(const struct lh_cfg_item *item, void **state, char *err, size_t errlen)
{
    struct grep *g = calloc(1, sizeof *g);
    *state = g;
    if (!g)
        return LH_ENOMEM;
    g->cfg = (const struct grep_cfg *)item;
    int rc = LH_OK;
    if (g->cfg->include.regex)
        rc = lh_regex_new(g->cfg->include.regex, &g->include, err, errlen);
    if (rc == 0 && g->cfg->exclude.regex)
        rc = lh_regex_new(g->cfg->exclude.regex, &g->exclude, err, errlen);
    return rc;
}

const struct lh_filter_ops lh_filter_grep_ops = {
    .schema = &lh_filter_grep_schema,
    .create = grep_create,
    .apply = grep_apply,
    .destroy = grep_destroy,
};
