"""The collector's Forward listener under hostile or mistaken clients: no
client certificate on an mTLS port, a wrong shared key (from a hand-made
client and from a real agent), garbage bytes, an oversized frame. Each
closes only the offending connection; a well-behaved one carries on and its
batch is acknowledged and searchable.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_forward_security.py
"""

import hashlib
import os
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import ForwardClient, check, test, wait_until  # noqa: E402

KEY = "correct horse battery staple"


def entries(words, host="pyclient"):
    now = time.time_ns()
    return [(now + i, {"message": "%s from the test client" % w, "host": host})
            for i, w in enumerate(words)]


def connect(col, certs, with_cert=True):
    ctx = lhtest.client_tls_context(certs, with_cert=with_cert)
    return ForwardClient("127.0.0.1", col.forward_port, ctx, server_hostname="127.0.0.1")


def refused(client):
    """True when the server ends the connection without answering."""
    try:
        client.send_raw(ForwardClient.packed_forward("t", entries(["x"]), "c1"))
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    return client.read_obj() is None


def searchable(col, word, n=1):
    r, recs, _ = lhtest.search([col.url], word)
    return r.returncode == 0 and len(recs) == n


@test
def mtls_refuses_a_client_without_certificate(run):
    col = lhtest.start_collector(run, "collector", tls=True, mtls=True)
    certs = run.certs()
    try:
        c = connect(col, certs, with_cert=False)
        check(refused(c), "a client without a certificate was served")
        c.close()
    except (ssl.SSLError, ConnectionResetError):
        pass  # TLS 1.2 fails the handshake itself: refused all the same
    good = connect(col, certs)
    ack, chunk = good.send_batch("sec.mtls", entries(["mtlsok"]))
    good.close()
    check(ack == {"ack": chunk}, "client with certificate: ack %r, want %r" % (ack, chunk))
    wait_until(lambda: searchable(col, "mtlsok"), 20, "the mTLS batch to be searchable")
    check(col.proc.alive(), "collector died")


@test
def shared_key_handshake(run):
    col = lhtest.start_collector(run, "collector", tls=True, mtls=False, shared_key=KEY)
    certs = run.certs()
    bad = connect(col, certs)
    pong = bad.handshake("not the key")
    check(isinstance(pong, list) and pong[0] == "PONG" and pong[1] is False,
          "wrong key: want PONG false, got %r" % (pong,))
    check(bad.is_closed(), "connection kept open after a failed handshake")
    bad.close()

    good = connect(col, certs)
    pong = good.handshake(KEY, hostname="py-host")
    check(isinstance(pong, list) and len(pong) == 5 and pong[1] is True,
          "right key: want PONG true, got %r" % (pong,))
    check(good.nonce, "HELO carried no nonce")
    want = hashlib.sha512(good.salt + pong[3].encode() + good.nonce + KEY.encode()).hexdigest()
    check(pong[4] == want, "PONG digest does not prove the server knows the key")
    ack, chunk = good.send_batch("sec.key", entries(["keyok"]))
    check(ack == {"ack": chunk}, "ack after handshake: %r" % (ack,))
    good.close()
    wait_until(lambda: searchable(col, "keyok"), 20, "the batch sent after the handshake")


@test
def garbage_closes_only_that_connection(run):
    col = lhtest.start_collector(run, "collector", tls=True, mtls=True)
    certs = run.certs()
    bystander = connect(col, certs)
    ack, chunk = bystander.send_batch("sec.garbage", entries(["before"]))
    check(ack == {"ack": chunk}, "first batch: %r" % (ack,))

    for junk in (b"\xc1" * 64, b"\x93\xa3tag\xc1\xc1\xc1", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
        bad = connect(col, certs)
        bad.send_raw(junk)
        check(bad.is_closed(), "garbage %r left the connection open" % junk[:16])
        bad.close()

    ack, chunk = bystander.send_batch("sec.garbage", entries(["survivor"]))
    check(ack == {"ack": chunk}, "the other connection stopped working: ack %r" % (ack,))
    bystander.close()
    wait_until(lambda: searchable(col, "survivor"), 20, "the bystander's batch to be searchable")
    check(col.proc.alive(), "collector died")
    check(col.records_in() == 2, "records_in_total %s, want 2" % col.records_in())


@test
def oversized_frame_is_refused(run):
    cfg = lhtest.collector_config(run, "collector",
                                  extra={"listen": {"forward": {"max_frame": "1MiB"}}})
    col = lhtest.start_collector(run, "collector", cfg=cfg)
    certs = run.certs()
    big = connect(col, certs)
    # A PackedForward whose bin32 entries claim max_frame + 1 bytes: the
    # header alone should be enough to refuse it, but send the body too in
    # case the server only checks once it has it all.
    size = 1024 * 1024 + 1
    head = b"\x93" + lhtest.mp_pack("sec.big") + b"\xc6" + struct.pack(">I", size)
    closed = False
    try:
        big.send_raw(head)
        block = b"\x00" * 65536
        for _ in range(size // len(block) + 1):
            big.send_raw(block)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        closed = True
    check(closed or big.is_closed(30), "a frame over max_frame was accepted")
    big.close()
    col.proc.wait_log(r"(?i)max_frame|too (big|large)", 10)
    ok = connect(col, certs)
    ack, chunk = ok.send_batch("sec.big", entries(["smallok"]))
    ok.close()
    check(ack == {"ack": chunk}, "a normal batch after the big one: %r" % (ack,))
    check(col.records_in() == 1, "records_in_total %s, want 1" % col.records_in())


@test
def stalled_handshakes_are_cut_and_idle_connections_kept(run):
    col = lhtest.start_collector(run, "collector", tls=True, mtls=True, shared_key=KEY,
                                 extra={"listen": {"forward": {"handshake_timeout": "1s"}}})
    certs = run.certs()
    # TCP connected, TLS never started: cut after handshake_timeout.
    import socket
    raw = socket.create_connection(("127.0.0.1", col.forward_port), timeout=10)
    t0 = time.monotonic()
    raw.settimeout(10)
    check(raw.recv(1) == b"", "a silent TCP client must be closed")
    check(time.monotonic() - t0 < 8, "closed only after %.1fs" % (time.monotonic() - t0))
    raw.close()
    # TLS done, HELO read, no PING: cut too.
    quiet = connect(col, certs)
    helo = quiet.read_obj()
    check(isinstance(helo, list) and helo[0] == "HELO", "HELO first: %r" % (helo,))
    check(quiet.is_closed(), "a client that never sends PING must be closed")
    quiet.close()
    col.proc.wait_log(r"shared-key handshake not finished within handshake_timeout", timeout=10)
    wait_until(lambda: (col.metric("loghaul_collector_frames_rejected_total",
                                   {"reason": "handshake"}) or 0) >= 2, 10,
               "two handshake rejections counted")
    # A client that finished both handshakes may stay idle past the timeout.
    idle = connect(col, certs)
    pong = idle.handshake(KEY, hostname="idle-host")
    check(isinstance(pong, list) and pong[1] is True, "handshake: %r" % (pong,))
    # Idle on purpose for 2.5 timeouts (bounded): the property is "still open".
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        time.sleep(0.25)
    ack, chunk = idle.send_batch("sec.idle", entries(["stillopen"]))
    check(ack == {"ack": chunk}, "an idle, authenticated connection must stay usable")
    idle.close()
    # Without a shared key, finishing TLS is the whole handshake: an agent
    # that connected and has nothing to send yet is not cut.
    plain = lhtest.start_collector(run, "nokey", tls=True, mtls=True,
                                   extra={"listen": {"forward": {"handshake_timeout": "1s"}}})
    tls_idle = connect(plain, certs)
    tls_idle.sock.do_handshake()
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        time.sleep(0.25)
    ack, chunk = tls_idle.send_batch("sec.idle", entries(["tlsidle"]))
    check(ack == {"ack": chunk}, "an idle TLS connection must stay usable: %r" % (ack,))
    tls_idle.close()


@test
def agent_with_wrong_shared_key_ships_nothing(run):
    col = lhtest.start_collector(run, "collector", tls=True, mtls=True, shared_key=KEY)
    log = run.path("app.log")
    with open(log, "w") as f:
        for i in range(10):
            f.write("wrongkey line %d\n" % i)
    cfg = lhtest.agent_config(run, "agent", paths=[log], tag="sec.agent",
                              collectors=["127.0.0.1:%d" % col.forward_port],
                              shared_key="a different key")
    cfg["agent"]["shutdown_timeout"] = "1s"  # it waits for acks that never come
    agent = lhtest.start_agent(run, "agent", cfg=cfg)
    agent.proc.wait_log(r"(?i)(shared.key|handshake|pong|auth)", 30)
    wait_until(lambda: (agent.metric("loghaul_agent_records_read_total") or 0) >= 10, 20,
               "the agent to read the file")
    check(col.records_in() == 0, "collector accepted %s records" % col.records_in())
    # records_acked_total counts records safe in the disk buffer; a
    # collector's acknowledgement is acks_total.
    check((agent.metric("loghaul_agent_acks_total") or 0) == 0,
          "agent counts acknowledgements from a collector that refused it")
    r, recs, _ = lhtest.search([col.url], "wrongkey")
    check(r.returncode == 0 and not recs, "records reached the store: %r" % recs)


@test
def max_connections_makes_the_next_one_wait(run):
    col = lhtest.start_collector(run, "collector", tls=False,
                                 extra={"listen": {"forward": {"max_connections": 2}}})
    first = ForwardClient("127.0.0.1", col.forward_port)
    second = ForwardClient("127.0.0.1", col.forward_port)
    for cl in (first, second):
        ack, chunk = cl.send_batch("sec.cap", entries(["open"]))
        check(ack == {"ack": chunk}, "the first two are served: %r" % (ack,))
    # The kernel completes the third connection; the collector does not
    # take it while two are open.
    third = ForwardClient("127.0.0.1", col.forward_port, timeout=1)
    chunk = "third-chunk"
    third.send_raw(third.packed_forward("sec.cap", entries(["waiting"]), chunk))
    try:
        early = third.read_obj()
    except OSError:  # the read timed out: nothing was answered
        early = None
    check(early is None, "a third connection was served past max_connections: %r" % (early,))
    first.close()
    third.sock.settimeout(10)
    ack = third.read_obj()
    check(ack == {"ack": chunk}, "once one closed, the waiting one is served: %r" % (ack,))
    for cl in (second, third):
        cl.close()
    check(col.records_in() == 3, "records_in %r" % col.records_in())


if __name__ == "__main__":
    sys.exit(lhtest.run())
