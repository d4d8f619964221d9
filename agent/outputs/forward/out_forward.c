/* The `forward` output: the disk buffer between the pipeline and the
 * collectors (out_forward_int.h), sending from it, and the plugin hooks.
 * The collectors' clients live in out_forward_conn.c and report acks and
 * failures here; the schema is in out_forward_config.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/outputs/forward/out_forward_int.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/codec/record.h"
#include "common/net/tls.h"
#include "common/base/util.h"

/* ---- chunk lists -------------------------------------------------------- */

static void fq_push(struct fq *q, struct fchunk *fc)
{
    fc->next = NULL;
    if (q->tail)
        q->tail->next = fc;
    else
        q->head = fc;
    q->tail = fc;
    q->n++;
}

static struct fchunk *fq_pop(struct fq *q)
{
    struct fchunk *fc = q->head;
    if (fc) {
        q->head = fc->next;
        if (!q->head)
            q->tail = NULL;
        q->n--;
        fc->next = NULL;
    }
    return fc;
}

static void fchunk_free(struct fchunk *fc)
{
    if (!fc)
        return;
    lh_batch_free(fc->batch);
    free(fc->mem);
    free(fc->extra);
    free(fc);
}

/* Frame bytes fc holds in memory. */
static size_t fchunk_mem_bytes(const struct fchunk *fc)
{
    return fc->mem ? fc->len + fc->extra_len : 0;
}

static void fq_free(struct fq *q)
{
    struct fchunk *fc;
    while ((fc = fq_pop(q)))
        fchunk_free(fc);
}

/* ---- the buffer --------------------------------------------------------- */

static void report_queued(struct fwd *f)
{
    struct lh_chunkq_stats st;
    lh_chunkq_stats(f->q, &st);
    lh_output_queued(f->out, st.bytes);
    lh_metric_set(f->buffer_chunks, (int64_t)st.chunks);
}

static void schedule_sync_in(struct fwd *f, int64_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(f->sync_ev, &tv);
}

static void schedule_sync(struct fwd *f)
{
    /* A zero timeout runs after the events already due: every batch sealed
     * by the reads of this loop iteration shares one fsync. */
    schedule_sync_in(f, 0);
}

/* After an append: a sync at once when no collector can ack, else one
 * when the oldest unsynced chunk's delay is up (an earlier timer stands). */
static void arm_sync(struct fwd *f)
{
    if (!fwd_conns_ready(&f->conns))
        schedule_sync(f);
    else if (!evtimer_pending(f->sync_ev, NULL))
        schedule_sync_in(f, f->cfg->buffer.sync_delay_ms);
}

/* Whether the unsynced chunks go into the next job: the oldest has waited
 * sync_delay for an ack, or no collector can ack. Otherwise *wait_ms says
 * when to look again (-1: nothing waits). */
static bool chunks_due(struct fwd *f, int64_t *wait_ms)
{
    *wait_ms = -1;
    const struct lh_chunk *c = lh_chunkq_oldest_unsynced(f->q);
    if (!c)
        return false;
    const struct fchunk *fc = c->ud;
    int64_t left = fc->appended_ms + f->cfg->buffer.sync_delay_ms - lh_mono_ms();
    if (left <= 0 || !fwd_conns_ready(&f->conns))
        return true;
    *wait_ms = left;
    return false;
}

static void drain_waiting(struct fwd *f);

static void hold(struct fwd *f, struct fchunk *fc, struct lh_batch *b)
{
    fc->batch = b;
    fc->hnext = NULL;
    fc->hprev = f->held_tail;
    if (f->held_tail)
        f->held_tail->hnext = fc;
    else
        f->held = fc;
    f->held_tail = fc;
}

/* A held chunk's batch goes back to the pipeline (freeing its share of the
 * inputs' cap, letting the checkpoint pass it); the frame stays. */
static void release(struct fwd *f, struct fchunk *fc)
{
    struct lh_batch *b = fc->batch;
    fc->batch = NULL;
    if (fc->hprev)
        fc->hprev->hnext = fc->hnext;
    else
        f->held = fc->hnext;
    if (fc->hnext)
        fc->hnext->hprev = fc->hprev;
    else
        f->held_tail = fc->hprev;
    fc->hprev = fc->hnext = NULL;
    lh_output_acked(f->out, b);
}

/* fc leaves memory accounting: the pipeline's if held, else the cache's. */
static void forget_frame(struct fwd *f, struct fchunk *fc)
{
    if (fc->batch)
        release(f, fc);
    else
        f->cached -= fchunk_mem_bytes(fc);
}

/* Drops the in-memory frame of a durable chunk nobody is sending. */
static void evict(struct fchunk *fc)
{
    free(fc->mem);
    free(fc->extra);
    fc->mem = fc->extra = NULL;
    fc->len = fc->extra_len = 0;
}

/* No collector takes batches any more: held chunks are synced now, which
 * releases their batches, so the inputs go on into the disk buffer. */
static void sync_held(struct fwd *f)
{
    if (f->held)
        schedule_sync(f);
}

/* Drops a pending chunk for good (counted under reason). */
/* The batch is released before the chunk is consumed: the checkpoint then
 * covers the chunk when consuming it deletes its segment (the pipeline only
 * schedules its sealing from the release, so nothing re-enters here). */
static void drop_chunk(struct fwd *f, struct fchunk *fc, struct lh_metric *reason)
{
    lh_metric_add(reason, (int64_t)fc->c->n_records);
    forget_frame(f, fc);
    lh_chunkq_ack(f->q, fc->c);
    fchunk_free(fc);
}

/* A collector acknowledged fc: consumes it. */
static void delivered(struct fwd *f, struct fchunk *fc)
{
    forget_frame(f, fc);
    lh_chunkq_ack(f->q, fc->c);
    fchunk_free(fc);
    report_queued(f);
    drain_waiting(f);
}

/* Loads fc's frame from disk when it is not in memory. 0, or an LH_E* code
 * (a corrupt chunk has then been dropped and counted). */
static int load(struct fwd *f, struct fchunk *fc)
{
    if (fc->mem)
        return LH_OK;
    int rc = lh_chunkq_read(f->q, fc->c, &fc->mem);
    if (rc == LH_OK) {
        fc->len = fc->c->payload_len;
        f->cached += fchunk_mem_bytes(fc);
    } else if (rc == LH_ECORRUPT) {
        LH_ERROR(FWD_LOG, "buffered chunk %s in %s failed its checksum: %u records dropped",
                 fc->c->id, f->qdir, fc->c->n_records);
        lh_metric_add(f->skipped_corrupt, 1);
        drop_chunk(f, fc, f->dropped_corrupt);
        report_queued(f);
    } else {
        LH_ERROR(FWD_LOG, "reading chunk %s back from %s: %s (retrying)", fc->c->id, f->qdir,
                 lh_strerror(rc));
    }
    return rc;
}

/* ---- sending ------------------------------------------------------------ */

static void push_front(struct fq *q, struct fchunk *fc)
{
    fc->next = q->head;
    q->head = fc;
    if (!q->tail)
        q->tail = fc;
    q->n++;
}

/* The frame's parts in wire order: the head, the entries, the tail. */
static size_t frame_iov(const struct fchunk *fc, struct iovec iov[3])
{
    if (!fc->extra) {
        iov[0] = (struct iovec){fc->mem, fc->len};
        return 1;
    }
    iov[0] = (struct iovec){fc->extra, fc->head_len};
    iov[1] = (struct iovec){fc->mem, fc->len};
    iov[2] = (struct iovec){fc->extra + fc->head_len, fc->extra_len - fc->head_len};
    return 3;
}

/* Pending chunks to the collectors while windows allow. */
static void send_pending(struct fwd *f)
{
    struct lh_fwd_client *cl;
    while (f->pending.head && (cl = fwd_conns_pick(&f->conns))) {
        struct fchunk *fc = fq_pop(&f->pending);
        int rc = load(f, fc);
        if (rc == LH_ECORRUPT)
            continue; /* dropped and counted */
        if (rc != 0) {
            push_front(&f->pending, fc);
            return;
        }
        struct iovec iov[3];
        size_t n = frame_iov(fc, iov);
        fc->in_flight = true;
        lh_metric_add(f->batches_in_flight, 1);
        /* The frame stays with the chunk until its ack: no copy. */
        if (lh_fwd_client_send(cl, fc->c->id, fc, iov, n) != 0)
            return; /* the client failed and handed fc back */
        if (fc->attempts++ > 0)
            lh_metric_add(f->retries, 1);
        lh_metric_add(f->bytes_sent, (int64_t)(fc->len + (fc->extra ? fc->extra_len : 0)));
    }
}

static void on_client_ready(void *ud, struct lh_fwd_client *c)
{
    send_pending(ud);
}

static void on_client_ack(void *ud, struct lh_fwd_client *c, void *item)
{
    struct fwd *f = ud;
    struct fchunk *fc = item;
    fc->in_flight = false;
    lh_metric_add(f->batches_in_flight, -1);
    lh_metric_add(f->acks, 1);
    delivered(f, fc);
}

/* Unacknowledged chunks go back in front of the pending ones, oldest
 * first, for whichever collector is ready next. */
static void on_client_fail(void *ud, struct lh_fwd_client *c, void *const *items, size_t n,
                           const char *why)
{
    struct fwd *f = ud;
    lh_metric_add(f->batches_in_flight, -(int64_t)n);
    for (size_t i = n; i-- > 0;) {
        struct fchunk *fc = items[i];
        fc->in_flight = false;
        push_front(&f->pending, fc);
    }
    if (!why)
        return; /* closing: destroy frees them */
    if (!fwd_conns_ready(&f->conns))
        sync_held(f);
    send_pending(f);
}

static const struct lh_fwd_client_cbs client_cbs = {
    .ready = on_client_ready, .ack = on_client_ack, .fail = on_client_fail};

static size_t head_len(const struct lh_batch *b);

/* A held chunk became durable (no ack came within sync_delay, or no
 * collector is there): its batch is released. Its frame stays in the cache
 * when there is room, or while a connection still references it (the
 * cache then runs over by at most the frames in flight); otherwise it is
 * read back from disk when its turn comes. */
static void on_synced(void *ud, struct lh_chunk *c, int rc)
{
    struct fwd *f = ud;
    if (f->closing)
        return; /* destroy frees what is still held */
    struct fchunk *fc = c->ud;
    if (rc != 0)
        LH_ERROR(FWD_LOG, "buffer %s: chunk %s may not be durable: %s", f->qdir, c->id,
                 lh_strerror(rc));
    fc->durable = true;
    if (!fc->batch)
        return;
    size_t n = fchunk_mem_bytes(fc);
    if (f->cached + n > f->cache_cap && !fc->in_flight)
        evict(fc);
    else
        f->cached += n;
    release(f, fc);
}

/* Bytes of the frame's head in wire (encode packs the head first). */
static size_t head_len(const struct lh_batch *b)
{
    size_t n = b->entries.size, t = b->tag_len;
    size_t str = t < 32 ? 1 : t < 256 ? 2 : t < 65536 ? 3 : 5;
    size_t bin = n < 256 ? 2 : n < 65536 ? 3 : 5;
    return 1 + str + t + bin;
}

/* Packs the head and tail of the frame into wire around the entries (which
 * gzip replaces by their compressed form first). */
static int encode(struct fwd *f, struct lh_batch *b)
{
    if (b->wire.size)
        return LH_OK;
    bool gzip = f->cfg->compress == COMPRESS_GZIP;
    if (gzip) {
        char *z;
        size_t zlen;
        int rc = lh_gzip(b->entries.data, b->entries.size, &z, &zlen);
        if (rc != 0)
            return rc;
        msgpack_sbuffer_destroy(&b->entries);
        b->entries = (msgpack_sbuffer){.data = z, .size = zlen, .alloc = zlen};
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b->wire, msgpack_sbuffer_write);
    int rc = lh_fwd_pack_packed_head(&pk, b->tag, b->tag_len, b->entries.size);
    if (rc == 0 && b->wire.size != head_len(b))
        rc = LH_EINVAL;
    if (rc == 0)
        rc = lh_fwd_pack_packed_tail(&pk, b->n_records, b->chunk, strlen(b->chunk), gzip);
    if (rc != 0)
        msgpack_sbuffer_clear(&b->wire);
    return rc;
}

/* The file positions a batch covers: the furthest end per file. */
static int batch_positions(const struct lh_batch *b, struct lh_chunkq_pos **out, size_t *n)
{
    *n = 0;
    *out = malloc((b->n_segs ? b->n_segs : 1) * sizeof **out);
    if (!*out)
        return LH_ENOMEM;
    for (size_t i = 0; i < b->n_segs; i++) {
        const struct lh_ckpt_seg *s = b->segs[i];
        size_t k = 0;
        while (k < *n && ((*out)[k].dev != s->file->dev || (*out)[k].ino != s->file->ino))
            k++;
        if (k == *n)
            (*out)[(*n)++] = (struct lh_chunkq_pos){s->file->dev, s->file->ino, 0};
        if ((*out)[k].end < s->end)
            (*out)[k].end = s->end;
    }
    return *n > LH_CHUNKQ_MAX_POS ? LH_ETOOBIG : LH_OK;
}

static int append_batch(struct fwd *f, struct lh_batch *b)
{
    struct lh_chunkq_pos *pos;
    size_t n_pos;
    struct fchunk *fc = calloc(1, sizeof *fc);
    int rc = fc ? batch_positions(b, &pos, &n_pos) : LH_ENOMEM;
    if (fc && rc == LH_OK) {
        struct lh_chunk_meta m = {.id = b->chunk, .tag = b->tag, .tag_len = b->tag_len,
                                  .n_records = (uint32_t)b->n_records, .pos = pos,
                                  .n_pos = n_pos};
        size_t hl = head_len(b);
        struct iovec iov[3] = {{b->wire.data, hl},
                               {b->entries.data, b->entries.size},
                               {b->wire.data + hl, b->wire.size - hl}};
        rc = lh_chunkq_appendv(f->q, &m, iov, 3, on_synced, f, &fc->c);
    }
    if (fc)
        free(pos);
    if (rc != 0) {
        free(fc);
        return rc;
    }
    /* The frame moves from the batch to the chunk; the batch stays held. */
    fc->mem = b->entries.data;
    fc->len = b->entries.size;
    fc->extra = b->wire.data;
    fc->extra_len = b->wire.size;
    fc->head_len = head_len(b);
    msgpack_sbuffer_init(&b->entries);
    msgpack_sbuffer_init(&b->wire);
    hold(f, fc, b);
    fc->c->ud = fc;
    fc->appended_ms = lh_mono_ms();
    fq_push(&f->pending, fc);
    arm_sync(f);
    return LH_OK;
}

/* drop_oldest: makes room by dropping the oldest chunks nobody is sending. */
static void make_room(struct fwd *f, size_t len)
{
    size_t dropped = 0;
    while (lh_chunkq_full(f->q, len) && f->pending.head) {
        struct fchunk *fc = fq_pop(&f->pending);
        dropped += fc->c->n_records;
        drop_chunk(f, fc, f->dropped_full);
    }
    if (dropped)
        LH_WARN(FWD_LOG, "buffer %s full: dropped the %zu oldest unsent records", f->qdir, dropped);
}

/* Sealed batches into the queue, in order, while it has room (block) or
 * room can be made (drop_oldest). What stays counts against the pipeline's
 * cap, which pauses the inputs. */
static void drain_waiting(struct fwd *f)
{
    while (f->wait_head) {
        struct lh_batch *b = f->wait_head;
        int rc = encode(f, b);
        if (rc == 0 && f->cfg->buffer.on_full == ON_FULL_DROP_OLDEST)
            make_room(f, b->entries.size + b->wire.size);
        if (rc == 0 && lh_chunkq_full(f->q, b->entries.size + b->wire.size))
            break;
        if (rc == 0)
            rc = append_batch(f, b);
        if (rc != 0) {
            LH_ERROR(FWD_LOG, "buffering a batch in %s: %s (retrying)", f->qdir, lh_strerror(rc));
            break;
        }
        f->wait_head = b->next;
        if (!f->wait_head)
            f->wait_tail = NULL;
        b->next = NULL;
    }
    report_queued(f);
    send_pending(f);
}

/* The sync thread: one for the output's life, running each job the loop
 * hands it and answering through the wake pipe. */
static void *sync_main(void *arg)
{
    struct fwd *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->go && !f->quit)
            pthread_cond_wait(&f->cv, &f->mu);
        if (!f->go)
            break;
        f->go = false;
        pthread_mutex_unlock(&f->mu);
        lh_chunkq_sync_run(f->job);
        char one = 1;
        while (write(f->wake[1], &one, 1) < 0 && errno == EINTR)
            ;
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* Stops the sync thread once it has run what it was handed. */
static void stop_sync_thread(struct fwd *f)
{
    if (!f->thread_on)
        return;
    pthread_mutex_lock(&f->mu);
    f->quit = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->sync_thread, NULL);
    f->thread_on = false;
}

static void end_job(struct fwd *f)
{
    struct lh_chunkq_job *job = f->job;
    f->job = NULL;
    lh_chunkq_sync_end(f->q, job);
    drain_waiting(f); /* the job may have freed room (segments unlinked) */
    if (f->resync) {
        f->resync = false;
        schedule_sync(f);
    }
}

static void on_job_done(evutil_socket_t fd, short what, void *arg)
{
    struct fwd *f = arg;
    char buf[16];
    while (read(fd, buf, sizeof buf) > 0)
        ;
    if (f->job)
        end_job(f);
}

static void on_sync(evutil_socket_t fd, short what, void *arg)
{
    struct fwd *f = arg;
    if (f->job) {
        f->resync = true; /* what was appended meanwhile waits for this one */
        return;
    }
    int64_t wait_ms;
    bool chunks = chunks_due(f, &wait_ms);
    if (wait_ms >= 0)
        schedule_sync_in(f, wait_ms);
    if (lh_chunkq_sync_begin(f->q, chunks, &f->job) != 0) {
        LH_ERROR(FWD_LOG, "buffer %s: out of memory syncing (retrying)", f->qdir);
        return;
    }
    if (!f->job) {
        report_queued(f);
        send_pending(f);
        return;
    }
    if (!f->thread_on) {
        lh_chunkq_sync_run(f->job);
        end_job(f);
        return;
    }
    pthread_mutex_lock(&f->mu);
    f->go = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct fwd *f = arg;
    drain_waiting(f);
    if (lh_chunkq_dirty(f->q))
        schedule_sync(f);
    send_pending(f);
}

/* ---- opening the buffer ------------------------------------------------- */

static void on_replay_pos(void *ud, const struct lh_chunkq_pos *p)
{
    struct fwd *f = ud;
    if (lh_ckpt_recover(f->ckpt, p->dev, p->ino, p->end) != 0)
        LH_ERROR(FWD_LOG, "out of memory recovering positions from %s", f->qdir);
}

static void on_replay_chunk(void *ud, struct lh_chunk *c)
{
    struct fwd *f = ud;
    struct fchunk *fc = calloc(1, sizeof *fc);
    if (!fc) {
        LH_ERROR(FWD_LOG, "out of memory replaying %s: chunk %s waits for the next start",
                 f->qdir, c->id);
        return;
    }
    fc->c = c;
    fc->durable = true;
    c->ud = fc;
    fq_push(&f->pending, fc);
}

static bool on_covered(void *ud, const struct lh_chunkq_pos *p)
{
    struct fwd *f = ud;
    return lh_ckpt_covers(f->ckpt, p->dev, p->ino, p->end);
}

static void on_release(void *ud)
{
    struct fwd *f = ud;
    /* The positions in the segment vanish with it: the checkpoint (already
     * past them in memory) must be on disk first. */
    lh_pipeline_save(f->pl);
}

static int open_buffer(struct fwd *f, const struct lh_agent_ctx *ctx, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/buffer/forward-%zu", ctx->data_dir,
                 lh_output_index(f->out)) >= (int)sizeof dir)
        return LH_ETOOBIG;
    f->qdir = strdup(dir);
    if (!f->qdir)
        return LH_ENOMEM;
    struct lh_chunkq_opts o = {.dir = dir, .max_size = f->cfg->buffer.max_size,
                               .on_pos = on_replay_pos, .on_chunk = on_replay_chunk,
                               .on_release = on_release, .covered = on_covered, .ud = f};
    char why[512] = "";
    int rc = lh_chunkq_open(&o, &f->q, why, sizeof why);
    if (rc != 0) {
        snprintf(err, errlen, "forward output: buffer: %s", why);
        return rc;
    }
    struct lh_chunkq_stats st;
    lh_chunkq_stats(f->q, &st);
    lh_metric_add(f->skipped_torn, (int64_t)st.torn);
    lh_metric_add(f->skipped_corrupt, (int64_t)st.corrupt);
    if (st.torn || st.corrupt)
        LH_WARN(FWD_LOG, "buffer %s: skipped %llu torn and %llu corrupt chunks", dir,
                (unsigned long long)st.torn, (unsigned long long)st.corrupt);
    if (st.chunks)
        LH_INFO(FWD_LOG, "buffer %s: %llu chunks (%llu bytes) to deliver from the last run", dir,
                (unsigned long long)st.chunks, (unsigned long long)st.bytes);
    return LH_OK;
}

/* ---- hooks -------------------------------------------------------------- */

static void get_metrics(struct fwd *f, struct lh_metrics *m)
{
    f->retries = lh_metrics_get(m, LH_METRIC_COUNTER, "loghaul_agent_retries_total", NULL,
                                "Batches sent again after a timeout or a lost connection");
    f->connections = lh_metrics_get(m, LH_METRIC_COUNTER, "loghaul_agent_connections_total",
                                    NULL, "Connections established to collectors");
    f->batches_in_flight = lh_metrics_get(m, LH_METRIC_GAUGE, "loghaul_agent_batches_in_flight",
                                          NULL, "Batches sent and not yet acknowledged");
    f->acks = lh_metrics_get(m, LH_METRIC_COUNTER, "loghaul_agent_acks_total", NULL,
                             "Acknowledgements received from collectors (one per batch)");
    f->bytes_sent = lh_metrics_get(m, LH_METRIC_COUNTER, "loghaul_agent_bytes_sent_total", NULL,
                                   "Forward frame bytes written to collectors, resends included");
    f->buffer_chunks = lh_metrics_get(m, LH_METRIC_GAUGE, "loghaul_agent_buffer_chunks", NULL,
                                      "Batches in the disk buffer waiting for an ack");
    f->dropped_full = lh_pipeline_dropped(f->pl, "buffer_full");
    f->dropped_corrupt = lh_pipeline_dropped(f->pl, "buffer_corrupt");
    const char *help = "Buffered chunks skipped: torn (cut by a crash) or corrupt (checksum)";
    f->skipped_torn = lh_metrics_get(m, LH_METRIC_COUNTER, "loghaul_agent_buffer_skipped_total",
                                     "reason=\"torn\"", help);
    f->skipped_corrupt = lh_metrics_get(m, LH_METRIC_COUNTER,
                                        "loghaul_agent_buffer_skipped_total",
                                        "reason=\"corrupt\"", help);
}

static int fwd_create(const struct lh_cfg_item *item, const struct lh_agent_ctx *ctx,
                      struct lh_output *out, struct lh_batch_limits *limits, void **state,
                      char *err, size_t errlen)
{
    struct fwd *f = calloc(1, sizeof *f);
    if (!f)
        return LH_ENOMEM;
    *state = f;
    f->wake[0] = f->wake[1] = -1;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->cfg = (const struct fwd_cfg *)item;
    f->out = out;
    f->pl = ctx->pl;
    f->ckpt = ctx->ckpt;
    *limits = (struct lh_batch_limits){f->cfg->batch.max_records, f->cfg->batch.max_bytes,
                                       f->cfg->batch.max_wait_ms, f->cfg->max_in_flight};
    /* Frames in memory (pending and in flight): a full window and as much
     * again queued behind it; older ones are read back from disk. */
    f->cache_cap = (size_t)(f->cfg->batch.max_bytes * f->cfg->max_in_flight);
    get_metrics(f, ctx->metrics);
    if (lh_tls_on(&f->cfg->tls)) {
        char why[512] = "";
        f->ssl_ctx = lh_tls_client_ctx(&f->cfg->tls, why, sizeof why);
        if (!f->ssl_ctx) {
            snprintf(err, errlen, "forward output (line %d): TLS: %s", item->line, why);
            return LH_ETLS;
        }
    }
    f->sync_ev = evtimer_new(ctx->base, on_sync, f);
    f->tick = event_new(ctx->base, -1, EV_PERSIST, on_tick, f);
    if (pipe2(f->wake, O_CLOEXEC | O_NONBLOCK) == 0)
        f->wake_ev = event_new(ctx->base, f->wake[0], EV_READ | EV_PERSIST, on_job_done, f);
    if (!f->sync_ev || !f->tick || !f->wake_ev || event_add(f->wake_ev, NULL) != 0) {
        snprintf(err, errlen, "forward output: out of memory");
        return LH_ENOMEM;
    }
    /* Without the thread, syncs run on the loop: slower, still correct. */
    f->thread_on = pthread_create(&f->sync_thread, NULL, sync_main, f) == 0;
    int rc = open_buffer(f, ctx, err, errlen);
    struct lh_fwd_client_cfg tmpl = {
        .base = ctx->base, .dns = ctx->dns, .ssl_ctx = f->ssl_ctx,
        .shared_key = f->cfg->shared_key,
        .hostname = f->cfg->hostname ? f->cfg->hostname : ctx->host,
        .ack_timeout_ms = f->cfg->ack_timeout_ms, .max_in_flight = (size_t)f->cfg->max_in_flight,
        .backoff_max_ms = f->cfg->backoff_max_ms, .keepalive = true, .log_name = FWD_LOG,
        .peer_kind = "collector", .connections = f->connections, .cbs = &client_cbs, .ud = f};
    if (rc == 0)
        rc = fwd_conns_new(&f->conns, f->cfg, &tmpl, err, errlen);
    return rc;
}

static int fwd_start(void *state)
{
    struct fwd *f = state;
    static const struct timeval sec = {1, 0};
    if (event_add(f->tick, &sec) != 0)
        return LH_ENOMEM;
    report_queued(f);
    if (lh_chunkq_dirty(f->q))
        schedule_sync(f);
    fwd_conns_start(&f->conns);
    return LH_OK;
}

static void fwd_submit(void *state, struct lh_batch *b)
{
    struct fwd *f = state;
    b->next = NULL;
    if (f->wait_tail)
        f->wait_tail->next = b;
    else
        f->wait_head = b;
    f->wait_tail = b;
    drain_waiting(f);
}

static void fwd_destroy(void *state)
{
    struct fwd *f = state;
    if (!f)
        return;
    f->closing = true;
    stop_sync_thread(f);
    if (f->job)
        lh_chunkq_sync_end(f->q, f->job);
    fwd_conns_free(&f->conns);
    while (f->wait_head) {
        struct lh_batch *b = f->wait_head;
        f->wait_head = b->next;
        lh_batch_free(b);
    }
    /* Not yet synced: the close syncs them, and the next start resumes
     * reading after their positions. */
    fq_free(&f->pending);
    lh_chunkq_close(f->q);
    if (f->sync_ev)
        event_free(f->sync_ev);
    if (f->tick)
        event_free(f->tick);
    if (f->wake_ev)
        event_free(f->wake_ev);
    for (int i = 0; i < 2; i++)
        if (f->wake[i] >= 0)
            close(f->wake[i]);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    SSL_CTX_free(f->ssl_ctx);
    free(f->qdir);
    free(f);
}

static void fwd_status(void *state, json_t *outputs)
{
    struct fwd *f = state;
    struct lh_chunkq_stats st;
    lh_chunkq_stats(f->q, &st);
    json_t *o = json_pack("{sssisI}", "type", "forward", "pending", (int)f->pending.n,
                          "buffer_bytes", (json_int_t)st.bytes);
    fwd_conns_status(&f->conns, o);
    json_array_append_new(outputs, o);
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
