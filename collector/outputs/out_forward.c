/* The collector's `forward` output: accepted batches whose tag matches go
 * on to downstream Forward receivers (Fluentd, Fluent Bit, another
 * collector).
 *
 * A write makes the batch durable in a spool first (common/chunkq under
 * data_dir/outputs/forward-N, fsync'd before write returns, so the upstream
 * ack promises it), as one whole PackedForward frame with a fresh chunk id.
 * A sender on the loop ships the spool in order through one Forward client
 * (common/net/fwd_client) holding one connection at a time, up to
 * max_in_flight frames, and consumes a chunk on its ack. A receiver that
 * fails (connect, handshake, ack timeout) hands its frames back and the
 * client tries the next one in the list, after a jittered backoff once all
 * have failed in a row. A full spool refuses writes: the upstream sender
 * is not acked and retries. */
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/outputs/output.h"
#include "common/chunkq/chunkq.h"
#include "common/base/err.h"
#include "common/codec/forward.h"
#include "common/base/log.h"
#include "common/net/fwd_client.h"
#include "common/net/tls.h"
#include "common/base/util.h"

#define CFWD_LOG "out_forward"
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

/* A spooled chunk, pending or in the client's window. */
struct spooled {
    struct spooled *next;
    struct lh_chunk *c;
};

struct slist {
    struct spooled *head, *tail;
    size_t n;
};

struct cfwd {
    const struct cfwd_cfg *cfg;
    struct event_base *base;
    SSL_CTX *ssl_ctx;
    struct lh_chunkq *q;
    char dir[PATH_MAX];
    struct slist pending;       /* not in flight, oldest first */
    struct lh_fwd_client *cl;
    struct event *tick;
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

static void sl_push_front(struct slist *l, struct spooled *s)
{
    s->next = l->head;
    l->head = s;
    if (!l->tail)
        l->tail = s;
    l->n++;
}

/* ---- sending ------------------------------------------------------------ */

/* Frames to the ready connection while the window allows. A frame that
 * cannot be read back now stays first in line for the next turn. */
static void send_pending(struct cfwd *o)
{
    while (o->pending.head && lh_fwd_client_has_room(o->cl)) {
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
        if (rc != 0) {
            LH_ERROR(CFWD_LOG, "reading chunk %s back from %s: %s (retrying)", s->c->id, o->dir,
                     lh_strerror(rc));
            sl_push_front(&o->pending, s);
            return;
        }
        if (lh_fwd_client_send_owned(o->cl, s->c->id, s, frame, s->c->payload_len) != 0)
            return; /* the client failed and handed s back */
    }
}

static void kick(struct cfwd *o)
{
    if (lh_fwd_client_ready(o->cl))
        send_pending(o);
    else
        lh_fwd_client_kick(o->cl);
}

static void on_client_ready(void *ud, struct lh_fwd_client *c)
{
    send_pending(ud);
}

static void on_client_ack(void *ud, struct lh_fwd_client *c, void *item)
{
    struct cfwd *o = ud;
    struct spooled *s = item;
    lh_metric_add(o->acks, 1);
    lh_chunkq_ack(o->q, s->c);
    free(s);
    send_pending(o);
}

/* The receiver failed: its frames go back in front, oldest first, for the
 * next one the client tries. */
static void on_client_fail(void *ud, struct lh_fwd_client *c, void *const *items, size_t n,
                           const char *why)
{
    struct cfwd *o = ud;
    for (size_t i = n; i-- > 0;)
        sl_push_front(&o->pending, items[i]);
    if (why && o->pending.head)
        lh_fwd_client_kick(o->cl);
}

static const struct lh_fwd_client_cbs client_cbs = {
    .ready = on_client_ready, .ack = on_client_ack, .fail = on_client_fail};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct cfwd *o = arg;
    /* Acks recorded and segments consumed since the last write: made
     * durable (and deleted) here, so a restart resends little. */
    if (lh_chunkq_dirty(o->q) && lh_chunkq_sync(o->q) != 0)
        LH_WARN(CFWD_LOG, "syncing spool %s failed", o->dir);
    send_pending(o);
}

/* The receivers in order, tried one at a time. */
static int new_client(struct cfwd *o, const struct lh_coll_output_ctx *ctx)
{
    const struct lh_strlist *rs = &o->cfg->collectors;
    struct lh_fwd_endpoint *eps = calloc(rs->n, sizeof *eps);
    char (*hosts)[256] = calloc(rs->n, sizeof *hosts);
    int rc = eps && hosts ? LH_OK : LH_ENOMEM;
    for (size_t i = 0; i < rs->n && rc == 0; i++) {
        lh_split_hostport(rs->v[i], hosts[i], sizeof hosts[i], &eps[i].port);
        eps[i].host = hosts[i];
        eps[i].tls_name = o->cfg->tls.server_name;
    }
    struct lh_fwd_client_cfg cc = {
        .base = ctx->base, .ssl_ctx = o->ssl_ctx, .endpoints = eps, .n_endpoints = rs->n,
        .shared_key = o->cfg->shared_key, .hostname = ctx->host,
        .ack_timeout_ms = o->cfg->ack_timeout_ms, .max_in_flight = (size_t)o->cfg->max_in_flight,
        .backoff_max_ms = BACKOFF_MAX_MS, .log_name = CFWD_LOG, .peer_kind = "receiver",
        .cbs = &client_cbs, .ud = o};
    if (rc == 0)
        rc = lh_fwd_client_new(&cc, &o->cl);
    free(eps);
    free(hosts);
    return rc;
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
    msgpack_sbuffer_init(&o->frame);
    int rc = lh_coll_output_metrics(ctx->metrics, "forward", &o->m);
    o->acks = lh_metrics_get(ctx->metrics, LH_METRIC_COUNTER, "loghaul_collector_output_acks_total",
                             "output=\"forward\"", "Acknowledgements from downstream receivers");
    o->tick = event_new(o->base, -1, EV_PERSIST, on_tick, o);
    static const struct timeval sec = {1, 0};
    if (rc != 0 || !o->acks || !o->tick || event_add(o->tick, &sec) != 0) {
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
    if ((rc = new_client(o, ctx)) != 0) {
        snprintf(err, errlen, "forward output: %s", lh_strerror(rc));
        return rc;
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
    lh_fwd_client_free(o->cl); /* its window comes back into pending */
    if (o->tick)
        event_free(o->tick);
    sl_free(&o->pending);
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
