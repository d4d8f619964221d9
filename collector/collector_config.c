#include "collector/collector_config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "collector/outputs/output.h"
#include "collector/store/store.h"
#include "common/base/util.h"

#define MiB (1024LL * 1024)
/* A frame's records as stored are one store record: past the store's
 * limit (less room for the batch head) a frame could never be acked and
 * its sender would resend it forever. */
#define LH_FWD_STORED_MAX (LH_STORE_MAX_RECORD - MiB)

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

static const struct lh_cfg_field collector_fields[] = {
    {.key = "name", .type = LH_CFG_STR, .offset = offsetof(struct lh_collector_section, name),
     .help = "collector name, the PONG hostname by default (default: host name)"},
    {.key = "data_dir", .type = LH_CFG_STR,
     .offset = offsetof(struct lh_collector_section, data_dir),
     .defval = "/var/lib/loghaul-collector", .help = "the store lives in data_dir/store"},
    {.key = "log_level", .type = LH_CFG_ENUM,
     .offset = offsetof(struct lh_collector_section, log_level), .defval = "info",
     .enum_values = log_levels, .help = "error | warn | info | debug"},
    {0},
};

static const struct lh_cfg_schema collector_schema = {
    .name = "collector section",
    .size = sizeof(struct lh_collector_section),
    .fields = collector_fields,
};

static const struct lh_cfg_field forward_fields[] = {
    {.key = "address", .type = LH_CFG_STR,
     .offset = offsetof(struct lh_forward_listen_cfg, address), .defval = "0.0.0.0:24224",
     .help = "host:port of the Forward listener (port 0: the kernel chooses)",
     .check = lh_cfg_check_listen_hostport},
    {.key = "tls", .type = LH_CFG_SECTION, .offset = offsetof(struct lh_forward_listen_cfg, tls),
     .sub = &lh_tls_cfg_schema, .help = "TLS, and mTLS with require_client_cert"},
    {.key = "shared_key", .type = LH_CFG_STR,
     .offset = offsetof(struct lh_forward_listen_cfg, shared_key),
     .help = "Forward HELO/PING/PONG shared key; unset: no handshake"},
    {.key = "hostname", .type = LH_CFG_STR,
     .offset = offsetof(struct lh_forward_listen_cfg, hostname),
     .help = "server hostname sent in PONG (default: collector.name)"},
    {.key = "max_frame", .type = LH_CFG_SIZE,
     .offset = offsetof(struct lh_forward_listen_cfg, max_frame), .defval = "64MiB",
     .min = 16, .max = LH_FWD_STORED_MAX, .help = "largest Forward frame accepted"},
    {.key = "max_decompressed", .type = LH_CFG_SIZE,
     .offset = offsetof(struct lh_forward_listen_cfg, max_decompressed), .defval = "64MiB",
     .min = 16, .max = LH_FWD_STORED_MAX,
     .help = "largest inflated gzip payload of one frame, and of its records as stored (at "
             "most 1023MiB: the store's largest record is 1GiB)"},
    {.key = "handshake_timeout", .type = LH_CFG_DURATION,
     .offset = offsetof(struct lh_forward_listen_cfg, handshake_timeout_ms), .defval = "30s",
     .min = 100, .max = 3600 * 1000,
     .help = "a connection that has not finished TLS and the shared-key handshake by then "
             "is closed (idle connections after it are left alone)"},
    {.key = "frame_timeout", .type = LH_CFG_DURATION,
     .offset = offsetof(struct lh_forward_listen_cfg, frame_timeout_ms), .defval = "30s",
     .min = 100, .max = 3600 * 1000,
     .help = "a connection holding part of a frame that receives nothing more for this long "
             "is closed (the frame is not acked; between frames a connection may idle)"},
    {.key = "max_connections", .type = LH_CFG_INT,
     .offset = offsetof(struct lh_forward_listen_cfg, max_connections), .defval = "4096",
     .min = 1, .max = 1000000,
     .help = "open Forward connections at most; past it new ones wait in the kernel's "
             "accept queue until one closes"},
    {.key = "max_connection_memory", .type = LH_CFG_SIZE,
     .offset = offsetof(struct lh_forward_listen_cfg, max_connection_memory),
     .defval = "65MiB", .min = 2 * MiB, .max = 64 * 1024 * MiB,
     .help = "bytes one connection may hold (its frame and socket buffers); at least "
             "max_frame + 1MiB"},
    {.key = "max_memory", .type = LH_CFG_SIZE,
     .offset = offsetof(struct lh_forward_listen_cfg, max_memory), .defval = "96MiB",
     .min = 2 * MiB, .max = 64 * 1024 * MiB,
     .help = "bytes all connections hold together; past it connections stop reading until "
             "memory is released"},
    {0},
};

/* The memory budgets must leave room for the largest frame, or such frames
 * could never be read. */
static int validate_forward(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct lh_forward_listen_cfg *f = obj;
    if (f->max_connection_memory < f->max_frame + MiB)
        return lh_cfg_error(d, line, col, "listen.forward.max_connection_memory (%lld bytes) "
                            "must be at least max_frame + 1MiB (%lld bytes): a connection "
                            "holds its frame and socket buffers",
                            (long long)f->max_connection_memory, (long long)(f->max_frame + MiB));
    if (f->max_memory < f->max_connection_memory)
        return lh_cfg_error(d, line, col, "listen.forward.max_memory (%lld bytes) is smaller than "
                            "max_connection_memory (%lld bytes)", (long long)f->max_memory,
                            (long long)f->max_connection_memory);
    if (f->max_decompressed < f->max_frame)
        return lh_cfg_error(d, line, col, "listen.forward.max_decompressed (%lld bytes) is "
                            "smaller than max_frame (%lld bytes): it also caps a frame's "
                            "records as stored", (long long)f->max_decompressed,
                            (long long)f->max_frame);
    return 0;
}

static const struct lh_cfg_schema forward_schema = {
    .name = "listen.forward section",
    .size = sizeof(struct lh_forward_listen_cfg),
    .fields = forward_fields,
    .validate = validate_forward,
};

static const struct lh_cfg_field http_fields[] = {
    {.key = "address", .type = LH_CFG_STR, .offset = offsetof(struct lh_http_listen_cfg, address),
     .defval = "127.0.0.1:9800", .help = "host:port of the search API and /metrics",
     .check = lh_cfg_check_listen_hostport},
    {.key = "auth_token_file", .type = LH_CFG_STR,
     .offset = offsetof(struct lh_http_listen_cfg, auth_token_file),
     .flags = LH_CFG_F_PATH | LH_CFG_F_SECRET,
     .help = "file holding the bearer token every endpoint but /healthz requires"},
    {.key = "max_connections", .type = LH_CFG_INT,
     .offset = offsetof(struct lh_http_listen_cfg, limits.max_connections), .defval = "256",
     .min = 1, .max = 1000000,
     .help = "open HTTP connections at most; past it new ones wait in the kernel's accept "
             "queue until one closes"},
    {.key = "max_header_size", .type = LH_CFG_SIZE,
     .offset = offsetof(struct lh_http_listen_cfg, limits.max_header_size), .defval = "64KiB",
     .min = 1024, .max = 16 * MiB,
     .help = "request line and headers at most (a longer URI counts); past it 413"},
    {.key = "max_body_size", .type = LH_CFG_SIZE,
     .offset = offsetof(struct lh_http_listen_cfg, limits.max_body_size), .defval = "1MiB",
     .min = 0, .max = 1024 * MiB, .help = "request body at most; past it 413"},
    {.key = "read_timeout", .type = LH_CFG_DURATION,
     .offset = offsetof(struct lh_http_listen_cfg, limits.read_timeout_ms), .defval = "30s",
     .min = 1000, .max = 3600 * 1000,
     .help = "a request must arrive whole this soon after the connection opened or the "
             "previous answer ended, else the connection is closed (idle keep-alive too)"},
    {.key = "write_timeout", .type = LH_CFG_DURATION,
     .offset = offsetof(struct lh_http_listen_cfg, limits.write_timeout_ms), .defval = "60s",
     .min = 1000, .max = 3600 * 1000,
     .help = "an answer the client does not read for this long closes the connection"},
    {0},
};

static const struct lh_cfg_schema http_schema = {
    .name = "listen.http section",
    .size = sizeof(struct lh_http_listen_cfg),
    .fields = http_fields,
};

static const struct lh_cfg_field listen_fields[] = {
    {.key = "forward", .type = LH_CFG_SECTION, .offset = offsetof(struct lh_listen_cfg, forward),
     .sub = &forward_schema},
    {.key = "http", .type = LH_CFG_SECTION, .offset = offsetof(struct lh_listen_cfg, http),
     .sub = &http_schema},
    {0},
};

static const struct lh_cfg_schema listen_schema = {
    .name = "listen section",
    .size = sizeof(struct lh_listen_cfg),
    .fields = listen_fields,
};

static const struct lh_cfg_field retention_fields[] = {
    {.key = "max_age", .type = LH_CFG_DURATION,
     .offset = offsetof(struct lh_retention_cfg, max_age_ms), .defval = "30d", .min = 1000,
     .max = 100LL * 365 * 86400 * 1000, .help = "segments whose newest batch is older go"},
    {.key = "max_size", .type = LH_CFG_SIZE, .offset = offsetof(struct lh_retention_cfg, max_size),
     .defval = "100GiB", .min = MiB, .max = INT64_MAX / 2,
     .help = "oldest segments go while the store is larger"},
    {0},
};

static const struct lh_cfg_schema retention_schema = {
    .name = "store.retention section",
    .size = sizeof(struct lh_retention_cfg),
    .fields = retention_fields,
};

static const struct lh_cfg_field store_fields[] = {
    {.key = "enabled", .type = LH_CFG_BOOL, .offset = offsetof(struct lh_store_section, enabled),
     .defval = "true", .help = "keep records searchable in data_dir/store"},
    {.key = "retention", .type = LH_CFG_SECTION,
     .offset = offsetof(struct lh_store_section, retention), .sub = &retention_schema},
    {.key = "dedup_window", .type = LH_CFG_DURATION,
     .offset = offsetof(struct lh_store_section, dedup_window_ms), .defval = "24h", .min = 0,
     .max = 365LL * 86400 * 1000, .help = "how long acked chunk ids are remembered"},
    {0},
};

static const struct lh_cfg_schema store_schema = {
    .name = "store section",
    .size = sizeof(struct lh_store_section),
    .fields = store_fields,
};

static const struct lh_cfg_field search_fields[] = {
    {.key = "query_timeout", .type = LH_CFG_DURATION,
     .offset = offsetof(struct lh_search_section, query_timeout_ms), .defval = "30s",
     .min = 100, .max = 3600 * 1000,
     .help = "a search, histogram or stats query scanning longer answers 503"},
    {.key = "max_tails", .type = LH_CFG_INT,
     .offset = offsetof(struct lh_search_section, max_tails), .defval = "64",
     .min = 1, .max = 100000,
     .help = "live tail streams open at once (and at most half of "
             "listen.http.max_connections); past it a tail answers 503"},
    {.key = "tail_max_memory", .type = LH_CFG_SIZE,
     .offset = offsetof(struct lh_search_section, tail_max_memory), .defval = "32MiB",
     .min = MiB, .max = 64 * 1024 * MiB,
     .help = "bytes all live tails keep queued for their clients; past it the tail with the "
             "most queued is cut off"},
    {0},
};

static const struct lh_cfg_schema search_schema = {
    .name = "search section",
    .size = sizeof(struct lh_search_section),
    .fields = search_fields,
};

/* Output types register here as they are written (vtables: output.c). */
static const struct lh_cfg_plugin_type output_types[] = {
    {"null", &lh_coll_out_null_schema},
    {"file", &lh_coll_out_file_schema},
    {"forward", &lh_coll_out_forward_schema},
    {"http", &lh_coll_out_http_schema},
    {"kafka", &lh_coll_out_kafka_schema},
    {NULL, NULL},
};

static const struct lh_cfg_field root_fields[] = {
    {.key = "collector", .type = LH_CFG_SECTION,
     .offset = offsetof(struct lh_collector_config, collector), .sub = &collector_schema},
    {.key = "listen", .type = LH_CFG_SECTION,
     .offset = offsetof(struct lh_collector_config, listen), .sub = &listen_schema},
    {.key = "store", .type = LH_CFG_SECTION, .offset = offsetof(struct lh_collector_config, store),
     .sub = &store_schema},
    {.key = "search", .type = LH_CFG_SECTION,
     .offset = offsetof(struct lh_collector_config, search), .sub = &search_schema},
    {.key = "peers", .type = LH_CFG_STRLIST, .offset = offsetof(struct lh_collector_config, peers),
     .help = "other collectors' HTTP URLs for federated search",
     .check = lh_cfg_check_http_url},
    {.key = "outputs", .type = LH_CFG_PLUGINS,
     .offset = offsetof(struct lh_collector_config, outputs), .plugins = output_types,
     .help = "downstream destinations"},
    {0},
};

static int validate_root(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    struct lh_collector_config *cfg = obj;
    if (cfg->collector.data_dir && !cfg->collector.data_dir[0])
        return lh_cfg_error(d, line, col, "collector.data_dir must not be empty");
    if (cfg->collector.name && !cfg->collector.name[0])
        return lh_cfg_error(d, line, col,
                            "collector.name must not be empty (omit it for the host name)");
    if (!cfg->store.enabled && cfg->outputs.n == 0)
        return lh_cfg_error(d, line, col,
                            "store.enabled is false and there are no outputs: nothing would "
                            "make acknowledged records durable");
    if (cfg->listen.forward.shared_key && !cfg->listen.forward.shared_key[0])
        return lh_cfg_error(d, line, col, "listen.forward.shared_key must not be empty "
                                          "(omit it to turn the handshake off)");
    return 0;
}

const struct lh_cfg_schema lh_collector_config_schema = {
    .name = "collector configuration",
    .size = sizeof(struct lh_collector_config),
    .fields = root_fields,
    .validate = validate_root,
};

static int fill_default(char **slot, const char *value, struct lh_cfg_diag *d)
{
    if (*slot)
        return 0;
    *slot = strdup(value);
    return *slot ? 0 : lh_cfg_error(d, 1, 1, "out of memory");
}

int lh_collector_config_load(const char *path, struct lh_collector_config *cfg,
                             struct lh_cfg_diag *d)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = lh_cfg_load_file(path, &lh_collector_config_schema, cfg, d);
    if (rc != 0)
        return rc;
    char host[256];
    lh_hostname(host, sizeof host);
    rc = fill_default(&cfg->collector.name, host, d);
    if (rc == 0)
        rc = fill_default(&cfg->listen.forward.hostname, cfg->collector.name, d);
    return rc;
}

void lh_collector_config_free(struct lh_collector_config *cfg)
{
    lh_cfg_free(&lh_collector_config_schema, cfg);
}
