#include "agent/agent_config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "agent/core/pipeline.h"
#include "agent/transform/transform.h"
#include "common/base/util.h"

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

static int check_http_addr(const char *v, char *why, size_t whylen)
{
    return v[0] ? lh_cfg_check_listen_hostport(v, why, whylen) : 0;
}

static const struct lh_cfg_field agent_fields[] = {
    {.key = "name", .type = LH_CFG_STR, .offset = offsetof(struct lh_agent_section, name),
     .help = "agent name, the `host` field of every record (default: host name)"},
    {.key = "data_dir", .type = LH_CFG_STR,
     .offset = offsetof(struct lh_agent_section, data_dir), .defval = "/var/lib/loghaul-agent",
     .help = "checkpoints (and later the disk buffer)"},
    {.key = "http", .type = LH_CFG_STR, .offset = offsetof(struct lh_agent_section, http),
     .defval = "127.0.0.1:9801", .help = "address of /metrics /healthz /status; \"\" = off",
     .check = check_http_addr},
    {.key = "http_max_connections", .type = LH_CFG_INT,
     .offset = offsetof(struct lh_agent_section, http_max_connections), .defval = "64",
     .min = 1, .max = 100000,
     .help = "open connections to agent.http at most; past it new ones wait"},
    {.key = "http_read_timeout", .type = LH_CFG_DURATION,
     .offset = offsetof(struct lh_agent_section, http_read_timeout_ms), .defval = "10s",
     .min = 1000, .max = 3600000,
     .help = "a request to agent.http must arrive whole this soon, else it is closed"},
    {.key = "log_level", .type = LH_CFG_ENUM,
     .offset = offsetof(struct lh_agent_section, log_level), .defval = "info",
     .enum_values = log_levels, .help = "error | warn | info | debug"},
    {.key = "shutdown_timeout", .type = LH_CFG_DURATION,
     .offset = offsetof(struct lh_agent_section, shutdown_timeout_ms), .defval = "10s",
     .min = 0, .max = 3600000, .help = "how long a stop waits for acknowledgements"},
    {0},
};

static const struct lh_cfg_schema agent_schema = {
    .name = "agent section",
    .size = sizeof(struct lh_agent_section),
    .fields = agent_fields,
};

static const struct lh_cfg_field root_fields[] = {
    {.key = "agent", .type = LH_CFG_SECTION, .offset = offsetof(struct lh_agent_config, agent),
     .sub = &agent_schema},
    {.key = "inputs", .type = LH_CFG_PLUGINS, .offset = offsetof(struct lh_agent_config, inputs),
     .plugins = lh_input_types, .help = "where records come from"},
    {.key = "filters", .type = LH_CFG_PLUGINS,
     .offset = offsetof(struct lh_agent_config, filters), .plugins = lh_filter_types,
     .help = "grep / modify applied to records whose tag `match`es, in order"},
    {.key = "outputs", .type = LH_CFG_PLUGINS,
     .offset = offsetof(struct lh_agent_config, outputs), .plugins = lh_output_types,
     .flags = LH_CFG_F_REQUIRED, .help = "where records go"},
    {0},
};

static int validate_root(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    struct lh_agent_config *cfg = obj;
    if (cfg->agent.data_dir && !cfg->agent.data_dir[0])
        return lh_cfg_error(d, line, col, "agent.data_dir must not be empty");
    if (cfg->agent.name && !cfg->agent.name[0])
        return lh_cfg_error(d, line, col, "agent.name must not be empty (omit it for the host name)");
    return 0;
}

const struct lh_cfg_schema lh_agent_config_schema = {
    .name = "agent configuration",
    .size = sizeof(struct lh_agent_config),
    .fields = root_fields,
    .validate = validate_root,
};

int lh_agent_config_load(const char *path, struct lh_agent_config *cfg, struct lh_cfg_diag *d)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = lh_cfg_load_file(path, &lh_agent_config_schema, cfg, d);
    if (rc != 0)
        return rc;
    if (!cfg->agent.name) {
        char host[256];
        lh_hostname(host, sizeof host);
        cfg->agent.name = strdup(host);
        if (!cfg->agent.name)
            return lh_cfg_error(d, 1, 1, "out of memory");
    }
    return 0;
}

void lh_agent_config_free(struct lh_agent_config *cfg)
{
    lh_cfg_free(&lh_agent_config_schema, cfg);
}
