"""The walking skeleton end to end: a file tailed by the agent, shipped over
mTLS Forward to a collector, stored, and found again with `loghaul search`.
Also the shipped configs pass --check-config and a misspelled key is
reported with FILE:LINE:COL and a suggestion.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_e2e.py
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import check, test, wait_until  # noqa: E402

N = 1000
TAG = "e2e.app"


def numbered(i):
    return "line %d of %d uniq%04d the quick brown fox" % (i, N, i)


@test
def file_to_search_over_mtls(run):
    col = lhtest.start_collector(run, "collector", tls=True, mtls=True)
    log = run.path("app.log")
    open(log, "w").close()
    agent = lhtest.start_agent(run, "agent", paths=[log], tag=TAG,
                               collectors=["127.0.0.1:%d" % col.forward_port])
    with open(log, "a") as f:
        for i in range(1, N + 1):
            f.write(numbered(i) + "\n")

    wait_until(lambda: col.records_in() >= N, 60, "collector records_in_total to reach %d" % N)
    check(col.records_in() == N, "collector acked %s records, want %d" % (col.records_in(), N))
    read = wait_until(lambda: (agent.metric("loghaul_agent_records_read_total") or 0) >= N and
                      agent.metric("loghaul_agent_records_read_total"), 20, "agent read metric")
    check(read == N, "agent read %s records, want %d" % (read, N))
    wait_until(lambda: (agent.metric("loghaul_agent_records_acked_total") or 0) >= N, 20,
               "agent records_acked_total to reach %d" % N)

    r, recs, ctl = lhtest.search([col.url], "", "--limit", "5000")
    check(r.returncode == 0, "search failed (%d): %s" % (r.returncode, r.stderr))
    check(not ctl, "unexpected control lines %r" % ctl)
    check(len(recs) == N, "search found %d records, want %d" % (len(recs), N))
    first_keys = set()
    for line in r.stdout.splitlines():
        first_keys.add(re.match(r'\{"(\w+)"', line).group(1))
    check(first_keys == {"time"}, "time must be the first key, saw %r" % first_keys)
    seqs = set()
    for rec in recs:
        for k in ("time", "tag", "host", "message"):
            check(k in rec, "record lacks %r: %r" % (k, rec))
        check(rec["tag"] == TAG and rec["host"] == "agent", "tag/host: %r" % rec)
        m = re.fullmatch(r"line (\d+) of 1000 uniq\d{4} the quick brown fox", rec["message"])
        check(m, "unexpected message %r" % rec["message"])
        check(rec["message"] == numbered(int(m.group(1))), "message mangled: %r" % rec["message"])
        seqs.add(int(m.group(1)))
    check(seqs == set(range(1, N + 1)), "missing sequence numbers: %r"
          % sorted(set(range(1, N + 1)) - seqs)[:20])
    times = [rec["time"] for rec in recs]
    check(times == sorted(times, reverse=True), "results are not newest first")

    r, hits, _ = lhtest.search([col.url], "uniq0577")
    check(r.returncode == 0, r.stderr)
    check([h["message"] for h in hits] == [numbered(577)], "word search found %r" % hits)

    r, top, _ = lhtest.search([col.url], "", "--limit", "10")
    check(len(top) == 10, "--limit 10 gave %d" % len(top))
    top_times = [t["time"] for t in top]
    check(top_times == sorted(top_times, reverse=True), "--limit 10 not newest first")
    check(top_times[-1] >= sorted(times, reverse=True)[9], "--limit 10 are not the 10 newest")
    # Lines read together may share a timestamp; the last written still come first.
    check([t["message"] for t in top] == [numbered(i) for i in range(N, N - 10, -1)],
          "--limit 10 should be the last 10 lines, newest first: %r" % [t["message"] for t in top])


def check_config(binary, path):
    return subprocess.run([binary, "--check-config", "-c", path], capture_output=True,
                          text=True, timeout=30)


@test
def shipped_configs_check(run):
    for binary, conf in ((lhtest.AGENT, "agent.yaml"), (lhtest.COLLECTOR, "collector.yaml")):
        path = os.path.join(lhtest.SRC_DIR, "conf", conf)
        check(os.path.exists(path), "missing %s" % path)
        r = check_config(binary, path)
        check(r.returncode == 0, "%s --check-config %s: exit %d\n%s"
              % (os.path.basename(binary), conf, r.returncode, r.stderr))


@test
def misspelled_keys(run):
    c = run.certs()
    cases = [
        (lhtest.AGENT, "agent.yaml",
         "agent:\n  name: a\n  data_dir: %s\ninputs:\n  - type: file\n    tag: t\n"
         "    paths: [\"/tmp/x.log\"]\noutputs:\n  - type: forward\n"
         "    colectors: [\"127.0.0.1:24224\"]\n" % run.path("a"),
         10, "collectors"),
        (lhtest.COLLECTOR, "collector.yaml",
         "collector:\n  name: c\n  data_dir: %s\nlisten:\n  forward:\n"
         "    adress: 127.0.0.1:0\n    tls: {enabled: true, ca: %s, cert: %s, key: %s}\n"
         % (run.path("c"), c["ca"], c["server"], c["server-key"]),
         6, "address"),
    ]
    for binary, name, text, line, want in cases:
        path = run.path(name)
        with open(path, "w") as f:
            f.write(text)
        r = check_config(binary, path)
        check(r.returncode == 2, "%s: exit %d, want 2\n%s" % (name, r.returncode, r.stderr))
        m = re.search(re.escape(path) + r":(\d+):(\d+): ", r.stderr)
        check(m, "%s: no FILE:LINE:COL in %r" % (name, r.stderr))
        check(int(m.group(1)) == line, "%s: line %s, want %d" % (name, m.group(1), line))
        check("did you mean" in r.stderr and want in r.stderr,
              "%s: no suggestion of %r in %r" % (name, want, r.stderr))


if __name__ == "__main__":
    sys.exit(lhtest.run())
