"""Query bounds (issue 10, item 5): a regex that backtracks catastrophically
fails its query at once with an error naming it, instead of costing
milliseconds per record; a query that is merely slow is stopped by
`search.query_timeout` with a 503 naming the setting; ingestion goes on
right after either.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_query_limits.py
"""

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import ForwardClient, check, cli, test  # noqa: E402

N_RECORDS = 20000
REGEX = 'message:~"(a+)+$"'


def ship(col, certs, entries, tag="limits.t"):
    c = ForwardClient("127.0.0.1", col.forward_port, lhtest.client_tls_context(certs),
                      server_hostname="127.0.0.1")
    try:
        ack, chunk = c.send_batch(tag, entries)
    finally:
        c.close()
    check(ack == {"ack": chunk}, "batch to %s not acked: %r" % (col.proc.name, ack))


def ship_many(col, certs, message, n=N_RECORDS, batch=2000):
    base = time.time_ns() - 60 * 10**9
    for start in range(0, n, batch):
        ship(col, certs, [(base + i * 1000, {"message": message, "host": "h%d" % (i % 3)})
                          for i in range(start, min(n, start + batch))])


def get(col, path, timeout=60, **params):
    """(status, body text, seconds taken)."""
    t0 = time.monotonic()
    status, body = lhtest.http_get(col.url + path + "?" + urllib.parse.urlencode(params),
                                   timeout=timeout)
    return status, body.decode("utf-8", "replace"), time.monotonic() - t0


def error_of(body):
    """The {"error": ...} answer as a dict, or {} when the body is not one."""
    try:
        o = json.loads(body)
    except ValueError:
        return {}
    return o if isinstance(o, dict) and "error" in o else {}


def ingest_recovers(col, certs):
    """A Forward batch sent right after the query is acked at once."""
    t0 = time.monotonic()
    ship(col, certs, [(time.time_ns(), {"message": "after the query", "host": "late"})])
    took = time.monotonic() - t0
    check(took < 3, "the batch after the query took %.1fs to be acked" % took)


def start(run, timeout="1s"):
    return lhtest.start_collector(run, "limits", extra={"search": {"query_timeout": timeout}})


@test
def catastrophic_regex_fails_fast(run):
    """a^30 b: (a+)+$ needs ~2^30 steps per record. Before the bounds this
    ran for minutes and answered an empty 200."""
    certs = run.certs()
    col = start(run, timeout="30s")
    ship_many(col, certs, "a" * 30 + "b")
    for path, params in (("/api/v1/search", {"q": REGEX}),
                         ("/api/v1/histogram", {"q": REGEX}),
                         ("/api/v1/stats", {"q": REGEX + " | stats count by host"})):
        status, text, took = get(col, path, **params)
        body = error_of(text)
        check(status == 400 and body, "%s: %d %r" % (path, status, text[:200]))
        check('regex "(a+)+$"' in body["error"] and "backtracks" in body["error"],
              "%s: the error names the regex: %r" % (path, body))
        check(body.get("position") == 0, "%s: points at the term: %r" % (path, body))
        check(took < 5, "%s: answered in %.1fs" % (path, took))
        ingest_recovers(col, certs)
    r = cli(["search", "-s", col.url, "--", REGEX])
    check(r.returncode == 2 and "(a+)+$" in r.stderr and "bad query" in r.stderr,
          "the CLI shows it as a query error: %d %r" % (r.returncode, r.stderr))
    status, text, _ = get(col, "/api/v1/search", q='message:~"^a+b$"', limit=5)
    check(status == 200 and text.count("\n") == 5, "a sane regex still answers: %d" % status)


@test
def slow_query_hits_the_time_budget(run):
    """a^17 b stays under the match limit (~1 ms per record): 20k records
    take over 20 s, so a 1 s budget must cut every scanning endpoint."""
    certs = run.certs()
    col = start(run, timeout="1s")
    ship_many(col, certs, "a" * 17 + "b")
    for path, params in (("/api/v1/search", {"q": REGEX}),
                         ("/api/v1/histogram", {"q": REGEX}),
                         ("/api/v1/stats", {"q": REGEX + " | stats count by host"})):
        status, text, took = get(col, path, **params)
        body = error_of(text)
        check(status == 503 and body, "%s: %d after %.1fs: %r" % (path, status, took, text[:200]))
        check("search.query_timeout" in body["error"] and "timed out" in body["error"],
              "%s: the error names the budget: %r" % (path, body))
        check(took < 5, "%s: answered in %.1fs with a 1s budget" % (path, took))
        ingest_recovers(col, certs)
    check(col.metric("loghaul_collector_query_timeouts_total") == 3, "timeouts counted")
    r = cli(["search", "-s", col.url, "--", REGEX])
    check(r.returncode == 1 and "503" in r.stderr and "search.query_timeout" in r.stderr,
          "the CLI reports the timeout: %d %r" % (r.returncode, r.stderr))
    status, text, _ = get(col, "/api/v1/search", q="host:late", limit=10)
    check(status == 200 and text.count("after the query") == 3,
          "records shipped after the 503s are stored and found: %r" % text)


@test
def live_tail_ends_with_the_regex_error(run):
    """A live tail cannot answer 400 mid-stream: its last line is the error,
    then the stream ends, rather than silently missing records."""
    certs = run.certs()
    col = start(run)
    host, port = col.http.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    conn.request("GET", "/api/v1/tail?" + urllib.parse.urlencode({"q": "tail " + REGEX}))
    resp = conn.getresponse()
    check(resp.status == 200, "tail opened: %d" % resp.status)
    ship(col, certs, [(time.time_ns(), {"message": "tail aaaa", "host": "h"})])
    ship(col, certs, [(time.time_ns(), {"message": "tail " + "a" * 30 + "b", "host": "h"})])
    lines = [json.loads(ln) for ln in resp]  # ends when the collector ends the stream
    conn.close()
    check(len(lines) == 2 and lines[0]["message"] == "tail aaaa", "first record: %r" % lines)
    check('regex "(a+)+$"' in lines[1].get("error", "") and lines[1].get("position") == 5,
          "last line is the error: %r" % lines)
    proc = subprocess.Popen([lhtest.CLI, "tail", "-s", col.url, "--", "tail " + REGEX],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lhtest.wait_until(lambda: col.metric("loghaul_collector_tail_clients") == 1, 10,
                      "loghaul tail connected")
    ship(col, certs, [(time.time_ns(), {"message": "tail " + "a" * 30 + "b", "host": "h"})])
    out, err = proc.communicate(timeout=20)
    check(proc.returncode == 2 and "(a+)+$" in err and "bad query" in err,
          "loghaul tail stops with the query error: %d %r" % (proc.returncode, err))


if __name__ == "__main__":
    sys.exit(lhtest.run(need=(lhtest.CLI, lhtest.COLLECTOR)))
