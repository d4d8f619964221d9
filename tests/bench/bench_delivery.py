#!/usr/bin/env python3
"""Delivery throughput: agent file tail -> TLS Forward -> collector with the
store off (a `null` output acks once it has counted), next to Debian's
rsyslog on the same corpus in the same run (imfile -> omfwd over TLS with the
ossl driver, queue.type="Direct" -> imtcp over TLS -> omfile on tmpfs).

Two scenarios: a backlog read from the head (the whole corpus is on disk
before the shipper starts) and a live stream (the corpus is appended at
--live-rate lines/s while the shipper runs). For each it prints lines/s,
MB/s, CPU seconds per GB and peak RSS (VmHWM) of the sender and the
receiver, the agent's largest sampled RSS during the run, and the ratio of
loghaul's rate to rsyslog's. Not a test (ctest never runs it).

  LH_BIN_DIR=build python3 tests/bench/bench_delivery.py            # ~1M lines
  LH_BIN_DIR=build python3 tests/bench/bench_delivery.py --gib 1    # the 1 GiB backlog

The agent is pinned to one core and the receiver to another (when the
machine has two). Use a build without sanitizers. rsyslog and
rsyslog-openssl must be installed (quickstart.sh installs them); without
rsyslogd, or with --no-rsyslog, only loghaul runs.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import gen_corpus  # noqa: E402
import lhtest  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
BASE_LINES = 200_000  # generated once, repeated up to the requested size
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


def cpu_seconds(pid):
    """utime + stime of a live process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """Largest VmRSS seen of each pid, sampled every 50 ms."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = pids
        self.max_kib = {p: 0 for p in pids}
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.wait(0.05):
            for p in self.pids:
                try:
                    self.max_kib[p] = max(self.max_kib[p], status_kib(p, "VmRSS"))
                except OSError:
                    pass


def usage(pid):
    return cpu_seconds(pid), status_kib(pid, "VmHWM") / 1024.0


def pin(pid, cpu):
    if os.cpu_count() and os.cpu_count() > cpu:
        os.sched_setaffinity(pid, {cpu})


def sanitized(bin_dir):
    try:
        with open(os.path.join(bin_dir, "CMakeCache.txt")) as f:
            return "LOGHAUL_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines per scenario")
    ap.add_argument("--gib", type=float, help="corpus size in GiB instead of --lines")
    ap.add_argument("--line-bytes", type=int, default=200,
                    help="every line padded or cut to this many bytes, newline included "
                    "(default 200, the target's line size; 0: as generated, ~190 on average)")
    ap.add_argument("--scenarios", default="backlog,live", help="backlog,live (default both)")
    ap.add_argument("--live-rate", type=int, default=2_000_000,
                    help="lines/s appended in the live scenario (default 2000000: above "
                    "the 1.5M target, so the row shows what the shipper keeps up with)")
    ap.add_argument("--max-records", type=int, help="agent batch.max_records (default: its own)")
    ap.add_argument("--max-bytes", help="agent batch.max_bytes (default: its own)")
    ap.add_argument("--in-flight", type=int, help="agent max_in_flight (default: its own)")
    ap.add_argument("--data-dir", help="parent of the agent's data_dir (default: the run directory)")
    ap.add_argument("--no-rsyslog", action="store_true", help="run loghaul only")
    ap.add_argument("--timeout", type=float, default=900, help="per run, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    return ap.parse_args()


# ---------------------------------------------------------------- corpus

def make_corpus(run, a):
    """Writes the corpus file; returns (path, lines, bytes)."""
    base = run.path("base.log")
    gen_corpus.main(["--lines", str(BASE_LINES), "--kind", "mixed", "--seed", "1",
                     "--out", base])
    with open(base, "rb") as f:
        block = f.read()
    if a.line_bytes:
        n = a.line_bytes - 1
        block = b"".join(ln[:n].ljust(n, b".") + b"\n" for ln in block.split(b"\n")[:-1])
    per_line = len(block) / BASE_LINES
    want = int(a.gib * (1 << 30) / per_line) if a.gib else a.lines
    lines = block.splitlines(keepends=True)
    path = run.path("corpus.log")
    with open(path, "wb") as f:
        left = want
        while left >= BASE_LINES:
            f.write(block)
            left -= BASE_LINES
        f.write(b"".join(lines[:left]))
    os.remove(base)
    return path, want, os.path.getsize(path)


class LiveWriter(threading.Thread):
    """Appends the corpus to dst in 1 MiB pieces at rate lines/s."""

    def __init__(self, src, dst, rate, n_lines, size):
        super().__init__(daemon=True)
        self.src, self.dst = src, dst
        self.bytes_per_s = rate * size / n_lines
        self.done_at = None

    def run(self):
        t0 = time.monotonic()
        sent = 0
        with open(self.src, "rb") as i, open(self.dst, "ab", buffering=0) as o:
            while True:
                piece = i.read(1 << 20)
                if piece:
                    cut = piece.rfind(b"\n") + 1
                    i.seek(cut - len(piece), os.SEEK_CUR)
                    piece = piece[:cut]
                if not piece:
                    break
                o.write(piece)
                sent += len(piece)
                ahead = sent / self.bytes_per_s - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        self.done_at = time.monotonic()


def settle(log):
    """After a run: its 1 GiB log goes, and what is dirty is written out, so
    the next run does not pay for this one's writeback."""
    os.remove(log)
    os.sync()


def start_log(log, corpus, scenario):
    """The backlog is all there at start, and on disk (a backlog was written
    long ago: its writeback must not land in the shipper's run); the live
    file starts empty."""
    if scenario == "live":
        open(log, "wb").close()
    else:
        shutil.copyfile(corpus, log)
        os.sync()


def wait_count(count, n, procs, timeout, what):
    """Polls count() until it reaches n. Returns (end, first): the monotonic
    time it did, and (time, count) of the first poll that saw lines, for a
    rate without the start-up (process start, TLS handshake)."""
    deadline = time.monotonic() + timeout
    last = -1
    first = None
    while True:
        got = count()
        now = time.monotonic()
        if got > 0 and first is None:
            first = (now, got)
        if got >= n:
            return now, first
        for p in procs:
            if p.poll() is not None:
                raise SystemExit("%s: a process exited (status %s) at %d of %d lines"
                                 % (what, p.returncode, got, n))
        if time.monotonic() > deadline:
            raise SystemExit("%s: timed out at %d of %d lines" % (what, got, n))
        if got // 250000 != last:
            last = got // 250000
            sys.stderr.write("  %s: %9d lines\n" % (what, got))
        time.sleep(0.05)  # a polling interval, not a synchronisation


# ---------------------------------------------------------------- loghaul

def run_loghaul(run, a, corpus, n, scenario):
    name = "lh-" + scenario
    col = lhtest.start_collector(run, name + "-collector", tls=True, mtls=True,
                                 extra={"store": {"enabled": False},
                                        "outputs": [{"type": "null"}]})
    log = run.path(name + ".log")
    start_log(log, corpus, scenario)
    batch = {}
    if a.max_records:
        batch["max_records"] = a.max_records
    if a.max_bytes:
        batch["max_bytes"] = a.max_bytes
    cfg = lhtest.agent_config(run, name + "-agent", paths=[log], tag="bench.delivery",
                              collectors=["127.0.0.1:%d" % col.forward_port], batch=batch or None)
    if a.in_flight:
        cfg["outputs"][0]["max_in_flight"] = a.in_flight
    if a.data_dir:
        cfg["agent"]["data_dir"] = tempfile.mkdtemp(prefix="lh-bench-", dir=a.data_dir)
    pin(col.proc.pid, 1)
    t0 = time.monotonic()
    agent = lhtest.start_agent(run, name + "-agent", cfg=cfg)
    pin(agent.proc.pid, 0)
    pids = (agent.proc.pid, col.proc.pid)
    sampler = Sampler(pids)
    sampler.start()
    writer = None
    if scenario == "live":
        t0 = time.monotonic()
        writer = LiveWriter(corpus, log, a.live_rate, n, os.path.getsize(corpus))
        writer.start()
    t1, first = wait_count(col.records_in, n, (agent.proc.popen, col.proc.popen), a.timeout,
                           "loghaul " + scenario)
    sampler.stop_ev.set()
    res = {"secs": t1 - t0, "first": first, "end": t1, "sender": usage(agent.proc.pid), "receiver": usage(col.proc.pid),
           "sender_max_rss": sampler.max_kib[agent.proc.pid] / 1024.0,
           "lag": t1 - writer.done_at if writer else None}
    agent.proc.stop()
    col.proc.stop()
    settle(log)
    return res


# ---------------------------------------------------------------- rsyslog

SENDER_CONF = """\
global(workDirectory="{work}" maxMessageSize="64k"
       defaultNetstreamDriver="ossl" defaultNetstreamDriverCAFile="{ca}")
module(load="imfile" mode="inotify")
input(type="imfile" file="{log}" tag="bench" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
         StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="anon"
         queue.type="Direct")
}}
"""

RECEIVER_CONF = """\
global(workDirectory="{work}" maxMessageSize="64k"
       defaultNetstreamDriver="ossl" defaultNetstreamDriverCAFile="{ca}"
       defaultNetstreamDriverCertFile="{cert}" defaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1"
       StreamDriver.AuthMode="anon")
template(name="msgonly" type="string" string="%msg%\\n")
input(type="imtcp" port="{port}" ruleset="sink")
ruleset(name="sink") {{
  action(type="omfile" file="{out}" template="msgonly")
}}
"""


class LineCounter:
    """Newlines in a growing file, reading only what was appended."""

    def __init__(self, path):
        self.path, self.off, self.n = path, 0, 0

    def __call__(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except FileNotFoundError:
            return 0
        self.off += len(data)
        self.n += data.count(b"\n")
        return self.n


def start_rsyslogd(run, name, conf_text):
    work = run.path(name + "-work")
    os.makedirs(work)
    conf = run.path(name + ".conf")
    with open(conf, "w") as f:
        f.write(conf_text.replace("{work}", work))
    return run.start(name, [RSYSLOGD, "-n", "-f", conf, "-i", run.path(name + ".pid")])


def run_rsyslog(run, a, corpus, n, scenario, shm):
    name = "rs-" + scenario
    c = run.certs()
    port = lhtest.free_port()
    out = os.path.join(shm, name + ".out")
    recv = start_rsyslogd(run, name + "-receiver", RECEIVER_CONF.format(
        work="{work}", ca=c["ca"], cert=c["server"], key=c["server-key"], port=port, out=out))
    lhtest.wait_until(lambda: _listening(port), 20, "rsyslog imtcp on port %d" % port)
    log = run.path(name + ".log")
    start_log(log, corpus, scenario)
    pin(recv.pid, 1)
    t0 = time.monotonic()
    send = start_rsyslogd(run, name + "-sender", SENDER_CONF.format(
        work="{work}", ca=c["ca"], log=log, port=port))
    pin(send.pid, 0)
    sampler = Sampler((send.pid, recv.pid))
    sampler.start()
    writer = None
    if scenario == "live":
        t0 = time.monotonic()
        writer = LiveWriter(corpus, log, a.live_rate, n, os.path.getsize(corpus))
        writer.start()
    t1, first = wait_count(LineCounter(out), n, (send.popen, recv.popen), a.timeout,
                           "rsyslog " + scenario)
    sampler.stop_ev.set()
    res = {"secs": t1 - t0, "first": first, "end": t1, "sender": usage(send.pid), "receiver": usage(recv.pid),
           "sender_max_rss": sampler.max_kib[send.pid] / 1024.0,
           "lag": t1 - writer.done_at if writer else None}
    send.stop()
    recv.stop()
    os.remove(out)
    settle(log)
    return res


def _listening(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- report

def steady(r):
    t, got = r["first"]
    return "%.0f" % ((r["n"] - got) / (r["end"] - t)) if r["end"] > t else "-"


def report(a, n, size, results):
    gb = size / 1e9
    for r in results.values():
        r["n"] = n
    cols = [k for k in results]
    rows = [("lines/s", lambda r: "%.0f" % (n / r["secs"])),
            ("lines/s after the first line", steady),
            ("MB/s", lambda r: "%.1f" % (size / 1e6 / r["secs"])),
            ("seconds", lambda r: "%.2f" % r["secs"]),
            ("live lag after last write (s)",
             lambda r: "%.2f" % r["lag"] if r["lag"] is not None else "-"),
            ("sender CPU s/GB", lambda r: "%.2f" % (r["sender"][0] / gb)),
            ("receiver CPU s/GB", lambda r: "%.2f" % (r["receiver"][0] / gb)),
            ("sender peak RSS (VmHWM MiB)", lambda r: "%.1f" % r["sender"][1]),
            ("sender max sampled RSS (MiB)", lambda r: "%.1f" % r["sender_max_rss"]),
            ("receiver peak RSS (VmHWM MiB)", lambda r: "%.1f" % r["receiver"][1])]
    w0 = max(len(r[0]) for r in rows)
    w = max(14, max(len(c) for c in cols))
    print("bench_delivery: %d lines, %.1f MB (%.0f bytes/line); sender = agent | rsyslogd "
          "imfile+omfwd, receiver = collector (store off, null output) | rsyslogd imtcp+omfile"
          % (n, size / 1e6, size / n))
    print("  %-*s  %s" % (w0, "", "  ".join("%*s" % (w, c) for c in cols)))
    for label, fmt in rows:
        print("  %-*s  %s" % (w0, label, "  ".join("%*s" % (w, fmt(results[c])) for c in cols)))
    for sc in ("backlog", "live"):
        lh, rs = results.get("loghaul " + sc), results.get("rsyslog " + sc)
        if lh and rs:
            print("  %s: loghaul / rsyslog lines/s = %.2f" % (sc, rs["secs"] / lh["secs"]))


def main():
    a = parse_args()
    if sanitized(lhtest.BIN_DIR):
        sys.stderr.write("warning: %s is a sanitizer build; numbers are not representative\n"
                         % lhtest.BIN_DIR)
    with_rsyslog = not a.no_rsyslog and os.access(RSYSLOGD, os.X_OK)
    if not a.no_rsyslog and not with_rsyslog:
        sys.stderr.write("warning: no rsyslogd (apt-get install rsyslog rsyslog-openssl): "
                         "loghaul only\n")
    run = lhtest.Run("bench-delivery")
    shm = tempfile.mkdtemp(prefix="lh-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm")
                           else None)
    try:
        sys.stderr.write("generating the corpus...\n")
        corpus, n, size = make_corpus(run, a)
        results = {}
        for sc in a.scenarios.split(","):
            results["loghaul " + sc] = run_loghaul(run, a, corpus, n, sc)
            if with_rsyslog:
                results["rsyslog " + sc] = run_rsyslog(run, a, corpus, n, sc, shm)
        report(a, n, size, results)
    except BaseException:
        run.dump_logs()
        run.cleanup(keep=True)
        shutil.rmtree(shm, ignore_errors=True)
        sys.stderr.write("run directory kept: %s\n" % run.dir)
        raise
    shutil.rmtree(shm, ignore_errors=True)
    run.cleanup(keep=a.keep)
    if a.keep:
        print("run directory: %s" % run.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
