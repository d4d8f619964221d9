/* common/mpwrite.h and lh_rb_pack: every value written inline must be the
 * bytes msgpack-c's packer writes for it (batches, chunk checksums and the
 * collector all see the same records as before). */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/core/recbuilder.h"
#include "common/base/err.h"
#include "common/codec/mpwrite.h"
#include "common/codec/record.h"
#include "common/base/util.h"
#include "lh_check.h"

/* The same value packed by msgpack-c (ref) and by mpwrite (got). */
struct both {
    msgpack_sbuffer ref, got;
    msgpack_packer pk;
};

static void both_init(struct both *t)
{
    msgpack_sbuffer_init(&t->ref);
    msgpack_sbuffer_init(&t->got);
    msgpack_packer_init(&t->pk, &t->ref, msgpack_sbuffer_write);
}

static void both_free(struct both *t)
{
    msgpack_sbuffer_destroy(&t->ref);
    msgpack_sbuffer_destroy(&t->got);
}

static char *got_begin(struct both *t, size_t bound)
{
    t->ref.size = t->got.size = 0;
    char *p = lh_mpw_reserve(&t->got, bound);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void assert_same(const struct both *t, const char *what, double v)
{
    ck_assert_msg(t->got.size == t->ref.size &&
                      memcmp(t->got.data, t->ref.data, t->ref.size) == 0,
                  "%s %.17g: %zu bytes (0x%02x...), msgpack-c %zu (0x%02x...)", what, v,
                  t->got.size, (unsigned char)t->got.data[0], t->ref.size,
                  (unsigned char)t->ref.data[0]);
}

static void check_int(struct both *t, int64_t v)
{
    char *p = got_begin(t, LH_MPW_SCALAR_MAX);
    lh_mpw_commit(&t->got, lh_mpw_int(p, v));
    msgpack_pack_int64(&t->pk, v);
    ck_assert_msg(t->got.size == t->ref.size &&
                      memcmp(t->got.data, t->ref.data, t->ref.size) == 0,
                  "int %lld", (long long)v);
}

static void check_uint(struct both *t, uint64_t v)
{
    char *p = got_begin(t, LH_MPW_SCALAR_MAX);
    lh_mpw_commit(&t->got, lh_mpw_uint(p, v));
    msgpack_pack_uint64(&t->pk, v);
    ck_assert_msg(t->got.size == t->ref.size &&
                      memcmp(t->got.data, t->ref.data, t->ref.size) == 0,
                  "uint %llu", (unsigned long long)v);
}

START_TEST(ints_at_every_boundary)
{
    struct both t;
    both_init(&t);
    for (int64_t v = -300; v <= 300; v++)
        check_int(&t, v);
    /* Around every power of two, so each width's first and last value. */
    for (int k = 0; k < 63; k++) {
        int64_t b = INT64_C(1) << k;
        for (int64_t d = -1; d <= 1; d++) {
            check_int(&t, b + d);
            check_int(&t, -b + d);
            check_uint(&t, (uint64_t)(b + d));
        }
    }
    check_int(&t, INT64_MAX);
    check_int(&t, INT64_MIN);
    check_int(&t, INT64_MIN + 1);
    check_uint(&t, UINT64_MAX);
    check_uint(&t, UINT64_C(1) << 63);
    check_uint(&t, (UINT64_C(1) << 63) - 1);
    check_uint(&t, (UINT64_C(1) << 63) + 1);
    both_free(&t);
}
END_TEST

START_TEST(doubles_bools_nil)
{
    const double vs[] = {0.0,     -0.0,     1.5,     -2.25,    1e300, -1e-300,
                         DBL_MIN, DBL_MAX,  5e-324,  INFINITY, -INFINITY, NAN,
                         3.141592653589793};
    struct both t;
    both_init(&t);
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        char *p = got_begin(&t, LH_MPW_SCALAR_MAX);
        lh_mpw_commit(&t.got, lh_mpw_double(p, vs[i]));
        msgpack_pack_double(&t.pk, vs[i]);
        assert_same(&t, "double", vs[i]);
    }
    for (int b = 0; b < 2; b++) {
        char *p = got_begin(&t, LH_MPW_SCALAR_MAX);
        lh_mpw_commit(&t.got, lh_mpw_bool(p, b));
        b ? msgpack_pack_true(&t.pk) : msgpack_pack_false(&t.pk);
        assert_same(&t, "bool", b);
    }
    char *p = got_begin(&t, LH_MPW_SCALAR_MAX);
    lh_mpw_commit(&t.got, lh_mpw_nil(p));
    msgpack_pack_nil(&t.pk);
    assert_same(&t, "nil", 0);
    both_free(&t);
}
END_TEST

START_TEST(strs_of_every_header_width)
{
    const size_t lens[] = {0, 1, 31, 32, 33, 255, 256, 257, 65535, 65536, 65537, 200000};
    char *body = malloc(200000);
    ck_assert_ptr_nonnull(body);
    for (size_t i = 0; i < 200000; i++)
        body[i] = (char)('a' + i % 26);
    struct both t;
    both_init(&t);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *p = got_begin(&t, LH_MPW_HDR_MAX + lens[i]);
        lh_mpw_commit(&t.got, lh_mpw_str(p, body, lens[i]));
        lh_pack_strn(&t.pk, body, lens[i]);
        assert_same(&t, "str length", (double)lens[i]);
    }
    free(body);
    both_free(&t);
}
END_TEST

START_TEST(map_and_array_headers)
{
    const size_t ns[] = {0, 1, 15, 16, 17, 255, 256, 65535, 65536, 65537, 1u << 20};
    struct both t;
    both_init(&t);
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        char *p = got_begin(&t, LH_MPW_HDR_MAX);
        lh_mpw_commit(&t.got, lh_mpw_map_hdr(p, ns[i]));
        msgpack_pack_map(&t.pk, ns[i]);
        assert_same(&t, "map of", (double)ns[i]);
        p = got_begin(&t, LH_MPW_HDR_MAX);
        lh_mpw_commit(&t.got, lh_mpw_array_hdr(p, ns[i]));
        msgpack_pack_array(&t.pk, ns[i]);
        assert_same(&t, "array of", (double)ns[i]);
    }
    both_free(&t);
}
END_TEST

START_TEST(event_time_as_lh_pack_time)
{
    const int64_t ok[] = {0, 1, LH_NS_PER_SEC - 1, LH_NS_PER_SEC, INT64_C(1732430912123456789),
                          (int64_t)UINT32_MAX * LH_NS_PER_SEC + LH_NS_PER_SEC - 1};
    struct both t;
    both_init(&t);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char *p = got_begin(&t, LH_MPW_EVENT_TIME_LEN);
        p = lh_mpw_event_time(p, ok[i]);
        ck_assert_ptr_nonnull(p);
        lh_mpw_commit(&t.got, p);
        ck_assert_int_eq(lh_pack_time(&t.pk, ok[i]), 0);
        assert_same(&t, "ns", (double)ok[i]);
    }
    const int64_t bad[] = {-1, INT64_MIN, ((int64_t)UINT32_MAX + 1) * LH_NS_PER_SEC, INT64_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_ptr_null(lh_mpw_event_time(got_begin(&t, LH_MPW_EVENT_TIME_LEN), bad[i]));
        ck_assert_int_ne(lh_pack_time(&t.pk, bad[i]), 0);
    }
    both_free(&t);
}
END_TEST

START_TEST(reserve_grows_and_refuses_overflow)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char *p = lh_mpw_reserve(&sb, 3);
    ck_assert_ptr_nonnull(p);
    lh_mpw_commit(&sb, lh_mpw_str(p, "ab", 2));
    ck_assert_uint_eq(sb.size, 3);
    size_t alloc = sb.alloc;
    p = lh_mpw_reserve(&sb, alloc * 3);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(sb.alloc, 3 + alloc * 3);
    ck_assert_uint_eq(sb.size, 3);
    ck_assert_int_eq(memcmp(sb.data, "\xa2" "ab", 3), 0);
    char *data = sb.data;
    alloc = sb.alloc;
    ck_assert_ptr_null(lh_mpw_reserve(&sb, SIZE_MAX - 1));
    ck_assert_ptr_eq(sb.data, data);
    ck_assert_uint_eq(sb.alloc, alloc);
    ck_assert_uint_eq(sb.size, 3);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* lh_rb_pack as it was, through msgpack_packer. */
static void ref_pack(msgpack_packer *pk, const struct lh_recbuilder *rb)
{
    msgpack_pack_map(pk, rb->n);
    for (size_t i = 0; i < rb->n; i++) {
        const char *k;
        size_t kn;
        lh_rb_key(rb, i, &k, &kn);
        lh_pack_strn(pk, k, kn);
        const struct lh_rb_val *v = &rb->f[i].v;
        switch (v->kind) {
        case LH_RBV_STR:
            lh_pack_strn(pk, v->p, v->n);
            break;
        case LH_RBV_SCRATCH:
            lh_pack_strn(pk, rb->scratch.data + v->off, v->n);
            break;
        case LH_RBV_RAW:
            pk->callback(pk->data, rb->scratch.data + v->off, v->n);
            break;
        case LH_RBV_INT:
            msgpack_pack_int64(pk, v->num.i);
            break;
        case LH_RBV_UINT:
            msgpack_pack_uint64(pk, v->num.u);
            break;
        case LH_RBV_DOUBLE:
            msgpack_pack_double(pk, v->num.d);
            break;
        case LH_RBV_BOOL:
            v->num.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
            break;
        case LH_RBV_NIL:
            msgpack_pack_nil(pk);
            break;
        }
    }
}

/* Field i of a record with every kind of value, cycling. */
static void add_field(struct lh_recbuilder *rb, size_t i, const char *big, char *keys)
{
    char *k = keys + i * 16;
    size_t kn = (size_t)snprintf(k, 16, "k%zu", i);
    struct lh_rb_val v = {.kind = LH_RBV_NIL};
    switch (i % 9) {
    case 0:
        ck_assert_int_eq(lh_rb_set_str(rb, k, kn, big, i * 37 % 300), 0);
        return;
    case 1:
        ck_assert_int_eq(lh_rb_set_copy(rb, k, kn, big, i * 101 % 70000), 0);
        return;
    case 2: {
        size_t off = lh_rb_raw_begin(rb);
        msgpack_pack_map(&rb->spk, 1);
        lh_pack_strn(&rb->spk, "n", 1);
        msgpack_pack_array(&rb->spk, 2);
        msgpack_pack_int64(&rb->spk, -(int64_t)i);
        lh_pack_strn(&rb->spk, big, i);
        ck_assert_int_eq(lh_rb_set_raw(rb, k, kn, off), 0);
        return;
    }
    case 3:
        v = (struct lh_rb_val){.kind = LH_RBV_INT, .num.i = -(INT64_C(1) << (i % 64))};
        break;
    case 4:
        v = (struct lh_rb_val){.kind = LH_RBV_UINT, .num.u = UINT64_C(1) << (i % 64)};
        break;
    case 5:
        v = (struct lh_rb_val){.kind = LH_RBV_DOUBLE, .num.d = (double)i / 3};
        break;
    case 6:
        v = (struct lh_rb_val){.kind = LH_RBV_BOOL, .num.b = i % 2};
        break;
    case 7:
        break;
    case 8:
        /* A renamed key lives in scratch. */
        ck_assert_int_eq(lh_rb_set_str(rb, k, kn, "v", 1), 0);
        ck_assert_int_eq(lh_rb_rename(rb, rb->n - 1, "renamed-key-longer-than-a-fixstr-holds",
                                      30 + i % 10), 0);
        return;
    }
    ck_assert_int_eq(lh_rb_set(rb, k, kn, &v), 0);
}

START_TEST(records_as_msgpack_packer_wrote_them)
{
    const size_t counts[] = {0, 1, 9, 15, 16, 17, 40};
    char *big = malloc(70000);
    char *keys = malloc(40 * 16);
    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_nonnull(keys);
    for (size_t i = 0; i < 70000; i++)
        big[i] = (char)(' ' + i % 90);
    struct both t;
    both_init(&t);
    struct lh_recbuilder rb;
    lh_rb_init(&rb);
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        lh_rb_reset(&rb);
        for (size_t i = 0; i < counts[c]; i++)
            add_field(&rb, i, big, keys);
        /* After earlier bytes, as in a batch, and from an empty buffer. */
        t.ref.size = t.got.size = 0;
        lh_pack_strn(&t.pk, "head", 4);
        lh_mpw_commit(&t.got, lh_mpw_str(lh_mpw_reserve(&t.got, 5), "head", 4));
        ref_pack(&t.pk, &rb);
        ck_assert_int_eq(lh_rb_pack(&t.got, &rb), 0);
        assert_same(&t, "record of fields:", (double)rb.n);
        msgpack_sbuffer fresh;
        msgpack_sbuffer_init(&fresh);
        ck_assert_int_eq(lh_rb_pack(&fresh, &rb), 0);
        ck_assert_uint_eq(fresh.size, t.ref.size - 5);
        ck_assert_int_eq(memcmp(fresh.data, t.ref.data + 5, fresh.size), 0);
        msgpack_sbuffer_destroy(&fresh);
    }
    lh_rb_free(&rb);
    both_free(&t);
    free(keys);
    free(big);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mpwrite");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, ints_at_every_boundary);
    tcase_add_test(tc, doubles_bools_nil);
    tcase_add_test(tc, strs_of_every_header_width);
    tcase_add_test(tc, map_and_array_headers);
    tcase_add_test(tc, event_time_as_lh_pack_time);
    tcase_add_test(tc, reserve_grows_and_refuses_overflow);
    tcase_add_test(tc, records_as_msgpack_packer_wrote_them);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(suite());
}
