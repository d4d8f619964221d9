/* The one list of agent plugins. Adding one is a new file plus a line in
 * each pair of tables here (the config loader needs the schemas as
 * constants, the pipeline the hooks). */
#include <stddef.h>

#include "agent/core/pipeline.h"

const struct lh_cfg_plugin_type lh_input_types[] = {
    {"file", &lh_in_file_schema},
    {"syslog", &lh_in_syslog_schema},
    {NULL, NULL},
};

const struct lh_cfg_plugin_type lh_output_types[] = {
    {"forward", &lh_out_forward_schema},
    {"stdout", &lh_out_stdout_schema},
    {"null", &lh_out_null_schema},
    {NULL, NULL},
};

static const struct lh_input_ops *const inputs[] = {&lh_in_file_ops, &lh_in_syslog_ops, NULL};

static const struct lh_output_ops *const outputs[] = {
    &lh_out_forward_ops,
    &lh_out_stdout_ops,
    &lh_out_null_ops,
    NULL,
};

const struct lh_plugins lh_agent_plugins = {inputs, outputs};

const struct lh_input_ops *lh_input_ops_find(const struct lh_plugins *p,
                                             const struct lh_cfg_item *item)
{
    for (size_t i = 0; p->inputs[i]; i++)
        if (p->inputs[i]->schema == item->schema)
            return p->inputs[i];
    return NULL;
}

const struct lh_output_ops *lh_output_ops_find(const struct lh_plugins *p,
                                               const struct lh_cfg_item *item)
{
    for (size_t i = 0; p->outputs[i]; i++)
        if (p->outputs[i]->schema == item->schema)
            return p->outputs[i];
    return NULL;
}
