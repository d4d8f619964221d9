/* The syslog input's parts: in_syslog.c (config, hooks, messages →
 * records) and in_syslog_net.c (listeners and connections).
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

#include "agent/transform/filters/filter.h"
#include "agent/core/pipeline.h"
#include "agent/core/recbuilder.h"
#include "common/codec/syslog.h"
#include "common/codec/syslog_frame.h"
#include "common/net/net.h"
#include "common/net/tls.h"

#define SYSLOG_LOG "in_syslog"

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
    bool paused, stopped;
    struct lh_metric *m_received, *m_parse_errors, *m_truncated, *m_udp_drops, *m_filtered;
};

/* One message as received: parsed, built into a record, filtered, emitted.
 * peer names the sender for remote_addr. */
void sl_emit(struct in_syslog *in, const char *p, size_t n, bool truncated, const char *peer);

/* "0660" → 0660: octal, at most 0777. 0 or LH_EINVAL. */
int sl_parse_mode(const char *s, unsigned *mode);
/* Opens the listener of url (logging "syslog listening on URL"), or
 * returns LH_E* with err filled. */
int sl_listener_open(struct in_syslog *in, const char *url, char *err, size_t errlen);
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
