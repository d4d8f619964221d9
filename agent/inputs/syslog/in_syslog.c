/* The syslog input: configuration, hooks, and messages → records (SPEC
 * sections 2 and 5). The sockets are in in_syslog_net.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/transform/filters/filter.h"
#include "agent/inputs/syslog/in_syslog_int.h"
#include "agent/transform/transform.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/base/util.h"

int sl_parse_mode(const char *s, unsigned *mode)
{
    char *end;
    if (!s || !*s || strspn(s, "01234567") != strlen(s) || strlen(s) > 4)
        return LH_EINVAL;
    unsigned long v = strtoul(s, &end, 8);
    if (v > 0777)
        return LH_EINVAL;
    *mode = (unsigned)v;
    return LH_OK;
}

int sl_parse_gid(const char *s, gid_t *gid)
{
    const char *digits = s[0] == '-' || s[0] == '+' ? s + 1 : s;
    if (!digits[0] || strspn(digits, "0123456789") != strlen(digits))
        return LH_ENOENT;
    if (digits != s)
        return LH_ETOOBIG;
    errno = 0;
    unsigned long long n = strtoull(s, NULL, 10);
    if (errno == ERANGE || n > SL_GID_MAX)
        return LH_ETOOBIG;
    *gid = (gid_t)n;
    return LH_OK;
}

/* Names depend on the machine (checked at start); a number is wrong or
 * right on its face. */
static int check_group(const char *v, char *why, size_t whylen)
{
    gid_t gid;
    if (sl_parse_gid(v, &gid) != LH_ETOOBIG)
        return 0;
    snprintf(why, whylen, "'%s' is not a group number (0 to %lu) nor a group name", v,
             SL_GID_MAX);
    return LH_EINVAL;
}

static int check_mode(const char *v, char *why, size_t whylen)
{
    unsigned mode;
    if (sl_parse_mode(v, &mode) == 0)
        return 0;
    snprintf(why, whylen, "'%s' is not octal permissions such as 0660", v);
    return LH_EINVAL;
}

static const char *const listen_schemes[] = {"udp://", "tcp://", "tls://", "unix://",
                                             "unixstream://", NULL};

static int check_listen(const char *v, char *why, size_t whylen)
{
    size_t s = 0;
    while (listen_schemes[s] && strncmp(v, listen_schemes[s], strlen(listen_schemes[s])) != 0)
        s++;
    if (!listen_schemes[s]) {
        snprintf(why, whylen, "'%s' must start with udp://, tcp://, tls://, unix:// or "
                 "unixstream://", v);
        return LH_EINVAL;
    }
    const char *rest = v + strlen(listen_schemes[s]);
    if (s >= 3) {
        if (rest[0] == '/')
            return 0;
        snprintf(why, whylen, "'%s': the socket path must be absolute (unix:///run/log)", v);
        return LH_EINVAL;
    }
    return lh_cfg_check_listen_hostport(rest, why, whylen);
}

static const struct lh_cfg_field fields[] = {
    {.key = "tag", .type = LH_CFG_STR, .offset = offsetof(struct in_syslog_cfg, tag),
     .defval = "syslog", .help = "routing key of the records"},
    {.key = "listen", .type = LH_CFG_STRLIST, .offset = offsetof(struct in_syslog_cfg, listen),
     .flags = LH_CFG_F_REQUIRED,
     .help = "udp://HOST:PORT, tcp://HOST:PORT, tls://HOST:PORT, unix:///PATH (datagram), "
             "unixstream:///PATH",
     .check = check_listen},
    {.key = "format", .type = LH_CFG_ENUM, .offset = offsetof(struct in_syslog_cfg, format),
     .defval = "auto", .enum_values = lh_syslog_format_names,
     .help = "auto | rfc3164 | rfc5424 (auto picks per message)"},
    {.key = "max_message", .type = LH_CFG_SIZE,
     .offset = offsetof(struct in_syslog_cfg, max_message), .defval = "64KiB", .min = 64,
     .max = 16 << 20, .help = "longer messages are cut and flagged truncated: true"},
    {.key = "tls", .type = LH_CFG_SECTION, .offset = offsetof(struct in_syslog_cfg, tls),
     .sub = &lh_tls_cfg_schema, .help = "certificate and key for tls:// listeners"},
    {.key = "max_connections", .type = LH_CFG_INT,
     .offset = offsetof(struct in_syslog_cfg, max_connections), .defval = "4096", .min = 1,
     .max = 1000000,
     .help = "open connections per tcp://, tls:// or unixstream:// listener; past it new "
             "ones wait in the kernel's accept queue until one closes"},
    {.key = "mode", .type = LH_CFG_STR, .offset = offsetof(struct in_syslog_cfg, mode),
     .defval = "0666",
     .help = "permissions of unix:// and unixstream:// sockets, octal (0666: any local "
             "program may log, like /dev/log)",
     .check = check_mode},
    {.key = "group", .type = LH_CFG_STR, .offset = offsetof(struct in_syslog_cfg, group),
     .help = "group (name or number) given the unix sockets; unset: the agent's",
     .check = check_group},
    {.key = "max_memory", .type = LH_CFG_SIZE,
     .offset = offsetof(struct in_syslog_cfg, max_memory), .defval = "64MiB", .min = 64 << 10,
     .max = (int64_t)1 << 40,
     .help = "buffers of all tcp://, tls:// and unixstream:// connections together; past it "
             "a connection stops reading until memory is released"},
    {0},
};


static bool has_scheme(const char *url, const char *scheme)
{
    return strncmp(url, scheme, strlen(scheme)) == 0;
}

static int validate(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct in_syslog_cfg *c = obj;
    bool tls = false;
    if (c->tag && !c->tag[0])
        return lh_cfg_error(d, line, col, "syslog input: tag must not be empty");
    if (c->listen.n == 0)
        return lh_cfg_error(d, line, col, "syslog input: listen needs at least one URL");
    for (size_t i = 0; i < c->listen.n; i++)
        tls |= has_scheme(c->listen.v[i], "tls://");
    if (c->group && !c->group[0])
        return lh_cfg_error(d, line, col, "syslog input: group must not be empty");
    /* One connection holds a message of max_message + 1 bytes and what
     * libevent read (a TLS record past the high water at most). */
    if (c->max_memory < c->max_message + 4 * SL_READ_HIGH_WATER)
        return lh_cfg_error(d, line, col, "syslog input: max_memory (%lld bytes) cannot hold one "
                            "connection's largest message: it must be at least max_message + "
                            "%u KiB (%lld bytes)", (long long)c->max_memory,
                            4 * SL_READ_HIGH_WATER / 1024,
                            (long long)(c->max_message + 4 * SL_READ_HIGH_WATER));
    if (tls && (!lh_tls_on(&c->tls) || !c->tls.cert || !c->tls.key))
        return lh_cfg_error(d, line, col,
                            "syslog input: tls:// listeners need tls: {cert: ..., key: ...}");
    return 0;
}

const struct lh_cfg_schema lh_in_syslog_schema = {
    .name = "syslog input",
    .size = sizeof(struct in_syslog_cfg),
    .fields = fields,
    .validate = validate,
};

/* ---- messages → records ------------------------------------------------- */

static int set_str(struct lh_recbuilder *rb, const char *k, const struct lh_syslog_str *s)
{
    return s->p ? lh_rb_set_str(rb, k, strlen(k), s->p, s->n) : LH_OK;
}

/* sd as a map of maps, values unescaped through the scratch buffer. */
static int pack_sd(struct in_syslog *in)
{
    const struct lh_syslog_msg *m = &in->msg;
    struct lh_recbuilder *rb = &in->rb;
    size_t off = lh_rb_raw_begin(rb);
    int rc = msgpack_pack_map(&rb->spk, m->n_sd);
    for (size_t i = 0; i < m->n_sd && rc == 0; i++) {
        const struct lh_syslog_sd *e = &m->sd[i];
        rc = msgpack_pack_str_with_body(&rb->spk, e->id.p, e->id.n);
        rc = rc ? rc : msgpack_pack_map(&rb->spk, e->n);
        for (size_t j = e->first; j < e->first + e->n && rc == 0; j++) {
            const struct lh_syslog_param *pa = &m->params[j];
            size_t n = lh_syslog_unescape(pa->value.p, pa->value.n, in->scratch);
            rc = msgpack_pack_str_with_body(&rb->spk, pa->name.p, pa->name.n);
            rc = rc ? rc : msgpack_pack_str_with_body(&rb->spk, in->scratch, n);
        }
    }
    return rc ? LH_ENOMEM : lh_rb_set_raw(rb, "sd", 2, off);
}

static int parsed_fields(struct in_syslog *in)
{
    const struct lh_syslog_msg *m = &in->msg;
    struct lh_recbuilder *rb = &in->rb;
    const char *fac = lh_syslog_facility_name(m->facility);
    const char *sev = lh_syslog_severity_name(m->severity);
    /* message is always present, empty for a message without MSG. */
    int rc = lh_rb_set_str(rb, "message", 7, m->message.p ? m->message.p : "", m->message.n);
    rc = rc ? rc : lh_rb_set_str(rb, "host", 4, in->ctx.host, in->host_len);
    rc = rc ? rc : lh_rb_set_str(rb, "facility", 8, fac, strlen(fac));
    rc = rc ? rc : lh_rb_set_str(rb, "severity", 8, sev, strlen(sev));
    rc = rc ? rc : set_str(rb, "hostname", &m->hostname);
    rc = rc ? rc : set_str(rb, "appname", &m->appname);
    rc = rc ? rc : set_str(rb, "procid", &m->procid);
    rc = rc ? rc : set_str(rb, "msgid", &m->msgid);
    if (rc == 0 && m->n_sd)
        rc = pack_sd(in);
    return rc;
}

static int build(struct in_syslog *in, const char *p, size_t n, bool truncated, const char *peer,
                 int64_t *ns)
{
    struct lh_recbuilder *rb = &in->rb;
    int rc;
    lh_rb_reset(rb);
    if (lh_syslog_parse(p, n, (enum lh_syslog_format)in->cfg->format, *ns, &in->msg) == 0) {
        rc = parsed_fields(in);
        if (in->msg.has_time)
            *ns = in->msg.ns;
    } else {
        lh_metric_add(in->m_parse_errors, 1);
        rc = lh_rb_set_str(rb, "message", 7, p, n);
        rc = rc ? rc : lh_rb_set_str(rb, "host", 4, in->ctx.host, in->host_len);
    }
    if (rc == 0 && peer)
        rc = lh_rb_set_str(rb, "remote_addr", 11, peer, strlen(peer));
    if (rc == 0 && truncated) {
        struct lh_rb_val v = {.kind = LH_RBV_BOOL, .num.b = true};
        lh_metric_add(in->m_truncated, 1);
        rc = lh_rb_set(rb, "truncated", 9, &v);
    }
    return rc;
}

void sl_emit(struct in_syslog *in, const char *p, size_t n, bool truncated, const char *peer)
{
    int64_t ns = lh_now_ns();
    lh_metric_add(in->m_received, 1);
    lh_route_bytes(in->route, n);
    if (build(in, p, n, truncated, peer, &ns) != 0) {
        LH_ERROR(SYSLOG_LOG, "[%s] out of memory building a record", in->cfg->tag);
        return;
    }
    if (!lh_filter_chain_keep(&in->filters, &in->rb)) {
        lh_metric_add(in->m_filtered, 1);
        return;
    }
    lh_route_emit(in->route, NULL, 0, ns, lh_rb_pack, &in->rb);
}

/* ---- hooks -------------------------------------------------------------- */

static int make_metrics(struct in_syslog *in)
{
    struct lh_metrics *m = in->ctx.metrics;
    char labels[300];
    snprintf(labels, sizeof labels, "input=\"%s\"", in->cfg->tag);
    in->m_received = lh_metrics_get(m, LH_METRIC_COUNTER, "loghaul_agent_syslog_messages_total",
                                    labels, "Syslog messages received");
    in->m_parse_errors =
        lh_metrics_get(m, LH_METRIC_COUNTER, "loghaul_agent_parse_errors_total", labels,
                       "Lines the input's parser could not parse (kept raw)");
    in->m_truncated =
        lh_metrics_get(m, LH_METRIC_COUNTER, "loghaul_agent_syslog_truncated_total", labels,
                       "Syslog messages cut at max_message");
    in->m_udp_drops = lh_metrics_get(m, LH_METRIC_COUNTER, "loghaul_agent_syslog_udp_drops_total",
                                     labels, "Datagrams the kernel dropped on the input's sockets");
    in->m_filtered = lh_metrics_get(m, LH_METRIC_COUNTER, "loghaul_agent_records_filtered_total",
                                    labels, "Records a grep filter dropped on purpose");
    in->mem.m_bytes = lh_metrics_get(m, LH_METRIC_GAUGE, "loghaul_agent_syslog_memory_bytes",
                                     labels, "Bytes the stream connections hold against max_memory");
    in->mem.m_pauses =
        lh_metrics_get(m, LH_METRIC_COUNTER, "loghaul_agent_syslog_read_pauses_total", labels,
                       "Times a stream connection stopped reading because max_memory was full");
    in->mem.m_closes =
        lh_metrics_get(m, LH_METRIC_COUNTER, "loghaul_agent_syslog_memory_closes_total", labels,
                       "Connections closed as the largest holder when max_memory stayed full");
    return in->m_received && in->m_parse_errors && in->m_truncated && in->m_udp_drops &&
                   in->m_filtered && in->mem.m_bytes && in->mem.m_pauses && in->mem.m_closes
               ? LH_OK
               : LH_ENOMEM;
}

static int make_tls(struct in_syslog *in, char *err, size_t errlen)
{
    char why[256];
    bool any = false;
    for (size_t i = 0; i < in->cfg->listen.n; i++)
        any |= has_scheme(in->cfg->listen.v[i], "tls://");
    if (!any)
        return LH_OK;
    in->ssl_ctx = lh_tls_server_ctx(&in->cfg->tls, why, sizeof why);
    if (!in->ssl_ctx) {
        snprintf(err, errlen, "syslog input '%s': tls: %s", in->cfg->tag, why);
        return LH_ETLS;
    }
    return LH_OK;
}

static void on_drops_tick(evutil_socket_t fd, short what, void *arg)
{
    sl_read_kernel_drops(arg);
}

static int in_syslog_create(const struct lh_cfg_item *item, const struct lh_agent_ctx *ctx,
                            void **state, char *err, size_t errlen)
{
    struct in_syslog *in = calloc(1, sizeof *in);
    if (!in)
        return LH_ENOMEM;
    *state = in;
    in->cfg = (const struct in_syslog_cfg *)item;
    in->ctx = *ctx;
    in->host_len = strlen(ctx->host);
    lh_rb_init(&in->rb);
    int rc = make_metrics(in);
    rc = rc ? rc : lh_filter_chain_init(&in->filters, in->cfg->tag, in->ctx.filters, err,
                                        errlen);
    rc = rc ? rc : make_tls(in, err, errlen);
    if (rc == 0 && !(in->scratch = malloc((size_t)in->cfg->max_message)))
        rc = LH_ENOMEM;
    if (rc == 0 && !(in->drops_tick = event_new(ctx->base, -1, EV_PERSIST, on_drops_tick, in)))
        rc = LH_ENOMEM;
    rc = rc ? rc : sl_budget_init(in);
    rc = rc ? rc : lh_pipeline_route(ctx->pl, in->cfg->tag, &in->route);
    for (size_t i = 0; rc == 0 && i < in->cfg->listen.n; i++)
        rc = sl_listener_open(in, in->cfg->listen.v[i], err, errlen);
    if (rc != 0 && !err[0])
        snprintf(err, errlen, "syslog input '%s': %s", in->cfg->tag, lh_strerror(rc));
    return rc;
}

static int in_syslog_start(void *state)
{
    struct in_syslog *in = state;
    struct timeval sec = {1, 0};
    if (event_add(in->drops_tick, &sec) != 0)
        return LH_ENOMEM;
    return sl_listeners_start(in);
}

static void in_syslog_pause(void *state)
{
    struct in_syslog *in = state;
    in->paused = true;
    sl_listeners_pause(in, true);
}

static void in_syslog_resume(void *state)
{
    struct in_syslog *in = state;
    in->paused = false;
    if (!in->stopped)
        sl_listeners_pause(in, false);
}

static void in_syslog_stop(void *state)
{
    struct in_syslog *in = state;
    in->stopped = true;
    event_del(in->drops_tick);
    sl_listeners_stop(in);
}

static void in_syslog_destroy(void *state)
{
    struct in_syslog *in = state;
    if (!in)
        return;
    sl_listeners_free(in);
    sl_budget_free(in);
    lh_filter_chain_free(&in->filters);
    if (in->drops_tick)
        event_free(in->drops_tick);
    SSL_CTX_free(in->ssl_ctx);
    free(in->scratch);
    lh_rb_free(&in->rb);
    free(in);
}

/* One entry per listener in /status `files` (the inputs' list). */
static void in_syslog_status(void *state, json_t *files)
{
    struct in_syslog *in = state;
    for (const struct sl_listener *l = in->listeners; l; l = l->next)
        json_array_append_new(
            files, json_pack("{sssssssIsIsI}", "input", in->cfg->tag, "listen", l->url, "bound",
                             l->bound, "received", (json_int_t)l->received, "connections",
                             (json_int_t)sl_listener_conns(l), "kernel_drops",
                             (json_int_t)l->kernel_drops));
}

const struct lh_input_ops lh_in_syslog_ops = {
    .type = "syslog",
    .schema = &lh_in_syslog_schema,
    .create = in_syslog_create,
    .start = in_syslog_start,
    .pause = in_syslog_pause,
    .resume = in_syslog_resume,
    .stop = in_syslog_stop,
    .destroy = in_syslog_destroy,
    .status = in_syslog_status,
};
