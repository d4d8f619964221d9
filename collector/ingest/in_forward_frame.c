/* The Forward listener's frames: events staged as store events, handed to
 * commit, acked from its done; the shared-key handshake's PING answered.
 * Connections and reading are in in_forward.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/ingest/in_forward_int.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/codec/record.h"
#include "common/base/util.h"

/* The staging buffer is kept up to this size (a default agent batch is
 * 2 MiB of entries). */
#define KEEP_STAGE (8 * 1024 * 1024)

/* Events of one frame, packed as store events until the frame is whole. */
struct stage {
    msgpack_sbuffer *sb;        /* the listener's, reused frame after frame */
    msgpack_packer pk;
    size_t n;
    size_t max;                 /* staged bytes at most (max_decompressed) */
    const char *host;
    size_t host_len;
    const char *tag;            /* the frame's (all its events share it) */
    size_t tag_len;
    enum reason refused;        /* N_REASONS, or why an event was refused */
};

/* ---- writing ------------------------------------------------------------ */

static int send_packed(struct conn *c, int rc, msgpack_sbuffer *sb)
{
    if (rc == 0 && bufferevent_write(c->bev, sb->data, sb->size) != 0)
        rc = LH_ENOMEM;
    msgpack_sbuffer_destroy(sb);
    return rc;
}

static int send_ack(struct conn *c, const char *chunk, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    return send_packed(c, lh_fwd_pack_ack(&pk, chunk, len), &sb);
}

int lh_infwd_send_helo(struct conn *c)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = lh_fwd_helo_init(&c->helo);
    if (rc == 0)
        rc = lh_fwd_pack_helo(&pk, &c->helo);
    return send_packed(c, rc, &sb);
}

static int send_pong(struct conn *c, bool ok, const char *reason, const struct lh_fwd_ping *ping)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = lh_fwd_pack_pong(&pk, ok, reason, c->f->cfg->hostname, &c->helo, ping,
                              c->f->cfg->shared_key);
    return send_packed(c, rc, &sb);
}

/* ---- frames ------------------------------------------------------------- */

/* The record as it came, with a "host" field (the sender's handshake name
 * or address) added when it has none. */
static int pack_fields(msgpack_packer *pk, const struct lh_fwd_event *ev, const char *host)
{
    uint64_t n;
    size_t hdr;

    if (lh_mp_map_has_key(ev->record, ev->record_len, "host", 4))
        return pk->callback(pk->data, ev->record, ev->record_len);
    if (lh_mp_map_head(ev->record, ev->record_len, &n, &hdr) != 0 || n >= UINT32_MAX)
        return LH_EPROTO;
    if (msgpack_pack_map(pk, (size_t)n + 1) != 0 ||
        pk->callback(pk->data, ev->record + hdr, ev->record_len - hdr) != 0 ||
        lh_pack_cstr(pk, "host") != 0 || lh_pack_cstr(pk, host) != 0)
        return LH_ENOMEM;
    return 0;
}

static int stage_event(void *ud, const struct lh_fwd_event *ev)
{
    struct stage *st = ud;
    /* The store reads each event [tag, time, fields] back with msgpack-c, so
     * the record may nest one level less than its limit: nothing is acked
     * that cannot be read back. The decoder's walk measured the depth. */
    if (ev->depth > LH_MP_MAX_DEPTH - 1) {
        st->refused = R_TOO_DEEP;
        return LH_EPROTO;
    }
    /* Tiny entries under a long tag would stage far more than the frame. */
    if (st->sb->size + ev->record_len + ev->tag_len + st->host_len + 64 > st->max) {
        st->refused = R_TOO_BIG;
        return LH_ETOOBIG;
    }
    st->tag = ev->tag;
    st->tag_len = ev->tag_len;
    if (msgpack_pack_array(&st->pk, 3) != 0 || lh_pack_strn(&st->pk, ev->tag, ev->tag_len) != 0 ||
        lh_pack_time(&st->pk, ev->time_ns) != 0 || pack_fields(&st->pk, ev, st->host) != 0)
        return LH_ENOMEM;
    st->n++;
    return 0;
}

static int decode_fault(struct conn *c, const struct stage *st, int rc)
{
    if (st->refused == R_TOO_DEEP)
        return lh_infwd_fault(c, R_TOO_DEEP, "a record nests deeper than %d levels, more than the store "
                     "can read back; frame refused, not acked", LH_MP_MAX_DEPTH - 1);
    if (st->refused == R_TOO_BIG)
        return lh_infwd_fault(c, R_TOO_BIG, "the frame's records as stored exceed max_decompressed (%lld "
                     "bytes); frame refused, not acked", (long long)c->f->cfg->max_decompressed);
    if (rc == LH_ETOOBIG)
        return lh_infwd_fault(c, R_TOO_BIG, "decompressed payload larger than max_decompressed (%lld bytes)",
                     (long long)c->f->cfg->max_decompressed);
    if (rc == LH_ENOMEM)
        return lh_infwd_fault(c, R_STORE, "out of memory decoding a frame");
    return lh_infwd_fault(c, R_PROTOCOL, "not a Forward v1 event frame (bad mode, entry or option)");
}

/* commit's done: settled at once when it runs inside submit (on_events
 * does it), else from the loop (on_wake), never from another
 * connection's callbacks. */
static void on_committed(void *arg, int status)
{
    struct ticket *t = arg;
    t->done = true;
    t->status = status;
    if (!t->c) {
        free(t); /* the connection went first: nothing to ack */
        return;
    }
    if (t->c->in_submit)
        return;
    t->c->wake = true;
    event_active(t->c->f->wake_ev, EV_TIMEOUT, 0);
}

int lh_infwd_settle(struct conn *c)
{
    struct ticket *t = c->t;
    c->t = NULL;
    int rc = t->status;
    if (rc == 0 && t->ack && send_ack(c, t->chunk, t->chunk_len) != 0)
        rc = LH_ENOMEM;
    free(t);
    if (rc == LH_ENOMEM)
        return lh_infwd_fault(c, R_STORE, "out of memory committing a batch");
    if (rc != 0)
        return lh_infwd_fault(c, R_STORE, "cannot store a batch (%s); not acked, the sender "
                                          "will retry", lh_strerror(rc));
    return 0;
}

/* Hands the staged events to commit; the ack waits for its done. */
static int submit(struct conn *c, const struct stage *st, const struct lh_fwd_options *o)
{
    size_t chunk_len = o->chunk ? o->chunk_len : 0;
    struct ticket *t = calloc(1, sizeof *t + chunk_len);
    char *tag = st->n ? strndup(st->tag, st->tag_len) : NULL;
    if (!t || (st->n && !tag)) {
        free(t);
        free(tag);
        return lh_infwd_fault(c, R_STORE, "out of memory");
    }
    *t = (struct ticket){.c = c, .ack = o->chunk != NULL, .chunk_len = chunk_len};
    if (chunk_len)
        memcpy(t->chunk, o->chunk, chunk_len);
    const struct lh_coll_batch b = {tag ? tag : "", o->chunk, chunk_len, st->sb->data,
                                    st->sb->size, st->n};
    c->t = t;
    c->in_submit = true;
    lh_commit_submit(c->f->commit, &b, lh_now_ns(), on_committed, t);
    c->in_submit = false;
    free(tag);
    return t->done ? lh_infwd_settle(c) : 0;
}

static int on_events(struct conn *c, const uint8_t *p, size_t len)
{
    struct lh_in_forward *f = c->f;
    size_t max = (size_t)f->cfg->max_decompressed;
    struct stage st = {.host = c->host, .host_len = strlen(c->host), .sb = &f->stage,
                       .max = max, .refused = N_REASONS};
    struct lh_fwd_options o;
    msgpack_sbuffer_clear(st.sb);
    msgpack_packer_init(&st.pk, st.sb, msgpack_sbuffer_write);
    int rc = lh_fwd_decode(p, len, max, stage_event, &st, &o, NULL);
    if (rc != 0)
        rc = decode_fault(c, &st, rc);
    else if (o.chunk && o.chunk_len > LH_STORE_MAX_CHUNK_ID)
        rc = lh_infwd_fault(c, R_PROTOCOL, "chunk id longer than %d bytes", LH_STORE_MAX_CHUNK_ID);
    else
        rc = submit(c, &st, &o);
    if (f->stage.alloc > KEEP_STAGE) {
        msgpack_sbuffer_destroy(&f->stage);
        msgpack_sbuffer_init(&f->stage);
    }
    lh_infwd_mem_gauge(f);
    return rc;
}

static int on_ping(struct conn *c, const msgpack_object *o)
{
    struct lh_fwd_ping ping;
    const char *reason = "";
    memset(&ping, 0, sizeof ping);
    int rc = lh_fwd_check_ping(o, &c->helo, c->f->cfg->shared_key, &ping, &reason);
    if (rc == LH_EPROTO)
        return lh_infwd_fault(c, R_HANDSHAKE, "expected a PING after HELO (%s)", reason);
    if (send_pong(c, rc == 0, reason, &ping) != 0)
        return lh_infwd_fault(c, R_HANDSHAKE, "out of memory answering PING");
    if (rc != 0) {
        LH_WARN(FWD_LOG, "closing %s: shared key handshake failed for '%s': %s", c->peer,
                ping.hostname, reason);
        lh_metric_add(c->f->m.rejected[R_HANDSHAKE], 1);
        lh_infwd_close_after_write(c);
        return -1;
    }
    c->authed = true;
    lh_infwd_handshake_progress(c);
    if (ping.hostname[0])
        snprintf(c->host, sizeof c->host, "%s", ping.hostname);
    LH_DEBUG(FWD_LOG, "%s: handshake done, client '%s'", c->peer, c->host);
    return 0;
}

/* A frame before the handshake, at most PREAUTH_MAX bytes: unpacked. */
static int on_preauth_frame(struct conn *c, const uint8_t *p, size_t len)
{
    msgpack_zone *zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    if (!zone)
        return lh_infwd_fault(c, R_STORE, "out of memory");
    msgpack_object o;
    size_t off = 0;
    int rc;
    if (msgpack_unpack((const char *)p, len, &off, zone, &o) != MSGPACK_UNPACK_SUCCESS)
        rc = lh_infwd_fault(c, R_MALFORMED, "malformed msgpack");
    else
        rc = on_ping(c, &o);
    msgpack_zone_free(zone);
    return rc;
}

/* One complete msgpack object from the stream. 0, or -1 when the
 * connection is closed or closing. */
int lh_infwd_frame(struct conn *c, const uint8_t *p, size_t len)
{
    if (len == 1 && p[0] == 0xc0)
        return 0; /* heartbeat */
    return c->authed ? on_events(c, p, len) : on_preauth_frame(c, p, len);
}
