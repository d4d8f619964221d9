/* loghaul-collector: flags, configuration, event loop, signals, and the
 * wiring: the Forward listener hands batches to commit, which runs dedup,
 * the outputs, the store and the sinks (the HTTP API's live tails).
 *
 * Single-threaded for now: one event_base runs the Forward listener, the
 * store (synchronous appends) and the HTTP API. */
#include <event2/event.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/collector_config.h"
#include "collector/http/http_api.h"
#include "collector/ingest/commit.h"
#include "collector/ingest/dedup.h"
#include "collector/ingest/in_forward.h"
#include "collector/outputs/output.h"
#include "collector/search/tail.h"
#include "collector/store/store.h"
#include "common/config/daemon.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/base/metrics.h"
#include "common/base/util.h"

#define MAIN_LOG "collector"
#define NS_PER_MS 1000000LL
#define RETENTION_EVERY_S 3600
#define STOP_TIMEOUT_S 10

/* What runs; main owns all of it. */
struct collector {
    struct lh_daemon_opts opts;
    struct lh_collector_config cfg;
    struct event_base *base;
    struct lh_metrics *metrics;
    struct lh_store *store;
    struct lh_coll_outputs *outs;      /* NULL: none configured */
    struct lh_commit_outputs outs_port;
    struct lh_dedup *dedup;
    struct lh_commit *commit;
    struct lh_in_forward *fwd;
    struct lh_http_api *api;
    struct event *sig_term, *sig_int, *sig_hup, *retention, *stop_timer;
    bool stopping;
};

static void apply_log_level(const struct collector *col, const struct lh_collector_config *cfg)
{
    lh_daemon_apply_log_level(&col->opts, cfg->collector.log_level);
}

/* The token of cfg (NULL without auth_token_file). 0 or an error in err. */
static int load_token(const struct lh_collector_config *cfg, char **token, char *err,
                      size_t errlen)
{
    *token = NULL;
    if (!cfg->listen.http.auth_token_file)
        return 0;
    return lh_http_read_token(cfg->listen.http.auth_token_file, token, err, errlen);
}

/* ---- reload ------------------------------------------------------------- */

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_tls(const struct lh_tls_cfg *a, const struct lh_tls_cfg *b)
{
    return lh_tls_on(a) == lh_tls_on(b) && same_str(a->ca, b->ca) && same_str(a->cert, b->cert) &&
           same_str(a->key, b->key) && a->require_client_cert == b->require_client_cert;
}

static bool same_store(const struct lh_store_section *a, const struct lh_store_section *b)
{
    return a->enabled == b->enabled && a->dedup_window_ms == b->dedup_window_ms &&
           a->retention.max_age_ms == b->retention.max_age_ms &&
           a->retention.max_size == b->retention.max_size;
}

static bool same_peers(const struct lh_strlist *a, const struct lh_strlist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return false;
    return true;
}

static void add_name(char *buf, size_t len, bool changed, const char *name)
{
    size_t used = strlen(buf);
    if (changed && used + 1 < len)
        snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
}

/* Names of the settings that differ and only a restart applies. */
static void restart_needed(const struct lh_collector_config *a,
                           const struct lh_collector_config *b, char *buf, size_t len)
{
    const struct lh_forward_listen_cfg *fa = &a->listen.forward, *fb = &b->listen.forward;
    buf[0] = '\0';
    add_name(buf, len, !same_str(a->collector.name, b->collector.name), "collector.name");
    add_name(buf, len, !same_str(a->collector.data_dir, b->collector.data_dir),
             "collector.data_dir");
    add_name(buf, len, !same_str(fa->address, fb->address), "listen.forward.address");
    add_name(buf, len, !same_tls(&fa->tls, &fb->tls), "listen.forward.tls");
    add_name(buf, len, !same_str(fa->shared_key, fb->shared_key), "listen.forward.shared_key");
    add_name(buf, len, !same_str(fa->hostname, fb->hostname), "listen.forward.hostname");
    add_name(buf, len, fa->max_frame != fb->max_frame || fa->max_decompressed != fb->max_decompressed,
             "listen.forward limits");
    add_name(buf, len, !same_str(a->listen.http.address, b->listen.http.address),
             "listen.http.address");
    add_name(buf, len, !same_store(&a->store, &b->store), "store");
    add_name(buf, len, !same_peers(&a->peers, &b->peers), "peers");
    add_name(buf, len, a->search.query_timeout_ms != b->search.query_timeout_ms,
             "search.query_timeout");
    add_name(buf, len, a->search.max_tails != b->search.max_tails ||
             a->search.tail_max_memory != b->search.tail_max_memory, "search tail limits");
}

static void reload_with(struct collector *col, const struct lh_collector_config *next)
{
    char err[600], changed[512];
    char *token;
    if (load_token(next, &token, err, sizeof err) != 0) {
        LH_ERROR(MAIN_LOG, "reload refused, the running configuration stays: %s", err);
        return;
    }
    if (lh_http_api_set_token(col->api, token) != 0) {
        LH_ERROR(MAIN_LOG, "reload refused: out of memory");
        free(token);
        return;
    }
    free(token);
    apply_log_level(col, next);
    /* Certificates are read again from the running paths (a changed path
     * is listed below as needing a restart). */
    const char *tls = ", TLS certificates";
    if (lh_in_forward_reload_tls(col->fwd, err, sizeof err) != 0) {
        LH_ERROR(MAIN_LOG, "reload: %s; new connections keep the previous certificates", err);
        tls = "";
    }
    restart_needed(&col->cfg, next, changed, sizeof changed);
    if (changed[0])
        LH_WARN(MAIN_LOG, "reloaded %s: log level, API token%s applied; changed settings "
                          "that take effect only after a restart: %s", col->opts.config, tls,
                changed);
    else
        LH_INFO(MAIN_LOG, "reloaded %s: log level, API token%s applied", col->opts.config,
                tls);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct collector *col = arg;
    struct lh_collector_config next;
    struct lh_cfg_diag d = {.file = col->opts.config};
    if (lh_collector_config_load(col->opts.config, &next, &d) != 0) {
        LH_ERROR(MAIN_LOG, "reload refused, the running configuration stays: %s", d.error);
    } else {
        for (size_t i = 0; i < d.n_warnings; i++)
            LH_WARN(MAIN_LOG, "reload: %s", d.warnings[i]);
        reload_with(col, &next);
    }
    lh_collector_config_free(&next);
    lh_cfg_diag_free(&d);
}

/* ---- stop --------------------------------------------------------------- */

static void on_drained(void *ud)
{
    struct collector *col = ud;
    event_base_loopexit(col->base, NULL);
}

static void on_stop_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct collector *col = arg;
    LH_WARN(MAIN_LOG, "connections still open after %d s (peers not reading their acks): "
                      "closing them", STOP_TIMEOUT_S);
    event_base_loopexit(col->base, NULL);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct collector *col = arg;
    if (col->stopping) {
        LH_WARN(MAIN_LOG, "second signal: exiting now");
        event_base_loopexit(col->base, NULL);
        return;
    }
    col->stopping = true;
    LH_INFO(MAIN_LOG, "signal %d: stopping (no new connections, sending pending acks)", (int)sig);
    struct timeval tv = {STOP_TIMEOUT_S, 0};
    col->stop_timer = evtimer_new(col->base, on_stop_timeout, col);
    if (col->stop_timer)
        evtimer_add(col->stop_timer, &tv);
    lh_in_forward_shutdown(col->fwd, on_drained, col);
}

/* ---- start -------------------------------------------------------------- */

/* Tails hold their HTTP connections for as long as they run: at most half
 * of them, so that queries and /healthz always find one. */
static void set_tail_limits(struct collector *col)
{
    const struct lh_search_section *s = &col->cfg.search;
    size_t http_max = (size_t)col->cfg.listen.http.limits.max_connections;
    size_t max = (size_t)s->max_tails, half = http_max / 2 ? http_max / 2 : 1;
    if (max > half) {
        LH_WARN(MAIN_LOG, "search.max_tails (%zu) held to %zu, half of "
                "listen.http.max_connections (%zu), so that queries still get connections",
                max, half, http_max);
        max = half;
    }
    lh_tail_set_limits(lh_http_api_tail(col->api), max, (size_t)s->tail_max_memory);
}

static void on_retention(evutil_socket_t fd, short what, void *arg)
{
    struct collector *col = arg;
    if (lh_store_retain(col->store, lh_now_ns()) < 0)
        LH_ERROR(MAIN_LOG, "retention could not remove old segments (see above)");
}

static int add_events(struct collector *col)
{
    signal(SIGPIPE, SIG_IGN);
    col->sig_term = evsignal_new(col->base, SIGTERM, on_stop, col);
    col->sig_int = evsignal_new(col->base, SIGINT, on_stop, col);
    col->sig_hup = evsignal_new(col->base, SIGHUP, on_reload, col);
    col->retention = event_new(col->base, -1, EV_PERSIST, on_retention, col);
    struct timeval hourly = {RETENTION_EVERY_S, 0};
    if (!col->sig_term || !col->sig_int || !col->sig_hup || !col->retention ||
        evsignal_add(col->sig_term, NULL) != 0 || evsignal_add(col->sig_int, NULL) != 0 ||
        evsignal_add(col->sig_hup, NULL) != 0 || event_add(col->retention, &hourly) != 0)
        return LH_ENOMEM;
    return LH_OK;
}

static int open_store(struct collector *col, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    const struct lh_store_section *sc = &col->cfg.store;
    if (snprintf(dir, sizeof dir, "%s/store", col->cfg.collector.data_dir) >= (int)sizeof dir) {
        snprintf(err, errlen, "collector.data_dir is too long");
        return LH_EINVAL;
    }
    struct lh_store_opts o = {
        .dir = dir,
        .max_age_ns = sc->retention.max_age_ms * NS_PER_MS,
        .max_size = sc->retention.max_size,
        .metrics = col->metrics,
    };
    int rc = lh_store_open(&o, &col->store, err, errlen);
    if (rc == 0 && lh_store_retain(col->store, lh_now_ns()) < 0) {
        snprintf(err, errlen, "retention could not remove old segments (see above)");
        rc = LH_EIO;
    }
    return rc;
}

static int write_outputs(void *ud, const struct lh_coll_batch *b)
{
    return lh_coll_outputs_write(ud, b);
}

static void publish_tail(void *ud, const struct lh_coll_batch *b)
{
    lh_tail_publish(ud, b->events, b->events_len, b->n_events);
}

/* Dedup, the outputs and commit. With store.enabled false the store is
 * neither written nor read for dedup: the outputs are the durable end. */
static int open_ingest(struct collector *col, char *err, size_t errlen)
{
    const struct lh_collector_config *cfg = &col->cfg;
    struct lh_store *store = cfg->store.enabled ? col->store : NULL;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/dedup.idx", cfg->collector.data_dir) >= (int)sizeof path) {
        snprintf(err, errlen, "collector.data_dir is too long");
        return LH_EINVAL;
    }
    const struct lh_dedup_opts d = {path, cfg->store.dedup_window_ms * NS_PER_MS, store,
                                    col->metrics};
    int rc = lh_dedup_open(&d, &col->dedup, err, errlen);
    if (rc == 0 && cfg->outputs.n > 0) {
        const struct lh_coll_output_ctx ctx = {col->base, col->metrics, cfg->collector.data_dir,
                                               cfg->collector.name};
        rc = lh_coll_outputs_new(&cfg->outputs, &ctx, &col->outs, err, errlen);
        col->outs_port = (struct lh_commit_outputs){write_outputs, col->outs};
    }
    const struct lh_commit_opts co = {col->dedup, col->outs ? &col->outs_port : NULL, store,
                                      col->metrics};
    if (rc == 0 && (rc = lh_commit_new(&co, &col->commit)) != 0)
        snprintf(err, errlen, "out of memory");
    return rc;
}

static int start(struct collector *col)
{
    char err[1024] = "";
    char *token = NULL;
    col->base = event_base_new();
    col->metrics = lh_metrics_new();
    if (!col->base || !col->metrics || add_events(col) != 0) {
        LH_ERROR(MAIN_LOG, "out of memory");
        return LH_ENOMEM;
    }
    const struct lh_listen_cfg *l = &col->cfg.listen;
    int rc = load_token(&col->cfg, &token, err, sizeof err);
    if (rc == 0)
        rc = open_store(col, err, sizeof err);
    if (rc == 0)
        rc = open_ingest(col, err, sizeof err);
    if (rc == 0)
        rc = lh_in_forward_new(col->base, &l->forward, col->commit, col->metrics, &col->fwd, err,
                               sizeof err);
    if (rc == 0)
        rc = lh_http_api_new(col->base, l->http.address, &l->http.limits, col->store,
                             col->metrics, token, &col->api, err, sizeof err);
    if (rc == 0 && lh_commit_add_sink(col->commit, &(struct lh_commit_sink){
                                                       publish_tail, lh_http_api_tail(col->api)}) != 0)
        rc = LH_ENOMEM;
    if (rc == 0)
        rc = lh_http_api_set_peers(col->api, col->cfg.peers.v, col->cfg.peers.n, err, sizeof err);
    if (rc == 0) {
        lh_http_api_set_query_timeout(col->api, col->cfg.search.query_timeout_ms);
        set_tail_limits(col);
    }
    free(token);
    if (rc != 0) {
        LH_ERROR(MAIN_LOG, "%s", err[0] ? err : lh_strerror(rc));
        return rc;
    }
    LH_INFO(MAIN_LOG, "loghaul-collector %s started as '%s', data in %s", LOGHAUL_VERSION,
            col->cfg.collector.name, col->cfg.collector.data_dir);
    return LH_OK;
}

static void free_event(struct event *ev)
{
    if (ev)
        event_free(ev);
}

static void teardown(struct collector *col)
{
    /* The listener first: nothing is submitted after it. The reference
     * store completes every append at once, so commit has none left. */
    lh_in_forward_free(col->fwd);
    lh_commit_free(col->commit);
    lh_http_api_free(col->api);
    lh_dedup_close(col->dedup);
    lh_coll_outputs_free(col->outs);
    lh_store_close(col->store);
    free_event(col->sig_term);
    free_event(col->sig_int);
    free_event(col->sig_hup);
    free_event(col->retention);
    free_event(col->stop_timer);
    if (col->base)
        event_base_free(col->base);
    lh_metrics_free(col->metrics);
    lh_collector_config_free(&col->cfg);
}

static int load_config(struct collector *col)
{
    struct lh_cfg_diag d = {.file = col->opts.config};
    int rc = lh_collector_config_load(col->opts.config, &col->cfg, &d);
    if (rc != 0)
        fprintf(stderr, "%s\n", d.error[0] ? d.error : "configuration could not be loaded");
    if (rc == 0)
        lh_daemon_print_warnings(&d);
    lh_cfg_diag_free(&d);
    return rc;
}

int main(int argc, char **argv)
{
    struct collector col = {0};
    static const struct lh_daemon_desc desc = {
        "loghaul-collector", LH_COLLECTOR_DEFAULT_CONFIG,
        "Receives Forward batches, stores them durably, answers searches over HTTP."};
    int rc = lh_daemon_parse_args(&desc, argc, argv, &col.opts);
    if (rc != 0)
        return rc < 0 ? LH_EXIT_OK : rc;
    if (load_config(&col) != 0) {
        lh_collector_config_free(&col.cfg);
        return LH_EXIT_USAGE;
    }
    if (col.opts.check_only) {
        printf("%s: ok\n", col.opts.config);
        lh_collector_config_free(&col.cfg);
        return LH_EXIT_OK;
    }
    apply_log_level(&col, &col.cfg);
    int code = LH_EXIT_RUNTIME;
    if (start(&col) == 0 && event_base_dispatch(col.base) == 0) {
        LH_INFO(MAIN_LOG, "stopped");
        code = LH_EXIT_OK;
    }
    teardown(&col);
    return code;
}
