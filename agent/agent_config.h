/* The agent's configuration file (SPEC section 5): the `agent` section and
 * the plugin lists, whose item schemas come from the registry. */
#ifndef LH_AGENT_CONFIG_H
#define LH_AGENT_CONFIG_H

#include <stdint.h>

#include "common/config/config.h"

#define LH_AGENT_DEFAULT_CONFIG "/etc/loghaul/agent.yaml"

struct lh_agent_section {
    char *name;                  /* default: the host name */
    char *data_dir;
    char *http;                  /* "" = no HTTP status server */
    int64_t http_max_connections;
    int64_t http_read_timeout_ms;
    int log_level;               /* enum lh_log_level */
    int64_t shutdown_timeout_ms;
};

struct lh_agent_config {
    struct lh_agent_section agent;
    struct lh_cfg_list inputs;
    struct lh_cfg_list filters;  /* agent/filter.h items */
    struct lh_cfg_list outputs;
};

extern const struct lh_cfg_schema lh_agent_config_schema;

/* Loads path into cfg (zeroed here) and fills derived defaults. 0, or
 * LH_ECONFIG/LH_ENOENT/LH_EIO with d->error set. Free cfg either way. */
int lh_agent_config_load(const char *path, struct lh_agent_config *cfg, struct lh_cfg_diag *d);
void lh_agent_config_free(struct lh_agent_config *cfg);

#endif
