/* The syslog input's sockets: datagram listeners (UDP, unix) read in
 * batches with recvmmsg; stream listeners (TCP, TLS, unix stream) are
 * bound here and read in in_syslog_stream.c.
 *
 * Backpressure: a paused input stops reading. Streams then push back on
 * their senders through TCP flow control; datagrams wait in the socket's
 * receive buffer (made large for that) and what overflows it the kernel
 * drops and counts, which loghaul_agent_syslog_udp_drops_total reports. */
#include <errno.h>
#include <grp.h>
#include <event2/buffer.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/inputs/syslog/in_syslog_int.h"
#include "common/base/err.h"
#include "common/base/log.h"
#include "common/net/net.h"
#include "common/base/util.h"

#define RCVBUF_WANT (8 << 20)
/* Bytes of datagram slots per recvmmsg call, and the most slots. */
#define RX_BYTES (4u << 20)
#define RX_MAX_SLOTS 32
/* recvmmsg calls per readiness event, so one flood cannot starve the rest. */
#define RX_ROUNDS 8

struct sl_rx {
    size_t slots, slot_size;
    char *data;
    struct mmsghdr *mm;
    struct iovec *iov;
    struct sockaddr_storage *addr;
    char (*ctl)[CMSG_SPACE(sizeof(uint32_t))];
};

/* ---- datagrams ---------------------------------------------------------- */

static int rx_new(struct in_syslog *in)
{
    struct sl_rx *rx = calloc(1, sizeof *rx);
    if (!rx)
        return LH_ENOMEM;
    in->rx = rx;
    rx->slot_size = (size_t)in->cfg->max_message;
    rx->slots = RX_BYTES / rx->slot_size;
    rx->slots = rx->slots < 1 ? 1 : rx->slots > RX_MAX_SLOTS ? RX_MAX_SLOTS : rx->slots;
    rx->data = malloc(rx->slots * rx->slot_size);
    rx->mm = calloc(rx->slots, sizeof *rx->mm);
    rx->iov = calloc(rx->slots, sizeof *rx->iov);
    rx->addr = calloc(rx->slots, sizeof *rx->addr);
    rx->ctl = calloc(rx->slots, sizeof *rx->ctl);
    return rx->data && rx->mm && rx->iov && rx->addr && rx->ctl ? LH_OK : LH_ENOMEM;
}

static void rx_free(struct sl_rx *rx)
{
    if (!rx)
        return;
    free(rx->data);
    free(rx->mm);
    free(rx->iov);
    free(rx->addr);
    free(rx->ctl);
    free(rx);
}

static void rx_arm(struct sl_rx *rx)
{
    for (size_t i = 0; i < rx->slots; i++) {
        rx->iov[i] = (struct iovec){rx->data + i * rx->slot_size, rx->slot_size};
        rx->mm[i].msg_hdr = (struct msghdr){
            .msg_name = &rx->addr[i],
            .msg_namelen = sizeof rx->addr[i],
            .msg_iov = &rx->iov[i],
            .msg_iovlen = 1,
            .msg_control = rx->ctl[i],
            .msg_controllen = sizeof rx->ctl[i],
        };
    }
}

/* SO_RXQ_OVFL: the socket's running count of dropped datagrams. */
static void note_drops(struct sl_listener *l, struct msghdr *h)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SO_RXQ_OVFL)
            continue;
        uint32_t v;
        memcpy(&v, CMSG_DATA(c), sizeof v);
        if (v > l->kernel_drops) {
            lh_metric_add(l->in->m_udp_drops, (int64_t)(v - l->kernel_drops));
            l->kernel_drops = v;
        }
    }
}

static void one_datagram(struct sl_listener *l, struct mmsghdr *mm)
{
    struct msghdr *h = &mm->msg_hdr;
    const char *p = h->msg_iov->iov_base;
    size_t n = mm->msg_len;
    char peer[160];
    note_drops(l, h);
    while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == '\0'))
        n--;
    if (n == 0)
        return;
    if (l->kind == SL_UDP)
        lh_net_addr_string(h->msg_name, peer, sizeof peer);
    else
        snprintf(peer, sizeof peer, "%s", l->bound);
    l->received++;
    sl_emit(l->in, p, n, (h->msg_flags & MSG_TRUNC) != 0, peer);
}

static void on_datagrams(evutil_socket_t fd, short what, void *arg)
{
    struct sl_listener *l = arg;
    struct in_syslog *in = l->in;
    struct sl_rx *rx = in->rx;
    for (int round = 0; round < RX_ROUNDS && !in->paused && !in->stopped; round++) {
        rx_arm(rx);
        int k = recvmmsg(fd, rx->mm, (unsigned)rx->slots, MSG_DONTWAIT, NULL);
        if (k < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                LH_WARN(SYSLOG_LOG, "[%s] reading %s: %s", in->cfg->tag, l->bound,
                        strerror(errno));
            return;
        }
        for (int i = 0; i < k; i++)
            one_datagram(l, &rx->mm[i]);
        if ((size_t)k < rx->slots) {
            lh_route_idle(in->route); /* the socket is empty for now */
            return;
        }
    }
}

static int tune_dgram(struct sl_listener *l, int *rcvbuf)
{
    int one = 1, want = RCVBUF_WANT;
    socklen_t len = sizeof *rcvbuf;
    /* FORCE passes net.core.rmem_max with CAP_NET_ADMIN; otherwise the
     * kernel clamps SO_RCVBUF to it. */
    if (setsockopt(l->fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0)
        setsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    if (getsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, rcvbuf, &len) != 0)
        *rcvbuf = 0;
    if (l->kind == SL_UDP)
        setsockopt(l->fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    return LH_OK;
}

static int bind_udp(struct sl_listener *l, const char *hostport, char *err, size_t errlen)
{
    char host[256], port_s[8];
    int port, saved = 0;
    struct addrinfo *res, hints = {.ai_socktype = SOCK_DGRAM,
                                   .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    if (lh_split_hostport(hostport, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "invalid address in %s (expected host:port or [v6]:port)", l->url);
        return LH_EINVAL;
    }
    snprintf(port_s, sizeof port_s, "%d", port);
    int rc = getaddrinfo(host[0] ? host : NULL, port_s, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", l->url, gai_strerror(rc));
        return LH_EINVAL;
    }
    for (struct addrinfo *ai = res; ai && l->fd < 0; ai = ai->ai_next) {
        l->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (l->fd >= 0 && bind(l->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            saved = errno;
            close(l->fd);
            l->fd = -1;
        } else if (l->fd < 0) {
            saved = errno;
        }
    }
    freeaddrinfo(res);
    if (l->fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->url, strerror(saved));
        return LH_EIO;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[128] = "?";
    if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) == 0)
        lh_net_addr_string((struct sockaddr *)&ss, addr, sizeof addr);
    snprintf(l->bound, sizeof l->bound, "udp://%s", addr);
    return LH_OK;
}

/* A group name, or a number (sl_parse_gid). */
static int parse_group(const char *name, gid_t *gid)
{
    char buf[4096];
    struct group gr, *found = NULL;
    int rc = sl_parse_gid(name, gid);
    if (rc != LH_ENOENT)
        return rc;
    if (getgrnam_r(name, &gr, buf, sizeof buf, &found) != 0 || !found)
        return LH_ENOENT;
    *gid = found->gr_gid;
    return LH_OK;
}

/* The input's mode and group, as numbers; err filled when they are not. */
static int unix_perms(struct sl_listener *l, unsigned *mode, gid_t *gid, char *err, size_t errlen)
{
    const struct in_syslog_cfg *cfg = l->in->cfg;
    *mode = 0666;
    *gid = (gid_t)-1;
    if (cfg->mode && sl_parse_mode(cfg->mode, mode) != 0) {
        snprintf(err, errlen, "%s: mode '%s' is not octal permissions", l->url, cfg->mode);
        return LH_EINVAL;
    }
    int rc = cfg->group ? parse_group(cfg->group, gid) : LH_OK;
    if (rc == LH_ETOOBIG)
        snprintf(err, errlen, "%s: group '%s' is not a group number (0 to %lu)", l->url,
                 cfg->group, (unsigned long)SL_GID_MAX);
    else if (rc != 0)
        snprintf(err, errlen, "%s: no group '%s'", l->url, cfg->group);
    return rc;
}

/* Binds fd at dir/s, gives it mode and group there, and renames it to
 * path. dir is private (0700), so nobody can open the socket before it
 * has its permissions: binding at path itself would leave it at
 * 0777 & ~umask until a chmod, wider than configured under a permissive
 * umask. Changing the umask instead would be process-wide, racing the
 * agent's other threads. The rename also replaces a stale socket at once. */
static int bind_private(struct sl_listener *l, const char *dir, const char *path, unsigned mode,
                        gid_t gid, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/s", dir) >= sizeof sa.sun_path ||
        bind(l->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->url, strerror(errno));
        return LH_EIO;
    }
    int rc = LH_EIO;
    if (gid != (gid_t)-1 && chown(sa.sun_path, (uid_t)-1, gid) != 0)
        snprintf(err, errlen, "%s: cannot give %s to group '%s': %s", l->url, path,
                 l->in->cfg->group, strerror(errno));
    else if (chmod(sa.sun_path, (mode_t)mode) != 0)
        snprintf(err, errlen, "%s: chmod %04o %s: %s", l->url, mode, path, strerror(errno));
    else if (rename(sa.sun_path, path) != 0)
        snprintf(err, errlen, "cannot listen on %s: rename to %s: %s", l->url, path,
                 strerror(errno));
    else
        rc = LH_OK;
    if (rc != 0)
        unlink(sa.sun_path);
    return rc;
}

/* A unix socket at path; a stale socket left there is replaced, any other
 * file is an error. Mode 0666 by default like /dev/log: any local program
 * logs; `mode` and `group` narrow that. The socket is made in a private
 * directory beside path (PATH.XXXXXX/s), hence the length limit. */
int sl_bind_unix(struct sl_listener *l, const char *path, int type, char *err, size_t errlen)
{
    static const char suffix[] = ".XXXXXX/s";
    struct sockaddr_un sa;
    struct stat st;
    unsigned mode;
    gid_t gid;
    char dir[sizeof sa.sun_path];
    if (!path[0] || strlen(path) + strlen(suffix) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "%s: socket path empty or longer than %zu bytes", l->url,
                 sizeof sa.sun_path - 1 - strlen(suffix));
        return LH_EINVAL;
    }
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s: %s exists and is not a socket", l->url, path);
        return LH_EEXIST;
    }
    int rc = unix_perms(l, &mode, &gid, err, errlen);
    if (rc != 0)
        return rc;
    snprintf(dir, sizeof dir, "%s.XXXXXX", path);
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "cannot listen on %s: mkdtemp %s: %s", l->url, dir, strerror(errno));
        return LH_EIO;
    }
    l->fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->url, strerror(errno));
        rc = LH_EIO;
    } else {
        rc = bind_private(l, dir, path, mode, gid, err, errlen);
    }
    rmdir(dir);
    if (rc != 0)
        return rc;
    if (!(l->unix_path = strdup(path)))
        return LH_ENOMEM;
    snprintf(l->bound, sizeof l->bound, "%s", l->url);
    return LH_OK;
}

static int open_dgram(struct sl_listener *l, const char *rest, char *err, size_t errlen)
{
    int rcvbuf = 0;
    int rc = l->kind == SL_UDP ? bind_udp(l, rest, err, errlen)
                               : sl_bind_unix(l, rest, SOCK_DGRAM, err, errlen);
    if (rc != 0)
        return rc;
    tune_dgram(l, &rcvbuf);
    if (!l->in->rx && (rc = rx_new(l->in)) != 0)
        return rc;
    l->ev = event_new(l->in->ctx.base, l->fd, EV_READ | EV_PERSIST, on_datagrams, l);
    if (!l->ev)
        return LH_ENOMEM;
    LH_INFO(SYSLOG_LOG, "syslog listening on %s (receive buffer %d bytes)", l->bound, rcvbuf);
    return LH_OK;
}

/* /proc/net/udp{,6} columns: sl local rem st tx:rx tr:tm retrnsmt uid
 * timeout inode ref pointer drops. */
static bool proc_drops(const char *file, unsigned long ino, uint64_t *drops)
{
    FILE *f = fopen(file, "r");
    char line[512];
    bool found = false;
    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long i;
        unsigned long long d;
        if (sscanf(line, " %*s %*s %*s %*s %*s %*s %*s %*s %*s %lu %*s %*s %llu", &i, &d) == 2 &&
            i == ino) {
            *drops = d;
            found = true;
        }
    }
    fclose(f);
    return found;
}

void sl_read_kernel_drops(struct in_syslog *in)
{
    for (struct sl_listener *l = in->listeners; l; l = l->next) {
        struct stat st;
        uint64_t d;
        if (l->kind != SL_UDP || l->fd < 0 || fstat(l->fd, &st) != 0)
            continue;
        if ((proc_drops("/proc/net/udp", (unsigned long)st.st_ino, &d) ||
             proc_drops("/proc/net/udp6", (unsigned long)st.st_ino, &d)) &&
            d > l->kernel_drops) {
            lh_metric_add(in->m_udp_drops, (int64_t)(d - l->kernel_drops));
            l->kernel_drops = d;
        }
    }
}

/* ---- listeners ---------------------------------------------------------- */

static const struct {
    const char *scheme;
    enum sl_kind kind;
} schemes[] = {
    {"udp://", SL_UDP},         {"tcp://", SL_TCP},
    {"tls://", SL_TLS},         {"unix://", SL_UNIX_DGRAM},
    {"unixstream://", SL_UNIX_STREAM},
};

int sl_listener_open(struct in_syslog *in, const char *url, char *err, size_t errlen)
{
    struct sl_listener *l = calloc(1, sizeof *l);
    if (!l)
        return LH_ENOMEM;
    l->in = in;
    l->url = url;
    l->fd = -1;
    l->next = in->listeners;
    in->listeners = l;
    size_t i = 0, n = sizeof schemes / sizeof schemes[0];
    while (i < n && strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme)) != 0)
        i++;
    if (i == n) {
        snprintf(err, errlen, "syslog input: unknown listen URL '%s'", url);
        return LH_EINVAL;
    }
    l->kind = schemes[i].kind;
    const char *rest = url + strlen(schemes[i].scheme);
    int rc = l->kind == SL_UDP || l->kind == SL_UNIX_DGRAM ? open_dgram(l, rest, err, errlen)
                                                           : sl_stream_open(l, rest, err, errlen);
    if (rc != 0 && !err[0])
        snprintf(err, errlen, "syslog input: %s: %s", url, lh_strerror(rc));
    return rc;
}

int sl_listeners_start(struct in_syslog *in)
{
    for (struct sl_listener *l = in->listeners; l; l = l->next) {
        if (l->ev && event_add(l->ev, NULL) != 0)
            return LH_EIO;
        if (l->gate)
            lh_net_gate_stop(l->gate, false);
    }
    return LH_OK;
}

void sl_listeners_pause(struct in_syslog *in, bool paused)
{
    for (struct sl_listener *l = in->listeners; l; l = l->next) {
        if (l->ev) {
            if (paused)
                event_del(l->ev);
            else
                event_add(l->ev, NULL);
        }
        sl_streams_pause(l, paused);
    }
}

void sl_listeners_stop(struct in_syslog *in)
{
    for (struct sl_listener *l = in->listeners; l; l = l->next) {
        if (l->ev)
            event_del(l->ev);
        if (l->gate)
            lh_net_gate_stop(l->gate, true);
        sl_streams_stop(l);
    }
}

void sl_listeners_free(struct in_syslog *in)
{
    while (in->listeners) {
        struct sl_listener *l = in->listeners;
        in->listeners = l->next;
        lh_net_gate_free(l->gate);
        l->gate = NULL; /* conn_free counts no more */
        sl_streams_free(l);
        if (l->ev)
            event_free(l->ev);
        if (l->lev)
            evconnlistener_free(l->lev);
        if (l->fd >= 0)
            close(l->fd);
        if (l->unix_path)
            unlink(l->unix_path);
        free(l->unix_path);
        free(l);
    }
    rx_free(in->rx);
    in->rx = NULL;
}
