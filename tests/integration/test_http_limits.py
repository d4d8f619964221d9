#!/usr/bin/env python3
"""Both HTTP servers (the collector's API, the agent's status port) against
hostile clients: a 64 MiB header, a 32 MiB URI and a 200 MB body are each
answered 413 at once without the daemon's memory growing; a slowloris
client (a byte a second) is closed after the read timeout; at
max_connections a further connection waits while the open ones are still
served, and is answered once one closes. Every answer carries nosniff and
a frame-ancestors CSP."""

import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lhtest import (AGENT, COLLECTOR, check, collector_config, http_get, metric,  # noqa: E402
                    run, start_collector, test, wait_until, write_config)

MiB = 1 << 20


def start_agent_http(r, extra=None, name="agent"):
    """An agent with a syslog input and the stdout output; returns (proc, "host:port")."""
    agent = {"name": "web-1", "data_dir": r.path(name + "-data"), "http": "127.0.0.1:0"}
    agent.update(extra or {})
    cfg = {"agent": agent,
           "inputs": [{"type": "syslog", "tag": "sys", "listen": ["udp://127.0.0.1:0"]}],
           "outputs": [{"type": "stdout", "match": "*"}]}
    p = r.start(name, [AGENT, "-c", write_config(r.path(name + ".yaml"), cfg)])
    addr = p.wait_log(r"http listening on (\S+)").group(1)
    wait_until(lambda: http_get("http://%s/healthz" % addr)[0] == 200, 20, "agent /healthz")
    return p, addr


def start_collector_http(r, http=None):
    cfg = collector_config(r, "c1", tls=False)
    cfg["listen"]["http"].update(http or {})
    c = start_collector(r, "c1", cfg=cfg)
    return c.proc, c.http


def both(r, collector_http=None, agent_extra=None):
    """[(name, proc, addr)] for a collector and an agent."""
    cp, ca = start_collector_http(r, collector_http)
    ap, aa = start_agent_http(r, agent_extra)
    return [("collector", cp, ca), ("agent", ap, aa)]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def connect(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    return s


def status_of(data):
    """The status code of an HTTP answer's first line, or None."""
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data.split(b" ", 2)[1])


def flood(addr, head, filler, total, timeout=20):
    """Sends head, then filler up to total bytes, in 1 MiB pieces, until the
    server answers or closes. Returns (answer bytes, seconds taken)."""
    s = connect(addr)
    t0 = time.monotonic()
    answer = b""
    piece = filler * (MiB // len(filler))
    sent = 0
    try:
        s.sendall(head)
        while sent < total and time.monotonic() - t0 < timeout:
            if select.select([s], [], [], 0)[0]:
                break
            s.sendall(piece[:min(len(piece), total - sent)])
            sent += len(piece)
    except OSError:
        pass  # the server closed with our bytes unread; its answer may wait
    try:
        s.settimeout(max(1.0, timeout - (time.monotonic() - t0)))
        while b"\r\n" not in answer:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    except OSError:
        pass
    finally:
        s.close()
    return answer, time.monotonic() - t0


@test
def oversized_requests_answered_413_without_growth(r):
    for name, p, addr in both(r):
        before = rss_kib(p.pid)
        cases = [
            ("64 MiB header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", b"a", 64 * MiB,
             431),
            ("many headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-A: b\r\n",
             64 * MiB, 431),
            ("32 MiB URI", b"GET /healthz?q=", b"a", 32 * MiB, 414),
            ("200 MB body", b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 200000000"
                            b"\r\n\r\n", b"z", 200 * 1000 * 1000, 413),
        ]
        for what, head, filler, total, code in cases:
            answer, took = flood(addr, head, filler, total)
            check(status_of(answer) == code,
                  "%s: %s answered %r, not %d" % (name, what, answer[:80], code))
            check(took < 10, "%s: %s took %.1fs" % (name, what, took))
        grown = rss_kib(p.pid) - before
        check(grown < 8 * 1024, "%s: RSS grew by %d KiB" % (name, grown))
        check(http_get("http://%s/healthz" % addr)[0] == 200, name + " still answers")


@test
def slowloris_closed_after_read_timeout(r):
    for name, p, addr in both(r, {"read_timeout": "2s"}, {"http_read_timeout": "2s"}):
        s = connect(addr)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed = False
        for _ in range(15):  # a byte a second, for at most 15 s
            try:
                s.sendall(b"X")
                rd, _, _ = select.select([s], [], [], 1.0)
                if rd and not s.recv(4096):
                    closed = True
                    break
            except OSError:
                closed = True
                break
        took = time.monotonic() - t0
        s.close()
        check(closed, "%s: a slowloris client was still connected after %.0fs" % (name, took))
        check(took < 6, "%s: closed only after %.1fs (read_timeout 2s)" % (name, took))
        prefix = "loghaul_%s" % name
        n = metric("http://%s/metrics" % addr, prefix + "_http_refused_total",
                   {"reason": "read_timeout"})
        check((n or 0) >= 1, name + ": the timeout is counted")


def answer_within(s, seconds):
    """The bytes the server sends on s within seconds (b"" if none)."""
    rd, _, _ = select.select([s], [], [], seconds)
    return s.recv(65536) if rd else b""


GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@test
def connection_cap_waits_and_keeps_serving(r):
    for name, p, addr in both(r, {"max_connections": 4}, {"http_max_connections": 4}):
        held = [connect(addr) for _ in range(4)]
        # Served at once: the four are accepted (each answers a request).
        for s in held:
            s.sendall(GET)
            check(status_of(answer_within(s, 5)) == 200, name + ": a held connection answers")
        extra = connect(addr)  # the kernel completes it; the daemon must not take it yet
        extra.sendall(GET)
        check(answer_within(extra, 1.5) == b"",
              name + ": a fifth connection was served past max_connections 4")
        held[0].sendall(GET)
        check(status_of(answer_within(held[0], 5)) == 200,
              name + ": an open connection is still served at the cap")
        held.pop().close()
        check(status_of(answer_within(extra, 5)) == 200,
              name + ": the waiting connection is served once one closes")
        for s in held + [extra]:
            s.close()
        prefix = "loghaul_%s" % name
        paused = metric("http://%s/metrics" % addr, prefix + "_accept_paused_total",
                        {"listener": "http"})
        check((paused or 0) >= 1, name + ": reaching the cap is counted")


@test
def security_headers_on_every_answer(r):
    (_, _, caddr), (_, _, aaddr) = both(r)
    urls = ["http://%s%s" % (caddr, p) for p in
            ("/", "/api/v1/search?q=x", "/metrics", "/healthz", "/nope")]
    urls += ["http://%s%s" % (aaddr, p) for p in ("/metrics", "/healthz", "/status", "/nope")]
    import urllib.error
    import urllib.request
    for url in urls:
        try:
            resp = urllib.request.urlopen(url, timeout=10)
        except urllib.error.HTTPError as e:
            resp = e
        h = resp.headers
        check(h.get("X-Content-Type-Options") == "nosniff", "%s: no nosniff" % url)
        csps = h.get_all("Content-Security-Policy") or []
        check(len(csps) == 1 and "frame-ancestors 'none'" in csps[0],
              "%s: CSP %r" % (url, csps))
        if url.endswith(caddr + "/"):
            check("script-src 'unsafe-inline'" in csps[0], "the UI page's CSP lets it run")
        else:
            check(csps[0].startswith("default-src 'none'"), "%s: CSP %r" % (url, csps))


if __name__ == "__main__":
    sys.exit(run(need=(AGENT, COLLECTOR)))
