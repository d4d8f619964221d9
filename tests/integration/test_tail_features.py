"""File input features end to end: multiline records (start regex and
timeout), `watch: poll`, invalid UTF-8 kept as bytes on the wire, and the
record time taken from a parsed field (time_key + time_format).

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_tail_features.py
"""

import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import check, mp_pack, mp_unpack, NeedMore, test, wait_until  # noqa: E402


def stdout_agent(run, paths, name="agent", **inp):
    i = {"type": "file", "tag": "t", "paths": paths, "read_from": "head"}
    i.update(inp)
    cfg = {"agent": {"name": "a", "data_dir": run.path("data"), "http": "127.0.0.1:0"},
           "inputs": [i], "outputs": [{"type": "stdout", "match": "*"}]}
    return lhtest.start_agent(run, name, cfg=cfg)


def records(agent):
    with open(agent.proc.out_path, "rb") as f:
        data = f.read()
    # Only whole lines: the agent may be writing the last one.
    return [json.loads(line) for line in data[:data.rfind(b"\n") + 1].split(b"\n")
            if line.startswith(b"{")]


def at_least(agent, n):
    return lambda: (lambda r: r if len(r) >= n else None)(records(agent))


def append(path, text):
    with open(path, "ab") as f:
        f.write(text if isinstance(text, bytes) else text.encode())


# ---- multiline -------------------------------------------------------------

@test
def multiline_records_keep_every_line(run):
    log = run.path("app.log")
    append(log, "")
    agent = stdout_agent(run, [log], multiline={"start": r"^\d{4}-\d\d-\d\d ",
                                                "timeout": "700ms"})
    agent.proc.wait_log(r"following .*app\.log")
    trace = "".join("    at frame%d (file.c:%d)\n" % (k, k) for k in range(40))
    t0 = time.monotonic()
    append(log, "2026-01-01 first\n" + trace + "2026-01-01 second\n  one more line\n"
           "2026-01-01 third\n")
    # A line joining the last record before the timeout stays in it.
    time.sleep(0.2)
    append(log, "  below third\n")
    recs = wait_until(at_least(agent, 3), 20, "three records, the last flushed by the timeout")
    waited = time.monotonic() - t0
    check([r["message"] for r in recs] ==
          ["2026-01-01 first\n" + trace.rstrip("\n"), "2026-01-01 second\n  one more line",
           "2026-01-01 third\n  below third"],
          "records of several lines: %r" % [r["message"][:40] for r in recs])
    check(waited >= 0.2 + 0.6, "the last record went out %.2fs after the first write, before "
          "its timeout" % waited)
    check(len(records(agent)) == 3, "no record twice")


# ---- filters ----------------------------------------------------------------

@test
def filters_drop_and_modify_records_of_matching_tags(run):
    log = run.path("app.log")
    append(log, "")
    cfg = {"agent": {"name": "a", "data_dir": run.path("data"), "http": "127.0.0.1:0"},
           "inputs": [{"type": "file", "tag": "web.access", "paths": [log],
                       "read_from": "head"}],
           "filters": [{"type": "grep", "match": "web.*",
                        "exclude": {"field": "message", "regex": "healthcheck"}},
                       {"type": "modify", "match": "web.*", "set": {"env": "prod"},
                        "remove": ["source"]},
                       {"type": "modify", "match": "other.*", "set": {"env": "never"}}],
           "outputs": [{"type": "stdout", "match": "*"}]}
    agent = lhtest.start_agent(run, "agent", cfg=cfg)
    agent.proc.wait_log(r"following .*app\.log")
    append(log, "GET /a\nGET /healthcheck\nGET /b\nGET /healthcheck\nGET /c\n")
    recs = wait_until(at_least(agent, 3), 20, "the three records the grep keeps")
    check([r["message"] for r in recs] == ["GET /a", "GET /b", "GET /c"],
          "healthchecks dropped, order kept: %r" % [r["message"] for r in recs])
    check(all(r.get("env") == "prod" and "source" not in r for r in recs),
          "modify set env and removed source, the other tag's filter did not run: %r" % recs)
    wait_until(lambda: agent.metric("loghaul_agent_records_filtered_total",
                                    {"input": "web.access"}) == 2, 20,
               "the two dropped records counted")
    check(len(records(agent)) == 3, "no record twice")


# ---- watch: poll -----------------------------------------------------------

@test
def poll_follows_growth_new_files_and_rotation(run):
    d = run.path("logs")
    os.makedirs(d)
    a = os.path.join(d, "a.log")
    append(a, "a 0\n")
    agent = stdout_agent(run, [os.path.join(d, "*.log")], watch="poll")
    wait_until(at_least(agent, 1), 20, "the first line")
    agent.proc.wait_log(r"following .*a\.log")
    fds = [os.readlink("/proc/%d/fd/%s" % (agent.proc.pid, fd))
           for fd in os.listdir("/proc/%d/fd" % agent.proc.pid)]
    check("anon_inode:inotify" not in fds, "poll mode holds an inotify descriptor")
    append(a, "a 1\na 2\n")
    append(os.path.join(d, "b.log"), "b 0\n")
    wait_until(at_least(agent, 4), 5, "growth and a new file within a poll or two")
    append(a, "a 3\n")
    os.rename(a, a + ".1")   # not matched by *.log: drained under its new name
    append(a, "a 4\n")
    msgs = [r["message"] for r in wait_until(at_least(agent, 6), 10, "the rotated lines")]
    check(sorted(msgs) == ["a 0", "a 1", "a 2", "a 3", "a 4", "b 0"], "each line once: %r" % msgs)


# ---- invalid UTF-8 ---------------------------------------------------------

class ForwardSink(threading.Thread):
    """A plain-TCP Forward receiver: keeps every frame's entries bytes and
    acknowledges each chunk."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.entries = []
        self.lock = threading.Lock()

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        buf = b""
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while True:
                    try:
                        frame, pos = mp_unpack(buf)
                    except NeedMore:
                        break
                    buf = buf[pos:]
                    with self.lock:
                        self.entries.append(bytes(frame[1]))
                    conn.sendall(mp_pack({"ack": frame[2]["chunk"]}))

    def received(self):
        with self.lock:
            return b"".join(self.entries)


@test
def invalid_utf8_kept_as_bytes(run):
    sink = ForwardSink()
    sink.start()
    log = run.path("bin.log")
    bad = [b"caf\xe9 latin-1", b"stray \xff\xfe bytes", b"cut \xe2\x82 sequence",
           b"overlong \xc0\xaf slash", b"valid \xe2\x82\xac euro"]
    append(log, b"\n".join(bad) + b"\n")
    cfg = lhtest.agent_config(run, "agent", [log], ["127.0.0.1:%d" % sink.port], tls=False,
                              batch={"max_records": 10, "max_wait": "100ms"})
    lhtest.start_agent(run, "agent", cfg=cfg)
    wait_until(lambda: all(b in sink.received() for b in bad), 20,
               "every line's bytes unchanged on the wire")
    check(b"\xef\xbf\xbd" not in sink.received(), "a byte was replaced by U+FFFD")
    sink.sock.close()


# ---- time from a field -----------------------------------------------------

@test
def record_time_from_field(run):
    j = run.path("app.json")
    append(j, '{"ts":"2021-03-04T05:06:07.123456789Z","msg":"rfc3339"}\n'
              '{"ts":"2021-03-04T07:06:07+02:00","msg":"offset"}\n'
              '{"ts":"not a time","msg":"bad"}\n')
    e = run.path("app.epoch")
    append(e, "ts=1614834367123 msg=epoch_ms\n")
    s = run.path("app.strp")
    append(s, "[04/Mar/2021:05:06:07.250] strptime\n")
    before = time.time()
    inputs = [
        {"type": "file", "tag": "j", "paths": [j], "read_from": "head", "parser": "json",
         "time_key": "ts"},
        {"type": "file", "tag": "e", "paths": [e], "read_from": "head", "parser": "logfmt",
         "time_key": "ts", "time_format": "epoch_ms"},
        {"type": "file", "tag": "s", "paths": [s], "read_from": "head", "parser": "regex",
         "regex": r"^\[(?<ts>[^\]]+)\] (?<what>\S+)", "time_key": "ts",
         "time_format": "%d/%b/%Y:%H:%M:%S.%L"},
    ]
    cfg = {"agent": {"name": "a", "data_dir": run.path("data"), "http": "127.0.0.1:0"},
           "inputs": inputs, "outputs": [{"type": "stdout", "match": "*"}]}
    agent = lhtest.start_agent(run, "agent", cfg=cfg)
    recs = wait_until(at_least(agent, 5), 20, "five records")
    by = {r.get("msg") or r.get("what"): r["time"] for r in recs}
    check(by.get("rfc3339") == "2021-03-04T05:06:07.123456789Z", "rfc3339: %r" % by)
    check(by.get("offset") == "2021-03-04T05:06:07.000000000Z", "offset: %r" % by)
    check(by.get("epoch_ms") == "2021-03-04T05:06:07.123000000Z", "epoch_ms: %r" % by)
    check(by.get("strptime") == "2021-03-04T05:06:07.250000000Z", "strptime: %r" % by)
    # A time that does not parse leaves the read time and counts an error.
    check(by.get("bad", "")[:4] == time.strftime("%Y", time.gmtime(before)),
          "unparsable time keeps the read time: %r" % by.get("bad"))
    errs = agent.metric("loghaul_agent_parse_errors_total", {"input": "j"})
    check(errs == 1, "parse errors counted: %r" % errs)


if __name__ == "__main__":
    sys.exit(lhtest.run(need=(lhtest.AGENT,)))
