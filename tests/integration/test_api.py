"""The collector's search API beyond /api/v1/search: histogram buckets,
`| stats count by` rows (API and `loghaul stats`), the live tail (API and
`loghaul tail`), the web UI page, and the API token on all of them.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_api.py
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import ForwardClient, check, cli, status_kib, test, wait_until  # noqa: E402


def ship(col, certs, tag, entries):
    c = ForwardClient("127.0.0.1", col.forward_port, lhtest.client_tls_context(certs),
                      server_hostname="127.0.0.1")
    try:
        ack, chunk = c.send_batch(tag, entries)
    finally:
        c.close()
    check(ack == {"ack": chunk}, "batch to %s not acked: %r" % (col.proc.name, ack))


def api(col, path, headers=None, **params):
    status, body = lhtest.http_get(col.url + path + "?" + urllib.parse.urlencode(params),
                                   headers=headers)
    return status, (json.loads(body) if body.strip() else None)


class TailStream:
    """Reads /api/v1/tail line by line on a thread."""

    def __init__(self, col, query, headers=None):
        host, port = col.http.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.conn.request("GET", "/api/v1/tail?" + urllib.parse.urlencode({"q": query}),
                          headers=headers or {})
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        self.lines = []
        self.ended = False
        if self.resp.status == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for line in self.resp:
                self.lines.append(json.loads(line))
        except Exception:  # noqa: BLE001 - closed under the reader by close()
            pass
        self.ended = True

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def metric_now(col, name):
    return col.metric(name) or 0


@test
def histogram_buckets(run):
    certs = run.certs()
    col = lhtest.start_collector(run, "collector")
    t0 = (int(time.time()) // 600) * 600 - 1200  # a boundary of 1m and 2m buckets
    entries = [(t0 * 10**9 + 5 * 10**9, {"message": "hist a", "host": "h"}),
               (t0 * 10**9 + 59 * 10**9, {"message": "hist b", "host": "h"}),
               (t0 * 10**9 + 61 * 10**9, {"message": "hist c", "host": "h"}),
               (t0 * 10**9 + 185 * 10**9, {"message": "hist d other", "host": "h"})]
    ship(col, certs, "hist.t", entries)
    status, b = api(col, "/api/v1/histogram", q="hist", **{"from": t0 + 10, "to": t0 + 239,
                                                            "step": "1m"})
    check(status == 200, "histogram: %r %r" % (status, b))
    check(b == [{"t": t0, "count": 1}, {"t": t0 + 60, "count": 1},
                {"t": t0 + 120, "count": 0}, {"t": t0 + 180, "count": 1}],
          "aligned buckets, empty one included, window edges honoured: %r" % b)
    status, b = api(col, "/api/v1/histogram", q="other",
                    **{"from": t0, "to": t0 + 239, "step": "120s"})
    check(b == [{"t": t0, "count": 0}, {"t": t0 + 120, "count": 1}], "query filter: %r" % b)
    status, b = api(col, "/api/v1/histogram", q="", **{"from": 0, "to": 10**6, "step": "1s"})
    check(status == 400 and "too many buckets" in b["error"], "bucket cap: %r %r" % (status, b))
    status, b = api(col, "/api/v1/histogram", q="(", step="1m")
    check(status == 400 and "position" in b, "bad query: %r %r" % (status, b))


def stats_entries(base):
    rows = [("web-1", "error"), ("web-1", "error"), ("web-1", "info"), ("web-2", "error"),
            ("web-2", None), ("web-1", "error")]
    out = []
    for i, (host, level) in enumerate(rows):
        f = {"message": "stats line %d" % i, "host": host}
        if level:
            f["level"] = level
        out.append((base + i * 10**6, f))
    return out


@test
def stats_rows(run):
    certs = run.certs()
    col = lhtest.start_collector(run, "collector")
    ship(col, certs, "stats.t", stats_entries(time.time_ns() - 10**9))
    status, rows = api(col, "/api/v1/stats", q="stats | stats count by host, level")
    check(status == 200, "stats: %r %r" % (status, rows))
    check(rows == [{"host": "web-1", "level": "error", "count": 3},
                   {"host": "web-1", "level": "info", "count": 1},
                   {"host": "web-2", "level": "error", "count": 1},
                   {"host": "web-2", "level": None, "count": 1}],
          "groups by count, missing level as null: %r" % rows)
    status, same = api(col, "/api/v1/search", q="stats | stats count by host, level")
    check(status == 200 and same == rows, "search answers stats rows too: %r" % same)
    status, rows = api(col, "/api/v1/stats", q="level:error | stats count by tag")
    check(rows == [{"tag": "stats.t", "count": 4}], "filter + tag: %r" % rows)
    status, b = api(col, "/api/v1/stats", q="stats")
    check(status == 400 and "stats count by" in b["error"], "no stats clause: %r" % b)

    r = cli(["stats", "-s", col.url, "-o", "json", "stats | stats count by host"])
    check(r.returncode == 0, "loghaul stats: %d %s" % (r.returncode, r.stderr))
    check(json.loads(r.stdout) == [{"host": "web-1", "count": 4}, {"host": "web-2", "count": 2}],
          "cli json: %r" % r.stdout)
    r = cli(["stats", "-s", col.url, "-o", "text", "stats | stats count by host, level"])
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and lines[0].split() == ["host", "level", "count"],
          "text header: %r" % r.stdout)
    check(lines[1].split() == ["web-1", "error", "3"], "text first row: %r" % r.stdout)
    check(len({len(ln) for ln in lines}) == 1 and lines[-1].split() == ["web-2", "-", "1"],
          "columns aligned, counts right-aligned, null as '-': %r" % r.stdout)
    r = cli(["stats", "-s", col.url, "stats"])
    check(r.returncode == 2, "query without stats clause: %d %s" % (r.returncode, r.stderr))


@test
def stats_by_a_field_holding_nul(run):
    """A NUL in a group value used to answer 500 "out of memory"."""
    certs = run.certs()
    col = lhtest.start_collector(run, "collector")
    now = time.time_ns() - 10**9
    ship(col, certs, "nul.t", [(now + i, {"message": "nul %d" % i, "user": u, "host": "h"})
                               for i, u in enumerate(["a\x00b", "a\x00b", "a", "\x00"])])
    status, rows = api(col, "/api/v1/stats", q="nul | stats count by user")
    check(status == 200 and rows == [{"user": "a\x00b", "count": 2}, {"user": "\x00", "count": 1},
                                     {"user": "a", "count": 1}],
          "groups with NUL: %r %r" % (status, rows))
    r = cli(["stats", "-s", col.url, "-o", "json", "nul | stats count by user"])
    check(r.returncode == 0 and sorted(json.loads(r.stdout), key=lambda x: x["user"]) ==
          [{"user": "\x00", "count": 1}, {"user": "a", "count": 1}, {"user": "a\x00b", "count": 2}],
          "loghaul stats reads them: %d %r %r" % (r.returncode, r.stdout, r.stderr))
    r = cli(["stats", "-s", col.url, "-o", "text", "nul | stats count by user"])
    check(r.returncode == 0 and "a\\x00b" in r.stdout, "text shows NUL escaped: %r" % r.stdout)


@test
def far_time_bounds(run):
    """to=9999999999 is unix seconds past 2262: clamped, not refused."""
    certs = run.certs()
    col = lhtest.start_collector(run, "collector")
    ship(col, certs, "far.t", [(time.time_ns() - 10**9, {"message": "far one", "host": "h"})])
    for params in ({"to": "9999999999"}, {"to": "99999999999999999999999"},
                   {"from": "-9999999999", "to": "9999-12-31T23:59:59Z"},
                   {"from": "1000-01-01T00:00:00Z"}):
        status, body = lhtest.http_get(col.url + "/api/v1/search?" +
                                       urllib.parse.urlencode(dict(q="far", **params)))
        check(status == 200 and body.count(b"far one") == 1, "%r: %d %r" % (params, status, body))
    status, b = api(col, "/api/v1/search", q="far", to="tomorrow")
    check(status == 400 and "RFC 3339 or unix seconds" in b["error"] and "2262-04-11" in b["error"],
          "a bad time names the forms and the range: %r" % b)
    status, b = api(col, "/api/v1/search", q="far", **{"from": "9999999999", "to": "1"})
    check(status == 400 and b["error"] == "from is after to", "clamped bounds still ordered: %r" % b)
    status, b = api(col, "/api/v1/stats", q="far | stats count by host", to="9999999999")
    check(status == 200 and b == [{"host": "h", "count": 1}], "stats too: %r" % b)
    r = cli(["search", "-s", col.url, "-o", "json", "--to", "9999999999", "far"])
    check(r.returncode == 0 and r.stdout.count("far one") == 1,
          "the CLI takes it: %d %r" % (r.returncode, r.stderr))
    r = cli(["stats", "-s", col.url, "--from", "0", "--to", "9999999999",
             "far | stats count by host"])
    check(r.returncode == 0, "loghaul stats takes it: %d %r" % (r.returncode, r.stderr))
    r = cli(["search", "-s", col.url, "--to", "later", "far"])
    check(r.returncode == 2 and "2262-04-11" in r.stderr, "CLI names the range: %r" % r.stderr)


@test
def stats_fan_out(run):
    certs = run.certs()
    a = lhtest.start_collector(run, "col-a")
    b = lhtest.start_collector(run, "col-b")
    now = time.time_ns() - 10**9
    ship(a, certs, "fan.t", stats_entries(now))
    ship(b, certs, "fan.t", stats_entries(now)[:3])  # web-1 x3: error, error, info
    r = cli(["stats", "-s", a.url, "-s", b.url, "-o", "json", "stats | stats count by host"])
    check(r.returncode == 0, "loghaul stats: %d %s" % (r.returncode, r.stderr))
    check(json.loads(r.stdout) == [{"host": "web-1", "count": 7}, {"host": "web-2", "count": 2}],
          "summed per group: %r" % r.stdout)
    b.proc.stop()
    r = cli(["stats", "-s", a.url, "-s", b.url, "-o", "json", "stats | stats count by host"])
    out = json.loads(r.stdout)
    check(r.returncode == 0 and out[:2] == [{"host": "web-1", "count": 4},
                                            {"host": "web-2", "count": 2}],
          "one down still answers: %d %r" % (r.returncode, r.stdout))
    check(out[2:] == [{"partial": True, "failed": [b.url]}], "partial element: %r" % out)


@test
def live_tail(run):
    certs = run.certs()
    col = lhtest.start_collector(run, "collector")
    ship(col, certs, "tail.t", [(time.time_ns(), {"message": "old wanted", "host": "h"})])
    everything = TailStream(col, "")
    wanted = TailStream(col, "wanted")
    check(everything.resp.status == 200 and
          everything.resp.getheader("Content-Type") == "application/x-ndjson",
          "tail answers a stream: %r" % everything.resp.status)
    wait_until(lambda: metric_now(col, "loghaul_collector_tail_clients") == 2, 10,
               "two tail clients registered")
    ship(col, certs, "tail.t", [(time.time_ns(), {"message": "new wanted 1", "host": "h"}),
                                (time.time_ns(), {"message": "new other", "host": "h"})])
    ship(col, certs, "tail.t", [(time.time_ns(), {"message": "new wanted 2", "host": "h"})])
    wait_until(lambda: len(everything.lines) >= 3, 10, "three new records on the full tail")
    wait_until(lambda: len(wanted.lines) >= 2, 10, "two new records on the filtered tail")
    check([x["message"] for x in everything.lines] == ["new wanted 1", "new other",
                                                      "new wanted 2"],
          "new records only, in order: %r" % everything.lines)
    check([x["message"] for x in wanted.lines] == ["new wanted 1", "new wanted 2"],
          "query filter: %r" % wanted.lines)
    check(list(everything.lines[0])[:4] == ["time", "tag", "host", "message"],
          "section 2 rendering: %r" % everything.lines[0])
    everything.close()
    wanted.close()
    wait_until(lambda: metric_now(col, "loghaul_collector_tail_clients") == 0, 10,
               "tail clients gone after they closed")
    check(col.proc.alive(), "collector alive after clients left")


def tail_request(col, timeout=10):
    """A socket that asked for /api/v1/tail and reads nothing (a small
    receive buffer, so the collector keeps what it cannot send)."""
    host, port = col.http.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(timeout)
    s.connect((host, int(port)))
    s.sendall(b"GET /api/v1/tail?q=* HTTP/1.1\r\nHost: t\r\n\r\n")
    return s


@test
def tails_that_never_read_are_bounded(run):
    """260 tails that never read (more than listen.http.max_connections,
    256) while 40 MiB of records arrive: tails past search.max_tails answer
    503, the queued bytes stay under search.tail_max_memory (the tail with
    the most queued is cut off), a tail that reads keeps its records, and
    /healthz and a search answer meanwhile."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 1024:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    col = lhtest.start_collector(run, "collector", tls=False, env=lhtest.small_quarantine_env())
    reader = TailStream(col, "marker")
    socks = []
    try:
        for _ in range(260):
            socks.append(tail_request(col))
        wait_until(lambda: metric_now(col, "loghaul_collector_tail_clients") == 64, 20,
                   "64 tails open (search.max_tails)")
        extra = tail_request(col)
        head = extra.recv(4096).decode("latin-1")
        extra.close()
        check(head.startswith("HTTP/1.1 503") and "max_tails" in head,
              "a tail past search.max_tails: %r" % head[:300])
        before = status_kib(col.proc.pid, "VmHWM")
        fc = ForwardClient("127.0.0.1", col.forward_port, timeout=60)
        try:
            for b in range(40):
                now = time.time_ns()
                ack, chunk = fc.send_batch("tail.mem", [(now + k, {"message": "%d %d %s" % (
                    b, k, "y" * 1000)}) for k in range(1000)])
                check(ack == {"ack": chunk}, "batch %d not acked: %r" % (b, ack))
            ack, chunk = fc.send_batch("tail.mem", [(time.time_ns(), {"message": "marker"})])
            check(ack == {"ack": chunk}, "the marker was not acked")
        finally:
            fc.close()
        peak = status_kib(col.proc.pid, "VmHWM")
        check(lhtest.http_get(col.url + "/healthz", timeout=5)[0] == 200,
              "/healthz with the tails open")
        st, rows = api(col, "/api/v1/search", q="marker")
        check(st == 200, "a search with the tails open: %d" % st)
        wait_until(lambda: any(x.get("message") == "marker" for x in reader.lines), 10,
                   "the reading tail to get the marker")
        cut = metric_now(col, "loghaul_collector_tail_cut_total")
        check(cut >= 1, "no tail was cut off")
        col.proc.wait_log(r"cutting off the live tail of .*search.tail_max_memory", 5)
        print("  VmHWM %.1f MiB before the records, %.1f MiB after; %d tails cut off"
              % (before / 1024, peak / 1024, cut))
        # search.tail_max_memory (32 MiB) on top of Forward's decoding.
        check(peak < 160 * 1024, "VmHWM %.0f MiB with non-reading tails" % (peak / 1024))
    finally:
        for s in socks:
            s.close()
        reader.close()


@test
def tail_cli(run):
    certs = run.certs()
    col = lhtest.start_collector(run, "collector")
    p = subprocess.Popen([lhtest.CLI, "tail", "-s", col.url, "-o", "json", "level:error"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: metric_now(col, "loghaul_collector_tail_clients") == 1, 10,
                   "loghaul tail connected")
        ship(col, certs, "cli.t", [(time.time_ns(), {"message": "m1", "level": "error"}),
                                   (time.time_ns(), {"message": "m2", "level": "info"}),
                                   (time.time_ns(), {"message": "m3", "level": "error"})])
        got = []
        while len(got) < 2:
            line = p.stdout.readline()
            if not line:
                check(False, "tail output ended early: %r" % p.stderr.read())
            got.append(json.loads(line)["message"])
        check(got == ["m1", "m3"], "tail lines: %r" % got)
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=10)
        check(rc == 0, "^C ends loghaul tail with 0, not %d: %s" % (rc, p.stderr.read()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


@test
def ui_and_token(run):
    token = run.path("token")
    with open(token, "w") as f:
        f.write("tok-%s\n" % os.urandom(8).hex())
    tok = open(token).read().strip()
    cfg = lhtest.collector_config(run, "collector",
                                  extra={"listen": {"http": {"address": "127.0.0.1:0",
                                                             "auth_token_file": token}}})
    col = lhtest.start_collector(run, "collector", cfg=cfg)
    host, port = col.http.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/")
    r = conn.getresponse()
    page = r.read().decode()
    conn.close()
    check(r.status == 200 and r.getheader("Content-Type").startswith("text/html"),
          "UI page: %d %s" % (r.status, r.getheader("Content-Type")))
    for part in ("api/v1/search", "api/v1/histogram", "api/v1/tail", "localStorage", "Bearer"):
        check(part in page, "page uses %s" % part)
    check("http://" not in page and "https://" not in page, "no external assets")
    auth = {"Authorization": "Bearer " + tok}
    for path in ("/api/v1/histogram", "/api/v1/stats", "/api/v1/tail"):
        status, _ = api(col, path, q="x | stats count by host")
        check(status == 401, "%s without token: %d" % (path, status))
    status, _ = api(col, "/api/v1/histogram", headers=auth, q="x")
    check(status == 200, "histogram with token: %d" % status)
    status, _ = api(col, "/api/v1/stats", headers=auth, q="x | stats count by host")
    check(status == 200, "stats with token: %d" % status)
    t = TailStream(col, "x", headers=auth)
    check(t.resp.status == 200, "tail with token: %d" % t.resp.status)
    t.close()
    r = cli(["stats", "-s", col.url, "--token-file", token, "-o", "json",
             "x | stats count by host"])
    check(r.returncode == 0 and json.loads(r.stdout) == [], "cli stats with token: %d %s %s"
          % (r.returncode, r.stdout, r.stderr))


if __name__ == "__main__":
    sys.exit(lhtest.run(need=(lhtest.CLI, lhtest.COLLECTOR)))
