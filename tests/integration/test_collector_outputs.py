#!/usr/bin/env python3
"""Collector outputs: with store.enabled false a `null` output is the
durable end (batches are counted, acked, and nothing is stored); without
any output a disabled store is refused."""

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


if __name__ == "__main__":
    sys.exit(lhtest.run())
