#!/usr/bin/env python3
"""Collector outputs: with store.enabled false a `null` output is the
durable end (batches are counted, acked, and nothing is stored); without
any output a disabled store is refused. The `file` output appends each
matching batch as NDJSON under a path made from the tag, before the ack.
The `forward` output spools each matching batch durably and ships it on
to a downstream Forward receiver (here another collector), resending what
was not acknowledged; `http` POSTs to a real HTTP server on loopback;
`kafka` produces to librdkafka's mock cluster (tests/tools/kafka_mock.c)."""

import http.server
import json
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import check, test  # noqa: E402

STORE_OFF = {"store": {"enabled": False}, "outputs": [{"type": "null"}]}


def entries(lo, hi):
    return [(1_700_000_000_000_000_000 + i, {"message": "line %d" % i})
            for i in range(lo, hi)]


@test
def null_output_acks_and_stores_nothing(run):
    col = lhtest.start_collector(run, tls=False, extra=STORE_OFF)
    cl = lhtest.ForwardClient(col.forward_host, col.forward_port)
    for k in range(3):
        ack, _ = cl.send_batch("t.null", entries(100 * k, 100 * k + 100), chunk="chunk-%d" % k)
        check(ack == {"ack": "chunk-%d" % k}, "batch %d acked: %r" % (k, ack))
    cl.close()
    check(col.records_in() == 300, "records_in %r" % col.records_in())
    out = col.metric("loghaul_collector_output_records_total", {"output": "null"})
    check(out == 300, "null output counted %r records" % out)
    stored = col.metric("loghaul_collector_records_stored_total") or 0
    check(stored == 0, "%r records stored with the store off" % stored)
    r, recs, _ = lhtest.search([col.url], "", "--limit", "10")
    check(r.returncode == 0 and recs == [], "search found %r" % recs[:3])


@test
def store_off_without_outputs_is_refused(run):
    cfg = lhtest.collector_config(run, "collector", tls=False, extra={"store": {"enabled": False}})
    path = lhtest.write_config(run.path("c.yaml"), cfg)
    r = subprocess.run([lhtest.COLLECTOR, "-c", path, "--check-config"], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 2, "exit %d, stderr %r" % (r.returncode, r.stderr))
    check("no outputs" in r.stderr, "message: %r" % r.stderr)
    cfg["outputs"] = [{"type": "null"}]
    lhtest.write_config(path, cfg)
    r = subprocess.run([lhtest.COLLECTOR, "-c", path, "--check-config"], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0, "with a null output: exit %d, %r" % (r.returncode, r.stderr))


def ndjson(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@test
def file_output_writes_matching_batches_as_ndjson_per_tag(run):
    out = run.path("out")
    col = lhtest.start_collector(run, tls=False, extra={"outputs": [
        {"type": "file", "match": "app.*", "path": out + "/${tag}.ndjson"}]})
    cl = lhtest.ForwardClient(col.forward_host, col.forward_port)
    for tag, lo in (("app.web", 0), ("app.db", 100), ("other", 200), ("app.web", 300)):
        ack, chunk = cl.send_batch(tag, entries(lo, lo + 100))
        check(ack == {"ack": chunk}, "%s acked: %r" % (tag, ack))
    # A retried chunk is acked again and written once.
    ack, _ = cl.send_batch("app.db", entries(100, 200), chunk=chunk)
    cl.close()
    web, db = ndjson(out + "/app.web.ndjson"), ndjson(out + "/app.db.ndjson")
    check([r["message"] for r in web] == ["line %d" % i for i in list(range(100)) +
                                          list(range(300, 400))], "app.web lines")
    check([r["message"] for r in db] == ["line %d" % i for i in range(100, 200)],
          "app.db lines: %d" % len(db))
    check(sorted(os.listdir(out)) == ["app.db.ndjson", "app.web.ndjson"],
          "files: %r (no match for 'other')" % os.listdir(out))
    r = web[0]
    check(r["tag"] == "app.web" and r["host"] and r["time"].startswith("2023-11-14T22:13:20"),
          "record fields: %r" % r)
    n = col.metric("loghaul_collector_output_records_total", {"output": "file"})
    check(n == 300, "file output counted %r" % n)
    # The store still has everything, the non-matching tag included.
    rs, recs, _ = lhtest.search([col.url], "", "--limit", "1000")
    check(rs.returncode == 0 and len(recs) == 400, "stored %d" % len(recs))


@test
def file_output_keeps_a_hostile_tag_inside_its_directory(run):
    out = run.path("out")
    col = lhtest.start_collector(run, tls=False, extra={"outputs": [
        {"type": "file", "path": out + "/${tag}.ndjson"}]})
    cl = lhtest.ForwardClient(col.forward_host, col.forward_port)
    ack, chunk = cl.send_batch("../../escape/..", entries(0, 3))
    check(ack == {"ack": chunk}, "acked: %r" % (ack,))
    cl.close()
    names = os.listdir(out)
    check(len(names) == 1 and "/" not in names[0] and not names[0].startswith("."),
          "files: %r" % names)
    check(not os.path.exists(run.path("escape")), "a file escaped the directory")
    check(len(ndjson(os.path.join(out, names[0]))) == 3, "three lines")


@test
def file_output_follows_a_rotated_file(run):
    out = run.path("out")
    col = lhtest.start_collector(run, tls=False, extra={"outputs": [
        {"type": "file", "path": out + "/all.ndjson"}]})
    cl = lhtest.ForwardClient(col.forward_host, col.forward_port)
    cl.send_batch("t", entries(0, 10))
    os.rename(out + "/all.ndjson", out + "/all.ndjson.1")
    cl.send_batch("t", entries(10, 20))
    cl.close()
    check(len(ndjson(out + "/all.ndjson.1")) == 10, "the rotated file keeps its 10")
    check([r["message"] for r in ndjson(out + "/all.ndjson")] ==
          ["line %d" % i for i in range(10, 20)], "the new file has the next 10")


@test
def a_failed_output_write_is_retried_not_lost(run):
    # The store is on too: the batch must not be recorded as stored (and a
    # resend then acked as a duplicate) while an output has not taken it.
    out = run.path("out")
    os.makedirs(out + "/app.web.ndjson")  # opening it fails: EISDIR
    col = lhtest.start_collector(run, tls=False, extra={"outputs": [
        {"type": "file", "match": "app.*", "path": out + "/${tag}.ndjson"}]})
    cl = lhtest.ForwardClient(col.forward_host, col.forward_port)
    ack, chunk = cl.send_batch("app.web", entries(0, 100))
    check(ack is None, "a batch the output could not write was acked: %r" % (ack,))
    cl.close()
    errors = col.metric("loghaul_collector_output_errors_total", {"output": "file"})
    check(errors == 1, "output errors %r" % errors)
    os.rmdir(out + "/app.web.ndjson")  # the fault is gone; the sender resends
    cl = lhtest.ForwardClient(col.forward_host, col.forward_port)
    ack, _ = cl.send_batch("app.web", entries(0, 100), chunk=chunk)
    cl.close()
    check(ack == {"ack": chunk}, "the resend acked: %r" % (ack,))
    check(len(ndjson(out + "/app.web.ndjson")) == 100, "the file has the batch once")
    rs, recs, _ = lhtest.search([col.url], "", "--limit", "1000")
    check(rs.returncode == 0 and len(recs) == 100, "stored once: %d" % len(recs))


def stored(col, q=""):
    r, recs, _ = lhtest.search([col.url], q, "--limit", "100000")
    check(r.returncode == 0, "search failed: %s" % r.stderr)
    return recs


def relay(run, down_port, extra_out=None, name="relay"):
    out = {"type": "forward", "match": "app.*", "collectors": ["127.0.0.1:%d" % down_port],
           "ack_timeout": "2s"}
    out.update(extra_out or {})
    return lhtest.start_collector(run, name, tls=False,
                                  extra={"store": {"enabled": False}, "outputs": [out]})


@test
def forward_output_relays_matching_batches_downstream(run):
    down = lhtest.start_collector(run, "down", tls=False)
    up = relay(run, int(down.forward_port))
    cl = lhtest.ForwardClient(up.forward_host, up.forward_port)
    for tag, lo in (("app.web", 0), ("other", 100), ("app.db", 200)):
        ack, chunk = cl.send_batch(tag, entries(lo, lo + 100))
        check(ack == {"ack": chunk}, "%s acked upstream: %r" % (tag, ack))
    cl.close()
    lhtest.wait_until(lambda: len(stored(down)) >= 200, 20, "200 records downstream")
    recs = stored(down)
    got = sorted(r["message"] for r in recs)
    want = sorted("line %d" % i for i in list(range(100)) + list(range(200, 300)))
    check(got == want, "downstream has %d records, not the matching 200 once" % len(got))
    check({r["tag"] for r in recs} == {"app.web", "app.db"}, "tags kept")
    check(all(r["time"].startswith("2023-11-14T22:13:20") for r in recs), "times kept")
    acks = up.metric("loghaul_collector_output_acks_total", {"output": "forward"})
    check(acks == 2, "two downstream acks: %r" % acks)


@test
def forward_output_spools_while_the_receiver_is_down(run):
    port = lhtest.free_port()
    up = relay(run, port)
    cl = lhtest.ForwardClient(up.forward_host, up.forward_port)
    for k in range(5):
        ack, chunk = cl.send_batch("app.x", entries(100 * k, 100 * k + 100))
        check(ack == {"ack": chunk}, "acked upstream while downstream is down: %r" % (ack,))
    cl.close()
    # The relay restarts with its spool, then the receiver comes up.
    up.proc.stop()
    run.procs.remove(up.proc)
    up = relay(run, port, name="relay")
    cfg = lhtest.collector_config(run, "down", tls=False)
    cfg["listen"]["forward"]["address"] = "127.0.0.1:%d" % port
    down = lhtest.start_collector(run, "down", cfg=cfg)
    lhtest.wait_until(lambda: len(stored(down)) >= 500, 30, "500 records downstream")
    got = sorted(int(r["message"].split()[1]) for r in stored(down))
    check(got == list(range(500)), "downstream has %d records, not 0..499 once" % len(got))


@test
def forward_output_fails_over_to_the_next_receiver(run):
    down = lhtest.start_collector(run, "down", tls=False)
    dead = "127.0.0.1:%d" % lhtest.free_port()
    up = relay(run, 0, {"collectors": [dead, "127.0.0.1:%d" % down.forward_port]})
    cl = lhtest.ForwardClient(up.forward_host, up.forward_port)
    ack, chunk = cl.send_batch("app.fo", entries(0, 100))
    check(ack == {"ack": chunk}, "acked upstream: %r" % (ack,))
    cl.close()
    lhtest.wait_until(lambda: len(stored(down)) >= 100, 20, "100 records on the second receiver")
    check(len(stored(down)) == 100, "each record once")


@test
def forward_output_with_tls_and_shared_key(run):
    c = run.certs()
    down = lhtest.start_collector(run, "down", tls=True, mtls=False, shared_key="relay-key")
    up = relay(run, int(down.forward_port), {
        "shared_key": "relay-key",
        "tls": {"enabled": True, "ca": c["ca"], "verify": True}})
    cl = lhtest.ForwardClient(up.forward_host, up.forward_port)
    ack, chunk = cl.send_batch("app.tls", entries(0, 50))
    check(ack == {"ack": chunk}, "acked upstream: %r" % (ack,))
    cl.close()
    lhtest.wait_until(lambda: len(stored(down)) >= 50, 20, "50 records over TLS + shared key")


class Endpoint:
    """A real HTTP server on loopback standing in for a bulk endpoint: it
    answers the first `fail` requests with `fail_status`, then 200 with
    `{"errors": false}`, and keeps (path, body) of every request."""

    def __init__(self, fail=0, fail_status=503):
        self.requests, self.accepted = [], []
        self.fail, self.fail_status = fail, fail_status
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, body))
                failing = len(outer.requests) <= outer.fail
                status = outer.fail_status if failing else 200
                if not failing:
                    outer.accepted.append(body)
                answer = b'{"took":1,"errors":false,"items":[]}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def http_relay(run, ep, **out):
    o = {"type": "http", "match": "app.*", "url": "http://127.0.0.1:%d/_bulk" % ep.port}
    o.update(out)
    return lhtest.start_collector(run, "relay", tls=False,
                                  extra={"store": {"enabled": False}, "outputs": [o]})


@test
def http_output_posts_an_es_bulk_body(run):
    ep = Endpoint()
    try:
        col = http_relay(run, ep, format="es_bulk", index="logs")
        cl = lhtest.ForwardClient(col.forward_host, col.forward_port)
        for tag, lo in (("app.web", 0), ("other", 100)):
            ack, chunk = cl.send_batch(tag, entries(lo, lo + 100))
            check(ack == {"ack": chunk}, "acked: %r" % (ack,))
        cl.close()
        lhtest.wait_until(lambda: len(ep.accepted) >= 1, 20, "the bulk request")
        path, body = ep.requests[0]
        check(path == "/_bulk", "posted to %r" % path)
        lines = [json.loads(x) for x in body.decode().splitlines()]
        check(len(lines) == 200, "100 actions and 100 records, got %d lines" % len(lines))
        check(all(a == {"index": {"_index": "logs"}} for a in lines[0::2]), "index actions")
        check([d["message"] for d in lines[1::2]] == ["line %d" % i for i in range(100)],
              "records in order")
        check(lines[1]["tag"] == "app.web", "the record carries its tag: %r" % lines[1])
        check(len(ep.requests) == 1, "the non-matching tag was not posted")
    finally:
        ep.close()


@test
def http_output_retries_5xx_and_drops_4xx_counted(run):
    ep = Endpoint(fail=2, fail_status=503)
    try:
        col = http_relay(run, ep)
        cl = lhtest.ForwardClient(col.forward_host, col.forward_port)
        ack, chunk = cl.send_batch("app.r", entries(0, 10))
        check(ack == {"ack": chunk}, "acked: %r" % (ack,))
        cl.close()
        lhtest.wait_until(lambda: len(ep.accepted) >= 1, 20, "the body after two 503s")
        check(len(ep.requests) == 3, "three attempts: %d" % len(ep.requests))
        recs = [json.loads(x) for x in ep.accepted[0].decode().splitlines()]
        check([r["message"] for r in recs] == ["line %d" % i for i in range(10)], "ndjson body")
    finally:
        ep.close()
    ep = Endpoint(fail=1000, fail_status=400)
    try:
        col = http_relay(run, ep)
        cl = lhtest.ForwardClient(col.forward_host, col.forward_port)
        cl.send_batch("app.bad", entries(0, 7))
        cl.send_batch("app.bad", entries(7, 10))
        cl.close()
        lhtest.wait_until(lambda: col.metric("loghaul_collector_output_dropped_total",
                                             {"output": "http"}) == 10, 20,
                          "the refused records counted as dropped")
        check(len(ep.requests) == 2, "each refused body posted once: %d" % len(ep.requests))
    finally:
        ep.close()


KAFKA_MOCK = os.path.join(lhtest.BIN_DIR, "tests", "lh-kafka-mock")


@test
def kafka_output_produces_one_message_per_record(run):
    mock = subprocess.Popen([KAFKA_MOCK, "150", "60", "logs.app.web", "logs.app.db"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        bootstrap = mock.stdout.readline().strip().split("=", 1)[1]
        col = lhtest.start_collector(run, "relay", tls=False, extra={
            "store": {"enabled": False},
            "outputs": [{"type": "kafka", "match": "app.*", "brokers": [bootstrap],
                         "topic": "logs.${tag}"}]})
        cl = lhtest.ForwardClient(col.forward_host, col.forward_port)
        for tag, lo, hi in (("app.web", 0, 100), ("other", 100, 200), ("app.db", 200, 250)):
            ack, chunk = cl.send_batch(tag, entries(lo, hi))
            check(ack == {"ack": chunk}, "%s acked: %r" % (tag, ack))
        cl.close()
        out, _ = mock.communicate(timeout=90)
        check(mock.returncode == 0, "the mock broker saw %d of 150 messages"
              % len(out.splitlines()))
        got = [line.split("\t", 1) for line in out.splitlines()]
        web = [json.loads(v)["message"] for t, v in got if t == "logs.app.web"]
        db = [json.loads(v)["message"] for t, v in got if t == "logs.app.db"]
        check(web == ["line %d" % i for i in range(100)], "logs.app.web in order, once")
        check(db == ["line %d" % i for i in range(200, 250)], "logs.app.db in order, once")
        lhtest.wait_until(lambda: col.metric("loghaul_collector_output_delivered_total",
                                             {"output": "kafka"}) == 150, 20,
                          "150 records confirmed by the broker")
    finally:
        if mock.poll() is None:
            mock.kill()
            mock.wait()


@test
def file_output_config_errors_are_clear(run):
    cfg = lhtest.collector_config(run, "collector", tls=False)
    path = run.path("c.yaml")
    for outputs, want in (([{"type": "file"}], "path"),
                          ([{"type": "file", "path": "/x/${host}.log"}], "${tag}"),
                          ([{"type": "forward"}], "collectors"),
                          ([{"type": "forward", "collectors": ["nohostport"]}], "host:port"),
                          ([{"type": "http"}], "url"),
                          ([{"type": "http", "url": "ftp://x/"}], "http://"),
                          ([{"type": "http", "url": "http://x/", "format": "csv"}], "format"),
                          ([{"type": "kafka", "topic": "t"}], "brokers"),
                          ([{"type": "kafka", "brokers": ["k:9092"], "topic": "${host}"}],
                           "${tag}")):
        cfg["outputs"] = outputs
        lhtest.write_config(path, cfg)
        r = subprocess.run([lhtest.COLLECTOR, "-c", path, "--check-config"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 2 and want in r.stderr, "%r: exit %d, %r" % (outputs, r.returncode,
                                                                          r.stderr))


if __name__ == "__main__":
    sys.exit(lhtest.run())
