/* The collector's `forward` output: accepted batches whose tag matches go
 * on to downstream Forward receivers (Fluentd, Fluent Bit, another
 * collector).
 *
 * A write makes the batch durable in a spool first (common/chunkq under
 * data_dir/outputs/forward-N, fsync'd before write returns, so the upstream
 * ack promises it), as one whole PackedForward frame with a fresh chunk id.
 * A sender on the loop ships the spool in order over one connection at a
 * time, up to max_in_flight frames, and consumes a chunk on its ack. A
 * collector that fails (connect, handshake, ack timeout) hands its frames
 * back and the next one in the list is tried, after a backoff once all
 * have failed in a row. A full spool refuses writes: the upstream sender
 * is not acked and retries. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/outputs/output.h"
#include "common/chunkq/chunkq.h"
#include "common/base/err.h"
#include "common/codec/forward.h"
#include "common/base/log.h"
#include "common/net/net.h"
#include "common/net/tls.h"
#include "common/base/util.h"

#define CFWD_LOG "out_forward"
#define MAX_REPLY (64u << 10)
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

struct cfwd_cfg {
    struct lh_cfg_item item;
    char *match;
    struct lh_strlist collectors;
    struct lh_tls_cfg tls;
    char *shared_key;
    int64_t ack_timeout_ms;
    int64_t max_in_flight;
    int64_t max_size;
};

static int validate(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct cfwd_cfg *c = obj;
    for (size_t i = 0; i < c->collectors.n; i++) {
        char host[256];
        int port;
        if (lh_split_hostport(c->collectors.v[i], host, sizeof host, &port) != 0)
            return lh_cfg_error(d, line, col, "forward output: collector '%s' is not host:port",
                                c->collectors.v[i]);
    }
    if (c->collectors.n == 0)
        return lh_cfg_error(d, line, col, "forward output: collectors must name at least one");
    if (c->shared_key && !c->shared_key[0])
        return lh_cfg_error(d, line, col, "forward output: shared_key must not be empty");
    return 0;
}

static const struct lh_cfg_field fields[] = {
    {.key = "match", .type = LH_CFG_STR, .offset = offsetof(struct cfwd_cfg, match), .defval = "*",
     .help = "fnmatch(3) glob on the tag"},
    {.key = "collectors", .type = LH_CFG_STRLIST, .offset = offsetof(struct cfwd_cfg, collectors),
     .flags = LH_CFG_F_REQUIRED,
     .help = "host:port of each downstream receiver, tried in order (failover)",
     .check = lh_cfg_check_hostport},
    {.key = "tls", .type = LH_CFG_SECTION, .offset = offsetof(struct cfwd_cfg, tls),
     .sub = &lh_tls_cfg_schema, .help = "TLS to the receivers"},
    {.key = "shared_key", .type = LH_CFG_STR, .offset = offsetof(struct cfwd_cfg, shared_key),
     .help = "Forward shared-key handshake"},
    {.key = "ack_timeout", .type = LH_CFG_DURATION,
     .offset = offsetof(struct cfwd_cfg, ack_timeout_ms), .defval = "30s", .min = 100,
     .max = 3600000, .help = "a frame not acknowledged in time is resent on a new connection"},
    {.key = "max_in_flight", .type = LH_CFG_INT, .offset = offsetof(struct cfwd_cfg, max_in_flight),
     .defval = "8", .min = 1, .max = 1024, .help = "unacknowledged frames on the connection"},
    {.key = "max_size", .type = LH_CFG_SIZE, .offset = offsetof(struct cfwd_cfg, max_size),
     .defval = "1GiB", .min = 64 << 10, .max = INT64_MAX / 2,
     .help = "spool bound; past it writes are refused (the sender retries)"},
    {0},
};

const struct lh_cfg_schema lh_coll_out_forward_schema = {
    .name = "forward output",
    .size = sizeof(struct cfwd_cfg),
    .fields = fields,
    .validate = validate,
};

/* A spooled chunk, pending or in flight. */
struct spooled {
    struct spooled *next;
    struct lh_chunk *c;
    int64_t sent_ms;
};

struct slist {
    struct spooled *head, *tail;
    size_t n;
};

enum { ST_IDLE, ST_CONNECTING, ST_HELO, ST_PONG, ST_READY };

struct cfwd {
    const struct cfwd_cfg *cfg;
    struct event_base *base;
    const char *host;
    SSL_CTX *ssl_ctx;
    struct lh_chunkq *q;
    char dir[PATH_MAX];
    struct slist pending, inflight;
    size_t cur;                 /* the receiver in use or being tried */
    unsigned fails;             /* in a row, all receivers */
    struct bufferevent *bev;
    int st;
    int64_t st_since_ms;
    struct lh_mp_scan scan;
    struct lh_fwd_helo helo;
    struct lh_fwd_ping ping;
    struct event *retry, *tick;
    msgpack_sbuffer frame;
    struct lh_coll_output_metrics m;
    struct lh_metric *acks;
};

static void sl_push(struct slist *l, struct spooled *s)
{
    s->next = NULL;
    if (l->tail)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
    l->n++;
}

static struct spooled *sl_pop(struct slist *l)
{
    struct spooled *s = l->head;
    if (s) {
        l->head = s->next;
        if (!l->head)
            l->tail = NULL;
        l->n--;
    }
    return s;
}

static void sl_free(struct slist *l)
{
    struct spooled *s;
    while ((s = sl_pop(l)))
        free(s);
}

static void send_pending(struct cfwd *o);
static void connect_next(struct cfwd *o);

/* ---- the connection ------------------------------------------------------ */

static void set_state(struct cfwd *o, int st)
{
    o->st = st;
    o->st_since_ms = lh_mono_ms();
}

/* The receiver failed: its frames go back in front, oldest first, and the
 * next receiver is tried (after a backoff once every one failed). */
static void conn_failed(struct cfwd *o, const char *why)
{
    LH_WARN(CFWD_LOG, "receiver %s: %s", o->cfg->collectors.v[o->cur], why);
    if (o->bev) {
        bufferevent_free(o->bev);
        o->bev = NULL;
    }
    if (o->inflight.head) {
        o->inflight.tail->next = o->pending.head;
        if (!o->pending.tail)
            o->pending.tail = o->inflight.tail;
        o->pending.head = o->inflight.head;
        o->pending.n += o->inflight.n;
        o->inflight = (struct slist){0};
    }
    set_state(o, ST_IDLE);
    o->cur = (o->cur + 1) % o->cfg->collectors.n;
    o->fails++;
    int64_t d = 0;
    if (o->fails >= o->cfg->collectors.n) {
        d = BACKOFF_MIN_MS;
        for (unsigned i = (unsigned)o->cfg->collectors.n; i < o->fails && d < BACKOFF_MAX_MS; i++)
            d *= 2;
        d = d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS;
    }
    struct timeval tv = {d / 1000, (d % 1000) * 1000};
    evtimer_add(o->retry, &tv);
}

static void conn_ready(struct cfwd *o)
{
    set_state(o, ST_READY);
    LH_INFO(CFWD_LOG, "connected to receiver %s%s", o->cfg->collectors.v[o->cur],
            o->ssl_ctx ? " (TLS)" : "");
    send_pending(o);
}

static int on_helo(struct cfwd *o, const msgpack_object *obj)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    if (lh_fwd_parse_helo(obj, &o->helo) != 0) {
        conn_failed(o, "expected HELO for the shared-key handshake");
        return LH_EPROTO;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = lh_fwd_pack_ping(&pk, &o->helo, o->host, o->cfg->shared_key, NULL, NULL, &o->ping);
    if (rc == 0)
        rc = bufferevent_write(o->bev, sb.data, sb.size) == 0 ? 0 : LH_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) {
        conn_failed(o, "cannot send PING");
        return rc;
    }
    set_state(o, ST_PONG);
    return 0;
}

static int on_pong(struct cfwd *o, const msgpack_object *obj)
{
    char reason[256] = "", msg[400];
    int rc = lh_fwd_check_pong(obj, &o->helo, &o->ping, o->cfg->shared_key, reason,
                               sizeof reason);
    if (rc == 0) {
        conn_ready(o);
        return 0;
    }
    snprintf(msg, sizeof msg, "shared-key handshake failed: %s",
             rc == LH_EAUTH ? reason : "malformed PONG");
    conn_failed(o, msg);
    return rc;
}

static int on_ack(struct cfwd *o, const msgpack_object *obj)
{
    const char *id;
    size_t len;
    if (obj->type == MSGPACK_OBJECT_NIL)
        return 0; /* heartbeat */
    if (lh_fwd_parse_ack(obj, &id, &len) != 0) {
        struct lh_fwd_helo h;
        conn_failed(o, lh_fwd_parse_helo(obj, &h) == 0
                           ? "the receiver wants a shared-key handshake: set shared_key"
                           : "unexpected reply (not an ack)");
        return LH_EPROTO;
    }
    struct spooled *prev = NULL, *s = o->inflight.head;
    while (s && (len != LH_CHUNK_ID_LEN || memcmp(s->c->id, id, len) != 0)) {
        prev = s;
        s = s->next;
    }
    if (!s)
        return 0; /* a late ack of a frame already handed back */
    if (prev)
        prev->next = s->next;
    else
        o->inflight.head = s->next;
    if (o->inflight.tail == s)
        o->inflight.tail = prev;
    o->inflight.n--;
    lh_metric_add(o->acks, 1);
    o->fails = 0;
    lh_chunkq_ack(o->q, s->c);
    free(s);
    return 0;
}

static int on_reply(struct cfwd *o, const msgpack_object *obj)
{
    switch (o->st) {
    case ST_HELO:
        return on_helo(o, obj);
    case ST_PONG:
        return on_pong(o, obj);
    case ST_READY:
        return on_ack(o, obj);
    default:
        return LH_EPROTO;
    }
}

/* One reply from the front of in; LH_AGAIN when it is not all there. */
static int next_reply(struct cfwd *o, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in), flen = 0;
    if (len == 0)
        return LH_AGAIN;
    size_t scan_len = len < MAX_REPLY ? len : MAX_REPLY;
    const uint8_t *data = evbuffer_pullup(in, (ev_ssize_t)scan_len);
    int rc = data ? lh_mp_scan(&o->scan, data, scan_len, MAX_REPLY, &flen) : LH_ENOMEM;
    if (rc == LH_AGAIN && len >= MAX_REPLY)
        rc = LH_ETOOBIG;
    if (rc == LH_AGAIN)
        return rc;
    /* Copied out first: handling it may close the connection and free its
     * buffers. */
    char *reply = rc == 0 ? malloc(flen) : NULL;
    if (!reply) {
        conn_failed(o, rc == 0 ? "out of memory" : "malformed reply from the receiver");
        return rc == 0 ? LH_ENOMEM : rc;
    }
    memcpy(reply, data, flen);
    evbuffer_drain(in, flen);
    lh_mp_scan_init(&o->scan);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, reply, flen, &off) == MSGPACK_UNPACK_SUCCESS) {
        rc = on_reply(o, &u.data);
    } else {
        conn_failed(o, "undecodable reply from the receiver");
        rc = LH_EPROTO;
    }
    msgpack_unpacked_destroy(&u);
    free(reply);
    return rc;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct cfwd *o = arg;
    while (o->bev == bev && next_reply(o, bufferevent_get_input(bev)) == 0)
        ;
    send_pending(o);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct cfwd *o = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        lh_mp_scan_init(&o->scan);
        if (o->cfg->shared_key)
            set_state(o, ST_HELO);
        else
            conn_ready(o);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        char why[300];
        int e = EVUTIL_SOCKET_ERROR();
        snprintf(why, sizeof why, "%s%s",
                 o->st == ST_CONNECTING ? "cannot connect: " : "connection lost: ",
                 (what & BEV_EVENT_EOF) ? "closed by the receiver"
                 : e                    ? evutil_socket_error_to_string(e)
                                        : "TLS or connection error");
        conn_failed(o, why);
    }
}

static void connect_next(struct cfwd *o)
{
    char host[256];
    int port;
    const char *target = o->cfg->collectors.v[o->cur];
    lh_split_hostport(target, host, sizeof host, &port);
    SSL *ssl = NULL;
    if (o->ssl_ctx &&
        !(ssl = lh_tls_client_ssl(o->ssl_ctx, o->cfg->tls.server_name ? o->cfg->tls.server_name
                                                                      : host))) {
        conn_failed(o, "cannot create a TLS session");
        return;
    }
    set_state(o, ST_CONNECTING);
    o->bev = lh_net_connect_bev(o->base, NULL, host, port, ssl);
    if (!o->bev) {
        conn_failed(o, "cannot start connecting");
        return;
    }
    bufferevent_setcb(o->bev, on_read, NULL, on_event, o);
    bufferevent_enable(o->bev, EV_READ | EV_WRITE);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct cfwd *o = arg;
    if (o->st == ST_IDLE && (o->pending.head || o->inflight.head))
        connect_next(o);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct cfwd *o = arg;
    int64_t now = lh_mono_ms(), lim = o->cfg->ack_timeout_ms;
    /* Acks recorded and segments consumed since the last write: made
     * durable (and deleted) here, so a restart resends little. */
    if (lh_chunkq_dirty(o->q) && lh_chunkq_sync(o->q) != 0)
        LH_WARN(CFWD_LOG, "syncing spool %s failed", o->dir);
    if (o->st == ST_READY && o->inflight.head && now - o->inflight.head->sent_ms > lim)
        conn_failed(o, "no acknowledgement within ack_timeout");
    else if (o->st != ST_IDLE && o->st != ST_READY && now - o->st_since_ms > lim)
        conn_failed(o, "no handshake within ack_timeout");
}

/* Frames to the ready connection while the window allows. */
static void send_pending(struct cfwd *o)
{
    while (o->st == ST_READY && o->pending.head &&
           (int64_t)o->inflight.n < o->cfg->max_in_flight) {
        struct spooled *s = sl_pop(&o->pending);
        char *frame = NULL;
        int rc = lh_chunkq_read(o->q, s->c, &frame);
        if (rc == LH_ECORRUPT) {
            LH_ERROR(CFWD_LOG, "spooled chunk %s in %s failed its checksum: %u records dropped",
                     s->c->id, o->dir, s->c->n_records);
            lh_metric_add(o->m.errors, 1);
            lh_chunkq_ack(o->q, s->c);
            free(s);
            continue;
        }
        if (rc == 0 && bufferevent_write(o->bev, frame, s->c->payload_len) != 0)
            rc = LH_ENOMEM;
        free(frame);
        sl_push(&o->inflight, s); /* handed back on failure, with the others */
        if (rc != 0) {
            conn_failed(o, "cannot send a spooled frame");
            return;
        }
        s->sent_ms = lh_mono_ms();
    }
}

static void kick(struct cfwd *o)
{
    if (o->st == ST_READY)
        send_pending(o);
    else if (o->st == ST_IDLE && !evtimer_pending(o->retry, NULL))
        connect_next(o);
}

/* ---- the spool ----------------------------------------------------------- */

/* The batch's events [tag, time, record] as PackedForward entries [time,
 * record] in one frame with a fresh chunk id, in o->frame. */
static int build_frame(struct cfwd *o, const struct lh_coll_batch *b, char *id)
{
    msgpack_sbuffer entries;
    msgpack_sbuffer_init(&entries);
    const uint8_t *p = (const uint8_t *)b->events;
    size_t off = 0;
    int rc = lh_fwd_chunk_id(id);
    while (rc == 0 && off < b->events_len) {
        size_t ev = lh_mp_extent(p + off, b->events_len - off);
        size_t tag = ev > 1 && p[off] == 0x93 ? lh_mp_extent(p + off + 1, ev - 1) : 0;
        if (tag == 0) {
            rc = LH_EPROTO;
            break;
        }
        static const char arr2 = (char)0x92;
        if (msgpack_sbuffer_write(&entries, &arr2, 1) != 0 ||
            msgpack_sbuffer_write(&entries, (const char *)p + off + 1 + tag, ev - 1 - tag) != 0)
            rc = LH_ENOMEM;
        off += ev;
    }
    msgpack_packer pk;
    o->frame.size = 0;
    msgpack_packer_init(&pk, &o->frame, msgpack_sbuffer_write);
    if (rc == 0)
        rc = lh_fwd_pack_packed(&pk, b->tag, strlen(b->tag), entries.data, entries.size,
                                b->n_events, id, LH_CHUNK_ID_LEN, false);
    msgpack_sbuffer_destroy(&entries);
    return rc;
}

static int cfwd_write(void *state, const struct lh_coll_batch *b)
{
    struct cfwd *o = state;
    if (b->n_events == 0 || fnmatch(o->cfg->match, b->tag, 0) != 0)
        return LH_OK;
    char id[LH_CHUNK_ID_LEN + 1];
    int rc = build_frame(o, b, id);
    struct spooled *s = rc == 0 ? calloc(1, sizeof *s) : NULL;
    if (rc == 0 && !s)
        rc = LH_ENOMEM;
    if (rc == 0)
        rc = lh_coll_spool(o->q, o->dir, b, id, o->frame.data, o->frame.size, &s->c);
    if (rc != 0) {
        free(s);
        lh_metric_add(o->m.errors, 1);
        return rc;
    }
    sl_push(&o->pending, s);
    lh_metric_add(o->m.records, (int64_t)b->n_events);
    lh_metric_add(o->m.batches, 1);
    kick(o);
    return LH_OK;
}

static void on_replay(void *ud, struct lh_chunk *c)
{
    struct cfwd *o = ud;
    struct spooled *s = calloc(1, sizeof *s);
    if (!s) {
        LH_ERROR(CFWD_LOG, "out of memory replaying %s: chunk %s waits for the next start",
                 o->dir, c->id);
        return;
    }
    s->c = c;
    sl_push(&o->pending, s);
}

static int cfwd_create(const struct lh_cfg_item *item, const struct lh_coll_output_ctx *ctx,
                       size_t index, void **state, char *err, size_t errlen)
{
    struct cfwd *o = calloc(1, sizeof *o);
    if (!o)
        return LH_ENOMEM;
    *state = o;
    o->cfg = (const struct cfwd_cfg *)item;
    o->base = ctx->base;
    o->host = ctx->host;
    msgpack_sbuffer_init(&o->frame);
    int rc = lh_coll_output_metrics(ctx->metrics, "forward", &o->m);
    o->acks = lh_metrics_get(ctx->metrics, LH_METRIC_COUNTER, "loghaul_collector_output_acks_total",
                             "output=\"forward\"", "Acknowledgements from downstream receivers");
    o->retry = evtimer_new(o->base, on_retry, o);
    o->tick = event_new(o->base, -1, EV_PERSIST, on_tick, o);
    static const struct timeval sec = {1, 0};
    if (rc != 0 || !o->acks || !o->retry || !o->tick || event_add(o->tick, &sec) != 0) {
        snprintf(err, errlen, "forward output: out of memory");
        return LH_ENOMEM;
    }
    if (lh_tls_on(&o->cfg->tls)) {
        char why[512] = "";
        if (!(o->ssl_ctx = lh_tls_client_ctx(&o->cfg->tls, why, sizeof why))) {
            snprintf(err, errlen, "forward output (line %d): TLS: %s", item->line, why);
            return LH_ETLS;
        }
    }
    snprintf(o->dir, sizeof o->dir, "%s/outputs/forward-%zu", ctx->data_dir, index);
    struct lh_chunkq_opts qo = {.dir = o->dir, .max_size = o->cfg->max_size,
                                .on_chunk = on_replay, .ud = o};
    char why[512] = "";
    if ((rc = lh_chunkq_open(&qo, &o->q, why, sizeof why)) != 0) {
        snprintf(err, errlen, "forward output (line %d): spool: %s", item->line, why);
        return rc;
    }
    if (o->pending.head) {
        LH_INFO(CFWD_LOG, "spool %s: %zu batches to send from the last run", o->dir,
                o->pending.n);
        kick(o);
    }
    return LH_OK;
}

static void cfwd_destroy(void *state)
{
    struct cfwd *o = state;
    if (!o)
        return;
    if (o->bev)
        bufferevent_free(o->bev);
    if (o->retry)
        event_free(o->retry);
    if (o->tick)
        event_free(o->tick);
    sl_free(&o->pending);
    sl_free(&o->inflight);
    lh_chunkq_close(o->q);
    SSL_CTX_free(o->ssl_ctx);
    msgpack_sbuffer_destroy(&o->frame);
    free(o);
}

const struct lh_coll_output_ops lh_coll_out_forward_ops = {
    .type = "forward",
    .schema = &lh_coll_out_forward_schema,
    .create = cfwd_create,
    .write = cfwd_write,
    .destroy = cfwd_destroy,
};
