/* One Forward client connection: the sending side of Forward v1 over a
 * plain or TLS bufferevent, shared by the agent's forward output and the
 * collector's forward relay.
 *
 * It connects to one of its endpoints, runs the shared-key handshake
 * (HELO/PING/PONG, the server's digest checked), reads the replies (each
 * bounded, scanned, then unpacked) and matches each {"ack": id} to the
 * chunk sent with that id, in any order. It keeps a window of at most
 * max_in_flight unacknowledged chunks and fails the connection when the
 * oldest waits longer than ack_timeout (or the connect or handshake does).
 *
 * A failure hands the unacknowledged chunks back to the owner, oldest
 * first, and schedules the next connect: to the next endpoint at once
 * while some have not failed in this round, then after an exponential
 * backoff (500 ms doubling to backoff_max, jittered into [d/2, d]). An ack
 * ends the round. The owner decides what is resent and where: the client
 * keeps no list of its own beyond the window.
 *
 * Ownership: the client copies its configuration's strings; ssl_ctx,
 * metrics and the chunks' bytes are borrowed. A sent chunk's bytes are
 * referenced, not copied, and must stay valid until the chunk is acked or
 * handed back. Callbacks run on the loop and must not free the client. */
#ifndef LH_NET_FWD_CLIENT_H
#define LH_NET_FWD_CLIENT_H

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/base/metrics.h"
#include "common/codec/forward.h"

#define LH_FWD_CLIENT_BACKOFF_MIN_MS 500

enum lh_fwd_client_state {
    LH_FWD_IDLE,       /* not connected: waiting to (re)connect */
    LH_FWD_CONNECTING, /* TCP (and TLS) connect under way */
    LH_FWD_HELO,       /* connected, waiting for the server's HELO */
    LH_FWD_PONG,       /* PING sent, waiting for PONG */
    LH_FWD_READY,      /* chunks may be sent */
};

struct lh_fwd_client;

struct lh_fwd_endpoint {
    const char *host;     /* what is connected to: a name or a numeric address */
    int port;
    const char *tls_name; /* checked against the certificate; NULL: host */
};

struct lh_fwd_client_cbs {
    /* The connection may take chunks (lh_fwd_client_has_room). */
    void (*ready)(void *ud, struct lh_fwd_client *c);
    /* The chunk sent as item was acknowledged; it has left the window. */
    void (*ack)(void *ud, struct lh_fwd_client *c, void *item);
    /* The connection is gone: items[0..n) were unacknowledged, oldest
     * first, and are the owner's again. why is NULL when the owner closed
     * it (lh_fwd_client_free), else the reason, already logged; the next
     * connect is then scheduled. */
    void (*fail)(void *ud, struct lh_fwd_client *c, void *const *items, size_t n,
                 const char *why);
};

struct lh_fwd_client_cfg {
    struct event_base *base;
    struct evdns_base *dns;             /* NULL: names resolved by the system */
    SSL_CTX *ssl_ctx;                   /* NULL: plain TCP */
    const struct lh_fwd_endpoint *endpoints;
    size_t n_endpoints;                 /* at least one */
    const char *shared_key;             /* NULL: no handshake */
    const char *hostname;               /* sent in PING */
    int64_t ack_timeout_ms;             /* also bounds the connect and handshake */
    size_t max_in_flight;               /* at least one */
    int64_t backoff_max_ms;             /* at least LH_FWD_CLIENT_BACKOFF_MIN_MS */
    /* Reconnect as soon as the backoff allows (the agent keeps every
     * collector connected); false: only once lh_fwd_client_kick asked. */
    bool keepalive;
    const char *log_name;               /* the logging component ("out_forward") */
    const char *peer_kind;              /* "collector", "receiver": in messages */
    struct lh_metric *connections;      /* counts connects; may be NULL */
    const struct lh_fwd_client_cbs *cbs;
    void *ud;
};

/* 0, LH_EINVAL (a bound above broken) or LH_ENOMEM. Nothing connects
 * before lh_fwd_client_start or lh_fwd_client_kick. */
int lh_fwd_client_new(const struct lh_fwd_client_cfg *cfg, struct lh_fwd_client **out);
/* Connects now (keepalive clients; a no-op unless idle). */
void lh_fwd_client_start(struct lh_fwd_client *c);
/* There is something to send: connects now when idle with no backoff
 * running, else once it has run out. */
void lh_fwd_client_kick(struct lh_fwd_client *c);
/* Hands the window back through fail (why NULL), closes and frees. NULL
 * is fine. */
void lh_fwd_client_free(struct lh_fwd_client *c);

bool lh_fwd_client_ready(const struct lh_fwd_client *c);
/* Ready, with room in the window. */
bool lh_fwd_client_has_room(const struct lh_fwd_client *c);
/* Sends one frame, the concatenation of iov[0..n) (referenced, see above),
 * as chunk id (LH_CHUNK_ID_LEN characters, copied) to be reported as item.
 * Only when lh_fwd_client_has_room, else LH_EINVAL. LH_OK, or LH_EIO when
 * the write failed: the connection has then failed (fail ran, item the
 * newest of its items). */
int lh_fwd_client_send(struct lh_fwd_client *c, const char *id, void *item,
                       const struct iovec *iov, size_t n);
/* The same for a malloc'd frame the client takes in every case, freed once
 * written (or the connection is gone). */
int lh_fwd_client_send_owned(struct lh_fwd_client *c, const char *id, void *item, char *frame,
                             size_t len);

enum lh_fwd_client_state lh_fwd_client_state(const struct lh_fwd_client *c);
/* "disconnected", "connecting", "handshake" or "connected". */
const char *lh_fwd_client_state_name(enum lh_fwd_client_state st);
size_t lh_fwd_client_in_flight(const struct lh_fwd_client *c);
/* "host:port" of the endpoint in use or next tried. */
const char *lh_fwd_client_peer(const struct lh_fwd_client *c);

/* The wait before connect number `fails` of a round that has failed
 * through all n_endpoints: 0 while fails < n_endpoints, else 500 ms
 * doubled per failure past that, capped at max_ms, then drawn in
 * [d/2, d]. Exposed for tests. */
int64_t lh_fwd_client_backoff_ms(unsigned fails, size_t n_endpoints, int64_t max_ms);

#endif
