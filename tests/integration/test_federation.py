"""Federated search: collectors with `peers` answer /api/v1/search,
/histogram and /stats from themselves and every peer, merged; peers may
list each other (local=1 stops the loop); a dead peer makes the answer
partial instead of failing it.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_federation.py
"""

import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import ForwardClient, check, test  # noqa: E402


def ship(col, certs, tag, entries):
    c = ForwardClient("127.0.0.1", col.forward_port, lhtest.client_tls_context(certs),
                      server_hostname="127.0.0.1")
    try:
        ack, chunk = c.send_batch(tag, entries)
    finally:
        c.close()
    check(ack == {"ack": chunk}, "batch to %s not acked: %r" % (col.proc.name, ack))


def get(col, path, headers=None, **params):
    status, body = lhtest.http_get(col.url + path + "?" + urllib.parse.urlencode(params),
                                   headers=headers, timeout=30)
    return status, body.decode()


def ndjson(body):
    lines = [json.loads(ln) for ln in body.splitlines() if ln]
    return ([x for x in lines if "time" in x], [x for x in lines if "time" not in x])


def start_pair(run, extra=None):
    """Two collectors on fixed HTTP ports, each listing the other."""
    ports = [lhtest.free_port(), lhtest.free_port()]
    cols = []
    for i, name in enumerate(("fed-a", "fed-b")):
        cfg = lhtest.collector_config(run, name, extra=extra)
        cfg["listen"]["http"]["address"] = "127.0.0.1:%d" % ports[i]
        cfg["peers"] = ["http://127.0.0.1:%d" % ports[1 - i]]
        cols.append(lhtest.start_collector(run, name, cfg=cfg))
    return cols


@test
def peers_listing_each_other(run):
    certs = run.certs()
    a, b = start_pair(run)
    base = (time.time_ns() // 10**9 // 60) * 60 * 10**9 - 300 * 10**9
    ship(a, certs, "fed.t", [(base + i * 10**9, {"message": "fed m%02d" % i, "host": "a"})
                             for i in range(0, 20, 2)])
    ship(b, certs, "fed.t", [(base + i * 10**9, {"message": "fed m%02d" % i, "host": "b"})
                             for i in range(1, 20, 2)])
    want = ["fed m%02d" % i for i in range(19, -1, -1)]
    for col in (a, b):
        status, body = get(col, "/api/v1/search", q="fed", limit=100)
        recs, ctl = ndjson(body)
        check(status == 200 and not ctl, "%s: %d %r" % (col.proc.name, status, ctl))
        check([x["message"] for x in recs] == want,
              "%s merges both, each record once, by time: %r" % (col.proc.name,
                                                                 [x["message"] for x in recs]))
    status, body = get(a, "/api/v1/search", q="fed", limit=5, order="asc")
    check([x["message"] for x in ndjson(body)[0]] == want[::-1][:5], "asc + global limit")
    status, body = get(a, "/api/v1/search", q="fed", local=1)
    check(len(ndjson(body)[0]) == 10, "local=1 answers alone: %r" % body)

    frm, to = base // 10**9, base // 10**9 + 59
    status, body = get(a, "/api/v1/histogram", q="fed", **{"from": frm, "to": to, "step": "10s"})
    check(status == 200 and json.loads(body) == [{"t": frm + 10 * k, "count": 10}
                                                  for k in range(2)] + [{"t": frm + 10 * k,
                                                                         "count": 0}
                                                                        for k in range(2, 6)],
          "histogram summed per bucket: %s" % body)
    status, body = get(b, "/api/v1/stats", q="fed | stats count by host")
    check(json.loads(body) == [{"host": "a", "count": 10}, {"host": "b", "count": 10}],
          "stats summed per group: %s" % body)
    r, recs, ctl = lhtest.search([a.url], "fed", "--limit", "3")
    check(r.returncode == 0 and [x["message"] for x in recs] == want[:3] and not ctl,
          "loghaul search through a federating collector: %r %r" % (recs, ctl))


@test
def dead_peer_is_partial(run):
    certs = run.certs()
    a, b = start_pair(run)
    ship(a, certs, "fed.t", [(time.time_ns(), {"message": "alive one", "host": "a"})])
    b.proc.stop()
    dead = "http://" + b.http
    status, body = get(a, "/api/v1/search", q="alive")
    recs, ctl = ndjson(body)
    check(status == 200 and [x["message"] for x in recs] == ["alive one"],
          "answered from itself: %d %s" % (status, body))
    check(ctl == [{"partial": True, "failed": [dead]}], "partial line: %r" % ctl)
    check(body.splitlines()[-1].startswith('{"partial"'), "the marker comes last")
    status, body = get(a, "/api/v1/stats", q="alive | stats count by host")
    check(json.loads(body) == [{"host": "a", "count": 1}, {"partial": True, "failed": [dead]}],
          "stats partial element: %s" % body)
    status, body = get(a, "/api/v1/histogram", q="alive", step="1h")
    h = json.loads(body)
    check(h[-1] == {"partial": True, "failed": [dead]} and sum(x.get("count", 0) for x in h) == 1,
          "histogram partial element: %s" % body)
    r, recs, ctl = lhtest.search([a.url], "alive")
    check(r.returncode == 0 and len(recs) == 1 and ctl == [{"partial": True, "failed": [dead]}],
          "the CLI passes the peer's partial marker on: %r %r" % (recs, ctl))


@test
def token_passed_to_peers(run):
    certs = run.certs()
    token = run.path("token")
    with open(token, "w") as f:
        f.write("fed-%s\n" % os.urandom(8).hex())
    auth = {"Authorization": "Bearer " + open(token).read().strip()}
    a, b = start_pair(run, extra={"listen": {"http": {"auth_token_file": token}}})
    ship(b, certs, "fed.t", [(time.time_ns(), {"message": "guarded", "host": "b"})])
    status, _ = get(a, "/api/v1/search", q="guarded")
    check(status == 401, "federated search needs the token too: %d" % status)
    status, body = get(a, "/api/v1/search", headers=auth, q="guarded")
    recs, ctl = ndjson(body)
    check(status == 200 and len(recs) == 1 and not ctl, "peer answered with the token: %s" % body)


@test
def cli_fan_out_counts_each_record_once(run):
    """c1 lists c2 as a peer. `loghaul search -s c1 -s c2` used to count
    c2's records twice (c1 answered for the tier, c2 again for itself):
    with several -s each collector answers for itself only (local=1)."""
    certs = run.certs()
    c2 = lhtest.start_collector(run, "fan-c2")
    cfg = lhtest.collector_config(run, "fan-c1")
    cfg["peers"] = [c2.url]
    c1 = lhtest.start_collector(run, "fan-c1", cfg=cfg)
    base = time.time_ns() - 600 * 10**9
    want = {}
    for col, name, n in ((c1, "c1", 3000), (c2, "c2", 2000)):
        for start in range(0, n, 1000):
            entries = [(base + (2 * i + (name == "c2")) * 10**6,
                        {"message": "fan %s %05d" % (name, i), "host": name})
                       for i in range(start, start + 1000)]
            ship(col, certs, "fan.t", entries)
            want.update({e[1]["message"]: 1 for e in entries})
    r, recs, ctl = lhtest.search([c1.url, c2.url], "fan", "--limit", "1000000")
    got = [x["message"] for x in recs]
    check(r.returncode == 0 and not ctl, "search: %d %r %r" % (r.returncode, r.stderr, ctl))
    check(len(got) == len(want) and set(got) == set(want),
          "each record exactly once: %d lines for %d records" % (len(got), len(want)))
    check([x["time"] for x in recs] == sorted((x["time"] for x in recs), reverse=True),
          "merged newest first")
    r, recs, _ = lhtest.search([c1.url], "fan", "--limit", "1000000")
    check(len(recs) == len(want), "one -s keeps the federated answer: %d" % len(recs))

    query = "fan | stats count by host"
    exact = [{"host": "c1", "count": 3000}, {"host": "c2", "count": 2000}]
    for servers in ([c1.url, c2.url], [c2.url, c1.url], [c1.url]):
        args = ["stats", "-o", "json"]
        for u in servers:
            args += ["-s", u]
        r = lhtest.cli(args + [query])
        check(r.returncode == 0 and json.loads(r.stdout) == exact,
              "stats over %r: exact counts: %r %r" % (servers, r.stdout, r.stderr))


if __name__ == "__main__":
    sys.exit(lhtest.run(need=(lhtest.CLI, lhtest.COLLECTOR)))
