"""Operating the daemons: /metrics counters move as records flow and when
frames are rejected, the query latency histogram, agent /status, and SIGHUP
reloads of the agent (adding an input, changing an output, refusing a broken
config, going back when a new config cannot start) that neither lose nor
repeat a line; the collector's reload of its TLS certificates; at the
file-descriptor limit the collector's HTTP and the agent's syslog TCP
listeners back off instead of spinning, and keep serving.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_ops.py
"""

import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

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


# ---------------------------------------------------------------- config checks

def check_config(binary, path):
    return subprocess.run([binary, "--check-config", "-c", path], capture_output=True, text=True,
                          timeout=30)


@test
def check_config_refuses_values_wrong_on_their_face(run):
    """--check-config fails, at the value, on what could never start:
    ports out of range, a URL that is not http(s), an unknown strftime
    conversion, a max_decompressed past the store's record limit; and
    warns about a token file others can read."""
    token = run.path("token")
    with open(token, "w") as f:
        f.write("s3cret\n")
    os.chmod(token, 0o644)
    col = lhtest.collector_config(run, "c1", tls=False)
    col["listen"]["http"]["auth_token_file"] = token
    cases = [
        (lhtest.COLLECTOR, {"listen": {"forward": {"address": "0.0.0.0:99999"}}},
         r"port 99999 is out of range"),
        (lhtest.COLLECTOR, {"listen": {"http": {"address": "127.0.0.1"}}},
         r"'127\.0\.0\.1' is not host:port"),
        (lhtest.COLLECTOR, {"peers": ["ftp://c2:9800"]}, r"must start with http:// or https://"),
        (lhtest.COLLECTOR, {"outputs": [{"type": "http", "match": "*",
                                         "url": "http://es:0/_bulk"}]},
         r"port 0 of 'http://es:0/_bulk' is out of range"),
        # The store's largest record is 1 GiB: a frame staging more is never acked.
        (lhtest.COLLECTOR, {"listen": {"forward": {"max_decompressed": "2GiB"}}},
         r"max_decompressed: value 2GiB out of range \(16\.\.1023MiB\)"),
    ]
    agent = {"agent": {"data_dir": run.path("a"), "http": ""},
             "inputs": [{"type": "file", "tag": "t", "paths": [run.path("x.log")]}],
             "outputs": [{"type": "forward", "match": "*", "collectors": ["c1:24224"],
                          "tls": {"enabled": False}}]}
    cases += [
        (lhtest.AGENT, {"agent": {"http": "127.0.0.1:70000"}}, r"port 70000 is out of range"),
        (lhtest.AGENT, {"inputs": [{"type": "file", "tag": "t", "paths": [run.path("x.log")],
                                    "time_key": "ts", "time_format": "%Y-%m-%d %Q"}]},
         r"%Q is not a time conversion"),
        (lhtest.AGENT, {"outputs": [{"type": "forward", "match": "*",
                                     "collectors": ["c1:240000"], "tls": {"enabled": False}}]},
         r"port 240000 is out of range"),
        (lhtest.AGENT, {"inputs": [{"type": "syslog", "listen": ["tcp://0.0.0.0:65536"]}]},
         r"port 65536 is out of range"),
    ]
    for i, (binary, extra, want) in enumerate(cases):
        base = json.loads(json.dumps(col if binary == lhtest.COLLECTOR else agent))
        for k, v in extra.items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                lhtest._merge(base[k], v)
            else:
                base[k] = v
        path = lhtest.write_config(run.path("bad%d.yaml" % i), base)
        r = check_config(binary, path)
        check(r.returncode == 2 and re.search(r"bad%d\.yaml:\d+:\d+: .*%s" % (i, want), r.stderr),
              "case %d (%s): exit %d, stderr %r" % (i, want, r.returncode, r.stderr))
    good = lhtest.write_config(run.path("good.yaml"), col)
    r = check_config(lhtest.COLLECTOR, good)
    check(r.returncode == 0, "a good config fails: %s" % r.stderr)
    check(re.search(r"warning: .*good\.yaml:\d+:\d+: auth_token_file: '.*token' is readable by "
                    r"others \(mode 0644\)", r.stderr), "no warning for a 0644 token: %r" % r.stderr)
    c = lhtest.start_collector(run, "c1", cfg=col)
    c.proc.wait_log(r"auth_token_file: '.*token' is readable by others")


# ---------------------------------------------------------------- fd exhaustion

NOFILE = 64


def with_nofile(cmd, n=NOFILE):
    """cmd run with RLIMIT_NOFILE n (the same process: exec, not fork)."""
    prog = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (%d, %d)); "
            "os.execv(sys.argv[1], sys.argv[1:])" % (n, n))
    return [sys.executable, "-c", prog] + cmd


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def flood_connections(addr, n):
    host, port = addr.rsplit(":", 1)
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        s.connect((host, int(port)))  # the kernel completes it, accepted or not
        socks.append(s)
    return socks


def starved(proc, what):
    """Waits for the daemon to run out of descriptors, then measures its CPU
    time and log growth over 3 s; fails past 0.5 s of CPU or 4 KiB of log."""
    proc.wait_log(r"Too many open files", timeout=20)
    cpu0, log0 = cpu_seconds(proc.pid), os.path.getsize(proc.log_path)
    time.sleep(3)  # the measurement window itself, not a synchronisation
    cpu, grown = cpu_seconds(proc.pid) - cpu0, os.path.getsize(proc.log_path) - log0
    print("  %s out of descriptors: %.2fs CPU and %d log bytes in 3s" % (what, cpu, grown))
    check(cpu < 0.5, "%s spun at the fd limit: %.2fs CPU in 3s" % (what, cpu))
    check(grown < 4096, "%s wrote %d bytes of log in 3s at the fd limit" % (what, grown))


def http_exchange(s):
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    return s.recv(4096).split(b" ", 2)[1:2] == [b"200"]


@test
def collector_http_backs_off_at_the_fd_limit(run):
    cfg = lhtest.collector_config(run, "c1", tls=False)
    path = lhtest.write_config(run.path("c1.yaml"), cfg)
    p = run.start("c1", with_nofile([lhtest.COLLECTOR, "-c", path]))
    addr = p.wait_log(r"http listening on (\S+)").group(1)
    wait_until(lambda: lhtest.http_get("http://%s/healthz" % addr)[0] == 200, 20, "/healthz")
    kept = flood_connections(addr, 1)[0]
    check(http_exchange(kept), "the first connection is served")
    socks = flood_connections(addr, 2 * NOFILE)
    starved(p, "collector HTTP")
    check(http_exchange(kept), "an open connection is still served at the fd limit")
    for s in socks + [kept]:
        s.close()
    wait_until(lambda: lhtest.http_get("http://%s/healthz" % addr, timeout=2)[0] == 200, 20,
               "new connections accepted once descriptors are free")
    errors = lhtest.metric("http://%s/metrics" % addr, "loghaul_collector_accept_errors_total",
                           {"listener": "http"})
    check((errors or 0) >= 1, "accept errors are counted")


@test
def collector_forward_backs_off_at_the_fd_limit(run):
    cfg = lhtest.collector_config(run, "c1", tls=False)
    path = lhtest.write_config(run.path("c1.yaml"), cfg)
    p = run.start("c1", with_nofile([lhtest.COLLECTOR, "-c", path]))
    fwd = p.wait_log(r"forward listening on (\S+)").group(1)
    http = p.wait_log(r"http listening on (\S+)").group(1)
    socks = flood_connections(fwd, 2 * NOFILE)
    starved(p, "collector Forward")
    for s in socks:
        s.close()
    wait_until(lambda: lhtest.http_get("http://%s/healthz" % http, timeout=2)[0] == 200, 20,
               "the collector answers once descriptors are free")
    errors = lhtest.metric("http://%s/metrics" % http, "loghaul_collector_accept_errors_total",
                           {"listener": "forward"})
    check((errors or 0) >= 1, "forward accept errors are counted")


@test
def agent_syslog_tcp_backs_off_at_the_fd_limit(run):
    cfg = {"agent": {"name": "a", "data_dir": run.path("a-data"), "http": "127.0.0.1:0"},
           "inputs": [{"type": "syslog", "tag": "sys", "listen": ["tcp://127.0.0.1:0"]}],
           "outputs": [{"type": "stdout", "match": "*"}]}
    path = lhtest.write_config(run.path("a.yaml"), cfg)
    p = run.start("agent", with_nofile([lhtest.AGENT, "-c", path]))
    http = p.wait_log(r"http listening on (\S+)").group(1)
    addr = p.wait_log(r"syslog listening on tcp://(\S+)").group(1)

    def arrived(token):
        with open(p.out_path, "rb") as f:
            return token.encode() in f.read()

    kept = flood_connections(addr, 1)[0]
    kept.sendall(b"<13>Nov 24 06:48:32 h app: before the flood\n")
    wait_until(lambda: arrived("before the flood"), 20, "the first message")
    socks = flood_connections(addr, 2 * NOFILE)
    starved(p, "agent syslog TCP")
    kept.sendall(b"<13>Nov 24 06:48:33 h app: during the flood\n")
    wait_until(lambda: arrived("during the flood"), 20, "a message on an open connection")
    for s in socks + [kept]:
        s.close()

    def send_new():
        try:
            s = flood_connections(addr, 1)[0]
            s.sendall(b"<13>Nov 24 06:48:34 h app: after the flood\n")
            s.close()
        except OSError:
            pass
        return arrived("after the flood")
    wait_until(send_new, 20, "a message on a new connection once descriptors are free",
               interval=0.5)
    errors = lhtest.metric("http://%s/metrics" % http, "loghaul_agent_accept_errors_total")
    check((errors or 0) >= 1, "accept errors are counted")


if __name__ == "__main__":
    sys.exit(lhtest.run())
