#include "common/net/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"

static const struct lh_cfg_field tls_fields[] = {
    {.key = "enabled", .type = LH_CFG_BOOL, .offset = offsetof(struct lh_tls_cfg, enabled),
     .defval = "true", .help = "use TLS (the section's presence turns it on)"},
    {.key = "ca", .type = LH_CFG_STR, .offset = offsetof(struct lh_tls_cfg, ca),
     .flags = LH_CFG_F_PATH, .help = "CA bundle (PEM) to verify the peer"},
    {.key = "cert", .type = LH_CFG_STR, .offset = offsetof(struct lh_tls_cfg, cert),
     .flags = LH_CFG_F_PATH, .help = "certificate chain (PEM) presented to the peer"},
    {.key = "key", .type = LH_CFG_STR, .offset = offsetof(struct lh_tls_cfg, key),
     .flags = LH_CFG_F_PATH | LH_CFG_F_SECRET, .help = "private key (PEM) of cert"},
    {.key = "verify", .type = LH_CFG_BOOL, .offset = offsetof(struct lh_tls_cfg, verify),
     .defval = "true", .help = "client: verify the server certificate"},
    {.key = "require_client_cert", .type = LH_CFG_BOOL,
     .offset = offsetof(struct lh_tls_cfg, require_client_cert), .defval = "false",
     .help = "server: require a client certificate signed by ca (mTLS)"},
    {.key = "server_name", .type = LH_CFG_STR, .offset = offsetof(struct lh_tls_cfg, server_name),
     .help = "client: name for SNI and verification instead of the host"},
    {.key = NULL},
};

static int tls_cfg_validate(void *obj, struct lh_cfg_diag *d, int line, int col)
{
    const struct lh_tls_cfg *c = obj;
    if (c->cert && !c->key)
        return lh_cfg_error(d, line, col, "tls: cert is set but key is missing");
    if (c->key && !c->cert)
        return lh_cfg_error(d, line, col, "tls: key is set but cert is missing");
    return LH_OK;
}

const struct lh_cfg_schema lh_tls_cfg_schema = {
    .name = "tls",
    .size = sizeof(struct lh_tls_cfg),
    .fields = tls_fields,
    .present_offset1 = offsetof(struct lh_tls_cfg, present) + 1,
    .validate = tls_cfg_validate,
};

/* ---- errors ---- */

static void append_reason(char *buf, size_t len, size_t *used, const char *r)
{
    /* OpenSSL stacks the same cause at several layers ("No such file or
     * directory", then "no such file"): one mention is enough. */
    if (strcasestr(buf, r))
        return;
    int n = snprintf(buf + *used, len - *used, "%s%s", *used ? "; " : "", r);
    if (n > 0)
        *used = *used + (size_t)n < len ? *used + (size_t)n : len - 1;
}

void lh_tls_error_string(char *buf, size_t len)
{
    unsigned long e;
    size_t used = 0;
    if (len == 0) {
        ERR_clear_error();
        return;
    }
    buf[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        char tmp[256];
        /* OpenSSL 3 keeps errno values as reasons but has no text for them. */
        const char *r = ERR_SYSTEM_ERROR(e) ? strerror((int)ERR_GET_REASON(e))
                                            : ERR_reason_error_string(e);
        /* "system lib" and friends only say that a lower layer failed. */
        if (r && strcmp(r, "system lib") == 0)
            continue;
        if (!r) {
            ERR_error_string_n(e, tmp, sizeof tmp);
            r = tmp;
        }
        append_reason(buf, len, &used, r);
    }
}

static void *tls_fail(char *err, size_t errlen, const char *what, const char *path)
{
    char why[512];
    lh_tls_error_string(why, sizeof why);
    if (path)
        snprintf(err, errlen, "%s '%s': %s", what, path, why[0] ? why : "unknown error");
    else
        snprintf(err, errlen, "%s: %s", what, why[0] ? why : "unknown error");
    return NULL;
}

/* ---- client session cache ----
 * OpenSSL's client-side cache only hands sessions to the application; it
 * never looks them up. This keeps the latest session per host so a
 * reconnect resumes instead of doing a full handshake. */

#define SESS_SLOTS 32
#define SESS_HOST_MAX 256

struct sess_cache {
    pthread_mutex_t mu;
    unsigned next;
    struct {
        char host[SESS_HOST_MAX];
        SSL_SESSION *sess;
    } slot[SESS_SLOTS];
};

static int ctx_cache_idx = -1, ssl_host_idx = -1;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

static void sess_cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                            void *argp)
{
    struct sess_cache *sc = ptr;
    if (!sc)
        return;
    for (int i = 0; i < SESS_SLOTS; i++)
        SSL_SESSION_free(sc->slot[i].sess);
    pthread_mutex_destroy(&sc->mu);
    free(sc);
}

static void host_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    free(ptr);
}

static void init_indexes(void)
{
    ctx_cache_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sess_cache_free);
    ssl_host_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, host_free);
}

static int sess_slot(struct sess_cache *sc, const char *host)
{
    for (int i = 0; i < SESS_SLOTS; i++)
        if (sc->slot[i].sess && strcmp(sc->slot[i].host, host) == 0)
            return i;
    return -1;
}

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct sess_cache *sc = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_cache_idx);
    const char *host = SSL_get_ex_data(ssl, ssl_host_idx);
    if (!sc || !host)
        return 0;
    /* A copy: freeing a connection without close_notify (as libevent does)
     * marks its own session unresumable. */
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (!copy)
        return 0;
    pthread_mutex_lock(&sc->mu);
    int i = sess_slot(sc, host);
    if (i < 0)
        i = (int)(sc->next++ % SESS_SLOTS);
    SSL_SESSION_free(sc->slot[i].sess);
    snprintf(sc->slot[i].host, SESS_HOST_MAX, "%s", host);
    sc->slot[i].sess = copy;
    pthread_mutex_unlock(&sc->mu);
    return 0;
}

static int enable_client_sessions(SSL_CTX *ctx)
{
    struct sess_cache *sc = calloc(1, sizeof *sc);
    if (!sc || pthread_mutex_init(&sc->mu, NULL) != 0) {
        free(sc);
        return LH_ENOMEM;
    }
    if (!SSL_CTX_set_ex_data(ctx, ctx_cache_idx, sc)) {
        sess_cache_free(NULL, sc, NULL, 0, 0, NULL);
        return LH_ENOMEM;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    return LH_OK;
}

static void resume_session(SSL *ssl, const char *host)
{
    struct sess_cache *sc = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_cache_idx);
    if (!sc || strlen(host) >= SESS_HOST_MAX)
        return;
    char *h = strdup(host);
    if (!h || !SSL_set_ex_data(ssl, ssl_host_idx, h)) {
        free(h);
        return;
    }
    pthread_mutex_lock(&sc->mu);
    int i = sess_slot(sc, host);
    if (i >= 0 && SSL_SESSION_is_resumable(sc->slot[i].sess))
        SSL_set_session(ssl, sc->slot[i].sess);
    pthread_mutex_unlock(&sc->mu);
}

/* ---- contexts ---- */

static SSL_CTX *new_ctx(const SSL_METHOD *method, char *err, size_t errlen)
{
    pthread_once(&idx_once, init_indexes);
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx)
        return tls_fail(err, errlen, "cannot create TLS context", NULL);
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        SSL_CTX_free(ctx);
        return tls_fail(err, errlen, "cannot require TLS 1.2", NULL);
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    return ctx;
}

static int load_identity(SSL_CTX *ctx, const struct lh_tls_cfg *c, char *err, size_t errlen)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
        tls_fail(err, errlen, "cannot load certificate", c->cert);
        return LH_ETLS;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
        tls_fail(err, errlen, "cannot load private key", c->key);
        return LH_ETLS;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        char why[256];
        lh_tls_error_string(why, sizeof why);
        snprintf(err, errlen, "private key '%s' does not match certificate '%s': %s", c->key,
                 c->cert, why);
        return LH_ETLS;
    }
    return LH_OK;
}

static int require_client_certs(SSL_CTX *ctx, const char *ca, char *err, size_t errlen)
{
    if (!ca) {
        snprintf(err, errlen, "require_client_cert needs a ca to verify client certificates");
        return LH_ECONFIG;
    }
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        tls_fail(err, errlen, "cannot load CA", ca);
        return LH_ETLS;
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
    if (!names) {
        tls_fail(err, errlen, "cannot read CA names from", ca);
        return LH_ETLS;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return LH_OK;
}

SSL_CTX *lh_tls_server_ctx(const struct lh_tls_cfg *c, char *err, size_t errlen)
{
    static const unsigned char sid_ctx[] = "loghaul";
    if (!c->cert || !c->key) {
        snprintf(err, errlen, "a TLS server needs both cert and key");
        return NULL;
    }
    SSL_CTX *ctx = new_ctx(TLS_server_method(), err, errlen);
    if (!ctx)
        return NULL;
    if (load_identity(ctx, c, err, errlen) != LH_OK)
        goto fail;
    if (c->require_client_cert && require_client_certs(ctx, c->ca, err, errlen) != LH_OK)
        goto fail;
    /* Resumed sessions skip client certificate checks, so OpenSSL refuses
     * to resume without a context naming who issued them. */
    if (!SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1)) {
        tls_fail(err, errlen, "cannot set the session id context", NULL);
        goto fail;
    }
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    /* A server holds many connections that are mostly idle (and hostile
     * ones that send a byte and wait): without this each keeps ~34 KiB of
     * record buffers that no memory budget sees. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static int client_verify(SSL_CTX *ctx, const struct lh_tls_cfg *c, char *err, size_t errlen)
{
    if (!c->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return LH_OK;
    }
    if (c->ca && SSL_CTX_load_verify_locations(ctx, c->ca, NULL) != 1) {
        tls_fail(err, errlen, "cannot load CA", c->ca);
        return LH_ETLS;
    }
    if (!c->ca && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        tls_fail(err, errlen, "cannot load the system CA store", NULL);
        return LH_ETLS;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return LH_OK;
}

SSL_CTX *lh_tls_client_ctx(const struct lh_tls_cfg *c, char *err, size_t errlen)
{
    if (!c->cert != !c->key) {
        snprintf(err, errlen, "a TLS client certificate needs both cert and key");
        return NULL;
    }
    SSL_CTX *ctx = new_ctx(TLS_client_method(), err, errlen);
    if (!ctx)
        return NULL;
    if (c->cert && load_identity(ctx, c, err, errlen) != LH_OK)
        goto fail;
    if (client_verify(ctx, c, err, errlen) != LH_OK)
        goto fail;
    if (enable_client_sessions(ctx) != LH_OK) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static bool is_ip_address(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

SSL *lh_tls_client_ssl(SSL_CTX *ctx, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    if (is_ip_address(host)) {
        /* RFC 6066 forbids IP literals in SNI; the IP SAN is checked instead. */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1)
            goto fail;
    } else if (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1) {
        goto fail;
    }
    resume_session(ssl, host);
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

void lh_tls_peer_cn(SSL *ssl, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf[0] = '\0';
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (!peer)
        return;
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, (int)len) < 0)
        buf[0] = '\0';
    X509_free(peer);
}
