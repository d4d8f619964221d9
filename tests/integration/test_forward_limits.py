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
import socket
import struct
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import ForwardClient, check, test, wait_until  # noqa: E402

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
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"
    p = run.start(name, [lhtest.COLLECTOR, "-c", path], env=env)
    fwd = p.wait_log(r"forward listening on (\S+)").group(1)
    http = p.wait_log(r"http listening on (\S+)").group(1)
    col = lhtest.Collector(p, fwd, http)
    wait_until(lambda: lhtest.http_get(col.url + "/healthz")[0] == 200, 20, "/healthz")
    return col


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (key, pid))


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
        # Every holder waits for bytes that never come: the largest ones are
        # closed so that a good client still gets through.
        wait_until(lambda: acked(col, "besidehalves"), 40, "a good batch to be acked")
        check(col.proc.alive(), "collector died")
        # Paused holders release nothing: the stall timer closes the largest.
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
