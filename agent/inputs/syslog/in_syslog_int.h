/* The syslog input's parts: in_syslog.c (config, hooks, messages →
 * records), in_syslog_net.c (listeners, datagrams) and in_syslog_stream.c
 * (stream connections and their memory budget).
 *
 * Listen URLs: udp://HOST:PORT, tcp://HOST:PORT, tls://HOST:PORT (RFC 5425,
 * with the input's `tls:` section), unix:///PATH (datagram, like /dev/log)
 * and unixstream:///PATH (stream). IPv6 hosts go in brackets:
 * udp://[::1]:514. Streams are framed per RFC 6587 (common/syslog_frame.h),
 * every datagram is one message.
 *
 * Ownership: the input owns its listeners, each listener owns its
 * connections; everything runs on the agent's event_base thread. */
#ifndef LH_AGENT_IN_SYSLOG_INT_H
#define LH_AGENT_IN_SYSLOG_INT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/transform/filters/filter.h"
#include "agent/core/pipeline.h"
#include "agent/core/recbuilder.h"
#include "common/codec/syslog.h"
#include "common/codec/syslog_frame.h"
#include "common/net/net.h"
#include "common/net/tls.h"

#define SYSLOG_LOG "in_syslog"
/* What libevent reads ahead of a stream connection's decoder: one read
 * (libevent's largest), so a connection waiting for memory holds little
 * beyond its decoder's buffer. */
#define SL_READ_HIGH_WATER (16u * 1024)

struct in_syslog_cfg {
    struct lh_cfg_item item;
    char *tag;
    struct lh_strlist listen;
    int format;                  /* enum lh_syslog_format */
    int64_t max_message;
    struct lh_tls_cfg tls;
    int64_t max_connections;     /* per stream listener */
    char *mode;                  /* unix sockets: octal permissions ("0660") */
    char *group;                 /* unix sockets: group name or gid; NULL: unchanged */
    int64_t max_memory;          /* every stream connection's buffers together */
};

enum sl_kind { SL_UDP, SL_TCP, SL_TLS, SL_UNIX_DGRAM, SL_UNIX_STREAM };

struct sl_conn;
struct sl_rx;

struct sl_listener {
    struct sl_listener *next;
    struct in_syslog *in;
    enum sl_kind kind;
    const char *url;             /* borrowed from the config */
    char bound[160];             /* the address bound, as logged */
    char *unix_path;             /* removed again on destroy */
    int fd;                      /* datagram sockets; -1 otherwise */
    struct event *ev;            /* datagram reads */
    struct evconnlistener *lev;  /* stream accepts */
    struct lh_net_gate *gate;    /* when lev accepts: max_connections, accept backoff */
    struct sl_conn *conns;
    uint64_t kernel_drops;       /* the kernel's count for this socket, as last read */
    uint64_t received;
};

/* The stream connections' memory against max_memory (in_syslog_stream.c). */
struct sl_budget {
    size_t held;                 /* decoder buffers and libevent input, all connections */
    size_t n_waiting;            /* connections stopped for max_memory */
    bool resumed;                /* one of them read again since the stall timer was armed */
    struct event *resume_ev, *stall_ev;
    struct lh_metric *m_bytes, *m_pauses, *m_closes;
};

struct in_syslog {
    const struct in_syslog_cfg *cfg;
    struct lh_agent_ctx ctx;
    struct lh_route *route;
    size_t host_len;
    struct lh_recbuilder rb;
    struct lh_syslog_msg msg;    /* the message being turned into a record */
    char *scratch;               /* max_message bytes: unescaped SD values */
    struct lh_filter_chain filters;
    SSL_CTX *ssl_ctx;            /* when a tls:// listener is configured */
    struct sl_listener *listeners;
    struct sl_rx *rx;            /* datagram receive buffers, shared by the listeners */
    struct event *drops_tick;    /* reads the kernel's UDP drop counters */
    struct sl_budget mem;
    bool paused, stopped;
    struct lh_metric *m_received, *m_parse_errors, *m_truncated, *m_udp_drops, *m_filtered;
};

/* One message as received: parsed, built into a record, filtered, emitted.
 * peer names the sender for remote_addr. */
void sl_emit(struct in_syslog *in, const char *p, size_t n, bool truncated, const char *peer);

/* "0660" → 0660: octal, at most 0777. 0 or LH_EINVAL. */
int sl_parse_mode(const char *s, unsigned *mode);
/* The largest group number: (gid_t)-1 is chown's "unchanged". */
#define SL_GID_MAX ((unsigned long)(gid_t)-1 - 1)
/* A group number 0..SL_GID_MAX → 0; a sign or a number past it →
 * LH_ETOOBIG (refused, never wrapped); anything else is a name: LH_ENOENT. */
int sl_parse_gid(const char *s, gid_t *gid);
/* Opens the listener of url (logging "syslog listening on URL"), or
 * returns LH_E* with err filled. */
int sl_listener_open(struct in_syslog *in, const char *url, char *err, size_t errlen);
/* A unix socket of type at path, with the input's mode and group. */
int sl_bind_unix(struct sl_listener *l, const char *path, int type, char *err, size_t errlen);
/* A tcp://, tls:// or unixstream:// listener (rest: what follows the scheme). */
int sl_stream_open(struct sl_listener *l, const char *rest, char *err, size_t errlen);
/* The stream connections of l: reading paused or resumed, stopped, freed. */
void sl_streams_pause(struct sl_listener *l, bool paused);
void sl_streams_stop(struct sl_listener *l);
void sl_streams_free(struct sl_listener *l);
/* The budget's events (its metrics are made with the input's); free after
 * the listeners. */
int sl_budget_init(struct in_syslog *in);
void sl_budget_free(struct in_syslog *in);
/* Starts, pauses, resumes or stops reading on every listener. */
int sl_listeners_start(struct in_syslog *in);
void sl_listeners_pause(struct in_syslog *in, bool paused);
void sl_listeners_stop(struct in_syslog *in);
void sl_listeners_free(struct in_syslog *in);
/* Adds to the drop metric what the kernel dropped on UDP sockets since the
 * last look (/proc/net/udp and udp6). */
void sl_read_kernel_drops(struct in_syslog *in);
size_t sl_listener_conns(const struct sl_listener *l);

#endif
