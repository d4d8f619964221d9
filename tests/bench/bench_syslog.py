#!/usr/bin/env python3
"""Syslog input throughput: RFC 5424 messages sent as fast as the senders
can over TCP (octet-counted) and UDP into an agent with the null output,
counted by loghaul_agent_syslog_messages_total. Prints messages/s for both
and, for UDP, the loss rate (sent - received) / sent with the kernel's drop
count. Not a test (ctest never runs it): numbers, not verdicts.

  LH_BIN_DIR=build python3 tests/bench/bench_syslog.py --messages 500000

Use a build without sanitizers (ASan inflates CPU several times).
"""

import argparse
import multiprocessing
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lhtest  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
MSG = ("<165>1 2026-11-24T06:48:32.123456Z web-1.example.com bench 4242 ID47 "
       "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] "
       "GET /index.html 200 1043 0.004 request %08d done")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=500_000, help="per transport")
    ap.add_argument("--senders", type=int, default=2, help="parallel sending processes")
    ap.add_argument("--timeout", type=float, default=300)
    return ap.parse_args()


def tcp_sender(port, first, n, q):
    buf = bytearray()
    s = socket.create_connection(("127.0.0.1", port))
    for i in range(first, first + n):
        m = (MSG % i).encode()
        buf += b"%d %s" % (len(m), m)
        if len(buf) > 1 << 20:
            s.sendall(buf)
            buf.clear()
    s.sendall(buf)
    s.close()
    q.put(n)


def udp_sender(port, first, n, q):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    for i in range(first, first + n):
        try:
            s.sendto((MSG % i).encode(), ("127.0.0.1", port))
            sent += 1
        except OSError:
            pass  # ENOBUFS: the sender's own queue; not sent, not counted
    q.put(sent)


def blast(target, port, total, senders):
    q = multiprocessing.Queue()
    per = total // senders
    procs = [multiprocessing.Process(target=target, args=(port, k * per, per, q))
             for k in range(senders)]
    for p in procs:
        p.start()
    sent = sum(q.get() for _ in procs)
    for p in procs:
        p.join()
    return sent


def measure(agent, url, target, port, a):
    before = lhtest.metric(url, "loghaul_agent_syslog_messages_total") or 0
    cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
    sent = blast(target, port, a.messages, a.senders)
    t_sent = time.monotonic()
    # TCP: everything sent arrives. UDP: wait until the count stops moving.
    last, still = -1, 0
    deadline = t0 + a.timeout
    while time.monotonic() < deadline:
        got = (lhtest.metric(url, "loghaul_agent_syslog_messages_total") or 0) - before
        if got >= sent:
            break
        still = still + 1 if got == last else 0
        if target is udp_sender and still >= 10:
            break
        last = got
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    got = (lhtest.metric(url, "loghaul_agent_syslog_messages_total") or 0) - before
    return {"sent": sent, "got": int(got), "secs": elapsed, "send_secs": t_sent - t0,
            "cpu": cpu_seconds(agent.pid) - cpu0}


def main():
    a = parse_args()
    run = lhtest.Run("bench-syslog")
    cfg = {
        "agent": {"name": "bench", "data_dir": run.path("data"), "http": "127.0.0.1:0"},
        "inputs": [{"type": "syslog", "tag": "bench.syslog",
                    "listen": ["tcp://127.0.0.1:0", "udp://127.0.0.1:0"]}],
        "outputs": [{"type": "null", "match": "*"}],
    }
    p = run.start("agent", [lhtest.AGENT, "-c", lhtest.write_config(run.path("a.yaml"), cfg)])
    try:
        http = p.wait_log(r"http listening on (\S+)").group(1)
        tcp = int(p.wait_log(r"syslog listening on tcp://\S+:(\d+)").group(1))
        udp = int(p.wait_log(r"syslog listening on udp://\S+:(\d+)").group(1))
        url = "http://%s/metrics" % http
        rows = [("tcp (octet-counted)", measure(p, url, tcp_sender, tcp, a)),
                ("udp", measure(p, url, udp_sender, udp, a))]
        drops = lhtest.metric(url, "loghaul_agent_syslog_udp_drops_total") or 0
    finally:
        run.cleanup()
    print("%-20s %10s %10s %9s %12s %9s %8s" % ("transport", "sent", "received", "seconds",
                                                "messages/s", "agent cpu", "loss"))
    for name, r in rows:
        loss = (r["sent"] - r["got"]) / r["sent"] if r["sent"] else 0.0
        print("%-20s %10d %10d %9.2f %12.0f %8.2fs %7.2f%%" % (
            name, r["sent"], r["got"], r["secs"], r["got"] / r["secs"], r["cpu"], 100 * loss))
    print("kernel UDP drops counted by the agent: %d; message size %d bytes; %d senders"
          % (drops, len(MSG % 0), a.senders))
    return 0


if __name__ == "__main__":
    sys.exit(main())
