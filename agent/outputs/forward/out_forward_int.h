/* The `forward` output's internals, shared by out_forward.c (config, the
 * disk buffer, hooks) and out_forward_conn.c (connections to collectors).
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
    struct fchunk *next;        /* in pending or a connection's in-flight list */
    struct lh_chunk *c;
    /* Held until durable or delivered: the frame is in mem, counted
     * against the pipeline's cap (through the batch), not the cache's. */
    struct lh_batch *batch;
    struct fchunk *hprev, *hnext; /* in the output's held list while held */
    bool durable;               /* its fsync is done (replayed chunks are) */
    bool in_flight;             /* on a connection: its frame is referenced */
    int64_t appended_ms;
    /* The frame, when in memory: mem alone once read back from disk; the
     * batch's entries between the head and tail kept in extra while fresh
     * (the entries are never copied into a frame buffer). */
    char *mem;
    size_t len;
    char *extra;                /* head then tail; NULL: none */
    size_t head_len, extra_len;
    int64_t sent_ms;
    unsigned attempts;
};

struct fq {
    struct fchunk *head, *tail;
    size_t n;
};

enum conn_state { ST_IDLE, ST_CONNECTING, ST_HELO, ST_PONG, ST_READY };

/* One collector address (a name resolving to several is several). */
struct conn {
    struct fwd *f;
    char addr[256];             /* what is connected to */
    char name[256];             /* as configured: TLS name and logs */
    int port;
    struct bufferevent *bev;
    enum conn_state st;
    int64_t st_since_ms;
    unsigned fails;             /* in a row: the backoff exponent */
    struct fq inflight;
    struct event *retry;
    struct lh_mp_scan scan;
    struct lh_fwd_helo helo;
    struct lh_fwd_ping ping;
};

struct fwd {
    const struct fwd_cfg *cfg;
    struct lh_output *out;
    struct lh_pipeline *pl;
    struct lh_ckpt *ckpt;
    struct event_base *base;
    struct evdns_base *dns;
    const char *hostname;
    SSL_CTX *ssl_ctx;
    struct conn *conns;
    size_t n_conns, rr;
    struct lh_chunkq *q;
    char *qdir;
    struct lh_batch *wait_head, *wait_tail; /* sealed, not yet in the queue */
    struct fq pending;          /* durable, not in flight */
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

void fq_push(struct fq *q, struct fchunk *fc);
struct fchunk *fq_pop(struct fq *q);
void fchunk_free(struct fchunk *fc);
/* Frame bytes fc holds in memory. */
size_t fchunk_mem_bytes(const struct fchunk *fc);
/* A collector acknowledged fc (taken off its in-flight list): consumes it. */
void fwd_delivered(struct fwd *f, struct fchunk *fc);
/* No collector takes batches any more: held chunks are synced now, which
 * releases their batches, so the inputs go on into the disk buffer. */
void fwd_sync_held(struct fwd *f);
/* Loads fc's frame from disk when it is not in memory. 0, or an LH_E* code
 * (a corrupt chunk has then been dropped and counted). */
int fwd_load(struct fwd *f, struct fchunk *fc);

/* out_forward_conn.c */
int fwd_conns_new(struct fwd *f, char *err, size_t errlen);
void fwd_conns_start(struct fwd *f);
void fwd_conns_free(struct fwd *f);
/* Hands pending chunks to ready connections while windows allow. */
void fwd_send_pending(struct fwd *f);
/* True when some collector connection has finished its handshake. */
bool fwd_conns_ready(const struct fwd *f);
/* Ack and handshake timeouts. */
void fwd_conns_tick(struct fwd *f);
void fwd_conns_status(struct fwd *f, json_t *outputs);

#endif
