"""`loghaul` command line against stand-in collectors (Python HTTP servers on
loopback): usage and exit codes, fan-out and merge by time, --limit and
--order, partial answers, query errors, auth tokens, timeouts, https with
the certificates `loghaul certs` makes.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_cli.py
"""

import json
import os
import socket
import ssl
import stat
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import check, cli, test  # noqa: E402

BASE_NS = 1_795_000_000 * 10**9


def rfc3339(ns):
    s, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%09dZ" % frac


def record(ns, message, host="web-1", tag="app.log", **fields):
    d = {"time": rfc3339(ns), "tag": tag, "host": host, "message": message}
    d.update(fields)
    return json.dumps(d, separators=(",", ":"))


class FakeCollector:
    """Answers /api/v1/search like a collector would; `mode` picks the
    answer. Requests seen are kept in .requests as (path, params, headers)."""

    def __init__(self, lines=(), mode="ok", token=None, tls_files=None, host="127.0.0.1"):
        self.lines = list(lines)
        self.mode = mode
        self.token = token
        self.requests = []
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                fake.handle(self)

        server_class = ThreadingHTTPServer
        if ":" in host:
            server_class = type("Server6", (ThreadingHTTPServer,),
                                {"address_family": socket.AF_INET6})
        self.server = server_class((host, 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls_files:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*tls_files)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = "%s://%s:%d" % (scheme, "[%s]" % host if ":" in host else host,
                                   self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(self, h, status, body, ctype="application/x-ndjson"):
        data = body.encode()
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def handle(self, h):
        u = urllib.parse.urlsplit(h.path)
        params = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        self.requests.append((u.path, params, dict(h.headers)))
        if self.mode == "hang":
            self.release.wait(30)
            return
        if not u.path.endswith("/api/v1/search"):
            return self.reply(h, 404, "not found\n", "text/plain")
        if self.token and h.headers.get("Authorization") != "Bearer " + self.token:
            return self.reply(h, 401, '{"error": "unauthorized"}\n', "application/json")
        if self.mode == "badquery":
            return self.reply(h, 400, json.dumps({"error": "unexpected ')'", "position": 6}),
                              "application/json")
        if self.mode == "error":
            return self.reply(h, 500, '{"error": "store is broken"}', "application/json")
        self.reply(h, 200, "".join(line + "\n" for line in self.lines))

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def closed_port_url():
    """An http URL on loopback where nothing listens."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d" % port


def search(urls, *args, timeout=60):
    return lhtest.search(urls, *args, timeout=timeout)


@test
def usage_and_exit_codes(run):
    r = cli(["--help"])
    check(r.returncode == 0 and "search" in r.stdout and "certs" in r.stdout,
          "--help: %d %r" % (r.returncode, r.stdout))
    r = cli(["--version"])
    check(r.returncode == 0 and r.stdout.startswith("loghaul "), "--version: %r" % r.stdout)
    for sub, word in (("search", "--limit"), ("certs", "--host")):
        r = cli(["help", sub])
        check(r.returncode == 0 and word in r.stdout, "help %s: %r" % (sub, r.stdout))
        r = cli([sub, "--help"])
        check(r.returncode == 0 and word in r.stdout, "%s --help: %r" % (sub, r.stdout))
    bad = [
        ["tail"], ["tail", "-s", "ftp://127.0.0.1:1", "x"], ["stats", "x"], ["help", "nope"], [],
        ["search"], ["search", "--limit", "0", "x"], ["search", "--limit", "ten", "x"],
        ["search", "--order", "up", "x"], ["search", "-o", "xml", "x"],
        ["search", "--since", "yesterday", "x"], ["search", "--from", "noon", "x"],
        ["search", "--since", "1h", "--from", "1700000000", "x"],
        ["search", "--from", "1700000100", "--to", "1700000000", "x"],
        ["search", "--bogus", "x"], ["search", "-s", "ftp://127.0.0.1:1", "x"],
        ["certs"], ["certs", run.path("a"), run.path("b")],
    ]
    for args in bad:
        r = cli(args)
        check(r.returncode == 2, "loghaul %s: exit %d, want 2 (stderr %r)"
              % (" ".join(args), r.returncode, r.stderr))
        check(r.stderr.strip(), "loghaul %s: no message on stderr" % " ".join(args))


@test
def certs_writes_a_usable_set(run):
    d = run.path("certs")
    r = cli(["certs", d, "--host", "collector1.example"])
    check(r.returncode == 0, "certs failed: %s" % r.stderr)
    names = ["ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem",
             "client-key.pem"]
    printed = [os.path.basename(line) for line in r.stdout.split()]
    check(sorted(printed) == sorted(names), "printed %r" % printed)
    for n in names:
        mode = stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode)
        if n.endswith("-key.pem"):
            check(mode == 0o600, "%s has mode %o, want 600" % (n, mode))
    # The server certificate verifies against the CA for --host and 127.0.0.1.
    fake = FakeCollector([record(BASE_NS, "over tls")],
                         tls_files=(os.path.join(d, "server.pem"),
                                    os.path.join(d, "server-key.pem")))
    try:
        for host in ("collector1.example", "127.0.0.1"):
            ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
            with socket.create_connection(("127.0.0.1", int(fake.url.rsplit(":", 1)[1]))) as s:
                with ctx.wrap_socket(s, server_hostname=host) as t:
                    check(t.version() in ("TLSv1.2", "TLSv1.3"), "TLS version %s" % t.version())
    finally:
        fake.close()


@test
def merges_servers_by_time(run):
    a = FakeCollector([record(BASE_NS + i * 2 * 10**6, "a%d" % i, host="a") for i in range(5)][::-1])
    b = FakeCollector([record(BASE_NS + (i * 2 + 1) * 10**6, "b%d" % i, host="b")
                       for i in range(5)][::-1])
    try:
        r = cli(["search", "-s", a.url, "-s", b.url, "-o", "json", "level:error",
                 "host:a OR host:b"])
        check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
        recs = [json.loads(line) for line in r.stdout.splitlines()]
        ctl = [x for x in recs if "time" not in x]
        msgs = [x["message"] for x in recs if "time" in x]
        check(msgs == ["b4", "a4", "b3", "a3", "b2", "a2", "b1", "a1", "b0", "a0"],
              "newest first across servers: %r" % msgs)
        check(not ctl, "no control line expected: %r" % ctl)
        path, params, _ = a.requests[-1]
        check(path == "/api/v1/search", "path %r" % path)
        check(params.get("q") == ["level:error host:a OR host:b"], "q joined: %r" % params)
        check(params.get("limit") == ["100"] and params.get("order") == ["desc"],
              "defaults: %r" % params)

        r, recs, _ = search([a.url, b.url], "x", "--limit", "3")
        check([x["message"] for x in recs] == ["b4", "a4", "b3"], "--limit 3: %r" % recs)
        check(a.requests[-1][1].get("limit") == ["3"], "limit sent: %r" % a.requests[-1][1])

        a.lines.reverse()
        b.lines.reverse()
        r, recs, _ = search([a.url, b.url], "x", "--order", "asc", "--limit", "4")
        check([x["message"] for x in recs] == ["a0", "b0", "a1", "b1"], "asc: %r" % recs)
        check(a.requests[-1][1].get("order") == ["asc"], "order sent")
    finally:
        a.close()
        b.close()


@test
def passes_times_and_encodes_the_query(run):
    fake = FakeCollector([])
    try:
        q = 'path:~"^/api/v[0-9]+/" & "connection refused"'
        r, _, _ = search([fake.url], q, "--from", "2026-11-24T06:00:00Z", "--to", "1800000000")
        check(r.returncode == 0, r.stderr)
        params = fake.requests[-1][1]
        check(params.get("q") == [q], "query round trip: %r" % params.get("q"))
        check(params.get("from") == ["2026-11-24T06:00:00Z"] and params.get("to") == ["1800000000"],
              "from/to: %r" % params)
        before = time.time()
        search([fake.url], "x", "--since", "2h")
        since = fake.requests[-1][1]["from"][0]
        t = time.mktime(time.strptime(since[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        check(abs((before - 7200) - t) < 60, "--since 2h sent from=%s" % since)
    finally:
        fake.close()


@test
def several_servers_answer_for_themselves(run):
    """With several -s each collector is asked for its own records only
    (local=1), so one that federates cannot hand over its peers' records a
    second time; one -s keeps the federated answer."""
    a, b = FakeCollector([record(BASE_NS, "a")]), FakeCollector([record(BASE_NS + 1, "b")])
    try:
        search([a.url, b.url], "x")
        for fake in (a, b):
            check(fake.requests[-1][1].get("local") == ["1"], "local=1: %r" % fake.requests[-1][1])
        search([a.url], "x")
        check("local" not in a.requests[-1][1], "one server: federated: %r" % a.requests[-1][1])
        cli(["stats", "-s", a.url, "-s", b.url, "x | stats count by host"])
        check(a.requests[-1][0] == "/api/v1/stats" and a.requests[-1][1].get("local") == ["1"],
              "stats local=1: %r" % (a.requests[-1],))
    finally:
        a.close()
        b.close()


@test
def unreadable_lines_are_reported(run):
    """A line of an answer the CLI cannot read is never dropped silently:
    stderr counts it and the exit status is 1. Records holding NUL (even in
    a key, which jansson cannot hold) are records, printed as they came."""
    nul_key = '{"time":"%s","tag":"t","host":"h","message":"nul","k\\u0000":"v\\u0000"}' % \
        rfc3339(BASE_NS + 2)
    fake = FakeCollector([record(BASE_NS + 3, "fine"), nul_key, "not json at all",
                          '{"time":"yesterday","message":"bad time"}', record(BASE_NS, "also fine")])
    try:
        r, recs, ctl = search([fake.url], "x")
        check(r.returncode == 1, "exit %d, want 1: %r" % (r.returncode, r.stderr))
        check([x["message"] for x in recs] == ["fine", "nul", "also fine"] and not ctl,
              "every record printed: %r %r" % (recs, ctl))
        check(recs[1]["k\x00"] == "v\x00", "the NUL record as sent: %r" % recs[1])
        check("2 line(s)" in r.stderr and fake.url in r.stderr, "counted: %r" % r.stderr)
        r = cli(["search", "-s", fake.url, "-o", "text", "x"])
        check(r.returncode == 1 and len(r.stdout.splitlines()) == 3 and "nul" in r.stdout,
              "text mode: %d %r" % (r.returncode, r.stdout))
    finally:
        fake.close()


@test
def partial_answers(run):
    up = FakeCollector([record(BASE_NS, "still here")])
    down = closed_port_url()
    try:
        r, recs, ctl = search([up.url, down], "x")
        check(r.returncode == 0, "one server up: exit %d" % r.returncode)
        check([x["message"] for x in recs] == ["still here"], "records: %r" % recs)
        check(ctl == [{"partial": True, "failed": [down]}], "control line: %r" % ctl)
        check(r.stdout.splitlines()[-1].startswith('{"partial"'), "partial line comes last")
        check(down in r.stderr and "refused" in r.stderr, "stderr names the server: %r" % r.stderr)

        r, recs, ctl = search([down], "x")
        check(r.returncode == 1, "every server down: exit %d, want 1" % r.returncode)
        check(not recs and ctl == [{"partial": True, "failed": [down]}], "control: %r" % ctl)

        r = cli(["search", "-s", down, "-o", "text", "x"])
        check(r.returncode == 1 and r.stdout == "" and down in r.stderr,
              "text mode keeps stdout clean: %r / %r" % (r.stdout, r.stderr))

        relayed = FakeCollector([record(BASE_NS, "m"),
                                 json.dumps({"partial": True, "failed": ["https://peer:9800"]})])
        r, recs, ctl = search([relayed.url], "x")
        relayed.close()
        check(r.returncode == 0 and len(recs) == 1, "relayed partial: %r" % r.stdout)
        check(ctl == [{"partial": True, "failed": ["https://peer:9800"]}],
              "a server's own partial marker is kept: %r" % ctl)
    finally:
        up.close()


@test
def server_errors(run):
    bad = FakeCollector(mode="badquery")
    err = FakeCollector(mode="error")
    ok = FakeCollector([record(BASE_NS, "fine")])
    try:
        r = cli(["search", "-s", bad.url, "-s", ok.url, "level:(x))"])
        check(r.returncode == 2, "400 → exit 2, got %d" % r.returncode)
        lines = r.stderr.splitlines()
        check(any("unexpected ')'" in ln for ln in lines), "message shown: %r" % r.stderr)
        qi = [i for i, ln in enumerate(lines) if ln.strip() == "level:(x))"]
        check(qi and lines[qi[0] + 1].index("^") == lines[qi[0]].index("l") + 6,
              "caret under position 6: %r" % r.stderr)

        r, recs, ctl = search([err.url, ok.url], "x")
        check(r.returncode == 0 and len(recs) == 1, "500 on one: %d %r" % (r.returncode, recs))
        check("HTTP 500" in r.stderr and "store is broken" in r.stderr, "reason: %r" % r.stderr)
        check(ctl == [{"partial": True, "failed": [err.url]}], "control: %r" % ctl)
    finally:
        bad.close()
        err.close()
        ok.close()


@test
def token_file(run):
    fake = FakeCollector([record(BASE_NS, "secret")], token="s3cr3t-token")
    try:
        r, recs, _ = search([fake.url], "x")
        check(r.returncode == 1, "no token: exit %d, want 1" % r.returncode)
        check("unauthorized: use --token-file" in r.stderr, "stderr %r" % r.stderr)
        tok = run.path("token")
        with open(tok, "w") as f:
            f.write("  s3cr3t-token\n\n")
        r, recs, _ = search([fake.url], "x", "--token-file", tok)
        check(r.returncode == 0 and len(recs) == 1, "with token: %d %s" % (r.returncode, r.stderr))
        check(fake.requests[-1][2].get("Authorization") == "Bearer s3cr3t-token",
              "header %r" % fake.requests[-1][2])
        r = cli(["search", "-s", fake.url, "--token-file", run.path("missing"), "x"])
        check(r.returncode == 2 and "missing" in r.stderr, "missing token file: %r" % r.stderr)
    finally:
        fake.close()


@test
def timeout(run):
    hang = FakeCollector(mode="hang")
    try:
        t0 = time.monotonic()
        r = cli(["search", "-s", hang.url, "--timeout", "1s", "x"], timeout=30)
        took = time.monotonic() - t0
        check(r.returncode == 1 and "timed out" in r.stderr, "%d %r" % (r.returncode, r.stderr))
        check(took < 15, "gave up after %.1fs" % took)
    finally:
        hang.close()


@test
def https_with_ca(run):
    c = run.certs()
    fake = FakeCollector([record(BASE_NS, "over tls")], tls_files=(c["server"], c["server-key"]))
    try:
        r, recs, _ = search([fake.url], "x", "--ca", c["ca"])
        check(r.returncode == 0 and recs and recs[0]["message"] == "over tls",
              "https with --ca: %d %s" % (r.returncode, r.stderr))
        r, recs, _ = search([fake.url], "x")
        check(r.returncode == 1 and "certificate" in r.stderr,
              "unknown CA must fail: %d %r" % (r.returncode, r.stderr))
        r, recs, _ = search([fake.url], "x", "--insecure")
        check(r.returncode == 0 and len(recs) == 1, "--insecure: %d %r" % (r.returncode, r.stderr))
    finally:
        fake.close()


@test
def text_output(run):
    fake = FakeCollector([record(BASE_NS, "GET /x 500\x1b[2J", host="web-9", tag="nginx.access",
                                 status=500, path="/x y", user={"id": 7})])
    try:
        r = cli(["search", "-s", fake.url, "-o", "text", "x"])
        check(r.returncode == 0, r.stderr)
        line = r.stdout.rstrip("\n")
        want = (rfc3339(BASE_NS) + " web-9 nginx.access GET /x 500\\x1b[2J"
                + ' status=500 path="/x y" user={"id":7}')
        check(line == want, "text line:\n got %r\nwant %r" % (line, want))
        r = cli(["search", "-s", fake.url, "x"])
        check(r.stdout.startswith('{"time"'), "json is the default on a pipe: %r" % r.stdout)
    finally:
        fake.close()


@test
def ipv6_literal_and_path_prefix(run):
    try:
        fake = FakeCollector([record(BASE_NS, "over v6")], host="::1")
    except OSError:
        print("  (no IPv6 loopback here: skipped)")
        return
    try:
        r, recs, _ = search([fake.url + "/loghaul/"], "x")
        check(r.returncode == 0 and len(recs) == 1, "[::1]: %d %s" % (r.returncode, r.stderr))
        path, _, headers = fake.requests[-1]
        check(path == "/loghaul/api/v1/search", "path prefix kept: %r" % path)
        check(headers.get("Host") == fake.url.split("//")[1], "Host header %r" % headers.get("Host"))
    finally:
        fake.close()


if __name__ == "__main__":
    sys.exit(lhtest.run(need=(lhtest.CLI,)))
