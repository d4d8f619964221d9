"""`loghaul search` against real collectors: two collectors merged by time,
a stopped one reported as partial, a bad query's error and position from
the server, and the API token.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_search.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import ForwardClient, check, cli, test, wait_until  # noqa: E402


def ship(col, certs, tag, entries):
    c = ForwardClient("127.0.0.1", col.forward_port, lhtest.client_tls_context(certs),
                      server_hostname="127.0.0.1")
    try:
        ack, chunk = c.send_batch(tag, entries)
    finally:
        c.close()
    check(ack == {"ack": chunk}, "batch to %s not acked: %r" % (col.proc.name, ack))


@test
def two_collectors_merge_by_time(run):
    certs = run.certs()
    a = lhtest.start_collector(run, "col-a")
    b = lhtest.start_collector(run, "col-b")
    base = time.time_ns() - 60 * 10**9
    # a holds the even milliseconds, b the odd ones: only a merge interleaves them.
    ship(a, certs, "merge.t", [(base + i * 10**6, {"message": "merge m%02d" % i, "host": "a"})
                               for i in range(0, 20, 2)])
    ship(b, certs, "merge.t", [(base + i * 10**6, {"message": "merge m%02d" % i, "host": "b"})
                               for i in range(1, 20, 2)])

    r, recs, ctl = lhtest.search([a.url, b.url], "merge")
    check(r.returncode == 0 and not ctl, "search: %d %s %r" % (r.returncode, r.stderr, ctl))
    msgs = [x["message"] for x in recs]
    check(msgs == ["merge m%02d" % i for i in range(19, -1, -1)], "merged order: %r" % msgs)
    check([x["host"] for x in recs[:4]] == ["b", "a", "b", "a"], "hosts interleave")

    r, recs, _ = lhtest.search([a.url, b.url], "merge", "--order", "asc", "--limit", "5")
    check([x["message"] for x in recs] == ["merge m%02d" % i for i in range(5)],
          "asc with a global limit: %r" % [x["message"] for x in recs])

    r, recs, _ = lhtest.search([a.url, b.url], "host:a", "--limit", "3")
    check([x["message"] for x in recs] == ["merge m18", "merge m16", "merge m14"],
          "field query on both: %r" % recs)

    # Exact decimal seconds: a float would round the bounds by ~100 ns.
    def unix(ns):
        return "%d.%09d" % divmod(ns, 10**9)
    frm = unix(base + 5 * 10**6)
    to = unix(base + 9 * 10**6)
    r, recs, _ = lhtest.search([a.url, b.url], "merge", "--from", frm, "--to", to)
    got = sorted(x["message"] for x in recs)
    check(got == ["merge m%02d" % i for i in range(5, 10)],
          "--from/--to window (both ends inclusive): %r" % got)

    b.proc.stop()
    r, recs, ctl = lhtest.search([a.url, b.url], "merge")
    check(r.returncode == 0, "one collector down must still answer: %d" % r.returncode)
    check(len(recs) == 10 and all(x["host"] == "a" for x in recs), "records from a: %r" % recs)
    check(ctl == [{"partial": True, "failed": [b.url]}], "partial marker: %r" % ctl)
    check(b.url in r.stderr, "stderr names the failed collector: %r" % r.stderr)


@test
def bad_query_from_the_server(run):
    col = lhtest.start_collector(run, "collector")
    query = 'status:>=500 AND ( "unclosed'
    r = cli(["search", "-s", col.url, query])
    check(r.returncode == 2, "bad query: exit %d, want 2 (%s)" % (r.returncode, r.stderr))
    lines = r.stderr.splitlines()
    check(any(ln.strip() == query for ln in lines), "query echoed: %r" % r.stderr)
    i = [k for k, ln in enumerate(lines) if ln.strip() == query][0]
    check(i + 1 < len(lines) and lines[i + 1].strip() == "^", "caret line: %r" % r.stderr)


@test
def api_token(run):
    token = run.path("token")
    with open(token, "w") as f:
        f.write("tok-%s\n" % os.urandom(8).hex())
    cfg = lhtest.collector_config(run, "collector",
                                  extra={"listen": {"http": {"address": "127.0.0.1:0",
                                                             "auth_token_file": token}}})
    col = lhtest.start_collector(run, "collector", cfg=cfg)
    certs = run.certs()
    ship(col, certs, "auth.t", [(time.time_ns(), {"message": "guarded record", "host": "h"})])
    r = cli(["search", "-s", col.url, "guarded"])
    check(r.returncode == 1 and "unauthorized: use --token-file" in r.stderr,
          "without token: %d %r" % (r.returncode, r.stderr))
    r, recs, _ = lhtest.search([col.url], "guarded", "--token-file", token)
    check(r.returncode == 0 and len(recs) == 1, "with token: %d %s" % (r.returncode, r.stderr))
    wait_until(lambda: lhtest.http_get(col.url + "/metrics")[0] == 401, 5, "/metrics to need the token")


if __name__ == "__main__":
    sys.exit(lhtest.run())
