"""Interop: fluent-logger (Node.js), an independent Forward implementation,
ships to a collector over mTLS with the shared-key handshake and acks, in
each of its event modes (Message, PackedForward, CompressedPackedForward).
Every record must be acknowledged and then found by `loghaul search`, with
`host` taken from the handshake's client host name.

Needs node and tests/interop/node_modules (quickstart.sh installs both).
Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_interop_fluent_logger.py
"""

import datetime
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import check, test  # noqa: E402

INTEROP = os.path.join(lhtest.SRC_DIR, "tests", "interop")
SENDER = os.path.join(INTEROP, "fluent_logger_send.js")
KEY = "interop-shared-key"
COUNT = 40


def rfc3339(ns):
    sec, frac = divmod(ns, 10**9)
    t = datetime.datetime.fromtimestamp(sec, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % frac


def send(col, certs, mode, tag, key=KEY, client_host="fl-client"):
    node = shutil.which("node")
    check(node, "node is not installed (quickstart.sh installs nodejs)")
    check(os.path.isdir(os.path.join(INTEROP, "node_modules", "fluent-logger")),
          "fluent-logger missing: run `npm install` in tests/interop")
    return subprocess.run(
        [node, SENDER, "127.0.0.1", str(col.forward_port), mode, str(COUNT), tag,
         os.path.dirname(certs["ca"]), key, client_host],
        capture_output=True, text=True, timeout=60)


@test
def every_mode_is_acked_and_searchable(run):
    certs = run.certs()
    col = lhtest.start_collector(run, "collector", shared_key=KEY)
    for mode in ("Message", "PackedForward", "CompressedPackedForward"):
        tag = "interop." + mode.lower()
        before = col.records_in()
        r = send(col, certs, mode, tag)
        check(r.returncode == 0 and "acked %d" % COUNT in r.stdout,
              "%s: sender exit %d, out %r, err %r; collector acked %d records meanwhile"
              % (mode, r.returncode, r.stdout, r.stderr[:300], col.records_in() - before))
        res, recs, ctl = lhtest.search([col.url], "tag:%s" % tag, "--limit", "1000")
        check(res.returncode == 0 and not ctl, "search %s: %s" % (mode, res.stderr))
        seqs = sorted(x["seq"] for x in recs)
        check(seqs == list(range(1, COUNT + 1)), "%s: seqs %r" % (mode, seqs))
        for x in recs:
            check(x["host"] == "fl-client" and x["tag"] == tag and
                  x["message"] == "interop %s seq=%d" % (mode, x["seq"]),
                  "%s: record %r" % (mode, x))
            # EventTime seconds + nanoseconds survive the trip exactly.
            sec = 1700000000 + x["seq"]
            want = rfc3339(sec * 10**9 + x["seq"] * 1000)
            check(x["time"] == want, "%s: time %s, want %s" % (mode, x["time"], want))
    check(col.records_in() == 3 * COUNT, "records_in %d" % col.records_in())


@test
def wrong_shared_key_is_refused(run):
    certs = run.certs()
    col = lhtest.start_collector(run, "collector", shared_key=KEY)
    r = send(col, certs, "PackedForward", "interop.badkey", key="not-the-key")
    check(r.returncode != 0 and "acked %d" % COUNT not in r.stdout,
          "a wrong key must not be acked: %r %r" % (r.stdout, r.stderr))
    check(col.records_in() == 0, "nothing stored: %d" % col.records_in())
    col.proc.wait_log(r"shared_key mismatch|handshake", timeout=10)


if __name__ == "__main__":
    sys.exit(lhtest.run(need=(lhtest.CLI, lhtest.COLLECTOR)))
