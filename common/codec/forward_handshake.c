/* Forward v1 shared-key handshake: HELO (server), PING (client), PONG
 * (server). Both sides prove knowledge of the key with
 * hex(sha512(salt + hostname + nonce + shared_key)); the client checks the
 * server's proof too, which Fluent Bit skips. */
#include "common/codec/forward.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/record.h"

#define NONCE_LEN 16
#define SALT_RAW_LEN 16
#define HEX_LEN (LH_FWD_HEX512 - 1)

struct span {
    const void *p;
    size_t n;
};

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xF];
    }
    out[2 * n] = '\0';
}

/* Lowercase hex SHA-512 of the concatenated parts. */
static int sha512_hex(const struct span *parts, size_t n, char out[LH_FWD_HEX512])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1;

    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(ctx, parts[i].p, parts[i].n) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen * 2 == HEX_LEN;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return LH_ENOMEM;
    to_hex(md, mdlen, out);
    return 0;
}

static int key_digest(const struct lh_fwd_ping *ping, const char *host, size_t host_len,
                      const struct lh_fwd_helo *h, const char *shared_key,
                      char out[LH_FWD_HEX512])
{
    const struct span parts[] = {
        {ping->salt, ping->salt_len},
        {host, host_len},
        {h->nonce, h->nonce_len},
        {shared_key, strlen(shared_key)},
    };

    return sha512_hex(parts, 4, out);
}

static bool digest_equal(const msgpack_object *o, const char expect[LH_FWD_HEX512])
{
    const char *p;
    size_t n;

    return lh_obj_bytes(o, &p, &n) && n == HEX_LEN && CRYPTO_memcmp(p, expect, HEX_LEN) == 0;
}

static bool is_word(const msgpack_object *o, const char *word)
{
    const char *p;
    size_t n;

    return lh_obj_bytes(o, &p, &n) && n == strlen(word) && memcmp(p, word, n) == 0;
}

/* A handshake message: an array of n elements whose first is word. */
static const msgpack_object *handshake_msg(const msgpack_object *o, const char *word,
                                           uint32_t n)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n ||
        !is_word(&o->via.array.ptr[0], word))
        return NULL;
    return o->via.array.ptr;
}

/* Copies str/bin bytes into a fixed buffer; false when absent or too long. */
static bool copy_bytes(const msgpack_object *o, uint8_t *dst, size_t cap, size_t *len)
{
    const char *p;
    size_t n;

    if (!lh_obj_bytes(o, &p, &n) || n > cap)
        return false;
    if (n > 0)
        memcpy(dst, p, n);
    *len = n;
    return true;
}

/* Copies a name into a C string; false for absent, too long or NUL inside. */
static bool copy_name(const msgpack_object *o, char *dst, size_t cap)
{
    const char *p;
    size_t n;

    if (!lh_obj_bytes(o, &p, &n) || n >= cap || memchr(p, '\0', n) != NULL)
        return false;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return true;
}

/* ---- HELO --------------------------------------------------------------- */

int lh_fwd_helo_init(struct lh_fwd_helo *h)
{
    memset(h, 0, sizeof(*h));
    if (RAND_bytes(h->nonce, NONCE_LEN) != 1)
        return LH_EIO;
    h->nonce_len = NONCE_LEN;
    h->keepalive = true;
    return 0;
}

int lh_fwd_pack_helo(msgpack_packer *pk, const struct lh_fwd_helo *h)
{
    if (msgpack_pack_array(pk, 2) != 0 || lh_pack_cstr(pk, "HELO") != 0 ||
        msgpack_pack_map(pk, 3) != 0 || lh_pack_cstr(pk, "nonce") != 0 ||
        msgpack_pack_bin(pk, h->nonce_len) != 0 ||
        msgpack_pack_bin_body(pk, h->nonce, h->nonce_len) != 0 ||
        lh_pack_cstr(pk, "auth") != 0)
        return LH_ENOMEM;
    /* No user auth is "" (a str), as Fluentd sends it. */
    if (h->auth_len == 0 ? lh_pack_cstr(pk, "") != 0
                         : (msgpack_pack_bin(pk, h->auth_len) != 0 ||
                            msgpack_pack_bin_body(pk, h->auth, h->auth_len) != 0))
        return LH_ENOMEM;
    if (lh_pack_cstr(pk, "keepalive") != 0 ||
        (h->keepalive ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) != 0)
        return LH_ENOMEM;
    return 0;
}

int lh_fwd_parse_helo(const msgpack_object *o, struct lh_fwd_helo *h)
{
    const msgpack_object *m = handshake_msg(o, "HELO", 2);
    const msgpack_object *v;

    memset(h, 0, sizeof(*h));
    h->keepalive = true;
    if (m == NULL || m[1].type != MSGPACK_OBJECT_MAP)
        return LH_EPROTO;
    v = lh_map_get(&m[1], "nonce");
    if (v == NULL || !copy_bytes(v, h->nonce, sizeof(h->nonce), &h->nonce_len) ||
        h->nonce_len == 0)
        return LH_EPROTO;
    v = lh_map_get(&m[1], "auth");
    if (v != NULL && v->type != MSGPACK_OBJECT_NIL &&
        !copy_bytes(v, h->auth, sizeof(h->auth), &h->auth_len))
        return LH_EPROTO;
    v = lh_map_get(&m[1], "keepalive");
    if (v != NULL) {
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return LH_EPROTO;
        h->keepalive = v->via.boolean;
    }
    return 0;
}

/* ---- PING --------------------------------------------------------------- */

/* Fluentd's salt is a random hex string; sending the same shape keeps
 * servers that expect a printable str happy. */
static int fresh_salt(struct lh_fwd_ping *ping)
{
    unsigned char raw[SALT_RAW_LEN];
    char hex[2 * SALT_RAW_LEN + 1];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return LH_EIO;
    to_hex(raw, sizeof(raw), hex);
    memcpy(ping->salt, hex, 2 * SALT_RAW_LEN);
    ping->salt_len = 2 * SALT_RAW_LEN;
    return 0;
}

/* Only when the server asked for user auth (a non-empty auth salt). */
static int password_digest(const struct lh_fwd_helo *h, const char *user, const char *password,
                           char out[LH_FWD_HEX512])
{
    struct span parts[3] = {{h->auth, h->auth_len}, {user, strlen(user)}, {NULL, 0}};

    out[0] = '\0';
    if (h->auth_len == 0 || password == NULL)
        return 0;
    parts[2] = (struct span){password, strlen(password)};
    return sha512_hex(parts, 3, out);
}

int lh_fwd_pack_ping(msgpack_packer *pk, const struct lh_fwd_helo *h, const char *hostname,
                     const char *shared_key, const char *username, const char *password,
                     struct lh_fwd_ping *ping)
{
    const char *user = username != NULL ? username : "";
    char digest[LH_FWD_HEX512], pwd[LH_FWD_HEX512];
    size_t host_len = strlen(hostname);
    int rc;

    memset(ping, 0, sizeof(*ping));
    if (host_len >= sizeof(ping->hostname) || strlen(user) >= sizeof(ping->username))
        return LH_EINVAL;
    memcpy(ping->hostname, hostname, host_len + 1);
    memcpy(ping->username, user, strlen(user) + 1);
    if ((rc = fresh_salt(ping)) != 0 ||
        (rc = key_digest(ping, hostname, host_len, h, shared_key, digest)) != 0 ||
        (rc = password_digest(h, user, password, pwd)) != 0)
        return rc;
    if (msgpack_pack_array(pk, 6) != 0 || lh_pack_cstr(pk, "PING") != 0 ||
        lh_pack_strn(pk, hostname, host_len) != 0 ||
        lh_pack_strn(pk, (const char *)ping->salt, ping->salt_len) != 0 ||
        lh_pack_cstr(pk, digest) != 0 || lh_pack_cstr(pk, user) != 0 ||
        lh_pack_cstr(pk, pwd) != 0)
        return LH_ENOMEM;
    return 0;
}

int lh_fwd_check_ping(const msgpack_object *o, const struct lh_fwd_helo *h,
                      const char *shared_key, struct lh_fwd_ping *ping, const char **reason)
{
    const msgpack_object *m = handshake_msg(o, "PING", 6);
    char expect[LH_FWD_HEX512];
    const char *p;
    size_t n;
    int rc;

    memset(ping, 0, sizeof(*ping));
    *reason = "malformed PING";
    if (m == NULL || !copy_name(&m[1], ping->hostname, sizeof(ping->hostname)) ||
        !copy_bytes(&m[2], ping->salt, sizeof(ping->salt), &ping->salt_len) ||
        ping->salt_len == 0 || !lh_obj_bytes(&m[3], &p, &n) ||
        !copy_name(&m[4], ping->username, sizeof(ping->username)) || !lh_obj_bytes(&m[5], &p, &n))
        return LH_EPROTO;
    rc = key_digest(ping, ping->hostname, strlen(ping->hostname), h, shared_key, expect);
    if (rc != 0) {
        *reason = "internal error";
        return rc;
    }
    if (!digest_equal(&m[3], expect)) {
        *reason = "shared_key mismatch";
        return LH_EAUTH;
    }
    *reason = "";
    return 0;
}

/* ---- PONG --------------------------------------------------------------- */

int lh_fwd_pack_pong(msgpack_packer *pk, bool ok, const char *reason, const char *server_hostname,
                     const struct lh_fwd_helo *h, const struct lh_fwd_ping *ping,
                     const char *shared_key)
{
    char digest[LH_FWD_HEX512] = "";
    int rc;

    if (ok && (rc = key_digest(ping, server_hostname, strlen(server_hostname), h, shared_key,
                               digest)) != 0)
        return rc;
    if (msgpack_pack_array(pk, 5) != 0 || lh_pack_cstr(pk, "PONG") != 0 ||
        (ok ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) != 0 ||
        lh_pack_cstr(pk, ok || reason == NULL ? "" : reason) != 0 ||
        lh_pack_cstr(pk, ok ? server_hostname : "") != 0 || lh_pack_cstr(pk, digest) != 0)
        return LH_ENOMEM;
    return 0;
}

/* Copies a peer-supplied reason for a log line: printable ASCII only. */
static void copy_reason(const char *src, size_t n, char *dst, size_t cap)
{
    size_t i;

    if (cap == 0)
        return;
    for (i = 0; i < n && i + 1 < cap; i++)
        dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
    dst[i] = '\0';
}

int lh_fwd_check_pong(const msgpack_object *o, const struct lh_fwd_helo *h,
                      const struct lh_fwd_ping *ping, const char *shared_key, char *reason,
                      size_t reason_len)
{
    static const char forged[] = "server digest mismatch (server does not know the shared key)";
    const msgpack_object *m = handshake_msg(o, "PONG", 5);
    char expect[LH_FWD_HEX512];
    const char *why, *host, *p;
    size_t why_len, host_len, n;
    int rc;

    copy_reason("", 0, reason, reason_len);
    if (m == NULL || m[1].type != MSGPACK_OBJECT_BOOLEAN || !lh_obj_bytes(&m[2], &why, &why_len) ||
        !lh_obj_bytes(&m[3], &host, &host_len) || !lh_obj_bytes(&m[4], &p, &n))
        return LH_EPROTO;
    if (!m[1].via.boolean) {
        copy_reason(why, why_len, reason, reason_len);
        return LH_EAUTH;
    }
    rc = key_digest(ping, host, host_len, h, shared_key, expect);
    if (rc != 0)
        return rc;
    if (!digest_equal(&m[4], expect)) {
        copy_reason(forged, sizeof(forged) - 1, reason, reason_len);
        return LH_EAUTH;
    }
    return 0;
}
