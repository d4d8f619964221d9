#include "cli/certgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/err.h"
#include "common/net/tls.h"
#include "common/base/util.h"

#define VALID_DAYS 825 /* the longest lifetime Apple platforms accept */
#define MAX_HOSTS 64
#define MAX_HOST_LEN 253 /* longest DNS name */
#define CN_MAX 64        /* X.520 upper bound for commonName */

/* Everything one run makes; freed by certs_free() whatever was built. */
struct certs {
    EVP_PKEY *ca_key, *srv_key, *cli_key;
    X509 *ca, *srv, *cli;
};

static void certs_free(struct certs *g)
{
    EVP_PKEY_free(g->ca_key);
    EVP_PKEY_free(g->srv_key);
    EVP_PKEY_free(g->cli_key);
    X509_free(g->ca);
    X509_free(g->srv);
    X509_free(g->cli);
}

static int ossl_fail(char *err, size_t errlen, const char *what)
{
    char why[256];
    lh_tls_error_string(why, sizeof why);
    snprintf(err, errlen, "%s: %s", what, why[0] ? why : "unknown OpenSSL error");
    return LH_ETLS;
}

static int set_serial(X509 *x)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return LH_ETLS;
    raw[0] &= 0x7f; /* serials are positive INTEGERs */
    raw[0] |= 0x40; /* and keep all 16 bytes */
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? LH_OK : LH_ETLS;
}

/* Unsigned certificate for key with subject O=loghaul, CN=cn. */
static X509 *new_cert(EVP_PKEY *key, const char *cn)
{
    X509 *x = X509_new();
    if (!x)
        return NULL;
    X509_NAME *name = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 || set_serial(x) != LH_OK ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), VALID_DAYS, 0, NULL) ||
        X509_set_pubkey(x, key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"loghaul",
                                   -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) != 1) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return LH_ETLS;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? LH_OK : LH_ETLS;
}

static int sign(X509 *x, X509 *issuer, EVP_PKEY *issuer_key)
{
    if (X509_set_issuer_name(x, X509_get_subject_name(issuer)) != 1)
        return LH_ETLS;
    return X509_sign(x, issuer_key, EVP_sha256()) > 0 ? LH_OK : LH_ETLS;
}

static int make_ca(struct certs *g, char *err, size_t errlen)
{
    g->ca_key = EVP_EC_gen("P-256");
    if (!g->ca_key)
        return ossl_fail(err, errlen, "cannot generate the CA key");
    g->ca = new_cert(g->ca_key, "loghaul CA");
    if (!g->ca || add_ext(g->ca, g->ca, NID_basic_constraints, "critical,CA:TRUE") ||
        add_ext(g->ca, g->ca, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        add_ext(g->ca, g->ca, NID_subject_key_identifier, "hash") ||
        sign(g->ca, g->ca, g->ca_key))
        return ossl_fail(err, errlen, "cannot build the CA certificate");
    return LH_OK;
}

/* Leaf certificate signed by the CA: key usage for ECDSA, eku, optional SANs. */
static int make_leaf(struct certs *g, EVP_PKEY **key, X509 **x, const char *cn, const char *eku,
                     const char *san)
{
    *key = EVP_EC_gen("P-256");
    if (!*key)
        return LH_ETLS;
    *x = new_cert(*key, cn);
    if (!*x || add_ext(*x, g->ca, NID_basic_constraints, "critical,CA:FALSE") ||
        add_ext(*x, g->ca, NID_key_usage, "critical,digitalSignature") ||
        add_ext(*x, g->ca, NID_ext_key_usage, eku) ||
        add_ext(*x, g->ca, NID_subject_key_identifier, "hash") ||
        add_ext(*x, g->ca, NID_authority_key_identifier, "keyid:always") ||
        (san && add_ext(*x, g->ca, NID_subject_alt_name, san)))
        return LH_ETLS;
    return sign(*x, g->ca, g->ca_key);
}

static bool is_ip(const char *h)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

static bool is_dns_name(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > MAX_HOST_LEN)
        return false;
    return strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._*") == n;
}

/* "DNS:localhost,IP:127.0.0.1,IP:::1" plus each host; malloc'd, caller frees. */
static char *build_san(const char *const *hosts, size_t n, char *err, size_t errlen)
{
    static const char base[] = "DNS:localhost,IP:127.0.0.1,IP:::1";
    size_t cap = sizeof base + n * (MAX_HOST_LEN + 5);
    char *san = malloc(cap);
    if (!san) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t used = (size_t)snprintf(san, cap, "%s", base);
    for (size_t i = 0; i < n; i++) {
        bool ip = is_ip(hosts[i]);
        if (!ip && !is_dns_name(hosts[i])) {
            snprintf(err, errlen, "invalid host '%s': not an IP address or DNS name", hosts[i]);
            free(san);
            return NULL;
        }
        used += (size_t)snprintf(san + used, cap - used, ",%s:%s", ip ? "IP" : "DNS", hosts[i]);
    }
    return san;
}

static int make_server(struct certs *g, const char *const *hosts, size_t n, char *err,
                       size_t errlen)
{
    const char *cn = n > 0 ? hosts[0] : "localhost";
    if (strlen(cn) > CN_MAX)
        cn = "localhost"; /* the SAN carries the name; CN is informational */
    char *san = build_san(hosts, n, err, errlen);
    if (!san)
        return LH_EINVAL;
    int rc = make_leaf(g, &g->srv_key, &g->srv, cn, "serverAuth", san);
    free(san);
    if (rc != LH_OK)
        return ossl_fail(err, errlen, "cannot build the server certificate");
    return LH_OK;
}

/* Writes a key (mode 0600) or a certificate (0644) as PEM into dir/name. */
static int write_pem(const char *dir, const char *name, EVP_PKEY *key, X509 *cert, char *err,
                     size_t errlen)
{
    char path[PATH_MAX];
    mode_t mode = key ? 0600 : 0644;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        snprintf(err, errlen, "path too long: %s/%s", dir, name);
        return LH_EINVAL;
    }
    BIO *mem = BIO_new(BIO_s_mem());
    int ok = mem && (key ? PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL)
                         : PEM_write_bio_X509(mem, cert));
    if (!ok) {
        BIO_free(mem);
        return ossl_fail(err, errlen, "cannot encode PEM");
    }
    char *data;
    long len = BIO_get_mem_data(mem, &data);
    int rc = LH_EIO;
    /* fchmod too: O_CREAT's mode does not apply to a file that exists. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd >= 0 && fchmod(fd, mode) == 0)
        rc = lh_write_all(fd, data, (size_t)len);
    if (fd >= 0 && close(fd) != 0)
        rc = LH_EIO;
    if (rc != LH_OK)
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    BIO_free(mem);
    return rc;
}

static int write_all_pems(const char *dir, const struct certs *g, char *err, size_t errlen)
{
    const struct {
        const char *name;
        EVP_PKEY *key;
        X509 *cert;
    } files[] = {
        {"ca-key.pem", g->ca_key, NULL},      {"ca.pem", NULL, g->ca},
        {"server-key.pem", g->srv_key, NULL}, {"server.pem", NULL, g->srv},
        {"client-key.pem", g->cli_key, NULL}, {"client.pem", NULL, g->cli},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        int rc = write_pem(dir, files[i].name, files[i].key, files[i].cert, err, errlen);
        if (rc != LH_OK)
            return rc;
    }
    return LH_OK;
}

int lh_certgen(const char *dir, const char *const *hosts, size_t n_hosts, char *err,
               size_t errlen)
{
    struct certs g = {0};
    int rc;
    if (n_hosts > MAX_HOSTS) {
        snprintf(err, errlen, "too many hosts (%zu, at most %d)", n_hosts, MAX_HOSTS);
        return LH_ETOOBIG;
    }
    if (lh_mkdir_p(dir) != LH_OK) {
        snprintf(err, errlen, "cannot create directory %s: %s", dir, strerror(errno));
        return LH_EIO;
    }
    ERR_clear_error();
    rc = make_ca(&g, err, errlen);
    if (rc == LH_OK)
        rc = make_server(&g, hosts, n_hosts, err, errlen);
    if (rc == LH_OK &&
        make_leaf(&g, &g.cli_key, &g.cli, "loghaul-client", "clientAuth", NULL) != LH_OK)
        rc = ossl_fail(err, errlen, "cannot build the client certificate");
    if (rc == LH_OK)
        rc = write_all_pems(dir, &g, err, errlen);
    certs_free(&g);
    return rc;
}
