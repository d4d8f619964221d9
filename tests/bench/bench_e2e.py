#!/usr/bin/env python3
"""End-to-end throughput: a generated log file read from the head by an
agent, shipped over mTLS Forward to a collector, until the collector has
acknowledged every line. Prints a table of time, rate, CPU and peak memory
of each process, then how long two searches over the result take. Not a test (ctest never runs it): numbers, not verdicts.

  LH_BIN_DIR=build python3 tests/bench/bench_e2e.py --lines 1000000

Use a build without sanitizers (ASan inflates CPU and memory several times).
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


def cpu_seconds(pid):
    """utime + stime of a live process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def sanitized(bin_dir):
    try:
        with open(os.path.join(bin_dir, "CMakeCache.txt")) as f:
            return "LOGHAUL_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines to ship (default 1000000)")
    ap.add_argument("--kind", default="mixed", help="corpus kind for gen_corpus (default mixed)")
    ap.add_argument("--compress", choices=("gzip", "none"), default="none")
    ap.add_argument("--max-records", type=int, default=8192, help="agent batch.max_records")
    ap.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    return ap.parse_args()


def start(run, a, corpus):
    col = lhtest.start_collector(run, "collector", tls=True, mtls=True)
    cfg = lhtest.agent_config(run, "agent", paths=[corpus], tag="bench.e2e",
                              collectors=["127.0.0.1:%d" % col.forward_port],
                              batch={"max_records": a.max_records, "max_wait": "200ms"},
                              compress=a.compress)
    t0 = time.monotonic()
    agent = lhtest.start_agent(run, "agent", cfg=cfg)
    return col, agent, t0


def measure(col, agent, t0, a):
    deadline = t0 + a.timeout
    last = -1
    while True:
        n = col.records_in()
        if n >= a.lines:
            break
        if not (col.proc.alive() and agent.proc.alive()):
            raise SystemExit("a process died at %d records; see %s" % (n, col.proc.log_path))
        if time.monotonic() > deadline:
            raise SystemExit("timed out at %d of %d records" % (n, a.lines))
        if int(n) // 100000 != last:
            last = int(n) // 100000
            sys.stderr.write("  %9d records after %.1fs\n" % (n, time.monotonic() - t0))
        time.sleep(0.1)  # a polling interval, not a synchronisation
    secs = time.monotonic() - t0
    procs = (("agent", agent.proc.pid), ("collector", col.proc.pid))
    return secs, {name: (cpu_seconds(pid), peak_rss_mib(pid)) for name, pid in procs}


SEARCHES = (("search newest 100", ""), ("search word 'refused'", "refused"))


def time_searches(col):
    """Seconds each query of SEARCHES takes through `loghaul search`."""
    out = []
    for label, query in SEARCHES:
        t = time.monotonic()
        r = lhtest.cli(["search", "-s", col.url, "-o", "json", "--limit", "100", "--", query],
                       timeout=300)
        took = time.monotonic() - t
        if r.returncode != 0:
            raise SystemExit("%s failed: %s" % (label, r.stderr))
        out.append((label + " (s)", "%.3f" % took))
    return out


def report(a, size, secs, usage, searches):
    rows = [
        ("lines", "%d" % a.lines),
        ("bytes", "%.1f MB" % (size / 1e6)),
        ("seconds", "%.2f" % secs),
        ("lines/s", "%.0f" % (a.lines / secs)),
        ("MB/s", "%.1f" % (size / 1e6 / secs)),
    ]
    for name, (cpu, rss) in usage.items():
        rows.append(("%s CPU s" % name, "%.2f" % cpu))
        rows.append(("%s peak RSS" % name, "%.1f MiB" % rss))
    rows.extend(searches)
    w = max(len(k) for k, _ in rows)
    print("bench_e2e: agent -> collector over mTLS, compress=%s, batch=%d"
          % (a.compress, a.max_records))
    for k, v in rows:
        print("  %-*s  %s" % (w, k, v))


def main():
    a = parse_args()
    if sanitized(lhtest.BIN_DIR):
        sys.stderr.write("warning: %s is a sanitizer build; numbers are not representative\n"
                         % lhtest.BIN_DIR)
    run = lhtest.Run("bench")
    try:
        corpus = run.path("corpus.log")
        sys.stderr.write("generating %d %s lines...\n" % (a.lines, a.kind))
        gen_corpus.main(["--lines", str(a.lines), "--kind", a.kind, "--seed", "1", "--out", corpus])
        size = os.path.getsize(corpus)
        col, agent, t0 = start(run, a, corpus)
        secs, usage = measure(col, agent, t0, a)
        report(a, size, secs, usage, time_searches(col))
    except BaseException:
        run.dump_logs()
        run.cleanup(keep=True)
        sys.stderr.write("run directory kept: %s\n" % run.dir)
        raise
    run.cleanup(keep=a.keep)
    if a.keep:
        print("run directory: %s" % run.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
