/* libFuzzer harness: lh_gunzip with its cap, and CompressedPackedForward
 * decoding. The first two bytes choose the cap (up to 64 KiB); the rest is
 * the payload: inflated (never past the cap), gzipped again and inflated
 * back (a round trip), and decoded as the entries of a compressed frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/forward.h"

static int on_event(void *ud, const struct lh_fwd_event *ev)
{
    size_t *n = ud;

    *n += (unsigned char)ev->record[0] + (unsigned char)ev->record[ev->record_len - 1];
    return 0;
}

static void round_trip(const uint8_t *p, size_t n)
{
    char *z = NULL, *back = NULL;
    size_t zlen = 0, blen = 0;

    if (lh_gzip(p, n, &z, &zlen) != 0)
        abort();
    if (lh_gunzip(z, zlen, n, &back, &blen) != 0 || blen != n || (n && memcmp(back, p, n)))
        abort();
    free(z);
    free(back);
}

static void compressed_frame(const uint8_t *z, size_t zlen, size_t max)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct lh_fwd_options o;
    enum lh_fwd_mode mode;
    size_t events = 0;
    int rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (lh_fwd_pack_packed_head(&pk, "fz", 2, zlen) != 0 ||
        msgpack_pack_bin_body(&pk, z, zlen) != 0 || lh_fwd_pack_packed_tail(&pk, 1, "c", 1, true))
        abort();
    rc = lh_fwd_decode((const uint8_t *)sb.data, sb.size, max, on_event, &events, &o, &mode);
    if (rc != 0 && rc != LH_EPROTO && rc != LH_ETOOBIG)
        abort();
    if (mode != LH_FWD_COMPRESSED)
        abort();
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = NULL;
    size_t max, out_len = 0;
    int rc;

    if (size < 2)
        return 0;
    max = (size_t)data[0] << 8 | data[1];
    data += 2;
    size -= 2;
    rc = lh_gunzip(data, size, max, &out, &out_len);
    if (rc == 0) {
        if (out_len > max)
            abort();
        round_trip((const uint8_t *)out, out_len);
        free(out);
    } else if (rc != LH_EPROTO && rc != LH_ETOOBIG) {
        abort();
    }
    compressed_frame(data, size, max);
    return 0;
}
