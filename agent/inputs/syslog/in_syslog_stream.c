/* The syslog input's stream connections (TCP, TLS, unix stream): one
 * bufferevent and one RFC 6587 frame decoder each, and the memory budget
 * they share.
 *
 * Memory: a connection holds its decoder's buffer (what a message split
 * across reads needs, up to max_message + 1) and what libevent has read
 * for it (at most READ_HIGH_WATER, one read). All stream connections of
 * an input together hold at most `max_memory`: a connection whose decoder
 * would grow past it stops reading ("waits") until memory is released,
 * and its sender is pushed back by TCP flow control. Connections holding
 * half-sent messages could wait for each other forever, so when some wait
 * and none could read again for STALL_MS, the largest holder is closed
 * (logged and counted; its unfinished message is lost, the rest of the
 * stream was delivered). The pipeline's own backpressure (in->paused) is
 * not a stall. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/inputs/syslog/in_syslog_int.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/net/net.h"

/* With connections waiting for memory and none able to read again for
 * this long, the largest holder is closed. */
#define STALL_MS 1000

struct sl_conn {
    struct sl_conn *prev, *next;
    struct sl_listener *l;
    struct bufferevent *bev;
    struct lh_syslog_frame fr;
    size_t held;                 /* what it counts against max_memory */
    bool waiting;                /* stopped reading for max_memory */
    char peer[160];
};

static const struct timeval stall_tv = {STALL_MS / 1000, (STALL_MS % 1000) * 1000};

/* ---- memory budget ------------------------------------------------------ */

static size_t conn_usage(const struct sl_conn *c)
{
    return lh_syslog_frame_held(&c->fr) + evbuffer_get_length(bufferevent_get_input(c->bev));
}

/* Accounts c's holding going to now; a release wakes the waiting
 * connections (from the loop, not from here). */
static void mem_account(struct sl_conn *c, size_t now)
{
    struct sl_budget *b = &c->l->in->mem;
    if (now < c->held && b->n_waiting > 0)
        event_active(b->resume_ev, EV_TIMEOUT, 0);
    b->held = b->held - c->held + now;
    c->held = now;
    lh_metric_set(b->m_bytes, (int64_t)b->held);
}

static void mem_sync(struct sl_conn *c)
{
    mem_account(c, conn_usage(c));
}

/* The most c's decoder buffer may grow to now: what it has plus the
 * budget's room. */
static size_t mem_limit(const struct sl_conn *c)
{
    const struct in_syslog *in = c->l->in;
    size_t max = (size_t)in->cfg->max_memory, have = lh_syslog_frame_held(&c->fr);
    return in->mem.held < max ? have + (max - in->mem.held) : have;
}

/* Stops reading c until memory is released; counted when c was reading
 * (a retry that still does not fit is no new pause). */
static void conn_wait(struct sl_conn *c, bool counted)
{
    struct sl_budget *b = &c->l->in->mem;
    c->waiting = true;
    b->n_waiting++;
    bufferevent_disable(c->bev, EV_READ);
    if (counted) {
        lh_metric_add(b->m_pauses, 1);
        LH_DEBUG(SYSLOG_LOG, "[%s] %s: max_memory reached (%zu bytes held), reading paused",
                 c->l->in->cfg->tag, c->peer, b->held);
    }
    if (!evtimer_pending(b->stall_ev, NULL)) {
        b->resumed = false;
        evtimer_add(b->stall_ev, &stall_tv);
    }
}

static void conn_unwait(struct sl_conn *c)
{
    if (!c->waiting)
        return;
    c->waiting = false;
    c->l->in->mem.n_waiting--;
}

/* ---- connections -------------------------------------------------------- */

static void conn_free(struct sl_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->l->gate)
        lh_net_gate_closed(c->l->gate);
    conn_unwait(c);
    lh_syslog_frame_free(&c->fr);
    mem_account(c, 0);
    bufferevent_free(c->bev);
    free(c);
}

static void on_message(void *ud, const char *p, size_t n, bool truncated)
{
    struct sl_conn *c = ud;
    c->l->received++;
    sl_emit(c->l->in, p, n, truncated, c->peer);
}

/* Feeds what the connection has read to its decoder: all of it when
 * force (the stream ended), else while it may read and within the
 * budget. 0, LH_AGAIN when the decoder needs memory the budget does not
 * have (c must wait), or LH_ENOMEM. */
static int drain(struct sl_conn *c, bool force)
{
    struct in_syslog *in = c->l->in;
    struct evbuffer *buf = bufferevent_get_input(c->bev);
    int rc = LH_OK;
    mem_sync(c);
    while (rc == LH_OK && (force || (!in->paused && !c->waiting)) && !in->stopped &&
           evbuffer_get_length(buf) > 0) {
        struct evbuffer_iovec v;
        size_t used;
        if (evbuffer_peek(buf, -1, NULL, &v, 1) < 1)
            break;
        rc = lh_syslog_frame_feed_upto(&c->fr, v.iov_base, v.iov_len,
                                       force ? SIZE_MAX : mem_limit(c), on_message, c, &used);
        evbuffer_drain(buf, used);
        mem_sync(c);
    }
    if (rc == LH_ENOMEM)
        LH_ERROR(SYSLOG_LOG, "[%s] out of memory reading %s: closing it", in->cfg->tag, c->peer);
    return rc;
}

/* Handles what c has read (retry: c was waiting and tries again); false
 * when c is gone. */
static bool conn_read(struct sl_conn *c, bool retry)
{
    struct in_syslog *in = c->l->in;
    int rc = drain(c, false);
    if (rc == LH_ENOMEM) {
        conn_free(c);
        return false;
    }
    if (rc == LH_AGAIN)
        conn_wait(c, !retry);
    if (!in->paused)
        lh_route_idle(in->route); /* what arrived is batched: no max_wait for it */
    return true;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    conn_read(arg, false);
}

/* Memory was released: waiting connections try again, in turn, while the
 * budget has room; one whose decoder could take its bytes reads again. */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct in_syslog *in = arg;
    size_t max = (size_t)in->cfg->max_memory;
    for (struct sl_listener *l = in->listeners; l; l = l->next) {
        for (struct sl_conn *c = l->conns, *next; c; c = next) {
            next = c->next;
            if (in->paused || in->stopped || in->mem.held >= max)
                return;
            if (!c->waiting)
                continue;
            conn_unwait(c);
            if (!conn_read(c, true) || c->waiting)
                continue;
            in->mem.resumed = true;
            if (!in->paused) /* else the pipeline's resume enables it */
                bufferevent_enable(c->bev, EV_READ);
        }
    }
}

static struct sl_conn *largest_holder(struct in_syslog *in)
{
    struct sl_conn *big = NULL;
    for (struct sl_listener *l = in->listeners; l; l = l->next)
        for (struct sl_conn *c = l->conns; c; c = c->next)
            if (!big || c->held > big->held)
                big = c;
    return big;
}

/* Connections wait and none could read again for STALL_MS: every holder
 * may itself be waiting (half-sent messages), so the largest is closed. */
static void on_stall(evutil_socket_t fd, short what, void *arg)
{
    struct in_syslog *in = arg;
    struct sl_budget *b = &in->mem;
    struct sl_conn *big = b->n_waiting && !b->resumed && !in->paused ? largest_holder(in) : NULL;
    if (big) {
        LH_WARN(SYSLOG_LOG, "[%s] max_memory (%lld bytes) full for %d ms with %zu connections "
                "waiting: closing %s, which holds the most (%zu bytes; its unfinished message "
                "is lost)", in->cfg->tag, (long long)in->cfg->max_memory, STALL_MS, b->n_waiting,
                big->peer, big->held);
        lh_metric_add(b->m_closes, 1);
        conn_free(big);
    }
    b->resumed = false;
    if (b->n_waiting > 0)
        evtimer_add(b->stall_ev, &stall_tv);
}

int sl_budget_init(struct in_syslog *in)
{
    in->mem.resume_ev = event_new(in->ctx.base, -1, 0, on_resume, in);
    in->mem.stall_ev = evtimer_new(in->ctx.base, on_stall, in);
    return in->mem.resume_ev && in->mem.stall_ev ? LH_OK : LH_ENOMEM;
}

void sl_budget_free(struct in_syslog *in)
{
    if (in->mem.resume_ev)
        event_free(in->mem.resume_ev);
    if (in->mem.stall_ev)
        event_free(in->mem.stall_ev);
    in->mem.resume_ev = in->mem.stall_ev = NULL;
}

static void tls_reason(struct bufferevent *bev, char *buf, size_t len)
{
    unsigned long e;
    buf[0] = '\0';
    while ((e = bufferevent_get_openssl_error(bev)) != 0)
        if (!buf[0] && ERR_reason_error_string(e))
            snprintf(buf, len, "%s", ERR_reason_error_string(e));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct sl_conn *c = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    if (what & BEV_EVENT_ERROR) {
        char why[256] = "";
        if (c->l->kind == SL_TLS)
            tls_reason(bev, why, sizeof why);
        LH_INFO(SYSLOG_LOG, "[%s] closing %s: %s", c->l->in->cfg->tag, c->peer,
                why[0] ? why : errno ? strerror(errno) : "connection error");
    }
    /* What is still buffered was sent: deliver it before letting go, even
     * past a pause or the budget (at most one read and one message). */
    if (!c->l->in->stopped && drain(c, true) == 0)
        lh_syslog_frame_finish(&c->fr, on_message, c);
    conn_free(c);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct sl_listener *l = arg;
    struct in_syslog *in = l->in;
    struct sl_conn *c = calloc(1, sizeof *c);
    SSL *ssl = NULL;
    if (!c || (l->kind == SL_TLS && !(ssl = SSL_new(in->ssl_ctx)))) {
        LH_ERROR(SYSLOG_LOG, "[%s] out of memory accepting a connection", in->cfg->tag);
        free(c);
        evutil_closesocket(fd);
        return;
    }
    /* Syslog senders close without close_notify; every whole message read
     * counts, as over plain TCP. */
    if (ssl)
        SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    c->l = l;
    if (l->kind == SL_UNIX_STREAM)
        snprintf(c->peer, sizeof c->peer, "%s", l->bound);
    else
        lh_net_addr_string(sa, c->peer, sizeof c->peer);
    lh_syslog_frame_init(&c->fr, (size_t)in->cfg->max_message);
    if (!(c->bev = lh_net_accept_bev(in->ctx.base, fd, ssl))) {
        LH_ERROR(SYSLOG_LOG, "[%s] cannot set up the connection from %s", in->cfg->tag, c->peer);
        free(c);
        return;
    }
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    lh_net_gate_opened(l->gate);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, SL_READ_HIGH_WATER);
    if (!in->paused)
        bufferevent_enable(c->bev, EV_READ);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct sl_listener *l = arg;
    lh_net_gate_accept_failed(l->gate);
}

int sl_stream_open(struct sl_listener *l, const char *rest, char *err, size_t errlen)
{
    const unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    struct event_base *base = l->in->ctx.base;
    char addr[128];
    if (l->kind == SL_UNIX_STREAM) {
        int rc = sl_bind_unix(l, rest, SOCK_STREAM, err, errlen);
        if (rc != 0)
            return rc;
        l->lev = evconnlistener_new(base, on_accept, l, flags, 128, l->fd);
        if (!l->lev) {
            snprintf(err, errlen, "cannot listen on %s: %s", l->url, strerror(errno));
            return LH_EIO;
        }
        l->fd = -1; /* the listener closes it */
    } else {
        l->lev = lh_net_listen(base, rest, on_accept, l, addr, sizeof addr, err, errlen);
        if (!l->lev)
            return LH_EIO;
        snprintf(l->bound, sizeof l->bound, "%s://%s", l->kind == SL_TLS ? "tls" : "tcp", addr);
    }
    evconnlistener_disable(l->lev);
    evconnlistener_set_error_cb(l->lev, on_accept_error);
    const struct lh_net_gate_cfg gc = {.what = l->bound,
                                       .max_conns = (size_t)l->in->cfg->max_connections,
                                       .stopped = true, .reg = l->in->ctx.metrics,
                                       .prefix = "loghaul_agent"};
    if (lh_net_gate_new(base, l->lev, &gc, &l->gate) != 0)
        return LH_ENOMEM;
    LH_INFO(SYSLOG_LOG, "syslog listening on %s", l->bound);
    return LH_OK;
}

void sl_streams_pause(struct sl_listener *l, bool paused)
{
    for (struct sl_conn *c = l->conns; c; c = c->next) {
        if (paused) {
            bufferevent_disable(c->bev, EV_READ);
        } else if (!c->waiting) {
            bufferevent_enable(c->bev, EV_READ);
            /* Bytes read before the pause wait in the buffer. */
            bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
        }
    }
    if (!paused && l->in->mem.n_waiting > 0)
        event_active(l->in->mem.resume_ev, EV_TIMEOUT, 0);
}

void sl_streams_stop(struct sl_listener *l)
{
    for (struct sl_conn *c = l->conns; c; c = c->next)
        bufferevent_disable(c->bev, EV_READ);
}

void sl_streams_free(struct sl_listener *l)
{
    while (l->conns)
        conn_free(l->conns);
}

size_t sl_listener_conns(const struct sl_listener *l)
{
    size_t n = 0;
    for (const struct sl_conn *c = l->conns; c; c = c->next)
        n++;
    return n;
}
