#include "agent/transform/filters/filter.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/base/err.h"

const struct lh_cfg_plugin_type lh_filter_types[] = {
    {"grep", &lh_filter_grep_schema},
    {"modify", &lh_filter_modify_schema},
    {NULL, NULL},
};

static const struct lh_filter_ops *const filter_ops[] = {&lh_filter_grep_ops,
                                                         &lh_filter_modify_ops, NULL};

const struct lh_filter_ops *lh_filter_ops_find(const struct lh_cfg_item *item)
{
    for (size_t i = 0; filter_ops[i]; i++)
        if (filter_ops[i]->schema == item->schema)
            return filter_ops[i];
    return NULL;
}

int lh_filter_chain_init(struct lh_filter_chain *c, const char *tag,
                         const struct lh_cfg_list *list, char *err, size_t errlen)
{
    *c = (struct lh_filter_chain){0};
    if (!list || list->n == 0)
        return LH_OK;
    if (!(c->v = calloc(list->n, sizeof *c->v)))
        return LH_ENOMEM;
    for (const struct lh_cfg_item *it = list->head; it; it = it->next) {
        const struct lh_filter_cfg *fc = (const struct lh_filter_cfg *)it;
        const struct lh_filter_ops *ops = lh_filter_ops_find(it);
        if (!ops) {
            snprintf(err, errlen, "filter '%s': unknown type", it->type);
            return LH_ECONFIG;
        }
        if (fnmatch(fc->match, tag, 0) != 0)
            continue;
        struct lh_filter_inst *f = &c->v[c->n++];
        f->ops = ops;
        int rc = ops->create(it, &f->state, err, errlen);
        if (rc != 0)
            return rc;
    }
    return LH_OK;
}

bool lh_filter_chain_keep(const struct lh_filter_chain *c, struct lh_recbuilder *rb)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].ops->apply(c->v[i].state, rb) == LH_FILTER_DROP)
            return false;
    return true;
}

void lh_filter_chain_free(struct lh_filter_chain *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].ops->destroy)
            c->v[i].ops->destroy(c->v[i].state);
    free(c->v);
    *c = (struct lh_filter_chain){0};
}
