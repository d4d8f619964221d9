#include "common/net/http_guard.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common/base/err.h"
#include "common/base/log.h"
#include "common/net/net.h"
#include "common/base/util.h"

#define TICK_MS 1000
/* evhttp's own header limit sits above the guard's, so the guard answers
 * first with the precise status (evhttp 2.1 answers 400 for both). */
#define EVHTTP_HEADER_SLACK 4096

enum { PH_FIRST_LINE, PH_HEADERS, PH_BODY };
enum { R_URI, R_HEADERS, R_TIMEOUT, N_REASONS };
static const char *const reason_names[N_REASONS] = {"uri_too_long", "headers_too_large",
                                                    "read_timeout"};

/* One connection evhttp accepted, owned by the guard's list. Until
 * registered (pending) the guard holds a reference on bev; after that bev
 * is only touched while fd is still the same socket, which evhttp closes
 * when it frees bev. The input callback (arg: this) goes with bev. */
struct hconn {
    struct hconn *next;
    struct lh_http_guard *g;
    struct bufferevent *bev;
    evutil_socket_t fd;
    dev_t dev;
    ino_t ino;
    int64_t since_ms;         /* start of the current read deadline */
    bool pending, refused;
    int phase;                /* PH_*: where the request being read is */
    size_t head_bytes, col;   /* request line + headers so far; bytes in this line */
};

struct lh_http_guard {
    struct lh_http_limits lim;
    struct evconnlistener *lev;  /* evhttp's */
    struct lh_net_gate *gate;
    struct event *tick;          /* sweeps closed connections, enforces read_timeout */
    struct event *reg;           /* registers pending connections a loop turn later */
    struct hconn *conns;
    struct lh_metric *m_refused[N_REASONS];
};

static bool same_socket(const struct hconn *c)
{
    struct stat st;
    return fstat(c->fd, &st) == 0 && st.st_ino == c->ino && st.st_dev == c->dev;
}

static void conn_drop(struct lh_http_guard *g, struct hconn **link)
{
    struct hconn *c = *link;
    *link = c->next;
    if (c->pending)
        bufferevent_decref(c->bev);
    free(c);
    lh_net_gate_closed(g->gate);
}

/* evhttp reads a request with its read callback set and reading enabled;
 * while it writes an answer it clears the read callback, and while the
 * answer is being prepared it disables reading. */
static bool reading_request(struct bufferevent *bev)
{
    bufferevent_data_cb readcb = NULL;
    bufferevent_getcb(bev, &readcb, NULL, NULL, NULL);
    return readcb && (bufferevent_get_enabled(bev) & EV_READ);
}

static void sweep(struct lh_http_guard *g, bool deadlines)
{
    int64_t now = lh_mono_ms();
    for (struct hconn **link = &g->conns; *link;) {
        struct hconn *c = *link;
        if (c->pending) {
            link = &c->next;
            continue;
        }
        if (!same_socket(c)) {
            conn_drop(g, link);
            continue;
        }
        link = &c->next;
        if (!deadlines)
            continue;
        if (!reading_request(c->bev)) {
            c->since_ms = now;
        } else if (now - c->since_ms >= g->lim.read_timeout_ms) {
            /* evhttp sees the end of the stream and frees the connection. */
            shutdown(c->fd, SHUT_RDWR);
            c->since_ms = now;
            lh_metric_add(g->m_refused[R_TIMEOUT], 1);
            LH_DEBUG("http", "closing a connection: no whole request within read_timeout");
        }
    }
}

/* Answers code itself and ends the connection: evhttp, still waiting for
 * the end of the headers, sees the end of the stream and frees it. Bytes
 * go straight to the socket, and only when evhttp has nothing queued. */
static void refuse(struct hconn *c, struct evbuffer *in, int reason)
{
    static const char *const answers[] = {
        [R_URI] = "HTTP/1.1 414 URI Too Long\r\n",
        [R_HEADERS] = "HTTP/1.1 431 Request Header Fields Too Large\r\n",
    };
    char msg[256];
    int n = snprintf(msg, sizeof msg, "%sContent-Length: 0\r\nConnection: close\r\n"
                     "X-Content-Type-Options: nosniff\r\n\r\n", answers[reason]);
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    c->refused = true;
    lh_metric_add(c->g->m_refused[reason], 1);
    evbuffer_drain(in, evbuffer_get_length(in));
    if (fd < 0)
        return;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        (void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(fd, SHUT_RDWR);
}

/* Follows the request line and headers through the bytes just read. */
static int scan_head(struct hconn *c, const char *p, size_t n)
{
    size_t max = (size_t)c->g->lim.max_header_size;
    for (size_t i = 0; i < n && c->phase != PH_BODY; i++) {
        c->head_bytes++;
        if (p[i] == '\n') {
            c->phase = c->phase == PH_FIRST_LINE ? PH_HEADERS : c->col == 0 ? PH_BODY : c->phase;
            c->col = 0;
        } else if (p[i] != '\r') {
            c->col++;
        }
        if (c->head_bytes > max && c->phase != PH_BODY)
            return c->phase == PH_FIRST_LINE ? R_URI : R_HEADERS;
    }
    return -1;
}

static void on_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
    struct hconn *c = arg;
    size_t len = evbuffer_get_length(in);
    if (info->n_added == 0 || c->refused || c->phase == PH_BODY || info->n_added > len)
        return;
    struct evbuffer_ptr at;
    struct evbuffer_iovec v[8];
    size_t off = len - info->n_added;
    while (off < len && evbuffer_ptr_set(in, &at, off, EVBUFFER_PTR_SET) == 0) {
        int k = evbuffer_peek(in, (ev_ssize_t)(len - off), &at, v, 8);
        for (int i = 0; i < k && i < 8; i++) {
            int reason = scan_head(c, v[i].iov_base, v[i].iov_len);
            if (reason >= 0) {
                refuse(c, in, reason);
                return;
            }
            off += v[i].iov_len;
        }
        if (k <= 0)
            break;
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    sweep(arg, true);
}

static void on_register(evutil_socket_t fd, short what, void *arg)
{
    struct lh_http_guard *g = arg;
    struct timeval wt = {(time_t)(g->lim.write_timeout_ms / 1000),
                         (suseconds_t)(g->lim.write_timeout_ms % 1000) * 1000};
    for (struct hconn **link = &g->conns; *link;) {
        struct hconn *c = *link;
        struct stat st;
        if (!c->pending) {
            link = &c->next;
            continue;
        }
        c->fd = bufferevent_getfd(c->bev);
        if (c->fd < 0 || fstat(c->fd, &st) != 0) {
            conn_drop(g, link);
            continue;
        }
        c->dev = st.st_dev;
        c->ino = st.st_ino;
        /* evhttp sets no timeouts on a server connection; no read timeout
         * here either, since evhttp keeps reading while it answers. */
        bufferevent_set_timeouts(c->bev, NULL, &wt);
        bufferevent_decref(c->bev);
        c->pending = false;
        link = &c->next;
    }
}

static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
    struct lh_http_guard *g = arg;
    struct hconn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c ? bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev || !evbuffer_add_cb(bufferevent_get_input(bev), on_input, c)) {
        if (bev)
            bufferevent_free(bev);
        free(c);
        return NULL; /* evhttp makes its own bufferevent: uncounted */
    }
    bufferevent_incref(bev);
    *c = (struct hconn){.next = g->conns, .g = g, .bev = bev, .fd = -1,
                        .since_ms = lh_mono_ms(), .pending = true};
    g->conns = c;
    if (lh_net_gate_count(g->gate) + 1 >= (size_t)g->lim.max_connections)
        sweep(g, false); /* closed ones may not have been noticed yet */
    lh_net_gate_opened(g->gate);
    event_active(g->reg, EV_TIMEOUT, 1);
    return bev;
}

struct find_guard {
    const struct evconnlistener *lev;
    struct lh_http_guard *found;
};

static int match_tick(const struct event_base *base, const struct event *ev, void *arg)
{
    struct find_guard *q = arg;
    struct lh_http_guard *g = event_get_callback_arg(ev);
    if (event_get_callback(ev) != on_tick || g->lev != q->lev)
        return 0;
    q->found = g;
    return 1;
}

/* evhttp owns the listener's argument (the evhttp), so the guard is found
 * through its tick, the one pending event that points at it. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int e = errno;
    struct find_guard q = {lev, NULL};
    event_base_foreach_event(evconnlistener_get_base(lev), match_tick, &q);
    errno = e;
    if (q.found)
        lh_net_gate_accept_failed(q.found->gate);
}

static int guard_events(struct lh_http_guard *g, struct event_base *base, struct lh_metrics *reg,
                        const char *prefix)
{
    char name[128];
    snprintf(name, sizeof name, "%s_http_refused_total", prefix);
    for (int r = 0; r < N_REASONS; r++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", reason_names[r]);
        g->m_refused[r] = lh_metrics_get(reg, LH_METRIC_COUNTER, name, labels,
                                         "HTTP requests refused (414, 431) or connections closed "
                                         "(read_timeout), by reason");
        if (!g->m_refused[r])
            return LH_ENOMEM;
    }
    g->tick = event_new(base, -1, EV_PERSIST, on_tick, g);
    g->reg = event_new(base, -1, 0, on_register, g);
    struct timeval tv = {TICK_MS / 1000, 0};
    if (!g->tick || !g->reg || event_add(g->tick, &tv) != 0)
        return LH_ENOMEM;
    return LH_OK;
}

int lh_http_guard_new(struct event_base *base, struct evhttp *http, const char *addr,
                      const char *what, const struct lh_http_limits *lim, struct lh_metrics *reg,
                      const char *prefix, struct lh_http_guard **out, char *err, size_t errlen)
{
    struct lh_http_guard *g = calloc(1, sizeof *g);
    struct evhttp_bound_socket *bs;
    int rc = LH_ENOMEM;
    if (!g || guard_events(g, base, reg, prefix) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    g->lim = *lim;
    evhttp_set_max_headers_size(http, (ev_ssize_t)lim->max_header_size + EVHTTP_HEADER_SLACK);
    evhttp_set_max_body_size(http, (ev_ssize_t)lim->max_body_size);
    rc = lh_net_http_bind(http, addr, what, &bs, err, errlen);
    if (rc != 0)
        goto fail;
    g->lev = evhttp_bound_socket_get_listener(bs);
    const struct lh_net_gate_cfg gc = {.what = "http", .max_conns = (size_t)lim->max_connections,
                                       .reg = reg, .prefix = prefix};
    if (lh_net_gate_new(base, g->lev, &gc, &g->gate) != 0) {
        snprintf(err, errlen, "out of memory");
        rc = LH_ENOMEM;
        goto fail;
    }
    evconnlistener_set_error_cb(g->lev, on_accept_error);
    evhttp_set_bevcb(http, on_new_conn, g);
    *out = g;
    return LH_OK;
fail:
    lh_http_guard_free(g);
    return rc;
}

void lh_http_guard_request(struct lh_http_guard *g, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    for (struct hconn *c = g->conns; bev && c; c = c->next) {
        if (c->bev == bev) {
            c->since_ms = lh_mono_ms();
            c->phase = PH_FIRST_LINE;
            c->head_bytes = c->col = 0;
            return;
        }
    }
}

size_t lh_http_guard_connections(const struct lh_http_guard *g)
{
    return lh_net_gate_count(g->gate);
}

void lh_http_guard_free(struct lh_http_guard *g)
{
    if (!g)
        return;
    while (g->conns) {
        struct hconn *c = g->conns;
        g->conns = c->next;
        if (c->pending)
            bufferevent_decref(c->bev);
        free(c);
    }
    if (g->tick)
        event_free(g->tick);
    if (g->reg)
        event_free(g->reg);
    lh_net_gate_free(g->gate);
    free(g);
}
