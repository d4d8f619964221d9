/* The `forward` output's connections: one per collector address, each with
 * its own window of max_in_flight chunks awaiting {"ack": id}.
 *
 * round_robin hands each chunk to the next ready collector with room in its
 * window; failover to the first ready collector in config order. Every
 * collector is kept connected, so a failover has no connect delay. A
 * collector that fails (refused, cut, no ack within ack_timeout) is benched
 * for an exponential backoff with jitter, and its unacknowledged chunks go
 * back to the front of the queue for the others: same bytes, same chunk id,
 * so the collector that got them first drops the copy. Retries go on
 * forever. */
#include <errno.h>
#include <netdb.h>
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

#include "agent/outputs/forward/out_forward_int.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/net/net.h"
#include "common/codec/record.h"
#include "common/net/tls.h"
#include "common/base/util.h"

/* Replies are acks and handshake frames: a few hundred bytes. */
#define MAX_REPLY (64u * 1024)
#define BACKOFF_MIN_MS 500
#define MAX_ADDRS 64
#define MAX_SINGLE_WRITE (1024 * 1024)

static const char *const state_names[] = {"disconnected", "connecting", "handshake",
                                          "handshake", "connected"};

/* ---- lifecycle ---------------------------------------------------------- */

static void set_state(struct conn *c, enum conn_state st)
{
    c->st = st;
    c->st_since_ms = lh_mono_ms();
}

static int64_t backoff_ms(unsigned fails, int64_t max_ms)
{
    int64_t d = BACKOFF_MIN_MS;
    for (unsigned i = 1; i < fails && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    /* Jitter in [d/2, d] keeps a fleet of agents from reconnecting in step. */
    uint32_t r = 0;
    RAND_bytes((unsigned char *)&r, sizeof r);
    return d / 2 + (int64_t)(r % (uint32_t)(d / 2 + 1));
}

static void schedule_connect(struct conn *c, int64_t delay_ms)
{
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    evtimer_add(c->retry, &tv);
}

/* Unacknowledged chunks go back in front of the pending ones, oldest first. */
static void requeue(struct fwd *f, struct conn *c)
{
    lh_metric_add(f->batches_in_flight, -(int64_t)c->inflight.n);
    if (!c->inflight.head)
        return;
    for (struct fchunk *fc = c->inflight.head; fc; fc = fc->next)
        fc->in_flight = false;
    c->inflight.tail->next = f->pending.head;
    if (!f->pending.tail)
        f->pending.tail = c->inflight.tail;
    f->pending.head = c->inflight.head;
    f->pending.n += c->inflight.n;
    c->inflight = (struct fq){0};
}

/* The collector failed (already logged): bench it, hand its chunks on. */
static void conn_failed_logged(struct conn *c)
{
    struct fwd *f = c->f;
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    requeue(f, c);
    set_state(c, ST_IDLE);
    if (!fwd_conns_ready(f))
        fwd_sync_held(f);
    int64_t d = backoff_ms(++c->fails, f->cfg->backoff_max_ms);
    LH_INFO(FWD_LOG, "collector %s:%d benched for %lld ms", c->addr, c->port, (long long)d);
    schedule_connect(c, d);
    fwd_send_pending(f);
}

static void conn_failed(struct conn *c, const char *why)
{
    LH_WARN(FWD_LOG, "collector %s:%d: %s", c->addr, c->port, why);
    conn_failed_logged(c);
}

static void conn_ready(struct conn *c)
{
    set_state(c, ST_READY);
    LH_INFO(FWD_LOG, "connected to collector %s:%d%s", c->addr, c->port,
            c->f->ssl_ctx ? " (TLS)" : "");
    fwd_send_pending(c->f);
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

static int on_helo(struct conn *c, const msgpack_object *o)
{
    if (lh_fwd_parse_helo(o, &c->helo) != 0) {
        conn_failed(c, "expected HELO for the shared-key handshake");
        return LH_EPROTO;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (lh_fwd_pack_ping(&pk, &c->helo, c->f->hostname, c->f->cfg->shared_key, NULL, NULL,
                         &c->ping) != 0) {
        msgpack_sbuffer_destroy(&sb);
        conn_failed(c, "cannot build PING");
        return LH_ENOMEM;
    }
    bufferevent_write(c->bev, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    set_state(c, ST_PONG);
    return LH_OK;
}

static int on_pong(struct conn *c, const msgpack_object *o)
{
    char reason[256] = "", msg[400];
    int rc = lh_fwd_check_pong(o, &c->helo, &c->ping, c->f->cfg->shared_key, reason,
                               sizeof reason);
    if (rc == 0) {
        conn_ready(c);
        return LH_OK;
    }
    if (rc == LH_EAUTH)
        snprintf(msg, sizeof msg,
                 "shared-key handshake failed: %s (check shared_key on both sides)", reason);
    else
        snprintf(msg, sizeof msg, "malformed PONG in the shared-key handshake");
    LH_ERROR(FWD_LOG, "collector %s:%d: %s", c->addr, c->port, msg);
    conn_failed_logged(c);
    return rc;
}

static struct fchunk *take_inflight(struct conn *c, const char *id, size_t len)
{
    struct fchunk *prev = NULL;
    for (struct fchunk *fc = c->inflight.head; fc; prev = fc, fc = fc->next) {
        if (len != LH_CHUNK_ID_LEN || memcmp(fc->c->id, id, len) != 0)
            continue;
        if (prev)
            prev->next = fc->next;
        else
            c->inflight.head = fc->next;
        if (c->inflight.tail == fc)
            c->inflight.tail = prev;
        c->inflight.n--;
        fc->next = NULL;
        fc->in_flight = false;
        return fc;
    }
    return NULL;
}

static int on_ack(struct conn *c, const msgpack_object *o)
{
    const char *id;
    size_t len;
    if (o->type == MSGPACK_OBJECT_NIL)
        return LH_OK; /* heartbeat */
    if (lh_fwd_parse_ack(o, &id, &len) != 0) {
        struct lh_fwd_helo h;
        conn_failed(c, lh_fwd_parse_helo(o, &h) == 0
                           ? "collector wants a shared-key handshake: set shared_key"
                           : "unexpected reply (not an ack)");
        return LH_EPROTO;
    }
    struct fchunk *fc = take_inflight(c, id, len);
    if (!fc) {
        LH_DEBUG(FWD_LOG, "ack for unknown chunk %.*s", (int)len, id);
        return LH_OK;
    }
    lh_metric_add(c->f->batches_in_flight, -1);
    lh_metric_add(c->f->acks, 1);
    c->fails = 0;
    fwd_delivered(c->f, fc);
    return LH_OK;
}

static int on_frame(struct conn *c, const msgpack_object *o)
{
    switch (c->st) {
    case ST_HELO:
        return on_helo(c, o);
    case ST_PONG:
        return on_pong(c, o);
    case ST_READY:
        return on_ack(c, o);
    default:
        return LH_EPROTO;
    }
}

/* One complete frame at the front of in, or LH_AGAIN. The frame is copied
 * out first: handling it may close the connection and free its buffers. */
static int next_frame(struct conn *c, struct evbuffer *in)
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
    char *frame = rc == 0 ? malloc(flen) : NULL;
    if (!frame) {
        conn_failed(c, rc == 0 ? "out of memory" : "malformed reply from the collector");
        return rc == 0 ? LH_ENOMEM : rc;
    }
    memcpy(frame, data, flen);
    evbuffer_drain(in, flen);
    lh_mp_scan_init(&c->scan);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, frame, flen, &off) == MSGPACK_UNPACK_SUCCESS) {
        rc = on_frame(c, &u.data);
    } else {
        conn_failed(c, "undecodable reply from the collector");
        rc = LH_EPROTO;
    }
    msgpack_unpacked_destroy(&u);
    free(frame);
    return rc;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    while (c->bev == bev && next_frame(c, bufferevent_get_input(bev)) == 0)
        ;
    fwd_send_pending(c->f);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        evutil_socket_t fd = bufferevent_getfd(bev);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* libevent moves 16 KiB per callback by default: a syscall (and a
         * loop turn) per TLS record for megabyte frames. */
        bufferevent_set_max_single_write(bev, MAX_SINGLE_WRITE);
        lh_metric_add(c->f->connections, 1);
        lh_mp_scan_init(&c->scan);
        if (c->f->cfg->shared_key)
            set_state(c, ST_HELO);
        else
            conn_ready(c);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        char why[300];
        conn_error_string(bev, what, c->st == ST_CONNECTING, why, sizeof why);
        conn_failed(c, why);
    }
}

static void connect_conn(struct conn *c)
{
    struct fwd *f = c->f;
    SSL *ssl = NULL;
    if (f->ssl_ctx) {
        const char *name = f->cfg->tls.server_name ? f->cfg->tls.server_name : c->name;
        ssl = lh_tls_client_ssl(f->ssl_ctx, name);
        if (!ssl) {
            conn_failed(c, "cannot create a TLS session");
            return;
        }
    }
    set_state(c, ST_CONNECTING);
    c->bev = lh_net_connect_bev(f->base, f->dns, c->addr, c->port, ssl);
    if (!c->bev) {
        conn_failed(c, "cannot start connecting");
        return;
    }
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->st == ST_IDLE)
        connect_conn(c);
}

/* ---- sending ------------------------------------------------------------ */

static bool has_room(const struct conn *c)
{
    return c->st == ST_READY && (int64_t)c->inflight.n < c->f->cfg->max_in_flight;
}

static struct conn *pick(struct fwd *f)
{
    if (f->cfg->balance == BALANCE_FAILOVER) {
        for (size_t i = 0; i < f->n_conns; i++)
            if (f->conns[i].st == ST_READY)
                return has_room(&f->conns[i]) ? &f->conns[i] : NULL;
        return NULL;
    }
    for (size_t i = 0; i < f->n_conns; i++) {
        size_t k = (f->rr + i) % f->n_conns;
        if (has_room(&f->conns[k])) {
            f->rr = (k + 1) % f->n_conns;
            return &f->conns[k];
        }
    }
    return NULL;
}

static void push_front(struct fq *q, struct fchunk *fc)
{
    fc->next = q->head;
    q->head = fc;
    if (!q->tail)
        q->tail = fc;
    q->n++;
}

static int send_frame(struct evbuffer *out, const struct fchunk *fc)
{
    if (!fc->extra)
        return evbuffer_add_reference(out, fc->mem, fc->len, NULL, NULL);
    if (evbuffer_add_reference(out, fc->extra, fc->head_len, NULL, NULL) != 0 ||
        evbuffer_add_reference(out, fc->mem, fc->len, NULL, NULL) != 0)
        return -1;
    return evbuffer_add_reference(out, fc->extra + fc->head_len, fc->extra_len - fc->head_len,
                                  NULL, NULL);
}

bool fwd_conns_ready(const struct fwd *f)
{
    for (size_t i = 0; i < f->n_conns; i++)
        if (f->conns[i].st == ST_READY)
            return true;
    return false;
}

void fwd_send_pending(struct fwd *f)
{
    struct conn *c;
    while (f->pending.head && (c = pick(f))) {
        struct fchunk *fc = fq_pop(&f->pending);
        int rc = fwd_load(f, fc);
        if (rc == LH_ECORRUPT)
            continue; /* dropped and counted */
        if (rc != 0) {
            push_front(&f->pending, fc);
            return;
        }
        /* The frame stays with the chunk until its ack: no copy. */
        if (send_frame(bufferevent_get_output(c->bev), fc) != 0) {
            push_front(&f->pending, fc);
            conn_failed(c, "write failed");
            return;
        }
        if (fc->attempts++ > 0)
            lh_metric_add(f->retries, 1);
        lh_metric_add(f->bytes_sent, (int64_t)(fc->len + (fc->extra ? fc->extra_len : 0)));
        fc->sent_ms = lh_mono_ms();
        fq_push(&c->inflight, fc);
        fc->in_flight = true;
        lh_metric_add(f->batches_in_flight, 1);
    }
}

void fwd_conns_tick(struct fwd *f)
{
    int64_t now = lh_mono_ms();
    char why[128];
    for (size_t i = 0; i < f->n_conns; i++) {
        struct conn *c = &f->conns[i];
        if (c->st == ST_READY && c->inflight.head &&
            now - c->inflight.head->sent_ms > f->cfg->ack_timeout_ms) {
            snprintf(why, sizeof why, "no ack for chunk %s within %lld ms",
                     c->inflight.head->c->id, (long long)f->cfg->ack_timeout_ms);
            conn_failed(c, why);
        } else if (c->st != ST_IDLE && c->st != ST_READY &&
                   now - c->st_since_ms > f->cfg->ack_timeout_ms) {
            snprintf(why, sizeof why, "%s timed out", state_names[c->st]);
            conn_failed(c, why);
        }
    }
}

/* ---- set up ------------------------------------------------------------- */

static int add_conn(struct fwd *f, const char *addr, const char *name, int port)
{
    for (size_t i = 0; i < f->n_conns; i++)
        if (f->conns[i].port == port && strcmp(f->conns[i].addr, addr) == 0)
            return LH_OK; /* listed twice: one collector */
    struct conn *v = realloc(f->conns, (f->n_conns + 1) * sizeof *v);
    if (!v)
        return LH_ENOMEM;
    f->conns = v;
    struct conn *c = &v[f->n_conns];
    *c = (struct conn){.f = f, .port = port};
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    snprintf(c->name, sizeof c->name, "%s", name);
    f->n_conns++;
    return LH_OK;
}

/* A name resolving to several addresses is several collectors. A name that
 * does not resolve now stays one, resolved again at each connect. */
static int add_collector(struct fwd *f, const char *spec)
{
    char host[256];
    int port;
    lh_split_hostport(spec, host, sizeof host, &port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return add_conn(f, host, host, port);
    int rc = LH_OK, n = 0;
    for (struct addrinfo *a = res; a && rc == 0 && n < MAX_ADDRS; a = a->ai_next, n++) {
        char num[INET6_ADDRSTRLEN];
        if (getnameinfo(a->ai_addr, a->ai_addrlen, num, sizeof num, NULL, 0, NI_NUMERICHOST) == 0)
            rc = add_conn(f, num, host, port);
    }
    freeaddrinfo(res);
    return rc;
}

int fwd_conns_new(struct fwd *f, char *err, size_t errlen)
{
    int rc = LH_OK;
    for (size_t i = 0; i < f->cfg->collectors.n && rc == 0; i++)
        rc = add_collector(f, f->cfg->collectors.v[i]);
    for (size_t i = 0; i < f->n_conns && rc == 0; i++) {
        f->conns[i].retry = evtimer_new(f->base, on_retry, &f->conns[i]);
        if (!f->conns[i].retry)
            rc = LH_ENOMEM;
    }
    if (rc != 0)
        snprintf(err, errlen, "forward output: out of memory");
    return rc;
}

void fwd_conns_start(struct fwd *f)
{
    for (size_t i = 0; i < f->n_conns; i++)
        schedule_connect(&f->conns[i], 0);
}

void fwd_conns_free(struct fwd *f)
{
    for (size_t i = 0; i < f->n_conns; i++) {
        struct conn *c = &f->conns[i];
        if (c->bev)
            bufferevent_free(c->bev);
        lh_metric_add(f->batches_in_flight, -(int64_t)c->inflight.n);
        struct fchunk *fc;
        while ((fc = fq_pop(&c->inflight)))
            fchunk_free(fc);
        if (c->retry)
            event_free(c->retry);
    }
    free(f->conns);
    f->conns = NULL;
    f->n_conns = 0;
}

void fwd_conns_status(struct fwd *f, json_t *outputs)
{
    json_t *list = json_array();
    const struct conn *shown = f->n_conns ? &f->conns[0] : NULL;
    size_t in_flight = 0;
    for (size_t i = 0; i < f->n_conns; i++) {
        const struct conn *c = &f->conns[i];
        char addr[300];
        snprintf(addr, sizeof addr, "%s:%d", c->addr, c->port);
        json_array_append_new(list, json_pack("{sssssi}", "collector", addr, "state",
                                              state_names[c->st], "in_flight",
                                              (int)c->inflight.n));
        in_flight += c->inflight.n;
        if (c->st == ST_READY && shown->st != ST_READY)
            shown = c;
    }
    char collector[300] = "";
    if (shown)
        snprintf(collector, sizeof collector, "%s:%d", shown->addr, shown->port);
    struct lh_chunkq_stats st;
    lh_chunkq_stats(f->q, &st);
    json_array_append_new(outputs,
                          json_pack("{sssssssisisIso}", "type", "forward", "collector", collector,
                                    "state", shown ? state_names[shown->st] : "disconnected",
                                    "in_flight", (int)in_flight, "pending", (int)f->pending.n,
                                    "buffer_bytes", (json_int_t)st.bytes, "collectors", list));
}
