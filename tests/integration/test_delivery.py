"""Delivery that survives failures, counted by sequence number end to end:
every line written must be found exactly once on the collectors.

Collector SIGKILLed mid-stream, collector down while lines pile up, agent
SIGKILLed twice, two collectors with one killed, and a graceful stop that
flushes. Buffer limits and damage are in test_delivery_buffer.py.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_delivery.py
"""

import collections
import os
import re
import signal
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import check, test, wait_until  # noqa: E402

TAG = "delivery.app"
SEQ = re.compile(r"^seq (\d{8}) ")


def line(i):
    return "seq %08d the quick brown fox jumps over the lazy dog %s" % (i, "x" * (i % 40))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def collector_cfg(run, name, port):
    cfg = lhtest.collector_config(run, name)
    cfg["listen"]["forward"]["address"] = "127.0.0.1:%d" % port
    return cfg


def agent_cfg(run, log, ports, **out):
    cfg = lhtest.agent_config(run, "agent", [log], ["127.0.0.1:%d" % p for p in ports], tag=TAG,
                              batch={"max_records": 500, "max_wait": "200ms"})
    cfg["outputs"][0].update({"backoff_max": "1s", "ack_timeout": "5s"})
    cfg["outputs"][0].update(out)
    cfg["agent"]["shutdown_timeout"] = "5s"
    return cfg


def kill9(run, proc):
    """SIGKILL: the process is gone without any cleanup."""
    proc.popen.send_signal(signal.SIGKILL)
    proc.popen.wait(20)
    proc.stop()
    run.procs.remove(proc)


def seqs_on(col, n):
    """Counter of sequence numbers stored on a collector, for seqs below n.
    A search returns at most 100k records: beyond that, slices of 10k by
    regex, each asked for twice as many so a duplicate cannot hide."""
    if n <= 50000:
        queries = [("", max(2 * n, 10))]
    else:
        queries = [('message:~"^seq %04d"' % k, 20000) for k in range((n + 9999) // 10000)]
    out = collections.Counter()
    for q, limit in queries:
        r, recs, _ = lhtest.search([col.url], q, "--limit", str(limit), timeout=120)
        check(r.returncode == 0, "search failed: %s" % r.stderr)
        check(len(recs) < limit, "search %r hit its limit %d" % (q, limit))
        for rec in recs:
            m = SEQ.match(rec.get("message", ""))
            check(m, "unexpected record %r" % rec)
            out[int(m.group(1))] += 1
    return out


def wait_all(cols, n, timeout=90):
    """Waits until seqs 0..n-1 are all stored (on any of cols); returns
    the combined Counter. Large counts wait on the stored-records metric
    first (it counts no duplicate: those are acked without storing)."""
    state = {}

    def done():
        if n > 50000 and sum(c.metric("loghaul_collector_records_stored_total") or 0
                             for c in cols) < n:
            return False
        total = collections.Counter()
        for c in cols:
            total.update(seqs_on(c, n))
        state["c"] = total
        return len(total) >= n
    try:
        wait_until(done, timeout, "%d distinct sequence numbers delivered" % n, interval=1.0)
    except AssertionError:
        c = state.get("c", collections.Counter())
        missing = sorted(set(range(n)) - set(c))
        raise AssertionError("%d of %d delivered; first missing %r"
                             % (len(c), n, missing[:10]))
    return state["c"]


def check_exactly_once(counter, n):
    check(set(counter) == set(range(n)), "sequence numbers beyond 0..%d: %r"
          % (n - 1, sorted(set(counter) - set(range(n)))[:10]))
    dups = [s for s, k in counter.items() if k > 1]
    check(not dups, "%d duplicates, e.g. %r" % (len(dups), dups[:10]))


class Writer(threading.Thread):
    """Appends lines lo..hi-1 in small bursts, like a live application."""

    def __init__(self, path, lo, hi, burst=500, pause=0.02):
        super().__init__(daemon=True)
        self.path, self.lo, self.hi, self.burst, self.pause = path, lo, hi, burst, pause
        self.written = lo
        self.stop_ev = threading.Event()

    def run(self):
        with open(self.path, "a") as f:
            while self.written < self.hi:
                end = min(self.hi, self.written + self.burst)
                f.write("".join(line(i) + "\n" for i in range(self.written, end)))
                f.flush()
                self.written = end
                self.stop_ev.wait(self.pause)


def write_lines(path, lo, hi):
    with open(path, "a") as f:
        for start in range(lo, hi, 10000):
            f.write("".join(line(i) + "\n" for i in range(start, min(hi, start + 10000))))


@test
def collector_killed_mid_stream_and_restarted(run):
    n = 20000
    port = free_port()
    ccfg = collector_cfg(run, "collector", port)
    col = lhtest.start_collector(run, "collector", cfg=ccfg)
    log = run.path("app.log")
    open(log, "w").close()
    lhtest.start_agent(run, "agent", cfg=agent_cfg(run, log, [port]))
    w = Writer(log, 0, n, burst=200, pause=0.02)
    w.start()
    wait_until(lambda: col.records_in() >= 2000, 30, "first records on the collector")
    kill9(run, col.proc)
    wait_until(lambda: w.written >= n * 3 // 4, 60, "more lines written while it is down")
    col = lhtest.start_collector(run, "collector-r1", cfg=ccfg)
    w.join(60)
    check_exactly_once(wait_all([col], n), n)


@test
def collector_down_while_lines_pile_up(run):
    # The 300k lines (about 25 MiB); they are written as fast as
    # possible rather than over 60 s, which is the harder case for the buffer.
    n = 300000
    port = free_port()
    log = run.path("app.log")
    open(log, "w").close()
    agent = lhtest.start_agent(run, "agent", cfg=agent_cfg(run, log, [port]))
    write_lines(log, 0, n)
    wait_until(lambda: (agent.metric("loghaul_agent_records_acked_total") or 0) >= n, 90,
               "every line read into the disk buffer")
    check((agent.metric("loghaul_agent_buffer_bytes") or 0) > 0, "buffer_bytes should be > 0")
    col = lhtest.start_collector(run, "collector", cfg=collector_cfg(run, "collector", port))
    check_exactly_once(wait_all([col], n, timeout=120), n)
    wait_until(lambda: agent.metric("loghaul_agent_buffer_bytes") == 0, 20,
               "buffer_bytes back to 0 once delivered")


@test
def agent_killed_mid_stream_twice(run):
    n = 30000
    port = free_port()
    col = lhtest.start_collector(run, "collector", cfg=collector_cfg(run, "collector", port))
    log = run.path("app.log")
    open(log, "w").close()
    cfg = agent_cfg(run, log, [port])
    agent = lhtest.start_agent(run, "agent", cfg=cfg)
    w = Writer(log, 0, n, burst=300, pause=0.02)
    w.start()
    for k, at in enumerate((3000, 12000)):
        wait_until(lambda: col.records_in() >= at, 60, "%d records before kill %d" % (at, k + 1))
        kill9(run, agent.proc)
        agent = lhtest.start_agent(run, "agent-r%d" % (k + 1), cfg=cfg)
    w.join(60)
    check_exactly_once(wait_all([col], n), n)


@test
def two_collectors_one_killed(run):
    n = 10000
    ports = [free_port(), free_port()]
    a = lhtest.start_collector(run, "col-a", cfg=collector_cfg(run, "col-a", ports[0]))
    b = lhtest.start_collector(run, "col-b", cfg=collector_cfg(run, "col-b", ports[1]))
    log = run.path("app.log")
    open(log, "w").close()
    agent = lhtest.start_agent(run, "agent", cfg=agent_cfg(run, log, ports))
    write_lines(log, 0, n // 2)
    first = wait_all([a, b], n // 2)
    on_a, on_b = seqs_on(a, n), seqs_on(b, n)
    check(on_a and on_b, "round_robin should use both collectors (a %d, b %d)"
          % (len(on_a), len(on_b)))
    check_exactly_once(first, n // 2)
    kill9(run, a.proc)
    write_lines(log, n // 2, n)
    wait_until(lambda: set(range(n // 2, n)) <= set(seqs_on(b, n)), 60,
               "the second half entirely on the surviving collector")
    later = seqs_on(b, n)
    combined = collections.Counter(on_a)
    combined.update(later)
    check_exactly_once(combined, n)
    check((agent.metric("loghaul_agent_connections_total") or 0) >= 2, "two connections")


@test
def sigterm_flushes_what_is_buffered(run):
    n = 5000
    port = free_port()
    col = lhtest.start_collector(run, "collector", cfg=collector_cfg(run, "collector", port))
    log = run.path("app.log")
    open(log, "w").close()
    cfg = agent_cfg(run, log, [port])
    cfg["outputs"][0]["batch"] = {"max_records": 500, "max_wait": "10s"}
    agent = lhtest.start_agent(run, "agent", cfg=cfg)
    write_lines(log, 0, n)
    wait_until(lambda: (agent.metric("loghaul_agent_records_read_total") or 0) >= n, 30,
               "every line read")
    rc = agent.proc.stop(timeout=15)
    check(rc == 0, "agent exit status %s on SIGTERM, want 0" % rc)
    run.procs.remove(agent.proc)
    check_exactly_once(wait_all([col], n, timeout=10), n)


if __name__ == "__main__":
    sys.exit(lhtest.run())
