/* Internals of the Forward listener shared by in_forward.c (connections,
 * reading, the memory budget) and in_forward_frame.c (frames, staging,
 * acks, the handshake's answers). Not for other modules. */
#ifndef LH_IN_FORWARD_INT_H
#define LH_IN_FORWARD_INT_H

#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <msgpack.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "collector/ingest/commit.h"
#include "collector/ingest/in_forward.h"
#include "common/codec/forward.h"

#define FWD_LOG "in_forward"

enum reason {
    R_MALFORMED, R_TOO_BIG, R_PROTOCOL, R_HANDSHAKE, R_TLS, R_STORE, R_TOO_DEEP, R_MEMORY,
    R_FRAME_TIMEOUT,
    N_REASONS
};

struct fwd_metrics {
    struct lh_metric *bytes_in, *conns_total, *conns_active;
    struct lh_metric *memory, *pauses;
    struct lh_metric *rejected[N_REASONS];
};

struct conn;

/* A batch handed to commit, until commit's done: owned by the connection
 * while it lives, then by done (a connection that goes first leaves it
 * with c NULL, and done frees it without acking). */
struct ticket {
    struct conn *c;
    bool done;
    int status;
    bool ack;                  /* the sender asked for one */
    size_t chunk_len;
    char chunk[];
};

struct lh_in_forward {
    struct event_base *base;
    const struct lh_forward_listen_cfg *cfg;
    struct lh_commit *commit;
    struct evconnlistener *lev;
    /* Decides when the listener accepts: max_connections, and a pause
     * after a failed accept(). NULL once shut down. */
    struct lh_net_gate *gate;
    SSL_CTX *ssl_ctx;          /* NULL: plain TCP */
    struct conn *conns;        /* owned; each freed by conn_free */
    struct fwd_metrics m;
    /* Frames are handled one at a time on this thread: one staging buffer
     * serves every connection, and keeping it spares an allocation (and
     * the page faults of a fresh one) per frame. */
    msgpack_sbuffer stage;
    /* The memory budget (max_memory): bytes every connection holds (frame
     * buffers and libevent's input). A connection that would grow past it
     * stops reading until memory is released; with connections waiting and
     * nothing released for STALL_MS, the holders that received a byte least
     * recently are closed: waiting holders (half-sent frames) would otherwise
     * wait for each other forever, and a sender delivering goes last. */
    size_t held;
    size_t n_paused;
    TAILQ_HEAD(, conn) paused; /* in the order they paused: resumed first come first */
    bool released;             /* memory released since the stall timer was armed */
    struct event *resume_ev;   /* wakes paused connections, from the loop */
    struct event *stall_ev;
    struct event *wake_ev;     /* settles commits done later, from the loop */
    void (*done)(void *ud);    /* set by shutdown */
    void *done_ud;
};

/* One connection. Owned by the listener's list; freed only by conn_free,
 * called from this connection's own callbacks or from shutdown/free. */
struct conn {
    struct lh_in_forward *f;
    struct conn *prev, *next;
    struct bufferevent *bev;
    char peer[80];             /* "ip:port" for logs */
    char host[256];            /* `host` for records lacking one */
    uint8_t *buf;              /* bytes of the frame being received */
    size_t len, cap;
    struct lh_mp_scan scan;
    bool authed;               /* handshake done, or none configured */
    bool tls_done;             /* TLS handshake done, or plain TCP */
    struct event *hs_timer;    /* until both handshakes are done; then NULL */
    bool closing;              /* no more reading; freed once acks are written */
    bool paused;               /* reading stopped: waiting for memory (in f->paused) */
    TAILQ_ENTRY(conn) pause_link;
    /* One commit at a time per connection, as the store's fsync used to
     * hold the whole loop: while t is out no frame is read. */
    struct ticket *t;
    bool in_submit;            /* inside lh_commit_submit: done is settled after it */
    bool wake;                 /* t is done: on_wake settles it */
    bool unscanned;            /* c->buf holds bytes past t's frame, not scanned yet */
    size_t held;               /* what this connection counts in f->held */
    size_t want;               /* paused: the growth it waits for */
    int64_t last_rx_ms;        /* bytes last arrived, or reading resumed (monotonic) */
    struct event *frame_timer; /* checks a partial frame still grows (frame_timeout) */
    struct lh_fwd_helo helo;
};

/* Logs why, counts it, closes. Always returns -1 (the connection is gone). */
__attribute__((format(printf, 3, 4))) int lh_infwd_fault(struct conn *c, enum reason r,
                                                          const char *fmt, ...);
/* Stops reading; the connection goes once its output (acks, PONG) is sent. */
void lh_infwd_close_after_write(struct conn *c);
/* Drops the handshake timer once TLS and the shared-key handshake are done. */
void lh_infwd_handshake_progress(struct conn *c);
/* Publishes the bytes held against max_memory. */
void lh_infwd_mem_gauge(struct lh_in_forward *f);

/* One complete msgpack object from the stream (in_forward_frame.c). 0, or
 * -1 when the connection is closed or closing. */
int lh_infwd_frame(struct conn *c, const uint8_t *p, size_t len);
/* Acks (or faults) c's finished commit and drops its ticket. 0, or -1 when
 * the connection is gone. */
int lh_infwd_settle(struct conn *c);
int lh_infwd_send_helo(struct conn *c);

#endif
