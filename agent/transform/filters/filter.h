/* Record filters (the top-level `filters:` list, SPEC section 5): each item
 * has a type, a `match` glob on the tag, and works on a record builder
 * before the record is packed. Inputs pick the filters whose match accepts
 * their tag once, when they are made (struct lh_filter_chain). */
#ifndef LH_AGENT_FILTER_H
#define LH_AGENT_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/core/recbuilder.h"
#include "common/config/config.h"

/* Every filter item's config starts with this. */
struct lh_filter_cfg {
    struct lh_cfg_item item;
    char *match;                 /* fnmatch(3) glob on the tag */
};

enum { LH_FILTER_KEEP = 0, LH_FILTER_DROP = 1 };

struct lh_filter_ops {
    const struct lh_cfg_schema *schema;
    /* State compiled from cfg (borrowed for the state's life). 0, or LH_E*
     * with err filled. */
    int (*create)(const struct lh_cfg_item *cfg, void **state, char *err, size_t errlen);
    /* LH_FILTER_KEEP, LH_FILTER_DROP, or a negative LH_E* (the record is
     * kept as it was when the filter failed). */
    int (*apply)(void *state, struct lh_recbuilder *rb);
    void (*destroy)(void *state);  /* NULL is fine */
};

extern const struct lh_cfg_plugin_type lh_filter_types[];
extern const struct lh_cfg_schema lh_filter_grep_schema;
extern const struct lh_filter_ops lh_filter_grep_ops;
extern const struct lh_cfg_schema lh_filter_modify_schema;
extern const struct lh_filter_ops lh_filter_modify_ops;

/* The hooks of a loaded filter item, or NULL. */
const struct lh_filter_ops *lh_filter_ops_find(const struct lh_cfg_item *item);

/* The filters of `filters:` whose match accepts one input's tag, in config
 * order, compiled once when the input is made. */
struct lh_filter_chain {
    struct lh_filter_inst {
        const struct lh_filter_ops *ops;
        void *state;
    } *v;
    size_t n;
};

/* list may be NULL (no filters). The items are borrowed for the chain's
 * life. 0, or LH_E* with err filled; on error free the chain anyway. */
int lh_filter_chain_init(struct lh_filter_chain *c, const char *tag,
                         const struct lh_cfg_list *list, char *err, size_t errlen);
/* False when a filter dropped the record. */
bool lh_filter_chain_keep(const struct lh_filter_chain *c, struct lh_recbuilder *rb);
void lh_filter_chain_free(struct lh_filter_chain *c);

#endif
