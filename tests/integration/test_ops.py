"""Operating the daemons: /metrics counters move as records flow and when
frames are rejected, the query latency histogram, agent /status, and SIGHUP
reloads of the agent (adding an input, changing an output, refusing a broken
config, going back when a new config cannot start) that neither lose nor
repeat a line; the collector's reload of its TLS certificates.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_ops.py
"""

import collections
import json
import os
import re
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import check, test, wait_until  # noqa: E402


def append(path, prefix, first, last):
    with open(path, "a") as f:
        for i in range(first, last + 1):
            f.write("%s line %06d\n" % (prefix, i))


def messages(col):
    r, recs, _ = lhtest.search([col.url], "", "--limit", "100000")
    check(r.returncode == 0, "search failed: %s" % r.stderr)
    return recs


def exactly_once(recs, prefix, n):
    """Every line prefix 1..n stored exactly once."""
    seen = collections.Counter(r["message"] for r in recs if r["message"].startswith(prefix + " "))
    want = {"%s line %06d" % (prefix, i) for i in range(1, n + 1)}
    missing = sorted(want - set(seen))
    dups = sorted(m for m, c in seen.items() if c > 1)
    check(not missing and not dups and set(seen) == want,
          "%s: %d missing (%r...), %d repeated (%r...)" % (prefix, len(missing), missing[:3],
                                                          len(dups), dups[:3]))


def wait_stored(col, n):
    wait_until(lambda: col.records_in() >= n, 60, "collector records_in_total to reach %d" % n)
    check(col.records_in() == n, "collector acked %s records, want %d" % (col.records_in(), n))


def setup(run, batch=None):
    col = lhtest.start_collector(run, "collector")
    a = run.path("a.log")
    open(a, "w").close()
    cfg = lhtest.agent_config(run, "agent", paths=[a], tag="ops.a",
                              collectors=["127.0.0.1:%d" % col.forward_port], batch=batch)
    agent = lhtest.start_agent(run, "agent", cfg=cfg)
    return col, agent, cfg, a


def reload(run, agent, cfg, expect=r"reloaded \S+"):
    """Writes cfg, sends SIGHUP, waits for the log line expect (counted, so a
    second reload waits for its own)."""
    lhtest.write_config(run.path("agent.yaml"), cfg)
    before = len(re.findall(expect, agent.proc.log()))
    agent.proc.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: len(re.findall(expect, agent.proc.log())) > before or
               not agent.proc.alive(), 60, "/%s/ in the agent's log" % expect)
    check(agent.proc.alive(), "the agent exited on SIGHUP")


@test
def metrics_move_with_records_and_rejections(run):
    col, agent, cfg, a = setup(run)
    append(a, "m", 1, 500)
    wait_stored(col, 500)
    check(col.metric("loghaul_collector_records_stored_total") == 500, "stored_total")
    check((col.metric("loghaul_collector_bytes_in_total") or 0) > 500 * 10, "bytes_in_total")
    check((col.metric("loghaul_collector_connections_total") or 0) >= 1, "connections_total")
    check(agent.metric("loghaul_agent_records_read_total", {"input": "ops.a"}) == 500,
          "agent records_read_total{input=ops.a}: %s"
          % agent.metric("loghaul_agent_records_read_total"))
    size = os.path.getsize(a)
    got = agent.metric("loghaul_agent_bytes_read_total", {"input": "ops.a"})
    check(got == size, "agent bytes_read_total{input=ops.a} %r, the file has %d" % (got, size))
    wait_until(lambda: agent.metric("loghaul_agent_records_acked_total") == 500, 20,
               "agent records_acked_total to reach 500")
    check(agent.metric("loghaul_agent_records_dropped_total") == 0, "nothing was dropped")
    wait_until(lambda: agent.metric("loghaul_agent_batches_in_flight") == 0, 20, "in flight 0")
    # Every batch sent was acknowledged once, its bytes counted, and the
    # disk buffer emptied.
    acks = agent.metric("loghaul_agent_acks_total") or 0
    check(acks >= 1, "acks_total counts the collector's acks: %r" % acks)
    check((agent.metric("loghaul_agent_bytes_sent_total") or 0) > 500 * 10,
          "bytes_sent_total covers 500 records")
    wait_until(lambda: agent.metric("loghaul_agent_buffer_chunks") == 0, 20, "buffer drained")

    # /status: the file read to its end, nothing lagging; the output connected.
    code, body = lhtest.http_get(agent.url + "/status")
    check(code == 200, "/status answered %d" % code)
    st = json.loads(body)
    files = [f for f in st["files"] if f["path"] == a]
    check(len(files) == 1, "/status files: %r" % st["files"])
    f = files[0]
    check(f["size"] == os.path.getsize(a) and f["offset"] == f["size"],
          "offset/size of %s: %r" % (a, f))
    wait_until(lambda: json.loads(lhtest.http_get(agent.url + "/status")[1])["files"][0]["lag"]
               == 0, 20, "lag 0 once acked")
    out = st["outputs"][0]
    check(out["type"] == "forward" and out["collectors"] and "buffer_bytes" in out,
          "/status outputs: %r" % st["outputs"])
    check(lhtest.http_get(agent.url + "/healthz")[0] == 200, "agent /healthz")

    # Queries are counted and timed.
    q0 = col.metric("loghaul_collector_queries_total") or 0
    h0 = col.metric("loghaul_collector_query_duration_seconds_count") or 0
    recs = messages(col)
    check(len(recs) == 500, "search found %d" % len(recs))
    check(col.metric("loghaul_collector_queries_total") == q0 + 1, "queries_total")
    check(col.metric("loghaul_collector_query_duration_seconds_count") == h0 + 1, "latency count")
    text = lhtest.http_get(col.url + "/metrics")[1].decode()
    check("# TYPE loghaul_collector_query_duration_seconds histogram" in text, "histogram type")
    m = lhtest.parse_metrics(text)
    buckets = sorted((float(dict(ls)["le"]), v) for (n, ls), v in m.items()
                     if n == "loghaul_collector_query_duration_seconds_bucket")
    counts = [v for _, v in buckets]
    check(counts == sorted(counts) and buckets[-1] == (float("inf"), h0 + 1),
          "histogram buckets must be cumulative up to +Inf = count: %r" % buckets)

    # Garbage on the Forward port is rejected and counted.
    r0 = col.metric("loghaul_collector_frames_rejected_total") or 0
    s = socket.create_connection((col.forward_host, col.forward_port), timeout=10)
    s.sendall(b"\x16\x03\x01\x00\x05garbage that is no TLS record at all" * 4)
    s.settimeout(10)
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
    wait_until(lambda: (col.metric("loghaul_collector_frames_rejected_total") or 0) > r0, 20,
               "frames_rejected_total to move on garbage")
    check(col.records_in() == 500, "garbage must not add records")


@test
def sighup_adds_an_input_without_loss_or_repeat(run):
    col, agent, cfg, a = setup(run, batch={"max_records": 50, "max_wait": "200ms"})
    append(a, "a", 1, 300)
    wait_stored(col, 300)
    b = run.path("b.log")
    append(b, "b", 1, 200)
    cfg["inputs"].append({"type": "file", "tag": "ops.b", "paths": [b], "read_from": "head"})
    lhtest.write_config(run.path("agent.yaml"), cfg)
    agent.proc.popen.send_signal(signal.SIGHUP)
    # Lines written while the reload drains and rebuilds are read once, by
    # whichever pipeline is running.
    append(a, "a", 301, 600)
    agent.proc.wait_log(r"reloaded \S+", timeout=60)
    append(a, "a", 601, 700)
    wait_stored(col, 900)
    recs = messages(col)
    exactly_once(recs, "a", 700)
    exactly_once(recs, "b", 200)
    check({r["tag"] for r in recs if r["message"].startswith("b ")} == {"ops.b"}, "tag of b")
    check(agent.metric("loghaul_agent_records_read_total", {"input": "ops.b"}) == 200,
          "records_read_total{input=ops.b}")


@test
def sighup_changes_the_output(run):
    col, agent, cfg, a = setup(run)
    append(a, "a", 1, 100)
    wait_stored(col, 100)
    cfg["inputs"][0]["tag"] = "ops.renamed"
    cfg["outputs"][0]["compress"] = "gzip"
    cfg["outputs"][0]["batch"] = {"max_records": 7}
    reload(run, agent, cfg)
    append(a, "a", 101, 200)
    wait_stored(col, 200)
    recs = messages(col)
    exactly_once(recs, "a", 200)
    tags = {int(r["message"].split()[-1]): r["tag"] for r in recs}
    check(all(tags[i] == "ops.a" for i in range(1, 101)), "lines before the reload keep ops.a")
    check(all(tags[i] == "ops.renamed" for i in range(101, 201)),
          "lines after the reload carry the new tag: %r" % sorted(set(tags.values())))


@test
def sighup_with_a_broken_config_keeps_the_old_one(run):
    col, agent, cfg, a = setup(run)
    append(a, "a", 1, 100)
    wait_stored(col, 100)
    with open(run.path("agent.yaml"), "w") as f:
        f.write("agent:\n  nmae: typo\ninputs: [\n")
    agent.proc.popen.send_signal(signal.SIGHUP)
    agent.proc.wait_log(r"reload refused, the running configuration stays: .*agent\.yaml:\d+")
    append(a, "a", 101, 200)
    wait_stored(col, 200)

    # Loads, but cannot start (a certificate is missing): back to the old one.
    bad = json.loads(json.dumps(cfg))
    bad["outputs"][0]["tls"]["ca"] = run.path("no-such-ca.pem")
    reload(run, agent, bad, expect=r"going back to the previous one")
    append(a, "a", 201, 300)
    wait_stored(col, 300)
    exactly_once(messages(col), "a", 300)


@test
def collector_sighup_reloads_certificates(run):
    col, agent, cfg, a = setup(run)
    append(a, "a", 1, 10)
    wait_stored(col, 10)
    col.proc.popen.send_signal(signal.SIGHUP)
    col.proc.wait_log(r"reloaded \S+: log level, API token, TLS certificates applied")
    # A certificate that no longer loads is refused; the running one stays.
    c = run.certs()
    os.rename(c["server"], c["server"] + ".away")
    col.proc.popen.send_signal(signal.SIGHUP)
    col.proc.wait_log(r"new connections keep the previous certificates")
    os.rename(c["server"] + ".away", c["server"])
    append(a, "a", 11, 20)
    wait_stored(col, 20)


if __name__ == "__main__":
    sys.exit(lhtest.run())
