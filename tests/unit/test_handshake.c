/* Forward v1 shared-key handshake: HELO / PING / PONG on both sides. */
#include <check.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/forward.h"
#include "common/codec/record.h"
#include "tests/unit/lh_check.h"

#define KEY "s3cret-key"

struct wire {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
};

static void w_init(struct wire *w)
{
    msgpack_sbuffer_init(&w->sb);
    msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
    msgpack_unpacked_init(&w->u);
}

static void w_free(struct wire *w)
{
    msgpack_unpacked_destroy(&w->u);
    msgpack_sbuffer_destroy(&w->sb);
}

/* What the peer receives: the packed bytes, unpacked. */
static const msgpack_object *w_recv(struct wire *w)
{
    size_t off = 0;

    ck_assert_int_eq(msgpack_unpack_next(&w->u, w->sb.data, w->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, w->sb.size);
    return &w->u.data;
}

/* The spec's digest, computed independently: hex(sha512(a + b + c + d)). */
static void spec_digest(const void *a, size_t an, const void *b, size_t bn, const void *c,
                        size_t cn, const char *d, char out[LH_FWD_HEX512])
{
    unsigned char buf[1024], md[64];
    unsigned int mdlen = 0;
    size_t n = 0, dn = strlen(d);

    ck_assert_uint_lt(an + bn + cn + dn, sizeof(buf));
    memcpy(buf, a, an);
    n += an;
    memcpy(buf + n, b, bn);
    n += bn;
    memcpy(buf + n, c, cn);
    n += cn;
    memcpy(buf + n, d, dn);
    n += dn;
    ck_assert_int_eq(EVP_Digest(buf, n, md, &mdlen, EVP_sha512(), NULL), 1);
    ck_assert_uint_eq(mdlen, 64);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void assert_str(const msgpack_object *o, const char *s)
{
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_STR);
    ck_assert_uint_eq(o->via.str.size, strlen(s));
    ck_assert_mem_eq(o->via.str.ptr, s, strlen(s));
}

/* Server HELO -> client parse; returns the client's view. */
static void helo_exchange(struct lh_fwd_helo *server, struct lh_fwd_helo *client)
{
    struct wire w;

    w_init(&w);
    ck_assert_int_eq(lh_fwd_helo_init(server), 0);
    ck_assert_int_eq(lh_fwd_pack_helo(&w.pk, server), 0);
    ck_assert_int_eq(lh_fwd_parse_helo(w_recv(&w), client), 0);
    w_free(&w);
}

START_TEST(right_key_both_sides_ok)
{
    struct lh_fwd_helo sh, ch;
    struct lh_fwd_ping cping, sping;
    struct wire ping, pong;
    const msgpack_object *m;
    const char *reason = NULL;
    char expect[LH_FWD_HEX512], why[128];

    helo_exchange(&sh, &ch);
    ck_assert_uint_eq(ch.nonce_len, 16);
    ck_assert_mem_eq(ch.nonce, sh.nonce, 16);
    ck_assert_uint_eq(ch.auth_len, 0);
    ck_assert(ch.keepalive);

    w_init(&ping);
    ck_assert_int_eq(lh_fwd_pack_ping(&ping.pk, &ch, "agent-1", KEY, NULL, NULL, &cping), 0);
    m = w_recv(&ping);
    /* Wire shape: 6 elements, hex salt as str, the spec's digest. */
    ck_assert_int_eq(m->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(m->via.array.size, 6);
    assert_str(&m->via.array.ptr[0], "PING");
    assert_str(&m->via.array.ptr[1], "agent-1");
    ck_assert_int_eq(m->via.array.ptr[2].type, MSGPACK_OBJECT_STR);
    ck_assert_uint_eq(m->via.array.ptr[2].via.str.size, 32);
    spec_digest(cping.salt, cping.salt_len, "agent-1", 7, sh.nonce, 16, KEY, expect);
    assert_str(&m->via.array.ptr[3], expect);
    assert_str(&m->via.array.ptr[4], "");
    assert_str(&m->via.array.ptr[5], "");

    ck_assert_int_eq(lh_fwd_check_ping(m, &sh, KEY, &sping, &reason), 0);
    ck_assert_str_eq(sping.hostname, "agent-1");
    ck_assert_uint_eq(sping.salt_len, cping.salt_len);
    ck_assert_mem_eq(sping.salt, cping.salt, cping.salt_len);

    w_init(&pong);
    ck_assert_int_eq(lh_fwd_pack_pong(&pong.pk, true, "", "collector-a", &sh, &sping, KEY), 0);
    m = w_recv(&pong);
    ck_assert_uint_eq(m->via.array.size, 5);
    assert_str(&m->via.array.ptr[0], "PONG");
    ck_assert(m->via.array.ptr[1].type == MSGPACK_OBJECT_BOOLEAN && m->via.array.ptr[1].via.boolean);
    assert_str(&m->via.array.ptr[3], "collector-a");
    spec_digest(cping.salt, cping.salt_len, "collector-a", 11, sh.nonce, 16, KEY, expect);
    assert_str(&m->via.array.ptr[4], expect);
    ck_assert_int_eq(lh_fwd_check_pong(m, &ch, &cping, KEY, why, sizeof(why)), 0);
    w_free(&ping);
    w_free(&pong);
}
END_TEST

START_TEST(wrong_key_refused_with_reason)
{
    struct lh_fwd_helo sh, ch;
    struct lh_fwd_ping cping, sping;
    struct wire ping, pong;
    const msgpack_object *m;
    const char *reason = NULL;
    char why[128];

    helo_exchange(&sh, &ch);
    w_init(&ping);
    ck_assert_int_eq(lh_fwd_pack_ping(&ping.pk, &ch, "agent-1", "not-the-key", NULL, NULL, &cping),
                     0);
    ck_assert_int_eq(lh_fwd_check_ping(w_recv(&ping), &sh, KEY, &sping, &reason), LH_EAUTH);
    ck_assert_str_eq(reason, "shared_key mismatch");
    ck_assert_str_eq(sping.hostname, "agent-1"); /* for the server's log line */

    w_init(&pong);
    ck_assert_int_eq(lh_fwd_pack_pong(&pong.pk, false, reason, "collector-a", &sh, &sping, KEY), 0);
    m = w_recv(&pong);
    ck_assert_uint_eq(m->via.array.size, 5);
    ck_assert(!m->via.array.ptr[1].via.boolean);
    assert_str(&m->via.array.ptr[2], "shared_key mismatch");
    assert_str(&m->via.array.ptr[3], "");
    assert_str(&m->via.array.ptr[4], "");
    ck_assert_int_eq(lh_fwd_check_pong(m, &ch, &cping, "not-the-key", why, sizeof(why)), LH_EAUTH);
    ck_assert_str_eq(why, "shared_key mismatch");
    w_free(&ping);
    w_free(&pong);
}
END_TEST

START_TEST(forged_pong_refused)
{
    /* A server that does not know the key cannot produce the digest. */
    struct lh_fwd_helo sh, ch;
    struct lh_fwd_ping cping, sping;
    struct wire ping, pong;
    const char *reason = NULL;
    char why[128];

    helo_exchange(&sh, &ch);
    w_init(&ping);
    w_init(&pong);
    ck_assert_int_eq(lh_fwd_pack_ping(&ping.pk, &ch, "agent-1", KEY, NULL, NULL, &cping), 0);
    ck_assert_int_eq(lh_fwd_check_ping(w_recv(&ping), &sh, KEY, &sping, &reason), 0);
    ck_assert_int_eq(lh_fwd_pack_pong(&pong.pk, true, "", "evil", &sh, &sping, "guess"), 0);
    ck_assert_int_eq(lh_fwd_check_pong(w_recv(&pong), &ch, &cping, KEY, why, sizeof(why)),
                     LH_EAUTH);
    ck_assert_ptr_nonnull(strstr(why, "mismatch"));

    /* Right key, but one digest character changed on the way. */
    msgpack_sbuffer_clear(&pong.sb);
    ck_assert_int_eq(lh_fwd_pack_pong(&pong.pk, true, "", "good", &sh, &sping, KEY), 0);
    pong.sb.data[pong.sb.size - 1] ^= 1;
    ck_assert_int_eq(lh_fwd_check_pong(w_recv(&pong), &ch, &cping, KEY, why, sizeof(why)),
                     LH_EAUTH);
    pong.sb.data[pong.sb.size - 1] ^= 1;
    ck_assert_int_eq(lh_fwd_check_pong(w_recv(&pong), &ch, &cping, KEY, why, sizeof(why)), 0);
    w_free(&ping);
    w_free(&pong);
}
END_TEST

/* A HELO as other servers write it: nonce as str (Fluent Bit) or bin. */
static void pack_foreign_helo(msgpack_packer *pk, bool nonce_bin, size_t nonce_len,
                              bool keepalive)
{
    static const char nonce[80] = "0123456789abcdef-raw-bytes\x01\x02\xff";

    msgpack_pack_array(pk, 2);
    lh_pack_cstr(pk, "HELO");
    msgpack_pack_map(pk, 3);
    lh_pack_cstr(pk, "nonce");
    if (nonce_bin) {
        msgpack_pack_bin(pk, nonce_len);
        msgpack_pack_bin_body(pk, nonce, nonce_len);
    } else {
        lh_pack_strn(pk, nonce, nonce_len);
    }
    lh_pack_cstr(pk, "auth");
    lh_pack_strn(pk, "saltsaltsaltsalt", 16);
    lh_pack_cstr(pk, "keepalive");
    keepalive ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

START_TEST(nonce_as_str_and_bin)
{
    struct lh_fwd_helo h;
    struct lh_fwd_ping cping, sping;
    struct wire w, ping;
    const char *reason;

    for (int bin = 0; bin < 2; bin++) {
        w_init(&w);
        pack_foreign_helo(&w.pk, bin, 16, bin);
        ck_assert_int_eq(lh_fwd_parse_helo(w_recv(&w), &h), 0);
        ck_assert_uint_eq(h.nonce_len, 16);
        ck_assert_mem_eq(h.nonce, "0123456789abcdef", 16);
        ck_assert_uint_eq(h.auth_len, 16);
        ck_assert(h.keepalive == (bool)bin);
        /* The parsed HELO serves both sides of the exchange. */
        w_init(&ping);
        ck_assert_int_eq(lh_fwd_pack_ping(&ping.pk, &h, "a", KEY, NULL, NULL, &cping), 0);
        ck_assert_int_eq(lh_fwd_check_ping(w_recv(&ping), &h, KEY, &sping, &reason), 0);
        w_free(&ping);
        w_free(&w);
    }
    /* Too long a nonce is refused rather than truncated. */
    w_init(&w);
    pack_foreign_helo(&w.pk, true, LH_FWD_MAX_NONCE + 1, true);
    ck_assert_int_eq(lh_fwd_parse_helo(w_recv(&w), &h), LH_EPROTO);
    w_free(&w);
}
END_TEST

START_TEST(user_auth_digest)
{
    struct lh_fwd_helo h;
    struct lh_fwd_ping cping;
    struct wire w, ping;
    const msgpack_object *m;
    char expect[LH_FWD_HEX512];

    w_init(&w);
    pack_foreign_helo(&w.pk, false, 16, true);
    ck_assert_int_eq(lh_fwd_parse_helo(w_recv(&w), &h), 0);
    w_init(&ping);
    ck_assert_int_eq(lh_fwd_pack_ping(&ping.pk, &h, "a", KEY, "alice", "pw", &cping), 0);
    m = w_recv(&ping);
    assert_str(&m->via.array.ptr[4], "alice");
    spec_digest("saltsaltsaltsalt", 16, "alice", 5, "pw", 2, "", expect);
    assert_str(&m->via.array.ptr[5], expect);
    w_free(&ping);
    w_free(&w);
}
END_TEST

static int parse_helo_bytes(const char *b, size_t n)
{
    struct lh_fwd_helo h;
    msgpack_unpacked u;
    size_t off = 0;
    int rc;

    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, b, n, &off), MSGPACK_UNPACK_SUCCESS);
    rc = lh_fwd_parse_helo(&u.data, &h);
    msgpack_unpacked_destroy(&u);
    return rc;
}

#define HELO(s) parse_helo_bytes(s, sizeof(s) - 1)

START_TEST(malformed_helo)
{
    ck_assert_int_eq(HELO("\x92\xa4HELO\x81\xa5nonce\xa2xy"), 0);
    ck_assert_int_eq(HELO("\x92\xa4HELL\x81\xa5nonce\xa2xy"), LH_EPROTO);
    ck_assert_int_eq(HELO("\x93\xa4HELO\x81\xa5nonce\xa2xy\xc0"), LH_EPROTO);
    ck_assert_int_eq(HELO("\x92\xa4HELO\x80"), LH_EPROTO);
    ck_assert_int_eq(HELO("\x92\xa4HELO\x81\xa5nonce\x07"), LH_EPROTO);
    ck_assert_int_eq(HELO("\x92\xa4HELO\x81\xa5nonce\xa0"), LH_EPROTO);
    ck_assert_int_eq(HELO("\x92\xa4HELO\x91\xa2xy"), LH_EPROTO);
    ck_assert_int_eq(HELO("\x92\xa4HELO\x82\xa5nonce\xa2xy\xa9keepalive\x01"), LH_EPROTO);
}
END_TEST

/* A PING built field by field, as Fluentd's out_forward sends it. */
static void pack_ping_fields(msgpack_packer *pk, int n, const char *word, bool host_int,
                             const char *salt, bool salt_bin, const char *digest)
{
    msgpack_pack_array(pk, (size_t)n);
    lh_pack_cstr(pk, word);
    if (host_int)
        msgpack_pack_int(pk, 1);
    else
        lh_pack_cstr(pk, "fluentd-host");
    if (salt_bin) {
        msgpack_pack_bin(pk, strlen(salt));
        msgpack_pack_bin_body(pk, salt, strlen(salt));
    } else {
        lh_pack_cstr(pk, salt);
    }
    if (digest != NULL)
        lh_pack_cstr(pk, digest);
    else
        msgpack_pack_int(pk, 0);
    for (int i = 4; i < n; i++)
        lh_pack_cstr(pk, "");
}

static int check_ping_fields(const struct lh_fwd_helo *h, int n, const char *word, bool host_int,
                             const char *salt, bool salt_bin, const char *digest)
{
    struct lh_fwd_ping sping;
    const char *reason = NULL;
    struct wire w;
    int rc;

    w_init(&w);
    pack_ping_fields(&w.pk, n, word, host_int, salt, salt_bin, digest);
    rc = lh_fwd_check_ping(w_recv(&w), h, KEY, &sping, &reason);
    ck_assert_ptr_nonnull(reason);
    w_free(&w);
    return rc;
}

START_TEST(foreign_and_malformed_ping)
{
    static const char salt[] = "5f1e0c2b9a8d7e6f5f1e0c2b9a8d7e6f";
    struct lh_fwd_helo h;
    char digest[LH_FWD_HEX512];

    ck_assert_int_eq(lh_fwd_helo_init(&h), 0);
    spec_digest(salt, 32, "fluentd-host", 12, h.nonce, 16, KEY, digest);
    ck_assert_int_eq(check_ping_fields(&h, 6, "PING", false, salt, false, digest), 0);
    ck_assert_int_eq(check_ping_fields(&h, 6, "PING", false, salt, true, digest), 0);
    ck_assert_int_eq(check_ping_fields(&h, 5, "PING", false, salt, false, digest), LH_EPROTO);
    ck_assert_int_eq(check_ping_fields(&h, 6, "PONG", false, salt, false, digest), LH_EPROTO);
    ck_assert_int_eq(check_ping_fields(&h, 6, "PING", true, salt, false, digest), LH_EPROTO);
    ck_assert_int_eq(check_ping_fields(&h, 6, "PING", false, "", false, digest), LH_EPROTO);
    ck_assert_int_eq(check_ping_fields(&h, 6, "PING", false, salt, false, NULL), LH_EPROTO);
    /* Well-formed but for a digest of the wrong length: a wrong key. */
    ck_assert_int_eq(check_ping_fields(&h, 6, "PING", false, salt, false, "abc"), LH_EAUTH);
}
END_TEST

START_TEST(malformed_pong)
{
    static const char *const bad[] = {
        "\x94\xa4PONG\xc3\xa0\xa0",         /* 4 elements */
        "\x95\xa4PING\xc3\xa0\xa0\xa0",     /* wrong word */
        "\x95\xa4PONG\x01\xa0\xa0\xa0",     /* ok not a bool */
        "\x95\xa4PONG\xc3\xa0\x01\xa0",     /* hostname not a string */
        "\x95\xa4PONG\xc3\xa0\xa0\xc0",     /* digest nil */
    };
    struct lh_fwd_helo h;
    struct lh_fwd_ping ping;
    msgpack_unpacked u;
    char why[64];

    memset(&ping, 0, sizeof(ping));
    ck_assert_int_eq(lh_fwd_helo_init(&h), 0);
    msgpack_unpacked_init(&u);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t off = 0;
        ck_assert_int_eq(msgpack_unpack_next(&u, bad[i], strlen(bad[i]), &off),
                         MSGPACK_UNPACK_SUCCESS);
        ck_assert_int_eq(lh_fwd_check_pong(&u.data, &h, &ping, KEY, why, sizeof(why)), LH_EPROTO);
    }
    msgpack_unpacked_destroy(&u);
}
END_TEST

START_TEST(refusal_reason_sanitised)
{
    /* The peer's reason goes into a log line: no control bytes, bounded. */
    struct lh_fwd_helo h;
    struct lh_fwd_ping ping;
    struct wire w;
    char why[8];

    memset(&ping, 0, sizeof(ping));
    ck_assert_int_eq(lh_fwd_helo_init(&h), 0);
    w_init(&w);
    ck_assert_int_eq(lh_fwd_pack_pong(&w.pk, false, "bad\nkey\x01!", "", &h, &ping, KEY), 0);
    ck_assert_int_eq(lh_fwd_check_pong(w_recv(&w), &h, &ping, KEY, why, sizeof(why)), LH_EAUTH);
    ck_assert_str_eq(why, "bad?key");
    w_free(&w);
}
END_TEST

static Suite *handshake_suite(void)
{
    Suite *s = suite_create("handshake");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, right_key_both_sides_ok);
    tcase_add_test(tc, wrong_key_refused_with_reason);
    tcase_add_test(tc, forged_pong_refused);
    tcase_add_test(tc, nonce_as_str_and_bin);
    tcase_add_test(tc, user_auth_digest);
    tcase_add_test(tc, malformed_helo);
    tcase_add_test(tc, foreign_and_malformed_ping);
    tcase_add_test(tc, malformed_pong);
    tcase_add_test(tc, refusal_reason_sanitised);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(handshake_suite());
}
