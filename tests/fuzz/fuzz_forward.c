/* libFuzzer harness: the input is a connection's byte stream. Each frame is
 * bounded by lh_mp_scan, must unpack with msgpack-c (scanner and decoder
 * agree), and is decoded from its bytes in every Forward mode; the first
 * two bytes also choose the arrival chunk size so resumed scans are
 * exercised. Bad input may be refused, never crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/forward.h"

#define MAX_FRAME (1u << 20)
#define MAX_INFLATED (1u << 20)

/* A record within msgpack-c's depth must unpack to exactly its bytes: the
 * walker and msgpack-c agree (the store reads records back with it). */
static void check_record(const struct lh_fwd_event *ev)
{
    msgpack_zone zone;
    msgpack_object o;
    size_t len, off = 0;

    if (lh_mp_walk((const uint8_t *)ev->record, ev->record_len, LH_MP_MAX_DEPTH, &len) != 0)
        return;
    if (len != ev->record_len || !msgpack_zone_init(&zone, 1024))
        abort();
    if (msgpack_unpack(ev->record, len, &off, &zone, &o) != MSGPACK_UNPACK_SUCCESS || off != len ||
        o.type != MSGPACK_OBJECT_MAP)
        abort();
    msgpack_zone_destroy(&zone);
}

static int on_event(void *ud, const struct lh_fwd_event *ev)
{
    size_t *n = ud;

    /* Touch what a consumer reads so ASan sees any stale pointer. */
    if (ev->tag_len > 0)
        *n += (unsigned char)ev->tag[ev->tag_len - 1];
    *n += (unsigned char)ev->record[0] + (unsigned char)ev->record[ev->record_len - 1];
    check_record(ev);
    return 0;
}

/* Scans one frame, revealing the stream step bytes at a time as a socket
 * would. Returns the scan result; *flen is set on 0. */
static int scan_frame(const uint8_t *p, size_t len, size_t step, size_t *flen)
{
    struct lh_mp_scan sc;
    size_t avail = 0;
    int rc;

    lh_mp_scan_init(&sc);
    do {
        avail = len - avail < step ? len : avail + step;
        rc = lh_mp_scan(&sc, p, avail, MAX_FRAME, flen);
    } while (rc == LH_AGAIN && avail < len);
    return rc;
}

static void decode_frame(const uint8_t *p, size_t flen)
{
    msgpack_unpacked u;
    struct lh_fwd_options opts;
    enum lh_fwd_mode mode;
    size_t off = 0, events = 0;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)p, flen, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != flen)
        abort(); /* the scanner promised one complete object */
    msgpack_unpacked_destroy(&u);
    lh_fwd_decode(p, flen, MAX_INFLATED, on_event, &events, &opts, &mode);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 2, flen, step;

    if (size < 2)
        return 0;
    step = 1 + ((size_t)data[0] << 8 | data[1]);
    while (pos < size) {
        if (scan_frame(data + pos, size - pos, step, &flen) != 0)
            break;
        decode_frame(data + pos, flen);
        pos += flen;
    }
    return 0;
}
