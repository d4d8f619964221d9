/* libFuzzer harness: arbitrary bytes through the YAML config loader with a
 * schema that uses every field type, then through the agent's and the
 * collector's real schemas (their value checks and plugin lists), each
 * followed by a full free (ASan checks both). Seeds: corpus/config. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agent/agent_config.h"
#include "collector/collector_config.h"
#include "common/config/config.h"

struct fz_tls {
    bool present;
    bool enabled;
    char *ca;
};

struct fz_batch {
    int64_t max_records;
    int64_t max_bytes;
    int64_t max_wait;
};

struct fz_forward {
    struct lh_cfg_item hdr;
    struct lh_strlist collectors;
    int balance;
    struct fz_batch batch;
    struct fz_tls tls;
};

struct fz_stdout {
    struct lh_cfg_item hdr;
    char *match;
    struct lh_strmap set;
};

struct fz_root {
    char *name;
    bool debug;
    int64_t port;
    struct lh_strlist paths;
    struct lh_strmap labels;
    struct fz_batch batch;
    struct fz_tls tls;
    struct lh_cfg_list outputs;
};

static int fz_tls_validate(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct fz_tls *t = obj;
    if (t->enabled && !t->ca)
        return lh_cfg_error(d, line, col, "tls: ca is required when enabled");
    return 0;
}

static const struct lh_cfg_field fz_tls_fields[] = {
    {.key = "enabled", .type = LH_CFG_BOOL, .offset = offsetof(struct fz_tls, enabled),
     .defval = "true"},
    {.key = "ca", .type = LH_CFG_STR, .offset = offsetof(struct fz_tls, ca),
     .flags = LH_CFG_F_PATH},
    {0}};
static const struct lh_cfg_schema fz_tls_schema = {
    .name = "tls", .size = sizeof(struct fz_tls), .fields = fz_tls_fields,
    .present_offset1 = offsetof(struct fz_tls, present) + 1, .validate = fz_tls_validate};

static const struct lh_cfg_field fz_batch_fields[] = {
    {.key = "max_records", .type = LH_CFG_INT, .offset = offsetof(struct fz_batch, max_records),
     .defval = "8192", .min = 1, .max = 1000000},
    {.key = "max_bytes", .type = LH_CFG_SIZE, .offset = offsetof(struct fz_batch, max_bytes),
     .defval = "2MiB", .min = 1024, .max = 1LL << 30},
    {.key = "max_wait", .type = LH_CFG_DURATION, .offset = offsetof(struct fz_batch, max_wait),
     .defval = "1s"},
    {0}};
static const struct lh_cfg_schema fz_batch_schema = {
    .name = "batch", .size = sizeof(struct fz_batch), .fields = fz_batch_fields};

static const char *const fz_balance[] = {"round_robin", "failover", NULL};

static const struct lh_cfg_field fz_forward_fields[] = {
    {.key = "collectors", .type = LH_CFG_STRLIST,
     .offset = offsetof(struct fz_forward, collectors), .flags = LH_CFG_F_REQUIRED},
    {.key = "balance", .type = LH_CFG_ENUM, .offset = offsetof(struct fz_forward, balance),
     .enum_values = fz_balance, .defval = "round_robin"},
    {.key = "batch", .type = LH_CFG_SECTION, .offset = offsetof(struct fz_forward, batch),
     .sub = &fz_batch_schema},
    {.key = "tls", .type = LH_CFG_SECTION, .offset = offsetof(struct fz_forward, tls),
     .sub = &fz_tls_schema},
    {0}};
static const struct lh_cfg_schema fz_forward_schema = {
    .name = "forward output", .size = sizeof(struct fz_forward), .fields = fz_forward_fields};

static const struct lh_cfg_field fz_stdout_fields[] = {
    {.key = "match", .type = LH_CFG_STR, .offset = offsetof(struct fz_stdout, match),
     .defval = "*"},
    {.key = "set", .type = LH_CFG_STRMAP, .offset = offsetof(struct fz_stdout, set)},
    {0}};
static const struct lh_cfg_schema fz_stdout_schema = {
    .name = "stdout output", .size = sizeof(struct fz_stdout), .fields = fz_stdout_fields};

static const struct lh_cfg_plugin_type fz_outputs[] = {
    {"forward", &fz_forward_schema}, {"stdout", &fz_stdout_schema}, {NULL, NULL}};

static const struct lh_cfg_field fz_root_fields[] = {
    {.key = "name", .type = LH_CFG_STR, .offset = offsetof(struct fz_root, name),
     .defval = "host"},
    {.key = "debug", .type = LH_CFG_BOOL, .offset = offsetof(struct fz_root, debug)},
    {.key = "port", .type = LH_CFG_INT, .offset = offsetof(struct fz_root, port),
     .defval = "9800", .min = 1, .max = 65535},
    {.key = "paths", .type = LH_CFG_STRLIST, .offset = offsetof(struct fz_root, paths),
     .flags = LH_CFG_F_PATH},
    {.key = "labels", .type = LH_CFG_STRMAP, .offset = offsetof(struct fz_root, labels)},
    {.key = "batch", .type = LH_CFG_SECTION, .offset = offsetof(struct fz_root, batch),
     .sub = &fz_batch_schema},
    {.key = "tls", .type = LH_CFG_SECTION, .offset = offsetof(struct fz_root, tls),
     .sub = &fz_tls_schema},
    {.key = "outputs", .type = LH_CFG_PLUGINS, .offset = offsetof(struct fz_root, outputs),
     .plugins = fz_outputs},
    {0}};
static const struct lh_cfg_schema fz_root_schema = {
    .name = "fuzz config", .size = sizeof(struct fz_root), .fields = fz_root_fields};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void load(const struct lh_cfg_schema *schema, void *obj, const uint8_t *data, size_t size)
{
    struct lh_cfg_diag d;
    memset(obj, 0, schema->size);
    memset(&d, 0, sizeof d);
    lh_cfg_load_string("fuzz.yaml", (const char *)data, size, schema, obj, &d);
    lh_cfg_free(schema, obj);
    lh_cfg_diag_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_root root;
    struct lh_agent_config agent;
    struct lh_collector_config collector;
    load(&fz_root_schema, &root, data, size);
    load(&lh_agent_config_schema, &agent, data, size);
    load(&lh_collector_config_schema, &collector, data, size);
    return 0;
}
