/* The `forward` output: PackedForward batches over plain TCP or TLS to one of
 * several collectors, each batch kept (same bytes, same chunk id) until its
 * {"ack": id} arrives; timeouts and broken connections resend after backoff.
 *
 * One connection at a time. round_robin: each new connection goes to the
 * next collector; failover: always start from the first, move on only when
 * it fails. After every collector failed once, wait 1 s doubling to 60 s
 * (with jitter) before the next round. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>

#include "agent/pipeline.h"
#include "common/err.h"
#include "common/log.h"
#include "common/net.h"
#include "common/record.h"
#include "common/tls.h"
#include "common/util.h"

#define FWD_LOG "out_forward"
/* Replies are acks and handshake frames: a few hundred bytes. */
#define MAX_REPLY (64u * 1024)
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
/* A connection that stays up this long counts as healthy again. */
#define HEALTHY_MS 10000

enum { BALANCE_ROUND_ROBIN, BALANCE_FAILOVER };
enum { COMPRESS_NONE, COMPRESS_GZIP };
static const char *const balance_values[] = {"round_robin", "failover", NULL};
static const char *const compress_values[] = {"none", "gzip", NULL};

struct fwd_batch_cfg {
    int64_t max_records;
    int64_t max_bytes;
    int64_t max_wait_ms;
};

struct fwd_cfg {
    struct lh_output_cfg base;
    struct lh_strlist collectors;
    int balance;
    struct lh_tls_cfg tls;
    char *shared_key;
    char *hostname;
    struct fwd_batch_cfg batch;
    int compress;
    int64_t ack_timeout_ms;
    int64_t max_in_flight;
};

static const struct lh_cfg_field batch_fields[] = {
    {.key = "max_records", .type = LH_CFG_INT,
     .offset = offsetof(struct fwd_batch_cfg, max_records), .defval = "8192", .min = 1,
     .max = 1000000, .help = "records per batch"},
    {.key = "max_bytes", .type = LH_CFG_SIZE, .offset = offsetof(struct fwd_batch_cfg, max_bytes),
     .defval = "2MiB", .min = 1024, .max = 64 << 20, .help = "record bytes per batch"},
    {.key = "max_wait", .type = LH_CFG_DURATION,
     .offset = offsetof(struct fwd_batch_cfg, max_wait_ms), .defval = "1s", .min = 1,
     .max = 3600000, .help = "how long a batch stays open"},
    {0},
};

static const struct lh_cfg_schema batch_schema = {
    .name = "forward batch",
    .size = sizeof(struct fwd_batch_cfg),
    .fields = batch_fields,
};

static const struct lh_cfg_field fields[] = {
    {.key = "match", .type = LH_CFG_STR, .offset = offsetof(struct fwd_cfg, base.match),
     .defval = "*", .help = "fnmatch(3) glob on the tag"},
    {.key = "collectors", .type = LH_CFG_STRLIST, .offset = offsetof(struct fwd_cfg, collectors),
     .flags = LH_CFG_F_REQUIRED, .help = "host:port of each collector"},
    {.key = "balance", .type = LH_CFG_ENUM, .offset = offsetof(struct fwd_cfg, balance),
     .defval = "round_robin", .enum_values = balance_values, .help = "round_robin | failover"},
    {.key = "tls", .type = LH_CFG_SECTION, .offset = offsetof(struct fwd_cfg, tls),
     .sub = &lh_tls_cfg_schema, .help = "TLS to the collectors"},
    {.key = "shared_key", .type = LH_CFG_STR, .offset = offsetof(struct fwd_cfg, shared_key),
     .help = "Forward shared-key handshake"},
    {.key = "hostname", .type = LH_CFG_STR, .offset = offsetof(struct fwd_cfg, hostname),
     .help = "host name sent in the handshake (default: agent.name)"},
    {.key = "batch", .type = LH_CFG_SECTION, .offset = offsetof(struct fwd_cfg, batch),
     .sub = &batch_schema, .help = "when a batch is sent"},
    {.key = "compress", .type = LH_CFG_ENUM, .offset = offsetof(struct fwd_cfg, compress),
     .defval = "none", .enum_values = compress_values, .help = "gzip | none"},
    {.key = "ack_timeout", .type = LH_CFG_DURATION,
     .offset = offsetof(struct fwd_cfg, ack_timeout_ms), .defval = "30s", .min = 100,
     .max = 3600000, .help = "a batch not acknowledged in time is resent on a new connection"},
    {.key = "max_in_flight", .type = LH_CFG_INT,
     .offset = offsetof(struct fwd_cfg, max_in_flight), .defval = "4", .min = 1, .max = 1024,
     .help = "unacknowledged batches per connection"},
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
    return 0;
}

const struct lh_cfg_schema lh_out_forward_schema = {
    .name = "forward output",
    .size = sizeof(struct fwd_cfg),
    .fields = fields,
    .validate = validate,
};

enum conn_state { ST_IDLE, ST_CONNECTING, ST_HELO, ST_PONG, ST_READY };
static const char *const state_names[] = {"disconnected", "connecting", "handshake",
                                          "handshake", "connected"};

struct queue {
    struct lh_batch *head, *tail;
    size_t n;
};

struct fwd {
    const struct fwd_cfg *cfg;
    struct lh_output *out;
    struct event_base *base;
    struct evdns_base *dns;
    const char *hostname;
    SSL_CTX *ssl_ctx;
    struct bufferevent *bev;
    enum conn_state st;
    int64_t st_since_ms;
    size_t cur;                 /* collector of the current/next connection */
    size_t failed_in_round;     /* collectors failed since the last success */
    unsigned rounds;            /* failed rounds in a row: the backoff exponent */
    char host[256];
    int port;
    struct queue pending;       /* sealed, not sent on this connection */
    struct queue inflight;      /* sent, waiting for the ack */
    struct lh_mp_scan scan;
    struct lh_fwd_helo helo;
    struct lh_fwd_ping ping;
    struct event *retry;
    struct event *tick;
    struct lh_metric *retries, *connections, *batches_in_flight;
};

/* ---- queues ------------------------------------------------------------- */

static void q_push(struct queue *q, struct lh_batch *b)
{
    b->next = NULL;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->n++;
}

static struct lh_batch *q_pop(struct queue *q)
{
    struct lh_batch *b = q->head;
    if (b) {
        q->head = b->next;
        if (!q->head)
            q->tail = NULL;
        q->n--;
        b->next = NULL;
    }
    return b;
}

static struct lh_batch *q_take_chunk(struct queue *q, const char *id, size_t len)
{
    struct lh_batch *prev = NULL;
    for (struct lh_batch *b = q->head; b; prev = b, b = b->next) {
        if (len != strlen(b->chunk) || memcmp(b->chunk, id, len) != 0)
            continue;
        if (prev)
            prev->next = b->next;
        else
            q->head = b->next;
        if (q->tail == b)
            q->tail = prev;
        q->n--;
        b->next = NULL;
        return b;
    }
    return NULL;
}

/* Unacked batches go back in front of the pending ones, oldest first. */
static void q_requeue(struct queue *inflight, struct queue *pending)
{
    if (!inflight->head)
        return;
    inflight->tail->next = pending->head;
    if (!pending->tail)
        pending->tail = inflight->tail;
    pending->head = inflight->head;
    pending->n += inflight->n;
    *inflight = (struct queue){0};
}

static void q_free(struct queue *q)
{
    struct lh_batch *b;
    while ((b = q_pop(q)))
        lh_batch_free(b);
}

/* ---- connection life ---------------------------------------------------- */

static void set_state(struct fwd *f, enum conn_state st)
{
    f->st = st;
    f->st_since_ms = lh_mono_ms();
}

static int64_t backoff_ms(unsigned rounds)
{
    int64_t d = BACKOFF_MIN_MS;
    for (unsigned i = 1; i < rounds && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    /* Jitter in [d/2, d] keeps a fleet of agents from reconnecting in step. */
    uint32_t r = 0;
    RAND_bytes((unsigned char *)&r, sizeof r);
    return d / 2 + (int64_t)(r % (uint32_t)(d / 2 + 1));
}

static void schedule_connect(struct fwd *f, int64_t delay_ms)
{
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    evtimer_add(f->retry, &tv);
}

static void drop_connection(struct fwd *f)
{
    if (f->bev) {
        bufferevent_free(f->bev);
        f->bev = NULL;
    }
    lh_metric_add(f->batches_in_flight, -(int64_t)f->inflight.n);
    q_requeue(&f->inflight, &f->pending);
    set_state(f, ST_IDLE);
}

/* The current collector failed (already logged): next one now, or back
 * off after a round. */
static void conn_failed_logged(struct fwd *f)
{
    drop_connection(f);
    f->cur = (f->cur + 1) % f->cfg->collectors.n;
    if (++f->failed_in_round < f->cfg->collectors.n) {
        schedule_connect(f, 0);
        return;
    }
    f->failed_in_round = 0;
    f->rounds++;
    if (f->cfg->balance == BALANCE_FAILOVER)
        f->cur = 0;
    int64_t d = backoff_ms(f->rounds);
    LH_INFO(FWD_LOG, "every collector failed; retrying in %lld ms", (long long)d);
    schedule_connect(f, d);
}

static void conn_failed(struct fwd *f, const char *why)
{
    LH_WARN(FWD_LOG, "collector %s:%d: %s", f->host, f->port, why);
    conn_failed_logged(f);
}

static void send_pending(struct fwd *f);

static void conn_ready(struct fwd *f)
{
    set_state(f, ST_READY);
    LH_INFO(FWD_LOG, "connected to collector %s:%d%s", f->host, f->port,
            f->ssl_ctx ? " (TLS)" : "");
    send_pending(f);
}

/* Why a connection failed, from what libevent kept: OpenSSL's queue for TLS
 * faults (libevent stores a bare SSL_get_error() code, library 0, for
 * failures that were really the socket's), the resolver, or errno. */
static void conn_error_string(struct bufferevent *bev, short what, bool connecting, char *buf,
                              size_t len)
{
    int sock_err = EVUTIL_SOCKET_ERROR();
    unsigned long e, tls = 0;
    while ((e = bufferevent_get_openssl_error(bev)) != 0)
        if (ERR_GET_LIB(e) != 0 && !tls)
            tls = e;
    int dns = bufferevent_socket_get_dns_error(bev);
    if (tls) {
        char ssl[256];
        ERR_error_string_n(tls, ssl, sizeof ssl);
        snprintf(buf, len, "TLS: %s", ssl);
    } else if (dns) {
        snprintf(buf, len, "resolving: %s", evutil_gai_strerror(dns));
    } else if ((what & BEV_EVENT_EOF) && connecting) {
        snprintf(buf, len, "cannot connect (refused, or closed during the TLS handshake: "
                           "check the certificates on both sides)");
    } else if (what & BEV_EVENT_EOF) {
        snprintf(buf, len, "connection closed by the collector");
    } else if (sock_err) {
        snprintf(buf, len, "%s", evutil_socket_error_to_string(sock_err));
    } else {
        snprintf(buf, len, "connection failed");
    }
}

/* ---- frames from the collector ------------------------------------------ */

static void write_packed(struct fwd *f, msgpack_sbuffer *sb)
{
    bufferevent_write(f->bev, sb->data, sb->size);
    msgpack_sbuffer_destroy(sb);
}

static int on_helo(struct fwd *f, const msgpack_object *o)
{
    if (lh_fwd_parse_helo(o, &f->helo) != 0) {
        conn_failed(f, "expected HELO for the shared-key handshake");
        return LH_EPROTO;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (lh_fwd_pack_ping(&pk, &f->helo, f->hostname, f->cfg->shared_key, NULL, NULL, &f->ping) !=
        0) {
        msgpack_sbuffer_destroy(&sb);
        conn_failed(f, "cannot build PING");
        return LH_ENOMEM;
    }
    write_packed(f, &sb);
    set_state(f, ST_PONG);
    return LH_OK;
}

static int on_pong(struct fwd *f, const msgpack_object *o)
{
    char reason[256] = "", msg[400];
    int rc = lh_fwd_check_pong(o, &f->helo, &f->ping, f->cfg->shared_key, reason, sizeof reason);
    if (rc == 0) {
        conn_ready(f);
        return LH_OK;
    }
    if (rc == LH_EAUTH)
        snprintf(msg, sizeof msg,
                 "shared-key handshake failed: %s (check shared_key on both sides)", reason);
    else
        snprintf(msg, sizeof msg, "malformed PONG in the shared-key handshake");
    LH_ERROR(FWD_LOG, "collector %s:%d: %s", f->host, f->port, msg);
    conn_failed_logged(f);
    return rc;
}

static int on_ack(struct fwd *f, const msgpack_object *o)
{
    const char *id;
    size_t len;
    if (o->type == MSGPACK_OBJECT_NIL)
        return LH_OK; /* heartbeat */
    if (lh_fwd_parse_ack(o, &id, &len) != 0) {
        struct lh_fwd_helo h;
        conn_failed(f, lh_fwd_parse_helo(o, &h) == 0
                           ? "collector wants a shared-key handshake: set shared_key"
                           : "unexpected reply (not an ack)");
        return LH_EPROTO;
    }
    struct lh_batch *b = q_take_chunk(&f->inflight, id, len);
    if (!b) {
        LH_DEBUG(FWD_LOG, "ack for unknown chunk %.*s", (int)len, id);
        return LH_OK;
    }
    lh_metric_add(f->batches_in_flight, -1);
    f->rounds = 0;
    f->failed_in_round = 0;
    lh_output_acked(f->out, b);
    return LH_OK;
}

static int on_frame(struct fwd *f, const msgpack_object *o)
{
    switch (f->st) {
    case ST_HELO:
        return on_helo(f, o);
    case ST_PONG:
        return on_pong(f, o);
    case ST_READY:
        return on_ack(f, o);
    default:
        return LH_EPROTO;
    }
}

/* One complete frame at the front of in, or LH_AGAIN. The frame is copied
 * out first: handling it may close the connection and free its buffers. */
static int next_frame(struct fwd *f, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in), flen = 0;
    if (len == 0)
        return LH_AGAIN;
    size_t scan_len = len < MAX_REPLY ? len : MAX_REPLY;
    const uint8_t *data = evbuffer_pullup(in, (ev_ssize_t)scan_len);
    int rc = data ? lh_mp_scan(&f->scan, data, scan_len, MAX_REPLY, &flen) : LH_ENOMEM;
    if (rc == LH_AGAIN && len >= MAX_REPLY)
        rc = LH_ETOOBIG;
    if (rc == LH_AGAIN)
        return rc;
    char *frame = rc == 0 ? malloc(flen) : NULL;
    if (!frame) {
        conn_failed(f, rc == 0 ? "out of memory" : "malformed reply from the collector");
        return rc == 0 ? LH_ENOMEM : rc;
    }
    memcpy(frame, data, flen);
    evbuffer_drain(in, flen);
    lh_mp_scan_init(&f->scan);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, frame, flen, &off) == MSGPACK_UNPACK_SUCCESS) {
        rc = on_frame(f, &u.data);
    } else {
        conn_failed(f, "undecodable reply from the collector");
        rc = LH_EPROTO;
    }
    msgpack_unpacked_destroy(&u);
    free(frame);
    return rc;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct fwd *f = arg;
    while (f->bev == bev && next_frame(f, bufferevent_get_input(bev)) == 0)
        ;
    if (f->st == ST_READY)
        send_pending(f);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct fwd *f = arg;
    if (what & BEV_EVENT_CONNECTED) {
        evutil_socket_t fd = bufferevent_getfd(bev);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        lh_metric_add(f->connections, 1);
        lh_mp_scan_init(&f->scan);
        if (f->cfg->shared_key)
            set_state(f, ST_HELO);
        else
            conn_ready(f);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        char why[300];
        conn_error_string(bev, what, f->st == ST_CONNECTING, why, sizeof why);
        conn_failed(f, why);
    }
}

static void connect_current(struct fwd *f)
{
    const char *target = f->cfg->collectors.v[f->cur];
    lh_split_hostport(target, f->host, sizeof f->host, &f->port);
    SSL *ssl = NULL;
    if (f->ssl_ctx) {
        const char *name = f->cfg->tls.server_name ? f->cfg->tls.server_name : f->host;
        ssl = lh_tls_client_ssl(f->ssl_ctx, name);
        if (!ssl) {
            conn_failed(f, "cannot create a TLS session");
            return;
        }
    }
    set_state(f, ST_CONNECTING);
    f->bev = lh_net_connect_bev(f->base, f->dns, f->host, f->port, ssl);
    if (!f->bev) {
        conn_failed(f, "cannot start connecting");
        return;
    }
    bufferevent_setcb(f->bev, on_read, NULL, on_event, f);
    bufferevent_enable(f->bev, EV_READ | EV_WRITE);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct fwd *f = arg;
    if (f->st == ST_IDLE)
        connect_current(f);
}

/* ---- sending ------------------------------------------------------------ */

/* The frame is built once; the entries are then freed (the frame is what a
 * resend sends). */
static int encode(struct fwd *f, struct lh_batch *b)
{
    if (b->wire.size)
        return LH_OK;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b->wire, msgpack_sbuffer_write);
    int rc = lh_fwd_pack_packed(&pk, b->tag, b->tag_len, b->entries.data, b->entries.size,
                                b->n_records, b->chunk, strlen(b->chunk),
                                f->cfg->compress == COMPRESS_GZIP);
    if (rc != 0) {
        msgpack_sbuffer_clear(&b->wire);
        return rc;
    }
    msgpack_sbuffer_destroy(&b->entries);
    msgpack_sbuffer_init(&b->entries);
    return LH_OK;
}

static void send_pending(struct fwd *f)
{
    while (f->st == ST_READY && f->pending.head &&
           (int64_t)f->inflight.n < f->cfg->max_in_flight) {
        struct lh_batch *b = f->pending.head;
        int rc = encode(f, b);
        if (rc != 0) {
            LH_ERROR(FWD_LOG, "encoding a batch: %s (retrying)", lh_strerror(rc));
            return;
        }
        q_pop(&f->pending);
        if (bufferevent_write(f->bev, b->wire.data, b->wire.size) != 0) {
            q_push(&f->inflight, b);
            lh_metric_add(f->batches_in_flight, 1);
            conn_failed(f, "write failed");
            return;
        }
        if (b->attempts++ > 0)
            lh_metric_add(f->retries, 1);
        b->sent_ms = lh_mono_ms();
        q_push(&f->inflight, b);
        lh_metric_add(f->batches_in_flight, 1);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct fwd *f = arg;
    int64_t now = lh_mono_ms();
    char why[128];
    if (f->st == ST_READY && f->inflight.head &&
        now - f->inflight.head->sent_ms > f->cfg->ack_timeout_ms) {
        snprintf(why, sizeof why, "no ack for chunk %s within %lld ms", f->inflight.head->chunk,
                 (long long)f->cfg->ack_timeout_ms);
        conn_failed(f, why);
    } else if (f->st != ST_IDLE && f->st != ST_READY &&
               now - f->st_since_ms > f->cfg->ack_timeout_ms) {
        snprintf(why, sizeof why, "%s timed out", state_names[f->st]);
        conn_failed(f, why);
    } else if (f->st == ST_READY) {
        if (now - f->st_since_ms > HEALTHY_MS)
            f->rounds = 0;
        send_pending(f);
    }
}

/* ---- hooks -------------------------------------------------------------- */

static int fwd_create(const struct lh_cfg_item *item, const struct lh_agent_ctx *ctx,
                      struct lh_output *out, struct lh_batch_limits *limits, void **state,
                      char *err, size_t errlen)
{
    struct fwd *f = calloc(1, sizeof *f);
    if (!f)
        return LH_ENOMEM;
    *state = f;
    f->cfg = (const struct fwd_cfg *)item;
    f->out = out;
    f->base = ctx->base;
    f->dns = ctx->dns;
    f->hostname = f->cfg->hostname ? f->cfg->hostname : ctx->host;
    *limits = (struct lh_batch_limits){f->cfg->batch.max_records, f->cfg->batch.max_bytes,
                                       f->cfg->batch.max_wait_ms, f->cfg->max_in_flight};
    if (lh_tls_on(&f->cfg->tls)) {
        char why[512] = "";
        f->ssl_ctx = lh_tls_client_ctx(&f->cfg->tls, why, sizeof why);
        if (!f->ssl_ctx) {
            snprintf(err, errlen, "forward output (line %d): TLS: %s", item->line, why);
            return LH_ETLS;
        }
    }
    f->retry = evtimer_new(ctx->base, on_retry, f);
    f->tick = event_new(ctx->base, -1, EV_PERSIST, on_tick, f);
    f->retries = lh_metrics_get(ctx->metrics, LH_METRIC_COUNTER, "loghaul_agent_retries_total",
                                NULL, "Batches sent again after a timeout or a lost connection");
    f->connections = lh_metrics_get(ctx->metrics, LH_METRIC_COUNTER,
                                    "loghaul_agent_connections_total", NULL,
                                    "Connections established to collectors");
    f->batches_in_flight = lh_metrics_get(ctx->metrics, LH_METRIC_GAUGE,
                                          "loghaul_agent_batches_in_flight", NULL,
                                          "Batches sent and not yet acknowledged");
    if (!f->retry || !f->tick) {
        snprintf(err, errlen, "forward output: out of memory");
        return LH_ENOMEM;
    }
    return LH_OK;
}

static int fwd_start(void *state)
{
    struct fwd *f = state;
    struct timeval sec = {1, 0};
    if (event_add(f->tick, &sec) != 0)
        return LH_ENOMEM;
    schedule_connect(f, 0);
    return LH_OK;
}

static void fwd_submit(void *state, struct lh_batch *b)
{
    struct fwd *f = state;
    q_push(&f->pending, b);
    send_pending(f);
}

static void fwd_destroy(void *state)
{
    struct fwd *f = state;
    if (!f)
        return;
    if (f->bev)
        bufferevent_free(f->bev);
    lh_metric_add(f->batches_in_flight, -(int64_t)f->inflight.n);
    q_free(&f->inflight);
    q_free(&f->pending);
    if (f->retry)
        event_free(f->retry);
    if (f->tick)
        event_free(f->tick);
    SSL_CTX_free(f->ssl_ctx);
    free(f);
}

static void fwd_status(void *state, json_t *outputs)
{
    struct fwd *f = state;
    char collector[300];
    snprintf(collector, sizeof collector, "%s:%d", f->host, f->port);
    json_array_append_new(outputs,
                          json_pack("{sssssssisi}", "type", "forward", "collector",
                                    f->st == ST_IDLE && !f->port ? "" : collector, "state",
                                    state_names[f->st], "in_flight", (int)f->inflight.n,
                                    "pending", (int)f->pending.n));
}

const struct lh_output_ops lh_out_forward_ops = {
    .type = "forward",
    .schema = &lh_out_forward_schema,
    .create = fwd_create,
    .start = fwd_start,
    .submit = fwd_submit,
    .destroy = fwd_destroy,
    .status = fwd_status,
};
