/* modify: remove fields, then rename (a field already named like the
 * target is replaced), then set constant fields. */
#include <stdlib.h>
#include <string.h>

#include "agent/transform/filters/filter.h"
#include "common/base/err.h"

struct modify_cfg {
    struct lh_filter_cfg base;
    struct lh_strmap set;
    struct lh_strlist remove;
    struct lh_strmap rename;
};

static int validate(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct modify_cfg *c = obj;
    if (c->set.n == 0 && c->remove.n == 0 && c->rename.n == 0)
        return lh_cfg_error(d, line, col, "modify filter: needs set, remove or rename");
    for (size_t i = 0; i < c->rename.n; i++)
        if (!c->rename.vals[i][0])
            return lh_cfg_error(d, line, col, "modify filter: rename %s to an empty name",
                                c->rename.keys[i]);
    return 0;
}

static const struct lh_cfg_field fields[] = {
    {.key = "match", .type = LH_CFG_STR, .offset = offsetof(struct lh_filter_cfg, match),
     .defval = "*", .help = "fnmatch(3) glob on the tag"},
    {.key = "set", .type = LH_CFG_STRMAP, .offset = offsetof(struct modify_cfg, set),
     .help = "fields to set: {name: value}"},
    {.key = "remove", .type = LH_CFG_STRLIST, .offset = offsetof(struct modify_cfg, remove),
     .help = "names of fields to remove"},
    {.key = "rename", .type = LH_CFG_STRMAP, .offset = offsetof(struct modify_cfg, rename),
     .help = "fields to rename: {old: new}"},
    {0},
};

const struct lh_cfg_schema lh_filter_modify_schema = {
    .name = "modify filter",
    .size = sizeof(struct modify_cfg),
    .fields = fields,
    .validate = validate,
};

static int modify_apply(void *state, struct lh_recbuilder *rb)
{
    const struct modify_cfg *c = state;
    for (size_t i = 0; i < c->remove.n; i++) {
        int idx = lh_rb_find(rb, c->remove.v[i], strlen(c->remove.v[i]));
        if (idx >= 0)
            lh_rb_remove(rb, (size_t)idx);
    }
    for (size_t i = 0; i < c->rename.n; i++) {
        int idx = lh_rb_find(rb, c->rename.keys[i], strlen(c->rename.keys[i]));
        if (idx >= 0 &&
            lh_rb_rename(rb, (size_t)idx, c->rename.vals[i], strlen(c->rename.vals[i])) != 0)
            return LH_ENOMEM;
    }
    for (size_t i = 0; i < c->set.n; i++) {
        int rc = lh_rb_set_str(rb, c->set.keys[i], strlen(c->set.keys[i]), c->set.vals[i],
                               strlen(c->set.vals[i]));
        if (rc != 0)
            return rc;
    }
    return LH_FILTER_KEEP;
}

/* The config is all the state a modify filter needs. */
static int modify_create(const struct lh_cfg_item *item, void **state, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    *state = (void *)item;
    return LH_OK;
}

const struct lh_filter_ops lh_filter_modify_ops = {
    .schema = &lh_filter_modify_schema,
    .create = modify_create,
    .apply = modify_apply,
};
