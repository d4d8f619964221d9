/* The ingest seam in process: the Forward listener on loopback, real
 * commit and dedup, a fake store (completing at once or when the test
 * says) and fake outputs. Dedup with the store on and off, outputs before
 * the store, the ack only after done, a resend while the first copy is
 * being committed, and a connection gone before done. */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <limits.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "collector/ingest/commit.h"
#include "collector/ingest/dedup.h"
#include "collector/ingest/in_forward.h"
#include "collector/ingest/in_forward_int.h"
#include "common/base/err.h"
#include "common/base/util.h"
#include "common/codec/record.h"
#include "common/net/net.h"
#include "tests/unit/lh_check.h"

#define HOUR (3600 * LH_NS_PER_SEC)
#define MAX_PENDING 8

/* ---- fakes -------------------------------------------------------------- */

struct fakestore {
    struct lh_store base;
    bool later;                    /* complete appends when the test says */
    int appended;                  /* batches completed durably */
    int fail;                      /* status of the next completions */
    size_t n_pending;
    struct { lh_store_done_cb done; void *ud; } pending[MAX_PENDING];
};

static int fake_append(struct lh_store *base, const struct lh_store_batch *b,
                       lh_store_done_cb done, void *ud)
{
    struct fakestore *s = (struct fakestore *)base;
    (void)b;
    if (!s->later) {
        s->appended += s->fail == 0;
        done(ud, s->fail);
        return 0;
    }
    ck_assert_uint_lt(s->n_pending, MAX_PENDING);
    s->pending[s->n_pending].done = done;
    s->pending[s->n_pending++].ud = ud;
    return 0;
}

static int fake_tail(struct lh_store *base, const struct lh_store_pos *from,
                     lh_store_chunk_cb cb, void *ud, struct lh_store_pos *end)
{
    struct fakestore *s = (struct fakestore *)base;
    (void)from, (void)cb, (void)ud;
    *end = (struct lh_store_pos){1, s->appended};
    return 0;
}

static const struct lh_store_ops fake_ops = {.name = "fake", .append = fake_append,
                                             .tail = fake_tail};

/* Completes the oldest pending append. */
static void complete_one(struct fakestore *s, int status)
{
    ck_assert_uint_gt(s->n_pending, 0);
    lh_store_done_cb done = s->pending[0].done;
    void *ud = s->pending[0].ud;
    memmove(s->pending, s->pending + 1, --s->n_pending * sizeof *s->pending);
    s->appended += status == 0;
    done(ud, status);
}

struct fakeouts {
    int writes;
    int fail;                      /* returned by write */
};

static int fake_write(void *ud, const struct lh_coll_batch *b)
{
    struct fakeouts *o = ud;
    ck_assert_uint_eq(b->n_events, 1);
    if (o->fail)
        return o->fail;
    o->writes++;
    return 0;
}

/* ---- the rig ------------------------------------------------------------ */

struct rig {
    char dir[PATH_MAX];
    struct event_base *base;
    struct lh_metrics *metrics;
    struct fakestore store;
    struct fakeouts outs;
    struct lh_commit_outputs port;
    struct lh_dedup *dedup;
    struct lh_commit *commit;
    struct lh_forward_listen_cfg cfg;
    struct lh_in_forward *fwd;
    int port_no;
};

static struct rig R;

static void rig_up(bool store_on, bool later)
{
    memset(&R, 0, sizeof R);
    lh_test_mkdtemp(R.dir, sizeof R.dir, "test_ingest");
    R.base = event_base_new();
    R.metrics = lh_metrics_new();
    R.store = (struct fakestore){.base = {&fake_ops}, .later = later};
    R.port = (struct lh_commit_outputs){fake_write, &R.outs};
    struct lh_store *store = store_on ? &R.store.base : NULL;
    char path[PATH_MAX + 16], err[512] = "";
    snprintf(path, sizeof path, "%s/dedup.idx", R.dir);
    const struct lh_dedup_opts dopts = {path, HOUR, store, R.metrics};
    ck_assert_int_eq(lh_dedup_open(&dopts, &R.dedup, err, sizeof err), 0);
    const struct lh_commit_opts copts = {R.dedup, &R.port, store, R.metrics};
    ck_assert_int_eq(lh_commit_new(&copts, &R.commit), 0);
    R.cfg = (struct lh_forward_listen_cfg){
        .address = "127.0.0.1:0", .max_frame = 1 << 20, .max_decompressed = 1 << 20,
        .handshake_timeout_ms = 5000, .frame_timeout_ms = 5000, .max_connections = 16,
        .max_connection_memory = 8 << 20, .max_memory = 64 << 20};
    int rc = lh_in_forward_new(R.base, &R.cfg, R.commit, R.metrics, &R.fwd, err, sizeof err);
    ck_assert_msg(rc == 0, "listener: %s", err);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    ck_assert_int_eq(getsockname(evconnlistener_get_fd(R.fwd->lev), (struct sockaddr *)&sa,
                                 &len), 0);
    R.port_no = ntohs(sa.sin_port);
}

static void rig_down(void)
{
    lh_in_forward_free(R.fwd);
    lh_commit_free(R.commit);
    lh_dedup_close(R.dedup);
    lh_metrics_free(R.metrics);
    event_base_free(R.base);
    lh_test_rmrf(R.dir);
}

/* One turn of the loop, waiting at most 10 ms for something to happen. */
static void turn(void)
{
    struct timeval tv = {0, 10000};
    event_base_loopexit(R.base, &tv);
    event_base_dispatch(R.base);
}

static int connect_client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)R.port_no),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Writes all of data, turning the loop while the socket is full. */
static void send_all(int fd, const char *data, size_t len)
{
    for (int i = 0; len > 0 && i < 1000; i++) {
        ssize_t n = send(fd, data, len, MSG_DONTWAIT);
        if (n < 0) {
            ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
            turn();
            continue;
        }
        data += n;
        len -= (size_t)n;
    }
    ck_assert_uint_eq(len, 0);
}

/* A Message-mode frame [tag, time, {message}, {chunk}]. */
static void send_message(int fd, const char *chunk, const char *message)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    lh_pack_cstr(&pk, "app.web");
    msgpack_pack_int64(&pk, 1700000000);
    msgpack_pack_map(&pk, 1);
    lh_pack_cstr(&pk, "message");
    lh_pack_cstr(&pk, message);
    msgpack_pack_map(&pk, 1);
    lh_pack_cstr(&pk, "chunk");
    lh_pack_cstr(&pk, chunk);
    send_all(fd, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void send_frame(int fd, const char *chunk)
{
    send_message(fd, chunk, "hello");
}

/* What the client has received so far: acks counted into *acks; true
 * once the collector closed the connection. */
struct client {
    int fd;
    msgpack_unpacker up;
    int acks;
    bool closed;
};

static void client_open(struct client *c)
{
    memset(c, 0, sizeof *c);
    c->fd = connect_client();
    ck_assert(msgpack_unpacker_init(&c->up, 4096));
}

static void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    msgpack_unpacker_destroy(&c->up);
}

static void client_poll(struct client *c)
{
    msgpack_unpacker_reserve_buffer(&c->up, 4096);
    ssize_t n = recv(c->fd, msgpack_unpacker_buffer(&c->up), 4096, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        c->closed = true;
        return;
    }
    if (n < 0)
        return;
    msgpack_unpacker_buffer_consumed(&c->up, (size_t)n);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    while (msgpack_unpacker_next(&c->up, &u) == MSGPACK_UNPACK_SUCCESS)
        c->acks += u.data.type == MSGPACK_OBJECT_MAP;
    msgpack_unpacked_destroy(&u);
}

/* Turns the loop until the client has `acks` acks or was closed, for at
 * most about two seconds. */
static void wait_acks(struct client *c, int acks)
{
    for (int i = 0; i < 200 && c->acks < acks && !c->closed; i++) {
        turn();
        client_poll(c);
    }
}

/* Turns the loop until the store holds an append to complete. */
static void wait_pending(void)
{
    for (int i = 0; i < 200 && R.store.n_pending == 0; i++)
        turn();
}

/* A new connection sends chunk once and waits for its ack. */
static void send_on_new_connection(const char *chunk)
{
    struct client c;
    client_open(&c);
    send_frame(c.fd, chunk);
    if (R.store.later) {
        wait_pending();
        complete_one(&R.store, 0);
    }
    wait_acks(&c, 1);
    ck_assert_int_eq(c.acks, 1);
    client_close(&c);
}

/* Turns the loop a while (nothing expected to arrive). */
static void settle(struct client *c)
{
    for (int i = 0; i < 20; i++) {
        turn();
        if (c)
            client_poll(c);
    }
}

/* ---- tests -------------------------------------------------------------- */

/* A resend is acked again and written nowhere twice, with the store on
 * (_i 0) and off (_i 1: the outputs are the durable end). */
START_TEST(resend_acked_once_written_once)
{
    bool store_on = _i == 0;
    rig_up(store_on, false);
    struct client c;
    client_open(&c);
    send_frame(c.fd, "chunk-1");
    wait_acks(&c, 1);
    send_frame(c.fd, "chunk-1");
    wait_acks(&c, 2);
    ck_assert_int_eq(c.acks, 2);
    ck_assert_int_eq(R.store.appended, store_on ? 1 : 0);
    ck_assert_int_eq(R.outs.writes, 1);
    client_close(&c);
    rig_down();
}
END_TEST

/* A failing output: no store append, no ack (the connection closes); the
 * resend once the output works again is stored and acked. */
START_TEST(failing_output_means_no_store_no_ack)
{
    rig_up(true, false);
    R.outs.fail = LH_EIO;
    struct client c;
    client_open(&c);
    send_frame(c.fd, "chunk-1");
    wait_acks(&c, 1);
    ck_assert(c.closed);
    ck_assert_int_eq(c.acks, 0);
    ck_assert_int_eq(R.store.appended, 0);
    client_close(&c);
    R.outs.fail = 0;
    send_on_new_connection("chunk-1");
    ck_assert_int_eq(R.store.appended, 1);
    ck_assert_int_eq(R.outs.writes, 1);
    rig_down();
}
END_TEST

/* A failing store append: not acked, and the chunk is not remembered, so
 * the resend is stored. */
START_TEST(failing_store_means_no_ack)
{
    rig_up(true, true);
    struct client c;
    client_open(&c);
    send_frame(c.fd, "chunk-1");
    wait_pending();
    complete_one(&R.store, LH_EIO);
    wait_acks(&c, 1);
    ck_assert(c.closed);
    ck_assert_int_eq(c.acks, 0);
    client_close(&c);
    send_on_new_connection("chunk-1");
    ck_assert_int_eq(R.store.appended, 1);
    rig_down();
}
END_TEST

/* The store completes later: no ack before its done, the ack after. */
START_TEST(ack_only_after_done)
{
    rig_up(true, true);
    struct client c;
    client_open(&c);
    send_frame(c.fd, "chunk-1");
    wait_pending();
    ck_assert_uint_eq(R.store.n_pending, 1);
    settle(&c);
    ck_assert_int_eq(c.acks, 0);
    ck_assert(!c.closed);
    complete_one(&R.store, 0);
    wait_acks(&c, 1);
    ck_assert_int_eq(c.acks, 1);
    /* reading went on after the commit: the next frame is committed too */
    send_frame(c.fd, "chunk-2");
    wait_pending();
    complete_one(&R.store, 0);
    wait_acks(&c, 2);
    ck_assert_int_eq(c.acks, 2);
    client_close(&c);
    rig_down();
}
END_TEST

/* Frames sent together while the first is being committed wait their
 * turn, in the connection's buffer. */
START_TEST(frames_behind_a_commit_wait)
{
    rig_up(true, true);
    struct client c;
    client_open(&c);
    send_frame(c.fd, "chunk-1");
    send_frame(c.fd, "chunk-2");
    wait_pending();
    settle(&c);
    ck_assert_uint_eq(R.store.n_pending, 1);
    complete_one(&R.store, 0);
    wait_pending();
    ck_assert_uint_eq(R.store.n_pending, 1);
    complete_one(&R.store, 0);
    wait_acks(&c, 2);
    ck_assert_int_eq(c.acks, 2);
    ck_assert_int_eq(R.store.appended, 2);
    client_close(&c);
    rig_down();
}
END_TEST

/* A resend on another connection while the first copy is in the store:
 * it waits for that outcome, is never written twice, and both are acked. */
START_TEST(resend_during_commit_shares_its_outcome)
{
    rig_up(true, true);
    struct client a, b;
    client_open(&a);
    client_open(&b);
    send_frame(a.fd, "chunk-1");
    wait_pending();
    send_frame(b.fd, "chunk-1");
    settle(&b);
    ck_assert_uint_eq(R.store.n_pending, 1);
    ck_assert_int_eq(R.outs.writes, 1);
    complete_one(&R.store, 0);
    wait_acks(&a, 1);
    wait_acks(&b, 1);
    ck_assert_int_eq(a.acks, 1);
    ck_assert_int_eq(b.acks, 1);
    ck_assert_int_eq(R.store.appended, 1);
    client_close(&a);
    client_close(&b);
    rig_down();
}
END_TEST

/* The sender goes while its batch is in the store: done comes later and
 * must touch nothing of the freed connection (ASan watches). */
START_TEST(connection_gone_before_done)
{
    rig_up(true, true);
    struct client c;
    client_open(&c);
    send_frame(c.fd, "chunk-1");
    wait_pending();
    ck_assert_uint_eq(R.store.n_pending, 1);
    client_close(&c);
    for (int i = 0; i < 200 && R.fwd->conns; i++)
        turn();
    ck_assert_ptr_null(R.fwd->conns);
    complete_one(&R.store, 0);
    settle(NULL);
    /* durable all the same: a resend is acked without a second copy */
    client_open(&c);
    send_frame(c.fd, "chunk-1");
    wait_acks(&c, 1);
    ck_assert_int_eq(c.acks, 1);
    ck_assert_int_eq(R.store.appended, 1);
    ck_assert_uint_eq(R.store.n_pending, 0);
    client_close(&c);
    rig_down();
}
END_TEST

/* The listener freed (shutdown) while a commit is out: same. */
START_TEST(listener_freed_before_done)
{
    rig_up(true, true);
    struct client c;
    client_open(&c);
    send_frame(c.fd, "chunk-1");
    wait_pending();
    lh_in_forward_free(R.fwd);
    R.fwd = NULL;
    complete_one(&R.store, 0);
    client_close(&c);
    rig_down();
}
END_TEST

/* max_connections has one owner, the accept gate: a pause after a failed
 * accept() that ends while the listener is full does not let one more in. */
START_TEST(max_connections_hold_across_an_accept_pause)
{
    rig_up(true, false);
    struct client c[17];
    for (int i = 0; i < 16; i++) {
        char chunk[16];
        snprintf(chunk, sizeof chunk, "open-%d", i);
        client_open(&c[i]);
        send_frame(c[i].fd, chunk);
        wait_acks(&c[i], 1);
        ck_assert_int_eq(c[i].acks, 1);
    }
    errno = EMFILE;
    lh_net_gate_accept_failed(R.fwd->gate);
    for (int i = 0; i < 40; i++) /* past LH_NET_ACCEPT_RETRY_MS */
        turn();
    client_open(&c[16]);
    send_frame(c[16].fd, "waiting");
    wait_acks(&c[16], 1);
    ck_assert_int_eq(c[16].acks, 0);
    client_close(&c[0]);
    wait_acks(&c[16], 1);
    ck_assert_int_eq(c[16].acks, 1);
    for (int i = 1; i < 17; i++)
        client_close(&c[i]);
    rig_down();
}
END_TEST

/* A batch commit copies for a store completing later counts against
 * max_memory until the store is done: another connection waits for it. */
START_TEST(a_copy_for_a_later_store_counts_against_max_memory)
{
    rig_up(true, true);
    char *big = malloc(900 * 1024), *small = malloc(200 * 1024);
    ck_assert(big && small);
    memset(big, 'b', 900 * 1024 - 1);
    big[900 * 1024 - 1] = '\0';
    memset(small, 's', 200 * 1024 - 1);
    small[200 * 1024 - 1] = '\0';
    struct client a, b;
    client_open(&a);
    send_message(a.fd, "big", big);
    wait_pending();
    ck_assert_uint_eq(R.store.n_pending, 1);
    ck_assert_uint_ge(lh_commit_held(R.commit), 900 * 1024);
    R.cfg.max_memory = 1 << 20; /* read at each use: room for the copy, not for b too */
    client_open(&b);
    send_message(b.fd, "small", small);
    for (int i = 0; i < 30; i++)
        turn();
    ck_assert_uint_eq(R.store.n_pending, 1);
    complete_one(&R.store, 0);
    ck_assert_uint_eq(lh_commit_held(R.commit), 0);
    wait_acks(&a, 1);
    ck_assert_int_eq(a.acks, 1);
    wait_pending();
    ck_assert_uint_eq(R.store.n_pending, 1);
    complete_one(&R.store, 0);
    wait_acks(&b, 1);
    ck_assert_int_eq(b.acks, 1);
    client_close(&a);
    client_close(&b);
    free(big);
    free(small);
    rig_down();
}
END_TEST

/* Connections waiting for memory read again in the order they paused: a
 * newer one does not take the room an older one waits for. */
START_TEST(paused_connections_resume_first_come_first)
{
    rig_up(true, true);
    char *msg = malloc(3000);
    ck_assert_ptr_nonnull(msg);
    memset(msg, 'm', 2999); /* a frame libevent reads at once */
    msg[2999] = '\0';
    struct client older, newer;
    client_open(&older);
    for (int i = 0; i < 100 && !R.fwd->conns; i++)
        turn();
    client_open(&newer);
    for (int i = 0; i < 100 && !(R.fwd->conns && R.fwd->conns->next); i++)
        turn();
    struct conn *nc = R.fwd->conns, *oc = nc->next; /* newest first */
    R.cfg.max_memory = 1;
    send_message(older.fd, "o", msg);
    for (int i = 0; i < 100 && !oc->paused; i++)
        turn();
    send_message(newer.fd, "n", msg);
    for (int i = 0; i < 100 && !nc->paused; i++)
        turn();
    ck_assert(oc->paused && nc->paused);
    ck_assert_uint_eq(oc->want, nc->want);
    /* Room for one of them to read its frame (and have it held for the store). */
    R.cfg.max_memory = (int64_t)(R.fwd->held + oc->want);
    event_active(R.fwd->resume_ev, EV_TIMEOUT, 0);
    for (int i = 0; i < 10; i++)
        turn();
    ck_assert_uint_eq(R.store.n_pending, 1);
    complete_one(&R.store, 0);
    wait_acks(&older, 1);
    client_poll(&newer);
    ck_assert_int_eq(older.acks, 1);
    ck_assert_int_eq(newer.acks, 0);
    R.cfg.max_memory = 64 << 20;
    wait_pending();
    complete_one(&R.store, 0);
    wait_acks(&newer, 1);
    ck_assert_int_eq(newer.acks, 1);
    client_close(&older);
    client_close(&newer);
    free(msg);
    rig_down();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ingest");
    TCase *tc = tcase_create("seam");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, resend_acked_once_written_once, 0, 2);
    tcase_add_test(tc, failing_output_means_no_store_no_ack);
    tcase_add_test(tc, failing_store_means_no_ack);
    tcase_add_test(tc, ack_only_after_done);
    tcase_add_test(tc, frames_behind_a_commit_wait);
    tcase_add_test(tc, resend_during_commit_shares_its_outcome);
    tcase_add_test(tc, connection_gone_before_done);
    tcase_add_test(tc, listener_freed_before_done);
    tcase_add_test(tc, max_connections_hold_across_an_accept_pause);
    tcase_add_test(tc, a_copy_for_a_later_store_counts_against_max_memory);
    tcase_add_test(tc, paused_connections_resume_first_come_first);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return lh_test_run(suite());
}
