#include "collector/ingest/in_forward.h"
#include "collector/ingest/in_forward_int.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/forward.h"
#include "common/base/log.h"
#include "common/net/net.h"
#include "common/codec/record.h"
#include "common/net/tls.h"
#include "common/base/util.h"

/* Bytes moved out of libevent per step, and what libevent buffers at most
 * before it stops reading the socket. A connection holds its frame buffer
 * (the frame, plus one step of the next) and libevent's input (high water
 * plus one read): CONN_OVERHEAD beyond the frame itself. */
#define READ_STEP (256 * 1024)
#define READ_HIGH_WATER (512 * 1024)
#define CONN_OVERHEAD (2 * READ_STEP + READ_HIGH_WATER)
/* Before the shared-key handshake a frame can only be a PING: a few hundred
 * bytes. Anything bigger is refused before it is buffered. */
#define PREAUTH_MAX (64 * 1024)
/* With connections waiting for memory and none released for this long, the
 * holders that received nothing for longest are closed (on_stall). */
#define STALL_MS 1000
/* A frame buffer starts this small and doubles with what it holds; between
 * frames a connection holds none, so idle connections (or ones that sent a
 * byte) hold next to nothing of the memory budget. */
#define MIN_BUF 512

static const char *const reason_names[N_REASONS] = {
    "malformed", "too_big", "protocol", "handshake", "tls", "store", "too_deep", "memory",
    "frame_timeout"};

/* ---- memory budget ------------------------------------------------------ */

static const struct timeval stall_tv = {STALL_MS / 1000, (STALL_MS % 1000) * 1000};

static struct timeval ms_tv(int64_t ms)
{
    return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
}

/* What c holds: its frame buffer and what libevent has read for it. */
static size_t conn_usage(const struct conn *c)
{
    return c->cap + (c->bev ? evbuffer_get_length(bufferevent_get_input(c->bev)) : 0);
}

/* What counts against max_memory: the connections' bytes and the batches
 * commit keeps for a store completing later. */
static size_t budget_used(const struct lh_in_forward *f)
{
    return f->held + lh_commit_held(f->commit);
}

void lh_infwd_mem_gauge(struct lh_in_forward *f)
{
    lh_metric_set(f->m.memory, (int64_t)(budget_used(f) + f->stage.alloc));
}

/* Accounts held bytes going from c->held to now; a release wakes the
 * connections waiting for memory (from the loop, not from here). */
static void mem_account(struct conn *c, size_t now)
{
    struct lh_in_forward *f = c->f;

    if (now < c->held && f->n_paused > 0) {
        f->released = true;
        event_active(f->resume_ev, EV_TIMEOUT, 0);
    }
    f->held = f->held - c->held + now;
    c->held = now;
    lh_infwd_mem_gauge(f);
}

static void mem_sync(struct conn *c)
{
    mem_account(c, conn_usage(c));
}

static void unpause(struct conn *c)
{
    c->paused = false;
    c->f->n_paused--;
    TAILQ_REMOVE(&c->f->paused, c, pause_link);
}

static void mem_forget(struct conn *c)
{
    if (c->paused)
        unpause(c);
    mem_account(c, 0);
}

/* Stops reading c until memory is released; want is the growth it waits
 * for. */
static void conn_pause(struct conn *c, size_t want)
{
    struct lh_in_forward *f = c->f;

    c->paused = true;
    c->want = want;
    f->n_paused++;
    TAILQ_INSERT_TAIL(&f->paused, c, pause_link);
    bufferevent_disable(c->bev, EV_READ);
    lh_metric_add(f->m.pauses, 1);
    LH_DEBUG(FWD_LOG, "%s: max_memory reached (%zu bytes held), reading paused", c->peer,
             f->held);
    if (!evtimer_pending(f->stall_ev, NULL)) {
        f->released = false;
        evtimer_add(f->stall_ev, &stall_tv);
    }
}

/* ---- connection lifetime ------------------------------------------------ */

static void maybe_done(struct lh_in_forward *f)
{
    if (f->done && !f->conns) {
        void (*done)(void *) = f->done;
        f->done = NULL;
        done(f->done_ud);
    }
}

static void conn_free(struct conn *c)
{
    struct lh_in_forward *f = c->f;
    if (c->prev)
        c->prev->next = c->next;
    else
        f->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    lh_metric_add(f->m.conns_active, -1);
    if (f->gate)
        lh_net_gate_closed(f->gate);
    mem_forget(c);
    if (c->t)
        c->t->c = NULL; /* its done acks nothing and frees it */
    if (c->hs_timer)
        event_free(c->hs_timer);
    if (c->frame_timer)
        event_free(c->frame_timer);
    if (c->bev)
        bufferevent_free(c->bev);
    free(c->buf);
    free(c);
    maybe_done(f);
}

/* Frees a closing connection once its commit is done and its output
 * (acks, PONG) sent. */
static void free_if_finished(struct conn *c)
{
    if (!c->t && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        conn_free(c);
}

/* Stops reading; the connection goes once its commit is done and its
 * output sent. */
void lh_infwd_close_after_write(struct conn *c)
{
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    free_if_finished(c);
}

/* Logs why, counts it, closes. Always returns -1 (the connection is gone). */
__attribute__((format(printf, 3, 4))) int lh_infwd_fault(struct conn *c, enum reason r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    LH_WARN(FWD_LOG, "closing %s: %s", c->peer, msg);
    lh_metric_add(c->f->m.rejected[r], 1);
    conn_free(c);
    return -1;
}

/* A peer that connects and never finishes TLS or the shared-key handshake
 * would hold its socket forever; once both are done, idle is fine. */
void lh_infwd_handshake_progress(struct conn *c)
{
    if (c->hs_timer && c->tls_done && c->authed) {
        event_free(c->hs_timer);
        c->hs_timer = NULL;
    }
}

static void on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    lh_infwd_fault(c, R_HANDSHAKE, "%s not finished within handshake_timeout (%lld ms)",
          c->tls_done ? "shared-key handshake" : "TLS handshake",
          (long long)c->f->cfg->handshake_timeout_ms);
}

/* ---- reading ------------------------------------------------------------ */

/* The largest frame c may send now. */
static size_t frame_limit(const struct conn *c)
{
    const struct lh_forward_listen_cfg *cfg = c->f->cfg;
    size_t room = (size_t)cfg->max_connection_memory - CONN_OVERHEAD; /* validated */

    if (!c->authed)
        return PREAUTH_MAX;
    return (size_t)cfg->max_frame < room ? (size_t)cfg->max_frame : room;
}

static int frame_too_big(struct conn *c, size_t max)
{
    const struct lh_forward_listen_cfg *cfg = c->f->cfg;

    if (!c->authed)
        return lh_infwd_fault(c, R_HANDSHAKE, "frame before the shared-key handshake is larger than %d "
                     "bytes (a PING is a few hundred)", PREAUTH_MAX);
    if (max < (size_t)cfg->max_frame)
        return lh_infwd_fault(c, R_TOO_BIG, "frame larger than %zu bytes cannot fit max_connection_memory "
                     "(%lld bytes)", max, (long long)cfg->max_connection_memory);
    return lh_infwd_fault(c, R_TOO_BIG, "frame larger than max_frame (%zu bytes)", max);
}

/* The frame buffer's capacity for more bytes: doubled, but no more than the
 * largest frame allowed needs (plus one step of the next frame). */
static size_t grown_cap(const struct conn *c, size_t more)
{
    size_t need = c->len + more, top = frame_limit(c) + READ_STEP;
    size_t cap = c->cap ? c->cap : MIN_BUF;

    while (cap < need)
        cap *= 2;
    return cap > top && need <= top ? top : cap;
}

static int reserve(struct conn *c, size_t cap)
{
    if (cap <= c->cap)
        return 0;
    uint8_t *g = realloc(c->buf, cap);
    if (!g)
        return LH_ENOMEM;
    c->buf = g;
    c->cap = cap;
    return 0;
}

/* Keeps the unfinished frame, in a buffer no bigger than it needs. */
static void compact(struct conn *c, size_t off)
{
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    if (c->len == 0) {
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    } else if (c->cap > MIN_BUF && c->len < c->cap / 4) {
        uint8_t *g = realloc(c->buf, c->cap / 2);
        if (g) {
            c->buf = g;
            c->cap /= 2;
        }
    }
}

/* Handles every complete frame in c->buf; keeps the partial one. */
static int drain_frames(struct conn *c)
{
    size_t off = 0;
    for (;;) {
        size_t flen, max = frame_limit(c);
        /* After the handshake a frame is nil or [tag, ...]: anything else
         * is refused from its first bytes, before it is buffered. */
        int rc = c->authed && !c->scan.started ? lh_fwd_check_head(c->buf + off, c->len - off)
                                                : 0;
        if (rc == LH_AGAIN)
            break;
        if (rc != 0)
            return lh_infwd_fault(c, R_PROTOCOL, "not a Forward frame (want nil, or an array of 2 to 4 "
                         "elements starting with the tag)");
        rc = lh_mp_scan(&c->scan, c->buf + off, c->len - off, max, &flen);
        if (rc == LH_AGAIN)
            break;
        if (rc == LH_ETOOBIG)
            return frame_too_big(c, max);
        if (rc != 0)
            return lh_infwd_fault(c, R_MALFORMED, "malformed msgpack");
        lh_mp_scan_init(&c->scan);
        if (lh_infwd_frame(c, c->buf + off, flen) != 0)
            return -1;
        off += flen;
        if (c->t) {
            /* Its commit goes on: the next frame waits for its done. The
             * socket stays read (up to the high water mark), so a sender
             * that goes meanwhile is noticed. */
            c->unscanned = off < c->len;
            break;
        }
    }
    compact(c, off);
    return 0;
}

/* ---- frame timeout ------------------------------------------------------ */

/* c holds part of a frame and waits for its sender. While c is paused or
 * its commit is out, the wait is the collector's, not the sender's. */
static bool frame_owed(const struct conn *c)
{
    return c->len > 0 && !c->closing && !c->paused && !c->t;
}

/* One timer per connection, armed when a frame is owed and re-armed from
 * its own expiry for what is left, so reading does not touch it. */
static void frame_watch(struct conn *c)
{
    if (frame_owed(c) && !evtimer_pending(c->frame_timer, NULL)) {
        struct timeval tv = ms_tv(c->f->cfg->frame_timeout_ms);
        evtimer_add(c->frame_timer, &tv);
    }
}

static void on_frame_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    int64_t limit = c->f->cfg->frame_timeout_ms, quiet = lh_mono_ms() - c->last_rx_ms;
    if (!frame_owed(c))
        return; /* frame_watch arms it again when one is */
    if (quiet < limit) {
        struct timeval tv = ms_tv(limit - quiet);
        evtimer_add(c->frame_timer, &tv);
        return;
    }
    lh_infwd_fault(c, R_FRAME_TIMEOUT, "%zu bytes of a frame, then nothing for %lld ms "
                   "(frame_timeout); dropped, not acked", c->len, (long long)limit);
}

/* ---- reading, continued ------------------------------------------------- */

/* Moves what libevent read into the frame buffer and handles the frames
 * completed, while the memory budget lets the buffer grow. Called when
 * bytes arrived or reading resumes: either is progress for c. */
static void conn_read(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t avail;
    c->last_rx_ms = lh_mono_ms();
    mem_sync(c);
    while (!c->closing && !c->paused && !c->t && (avail = evbuffer_get_length(in)) > 0) {
        size_t step = avail < READ_STEP ? avail : READ_STEP;
        size_t cap = grown_cap(c, step);
        if (cap > c->cap && budget_used(c->f) + (cap - c->cap) > (size_t)c->f->cfg->max_memory) {
            conn_pause(c, cap - c->cap);
            return;
        }
        if (reserve(c, cap) != 0) {
            lh_infwd_fault(c, R_STORE, "out of memory buffering a frame");
            return;
        }
        int n = evbuffer_remove(in, c->buf + c->len, step);
        if (n <= 0)
            break;
        c->len += (size_t)n;
        lh_metric_add(c->f->m.bytes_in, n);
        if (drain_frames(c) != 0)
            return;
        mem_sync(c);
    }
    frame_watch(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    c->tls_done = true; /* decrypted bytes arrived */
    lh_infwd_handshake_progress(c);
    conn_read(c);
}

/* Memory was released: paused connections read again in the order they
 * paused, each whose growth fits (libevent does not announce what it
 * already buffered). First come first: a sender that waits is not passed
 * over by newer ones until it looks idle to the stall breaker. One that
 * pauses again goes to the back; each reads only what libevent holds
 * already, so this ends. */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct lh_in_forward *f = arg;
    size_t max = (size_t)f->cfg->max_memory;
    for (struct conn *c = TAILQ_FIRST(&f->paused), *next; c && budget_used(f) < max; c = next) {
        next = TAILQ_NEXT(c, pause_link);
        if (budget_used(f) + c->want > max)
            continue;
        unpause(c);
        bufferevent_enable(c->bev, EV_READ);
        conn_read(c);
    }
}

/* Reading goes on after a commit: first the frames already buffered. */
static void read_on(struct conn *c)
{
    if (c->closing) {
        free_if_finished(c);
        return;
    }
    if (c->unscanned) {
        c->unscanned = false;
        if (drain_frames(c) != 0 || c->t)
            return;
    }
    conn_read(c);
}

/* Commits done after their submit returned: acked, then reading goes on.
 * Settling may free that connection only. Their copies are freed by now:
 * memory for the connections waiting. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct lh_in_forward *f = arg;
    for (struct conn *c = f->conns, *next; c; c = next) {
        next = c->next;
        if (!c->wake)
            continue;
        c->wake = false;
        if (lh_infwd_settle(c) == 0)
            read_on(c);
    }
    lh_infwd_mem_gauge(f);
    if (f->n_paused > 0) {
        f->released = true;
        event_active(f->resume_ev, EV_TIMEOUT, 0);
    }
}

/* Who may be closed for memory: not a connection already going, nor one
 * whose commit is out (that memory comes back when it is done). */
static bool stall_victim(const struct conn *c)
{
    return !c->closing && !c->t && c->held > 0;
}

static int by_last_rx(const void *a, const void *b)
{
    const struct conn *x = *(struct conn *const *)a, *y = *(struct conn *const *)b;
    return (x->last_rx_ms > y->last_rx_ms) - (x->last_rx_ms < y->last_rx_ms);
}

/* Closes the holders that received a byte least recently until the
 * smallest growth a paused connection waits for fits: a sender delivering
 * bytes goes last, whatever it holds. */
static void close_stalest(struct lh_in_forward *f)
{
    size_t n = 0, want = SIZE_MAX, max = (size_t)f->cfg->max_memory;
    for (struct conn *c = f->conns; c; c = c->next) {
        if (c->paused && c->want < want)
            want = c->want;
        n += stall_victim(c);
    }
    if (want == SIZE_MAX || budget_used(f) + want <= max || n == 0) {
        event_active(f->resume_ev, EV_TIMEOUT, 0); /* room after all */
        return;
    }
    struct conn **v = malloc(n * sizeof *v);
    if (!v)
        return; /* the next stall tries again */
    n = 0;
    for (struct conn *c = f->conns; c; c = c->next)
        if (stall_victim(c))
            v[n++] = c;
    qsort(v, n, sizeof *v, by_last_rx);
    int64_t now = lh_mono_ms();
    size_t n_paused = f->n_paused;
    for (size_t i = 0; i < n && budget_used(f) + want > max; i++)
        lh_infwd_fault(v[i], R_MEMORY, "max_memory (%lld bytes) full for %d ms with %zu "
                       "connections waiting; this one received nothing for longest (%lld ms, "
                       "%zu bytes held, its frame not acked)", (long long)max, STALL_MS,
                       n_paused, (long long)(now - v[i]->last_rx_ms), v[i]->held);
    free(v);
}

/* Connections wait for memory and none was released for STALL_MS: every
 * holder may itself be waiting (half-sent frames), so some are closed.
 * Their frames were not acked; a real sender sends them again. */
static void on_stall(evutil_socket_t fd, short what, void *arg)
{
    struct lh_in_forward *f = arg;
    if (f->n_paused == 0)
        return;
    if (!f->released)
        close_stalest(f);
    f->released = false;
    if (f->n_paused > 0)
        evtimer_add(f->stall_ev, &stall_tv);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->closing)
        free_if_finished(c);
}

/* OpenSSL's reasons for a failed connection into buf; false when the
 * failure was not OpenSSL's. */
static bool tls_reason(struct bufferevent *bev, char *buf, size_t len)
{
    unsigned long e;
    size_t used = 0;
    bool any = false;
    buf[0] = '\0';
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        const char *r = ERR_reason_error_string(e);
        any = true;
        if (!r || used + 2 >= len)
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? "; " : "", r);
        if (n > 0)
            used += (size_t)n < len - used ? (size_t)n : len - used - 1;
    }
    if (any && !buf[0])
        snprintf(buf, len, "unknown OpenSSL error");
    return any;
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    char reason[256];
    if (what & BEV_EVENT_CONNECTED) {
        c->tls_done = true;
        lh_infwd_handshake_progress(c);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        int saved = errno;
        if (tls_reason(bev, reason, sizeof reason)) {
            lh_infwd_fault(c, R_TLS, "TLS failure: %s", reason);
            return;
        }
        LH_INFO(FWD_LOG, "closing %s: %s", c->peer, saved ? strerror(saved) : "connection error");
    } else if (what & BEV_EVENT_EOF) {
        if (c->len > 0)
            LH_INFO(FWD_LOG, "%s closed the connection in the middle of a frame (%zu bytes "
                             "dropped, not acked)", c->peer, c->len);
        else
            LH_DEBUG(FWD_LOG, "%s closed the connection", c->peer);
    } else {
        return;
    }
    conn_free(c);
}

/* ---- accepting ---------------------------------------------------------- */

static void peer_names(struct conn *c, const struct sockaddr *sa)
{
    int port;
    lh_net_addr_string(sa, c->peer, sizeof c->peer);
    if (lh_split_hostport(c->peer, c->host, sizeof c->host, &port) != 0)
        snprintf(c->host, sizeof c->host, "%s", c->peer);
}

static int conn_start(struct conn *c)
{
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, READ_HIGH_WATER);
    /* libevent reads 16 KiB per callback by default: a loop turn per TLS
     * record for megabyte frames. */
    bufferevent_set_max_single_read(c->bev, READ_STEP);
    if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) != 0)
        return LH_EIO;
    lh_mp_scan_init(&c->scan);
    c->authed = c->f->cfg->shared_key == NULL;
    c->tls_done = c->f->ssl_ctx == NULL;
    c->last_rx_ms = lh_mono_ms();
    if (!(c->frame_timer = evtimer_new(c->f->base, on_frame_timeout, c)))
        return LH_ENOMEM;
    if (!c->authed || !c->tls_done) {
        struct timeval tv = ms_tv(c->f->cfg->handshake_timeout_ms);
        if (!(c->hs_timer = evtimer_new(c->f->base, on_handshake_timeout, c)) ||
            evtimer_add(c->hs_timer, &tv) != 0)
            return LH_ENOMEM;
    }
    return c->authed ? 0 : lh_infwd_send_helo(c);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct lh_in_forward *f = arg;
    struct conn *c = calloc(1, sizeof *c);
    SSL *ssl = NULL;
    if (!c || (f->ssl_ctx && !(ssl = SSL_new(f->ssl_ctx)))) {
        LH_ERROR(FWD_LOG, "out of memory accepting a connection");
        free(c);
        evutil_closesocket(fd);
        return;
    }
    /* Agents often vanish without close_notify; frames are self-delimiting,
     * so a missing one truncates nothing that could be acked. */
    if (ssl)
        SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    c->f = f;
    peer_names(c, sa);
    c->bev = lh_net_accept_bev(f->base, fd, ssl);
    if (!c->bev) {
        LH_ERROR(FWD_LOG, "cannot set up the connection from %s", c->peer);
        free(c);
        return;
    }
    c->next = f->conns;
    if (f->conns)
        f->conns->prev = c;
    f->conns = c;
    lh_metric_add(f->m.conns_total, 1);
    lh_metric_add(f->m.conns_active, 1);
    lh_net_gate_opened(f->gate);
    LH_DEBUG(FWD_LOG, "connection from %s", c->peer);
    if (conn_start(c) != 0)
        lh_infwd_fault(c, R_HANDSHAKE, "cannot start the connection");
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct lh_in_forward *f = arg;
    lh_net_gate_accept_failed(f->gate);
}

/* ---- setup -------------------------------------------------------------- */

static int register_metrics(struct lh_in_forward *f, struct lh_metrics *reg)
{
    struct fwd_metrics *m = &f->m;
    m->bytes_in = lh_metrics_get(reg, LH_METRIC_COUNTER, "loghaul_collector_bytes_in_total", NULL,
                                 "bytes read from Forward connections (after TLS)");
    m->conns_total = lh_metrics_get(reg, LH_METRIC_COUNTER,
                                    "loghaul_collector_connections_total", NULL,
                                    "Forward connections accepted");
    m->conns_active = lh_metrics_get(reg, LH_METRIC_GAUGE, "loghaul_collector_connections_active",
                                     NULL, "Forward connections open");
    m->memory = lh_metrics_get(reg, LH_METRIC_GAUGE, "loghaul_collector_forward_memory_bytes",
                               NULL, "bytes Forward connections hold (frame buffers, socket "
                               "input, staging, batches kept for the store), against "
                               "listen.forward.max_memory");
    m->pauses = lh_metrics_get(reg, LH_METRIC_COUNTER,
                               "loghaul_collector_forward_read_pauses_total", NULL,
                               "times a Forward connection stopped reading for max_memory");
    bool ok = m->bytes_in && m->conns_total && m->conns_active && m->memory && m->pauses;
    for (int r = 0; r < N_REASONS; r++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", reason_names[r]);
        m->rejected[r] = lh_metrics_get(reg, LH_METRIC_COUNTER,
                                        "loghaul_collector_frames_rejected_total", labels,
                                        "connections closed for a protocol fault, by reason");
        ok = ok && m->rejected[r];
    }
    return ok ? 0 : LH_ENOMEM;
}

static int setup_tls(struct lh_in_forward *f, char *err, size_t errlen)
{
    if (!lh_tls_on(&f->cfg->tls)) {
        LH_WARN(FWD_LOG, "listen.forward has no TLS: records and shared-key digests travel in "
                         "clear text");
        return 0;
    }
    char why[512];
    f->ssl_ctx = lh_tls_server_ctx(&f->cfg->tls, why, sizeof why);
    if (!f->ssl_ctx) {
        snprintf(err, errlen, "listen.forward.tls: %s", why);
        return LH_ETLS;
    }
    return 0;
}

int lh_in_forward_new(struct event_base *base, const struct lh_forward_listen_cfg *cfg,
                      struct lh_commit *commit, struct lh_metrics *metrics,
                      struct lh_in_forward **out, char *err, size_t errlen)
{
    struct lh_in_forward *f = calloc(1, sizeof *f);
    int rc = LH_ENOMEM;
    if (!f || register_metrics(f, metrics) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    msgpack_sbuffer_init(&f->stage);
    TAILQ_INIT(&f->paused);
    f->resume_ev = event_new(base, -1, 0, on_resume, f);
    f->stall_ev = evtimer_new(base, on_stall, f);
    f->wake_ev = event_new(base, -1, 0, on_wake, f);
    if (!f->resume_ev || !f->stall_ev || !f->wake_ev) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    f->base = base;
    f->cfg = cfg;
    f->commit = commit;
    rc = setup_tls(f, err, errlen);
    if (rc != 0)
        goto fail;
    char bound[128];
    f->lev = lh_net_listen(base, cfg->address, on_accept, f, bound, sizeof bound, err, errlen);
    if (!f->lev) {
        rc = LH_EIO;
        goto fail;
    }
    evconnlistener_set_error_cb(f->lev, on_accept_error);
    const struct lh_net_gate_cfg gc = {.what = "forward", .reg = metrics,
                                       .max_conns = (size_t)cfg->max_connections,
                                       .prefix = "loghaul_collector"};
    if (lh_net_gate_new(base, f->lev, &gc, &f->gate) != 0) {
        snprintf(err, errlen, "out of memory");
        rc = LH_ENOMEM;
        goto fail;
    }
    LH_INFO(FWD_LOG, "forward listening on %s", bound);
    LH_INFO(FWD_LOG, "forward transport: %s%s%s", f->ssl_ctx ? "TLS" : "plain TCP",
            f->ssl_ctx && cfg->tls.require_client_cert ? ", client certificates required" : "",
            cfg->shared_key ? ", shared key" : "");
    *out = f;
    return 0;
fail:
    lh_in_forward_free(f);
    return rc;
}

int lh_in_forward_reload_tls(struct lh_in_forward *f, char *err, size_t errlen)
{
    if (!f->ssl_ctx)
        return 0;
    char why[512];
    SSL_CTX *next = lh_tls_server_ctx(&f->cfg->tls, why, sizeof why);
    if (!next) {
        snprintf(err, errlen, "listen.forward.tls: %s", why);
        return LH_ETLS;
    }
    /* Each open connection's SSL holds its own reference to the old one. */
    SSL_CTX_free(f->ssl_ctx);
    f->ssl_ctx = next;
    return 0;
}

void lh_in_forward_shutdown(struct lh_in_forward *f, void (*done)(void *ud), void *ud)
{
    lh_net_gate_free(f->gate);
    f->gate = NULL;
    if (f->lev) {
        evconnlistener_free(f->lev);
        f->lev = NULL;
    }
    f->done = done;
    f->done_ud = ud;
    for (struct conn *c = f->conns, *next; c; c = next) {
        next = c->next;
        if (!c->closing)
            lh_infwd_close_after_write(c);
    }
    maybe_done(f);
}

void lh_in_forward_free(struct lh_in_forward *f)
{
    if (!f)
        return;
    f->done = NULL;
    while (f->conns)
        conn_free(f->conns);
    lh_net_gate_free(f->gate);
    if (f->lev)
        evconnlistener_free(f->lev);
    if (f->ssl_ctx)
        SSL_CTX_free(f->ssl_ctx);
    msgpack_sbuffer_destroy(&f->stage);
    if (f->resume_ev)
        event_free(f->resume_ev);
    if (f->stall_ev)
        event_free(f->stall_ev);
    if (f->wake_ev)
        event_free(f->wake_ev);
    free(f);
}
