/* The Forward client (common/net/fwd_client.h): connect, handshake,
 * replies, the window of unacknowledged chunks, timeouts and backoff. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include "common/base/err.h"
#include "common/base/log.h"
#include "common/base/util.h"
#include "common/net/fwd_client.h"
#include "common/net/net.h"
#include "common/net/tls.h"

/* Replies are acks and handshake frames: a few hundred bytes. */
#define MAX_REPLY (64u * 1024)
/* An ack is ~40 bytes: copied out on the stack, not malloc'd. */
#define SMALL_REPLY 512
/* libevent moves 16 KiB per callback by default: a syscall (and a loop
 * turn) per TLS record for megabyte frames. */
#define MAX_SINGLE_WRITE (1024 * 1024)
#define TICK_MIN_MS 10
#define TICK_MAX_MS 1000

struct slot {
    char id[LH_CHUNK_ID_LEN];
    void *item;
    int64_t sent_ms;
};

struct endpoint {
    char *host;
    char *tls_name;
    int port;
    char peer[300];             /* host:port, for logs and status */
};

struct lh_fwd_client {
    struct lh_fwd_client_cfg cfg; /* its strings point at the copies below */
    char *shared_key, *hostname, *log_name, *peer_kind;
    struct endpoint *eps;
    size_t n_eps, cur;          /* the endpoint in use or tried next */
    struct bufferevent *bev;
    unsigned gen;               /* bumped when a connection is dropped */
    enum lh_fwd_client_state st;
    int64_t st_since_ms;
    unsigned fails;             /* in a row, since the last ack */
    bool wanted;                /* kicked: connect once the backoff is over */
    bool closing;
    struct slot *win;           /* the window, oldest first */
    size_t n_win;
    void **handback;            /* max_in_flight items for fail */
    struct event *retry, *tick;
    struct lh_mp_scan scan;
    struct lh_fwd_helo helo;
    struct lh_fwd_ping ping;
};

static const char *const state_names[] = {"disconnected", "connecting", "handshake",
                                          "handshake", "connected"};

const char *lh_fwd_client_state_name(enum lh_fwd_client_state st)
{
    return state_names[st];
}

int64_t lh_fwd_client_backoff_ms(unsigned fails, size_t n_endpoints, int64_t max_ms)
{
    if (fails < n_endpoints)
        return 0; /* the next endpoint, at once */
    int64_t d = LH_FWD_CLIENT_BACKOFF_MIN_MS;
    for (size_t i = n_endpoints; i < fails && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    /* Jitter in [d/2, d] keeps a fleet of agents from reconnecting in step. */
    uint32_t r = 0;
    RAND_bytes((unsigned char *)&r, sizeof r);
    return d / 2 + (int64_t)(r % (uint32_t)(d / 2 + 1));
}

/* ---- failing ------------------------------------------------------------ */

static void set_state(struct lh_fwd_client *c, enum lh_fwd_client_state st)
{
    c->st = st;
    c->st_since_ms = lh_mono_ms();
}

static void schedule(struct lh_fwd_client *c, int64_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->retry, &tv);
}

static void drop_conn(struct lh_fwd_client *c)
{
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    c->gen++;
}

static void hand_back(struct lh_fwd_client *c, const char *why)
{
    size_t n = c->n_win;
    for (size_t i = 0; i < n; i++)
        c->handback[i] = c->win[i].item;
    c->n_win = 0;
    c->cfg.cbs->fail(c->cfg.ud, c, c->handback, n, why);
}

/* The connection failed (already logged): bench the endpoint, move on to
 * the next, hand the window back. */
static void failed_logged(struct lh_fwd_client *c, const char *why)
{
    drop_conn(c);
    set_state(c, LH_FWD_IDLE);
    int64_t d = lh_fwd_client_backoff_ms(++c->fails, c->n_eps, c->cfg.backoff_max_ms);
    if (d > 0)
        LH_INFO(c->log_name, "%s %s benched for %lld ms", c->peer_kind, c->eps[c->cur].peer,
                (long long)d);
    c->cur = (c->cur + 1) % c->n_eps;
    schedule(c, d);
    hand_back(c, why);
}

static void failed(struct lh_fwd_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void failed(struct lh_fwd_client *c, const char *fmt, ...)
{
    char why[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    LH_WARN(c->log_name, "%s %s: %s", c->peer_kind, c->eps[c->cur].peer, why);
    failed_logged(c, why);
}

static void became_ready(struct lh_fwd_client *c)
{
    set_state(c, LH_FWD_READY);
    LH_INFO(c->log_name, "connected to %s %s%s", c->peer_kind, c->eps[c->cur].peer,
            c->cfg.ssl_ctx ? " (TLS)" : "");
    c->cfg.cbs->ready(c->cfg.ud, c);
}

/* Why a connection failed, from what libevent kept: OpenSSL's queue for TLS
 * faults (libevent stores a bare SSL_get_error() code, library 0, for
 * failures that were really the socket's), the resolver, or errno. */
static void error_string(const struct lh_fwd_client *c, short what, char *buf, size_t len)
{
    int sock_err = EVUTIL_SOCKET_ERROR();
    unsigned long e, tls = 0;
    while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
        if (ERR_GET_LIB(e) != 0 && !tls)
            tls = e;
    int dns = bufferevent_socket_get_dns_error(c->bev);
    if (tls) {
        char ssl[256];
        ERR_error_string_n(tls, ssl, sizeof ssl);
        snprintf(buf, len, "TLS: %s", ssl);
    } else if (dns) {
        snprintf(buf, len, "resolving: %s", evutil_gai_strerror(dns));
    } else if ((what & BEV_EVENT_EOF) && c->st == LH_FWD_CONNECTING) {
        snprintf(buf, len, "cannot connect (refused, or closed during the TLS handshake: "
                           "check the certificates on both sides)");
    } else if (what & BEV_EVENT_EOF) {
        snprintf(buf, len, "connection closed by the %s", c->peer_kind);
    } else if (sock_err) {
        snprintf(buf, len, "%s", evutil_socket_error_to_string(sock_err));
    } else {
        snprintf(buf, len, "connection failed");
    }
}

/* ---- replies ------------------------------------------------------------ */

static int on_helo(struct lh_fwd_client *c, const msgpack_object *o)
{
    if (lh_fwd_parse_helo(o, &c->helo) != 0) {
        failed(c, "expected HELO for the shared-key handshake");
        return LH_EPROTO;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = lh_fwd_pack_ping(&pk, &c->helo, c->hostname, c->shared_key, NULL, NULL, &c->ping);
    if (rc == 0 && bufferevent_write(c->bev, sb.data, sb.size) != 0)
        rc = LH_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) {
        failed(c, "cannot send PING");
        return rc;
    }
    set_state(c, LH_FWD_PONG);
    return LH_OK;
}

static int on_pong(struct lh_fwd_client *c, const msgpack_object *o)
{
    char reason[256] = "", msg[400];
    int rc = lh_fwd_check_pong(o, &c->helo, &c->ping, c->shared_key, reason, sizeof reason);
    if (rc == 0) {
        became_ready(c);
        return LH_OK;
    }
    if (rc == LH_EAUTH)
        snprintf(msg, sizeof msg,
                 "shared-key handshake failed: %s (check shared_key on both sides)", reason);
    else
        snprintf(msg, sizeof msg, "malformed PONG in the shared-key handshake");
    LH_ERROR(c->log_name, "%s %s: %s", c->peer_kind, c->eps[c->cur].peer, msg);
    failed_logged(c, msg);
    return rc;
}

/* The window is small (max_in_flight): a scan, and order kept on removal
 * so the oldest is always first for the ack timeout. */
static bool take_slot(struct lh_fwd_client *c, const char *id, size_t len, void **item)
{
    if (len != LH_CHUNK_ID_LEN)
        return false;
    for (size_t i = 0; i < c->n_win; i++) {
        if (memcmp(c->win[i].id, id, len) != 0)
            continue;
        *item = c->win[i].item;
        memmove(&c->win[i], &c->win[i + 1], (c->n_win - i - 1) * sizeof *c->win);
        c->n_win--;
        return true;
    }
    return false;
}

static int on_ack(struct lh_fwd_client *c, const msgpack_object *o)
{
    const char *id;
    size_t len;
    if (o->type == MSGPACK_OBJECT_NIL)
        return LH_OK; /* heartbeat */
    if (lh_fwd_parse_ack(o, &id, &len) != 0) {
        struct lh_fwd_helo h;
        if (lh_fwd_parse_helo(o, &h) == 0)
            failed(c, "the %s wants a shared-key handshake: set shared_key", c->peer_kind);
        else
            failed(c, "unexpected reply (not an ack)");
        return LH_EPROTO;
    }
    void *item;
    if (!take_slot(c, id, len, &item)) {
        LH_DEBUG(c->log_name, "ack for unknown chunk %.*s", (int)len, id);
        return LH_OK; /* a late ack of a chunk already handed back */
    }
    c->fails = 0;
    c->cfg.cbs->ack(c->cfg.ud, c, item);
    return LH_OK;
}

static int on_reply(struct lh_fwd_client *c, const msgpack_object *o)
{
    switch (c->st) {
    case LH_FWD_HELO:
        return on_helo(c, o);
    case LH_FWD_PONG:
        return on_pong(c, o);
    case LH_FWD_READY:
        return on_ack(c, o);
    default:
        return LH_EPROTO;
    }
}

/* One complete reply at the front of in, or LH_AGAIN. It is copied out
 * first: handling it may close the connection and free its buffers. */
static int next_reply(struct lh_fwd_client *c, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in), flen = 0;
    if (len == 0)
        return LH_AGAIN;
    size_t scan_len = len < MAX_REPLY ? len : MAX_REPLY;
    const uint8_t *data = evbuffer_pullup(in, (ev_ssize_t)scan_len);
    int rc = data ? lh_mp_scan(&c->scan, data, scan_len, MAX_REPLY, &flen) : LH_ENOMEM;
    if (rc == LH_AGAIN && len >= MAX_REPLY)
        rc = LH_ETOOBIG;
    if (rc == LH_AGAIN)
        return rc;
    char small[SMALL_REPLY];
    char *reply = rc != 0 ? NULL : flen <= sizeof small ? small : malloc(flen);
    if (!reply) {
        if (rc == 0)
            failed(c, "out of memory");
        else
            failed(c, "malformed reply from the %s", c->peer_kind);
        return rc == 0 ? LH_ENOMEM : rc;
    }
    memcpy(reply, data, flen);
    evbuffer_drain(in, flen);
    lh_mp_scan_init(&c->scan);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, reply, flen, &off) == MSGPACK_UNPACK_SUCCESS) {
        rc = on_reply(c, &u.data);
    } else {
        failed(c, "undecodable reply from the %s", c->peer_kind);
        rc = LH_EPROTO;
    }
    msgpack_unpacked_destroy(&u);
    if (reply != small)
        free(reply);
    return rc;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct lh_fwd_client *c = arg;
    unsigned gen = c->gen;
    while (c->gen == gen && next_reply(c, bufferevent_get_input(bev)) == 0)
        ;
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct lh_fwd_client *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        bufferevent_set_max_single_write(bev, MAX_SINGLE_WRITE);
        if (c->cfg.connections)
            lh_metric_add(c->cfg.connections, 1);
        lh_mp_scan_init(&c->scan);
        if (c->shared_key)
            set_state(c, LH_FWD_HELO);
        else
            became_ready(c);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        char why[300];
        error_string(c, what, why, sizeof why);
        failed(c, "%s", why);
    }
}

/* ---- connecting --------------------------------------------------------- */

static void do_connect(struct lh_fwd_client *c)
{
    const struct endpoint *e = &c->eps[c->cur];
    c->wanted = false;
    SSL *ssl = NULL;
    if (c->cfg.ssl_ctx && !(ssl = lh_tls_client_ssl(c->cfg.ssl_ctx, e->tls_name))) {
        failed(c, "cannot create a TLS session");
        return;
    }
    set_state(c, LH_FWD_CONNECTING);
    c->bev = lh_net_connect_bev(c->cfg.base, c->cfg.dns, e->host, e->port, ssl);
    if (!c->bev) {
        failed(c, "cannot start connecting");
        return;
    }
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct lh_fwd_client *c = arg;
    if (c->st == LH_FWD_IDLE && (c->cfg.keepalive || c->wanted))
        do_connect(c);
}

/* Ack, connect and handshake timeouts. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct lh_fwd_client *c = arg;
    int64_t now = lh_mono_ms(), lim = c->cfg.ack_timeout_ms;
    if (c->st == LH_FWD_READY && c->n_win && now - c->win[0].sent_ms > lim)
        failed(c, "no ack for chunk %.*s within %lld ms", LH_CHUNK_ID_LEN, c->win[0].id,
               (long long)lim);
    else if (c->st != LH_FWD_IDLE && c->st != LH_FWD_READY && now - c->st_since_ms > lim)
        failed(c, "%s timed out", state_names[c->st]);
}

void lh_fwd_client_start(struct lh_fwd_client *c)
{
    if (c->st != LH_FWD_IDLE)
        return;
    c->wanted = true;
    schedule(c, 0);
}

void lh_fwd_client_kick(struct lh_fwd_client *c)
{
    if (c->closing || c->st != LH_FWD_IDLE)
        return;
    c->wanted = true;
    if (!evtimer_pending(c->retry, NULL))
        do_connect(c);
}

/* ---- sending ------------------------------------------------------------ */

bool lh_fwd_client_ready(const struct lh_fwd_client *c)
{
    return c->st == LH_FWD_READY;
}

bool lh_fwd_client_has_room(const struct lh_fwd_client *c)
{
    return c->st == LH_FWD_READY && c->n_win < c->cfg.max_in_flight;
}

/* The frame is queued (or failed to be, rc): it joins the window either
 * way, so a failure hands it back with the others, newest. */
static int sent(struct lh_fwd_client *c, const char *id, void *item, int rc)
{
    struct slot *s = &c->win[c->n_win++];
    memcpy(s->id, id, LH_CHUNK_ID_LEN);
    s->item = item;
    s->sent_ms = lh_mono_ms();
    if (rc != 0) {
        failed(c, "write failed");
        return LH_EIO;
    }
    return LH_OK;
}

int lh_fwd_client_send(struct lh_fwd_client *c, const char *id, void *item,
                       const struct iovec *iov, size_t n)
{
    if (!lh_fwd_client_has_room(c))
        return LH_EINVAL;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = evbuffer_add_reference(out, iov[i].iov_base, iov[i].iov_len, NULL, NULL);
    return sent(c, id, item, rc);
}

static void free_frame(const void *data, size_t len, void *extra)
{
    free((void *)data);
}

int lh_fwd_client_send_owned(struct lh_fwd_client *c, const char *id, void *item, char *frame,
                             size_t len)
{
    if (!lh_fwd_client_has_room(c)) {
        free(frame);
        return LH_EINVAL;
    }
    int rc = evbuffer_add_reference(bufferevent_get_output(c->bev), frame, len, free_frame, NULL);
    if (rc != 0)
        free(frame);
    return sent(c, id, item, rc);
}

/* ---- set up ------------------------------------------------------------- */

static int dup_str(char **dst, const char *s, const char *dflt)
{
    if (!s)
        s = dflt;
    if (!s)
        return LH_OK;
    *dst = strdup(s);
    return *dst ? LH_OK : LH_ENOMEM;
}

static int copy_endpoints(struct lh_fwd_client *c, const struct lh_fwd_client_cfg *cfg)
{
    c->eps = calloc(cfg->n_endpoints, sizeof *c->eps);
    if (!c->eps)
        return LH_ENOMEM;
    c->n_eps = cfg->n_endpoints;
    int rc = LH_OK;
    for (size_t i = 0; i < c->n_eps && rc == 0; i++) {
        const struct lh_fwd_endpoint *e = &cfg->endpoints[i];
        c->eps[i].port = e->port;
        snprintf(c->eps[i].peer, sizeof c->eps[i].peer, "%s:%d", e->host, e->port);
        rc = dup_str(&c->eps[i].host, e->host, NULL);
        if (rc == 0)
            rc = dup_str(&c->eps[i].tls_name, e->tls_name, e->host);
    }
    return rc;
}

int lh_fwd_client_new(const struct lh_fwd_client_cfg *cfg, struct lh_fwd_client **out)
{
    *out = NULL;
    if (!cfg->base || !cfg->cbs || cfg->n_endpoints == 0 || cfg->max_in_flight == 0 ||
        cfg->ack_timeout_ms <= 0 || cfg->backoff_max_ms < LH_FWD_CLIENT_BACKOFF_MIN_MS)
        return LH_EINVAL;
    struct lh_fwd_client *c = calloc(1, sizeof *c);
    if (!c)
        return LH_ENOMEM;
    c->cfg = *cfg;
    int rc = copy_endpoints(c, cfg);
    if (rc == 0)
        rc = dup_str(&c->shared_key, cfg->shared_key, NULL);
    if (rc == 0)
        rc = dup_str(&c->hostname, cfg->hostname, "");
    if (rc == 0)
        rc = dup_str(&c->log_name, cfg->log_name, "fwd_client");
    if (rc == 0)
        rc = dup_str(&c->peer_kind, cfg->peer_kind, "server");
    c->cfg.endpoints = NULL; /* copied into eps */
    c->win = calloc(cfg->max_in_flight, sizeof *c->win);
    c->handback = calloc(cfg->max_in_flight, sizeof *c->handback);
    c->retry = evtimer_new(cfg->base, on_retry, c);
    c->tick = event_new(cfg->base, -1, EV_PERSIST, on_tick, c);
    /* Timeouts are checked at least twice per ack_timeout. */
    int64_t ms = cfg->ack_timeout_ms / 2;
    ms = ms < TICK_MIN_MS ? TICK_MIN_MS : ms > TICK_MAX_MS ? TICK_MAX_MS : ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (rc != 0 || !c->win || !c->handback || !c->retry || !c->tick ||
        event_add(c->tick, &tv) != 0) {
        lh_fwd_client_free(c);
        return LH_ENOMEM;
    }
    lh_mp_scan_init(&c->scan);
    *out = c;
    return LH_OK;
}

void lh_fwd_client_free(struct lh_fwd_client *c)
{
    if (!c)
        return;
    c->closing = true;
    drop_conn(c);
    if (c->n_win)
        hand_back(c, NULL);
    if (c->retry)
        event_free(c->retry);
    if (c->tick)
        event_free(c->tick);
    for (size_t i = 0; c->eps && i < c->n_eps; i++) {
        free(c->eps[i].host);
        free(c->eps[i].tls_name);
    }
    free(c->eps);
    free(c->win);
    free(c->handback);
    free(c->shared_key);
    free(c->hostname);
    free(c->log_name);
    free(c->peer_kind);
    free(c);
}

/* ---- status ------------------------------------------------------------- */

enum lh_fwd_client_state lh_fwd_client_state(const struct lh_fwd_client *c)
{
    return c->st;
}

size_t lh_fwd_client_in_flight(const struct lh_fwd_client *c)
{
    return c->n_win;
}

const char *lh_fwd_client_peer(const struct lh_fwd_client *c)
{
    return c->eps[c->cur].peer;
}
