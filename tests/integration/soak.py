"""The hostile soak, shared by tests/integration/test_soak.py (bounded, a
verdict) and tests/bench/bench_soak.py (longer, a table of memory).

An agent tails a file that a writer appends to at a steady rate and ships
it to a collector over TLS with a shared key, while tests/tools/hostile.py,
a second process, throws every hostile input it knows at both daemons. At
the end every line the writer wrote must be searchable exactly once, both
daemons must still be up, and their memory is sampled along the way.
"""

import os
import re
import subprocess
import sys
import threading
import time

import lhtest

HOSTILE = os.path.join(lhtest.SRC_DIR, "tests", "tools", "hostile.py")
SOAK_TAG = "soak.app"
SHARED_KEY = "soak-shared-key"


def rss_mib(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def start_daemons(run, query_timeout="3s"):
    extra = {"search": {"query_timeout": query_timeout}} if query_timeout else {}
    col = lhtest.start_collector(run, "collector", mtls=False, shared_key=SHARED_KEY,
                                 extra=extra)
    log = run.path("app.log")
    open(log, "w").close()
    cfg = lhtest.agent_config(run, "agent", [log], [col.forward], tag=SOAK_TAG,
                              client_cert=False, shared_key=SHARED_KEY,
                              batch={"max_records": 500, "max_wait": "200ms"})
    cfg["inputs"].append({"type": "syslog", "tag": "soak.syslog",
                          "listen": ["tcp://127.0.0.1:0", "udp://127.0.0.1:0"]})
    cfg["outputs"][0].update({"backoff_max": "1s", "ack_timeout": "10s"})
    cfg["agent"]["shutdown_timeout"] = "5s"
    agent = lhtest.start_agent(run, cfg=cfg)
    bound = lhtest.wait_until(lambda: re.findall(r"syslog listening on (\S+)", agent.proc.log())
                              if len(re.findall(r"syslog listening on", agent.proc.log())) >= 2
                              else None, 20, "both syslog listeners")
    tcp = [b.split("://", 1)[1] for b in bound if b.startswith("tcp://")][0]
    udp = [b.split("://", 1)[1].split()[0] for b in bound if b.startswith("udp://")][0]
    return col, agent, log, tcp, udp


class Sampler(threading.Thread):
    """Samples both daemons' RSS once a second until stopped."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = pids
        self.samples = {name: [] for name in pids}
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            for name, pid in self.pids.items():
                self.samples[name].append((time.monotonic(), rss_mib(pid)))
            self.stop_ev.wait(1.0)


def run_soak(run, seconds, rate, warmup=10, query_timeout="3s"):
    """Runs the soak for `seconds` with the writer at `rate` lines/s.
    Returns a dict of results; raises TestFailure on a lost, duplicated or
    unsearchable line or a daemon that died."""
    col, agent, log, tcp, udp = start_daemons(run, query_timeout)
    certs = run.certs()
    report = run.path("hostile.json")
    n = int(seconds * rate)
    burst = max(1, rate // 20)
    writer = lhtest.Writer(log, 0, n, burst=burst, pause=burst / float(rate))
    sampler = Sampler({"collector": col.proc.popen.pid, "agent": agent.proc.popen.pid})
    hostile = subprocess.Popen(
        [sys.executable, HOSTILE, "--forward", col.forward, "--http", col.http,
         "--agent-http", agent.http, "--syslog-tcp", tcp, "--syslog-udp", udp,
         "--ca", certs["ca"], "--shared-key", SHARED_KEY, "--duration", str(seconds),
         "--report", report],
        stdout=open(run.path("hostile.log"), "w"), stderr=subprocess.STDOUT)
    t0 = time.monotonic()
    writer.start()
    sampler.start()
    try:
        hostile.wait(seconds + 240)
    finally:
        if hostile.poll() is None:
            hostile.kill()
            hostile.wait()
    writer.join(seconds + 60)
    lhtest.check(not writer.is_alive(), "the writer did not finish")
    lhtest.check(col.proc.alive(), "the collector died under hostile load")
    lhtest.check(agent.proc.alive(), "the agent died under hostile load")
    got = lhtest.wait_all([col], n, timeout=180, query="tag:" + SOAK_TAG)
    lhtest.check_exactly_once(got, n)
    sampler.stop_ev.set()
    sampler.join(5)
    lhtest.check(col.proc.alive() and agent.proc.alive(), "a daemon died at the end")
    res = {"lines": n, "seconds": time.monotonic() - t0, "hostile_rc": hostile.returncode}
    for name, pid in (("collector", col.proc.popen.pid), ("agent", agent.proc.popen.pid)):
        s = sampler.samples[name]
        after = [v for t, v in s if t - t0 >= warmup] or [v for _, v in s]
        res[name] = {"rss_warm": after[0], "rss_end": rss_mib(pid), "rss_max": max(after),
                     "hwm": rss_mib(pid, "VmHWM")}
    with open(report) as f:
        import json
        res["hostile"] = json.load(f)
    return res
