/* TLS contexts, certificate generation and libevent sockets: real
 * handshakes between both sides of a socketpair, driven in one process. */
#include <check.h>
#include <stddef.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/certgen.h"
#include "common/base/err.h"
#include "common/net/net.h"
#include "common/net/tls.h"
#include "common/base/util.h"

static const char *const pem_names[] = {"ca.pem",     "ca-key.pem",     "server.pem",
                                        "server-key.pem", "client.pem", "client-key.pem"};

static char root[PATH_MAX];  /* per-run temporary directory */
static char good[PATH_MAX];  /* certificates from one CA */
static char other[PATH_MAX]; /* an unrelated CA and its certificates */

static const char *pem(const char *dir, const char *name)
{
    static char bufs[8][PATH_MAX];
    static unsigned next;
    char *b = bufs[next++ % 8];
    if (snprintf(b, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
        abort();
    return b;
}

/* ---- handshake driver ---- */

struct result {
    int client, server;          /* 1 handshake done, -1 failed, 0 still pending */
    long client_verify, server_verify;
    bool exchanged;              /* ping/pong went through after the handshake */
    bool client_sees_failure;    /* client got an error, at handshake or first read */
    bool reused;                 /* client resumed a session */
    char client_err[512], server_err[512];
    char peer_cn[128];           /* client certificate CN as the server sees it */
};

static int step(SSL *ssl, char *err, size_t errlen)
{
    int rc = SSL_do_handshake(ssl);
    if (rc == 1)
        return 1;
    int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    lh_tls_error_string(err, errlen);
    return -1;
}

/* Reads exactly want from ssl within a bounded number of attempts; -1 on a
 * TLS error (e.g. the peer's alert), 0 if nothing arrived. */
static int read_msg(SSL *ssl, const char *want)
{
    char buf[64];
    for (int i = 0; i < 100; i++) {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n > 0)
            return (size_t)n == strlen(want) && memcmp(buf, want, (size_t)n) == 0 ? 1 : -1;
        int e = SSL_get_error(ssl, n);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return -1;
    }
    return 0;
}

static bool ping_pong(SSL *c, SSL *s)
{
    return SSL_write(c, "ping", 4) == 4 && read_msg(s, "ping") == 1 &&
           SSL_write(s, "pong", 4) == 4 && read_msg(c, "pong") == 1;
}

static struct result run_with(SSL_CTX *cctx, const char *host, SSL_CTX *sctx, int client_max)
{
    struct result r = {0};
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    SSL *c = lh_tls_client_ssl(cctx, host);
    SSL *s = SSL_new(sctx);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(s);
    if (client_max) {
        /* Let the client really offer the old protocol: the server must refuse. */
        SSL_set_security_level(c, 0);
        ck_assert_int_eq(SSL_set_min_proto_version(c, TLS1_VERSION), 1);
        ck_assert_int_eq(SSL_set_max_proto_version(c, client_max), 1);
    }
    SSL_set_fd(c, sv[0]);
    SSL_set_fd(s, sv[1]);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    for (int i = 0; i < 200 && (r.client == 0 || r.server == 0); i++) {
        if (r.client == 0)
            r.client = step(c, r.client_err, sizeof r.client_err);
        if (r.server == 0)
            r.server = step(s, r.server_err, sizeof r.server_err);
    }
    r.client_verify = SSL_get_verify_result(c);
    r.server_verify = SSL_get_verify_result(s);
    if (r.client == 1 && r.server == 1)
        r.exchanged = ping_pong(c, s);
    /* TLS 1.3 clients finish before the server has judged their
     * certificate: the refusal arrives as an alert on the first read. */
    r.client_sees_failure = r.client < 0 || (r.server < 0 && read_msg(c, "pong") < 0);
    r.reused = SSL_session_reused(c) == 1;
    lh_tls_peer_cn(s, r.peer_cn, sizeof r.peer_cn);
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
    close(sv[0]);
    close(sv[1]);
    return r;
}

static struct result run(SSL_CTX *cctx, const char *host, SSL_CTX *sctx)
{
    return run_with(cctx, host, sctx, 0);
}

static SSL_CTX *server_ctx(const char *dir, bool mtls, const char *ca_dir)
{
    char err[512] = "";
    struct lh_tls_cfg cfg = {
        .present = true,
        .enabled = true,
        .cert = (char *)pem(dir, "server.pem"),
        .key = (char *)pem(dir, "server-key.pem"),
        .ca = mtls ? (char *)pem(ca_dir, "ca.pem") : NULL,
        .require_client_cert = mtls,
    };
    SSL_CTX *ctx = lh_tls_server_ctx(&cfg, err, sizeof err);
    ck_assert_msg(ctx != NULL, "server ctx: %s", err);
    return ctx;
}

/* Client trusting ca_dir's CA; presenting cert_dir's client cert if given. */
static SSL_CTX *client_ctx(const char *ca_dir, const char *cert_dir, bool verify)
{
    char err[512] = "";
    struct lh_tls_cfg cfg = {
        .present = true,
        .enabled = true,
        .ca = (char *)pem(ca_dir, "ca.pem"),
        .cert = cert_dir ? (char *)pem(cert_dir, "client.pem") : NULL,
        .key = cert_dir ? (char *)pem(cert_dir, "client-key.pem") : NULL,
        .verify = verify,
    };
    SSL_CTX *ctx = lh_tls_client_ctx(&cfg, err, sizeof err);
    ck_assert_msg(ctx != NULL, "client ctx: %s", err);
    return ctx;
}

/* ---- certificates and contexts ---- */

START_TEST(test_certgen_files)
{
    struct stat st;
    for (size_t i = 0; i < sizeof pem_names / sizeof pem_names[0]; i++) {
        ck_assert_int_eq(stat(pem(good, pem_names[i]), &st), 0);
        mode_t want = strstr(pem_names[i], "key") ? 0600 : 0644;
        ck_assert_msg((st.st_mode & 0777) == want, "%s has mode %o", pem_names[i],
                      (unsigned)(st.st_mode & 0777));
    }
}
END_TEST

START_TEST(test_certgen_rejects_bad_host)
{
    char err[256] = "";
    const char *hosts[] = {"bad host,DNS:evil"};
    ck_assert_int_eq(lh_certgen(pem(root, "bad"), hosts, 1, err, sizeof err), LH_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "bad host,DNS:evil"));
}
END_TEST

START_TEST(test_server_tls_by_ip_and_name)
{
    SSL_CTX *s = server_ctx(good, false, NULL);
    SSL_CTX *c = client_ctx(good, NULL, true);
    const char *hosts[] = {"127.0.0.1", "localhost", "::1", "collector.test", "10.1.2.3"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        struct result r = run(c, hosts[i], s);
        ck_assert_msg(r.exchanged, "%s: client '%s' server '%s'", hosts[i], r.client_err,
                      r.server_err);
        ck_assert_int_eq(r.client_verify, X509_V_OK);
        ck_assert_str_eq(r.peer_cn, "");
    }
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

START_TEST(test_wrong_host_refused)
{
    SSL_CTX *s = server_ctx(good, false, NULL);
    SSL_CTX *c = client_ctx(good, NULL, true);
    struct result r = run(c, "not-in-the-sans.test", s);
    ck_assert_int_eq(r.client, -1);
    ck_assert_int_eq(r.client_verify, X509_V_ERR_HOSTNAME_MISMATCH);
    ck_assert(!r.exchanged);
    r = run(c, "192.0.2.1", s);
    ck_assert_int_eq(r.client, -1);
    ck_assert_int_eq(r.client_verify, X509_V_ERR_IP_ADDRESS_MISMATCH);
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

START_TEST(test_server_from_other_ca_refused)
{
    SSL_CTX *s = server_ctx(other, false, NULL);
    SSL_CTX *c = client_ctx(good, NULL, true);
    struct result r = run(c, "localhost", s);
    ck_assert_int_eq(r.client, -1);
    ck_assert_int_eq(r.client_verify, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    ck_assert_ptr_nonnull(strstr(r.client_err, "certificate verify failed"));
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

START_TEST(test_verify_off_accepts_any_server)
{
    SSL_CTX *s = server_ctx(other, false, NULL);
    SSL_CTX *c = client_ctx(good, NULL, false);
    struct result r = run(c, "wrong.test", s);
    ck_assert_msg(r.exchanged, "client '%s' server '%s'", r.client_err, r.server_err);
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

START_TEST(test_mtls_with_client_cert)
{
    SSL_CTX *s = server_ctx(good, true, good);
    SSL_CTX *c = client_ctx(good, good, true);
    struct result r = run(c, "127.0.0.1", s);
    ck_assert_msg(r.exchanged, "client '%s' server '%s'", r.client_err, r.server_err);
    ck_assert_int_eq(r.server_verify, X509_V_OK);
    ck_assert_str_eq(r.peer_cn, "loghaul-client");
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

START_TEST(test_mtls_without_client_cert_refused)
{
    SSL_CTX *s = server_ctx(good, true, good);
    SSL_CTX *c = client_ctx(good, NULL, true);
    struct result r = run(c, "localhost", s);
    ck_assert_int_eq(r.server, -1);
    ck_assert(r.client_sees_failure);
    ck_assert_msg(strstr(r.server_err, "peer did not return a certificate"), "server: %s",
                  r.server_err);
    ck_assert(!r.exchanged);
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

START_TEST(test_mtls_client_from_other_ca_refused)
{
    SSL_CTX *s = server_ctx(good, true, good);
    SSL_CTX *c = client_ctx(good, other, true);
    struct result r = run(c, "localhost", s);
    ck_assert_int_eq(r.server, -1);
    ck_assert(r.client_sees_failure);
    ck_assert_int_ne(r.server_verify, X509_V_OK);
    ck_assert(!r.exchanged);
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

START_TEST(test_tls11_refused)
{
    SSL_CTX *s = server_ctx(good, false, NULL);
    SSL_CTX *c = client_ctx(good, NULL, true);
    struct result r = run_with(c, "localhost", s, TLS1_1_VERSION);
    ck_assert_int_eq(r.server, -1);
    ck_assert_int_eq(r.client, -1);
    ck_assert_msg(strstr(r.server_err, "unsupported protocol"), "server: %s", r.server_err);
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

START_TEST(test_session_resumed)
{
    SSL_CTX *s = server_ctx(good, true, good);
    SSL_CTX *c = client_ctx(good, good, true);
    struct result r = run(c, "localhost", s);
    ck_assert(r.exchanged);
    ck_assert(!r.reused);
    r = run(c, "localhost", s);
    ck_assert_msg(r.exchanged, "client '%s' server '%s'", r.client_err, r.server_err);
    ck_assert(r.reused);
    /* Sessions are kept per host: another name starts afresh. */
    r = run(c, "127.0.0.1", s);
    ck_assert(r.exchanged);
    ck_assert(!r.reused);
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

START_TEST(test_missing_cert_named)
{
    char err[512] = "";
    struct lh_tls_cfg cfg = {
        .present = true,
        .enabled = true,
        .cert = (char *)pem(root, "nope/server.pem"),
        .key = (char *)pem(good, "server-key.pem"),
    };
    ck_assert_ptr_null(lh_tls_server_ctx(&cfg, err, sizeof err));
    ck_assert_msg(strstr(err, cfg.cert) && strstr(err, "No such file or directory"), "%s", err);
    ck_assert_msg(strncmp(err, "cannot load certificate '", 25) == 0, "%s", err);
}
END_TEST

START_TEST(test_mismatched_key_named)
{
    char err[512] = "";
    struct lh_tls_cfg cfg = {
        .present = true,
        .enabled = true,
        .cert = (char *)pem(good, "server.pem"),
        .key = (char *)pem(good, "client-key.pem"),
    };
    ck_assert_ptr_null(lh_tls_server_ctx(&cfg, err, sizeof err));
    ck_assert_msg(strstr(err, cfg.key) && strstr(err, "mismatch"), "%s", err);
}
END_TEST

START_TEST(test_mtls_needs_ca)
{
    char err[512] = "";
    struct lh_tls_cfg cfg = {
        .present = true,
        .enabled = true,
        .cert = (char *)pem(good, "server.pem"),
        .key = (char *)pem(good, "server-key.pem"),
        .require_client_cert = true,
    };
    ck_assert_ptr_null(lh_tls_server_ctx(&cfg, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "ca"));
}
END_TEST

START_TEST(test_schema_cert_needs_key)
{
    struct lh_cfg_diag d = {.file = "agent.yaml"};
    struct lh_tls_cfg cfg = {.present = true, .enabled = true, .cert = "x.pem"};
    ck_assert_int_eq(lh_tls_cfg_schema.validate(&cfg, &d, 3, 5), LH_ECONFIG);
    ck_assert_msg(strstr(d.error, "agent.yaml:3:5") && strstr(d.error, "key"), "%s", d.error);
    lh_cfg_diag_free(&d);
    struct lh_cfg_diag d2 = {.file = "agent.yaml"};
    cfg.cert = NULL;
    cfg.key = "k.pem";
    ck_assert_int_eq(lh_tls_cfg_schema.validate(&cfg, &d2, 1, 1), LH_ECONFIG);
    lh_cfg_diag_free(&d2);
    cfg.cert = "x.pem";
    ck_assert_int_eq(lh_tls_cfg_schema.validate(&cfg, &d2, 1, 1), LH_OK);
}
END_TEST

struct tls_holder {
    struct lh_tls_cfg tls;
};

static const struct lh_cfg_field holder_fields[] = {
    {.key = "tls", .type = LH_CFG_SECTION, .offset = offsetof(struct tls_holder, tls),
     .sub = &lh_tls_cfg_schema},
    {.key = NULL},
};

static const struct lh_cfg_schema holder_schema = {
    .name = "test", .size = sizeof(struct tls_holder), .fields = holder_fields};

static int load_tls(const char *yaml, struct tls_holder *h, struct lh_cfg_diag *d)
{
    memset(h, 0, sizeof *h);
    return lh_cfg_load_string("t.yaml", yaml, strlen(yaml), &holder_schema, h, d);
}

START_TEST(test_schema_through_loader)
{
    struct tls_holder h;
    struct lh_cfg_diag d = {0};
    ck_assert_int_eq(load_tls("tls: {ca: /x/ca.pem}\n", &h, &d), LH_OK);
    ck_assert(lh_tls_on(&h.tls));
    ck_assert(h.tls.verify);
    ck_assert(!h.tls.require_client_cert);
    ck_assert_str_eq(h.tls.ca, "/x/ca.pem");
    lh_cfg_free(&holder_schema, &h);
    lh_cfg_diag_free(&d);

    struct lh_cfg_diag d2 = {0};
    ck_assert_int_eq(load_tls("{}\n", &h, &d2), LH_OK);
    ck_assert(!lh_tls_on(&h.tls));
    lh_cfg_free(&holder_schema, &h);
    lh_cfg_diag_free(&d2);

    struct lh_cfg_diag d3 = {0};
    ck_assert_int_eq(load_tls("tls:\n  enabled: false\n  verify: no\n", &h, &d3), LH_OK);
    ck_assert(h.tls.present && !h.tls.enabled && !h.tls.verify);
    lh_cfg_free(&holder_schema, &h);
    lh_cfg_diag_free(&d3);

    struct lh_cfg_diag d4 = {0};
    ck_assert_int_eq(load_tls("tls:\n  cert: /x/c.pem\n", &h, &d4), LH_ECONFIG);
    ck_assert_msg(strstr(d4.error, "t.yaml:") && strstr(d4.error, "key is missing"), "%s",
                  d4.error);
    lh_cfg_free(&holder_schema, &h);
    lh_cfg_diag_free(&d4);
}
END_TEST

/* ---- sockets over libevent ---- */

START_TEST(test_listen_port_zero)
{
    struct event_base *base = event_base_new();
    char bound[64] = "", err[256] = "";
    struct evconnlistener *lev =
        lh_net_listen(base, "127.0.0.1:0", NULL, NULL, bound, sizeof bound, err, sizeof err);
    ck_assert_msg(lev != NULL, "%s", err);
    char host[64];
    int port = 0;
    ck_assert_int_eq(lh_split_hostport(bound, host, sizeof host, &port), LH_OK);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_int_gt(port, 0);
    evconnlistener_free(lev);
    ck_assert_ptr_null(
        lh_net_listen(base, "no-port-here", NULL, NULL, bound, sizeof bound, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "no-port-here"));
    event_base_free(base);
}
END_TEST

START_TEST(test_listen_ipv6)
{
    struct event_base *base = event_base_new();
    char bound[64] = "", err[256] = "";
    struct evconnlistener *lev =
        lh_net_listen(base, "[::1]:0", NULL, NULL, bound, sizeof bound, err, sizeof err);
    if (!lev) {
        /* Containers without IPv6 loopback: only the error text is testable. */
        ck_assert_ptr_nonnull(strstr(err, "[::1]:0"));
    } else {
        ck_assert_msg(strncmp(bound, "[::1]:", 6) == 0 && atoi(bound + 6) > 0, "%s", bound);
        evconnlistener_free(lev);
    }
    event_base_free(base);
}
END_TEST

struct echo {
    struct event_base *base;
    SSL_CTX *server_ctx;         /* NULL: plain TCP */
    struct bufferevent *server, *client;
    char got[64];                /* what the client received */
    char peer_cn[64];
    bool connected;
    int error;                   /* socket error reported to the client */
};

static void server_read(struct bufferevent *bev, void *arg)
{
    struct echo *e = arg;
    char buf[64];
    size_t n = bufferevent_read(bev, buf, sizeof buf - 1);
    buf[n] = '\0';
    if (e->server_ctx)
        lh_tls_peer_cn(bufferevent_openssl_get_ssl(bev), e->peer_cn, sizeof e->peer_cn);
    char reply[80];
    int len = snprintf(reply, sizeof reply, "echo:%s", buf);
    bufferevent_write(bev, reply, (size_t)len);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct echo *e = arg;
    char addr[64];
    lh_net_addr_string(sa, addr, sizeof addr);
    ck_assert_msg(strncmp(addr, "127.0.0.1:", 10) == 0, "%s", addr);
    SSL *ssl = e->server_ctx ? SSL_new(e->server_ctx) : NULL;
    e->server = lh_net_accept_bev(e->base, fd, ssl);
    ck_assert_ptr_nonnull(e->server);
    bufferevent_setcb(e->server, server_read, NULL, NULL, e);
    bufferevent_enable(e->server, EV_READ | EV_WRITE);
}

static void client_read(struct bufferevent *bev, void *arg)
{
    struct echo *e = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t have = strlen(e->got);
    evbuffer_remove(in, e->got + have, sizeof e->got - 1 - have);
    if (strcmp(e->got, "echo:hello") == 0)
        event_base_loopbreak(e->base);
}

static void client_event(struct bufferevent *bev, short what, void *arg)
{
    struct echo *e = arg;
    if (what & BEV_EVENT_CONNECTED) {
        e->connected = true;
        bufferevent_write(bev, "hello", 5);
        return;
    }
    if (what & BEV_EVENT_ERROR)
        e->error = EVUTIL_SOCKET_ERROR();
    event_base_loopbreak(e->base);
}

static void echo_over_loopback(SSL_CTX *sctx, SSL_CTX *cctx)
{
    struct echo e = {.base = event_base_new(), .server_ctx = sctx};
    char bound[64], host[64], err[256];
    int port;
    struct evconnlistener *lev =
        lh_net_listen(e.base, "127.0.0.1:0", on_accept, &e, bound, sizeof bound, err, sizeof err);
    ck_assert_msg(lev != NULL, "%s", err);
    ck_assert_int_eq(lh_split_hostport(bound, host, sizeof host, &port), LH_OK);
    SSL *ssl = cctx ? lh_tls_client_ssl(cctx, "127.0.0.1") : NULL;
    e.client = lh_net_connect_bev(e.base, NULL, "127.0.0.1", port, ssl);
    ck_assert_ptr_nonnull(e.client);
    bufferevent_setcb(e.client, client_read, NULL, client_event, &e);
    bufferevent_enable(e.client, EV_READ | EV_WRITE);
    struct timeval limit = {10, 0};
    event_base_loopexit(e.base, &limit);
    event_base_dispatch(e.base);
    ck_assert(e.connected);
    ck_assert_str_eq(e.got, "echo:hello");
    if (sctx)
        ck_assert_str_eq(e.peer_cn, "loghaul-client");
    bufferevent_free(e.client);
    if (e.server)
        bufferevent_free(e.server);
    evconnlistener_free(lev);
    event_base_free(e.base);
}

START_TEST(test_libevent_plain_exchange)
{
    echo_over_loopback(NULL, NULL);
}
END_TEST

START_TEST(test_libevent_tls_exchange)
{
    SSL_CTX *s = server_ctx(good, true, good);
    SSL_CTX *c = client_ctx(good, good, true);
    echo_over_loopback(s, c);
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

START_TEST(test_connect_refused_reported)
{
    struct event_base *base = event_base_new();
    char bound[64], host[64], err[256];
    int port;
    /* A port that was just free: bound, read, closed. */
    struct evconnlistener *lev =
        lh_net_listen(base, "127.0.0.1:0", NULL, NULL, bound, sizeof bound, err, sizeof err);
    ck_assert_ptr_nonnull(lev);
    ck_assert_int_eq(lh_split_hostport(bound, host, sizeof host, &port), LH_OK);
    evconnlistener_free(lev);
    struct echo e = {.base = base};
    e.client = lh_net_connect_bev(base, NULL, "127.0.0.1", port, NULL);
    ck_assert_ptr_nonnull(e.client);
    bufferevent_setcb(e.client, client_read, NULL, client_event, &e);
    bufferevent_enable(e.client, EV_READ | EV_WRITE);
    struct timeval limit = {10, 0};
    event_base_loopexit(base, &limit);
    event_base_dispatch(base);
    ck_assert(!e.connected);
    ck_assert_int_eq(e.error, ECONNREFUSED);
    bufferevent_free(e.client);
    event_base_free(base);
}
END_TEST

/* ---- setup ---- */

static void make_dirs(void)
{
    const char *tmp = getenv("LH_TEST_TMP");
    if (tmp && *tmp) {
        lh_mkdir_p(tmp);
        snprintf(root, sizeof root, "%s/tls-XXXXXX", tmp);
    } else {
        snprintf(root, sizeof root, "/tmp/lh-tls-XXXXXX");
    }
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        exit(1);
    }
    if (snprintf(good, sizeof good, "%s/good", root) >= (int)sizeof good ||
        snprintf(other, sizeof other, "%s/other", root) >= (int)sizeof other)
        exit(1);
    char err[256];
    const char *hosts[] = {"collector.test", "10.1.2.3"};
    if (lh_certgen(good, hosts, 2, err, sizeof err) != LH_OK ||
        lh_certgen(other, NULL, 0, err, sizeof err) != LH_OK) {
        fprintf(stderr, "certgen: %s\n", err);
        exit(1);
    }
}

static void remove_dirs(void)
{
    const char *dirs[] = {good, other};
    for (size_t d = 0; d < 2; d++) {
        for (size_t i = 0; i < sizeof pem_names / sizeof pem_names[0]; i++)
            unlink(pem(dirs[d], pem_names[i]));
        rmdir(dirs[d]);
    }
    rmdir(pem(root, "bad"));
    rmdir(root);
}

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_certgen_files);
    tcase_add_test(tc, test_certgen_rejects_bad_host);
    tcase_add_test(tc, test_server_tls_by_ip_and_name);
    tcase_add_test(tc, test_wrong_host_refused);
    tcase_add_test(tc, test_server_from_other_ca_refused);
    tcase_add_test(tc, test_verify_off_accepts_any_server);
    tcase_add_test(tc, test_mtls_with_client_cert);
    tcase_add_test(tc, test_mtls_without_client_cert_refused);
    tcase_add_test(tc, test_mtls_client_from_other_ca_refused);
    tcase_add_test(tc, test_tls11_refused);
    tcase_add_test(tc, test_session_resumed);
    tcase_add_test(tc, test_missing_cert_named);
    tcase_add_test(tc, test_mismatched_key_named);
    tcase_add_test(tc, test_mtls_needs_ca);
    tcase_add_test(tc, test_schema_cert_needs_key);
    tcase_add_test(tc, test_schema_through_loader);
    suite_add_tcase(s, tc);
    TCase *net = tcase_create("net");
    tcase_set_timeout(net, 30);
    tcase_add_test(net, test_listen_port_zero);
    tcase_add_test(net, test_listen_ipv6);
    tcase_add_test(net, test_libevent_plain_exchange);
    tcase_add_test(net, test_libevent_tls_exchange);
    tcase_add_test(net, test_connect_refused_reported);
    suite_add_tcase(s, net);
    return s;
}

int main(void)
{
    make_dirs();
    SRunner *sr = srunner_create(tls_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_dirs();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
