/* libFuzzer harness: the shared-key handshake. The input is a stream of
 * msgpack frames (each bounded by lh_mp_scan as a connection would; the
 * scanner's verdict must hold for msgpack-c). Each frame is read as a HELO,
 * a PING and a PONG; a HELO that parses must give a PING the server
 * accepts, and that PING a PONG the client accepts. Bad input may be
 * refused, never crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/codec/forward.h"

#define MAX_FRAME (64 * 1024) /* the collector's cap before the handshake */
#define KEY "fuzz key"

static void with_sbuffer(msgpack_sbuffer *sb, msgpack_packer *pk)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

static void unpack_all(const msgpack_sbuffer *sb, msgpack_unpacked *u)
{
    size_t off = 0;

    if (msgpack_unpack_next(u, sb->data, sb->size, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != sb->size)
        abort(); /* we packed it */
}

/* A client answering the fuzzed HELO, and the server checking the answer. */
static void answer_helo(const struct lh_fwd_helo *h)
{
    msgpack_sbuffer sb, pongb;
    msgpack_packer pk, pongpk;
    msgpack_unpacked u;
    struct lh_fwd_ping sent, got;
    const char *why = "";
    char reason[128];

    with_sbuffer(&sb, &pk);
    with_sbuffer(&pongb, &pongpk);
    msgpack_unpacked_init(&u);
    if (lh_fwd_pack_ping(&pk, h, "fuzz-host", KEY, NULL, NULL, &sent) != 0)
        abort();
    unpack_all(&sb, &u);
    if (lh_fwd_check_ping(&u.data, h, KEY, &got, &why) != 0)
        abort(); /* a PING made for this HELO with the right key */
    if (lh_fwd_pack_pong(&pongpk, true, "", "fuzz-server", h, &got, KEY) != 0)
        abort();
    unpack_all(&pongb, &u);
    if (lh_fwd_check_pong(&u.data, h, &sent, KEY, reason, sizeof reason) != 0)
        abort();
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&pongb);
}

static void one_frame(const uint8_t *p, size_t len)
{
    msgpack_unpacked u;
    struct lh_fwd_helo helo, server;
    struct lh_fwd_ping ping;
    const char *why = "";
    char reason[128];
    size_t off = 0;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)p, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len)
        abort(); /* the scanner promised one complete object */
    memset(&helo, 0, sizeof helo);
    if (lh_fwd_parse_helo(&u.data, &helo) == 0)
        answer_helo(&helo);
    if (lh_fwd_helo_init(&server) != 0)
        abort();
    memset(&ping, 0, sizeof ping);
    lh_fwd_check_ping(&u.data, &server, KEY, &ping, &why);
    memset(&ping, 0, sizeof ping);
    lh_fwd_check_pong(&u.data, &server, &ping, KEY, reason, sizeof reason);
    msgpack_unpacked_destroy(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lh_mp_scan sc;
    size_t pos = 0, flen;

    while (pos < size) {
        lh_mp_scan_init(&sc);
        if (lh_mp_scan(&sc, data + pos, size - pos, MAX_FRAME, &flen) != 0)
            break;
        one_frame(data + pos, flen);
        pos += flen;
    }
    return 0;
}
