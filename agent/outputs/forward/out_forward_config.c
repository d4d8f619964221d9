/* The `forward` output's configuration: the schema (keys, defaults, bounds)
 * and the checks across keys. The output itself is out_forward.c. */
#include <limits.h>
#include <stddef.h>

#include "agent/outputs/forward/out_forward_int.h"
#include "common/base/util.h"

static const char *const balance_values[] = {"round_robin", "failover", NULL};
static const char *const compress_values[] = {"none", "gzip", NULL};
static const char *const on_full_values[] = {"block", "drop_oldest", NULL};

static const struct lh_cfg_field batch_fields[] = {
    {.key = "max_records", .type = LH_CFG_INT,
     .offset = offsetof(struct fwd_batch_cfg, max_records), .defval = "8192", .min = 1,
     .max = 1000000, .help = "records per batch"},
    {.key = "max_bytes", .type = LH_CFG_SIZE, .offset = offsetof(struct fwd_batch_cfg, max_bytes),
     .defval = "2MiB", .min = 1024, .max = 64 << 20, .help = "record bytes per batch"},
    {.key = "max_wait", .type = LH_CFG_DURATION,
     .offset = offsetof(struct fwd_batch_cfg, max_wait_ms), .defval = "1s", .min = 1,
     .max = 3600000, .help = "longest a batch stays open (sealed sooner once the input is idle and no "
             "batch awaits an ack)"},
    {0},
};

static const struct lh_cfg_schema batch_schema = {
    .name = "forward batch",
    .size = sizeof(struct fwd_batch_cfg),
    .fields = batch_fields,
};

static const struct lh_cfg_field buffer_fields[] = {
    {.key = "max_size", .type = LH_CFG_SIZE, .offset = offsetof(struct fwd_buffer_cfg, max_size),
     .defval = "1GiB", .min = 64 << 10, .max = INT64_MAX / 2,
     .help = "disk buffer bound (segment files under data_dir/buffer)"},
    {.key = "on_full", .type = LH_CFG_ENUM, .offset = offsetof(struct fwd_buffer_cfg, on_full),
     .defval = "block", .enum_values = on_full_values,
     .help = "block (pause inputs) | drop_oldest (drop the oldest unsent batches, counted)"},
    {.key = "sync_delay", .type = LH_CFG_DURATION,
     .offset = offsetof(struct fwd_buffer_cfg, sync_delay_ms), .defval = "1s", .min = 0,
     .max = 3600000,
     .help = "how long a buffered batch waits for a collector's ack before it is fsync'd "
             "(0: at once); with no collector reachable, at once"},
    {0},
};

static const struct lh_cfg_schema buffer_schema = {
    .name = "forward buffer",
    .size = sizeof(struct fwd_buffer_cfg),
    .fields = buffer_fields,
};

static const struct lh_cfg_field fields[] = {
    {.key = "match", .type = LH_CFG_STR, .offset = offsetof(struct fwd_cfg, base.match),
     .defval = "*", .help = "fnmatch(3) glob on the tag"},
    {.key = "collectors", .type = LH_CFG_STRLIST, .offset = offsetof(struct fwd_cfg, collectors),
     .flags = LH_CFG_F_REQUIRED,
     .help = "host:port of each collector (a name with several addresses is several)",
     .check = lh_cfg_check_hostport},
    {.key = "balance", .type = LH_CFG_ENUM, .offset = offsetof(struct fwd_cfg, balance),
     .defval = "round_robin", .enum_values = balance_values,
     .help = "round_robin (each batch to the next healthy collector) | failover"},
    {.key = "tls", .type = LH_CFG_SECTION, .offset = offsetof(struct fwd_cfg, tls),
     .sub = &lh_tls_cfg_schema, .help = "TLS to the collectors"},
    {.key = "shared_key", .type = LH_CFG_STR, .offset = offsetof(struct fwd_cfg, shared_key),
     .help = "Forward shared-key handshake"},
    {.key = "hostname", .type = LH_CFG_STR, .offset = offsetof(struct fwd_cfg, hostname),
     .help = "host name sent in the handshake (default: agent.name)"},
    {.key = "batch", .type = LH_CFG_SECTION, .offset = offsetof(struct fwd_cfg, batch),
     .sub = &batch_schema, .help = "when a batch is sent"},
    {.key = "buffer", .type = LH_CFG_SECTION, .offset = offsetof(struct fwd_cfg, buffer),
     .sub = &buffer_schema, .help = "the disk buffer"},
    {.key = "compress", .type = LH_CFG_ENUM, .offset = offsetof(struct fwd_cfg, compress),
     .defval = "none", .enum_values = compress_values, .help = "gzip | none"},
    {.key = "ack_timeout", .type = LH_CFG_DURATION,
     .offset = offsetof(struct fwd_cfg, ack_timeout_ms), .defval = "30s", .min = 100,
     .max = 3600000, .help = "a batch not acknowledged in time is resent on a new connection"},
    {.key = "max_in_flight", .type = LH_CFG_INT,
     .offset = offsetof(struct fwd_cfg, max_in_flight), .defval = "4", .min = 1, .max = 1024,
     .help = "unacknowledged batches per connection"},
    {.key = "backoff_max", .type = LH_CFG_DURATION,
     .offset = offsetof(struct fwd_cfg, backoff_max_ms), .defval = "30s", .min = 500,
     .max = 3600000, .help = "longest wait before retrying a failed collector"},
    {0},
};

static int validate(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct fwd_cfg *c = obj;
    if (c->collectors.n == 0)
        return lh_cfg_error(d, line, col, "forward output: collectors needs at least one host:port");
    for (size_t i = 0; i < c->collectors.n; i++) {
        char host[256];
        int port;
        if (lh_split_hostport(c->collectors.v[i], host, sizeof host, &port) != 0 || port <= 0)
            return lh_cfg_error(d, line, col, "forward output: collector '%s' is not host:port",
                                c->collectors.v[i]);
    }
    if (c->shared_key && !c->shared_key[0])
        return lh_cfg_error(d, line, col, "forward output: shared_key must not be empty");
    if (c->buffer.max_size < 2 * c->batch.max_bytes)
        return lh_cfg_error(d, line, col,
                            "forward output: buffer.max_size must hold at least two batches "
                            "(2 x batch.max_bytes)");
    return 0;
}

const struct lh_cfg_schema lh_out_forward_schema = {
    .name = "forward output",
    .size = sizeof(struct fwd_cfg),
    .fields = fields,
    .validate = validate,
};
