#!/usr/bin/env python3
"""Collector outputs: with store.enabled false a `null` output is the
durable end (batches are counted, acked, and nothing is stored); without
any output a disabled store is refused. The `file` output appends each
matching batch as NDJSON under a path made from the tag, before the ack."""

import json
import os
import subprocess
import sys

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


@test
def file_output_config_errors_are_clear(run):
    cfg = lhtest.collector_config(run, "collector", tls=False)
    path = run.path("c.yaml")
    for outputs, want in (([{"type": "file"}], "path"),
                          ([{"type": "file", "path": "/x/${host}.log"}], "${tag}")):
        cfg["outputs"] = outputs
        lhtest.write_config(path, cfg)
        r = subprocess.run([lhtest.COLLECTOR, "-c", path, "--check-config"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 2 and want in r.stderr, "%r: exit %d, %r" % (outputs, r.returncode,
                                                                          r.stderr))


if __name__ == "__main__":
    sys.exit(lhtest.run())
