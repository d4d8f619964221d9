/* The collector's configuration file (SPEC section 6).
 *
 * The collector is single-threaded for now: one libevent event_base runs
 * the Forward listener, the store appends and the HTTP API. Nothing in the
 * loaded struct is shared with other threads. */
#ifndef LH_COLLECTOR_CONFIG_H
#define LH_COLLECTOR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config/config.h"
#include "common/net/http_guard.h"
#include "common/net/tls.h"

#define LH_COLLECTOR_DEFAULT_CONFIG "/etc/loghaul/collector.yaml"

struct lh_collector_section {
    char *name;       /* default: the host name */
    char *data_dir;
    int log_level;    /* enum lh_log_level */
};

struct lh_forward_listen_cfg {
    char *address;
    struct lh_tls_cfg tls;
    char *shared_key;        /* NULL: no handshake */
    char *hostname;          /* PONG hostname; default collector.name */
    int64_t max_frame;       /* bytes */
    int64_t max_decompressed;
    int64_t handshake_timeout_ms; /* TLS + shared-key handshake must finish by then */
    int64_t frame_timeout_ms; /* a frame begun and not growing for this long is dropped */
    int64_t max_connections; /* past it, accepting waits (the kernel's backlog holds) */
    int64_t max_connection_memory; /* bytes one connection may hold (its frame buffers) */
    int64_t max_memory;      /* bytes all connections together; past it reading pauses */
};

struct lh_http_listen_cfg {
    char *address;
    char *auth_token_file;   /* NULL: the API is open */
    struct lh_http_limits limits;
};

struct lh_listen_cfg {
    struct lh_forward_listen_cfg forward;
    struct lh_http_listen_cfg http;
};

struct lh_retention_cfg {
    int64_t max_age_ms;
    int64_t max_size;        /* bytes */
};

struct lh_store_section {
    bool enabled;
    struct lh_retention_cfg retention;
    int64_t dedup_window_ms;
};

struct lh_search_section {
    int64_t query_timeout_ms; /* a query scanning longer answers 503 */
    int64_t max_tails;        /* live tails at once (at most half the HTTP connections) */
    int64_t tail_max_memory;  /* bytes all live tails keep queued */
};

struct lh_collector_config {
    struct lh_collector_section collector;
    struct lh_listen_cfg listen;
    struct lh_store_section store;
    struct lh_search_section search;
    struct lh_strlist peers;
    struct lh_cfg_list outputs;  /* collector/output.h */
};

extern const struct lh_cfg_schema lh_collector_config_schema;

/* Loads path into cfg (zeroed here) and fills derived defaults (name,
 * hostname). 0, or LH_ECONFIG/LH_ENOENT/LH_EIO with d->error set. Free cfg
 * either way. */
int lh_collector_config_load(const char *path, struct lh_collector_config *cfg,
                             struct lh_cfg_diag *d);
void lh_collector_config_free(struct lh_collector_config *cfg);

#endif
