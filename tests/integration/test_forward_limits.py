"""The collector's Forward listener under memory attacks, at its default
budgets: a 60 MiB frame of nils, 32 MiB sent after HELO but before PING,
20 connections each half-sending a 60 MiB frame. The process stays up,
other connections are still acked, the peak RSS (VmHWM) stays bounded and
the pause counter moves. Plus records nested 29..32 levels deep: each is
either acked and readable (also after a restart) or refused and not acked.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_forward_limits.py
"""

import json
import os
import resource
import socket
import struct
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import ForwardClient, check, status_kib, test, wait_until  # noqa: E402

MIB = 1024 * 1024
# The defaults (max_memory 96 MiB, 2 x max_decompressed 64 MiB for one
# decode) keep a collector under 256 MiB; the bound leaves room for the
# allocator and, under ASan, its shadow memory.
RSS_BOUND = 300 * MIB
KEY = "limits key"


def start(run, name="collector", **kw):
    """A plain-TCP collector at the default budgets. Under ASan freed memory
    sits in a quarantine that would count as RSS: keep it small."""
    cfg = lhtest.collector_config(run, "collector", tls=False, **kw)
    path = lhtest.write_config(run.path("collector.yaml"), cfg)
    p = run.start(name, [lhtest.COLLECTOR, "-c", path], env=lhtest.small_quarantine_env())
    fwd = p.wait_log(r"forward listening on (\S+)").group(1)
    http = p.wait_log(r"http listening on (\S+)").group(1)
    col = lhtest.Collector(p, fwd, http)
    wait_until(lambda: lhtest.http_get(col.url + "/healthz")[0] == 200, 20, "/healthz")
    return col


def hwm(col):
    return status_kib(col.proc.pid, "VmHWM") * 1024


def connect(col, timeout=10):
    return ForwardClient("127.0.0.1", col.forward_port, timeout=timeout)


def send_all(client, data):
    """Sends data; False when the server cut the connection on the way."""
    try:
        client.send_raw(data)
        return True
    except OSError:  # reset, broken pipe, timeout, or closed by the test
        return False


def entries(word, n=3):
    now = time.time_ns()
    return [(now + i, {"message": "%s record %d" % (word, i)}) for i in range(n)]


def acked(col, word):
    c = connect(col)
    try:
        ack, chunk = c.send_batch("limits.t", entries(word))
    finally:
        c.close()
    return ack == {"ack": chunk}


def api_search(col, query):
    """Messages /api/v1/search answers for query (NDJSON or JSON lines)."""
    status, body = lhtest.http_get(col.url + "/api/v1/search?" +
                                   urllib.parse.urlencode({"q": query, "limit": 100}))
    check(status == 200, "search %r: HTTP %d %r" % (query, status, body[:200]))
    msgs = []
    for line in body.decode("utf-8", "replace").splitlines():
        if line.strip():
            o = json.loads(line)
            if isinstance(o, dict) and "message" in o:
                msgs.append(o["message"])
    return msgs


def rejected(col, reason):
    return col.metric("loghaul_collector_frames_rejected_total", {"reason": reason}) or 0


@test
def a_60mib_frame_of_nils(run):
    col = start(run)
    before = hwm(col)
    # The outer array of 60M nils is refused from its header.
    c = connect(col, timeout=60)
    send_all(c, b"\xdd" + struct.pack(">I", 60 * MIB) + b"\xc0" * (60 * MIB))
    check(c.is_closed(45), "a 60M-element outer array was not refused")
    c.close()
    # [tag, [nil x 60M]]: Forward-mode entries that are nils, walked, not unpacked.
    c = connect(col, timeout=60)
    send_all(c, b"\x92\xa1t\xdd" + struct.pack(">I", 60 * MIB) + b"\xc0" * (60 * MIB))
    check(c.is_closed(45), "60M nil entries were not refused")
    c.close()
    check(col.proc.alive(), "collector died")
    check(acked(col, "afternils"), "a good batch after the nils was not acked")
    peak = hwm(col)
    print("  (a) VmHWM before %.1f MiB, after %.1f MiB" % (before / MIB, peak / MIB))
    check(peak < RSS_BOUND, "VmHWM %.0f MiB after 60 MiB of nils" % (peak / MIB))
    check(rejected(col, "protocol") >= 2, "refusals not counted as protocol")


@test
def thirty_two_mib_before_ping(run):
    col = start(run, shared_key=KEY)
    before = hwm(col)
    c = connect(col)
    helo = c.read_obj()
    check(isinstance(helo, list) and helo[0] == "HELO", "no HELO: %r" % (helo,))
    send_all(c, b"\x96\xa4PING\xdd" + struct.pack(">I", 32 * MIB) + b"\xc0" * (32 * MIB))
    check(c.is_closed(20), "32 MiB before PING did not close the connection")
    c.close()
    col.proc.wait_log(r"before the shared-key handshake is larger than 65536 bytes", 10)
    check(rejected(col, "handshake") >= 1, "the pre-auth refusal was not counted")
    good = connect(col)
    pong = good.handshake(KEY)
    check(isinstance(pong, list) and pong[1] is True, "good client refused: %r" % (pong,))
    ack, chunk = good.send_batch("limits.t", entries("afterping"))
    good.close()
    check(ack == {"ack": chunk}, "good batch after the attack: %r" % (ack,))
    peak = hwm(col)
    print("  (b) VmHWM before %.1f MiB, after %.1f MiB" % (before / MIB, peak / MIB))
    check(peak < RSS_BOUND, "VmHWM %.0f MiB after 32 MiB before PING" % (peak / MIB))


def half_sender(col, out, i):
    """Sends the first half of a 60 MiB PackedForward frame, then holds."""
    try:
        c = connect(col, timeout=60)
    except OSError:
        return
    out.append(c)
    head = b"\x93\xa1t\xc6" + struct.pack(">I", 60 * MIB)
    chunk = b"\x92\xd7\x00" + b"\x00" * 8 + b"\x80"
    send_all(c, head + chunk * (30 * MIB // len(chunk)))


@test
def twenty_half_sent_60mib_frames(run):
    col = start(run)
    before = hwm(col)
    clients, threads = [], []
    for i in range(20):
        t = threading.Thread(target=half_sender, args=(col, clients, i), daemon=True)
        t.start()
        threads.append(t)
    try:
        wait_until(lambda: (col.metric("loghaul_collector_forward_read_pauses_total") or 0) > 0,
                   30, "a read pause")
        # Every holder waits for bytes that never come: the stalest ones are
        # closed so that a good client still gets through.
        wait_until(lambda: acked(col, "besidehalves"), 40, "a good batch to be acked")
        check(col.proc.alive(), "collector died")
        # Paused holders release nothing: the stall timer closes the stalest.
        wait_until(lambda: rejected(col, "memory") >= 1, 15, "a holder closed for memory")
        held = col.metric("loghaul_collector_forward_memory_bytes") or 0
        check(held <= 100 * MIB, "memory gauge %.0f MiB over max_memory" % (held / MIB))
        peak = hwm(col)
        print("  (c) VmHWM before %.1f MiB, after %.1f MiB" % (before / MIB, peak / MIB))
        check(peak < RSS_BOUND, "VmHWM %.0f MiB with 20 half-sent frames" % (peak / MIB))
    finally:
        for c in clients:
            c.close()
        for t in threads:
            t.join(10)


def raise_nofile(need):
    """The test's descriptor limit (and so the collector's, inherited) to at
    least need."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    check(hard == resource.RLIM_INFINITY or hard >= need,
          "this test needs %d descriptors; the hard limit is %d" % (need, hard))
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def one_mib_batch(word, i):
    now = time.time_ns()
    return [(now + k, {"message": "%s %d %d %s" % (word, i, k, "x" * 1000)}) for k in range(1000)]


def timed_ack(c, word, i):
    """Sends a 1 MiB batch on c; the seconds its ack took, None when c closed."""
    t0 = time.monotonic()
    try:
        ack, chunk = c.send_batch("limits.t", one_mib_batch(word, i))
    except OSError:  # reset or broken pipe: the collector closed c
        return None
    return time.monotonic() - t0 if ack == {"ack": chunk} else None


@test
def one_byte_connections_do_not_starve_a_sender(run):
    n = 1600
    raise_nofile(n + 400)
    col = start(run)
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", col.forward_port), timeout=10)
            s.sendall(b"\x93")  # the head of a 3-element array: a frame begun
            socks.append(s)
        wait_until(lambda: (col.metric("loghaul_collector_connections_active") or 0) >= n, 30,
                   "%d connections accepted" % n)
        wait_until(lambda: (col.metric("loghaul_collector_bytes_in_total") or 0) >= n or
                   (col.metric("loghaul_collector_forward_read_pauses_total") or 0) > 0, 30,
                   "their bytes read")
        held = col.metric("loghaul_collector_forward_memory_bytes") or 0
        check(held < 4 * MIB, "%d one-byte frames hold %.1f MiB of max_memory"
              % (n, held / MIB))
        c = connect(col, timeout=30)
        took = []
        try:
            for i in range(6):
                took.append(timed_ack(c, "beside1600", i))
                check(took[-1] is not None, "1 MiB batch %d not acked: %r" % (i, took))
        finally:
            c.close()
        check(max(took) < 5, "1 MiB batches acked after %r s" % took)
        check(rejected(col, "memory") == 0, "connections closed for memory")
        print("  %d one-byte connections hold %.0f KiB; 1 MiB acks in %s s"
              % (n, held / 1024, ", ".join("%.2f" % t for t in took)))
    finally:
        for s in socks:
            s.close()
    # Closed before the collector stops, so that its exit does not race
    # libevent's deferred frees of 1600 connections (ASan counts those).
    wait_until(lambda: (col.metric("loghaul_collector_connections_active") or 0) == 0, 30,
               "the connections to close")


@test
def a_stalled_half_frame_is_closed_after_frame_timeout(run):
    col = start(run, extra={"listen": {"forward": {"frame_timeout": "1s"}}})
    idle = connect(col)
    check(idle.send_batch("limits.t", entries("beforeidle"))[0] is not None, "no ack")
    stalled = connect(col)
    frame = ForwardClient.packed_forward("limits.t", entries("stalled"), "stalled-chunk")
    send_all(stalled, frame[:len(frame) // 2])
    # A frame sent slowly, but never quiet for a whole frame_timeout, is fine.
    slow = connect(col)
    frame = ForwardClient.packed_forward("limits.t", entries("slow"), "slow-chunk")
    pieces = 8
    step = len(frame) // pieces + 1
    for i in range(pieces):
        send_all(slow, frame[i * step:(i + 1) * step])
        time.sleep(0.4)  # 8 x 0.4 s: longer than frame_timeout in all
    check(slow.read_obj() == {"ack": "slow-chunk"}, "the slow but steady frame was not acked")
    slow.close()
    check(stalled.is_closed(10), "a half frame quiet past frame_timeout was not closed")
    stalled.close()
    col.proc.wait_log(r"then nothing for 1000 ms \(frame_timeout\)", 5)
    check(rejected(col, "frame_timeout") == 1, "the close was not counted as frame_timeout")
    # Between frames a connection may idle for as long as it likes.
    check(not idle.is_closed(2), "an idle connection (no partial frame) was closed")
    ack, chunk = idle.send_batch("limits.t", entries("afteridle"))
    idle.close()
    check(ack == {"ack": chunk}, "the idle connection's next batch: %r" % (ack,))
    check(api_search(col, "stalled") == [], "the stalled frame reached the store")


def holder(col, size):
    """A connection holding size bytes of a PackedForward frame it never ends."""
    c = connect(col, timeout=30)
    head = b"\x93\xa1t\xc6" + struct.pack(">I", 3 * size)
    chunk = b"\x92\xd7\x00" + b"\x00" * 8 + b"\x80"
    send_all(c, head + chunk * (size // len(chunk)))
    return c


@test
def the_stall_breaker_spares_the_sender_delivering(run):
    budgets = {"max_frame": "2MiB", "max_decompressed": "2MiB",
               "max_connection_memory": "3MiB", "max_memory": "4MiB"}
    col = start(run, extra={"listen": {"forward": budgets}})
    # Seven holders of 400 KiB frame buffers each fill 3.5 MiB of the 4 MiB,
    # each less than a sender of 1 MiB batches holds while it delivers.
    holders = []
    try:
        for _ in range(7):
            holders.append(holder(col, 400 * 1024))
        wait_until(lambda: (col.metric("loghaul_collector_forward_memory_bytes") or 0)
                   >= 3.4 * MIB, 20, "the holders' bytes read")
        c = connect(col, timeout=30)
        try:
            took = [timed_ack(c, "besideholders", i) for i in range(3)]
        finally:
            c.close()
        check(None not in took, "the delivering sender was closed: %r" % (took,))
        check(rejected(col, "memory") >= 1, "no holder was closed for memory")
        closed = sum(1 for h in holders if h.is_closed(0.2))
        check(closed >= 1, "no idle holder was closed")
        col.proc.wait_log(r"this one received nothing for longest", 5)
        print("  1 MiB acks in %s s beside 7 stalled holders (%d closed)"
              % (", ".join("%.2f" % t for t in took), closed))
    finally:
        for h in holders:
            h.close()


def nested(depth, word):
    """A record of depth nested maps, the word in the outermost."""
    rec = {"message": "%s inner" % word}
    for _ in range(depth - 1):
        rec = {"message": "%s level" % word, "n": rec}
    rec["message"] = word
    return rec


@test
def deep_records_acked_only_when_readable(run):
    col = start(run)
    now = time.time_ns()
    outcome = {}
    for depth in (29, 30, 31, 32):
        word = "deep%d" % depth
        c = connect(col)
        ack, chunk = c.send_batch("limits.deep", [(now + depth, nested(depth, word))])
        c.close()
        outcome[depth] = ack == {"ack": chunk}
    check(acked(col, "afterdeep"), "a batch after the deep ones was not acked")
    check(not outcome[32], "a record 32 maps deep was acked: the store cannot read it back")
    check(rejected(col, "too_deep") >= 1, "the deep refusal was not counted as too_deep")

    def readable():
        for depth, ok in outcome.items():
            got = api_search(col, "deep%d" % depth)
            want = 1 if ok else 0
            check(got.count("deep%d" % depth) == want,
                  "depth %d acked=%s but search has %r" % (depth, ok, got))
        check(len(api_search(col, "afterdeep")) == 3, "records after the deep ones missing")
    readable()
    check(col.proc.stop() == 0, "collector exited badly")
    col = start(run, name="restarted")  # same config and data directory
    readable()
    print("  depths acked: %s" % sorted(d for d, ok in outcome.items() if ok))


@test
def inconsistent_budgets_are_config_errors(run):
    cases = [
        ({"max_frame": "128MiB"}, "max_connection_memory .* must be at least max_frame"),
        ({"max_connection_memory": "200MiB"}, "max_memory .* is smaller than max_connection"),
        ({"max_decompressed": "8MiB"}, "max_decompressed .* is smaller than max_frame"),
    ]
    for i, (fwd, want) in enumerate(cases):
        cfg = lhtest.collector_config(run, "c%d" % i, tls=False,
                                      extra={"listen": {"forward": fwd}})
        path = lhtest.write_config(run.path("c%d.yaml" % i), cfg)
        r = lhtest.subprocess.run([lhtest.COLLECTOR, "--check-config", "-c", path],
                                  capture_output=True, text=True, timeout=20)
        check(r.returncode == 2 and lhtest.re.search(want, r.stderr),
              "%r: exit %d, %r" % (fwd, r.returncode, r.stderr))


if __name__ == "__main__":
    sys.exit(lhtest.run(need=(lhtest.COLLECTOR,)))
