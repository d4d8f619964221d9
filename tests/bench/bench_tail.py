#!/usr/bin/env python3
"""Tail throughput: the agent reads a corpus of ~200-byte lines from the
head of one file and hands every record to the `null` output (counted and
acknowledged, nothing sent). Prints lines/s and MB/s with no parser and
with `parser: json` (a JSON corpus), the agent's CPU seconds and peak RSS
(VmHWM), and the agent's idle CPU while it follows 1000 files that do not
change. Not a test (ctest never runs it).

  LH_BIN_DIR=build-rel python3 tests/bench/bench_tail.py             # 2M lines
  LH_BIN_DIR=build-rel python3 tests/bench/bench_tail.py --gib 1     # the 1 GiB corpus

A run ends when loghaul_agent_records_read_total and then
loghaul_agent_records_acked_total{output="null"} on /metrics reach the
line count (polled every 10 ms). The agent is pinned to one core. Use a
Release build (-DCMAKE_BUILD_TYPE=Release, no sanitizers). Targets (issue
3): >= 4,000,000 lines/s without a parser, >= 600,000 with json, peak RSS
<= 32 MB.

The 1 GiB run on the 2-core development VM (corpus in the page cache,
agent pinned to one core):

  no parser    5,548,680 nginx lines  6.0 M lines/s  1167 MB/s  RSS 8.6 MiB
  idle         1000 files, 10 s: 0.02 CPU s (0.2 % of a core)

parser json, 2 M JSON lines (default size): 946 k lines/s, 216 MB/s, RSS
9.0 MiB with the yajl event parser (jansson's tree parser managed 251 k).
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import gen_corpus  # noqa: E402
import lhtest  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
BASE_LINES = 200_000  # generated once, repeated up to the requested size


def cpu_seconds(pid):
    """utime + stime of a live process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def hwm_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def make_corpus(run, kind, lines, gib):
    """A corpus file of `kind` lines; returns (path, lines, bytes)."""
    base = run.path("base-%s.log" % kind)
    gen_corpus.main(["--lines", str(min(BASE_LINES, lines or BASE_LINES)), "--kind", kind,
                     "--seed", "1", "--out", base])
    with open(base, "rb") as f:
        block = f.read()
    os.remove(base)
    per_line = len(block) / block.count(b"\n")
    want = int(gib * (1 << 30) / per_line) if gib else lines
    base_lines = block.splitlines(keepends=True)
    path = run.path("corpus-%s.log" % kind)
    with open(path, "wb") as f:
        left = want
        while left >= len(base_lines):
            f.write(block)
            left -= len(base_lines)
        f.write(b"".join(base_lines[:left]))
    return path, want, os.path.getsize(path)


def agent_cfg(run, name, paths, parser=None):
    inp = {"type": "file", "tag": "bench", "paths": paths, "read_from": "head"}
    if parser:
        inp["parser"] = parser
    return {"agent": {"name": name, "data_dir": run.path(name + "-data"), "http": "127.0.0.1:0"},
            "inputs": [inp], "outputs": [{"type": "null", "match": "*"}]}


def acked(agent):
    return agent.metric("loghaul_agent_records_acked_total", {"output": "null"}) or 0


def read(agent):
    return agent.metric("loghaul_agent_records_read_total", {"input": "bench"}) or 0


def wait_count(agent, count, n, timeout):
    """Polls count(agent) on /metrics until it reaches n. Returns (end,
    first): the monotonic time it did, and (time, count) of the first poll
    that saw records, for a rate without the start-up."""
    deadline = time.monotonic() + timeout
    first = None
    while True:
        got = count(agent)
        now = time.monotonic()
        if got > 0 and first is None:
            first = (now, got)
        if got >= n:
            return now, first
        if not agent.proc.alive():
            raise SystemExit("agent exited (status %s) at %d of %d lines"
                             % (agent.proc.popen.returncode, got, n))
        if now > deadline:
            raise SystemExit("timed out at %d of %d lines" % (got, n))
        time.sleep(0.01)  # a polling interval, not a synchronisation


def throughput(run, name, corpus, n, size, parser, timeout):
    """Lines/s between the first poll that saw records read and the one
    that saw all n read (the last batch's max_wait is no reading time);
    all n must also be acknowledged by the null output."""
    t_start = time.monotonic()
    agent = lhtest.start_agent(run, name, cfg=agent_cfg(run, name, [corpus], parser))
    if os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(agent.proc.pid, {1})
    t_end, (t_first, c_first) = wait_count(agent, read, n, timeout)
    t_acked, _ = wait_count(agent, acked, n, timeout)
    cpu = cpu_seconds(agent.proc.pid)
    rss = hwm_mib(agent.proc.pid)
    agent.proc.stop()
    rate = (n - c_first) / (t_end - t_first) if t_end > t_first else float("inf")
    return {"what": name, "lines": n, "wall": t_acked - t_start, "rate": rate,
            "mbs": rate * size / n / 1e6, "cpu": cpu, "per_cpu": n / cpu if cpu else float("inf"),
            "rss": rss}


def idle(run, files, seconds):
    d = run.path("idle")
    os.makedirs(d)
    for i in range(files):
        with open(os.path.join(d, "f%04d.log" % i), "w") as f:
            f.write("file %d line 0\nfile %d line 1\n" % (i, i))
    agent = lhtest.start_agent(run, "idle", cfg=agent_cfg(run, "idle", [os.path.join(d, "*.log")]))
    wait_count(agent, acked, 2 * files, 60)
    time.sleep(1.0)  # let the last checkpoint save and timers settle before measuring
    c0, t0 = cpu_seconds(agent.proc.pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(agent.proc.pid), time.monotonic()
    rss = hwm_mib(agent.proc.pid)
    agent.proc.stop()
    return {"files": files, "seconds": t1 - t0, "cpu": c1 - c0,
            "pct": 100.0 * (c1 - c0) / (t1 - t0), "rss": rss}


def sanitized(bin_dir):
    try:
        with open(os.path.join(bin_dir, "CMakeCache.txt")) as f:
            return "LOGHAUL_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=2_000_000, help="lines per corpus (default 2M)")
    ap.add_argument("--gib", type=float, help="corpus size in GiB instead of --lines")
    ap.add_argument("--kind", default="nginx", help="gen_corpus kind of the no-parser corpus")
    ap.add_argument("--no-json", action="store_true", help="skip the parser: json run")
    ap.add_argument("--idle-files", type=int, default=1000)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=900, help="per run, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    a = ap.parse_args()
    if sanitized(lhtest.BIN_DIR):
        sys.stderr.write("warning: %s is a sanitizer build; numbers mean little\n"
                         % lhtest.BIN_DIR)
    run = lhtest.Run("bench-tail")
    rows = []
    try:
        corpus, n, size = make_corpus(run, a.kind, a.lines, a.gib)
        rows.append(throughput(run, "no parser", corpus, n, size, None, a.timeout))
        os.remove(corpus)
        if not a.no_json:
            corpus, n, size = make_corpus(run, "json", a.lines, a.gib)
            rows.append(throughput(run, "parser json", corpus, n, size, "json", a.timeout))
            os.remove(corpus)
        idl = idle(run, a.idle_files, a.idle_seconds) if a.idle_files else None
    finally:
        run.cleanup(keep=a.keep)
    print("wall s: agent start to the last record acknowledged; lines/s and MB/s: while "
          "reading (first to last record read); CPU s: the agent's whole life")
    print("%-12s %11s %8s %12s %8s %8s %14s %9s" % ("run", "lines", "wall s", "lines/s", "MB/s",
                                                     "CPU s", "lines/CPU-s", "RSS MiB"))
    for r in rows:
        print("%-12s %11d %8.2f %12.0f %8.1f %8.2f %14.0f %9.1f"
              % (r["what"], r["lines"], r["wall"], r["rate"], r["mbs"], r["cpu"], r["per_cpu"],
                 r["rss"]))
    if idl:
        print("idle: %d files for %.1f s: %.2f CPU s (%.2f%% of a core), RSS %.1f MiB"
              % (idl["files"], idl["seconds"], idl["cpu"], idl["pct"], idl["rss"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
