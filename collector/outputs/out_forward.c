/* The collector's `forward` output: accepted batches whose tag matches go
 * on to downstream Forward receivers (Fluentd, Fluent Bit, another
 * collector).
 *
 * A write makes the batch durable in the output's spool first (spool.h,
 * under data_dir/outputs/forward-N, fsync'd before write returns, so the
 * upstream ack promises it), as one whole PackedForward frame with a fresh
 * chunk id. The spool hands the frames over in order to one Forward client
 * (common/net/fwd_client) holding one connection at a time, up to
 * max_in_flight frames, and consumes a chunk on its ack. A receiver that
 * fails (connect, handshake, ack timeout) hands its frames back and the
 * client tries the next one in the list, after a jittered backoff once all
 * have failed in a row. A full spool refuses writes: the upstream sender
 * is not acked and retries. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/outputs/output.h"
#include "collector/outputs/spool.h"
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

struct cfwd {
    const struct cfwd_cfg *cfg;
    SSL_CTX *ssl_ctx;
    struct lh_coll_spool *sp;
    struct lh_fwd_client *cl;
    struct lh_metric *acks;
};

/* ---- sending ------------------------------------------------------------ */

/* Not ready: connecting (or waiting out the client's backoff) when there
 * is something to send; the ready callback kicks the spool. */
static bool cfwd_ready(void *ud)
{
    struct cfwd *o = ud;
    if (lh_fwd_client_has_room(o->cl))
        return true;
    if (!lh_fwd_client_ready(o->cl))
        lh_fwd_client_kick(o->cl);
    return false;
}

/* A failed send has already handed the window, this frame with it, back
 * through on_client_fail. */
static int cfwd_deliver(void *ud, struct lh_coll_spool_item *it, char *frame, size_t len)
{
    struct cfwd *o = ud;
    return lh_fwd_client_send_owned(o->cl, it->chunk->id, it, frame, len);
}

static void on_client_ready(void *ud, struct lh_fwd_client *c)
{
    struct cfwd *o = ud;
    lh_coll_spool_kick(o->sp);
}

static void on_client_ack(void *ud, struct lh_fwd_client *c, void *item)
{
    struct cfwd *o = ud;
    lh_metric_add(o->acks, 1);
    lh_coll_spool_answer(o->sp, item, LH_FLUSH_OK);
}

/* The receiver failed: its frames (the spool's whole window) go back in
 * line, oldest first, for the next one the client tries. */
static void on_client_fail(void *ud, struct lh_fwd_client *c, void *const *items, size_t n,
                           const char *why)
{
    struct cfwd *o = ud;
    lh_coll_spool_requeue(o->sp);
    if (why && lh_coll_spool_queued(o->sp))
        lh_fwd_client_kick(o->cl);
}

static const struct lh_fwd_client_cbs client_cbs = {
    .ready = on_client_ready, .ack = on_client_ack, .fail = on_client_fail};

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
 * record] in one frame asking an ack for chunk id. */
static int cfwd_render(void *ud, const struct lh_coll_batch *b, const char *id,
                       msgpack_sbuffer *out)
{
    msgpack_sbuffer entries;
    msgpack_sbuffer_init(&entries);
    const uint8_t *p = (const uint8_t *)b->events;
    size_t off = 0;
    int rc = LH_OK;
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
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (rc == 0)
        rc = lh_fwd_pack_packed(&pk, b->tag, strlen(b->tag), entries.data, entries.size,
                                b->n_events, id, LH_CHUNK_ID_LEN, false);
    msgpack_sbuffer_destroy(&entries);
    return rc;
}

static int cfwd_write(void *state, const struct lh_coll_batch *b)
{
    return lh_coll_spool_write(((struct cfwd *)state)->sp, b);
}

static int open_spool(struct cfwd *o, const struct lh_coll_output_ctx *ctx, size_t index,
                      char *err, size_t errlen)
{
    struct lh_coll_spool_opts so = {.type = "forward", .max_size = o->cfg->max_size,
                                    .max_in_flight = (size_t)o->cfg->max_in_flight,
                                    .backoff_min_ms = LH_FWD_CLIENT_BACKOFF_MIN_MS,
                                    .backoff_max_ms = BACKOFF_MAX_MS, .match = o->cfg->match,
                                    .render = cfwd_render, .deliver = cfwd_deliver,
                                    .ready = cfwd_ready, .ud = o};
    return lh_coll_spool_open(ctx, index, o->cfg->item.line, &so, &o->sp, err, errlen);
}

static int cfwd_create(const struct lh_cfg_item *item, const struct lh_coll_output_ctx *ctx,
                       size_t index, void **state, char *err, size_t errlen)
{
    struct cfwd *o = calloc(1, sizeof *o);
    if (!o)
        return LH_ENOMEM;
    *state = o;
    o->cfg = (const struct cfwd_cfg *)item;
    o->acks = lh_metrics_get(ctx->metrics, LH_METRIC_COUNTER, "loghaul_collector_output_acks_total",
                             "output=\"forward\"", "Acknowledgements from downstream receivers");
    if (!o->acks) {
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
    /* The spool first: the client hands frames back into it, even when
     * freed half-built. */
    int rc = open_spool(o, ctx, index, err, errlen);
    if (rc != 0)
        return rc;
    if ((rc = new_client(o, ctx)) != 0) {
        snprintf(err, errlen, "forward output: %s", lh_strerror(rc));
        return rc;
    }
    lh_coll_spool_kick(o->sp);
    return LH_OK;
}

static void cfwd_destroy(void *state)
{
    struct cfwd *o = state;
    if (!o)
        return;
    lh_fwd_client_free(o->cl); /* its window comes back into the spool */
    lh_coll_spool_close(o->sp);
    SSL_CTX_free(o->ssl_ctx);
    free(o);
}

const struct lh_coll_output_ops lh_coll_out_forward_ops = {
    .type = "forward",
    .schema = &lh_coll_out_forward_schema,
    .create = cfwd_create,
    .write = cfwd_write,
    .destroy = cfwd_destroy,
};
