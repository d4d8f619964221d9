/* The `forward` output's internals: out_forward_config.c (the schema),
 * out_forward.c (the disk buffer, sending, hooks) and out_forward_conn.c
 * (the collectors, one common/net/fwd_client each).
 *
 * A sealed batch's entries become the middle of its PackedForward frame
 * (a head and a tail are packed around them, nothing is copied), are
 * written to the output's chunk queue (data_dir/buffer/forward-N) and go
 * out at once. The batch stays held against the pipeline's cap (the file
 * checkpoint waits) until the chunk is acked by a collector or fsync'd,
 * whichever is first: fsync waits buffer.sync_delay for an ack, so at speed
 * the disk sees almost nothing (consumed segments are deleted while still
 * in the page cache), a crash of the agent loses nothing (the page cache
 * keeps what was written; a replay resends the same chunk ids and the
 * collector drops the copies), and with no collector the chunks are made
 * durable at once so the inputs go on into the buffer. Frames of durable
 * chunks stay in memory up to a cap (past it only by frames in flight);
 * others are read back from disk when their turn comes. */
#ifndef LH_AGENT_OUT_FORWARD_INT_H
#define LH_AGENT_OUT_FORWARD_INT_H

#include <openssl/ssl.h>
#include <pthread.h>

#include "agent/core/pipeline.h"
#include "common/chunkq/chunkq.h"
#include "common/codec/record.h"
#include "common/net/fwd_client.h"
#include "common/net/tls.h"

#define FWD_LOG "out_forward"

enum { BALANCE_ROUND_ROBIN, BALANCE_FAILOVER };
enum { COMPRESS_NONE, COMPRESS_GZIP };
enum { ON_FULL_BLOCK, ON_FULL_DROP_OLDEST };

struct fwd_batch_cfg {
    int64_t max_records;
    int64_t max_bytes;
    int64_t max_wait_ms;
};

struct fwd_buffer_cfg {
    int64_t max_size;
    int on_full;
    int64_t sync_delay_ms;
};

struct fwd_cfg {
    struct lh_output_cfg base;
    struct lh_strlist collectors;
    int balance;
    struct lh_tls_cfg tls;
    char *shared_key;
    char *hostname;
    struct fwd_batch_cfg batch;
    struct fwd_buffer_cfg buffer;
    int compress;
    int64_t ack_timeout_ms;
    int64_t max_in_flight;
    int64_t backoff_max_ms;
};

/* A queued chunk as the output sees it (lh_chunk.ud). */
struct fchunk {
    struct fchunk *next;        /* in pending */
    struct lh_chunk *c;
    /* Held until durable or delivered: the frame is in mem, counted
     * against the pipeline's cap (through the batch), not the cache's. */
    struct lh_batch *batch;
    struct fchunk *hprev, *hnext; /* in the output's held list while held */
    bool durable;               /* its fsync is done (replayed chunks are) */
    bool in_flight;             /* in a client's window: its frame is referenced */
    int64_t appended_ms;
    /* The frame, when in memory: mem alone once read back from disk; the
     * batch's entries between the head and tail kept in extra while fresh
     * (the entries are never copied into a frame buffer). */
    char *mem;
    size_t len;
    char *extra;                /* head then tail; NULL: none */
    size_t head_len, extra_len;
    unsigned attempts;
};

struct fq {
    struct fchunk *head, *tail;
    size_t n;
};

/* out_forward_conn.c: one Forward client per collector address and the
 * choice among them. It knows nothing of the buffer: the clients report
 * acks and failures to out_forward.c, which owns every chunk list. */
struct fwd_conns {
    struct lh_fwd_client **v;
    size_t n, rr;
    int balance;
};

/* One client per address of each configured collector, each made from
 * tmpl (everything but the endpoint). 0, or LH_ENOMEM with err. */
int fwd_conns_new(struct fwd_conns *cs, const struct fwd_cfg *cfg,
                  const struct lh_fwd_client_cfg *tmpl, char *err, size_t errlen);
void fwd_conns_start(struct fwd_conns *cs);
/* Frees the clients; their windows come back through fail (why NULL). */
void fwd_conns_free(struct fwd_conns *cs);
/* The client the next chunk goes to by the balance policy, or NULL when
 * none may take one now. */
struct lh_fwd_client *fwd_conns_pick(struct fwd_conns *cs);
/* True when some collector connection has finished its handshake. */
bool fwd_conns_ready(const struct fwd_conns *cs);
/* Sets "collector", "state", "in_flight" and "collectors" in out. */
void fwd_conns_status(const struct fwd_conns *cs, json_t *out);

struct fwd {
    const struct fwd_cfg *cfg;
    struct lh_output *out;
    struct lh_pipeline *pl;
    struct lh_ckpt *ckpt;
    SSL_CTX *ssl_ctx;
    struct fwd_conns conns;
    struct lh_chunkq *q;
    char *qdir;
    struct lh_batch *wait_head, *wait_tail; /* sealed, not yet in the queue */
    struct fq pending;          /* not in flight, oldest first */
    size_t cached, cache_cap;   /* frame bytes of pending chunks kept in memory */
    struct fchunk *held, *held_tail; /* chunks with a batch still held, oldest first */
    struct event *sync_ev;      /* the next sync job, now or at a chunk's delay */
    struct event *tick;
    /* Group commits run their fsyncs on a thread of their own (one at a
     * time) while the loop goes on reading, appending and sending. */
    struct lh_chunkq_job *job;  /* the loop's until handed over by go */
    pthread_t sync_thread;
    pthread_mutex_t mu;         /* guards go and quit */
    pthread_cond_t cv;
    bool go, quit, thread_on;
    int wake[2];                /* the thread's "done" to the loop */
    struct event *wake_ev;
    bool resync, closing;
    struct lh_metric *retries, *connections, *batches_in_flight, *dropped_full,
        *dropped_corrupt, *skipped_torn, *skipped_corrupt, *acks, *bytes_sent, *buffer_chunks;
};

#endif
