/* loghaul-agent: flags, configuration, event loop, signals. */
#include <event2/dns.h>
#include <event2/event.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_config.h"
#include "agent/core/checkpoint.h"
#include "agent/http_status.h"
#include "agent/core/pipeline.h"
#include "common/config/daemon.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/base/metrics.h"
#include "common/base/util.h"

#define MAIN_LOG "agent"

/* What runs; main owns all of it. */
struct agent {
    struct lh_daemon_opts opts;
    struct lh_agent_config cfg;
    struct event_base *base;
    struct evdns_base *dns;
    struct lh_metrics *metrics;
    struct lh_ckpt *ckpt;
    struct lh_pipeline *pl;
    struct lh_http_status *http;
    char *http_addr;                 /* what http was bound with */
    struct event *sig_term, *sig_int, *sig_hup;
    struct event *swap;              /* runs the reload once the old pipeline drained */
    struct lh_agent_config next;     /* the config a reload switches to */
    bool running;                    /* pl started: its checkpoints are worth saving */
    bool stopping, reloading, failed;
};

static void apply_log_level(const struct agent *a, const struct lh_agent_config *cfg)
{
    lh_daemon_apply_log_level(&a->opts, cfg->agent.log_level);
}

/* ---- signals ------------------------------------------------------------ */

static void on_drained(void *ud)
{
    struct agent *a = ud;
    event_base_loopexit(a->base, NULL);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct agent *a = arg;
    if (a->stopping) {
        LH_WARN(MAIN_LOG, "second signal: exiting without waiting for acknowledgements");
        event_base_loopexit(a->base, NULL);
        return;
    }
    a->stopping = true;
    if (a->reloading) {
        /* The running pipeline is already draining: exit when it is done. */
        LH_INFO(MAIN_LOG, "signal %d: stopping once the reload's drain completes", (int)sig);
        return;
    }
    LH_INFO(MAIN_LOG, "signal %d: stopping (flushing, waiting up to %lld ms for acknowledgements)",
            (int)sig, (long long)a->cfg.agent.shutdown_timeout_ms);
    lh_pipeline_shutdown(a->pl, a->cfg.agent.shutdown_timeout_ms, on_drained, a);
}

/* SIGHUP: a new config that loads replaces the running pipeline. The old
 * one is shut down gracefully (flush, wait for acks, save checkpoints), then
 * the new one is built from the checkpoints on disk, as a restart would: no
 * record is lost or read twice, and certificates are read again. */
static void on_old_drained(void *ud)
{
    struct agent *a = ud;
    /* Called from inside the pipeline: free it only once the stack unwinds. */
    struct timeval now = {0, 0};
    evtimer_add(a->swap, &now);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct agent *a = arg;
    if (a->stopping || a->reloading) {
        LH_WARN(MAIN_LOG, "SIGHUP ignored: %s", a->stopping ? "stopping" : "a reload is running");
        return;
    }
    struct lh_cfg_diag d = {.file = a->opts.config};
    if (lh_agent_config_load(a->opts.config, &a->next, &d) != 0) {
        LH_ERROR(MAIN_LOG, "reload refused, the running configuration stays: %s",
                 d.error[0] ? d.error : "configuration could not be loaded");
        lh_agent_config_free(&a->next);
        lh_cfg_diag_free(&d);
        return;
    }
    for (size_t i = 0; i < d.n_warnings; i++)
        LH_WARN(MAIN_LOG, "reload: %s", d.warnings[i]);
    lh_cfg_diag_free(&d);
    a->reloading = true;
    LH_INFO(MAIN_LOG, "reloading %s: draining the running pipeline (up to %lld ms)",
            a->opts.config, (long long)a->cfg.agent.shutdown_timeout_ms);
    lh_pipeline_shutdown(a->pl, a->cfg.agent.shutdown_timeout_ms, on_old_drained, a);
}

static void on_swap(evutil_socket_t fd, short what, void *arg);

static int add_signals(struct agent *a)
{
    signal(SIGPIPE, SIG_IGN);
    a->sig_term = evsignal_new(a->base, SIGTERM, on_stop, a);
    a->sig_int = evsignal_new(a->base, SIGINT, on_stop, a);
    a->sig_hup = evsignal_new(a->base, SIGHUP, on_reload, a);
    a->swap = evtimer_new(a->base, on_swap, a);
    if (!a->sig_term || !a->sig_int || !a->sig_hup || !a->swap ||
        evsignal_add(a->sig_term, NULL) != 0 ||
        evsignal_add(a->sig_int, NULL) != 0 || evsignal_add(a->sig_hup, NULL) != 0)
        return LH_ENOMEM;
    return LH_OK;
}

/* ---- start and stop ----------------------------------------------------- */

static int open_state(struct agent *a)
{
    const char *dir = a->cfg.agent.data_dir;
    if (lh_mkdir_p(dir) != 0) {
        LH_ERROR(MAIN_LOG, "cannot create data_dir %s: %m", dir);
        return LH_EIO;
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/checkpoints.json", dir) >= (int)sizeof path)
        return LH_EINVAL;
    char err[600] = "";
    int rc = lh_ckpt_new(path, &a->ckpt);
    if (rc == 0)
        rc = lh_ckpt_load(a->ckpt, err, sizeof err);
    if (rc != 0)
        LH_ERROR(MAIN_LOG, "checkpoints: %s — refusing to guess where files were; move the file "
                           "away to start over", err[0] ? err : lh_strerror(rc));
    return rc;
}

/* Checkpoints and pipeline from a->cfg, started. On failure both may be
 * half-built (stop_pipeline frees them). */
static int build_pipeline(struct agent *a)
{
    char err[1024] = "";
    int rc = open_state(a);
    if (rc != 0)
        return rc;
    struct lh_agent_ctx ctx = {.base = a->base, .dns = a->dns, .host = a->cfg.agent.name,
                               .metrics = a->metrics, .ckpt = a->ckpt,
                               .data_dir = a->cfg.agent.data_dir, .filters = &a->cfg.filters};
    rc = lh_pipeline_new(&ctx, &a->cfg.inputs, &a->cfg.outputs, &a->pl, err, sizeof err);
    if (rc == 0)
        rc = lh_pipeline_start(a->pl, err, sizeof err);
    if (rc != 0)
        LH_ERROR(MAIN_LOG, "%s", err[0] ? err : lh_strerror(rc));
    a->running = rc == 0;
    return rc;
}

static void stop_pipeline(struct agent *a)
{
    lh_http_status_set_pipeline(a->http, NULL);
    /* A pipeline that never started tracks no file: saving would forget them all. */
    if (a->pl && a->running)
        lh_pipeline_save(a->pl);
    a->running = false;
    lh_pipeline_free(a->pl);
    a->pl = NULL;
    lh_ckpt_free(a->ckpt);
    a->ckpt = NULL;
}

/* The HTTP server follows agent.http: kept when unchanged, else rebound. */
static int serve_http(struct agent *a)
{
    const char *addr = a->cfg.agent.http;
    if (a->http && strcmp(a->http_addr, addr) == 0) {
        lh_http_status_set_pipeline(a->http, a->pl);
        return LH_OK;
    }
    lh_http_status_free(a->http);
    a->http = NULL;
    free(a->http_addr);
    a->http_addr = NULL;
    if (!addr[0])
        return LH_OK;
    char err[512] = "";
    int rc = (a->http_addr = strdup(addr)) ? LH_OK : LH_ENOMEM;
    if (rc == 0)
        rc = lh_http_status_new(a->base, addr, a->cfg.agent.http_max_connections,
                                a->cfg.agent.http_read_timeout_ms, a->metrics, a->pl, &a->http,
                                err, sizeof err);
    if (rc != 0)
        LH_ERROR(MAIN_LOG, "%s", err[0] ? err : lh_strerror(rc));
    return rc;
}

/* The old pipeline has drained: build the new one, or, if it cannot start
 * (a certificate missing, a port taken), go back to the old config. */
static void on_swap(evutil_socket_t fd, short what, void *arg)
{
    struct agent *a = arg;
    stop_pipeline(a);
    a->reloading = false;
    if (a->stopping) {
        lh_agent_config_free(&a->next);
        event_base_loopexit(a->base, NULL);
        return;
    }
    struct lh_agent_config prev = a->cfg;
    a->cfg = a->next;
    memset(&a->next, 0, sizeof a->next);
    bool ok = build_pipeline(a) == 0 && serve_http(a) == 0;
    if (ok) {
        apply_log_level(a, &a->cfg);
        LH_INFO(MAIN_LOG, "reloaded %s", a->opts.config);
    } else {
        LH_ERROR(MAIN_LOG, "reload refused: the new configuration could not start; "
                           "going back to the previous one");
        stop_pipeline(a);
        lh_agent_config_free(&a->cfg);
        a->cfg = prev;
        memset(&prev, 0, sizeof prev);
        ok = build_pipeline(a) == 0 && serve_http(a) == 0;
    }
    lh_agent_config_free(&prev);
    if (!ok) {
        LH_ERROR(MAIN_LOG, "the previous configuration could not start again: exiting");
        a->failed = true;
        event_base_loopexit(a->base, NULL);
    }
}

static int start(struct agent *a)
{
    a->base = event_base_new();
    a->metrics = lh_metrics_new();
    if (!a->base || !a->metrics || add_signals(a) != 0)
        return LH_ENOMEM;
    /* Without resolv.conf evdns cannot start: fall back to getaddrinfo(). */
    a->dns = evdns_base_new(a->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    int rc = build_pipeline(a);
    if (rc == 0)
        rc = serve_http(a);
    if (rc != 0)
        return rc;
    LH_INFO(MAIN_LOG, "loghaul-agent %s started as '%s', data in %s", LOGHAUL_VERSION,
            a->cfg.agent.name, a->cfg.agent.data_dir);
    return LH_OK;
}

static void teardown(struct agent *a)
{
    stop_pipeline(a);
    lh_http_status_free(a->http);
    free(a->http_addr);
    if (a->swap)
        event_free(a->swap);
    if (a->sig_term)
        event_free(a->sig_term);
    if (a->sig_int)
        event_free(a->sig_int);
    if (a->sig_hup)
        event_free(a->sig_hup);
    if (a->dns)
        evdns_base_free(a->dns, 0);
    if (a->base)
        event_base_free(a->base);
    lh_metrics_free(a->metrics);
    lh_agent_config_free(&a->next);
    lh_agent_config_free(&a->cfg);
}

int main(int argc, char **argv)
{
    struct agent a = {0};
    static const struct lh_daemon_desc desc = {
        "loghaul-agent", LH_AGENT_DEFAULT_CONFIG,
        "Tails files and receives syslog, buffers records on disk, ships them to collectors."};
    int rc = lh_daemon_parse_args(&desc, argc, argv, &a.opts);
    if (rc != 0)
        return rc < 0 ? LH_EXIT_OK : rc;
    struct lh_cfg_diag d = {.file = a.opts.config};
    if (lh_agent_config_load(a.opts.config, &a.cfg, &d) != 0) {
        fprintf(stderr, "%s\n", d.error[0] ? d.error : "configuration could not be loaded");
        lh_agent_config_free(&a.cfg);
        lh_cfg_diag_free(&d);
        return LH_EXIT_USAGE;
    }
    lh_daemon_print_warnings(&d);
    lh_cfg_diag_free(&d);
    if (a.opts.check_only) {
        printf("%s: ok\n", a.opts.config);
        lh_agent_config_free(&a.cfg);
        return LH_EXIT_OK;
    }
    apply_log_level(&a, &a.cfg);
    int code = LH_EXIT_RUNTIME;
    if (start(&a) == 0 && event_base_dispatch(a.base) == 0 && !a.failed) {
        LH_INFO(MAIN_LOG, "stopped");
        code = LH_EXIT_OK;
    }
    teardown(&a);
    return code;
}
