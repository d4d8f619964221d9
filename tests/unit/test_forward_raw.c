/* Forward v1 decoding from raw bytes: records are the frame's own bytes in
 * every mode, only small parts are unpacked (and capped), frame heads are
 * judged before buffering; and the scanner agrees with msgpack-c on every
 * input (the depth rule, found by fuzz_forward, plus random inputs). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/forward.h"
#include "common/codec/record.h"
#include "tests/unit/lh_check.h"

#define MIB (1024 * 1024)
#define ET "\xd7\x00\x65\x53\xf1\x00\x00\x00\x00\x00"
#define REC "\x81\xa1m\xa1x"

struct span_check {
    const char *lo, *hi; /* the record must lie inside [lo, hi) */
    int n;
};

static int inside(void *ud, const struct lh_fwd_event *ev)
{
    struct span_check *s = ud;

    ck_assert(ev->record >= s->lo && ev->record + ev->record_len <= s->hi);
    ck_assert_uint_eq(ev->record_len, sizeof(REC) - 1);
    ck_assert_mem_eq(ev->record, REC, sizeof(REC) - 1);
    s->n++;
    return 0;
}

static int decode(const char *b, size_t n, struct span_check *s)
{
    *s = (struct span_check){b, b + n, 0};
    return lh_fwd_decode((const uint8_t *)b, n, MIB, inside, s, NULL, NULL);
}

#define DECODE(lit, s) decode(lit, sizeof(lit) - 1, s)

START_TEST(records_are_the_frames_bytes)
{
    struct span_check s;

    /* Message, Forward (plain and Fluent Bit 2 heads), PackedForward: before
     * decoding from bytes, Message and Forward records were packed again. */
    ck_assert_int_eq(DECODE("\x93\xa1t" ET REC, &s), 0);
    ck_assert_int_eq(s.n, 1);
    ck_assert_int_eq(DECODE("\x94\xa1t\x01" REC "\xc0", &s), 0);
    ck_assert_int_eq(s.n, 1);
    ck_assert_int_eq(DECODE("\x92\xa1t\x92\x92" ET REC "\x92\x92" ET "\x80" REC, &s), 0);
    ck_assert_int_eq(s.n, 2);
    ck_assert_int_eq(DECODE("\x93\xa1t\xc4\x10\x92" ET REC "\x81\xa4size\x01", &s), 0);
    ck_assert_int_eq(s.n, 1);
    ck_assert_int_eq(DECODE("\x93\xa1t\xa7\x92\x01" REC "\x81\xaa" "compressed\xa4text", &s), 0);
    ck_assert_int_eq(s.n, 1);
}
END_TEST

static int time_of_event(void *ud, const struct lh_fwd_event *ev)
{
    int64_t *ns = ud;
    *ns = ev->time_ns;
    return 0;
}

/* The time a one-event frame gives (-2: the frame was refused). */
static int64_t frame_time(const char *b, size_t n)
{
    int64_t ns = -2;
    return lh_fwd_decode((const uint8_t *)b, n, MIB, time_of_event, &ns, NULL, NULL) == 0 ? ns
                                                                                          : -2;
}

#define FRAME_TIME(lit) frame_time(lit, sizeof(lit) - 1)
/* 1700000000 s and 0xffffffff ns: a nanoseconds field past 999999999. */
#define ET_NS_OVER "\xd7\x00\x65\x53\xf1\x00\xff\xff\xff\xff"
#define T0_LAST_NS (1700000000LL * 1000000000LL + 999999999LL)

/* Every mode gives a time lh_pack_time packs: out of EventTime's range it
 * is clamped to the nearer end, nanoseconds past 999999999 stay in their
 * second, the PackedForward fast path included. Before, -5 and 5e9 seconds
 * decoded and the collector then failed to pack them ("out of memory",
 * never acked), and 0xffffffff ns moved the record 4.29 s. */
START_TEST(times_out_of_range_clamped_in_every_mode)
{
    char packed[64];
    size_t n;
    ck_assert_int_eq(FRAME_TIME("\x93\xa1t\xfb" REC), 0);                       /* -5 */
    ck_assert_int_eq(FRAME_TIME("\x93\xa1t\xcf\x00\x00\x00\x01\x2a\x05\xf2\x00" REC),
                     LH_TIME_MAX_NS);                                          /* 5e9 */
    ck_assert_int_eq(FRAME_TIME("\x93\xa1t\xcb\xc0\x14\x00\x00\x00\x00\x00\x00" REC),
                     0);                                                       /* -5.0 */
    ck_assert_int_eq(FRAME_TIME("\x93\xa1t" ET_NS_OVER REC), T0_LAST_NS);
    ck_assert_int_eq(FRAME_TIME("\x92\xa1t\x91\x92" ET_NS_OVER REC), T0_LAST_NS);
    ck_assert_int_eq(FRAME_TIME("\x92\xa1t\x91\x92\xfb" REC), 0);
    ck_assert_int_eq(FRAME_TIME("\x92\xa1t\x91\x92\x92\xfb\x80" REC), 0); /* [time, meta] */
    n = (size_t)snprintf(packed, sizeof packed, "\x92\xa1t\xc4%c\x92", 1 + 10 + 5);
    memcpy(packed + n, ET_NS_OVER REC, 15);
    ck_assert_int_eq(frame_time(packed, n + 15), T0_LAST_NS);
}
END_TEST

#define HAS_HOST(lit) lh_mp_map_has_key(lit, sizeof(lit) - 1, "host", 4)

/* Ingest adds `host` only to a record without one; a bin `host` key is one
 * (rendering and lh_map_get take bin keys), so it gets no second, str
 * `host`. Before, only str keys matched. */
START_TEST(map_has_key_str_or_bin)
{
    ck_assert(HAS_HOST("\x81\xa4host\xa1x"));
    ck_assert(HAS_HOST("\x81\xd9\x04host\xa1x"));
    ck_assert(HAS_HOST("\x81\xc4\x04host\xa1x"));
    ck_assert(HAS_HOST("\x82\xa1" "a\x01\xc5\x00\x04host\x02"));
    ck_assert(!HAS_HOST("\x81\xc7\x04\x01host\xa1x")); /* ext 8: not a key's form */
    ck_assert(!HAS_HOST("\x81\xd6\x01host\xa1x"));     /* fixext 4 */
    ck_assert(!HAS_HOST("\x81\xc4\x03hos\xa1x"));
    ck_assert(!HAS_HOST("\x81\xa8hostname\xa1x"));
    ck_assert(!HAS_HOST("\x81\xa1x\xa4host"));          /* a value, not a key */
}
END_TEST

static void put_be32(char *p, size_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

/* A PackedForward frame without entries whose options map is {k: str} with
 * a str of vlen bytes; returns the frame's size. */
static size_t big_options(char *b, size_t vlen)
{
    memcpy(b, "\x93\xa1t\xc4\x00\x81\xa1k\xdb", 9);
    put_be32(b + 9, vlen);
    memset(b + 13, 'x', vlen);
    return 13 + vlen;
}

START_TEST(small_parts_are_capped)
{
    char *b = malloc(LH_FWD_MAX_SMALL + 64);
    struct span_check s;

    /* The map is 8 bytes plus the value: just over, then just at the cap. */
    ck_assert_int_eq(decode(b, big_options(b, LH_FWD_MAX_SMALL - 7), &s), LH_EPROTO);
    ck_assert_int_eq(decode(b, big_options(b, LH_FWD_MAX_SMALL - 8), &s), 0);
    free(b);
}
END_TEST

START_TEST(nil_entries_are_walked_not_unpacked)
{
    /* [tag, [nil x 4M]]: refused at the first entry; unpacking the frame
     * would have cost ~100 MB of objects. */
    size_t count = 4 * MIB, n = 8 + count;
    char *b = malloc(n);
    struct span_check s;

    memcpy(b, "\x92\xa1t\xdd", 4);
    put_be32(b + 4, count);
    memset(b + 8, 0xc0, count);
    ck_assert_int_eq(decode(b, n, &s), LH_EPROTO);
    ck_assert_int_eq(s.n, 0);
    free(b);
}
END_TEST

START_TEST(frame_head_checked_first)
{
    ck_assert_int_eq(lh_fwd_check_head((const uint8_t *)"", 0), LH_AGAIN);
    ck_assert_int_eq(lh_fwd_check_head((const uint8_t *)"\xc0", 1), 0);
    ck_assert_int_eq(lh_fwd_check_head((const uint8_t *)"\x92", 1), LH_AGAIN);
    ck_assert_int_eq(lh_fwd_check_head((const uint8_t *)"\x92\xa1", 2), 0);
    ck_assert_int_eq(lh_fwd_check_head((const uint8_t *)"\x94\xd9", 2), 0);
    ck_assert_int_eq(lh_fwd_check_head((const uint8_t *)"\x92\x01", 2), LH_EPROTO);
    ck_assert_int_eq(lh_fwd_check_head((const uint8_t *)"\x91\xa1", 2), LH_EPROTO);
    ck_assert_int_eq(lh_fwd_check_head((const uint8_t *)"\x95\xa1", 2), LH_EPROTO);
    ck_assert_int_eq(lh_fwd_check_head((const uint8_t *)"\x81\xa1", 2), LH_EPROTO);
    ck_assert_int_eq(lh_fwd_check_head((const uint8_t *)"\xdd\x03\xc0", 3), LH_AGAIN);
    ck_assert_int_eq(lh_fwd_check_head((const uint8_t *)"\xdd\x03\xc0\x00\x00", 5), LH_EPROTO);
    ck_assert_int_eq(lh_fwd_check_head((const uint8_t *)"\xdc\x00\x03\xa1", 4), 0);
}
END_TEST

/* ---- scanner and msgpack-c agree ---------------------------------------- */

static int scan(const char *b, size_t n)
{
    struct lh_mp_scan sc;
    size_t flen;

    lh_mp_scan_init(&sc);
    return lh_mp_scan(&sc, (const uint8_t *)b, n, MIB, &flen);
}

static int unpack(const char *b, size_t n, size_t *used)
{
    msgpack_zone z;
    msgpack_object o;
    int rc;

    *used = 0;
    msgpack_zone_init(&z, 1024);
    rc = msgpack_unpack(b, n, used, &z, &o);
    msgpack_zone_destroy(&z);
    return rc;
}

START_TEST(depth_rule_of_msgpack_c)
{
    char deep[LH_MP_MAX_DEPTH + 2];
    size_t used;

    /* 32 arrays open and then an empty one: msgpack-c refuses any container
     * once 32 are open (fuzz_forward's abort: the scanner took it). */
    memset(deep, 0x91, sizeof(deep));
    deep[LH_MP_MAX_DEPTH] = (char)0x90;
    ck_assert_int_ne(unpack(deep, LH_MP_MAX_DEPTH + 1, &used), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(scan(deep, LH_MP_MAX_DEPTH + 1), LH_EINVAL);
    ck_assert_uint_eq(lh_mp_extent((uint8_t *)deep, LH_MP_MAX_DEPTH + 1), 0);
    deep[LH_MP_MAX_DEPTH] = (char)0x80; /* an empty map too */
    ck_assert_int_ne(unpack(deep, LH_MP_MAX_DEPTH + 1, &used), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(scan(deep, LH_MP_MAX_DEPTH + 1), LH_EINVAL);
    /* 31 open and an empty one is the 32nd: fine for both. */
    deep[LH_MP_MAX_DEPTH - 1] = (char)0x90;
    ck_assert_int_eq(unpack(deep, LH_MP_MAX_DEPTH, &used), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(scan(deep, LH_MP_MAX_DEPTH), 0);
    ck_assert_uint_eq(lh_mp_extent((uint8_t *)deep, LH_MP_MAX_DEPTH), LH_MP_MAX_DEPTH);
}
END_TEST

START_TEST(walk_measures_depth)
{
    char m[63];
    size_t len;

    /* 31 maps one inside the other: {1: {1: ... {1: nil}}}. */
    for (int i = 0; i < 31; i++) {
        m[2 * i] = (char)0x81;
        m[2 * i + 1] = 0x01;
    }
    m[62] = (char)0xc0;
    ck_assert_int_eq(lh_mp_walk((uint8_t *)m, 63, 31, &len), 0);
    ck_assert_uint_eq(len, 63);
    ck_assert_int_eq(lh_mp_walk((uint8_t *)m, 63, 30, &len), LH_ETOOBIG);
    ck_assert_int_eq(lh_mp_walk((uint8_t *)m, 62, 31, &len), LH_EPROTO);
    ck_assert_int_eq(lh_mp_walk((uint8_t *)m, 63, LH_MP_WALK_MAX + 10, &len), 0);
}
END_TEST

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* A byte msgpack-c would not size a huge allocation from: 32-bit array and
 * map counts are left out (it allocates before it has the elements). */
static char rnd_byte(void)
{
    static const char hot[] = "\x90\x91\x92\x9f\x80\x81\x8f\xc0\xc1\xc4\xc5\xc6\xc7\xc8\xc9\xd4"
                              "\xd5\xd8\xd9\xda\xdb\xdc\xde\xa0\xa3\x00\x01\x7f\xe0\xff\xca\xcb";
    uint32_t r = rnd();
    char b = (r & 1) ? hot[(r >> 1) % (sizeof(hot) - 1)] : (char)(r >> 8);

    return b == (char)0xdd || b == (char)0xdf ? (char)0x92 : b;
}

START_TEST(random_inputs_agree)
{
    char b[96];
    size_t used, ext;
    int ur;

    for (int iter = 0; iter < 300000; iter++) {
        size_t n = 1 + rnd() % sizeof(b);
        for (size_t i = 0; i < n; i++)
            b[i] = rnd_byte();
        /* 16-bit counts stay small so msgpack-c's allocations do too. */
        for (size_t i = 0; i + 2 < n; i++)
            if (b[i] == (char)0xdc || b[i] == (char)0xde)
                b[i + 1] = 0;
        ur = unpack(b, n, &used);
        ext = lh_mp_extent((uint8_t *)b, n);
        if (ur == MSGPACK_UNPACK_SUCCESS || ur == MSGPACK_UNPACK_EXTRA_BYTES) {
            ck_assert_uint_eq(ext, used);
        } else {
            ck_assert_uint_eq(ext, 0);
        }
        if (ext > 0) {
            ck_assert_int_eq(scan(b, n), 0);
        }
    }
}
END_TEST

static Suite *raw_suite(void)
{
    Suite *s = suite_create("forward_raw");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, records_are_the_frames_bytes);
    tcase_add_test(tc, times_out_of_range_clamped_in_every_mode);
    tcase_add_test(tc, map_has_key_str_or_bin);
    tcase_add_test(tc, small_parts_are_capped);
    tcase_add_test(tc, nil_entries_are_walked_not_unpacked);
    tcase_add_test(tc, frame_head_checked_first);
    tcase_add_test(tc, depth_rule_of_msgpack_c);
    tcase_add_test(tc, walk_measures_depth);
    tcase_add_test(tc, random_inputs_agree);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(raw_suite());
}
