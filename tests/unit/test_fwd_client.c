/* The Forward client against a fake server on a loopback listener in the
 * same event loop: the shared-key handshake (right key, wrong key, a server
 * that accepts without knowing the key), acks matched by chunk id in any
 * order, the window, the ack timeout, failover across endpoints, the
 * reconnect backoff and its jitter, reply framing. */
#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base/err.h"
#include "common/base/util.h"
#include "common/codec/forward.h"
#include "common/net/fwd_client.h"
#include "tests/unit/lh_check.h"

#define KEY "s3cret-key"
#define MAX_ITEMS 16

/* The fake server: one connection at a time. */
struct srv {
    struct evconnlistener *lev;
    int port;
    const char *key;            /* NULL: no handshake */
    const char *pong_key;       /* signs the PONG digest (normally key) */
    struct bufferevent *bev;
    int accepts;
    int64_t accept_ms;
    bool pinged;
    struct lh_fwd_helo helo;
    struct lh_fwd_ping ping;
    struct lh_mp_scan scan;
    size_t received;            /* bytes after the handshake */
};

/* What the client reported. */
struct rec {
    int ready;
    void *acked[MAX_ITEMS];
    size_t n_acked;
    int fails;
    void *back[MAX_ITEMS];      /* the last fail's items */
    size_t n_back;
    char why[400];
    bool why_null;
    int64_t fail_ms;
};

struct t {
    struct event_base *base;
    struct event *pulse;
    struct srv srv;
    struct rec rec;
    struct lh_fwd_client *c;
    char ids[MAX_ITEMS][LH_CHUNK_ID_LEN + 1];
    int items[MAX_ITEMS];       /* their addresses are the items sent */
};

static void pack_and_write(struct bufferevent *bev, msgpack_sbuffer *sb)
{
    ck_assert_int_eq(bufferevent_write(bev, sb->data, sb->size), 0);
    msgpack_sbuffer_destroy(sb);
}

static void srv_ping(struct srv *s, const msgpack_object *o)
{
    const char *reason = NULL;
    int rc = lh_fwd_check_ping(o, &s->helo, s->key, &s->ping, &reason);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(lh_fwd_pack_pong(&pk, rc == 0, rc == 0 ? "" : reason, "srv", &s->helo,
                                      &s->ping, s->pong_key),
                     0);
    pack_and_write(s->bev, &sb);
    s->pinged = true;
}

static void srv_read(struct bufferevent *bev, void *arg)
{
    struct srv *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (s->key && !s->pinged) {
        size_t len = evbuffer_get_length(in), flen = 0;
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)len);
        if (lh_mp_scan(&s->scan, p, len, 1 << 16, &flen) != 0)
            return;
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        ck_assert_int_eq(msgpack_unpack_next(&u, (const char *)p, flen, &off),
                         MSGPACK_UNPACK_SUCCESS);
        srv_ping(s, &u.data);
        msgpack_unpacked_destroy(&u);
        evbuffer_drain(in, flen);
    }
    s->received += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void srv_event(struct bufferevent *bev, short what, void *arg)
{
    struct srv *s = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bufferevent_free(s->bev);
        s->bev = NULL;
    }
}

static void srv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int n,
                       void *arg)
{
    struct srv *s = arg;
    if (s->bev)
        bufferevent_free(s->bev);
    s->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(s->bev);
    bufferevent_setcb(s->bev, srv_read, NULL, srv_event, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    s->accepts++;
    s->accept_ms = lh_mono_ms();
    s->pinged = false;
    lh_mp_scan_init(&s->scan);
    if (s->key) {
        ck_assert_int_eq(lh_fwd_helo_init(&s->helo), 0);
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        ck_assert_int_eq(lh_fwd_pack_helo(&pk, &s->helo), 0);
        pack_and_write(s->bev, &sb);
    }
}

static void srv_start(struct t *t)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    t->srv.lev = evconnlistener_new_bind(t->base, srv_accept, &t->srv,
                                         LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                         (struct sockaddr *)&sin, sizeof sin);
    ck_assert_ptr_nonnull(t->srv.lev);
    socklen_t sl = sizeof sin;
    getsockname(evconnlistener_get_fd(t->srv.lev), (struct sockaddr *)&sin, &sl);
    t->srv.port = ntohs(sin.sin_port);
}

/* A port nobody listens on: bound, never listened, closed at the end. */
static int dead_port(int *fd)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(*fd, 0);
    ck_assert_int_eq(bind(*fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t sl = sizeof sin;
    getsockname(*fd, (struct sockaddr *)&sin, &sl);
    return ntohs(sin.sin_port);
}

/* ---- the client's callbacks --------------------------------------------- */

static void on_ready(void *ud, struct lh_fwd_client *c)
{
    ((struct t *)ud)->rec.ready++;
}

static void on_ack(void *ud, struct lh_fwd_client *c, void *item)
{
    struct rec *r = &((struct t *)ud)->rec;
    ck_assert_uint_lt(r->n_acked, MAX_ITEMS);
    r->acked[r->n_acked++] = item;
}

static void on_fail(void *ud, struct lh_fwd_client *c, void *const *items, size_t n,
                    const char *why)
{
    struct rec *r = &((struct t *)ud)->rec;
    r->fails++;
    ck_assert_uint_le(n, MAX_ITEMS);
    memcpy(r->back, items, n * sizeof *items);
    r->n_back = n;
    r->why_null = !why;
    snprintf(r->why, sizeof r->why, "%s", why ? why : "");
    r->fail_ms = lh_mono_ms();
}

static const struct lh_fwd_client_cbs cbs = {.ready = on_ready, .ack = on_ack, .fail = on_fail};

/* ---- driving the loop --------------------------------------------------- */

static void on_pulse(evutil_socket_t fd, short what, void *arg)
{
}

static void setup(struct t *t, const char *key, const char *pong_key)
{
    memset(t, 0, sizeof *t);
    t->base = event_base_new();
    ck_assert_ptr_nonnull(t->base);
    t->pulse = event_new(t->base, -1, EV_PERSIST, on_pulse, NULL);
    struct timeval tv = {0, 5000};
    event_add(t->pulse, &tv);
    t->srv.key = key;
    t->srv.pong_key = pong_key;
    srv_start(t);
}

static struct lh_fwd_client_cfg client_cfg(struct t *t, const struct lh_fwd_endpoint *eps,
                                           size_t n, const char *key, size_t window)
{
    return (struct lh_fwd_client_cfg){
        .base = t->base, .endpoints = eps, .n_endpoints = n, .shared_key = key,
        .hostname = "test-host", .ack_timeout_ms = 5000, .max_in_flight = window,
        .backoff_max_ms = 2000, .keepalive = true, .log_name = "test", .peer_kind = "server",
        .cbs = &cbs, .ud = t};
}

static void new_client(struct t *t, const char *key, size_t window)
{
    struct lh_fwd_endpoint ep = {.host = "127.0.0.1", .port = t->srv.port};
    struct lh_fwd_client_cfg cfg = client_cfg(t, &ep, 1, key, window);
    ck_assert_int_eq(lh_fwd_client_new(&cfg, &t->c), 0);
    lh_fwd_client_start(t->c);
}

static void teardown(struct t *t)
{
    lh_fwd_client_free(t->c);
    if (t->srv.bev)
        bufferevent_free(t->srv.bev);
    evconnlistener_free(t->srv.lev);
    event_free(t->pulse);
    event_base_free(t->base);
}

typedef bool (*cond_fn)(struct t *t);

/* Runs the loop until cond holds or ms pass; whether it held. */
static bool run_until(struct t *t, cond_fn cond, int64_t ms)
{
    int64_t end = lh_mono_ms() + ms;
    while (!cond(t) && lh_mono_ms() < end)
        event_base_loop(t->base, EVLOOP_ONCE);
    return cond(t);
}

static bool is_ready(struct t *t)
{
    return t->rec.ready > 0;
}

static bool failed_once(struct t *t)
{
    return t->rec.fails > 0;
}

static bool srv_connected(struct t *t)
{
    return t->srv.bev != NULL;
}

static bool acked_4(struct t *t)
{
    return t->rec.n_acked == 4;
}

static bool acked_1(struct t *t)
{
    return t->rec.n_acked == 1;
}

static bool failed_twice(struct t *t)
{
    return t->rec.fails >= 2;
}

static bool accepted_twice(struct t *t)
{
    return t->srv.accepts >= 2;
}

/* ---- helpers ------------------------------------------------------------ */

static void send_item(struct t *t, int i)
{
    snprintf(t->ids[i], sizeof t->ids[i], "chunk-%018d", i);
    static const char frame[] = "\x93\xa1t\xc4\x00\x81\xa4size\x00";
    struct iovec iov = {(void *)frame, sizeof frame - 1};
    ck_assert_int_eq(lh_fwd_client_send(t->c, t->ids[i], &t->items[i], &iov, 1), LH_OK);
}

static void pack_ack(msgpack_sbuffer *sb, const char *id, size_t len)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    ck_assert_int_eq(lh_fwd_pack_ack(&pk, id, len), 0);
}

static void srv_ack(struct t *t, const char *id, size_t len)
{
    msgpack_sbuffer sb;
    pack_ack(&sb, id, len);
    pack_and_write(t->srv.bev, &sb);
}

/* A plain client connected to the fake server, window chunks wide. */
static void connected(struct t *t, size_t window)
{
    setup(t, NULL, NULL);
    new_client(t, NULL, window);
    ck_assert(run_until(t, is_ready, 5000));
    ck_assert(run_until(t, srv_connected, 5000));
}

/* ---- tests -------------------------------------------------------------- */

START_TEST(handshake_with_the_right_key)
{
    struct t t;
    setup(&t, KEY, KEY);
    new_client(&t, KEY, 4);
    ck_assert(run_until(&t, is_ready, 5000));
    ck_assert(lh_fwd_client_ready(t.c));
    ck_assert_str_eq(t.srv.ping.hostname, "test-host");
    ck_assert_int_eq(t.rec.fails, 0);
    teardown(&t);
}
END_TEST

START_TEST(handshake_refused_for_a_wrong_key)
{
    struct t t;
    setup(&t, "the server's key", "the server's key");
    new_client(&t, KEY, 4);
    ck_assert(run_until(&t, failed_once, 5000));
    ck_assert_int_eq(t.rec.ready, 0);
    ck_assert_ptr_nonnull(strstr(t.rec.why, "shared-key handshake failed"));
    ck_assert_int_eq(lh_fwd_client_state(t.c), LH_FWD_IDLE);
    teardown(&t);
}
END_TEST

/* A server that answers "ok" without knowing the key: its digest is wrong. */
START_TEST(handshake_refused_for_a_wrong_server_digest)
{
    struct t t;
    setup(&t, KEY, "not the key");
    new_client(&t, KEY, 4);
    ck_assert(run_until(&t, failed_once, 5000));
    ck_assert_int_eq(t.rec.ready, 0);
    ck_assert_ptr_nonnull(strstr(t.rec.why, "shared-key handshake failed"));
    teardown(&t);
}
END_TEST

START_TEST(a_handshake_the_client_did_not_expect_fails)
{
    struct t t;
    setup(&t, KEY, KEY);
    new_client(&t, NULL, 4);
    ck_assert(run_until(&t, failed_once, 5000));
    ck_assert_ptr_nonnull(strstr(t.rec.why, "wants a shared-key handshake"));
    teardown(&t);
}
END_TEST

START_TEST(acks_out_of_order_match_their_chunks)
{
    struct t t;
    connected(&t, 4);
    for (int i = 0; i < 4; i++)
        send_item(&t, i);
    ck_assert_uint_eq(lh_fwd_client_in_flight(t.c), 4);
    srv_ack(&t, "no-such-chunk-0000000000", LH_CHUNK_ID_LEN);
    srv_ack(&t, "short", 5);
    static const int order[4] = {2, 0, 3, 1};
    for (int i = 0; i < 4; i++)
        srv_ack(&t, t.ids[order[i]], LH_CHUNK_ID_LEN);
    ck_assert(run_until(&t, acked_4, 5000));
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_eq(t.rec.acked[i], &t.items[order[i]]);
    ck_assert_uint_eq(lh_fwd_client_in_flight(t.c), 0);
    ck_assert_int_eq(t.rec.fails, 0);
    teardown(&t);
}
END_TEST

START_TEST(a_full_window_takes_nothing_until_an_ack)
{
    struct t t;
    connected(&t, 2);
    send_item(&t, 0);
    ck_assert(lh_fwd_client_has_room(t.c));
    send_item(&t, 1);
    ck_assert(!lh_fwd_client_has_room(t.c));
    struct iovec iov = {"x", 1};
    ck_assert_int_eq(lh_fwd_client_send(t.c, t.ids[1], &t.items[2], &iov, 1), LH_EINVAL);
    ck_assert_uint_eq(lh_fwd_client_in_flight(t.c), 2);
    srv_ack(&t, t.ids[1], LH_CHUNK_ID_LEN);
    ck_assert(run_until(&t, acked_1, 5000));
    ck_assert_ptr_eq(t.rec.acked[0], &t.items[1]);
    ck_assert(lh_fwd_client_has_room(t.c));
    teardown(&t);
}
END_TEST

/* An ack split over writes, a byte at a time, is still one ack. */
START_TEST(an_ack_in_pieces_is_framed)
{
    struct t t;
    connected(&t, 4);
    send_item(&t, 0);
    msgpack_sbuffer sb;
    pack_ack(&sb, t.ids[0], LH_CHUNK_ID_LEN);
    for (size_t i = 0; i < sb.size; i++) {
        bufferevent_write(t.srv.bev, sb.data + i, 1);
        bufferevent_flush(t.srv.bev, EV_WRITE, BEV_FLUSH);
        event_base_loop(t.base, EVLOOP_NONBLOCK);
    }
    msgpack_sbuffer_destroy(&sb);
    ck_assert(run_until(&t, acked_1, 5000));
    ck_assert_int_eq(t.rec.fails, 0);
    teardown(&t);
}
END_TEST

START_TEST(a_reply_past_its_bound_fails_the_connection)
{
    struct t t;
    connected(&t, 4);
    send_item(&t, 0);
    /* The head of a 1 MiB str: never complete within 64 KiB. */
    char big[80 * 1024] = {(char)0xdb, 0, 0x10};
    bufferevent_write(t.srv.bev, big, sizeof big);
    ck_assert(run_until(&t, failed_once, 5000));
    ck_assert_ptr_nonnull(strstr(t.rec.why, "malformed reply"));
    ck_assert_uint_eq(t.rec.n_back, 1);
    ck_assert_ptr_eq(t.rec.back[0], &t.items[0]);
    teardown(&t);
}
END_TEST

/* No ack within ack_timeout: the window comes back oldest first, and the
 * reconnect waits the first backoff, 500 ms jittered into [250, 500]. */
START_TEST(ack_timeout_hands_back_and_reconnects_after_backoff)
{
    struct t t;
    setup(&t, NULL, NULL);
    struct lh_fwd_endpoint ep = {.host = "127.0.0.1", .port = t.srv.port};
    struct lh_fwd_client_cfg cfg = client_cfg(&t, &ep, 1, NULL, 4);
    cfg.ack_timeout_ms = 200;
    ck_assert_int_eq(lh_fwd_client_new(&cfg, &t.c), 0);
    lh_fwd_client_start(t.c);
    ck_assert(run_until(&t, is_ready, 5000));
    ck_assert(run_until(&t, srv_connected, 5000));
    int64_t sent = lh_mono_ms();
    for (int i = 0; i < 3; i++)
        send_item(&t, i);
    srv_ack(&t, t.ids[1], LH_CHUNK_ID_LEN);
    ck_assert(run_until(&t, failed_once, 5000));
    ck_assert_int_ge(t.rec.fail_ms - sent, 200);
    ck_assert_int_lt(t.rec.fail_ms - sent, 1000);
    ck_assert_ptr_nonnull(strstr(t.rec.why, "no ack for chunk"));
    ck_assert_uint_eq(t.rec.n_back, 2);
    ck_assert_ptr_eq(t.rec.back[0], &t.items[0]);
    ck_assert_ptr_eq(t.rec.back[1], &t.items[2]);
    ck_assert_uint_eq(lh_fwd_client_in_flight(t.c), 0);
    ck_assert(run_until(&t, accepted_twice, 5000));
    int64_t waited = t.srv.accept_ms - t.rec.fail_ms;
    ck_assert_int_ge(waited, 240);
    ck_assert_int_le(waited, 700);
    teardown(&t);
}
END_TEST

/* A dead first endpoint: the next is tried at once, no backoff. */
START_TEST(failover_tries_the_next_endpoint_at_once)
{
    struct t t;
    setup(&t, NULL, NULL);
    int fd;
    struct lh_fwd_endpoint eps[2] = {{.host = "127.0.0.1", .port = dead_port(&fd)},
                                     {.host = "127.0.0.1", .port = t.srv.port}};
    struct lh_fwd_client_cfg cfg = client_cfg(&t, eps, 2, NULL, 4);
    cfg.keepalive = false;
    ck_assert_int_eq(lh_fwd_client_new(&cfg, &t.c), 0);
    int64_t start = lh_mono_ms();
    lh_fwd_client_kick(t.c);
    ck_assert(run_until(&t, failed_once, 5000));
    /* Not keepalive: the next connect waits for a kick. */
    lh_fwd_client_kick(t.c);
    ck_assert(run_until(&t, is_ready, 5000));
    ck_assert_int_lt(lh_mono_ms() - start, 200);
    char peer[64];
    snprintf(peer, sizeof peer, "127.0.0.1:%d", t.srv.port);
    ck_assert_str_eq(lh_fwd_client_peer(t.c), peer);
    close(fd);
    teardown(&t);
}
END_TEST

START_TEST(without_keepalive_no_reconnect_unless_kicked)
{
    struct t t;
    setup(&t, NULL, NULL);
    int fd;
    struct lh_fwd_endpoint ep = {.host = "127.0.0.1", .port = dead_port(&fd)};
    struct lh_fwd_client_cfg cfg = client_cfg(&t, &ep, 1, NULL, 4);
    cfg.keepalive = false;
    ck_assert_int_eq(lh_fwd_client_new(&cfg, &t.c), 0);
    lh_fwd_client_kick(t.c);
    ck_assert(run_until(&t, failed_once, 5000));
    ck_assert(!run_until(&t, failed_twice, 1200));
    ck_assert_int_eq(t.rec.fails, 1);
    close(fd);
    teardown(&t);
}
END_TEST

START_TEST(free_hands_the_window_back)
{
    struct t t;
    connected(&t, 4);
    send_item(&t, 0);
    send_item(&t, 1);
    lh_fwd_client_free(t.c);
    t.c = NULL;
    ck_assert_int_eq(t.rec.fails, 1);
    ck_assert(t.rec.why_null);
    ck_assert_uint_eq(t.rec.n_back, 2);
    ck_assert_ptr_eq(t.rec.back[0], &t.items[0]);
    ck_assert_ptr_eq(t.rec.back[1], &t.items[1]);
    teardown(&t);
}
END_TEST

START_TEST(send_owned_frees_what_it_took)
{
    struct t t;
    connected(&t, 1);
    snprintf(t.ids[0], sizeof t.ids[0], "chunk-%018d", 0);
    char *frame = strdup("\xc0");
    ck_assert_int_eq(lh_fwd_client_send_owned(t.c, t.ids[0], &t.items[0], frame, 1), LH_OK);
    /* The window is full: refused, and the frame freed all the same. */
    ck_assert_int_eq(lh_fwd_client_send_owned(t.c, t.ids[0], &t.items[1], strdup("\xc0"), 1),
                     LH_EINVAL);
    teardown(&t);
}
END_TEST

START_TEST(backoff_doubles_within_its_jitter_bounds)
{
    /* While endpoints of the round are left: no wait. */
    ck_assert_int_eq(lh_fwd_client_backoff_ms(1, 3, 30000), 0);
    ck_assert_int_eq(lh_fwd_client_backoff_ms(2, 3, 30000), 0);
    bool varied = false;
    for (unsigned fails = 1; fails <= 10; fails++) {
        int64_t d = 500;
        for (unsigned i = 1; i < fails; i++)
            d *= 2;
        if (d > 8000)
            d = 8000;
        int64_t first = -1;
        for (int k = 0; k < 50; k++) {
            int64_t w = lh_fwd_client_backoff_ms(fails, 1, 8000);
            ck_assert_int_ge(w, d / 2);
            ck_assert_int_le(w, d);
            if (first >= 0 && w != first)
                varied = true;
            first = w;
        }
        /* Three endpoints: the same wait, two failures later. */
        int64_t w3 = lh_fwd_client_backoff_ms(fails + 2, 3, 8000);
        ck_assert_int_ge(w3, d / 2);
        ck_assert_int_le(w3, d);
    }
    ck_assert(varied);
}
END_TEST

START_TEST(bad_configurations_are_refused)
{
    struct t t;
    setup(&t, NULL, NULL);
    struct lh_fwd_endpoint ep = {.host = "127.0.0.1", .port = t.srv.port};
    struct lh_fwd_client_cfg cfg = client_cfg(&t, &ep, 1, NULL, 0);
    ck_assert_int_eq(lh_fwd_client_new(&cfg, &t.c), LH_EINVAL);
    cfg = client_cfg(&t, &ep, 0, NULL, 4);
    ck_assert_int_eq(lh_fwd_client_new(&cfg, &t.c), LH_EINVAL);
    cfg = client_cfg(&t, &ep, 1, NULL, 4);
    cfg.backoff_max_ms = 100;
    ck_assert_int_eq(lh_fwd_client_new(&cfg, &t.c), LH_EINVAL);
    ck_assert_ptr_null(t.c);
    teardown(&t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("fwd_client");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, handshake_with_the_right_key);
    tcase_add_test(tc, handshake_refused_for_a_wrong_key);
    tcase_add_test(tc, handshake_refused_for_a_wrong_server_digest);
    tcase_add_test(tc, a_handshake_the_client_did_not_expect_fails);
    tcase_add_test(tc, acks_out_of_order_match_their_chunks);
    tcase_add_test(tc, a_full_window_takes_nothing_until_an_ack);
    tcase_add_test(tc, an_ack_in_pieces_is_framed);
    tcase_add_test(tc, a_reply_past_its_bound_fails_the_connection);
    tcase_add_test(tc, ack_timeout_hands_back_and_reconnects_after_backoff);
    tcase_add_test(tc, failover_tries_the_next_endpoint_at_once);
    tcase_add_test(tc, without_keepalive_no_reconnect_unless_kicked);
    tcase_add_test(tc, free_hands_the_window_back);
    tcase_add_test(tc, send_owned_frees_what_it_took);
    tcase_add_test(tc, backoff_doubles_within_its_jitter_bounds);
    tcase_add_test(tc, bad_configurations_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(suite());
}
