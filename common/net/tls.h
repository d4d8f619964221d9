/* OpenSSL 3 contexts for both sides: TLS >= 1.2, CA verification with host
 * name / IP SAN checks, optional client certificates (mTLS).
 *
 * Contexts are reference counted by OpenSSL; the creator frees its reference
 * with SSL_CTX_free(). Reloading certificates means building a new context
 * and swapping it in for new connections. */
#ifndef LH_TLS_H
#define LH_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/config/config.h"

/* The `tls:` section wherever it appears (forward output, forward listener,
 * syslog tls:// listener, HTTP). */
struct lh_tls_cfg {
    bool present;             /* the section appears in the file */
    bool enabled;             /* default true once the section appears */
    char *ca;                 /* CA bundle to verify the peer */
    char *cert;               /* our certificate chain (PEM) */
    char *key;                /* our private key (PEM) */
    bool verify;              /* client: verify the server (default true) */
    bool require_client_cert; /* server: mTLS (default false) */
    char *server_name;        /* client: name to verify/SNI instead of the host */
};

extern const struct lh_cfg_schema lh_tls_cfg_schema;

static inline bool lh_tls_on(const struct lh_tls_cfg *c)
{
    return c->present && c->enabled;
}

/* Server context from cert+key (required), and ca when client certificates
 * are requested. NULL with err filled (naming the file at fault). */
SSL_CTX *lh_tls_server_ctx(const struct lh_tls_cfg *c, char *err, size_t errlen);
/* Client context: verifies the server against ca (or the system store when
 * ca is NULL) unless verify is false; presents cert+key when given. */
SSL_CTX *lh_tls_client_ctx(const struct lh_tls_cfg *c, char *err, size_t errlen);
/* New client SSL for a connection to host: SNI for names, and host name or
 * IP address checked against the certificate when verifying. */
SSL *lh_tls_client_ssl(SSL_CTX *ctx, const char *host);
/* Drains the OpenSSL error queue into buf ("" when empty). */
void lh_tls_error_string(char *buf, size_t len);
/* Subject CN of the peer certificate into buf, or "" when none. */
void lh_tls_peer_cn(SSL *ssl, char *buf, size_t len);

#endif
