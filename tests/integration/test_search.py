"""`loghaul search` against real collectors: two collectors merged by time,
a stopped one reported as partial, a bad query's error and position from
the server, and the API token.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_search.py
"""

import json
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
def a_broad_search_costs_about_its_answer(run):
    """limit=100000 over 60,000 small records: a 12 MB answer once took the
    collector to 263 MiB (each kept hit had an 8 KiB buffer)."""
    col = lhtest.start_collector(run, "collector", tls=False, env=lhtest.small_quarantine_env())
    c = ForwardClient("127.0.0.1", col.forward_port, timeout=30)
    try:
        for b in range(60):
            now = time.time_ns()
            ack, chunk = c.send_batch("broad.t", [(now + k, {"message": "broad %d %d %s" % (
                b, k, "q" * 100)}) for k in range(1000)])
            check(ack == {"ack": chunk}, "batch %d not acked" % b)
    finally:
        c.close()
    before = lhtest.status_kib(col.proc.pid, "VmHWM")
    status, body = lhtest.http_get(col.url + "/api/v1/search?q=broad&limit=100000", timeout=60)
    check(status == 200, "search: HTTP %d" % status)
    lines = [ln for ln in body.split(b"\n") if ln.strip()]
    check(len(lines) == 60000, "%d records answered" % len(lines))
    peak = lhtest.status_kib(col.proc.pid, "VmHWM")
    print("  VmHWM %.1f MiB before, %.1f MiB after a %.1f MB answer"
          % (before / 1024, peak / 1024, len(body) / 1e6))
    check(peak - before < 100 * 1024, "the search took VmHWM from %.0f to %.0f MiB"
          % (before / 1024, peak / 1024))


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


def mp_raw_str(b):
    """A msgpack str holding bytes as they are, valid UTF-8 or not."""
    return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b


def ship_raw(col, certs, tag, ns, pairs):
    """One record whose keys and values are raw msgpack str bytes."""
    rec = bytes([0x80 | len(pairs)]) + b"".join(mp_raw_str(k) + mp_raw_str(v) for k, v in pairs)
    payload = b"\x92" + lhtest.mp_pack(lhtest.event_time(ns)) + rec
    chunk = os.urandom(16).hex()
    c = ForwardClient("127.0.0.1", col.forward_port, lhtest.client_tls_context(certs),
                      server_hostname="127.0.0.1")
    try:
        c.send_raw(lhtest.mp_pack([tag, payload, {"chunk": chunk, "size": 1}]))
        ack = c.read_obj()
    finally:
        c.close()
    check(ack == {"ack": chunk}, "raw record not acked: %r" % (ack,))


@test
def records_with_bad_bytes_are_valid_json(run):
    """Syslog and files keep bytes: invalid UTF-8, NUL and control
    characters, in values and keys. `loghaul search` prints every such
    record (it used to skip those holding NUL as "not a JSON object"), as
    JSON any parser reads, bad bytes as U+FFFD."""
    certs = run.certs()
    col = lhtest.start_collector(run, "collector")
    ns = time.time_ns() - 10**9
    ship_raw(col, certs, "bytes.t", ns, [(b"message", b"badutf \xff\xc0\xaf \xed\xa0\x80 end\xe2\x82"),
                                         (b"host", b"h\xfe")])
    ship_raw(col, certs, "bytes.t", ns + 1, [(b"message", b"badutf nul\x00 ctl\x01\x1b[31m\r\n"),
                                             (b"k\x00\xff", b"v\x80"), (b"host", b"h2")])
    r = cli(["search", "-s", col.url, "-o", "json", "badutf"])
    check(r.returncode == 0, "search: exit %d: %s" % (r.returncode, r.stderr))
    lines = r.stdout.splitlines()
    recs = [json.loads(ln) for ln in lines]
    check(len(recs) == 2, "both records, each one JSON line: %r" % lines)
    R = "\ufffd"
    check(recs[1]["message"] == "badutf %s%s%s %s%s%s end%s%s" % ((R,) * 8)
          and recs[1]["host"] == "h" + R, "bytes replaced: %r" % recs[1])
    check(recs[0]["message"] == "badutf nul\x00 ctl\x01\x1b[31m\r\n"
          and recs[0]["k\x00" + R] == "v" + R, "NUL and controls kept, escaped: %r" % recs[0])
    r = cli(["search", "-s", col.url, "-o", "text", "badutf"])
    out = r.stdout.splitlines()
    check(r.returncode == 0 and len(out) == 2 and "\x1b" not in r.stdout,
          "text output: one line each, controls escaped: %d %r" % (r.returncode, out))


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
