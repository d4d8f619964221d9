/* The `forward` output's collectors: one Forward client (common/net/
 * fwd_client) per collector address, each with its own window of
 * max_in_flight chunks awaiting {"ack": id}.
 *
 * round_robin hands each chunk to the next ready collector with room in its
 * window; failover to the first ready collector in config order. Every
 * collector is kept connected, so a failover has no connect delay. A
 * collector that fails (refused, cut, no ack within ack_timeout) is benched
 * by its client for an exponential backoff with jitter, and its
 * unacknowledged chunks go back to out_forward.c, which puts them in front
 * of its queue for the others: same bytes, same chunk id, so the collector
 * that got them first drops the copy. Retries go on forever. */
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent/outputs/forward/out_forward_int.h"
#include "common/base/err.h"
#include "common/base/util.h"

#define MAX_ADDRS 64

struct addr {
    char host[256];
    char name[256];
    int port;
};

struct addrs {
    struct addr *v;
    size_t n;
};

static int add_addr(struct addrs *as, const char *host, const char *name, int port)
{
    for (size_t i = 0; i < as->n; i++)
        if (as->v[i].port == port && strcmp(as->v[i].host, host) == 0)
            return LH_OK; /* listed twice: one collector */
    struct addr *v = realloc(as->v, (as->n + 1) * sizeof *v);
    if (!v)
        return LH_ENOMEM;
    as->v = v;
    struct addr *a = &v[as->n++];
    a->port = port;
    snprintf(a->host, sizeof a->host, "%s", host);
    snprintf(a->name, sizeof a->name, "%s", name);
    return LH_OK;
}

/* A name resolving to several addresses is several collectors. A name that
 * does not resolve now stays one, resolved again at each connect. */
static int add_collector(struct addrs *as, const char *spec)
{
    char host[256];
    int port;
    lh_split_hostport(spec, host, sizeof host, &port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return add_addr(as, host, host, port);
    int rc = LH_OK, n = 0;
    for (struct addrinfo *a = res; a && rc == 0 && n < MAX_ADDRS; a = a->ai_next, n++) {
        char num[INET6_ADDRSTRLEN];
        if (getnameinfo(a->ai_addr, a->ai_addrlen, num, sizeof num, NULL, 0, NI_NUMERICHOST) == 0)
            rc = add_addr(as, num, host, port);
    }
    freeaddrinfo(res);
    return rc;
}

static int new_clients(struct fwd_conns *cs, const struct fwd_cfg *cfg, const struct addrs *as,
                       const struct lh_fwd_client_cfg *tmpl)
{
    cs->v = calloc(as->n ? as->n : 1, sizeof *cs->v);
    if (!cs->v)
        return LH_ENOMEM;
    int rc = LH_OK;
    for (size_t i = 0; i < as->n && rc == 0; i++) {
        const struct addr *a = &as->v[i];
        struct lh_fwd_endpoint ep = {
            .host = a->host, .port = a->port,
            .tls_name = cfg->tls.server_name ? cfg->tls.server_name : a->name};
        struct lh_fwd_client_cfg cc = *tmpl;
        cc.endpoints = &ep;
        cc.n_endpoints = 1;
        rc = lh_fwd_client_new(&cc, &cs->v[i]);
        if (rc == 0)
            cs->n++;
    }
    return rc;
}

int fwd_conns_new(struct fwd_conns *cs, const struct fwd_cfg *cfg,
                  const struct lh_fwd_client_cfg *tmpl, char *err, size_t errlen)
{
    *cs = (struct fwd_conns){.balance = cfg->balance};
    struct addrs as = {0};
    int rc = LH_OK;
    for (size_t i = 0; i < cfg->collectors.n && rc == 0; i++)
        rc = add_collector(&as, cfg->collectors.v[i]);
    if (rc == 0)
        rc = new_clients(cs, cfg, &as, tmpl);
    free(as.v);
    if (rc != 0)
        snprintf(err, errlen, "forward output: out of memory");
    return rc;
}

void fwd_conns_start(struct fwd_conns *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        lh_fwd_client_start(cs->v[i]);
}

void fwd_conns_free(struct fwd_conns *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        lh_fwd_client_free(cs->v[i]);
    free(cs->v);
    *cs = (struct fwd_conns){0};
}

struct lh_fwd_client *fwd_conns_pick(struct fwd_conns *cs)
{
    if (cs->balance == BALANCE_FAILOVER) {
        for (size_t i = 0; i < cs->n; i++)
            if (lh_fwd_client_ready(cs->v[i]))
                return lh_fwd_client_has_room(cs->v[i]) ? cs->v[i] : NULL;
        return NULL;
    }
    for (size_t i = 0; i < cs->n; i++) {
        size_t k = (cs->rr + i) % cs->n;
        if (lh_fwd_client_has_room(cs->v[k])) {
            cs->rr = (k + 1) % cs->n;
            return cs->v[k];
        }
    }
    return NULL;
}

bool fwd_conns_ready(const struct fwd_conns *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        if (lh_fwd_client_ready(cs->v[i]))
            return true;
    return false;
}

void fwd_conns_status(const struct fwd_conns *cs, json_t *out)
{
    json_t *list = json_array();
    const struct lh_fwd_client *shown = cs->n ? cs->v[0] : NULL;
    size_t in_flight = 0;
    for (size_t i = 0; i < cs->n; i++) {
        const struct lh_fwd_client *c = cs->v[i];
        size_t n = lh_fwd_client_in_flight(c);
        json_array_append_new(list, json_pack("{sssssi}", "collector", lh_fwd_client_peer(c),
                                              "state",
                                              lh_fwd_client_state_name(lh_fwd_client_state(c)),
                                              "in_flight", (int)n));
        in_flight += n;
        if (lh_fwd_client_ready(c) && !lh_fwd_client_ready(shown))
            shown = c;
    }
    json_object_set_new(out, "collector", json_string(shown ? lh_fwd_client_peer(shown) : ""));
    json_object_set_new(out, "state",
                        json_string(shown ? lh_fwd_client_state_name(lh_fwd_client_state(shown))
                                          : "disconnected"));
    json_object_set_new(out, "in_flight", json_integer((json_int_t)in_flight));
    json_object_set_new(out, "collectors", list);
}
