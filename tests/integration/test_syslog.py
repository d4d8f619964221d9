#!/usr/bin/env python3
"""The syslog input, driven by real senders: util-linux `logger` over UDP,
TCP (octet counting), IPv6, unix datagram and stream sockets, in RFC 3164
and RFC 5424; and a real rsyslogd relaying over TCP (octet-counted) and
TLS (rsyslog-openssl, client certificate) to the agent. The agent writes
records with its stdout output; every one is checked field by field."""

import json
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lhtest import (AGENT, CLI, COLLECTOR, agent_config, check, check_exactly_once,  # noqa: E402
                    client_tls_context, fixed_collector_config, free_port, metric, run, seq_line, start_agent,
                    start_collector, status_kib, test, wait_all, wait_until, write_config)


def syslog_agent(r, listen, name="agent", tls=None, extra=None):
    """Starts an agent with one syslog input (tag sys) and the stdout output.
    Returns (proc, {scheme: bound address}, http address)."""
    inp = {"type": "syslog", "tag": "sys", "listen": listen}
    if tls:
        inp["tls"] = tls
    inp.update(extra or {})
    cfg = {
        "agent": {"name": "web-1", "data_dir": r.path(name + "-data"), "http": "127.0.0.1:0"},
        "inputs": [inp],
        "outputs": [{"type": "stdout", "match": "*"}],
    }
    p = r.start(name, [AGENT, "-c", write_config(r.path(name + ".yaml"), cfg)])
    http = p.wait_log(r"http listening on (\S+)").group(1)
    lines = wait_until(lambda: (lambda m: m if len(m) == len(listen) else None)(
        re.findall(r"syslog listening on (\S+)", p.log())), 20, "every syslog listener")
    bound = {}
    for url in lines:  # logged in config order
        scheme, addr = url.split("://", 1)
        bound.setdefault(scheme, []).append(addr)
    return p, bound, http


def records(p):
    out = []
    with open(p.out_path, "rb") as f:
        for line in f.read().decode("utf-8", "replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def wait_record(p, token, timeout=20):
    """The one record whose message contains token."""
    def find():
        hits = [rec for rec in records(p) if token in rec.get("message", "")]
        check(len(hits) <= 1, "message %r arrived %d times" % (token, len(hits)))
        return hits[0] if hits else None
    return wait_until(find, timeout, "a record with %r" % token)


def hostport(addr):
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), port


def logger(*args):
    r = subprocess.run(["logger"] + list(args), capture_output=True, text=True, timeout=20)
    check(r.returncode == 0, "logger %s failed: %s" % (" ".join(args), r.stderr))


def expect(rec, **want):
    for k, v in want.items():
        check(rec.get(k) == v, "field %s is %r, want %r in %r" % (k, rec.get(k), v, rec))


@test
def logger_every_transport(r):
    dsock, ssock = r.path("dev-log"), r.path("stream-log")
    p, bound, _ = syslog_agent(r, ["udp://127.0.0.1:0", "tcp://127.0.0.1:0", "tcp://[::1]:0",
                                   "udp://[::1]:0", "unix://" + dsock,
                                   "unixstream://" + ssock])
    udp4, udp6 = bound["udp"]
    tcp4, tcp6 = bound["tcp"]
    sd = ["--sd-id", "zoo@32473", "--sd-param", 'tiger="hungry \\"now\\" \\]"',
          "--sd-param", 'count="3"']

    h, port = hostport(udp4)
    logger("--udp", "-n", h, "-P", port, "--rfc5424", "--msgid", "ID47", "-t", "app-udp",
           "-p", "local3.err", "--id=4242", *sd, "udp 5424 message")
    rec = wait_record(p, "udp 5424 message")
    expect(rec, facility="local3", severity="err", appname="app-udp", procid="4242",
           msgid="ID47", host="web-1", message="udp 5424 message", tag="sys")
    check(rec["sd"]["zoo@32473"] == {"tiger": 'hungry "now" ]', "count": "3"},
          "sd is %r" % rec["sd"])
    check(rec["remote_addr"].startswith("127.0.0.1:"), "remote_addr %r" % rec["remote_addr"])
    check(rec.get("hostname"), "no hostname field in %r" % rec)

    h, port = hostport(udp6)
    logger("--udp", "-n", h, "-P", port, "--rfc3164", "-t", "app-udp6", "-p", "user.debug",
           "--id=9", "udp6 3164 message")
    rec = wait_record(p, "udp6 3164 message")
    expect(rec, facility="user", severity="debug", appname="app-udp6", procid="9",
           message="udp6 3164 message")
    check(rec["remote_addr"].startswith("[::1]:"), "remote_addr %r" % rec["remote_addr"])

    h, port = hostport(tcp4)
    logger("--tcp", "--octet-count", "-n", h, "-P", port, "--rfc5424", "--msgid", "M1",
           "-t", "app-tcp", "-p", "auth.warning", "--id=100", *sd, "tcp octet 5424 message")
    rec = wait_record(p, "tcp octet 5424 message")
    expect(rec, facility="auth", severity="warning", appname="app-tcp", procid="100",
           msgid="M1", message="tcp octet 5424 message")
    check(rec["sd"]["zoo@32473"]["tiger"] == 'hungry "now" ]', "sd is %r" % rec["sd"])

    h, port = hostport(tcp6)
    logger("--tcp", "--octet-count", "-n", h, "-P", port, "--rfc3164", "-t", "app-tcp6",
           "-p", "mail.notice", "--id=5", "tcp6 octet 3164 message")
    rec = wait_record(p, "tcp6 octet 3164 message")
    expect(rec, facility="mail", severity="notice", appname="app-tcp6", procid="5",
           message="tcp6 octet 3164 message")

    logger("--socket", dsock, "--rfc3164", "-t", "app-unix", "-p", "daemon.info", "--id=77",
           "unix dgram 3164 message")
    rec = wait_record(p, "unix dgram 3164 message")
    expect(rec, facility="daemon", severity="info", appname="app-unix", procid="77",
           message="unix dgram 3164 message", remote_addr="unix://" + dsock)

    logger("--socket", dsock, "--rfc5424", "--msgid", "U5", "-t", "app-unix5", "-p", "cron.crit",
           *sd, "unix dgram 5424 message")
    rec = wait_record(p, "unix dgram 5424 message")
    expect(rec, facility="cron", severity="crit", appname="app-unix5", msgid="U5")
    check("zoo@32473" in rec["sd"], "sd is %r" % rec.get("sd"))

    logger("--socket", ssock, "--socket-errors=on", "--rfc3164", "-t", "app-stream",
           "-p", "local7.alert", "unix stream message")
    rec = wait_record(p, "unix stream message")
    expect(rec, facility="local7", severity="alert", appname="app-stream",
           remote_addr="unixstream://" + ssock)


@test
def malformed_and_oversized_kept(r):
    p, bound, http = syslog_agent(r, ["tcp://127.0.0.1:0", "udp://127.0.0.1:0"],
                                  extra={"max_message": "1KiB"})
    h, port = hostport(bound["tcp"][0])
    with socket.create_connection((h, int(port))) as s:
        s.sendall(b"this is not syslog at all\n")
        long = b"<13>1 - host app - - - " + b"x" * 5000
        s.sendall(b"%d %s" % (len(long), long))
        s.sendall(b"<14>after the long one\n")
    rec = wait_record(p, "this is not syslog at all")
    expect(rec, message="this is not syslog at all", host="web-1")
    check("facility" not in rec, "an unparsed message got a facility: %r" % rec)
    rec = wait_record(p, "xxxx")
    expect(rec, truncated=True, appname="app")
    check(len(rec["message"]) == 1024 - len("<13>1 - host app - - - "),
          "truncated message is %d bytes" % len(rec["message"]))
    rec = wait_record(p, "after the long one")
    expect(rec, facility="user", severity="info")
    url = "http://%s/metrics" % http
    wait_until(lambda: metric(url, "loghaul_agent_parse_errors_total", {"input": "sys"}) == 1,
               10, "parse_errors_total == 1")
    check(metric(url, "loghaul_agent_syslog_udp_drops_total", {"input": "sys"}) == 0,
          "udp drops metric missing or non-zero")
    check(metric(url, "loghaul_agent_syslog_truncated_total", {"input": "sys"}) == 1,
          "truncated metric is not 1")


RSYSLOG_CONF = """\
global(workDirectory="{work}"
       defaultNetstreamDriverCAFile="{ca}"
       defaultNetstreamDriverCertFile="{cert}"
       defaultNetstreamDriverKeyFile="{key}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}" UseSpecialParser="off" ParseHostname="on")
action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp"
       TCP_Framing="octet-counted" template="RSYSLOG_ForwardFormat")
action(type="omfwd" target="127.0.0.1" port="{tls}" protocol="tcp"
       StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
       StreamDriverPermittedPeers="localhost" template="RSYSLOG_SyslogProtocol23Format")
"""


@test
def rsyslog_relays_tcp_and_tls(r):
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    check(os.access(rsyslogd, os.X_OK), "rsyslogd is not installed (apt-get install rsyslog "
          "rsyslog-openssl)")
    c = r.certs()
    tls = {"cert": c["server"], "key": c["server-key"], "ca": c["ca"],
           "require_client_cert": True}
    p, bound, _ = syslog_agent(r, ["tcp://127.0.0.1:0", "tls://127.0.0.1:0"], tls=tls)
    sock, work = r.path("rsyslog-in.sock"), r.path("rsyslog-work")
    os.mkdir(work)
    conf = RSYSLOG_CONF.format(work=work, ca=c["ca"], cert=c["client"], key=c["client-key"],
                               sock=sock, tcp=hostport(bound["tcp"][0])[1],
                               tls=hostport(bound["tls"][0])[1])
    with open(r.path("rsyslog.conf"), "w") as f:
        f.write(conf)
    rs = r.start("rsyslogd", [rsyslogd, "-n", "-f", r.path("rsyslog.conf"),
                              "-i", r.path("rsyslog.pid")])
    wait_until(lambda: os.path.exists(sock) or not rs.alive(), 20, "rsyslogd's input socket")
    check(rs.alive(), "rsyslogd exited: %s" % rs.log())

    logger("--socket", sock, "--rfc5424", "--msgid", "ID47", "-t", "relay5", "-p", "local3.err",
           "--id=4242", "--sd-id", "zoo@32473", "--sd-param", 'tiger="hungry \\"x\\""',
           "relayed 5424 message")
    logger("--socket", sock, "--rfc3164", "-t", "relay3", "-p", "mail.warning", "--id=77",
           "relayed 3164 message")

    def both(token):
        def find():
            hits = [x for x in records(p) if token in x.get("message", "")]
            return hits if len(hits) >= 2 else None
        hits = wait_until(find, 30, "%r over both relays" % token)
        check(len(hits) == 2, "%r arrived %d times" % (token, len(hits)))
        return hits

    for rec in both("relayed 5424 message"):
        expect(rec, facility="local3", severity="err", appname="relay5", procid="4242",
               host="web-1")
        check(rec["message"].strip() == "relayed 5424 message", "message %r" % rec["message"])
    # Only RFC 5424 carries msgid and structured data: over TLS (that template).
    tls_rec = [x for x in both("relayed 5424 message") if x.get("msgid")]
    check(len(tls_rec) == 1, "one relayed record keeps msgid: %r" % tls_rec)
    expect(tls_rec[0], msgid="ID47")
    check(tls_rec[0]["sd"]["zoo@32473"] == {"tiger": 'hungry "x"'}, "sd %r" % tls_rec[0]["sd"])
    for rec in both("relayed 3164 message"):
        expect(rec, facility="mail", severity="warning", appname="relay3", procid="77")
        check(rec["message"].strip() == "relayed 3164 message", "message %r" % rec["message"])
    ports = {hostport(x["remote_addr"])[0] for x in both("relayed 3164 message")}
    check(ports == {"127.0.0.1"}, "remote_addr %r" % ports)


@test
def tls_client_certificates(r):
    """tls:// with require_client_cert: a client with the CA's certificate
    gets its messages in; one without is refused before anything is read."""
    c = r.certs()
    tls = {"cert": c["server"], "key": c["server-key"], "ca": c["ca"],
           "require_client_cert": True}
    p, bound, _ = syslog_agent(r, ["tls://[::1]:0"], tls=tls)
    h, port = hostport(bound["tls"][0])
    with client_tls_context(c).wrap_socket(socket.create_connection((h, int(port))),
                                           server_hostname="localhost") as s:
        s.sendall(b"<13>1 - - tlsapp - - - with a client certificate\n")
    rec = wait_record(p, "with a client certificate")
    expect(rec, appname="tlsapp", facility="user", severity="notice")
    check(rec["remote_addr"].startswith("[::1]:"), "remote_addr %r" % rec["remote_addr"])
    refused = False
    try:
        with client_tls_context(c, with_cert=False).wrap_socket(
                socket.create_connection((h, int(port))), server_hostname="localhost") as s:
            s.sendall(b"<13>1 - - tlsapp - - - without a certificate\n")
            refused = s.recv(1) == b""
    except (ssl.SSLError, ConnectionError):
        refused = True
    check(refused, "a client without a certificate was not refused")
    p.wait_log(r"closing \[::1\]:\d+: .*certificate")
    check(not any("without a certificate" in x.get("message", "") for x in records(p)),
          "a message from a client without a certificate was accepted")


@test
def tcp_backpressure_stops_reading_never_drops(r):
    """The collector is down and the agent's buffer small: the input must
    stop reading (the sender blocks in TCP flow control), then deliver
    every message once the collector is up."""
    n = 100000
    port = free_port()
    cfg = agent_config(r, "agent", [], ["127.0.0.1:%d" % port],
                       batch={"max_records": 200, "max_bytes": "64KiB", "max_wait": "200ms"})
    cfg["inputs"] = [{"type": "syslog", "tag": "sys", "listen": ["tcp://127.0.0.1:0"]}]
    cfg["outputs"][0].update({"buffer": {"max_size": "256KiB", "on_full": "block"},
                              "backoff_max": "1s"})
    agent = start_agent(r, cfg=cfg)
    h, p = hostport(agent.proc.wait_log(r"syslog listening on tcp://(\S+)").group(1))
    blob = b"".join(b"<14>1 - src app - - - %s\n" % seq_line(i).encode() for i in range(n))
    sock = socket.create_connection((h, int(p)))
    sender = threading.Thread(target=sock.sendall, args=(blob,), daemon=True)
    sender.start()

    def stalled():
        a = agent.metric("loghaul_agent_syslog_messages_total") or 0
        sender.join(1)
        b = agent.metric("loghaul_agent_syslog_messages_total") or 0
        return a == b and 0 < b < n and sender.is_alive()
    wait_until(stalled, 60, "the input to stop reading while the sender blocks")
    col = start_collector(r, "collector", cfg=fixed_collector_config(r, "collector", port))
    sender.join(60)
    check(not sender.is_alive(), "the sender never finished")
    sock.close()
    check_exactly_once(wait_all([col], n, timeout=120), n)
    check(agent.metric("loghaul_agent_syslog_messages_total") == n, "messages_total != n")


@test
def a_message_goes_out_without_waiting_for_max_wait(r):
    """With nothing unacknowledged, what a read brought in is sealed into a
    batch at once: a lone message reaches the collector long before the
    output's max_wait (60 s here), over TCP and UDP alike."""
    port = free_port()
    col = start_collector(r, "collector", cfg=fixed_collector_config(r, "collector", port))
    cfg = agent_config(r, "agent", [], ["127.0.0.1:%d" % port],
                       batch={"max_records": 100000, "max_wait": "60s"})
    cfg["inputs"] = [{"type": "syslog", "tag": "sys",
                      "listen": ["tcp://127.0.0.1:0", "udp://127.0.0.1:0"]}]
    agent = start_agent(r, cfg=cfg)
    bound = wait_until(lambda: (lambda m: m if len(m) == 2 else None)(
        re.findall(r"syslog listening on (\S+)", agent.proc.log())), 20, "both listeners")
    for n, url in enumerate(bound, 1):
        scheme, addr = url.split("://", 1)
        h, p = hostport(addr)
        logger("--%s" % scheme, "-n", h, "-P", p, "--octet-count" if scheme == "tcp" else "-d",
               "lone message over %s" % scheme)
        wait_until(lambda: col.records_in() >= n, 15, "the %s message, before max_wait" % scheme)


@test
def unix_socket_mode_and_group(r):
    """unix:// and unixstream:// sockets are 0666 by default; `mode` and
    `group` set them after bind; a mode that is not octal fails the check
    at its position."""
    import grp
    import stat
    import subprocess
    d0, s0 = r.path("d0.sock"), r.path("s0.sock")
    p, _, _ = syslog_agent(r, ["unix://" + d0, "unixstream://" + s0], name="plain")
    for path in (d0, s0):
        check(stat.S_IMODE(os.stat(path).st_mode) == 0o666, "%s is not 0666" % path)
    gid = os.getgid()
    group = grp.getgrgid(gid).gr_name
    d1, s1 = r.path("d1.sock"), r.path("s1.sock")
    p, _, _ = syslog_agent(r, ["unix://" + d1, "unixstream://" + s1], name="narrow",
                           extra={"mode": "0660", "group": group})
    for path in (d1, s1):
        st = os.stat(path)
        check(stat.S_IMODE(st.st_mode) == 0o660,
              "%s has mode %o, not 0660" % (path, stat.S_IMODE(st.st_mode)))
        check(st.st_gid == gid, "%s has gid %d, not %d" % (path, st.st_gid, gid))
    for key, value, want in (("mode", "0999", r"mode: '0999' is not octal"),
                             ("group", "-1", r"group: '-1' is not a group number"),
                             ("group", "4294967296", r"group: '4294967296' is not a group number")):
        cfg = {"agent": {"data_dir": r.path("x"), "http": ""},
               "inputs": [{"type": "syslog", "listen": ["unix://" + r.path("d2.sock")],
                           key: value}],
               "outputs": [{"type": "stdout", "match": "*"}]}
        path = write_config(r.path("bad.yaml"), cfg)
        res = subprocess.run([AGENT, "--check-config", "-c", path], capture_output=True,
                             text=True, timeout=30)
        check(res.returncode == 2 and re.search(r"bad\.yaml:\d+:\d+: " + want, res.stderr),
              "%s %s: exit %d, %s" % (key, value, res.returncode, res.stderr))


def inotify_names(directory):
    """An inotify watch on directory: returns read(), which gives the
    (event mask, name) pairs so far."""
    import ctypes
    import struct
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK)
    check(fd >= 0, "inotify_init1 failed")
    IN_CREATE, IN_MOVED_TO = 0x100, 0x80
    check(libc.inotify_add_watch(fd, directory.encode(), IN_CREATE | IN_MOVED_TO) >= 0,
          "inotify_add_watch failed")

    def read():
        out = []
        try:
            buf = os.read(fd, 65536)
        except BlockingIOError:
            return out
        pos = 0
        while pos < len(buf):
            _, mask, _, n = struct.unpack_from("iIII", buf, pos)
            name = buf[pos + 16:pos + 16 + n].rstrip(b"\0").decode()
            out.append(("create" if mask & IN_CREATE else "moved", name))
            pos += 16 + n
        return out
    return read


@test
def unix_socket_appears_with_its_mode(r):
    """Under umask 000 a socket bound at its path would be 0777 until the
    chmod; the agent binds it in a private directory, sets mode and group
    there and renames it into place, so the path only ever appears by a
    rename (never an IN_CREATE) with mode 0660 already set."""
    import stat
    d, s = r.path("sockets", "d.sock"), r.path("sockets", "s.sock")
    os.mkdir(r.path("sockets"))
    events = inotify_names(r.path("sockets"))
    old = os.umask(0)
    try:
        syslog_agent(r, ["unix://" + d, "unixstream://" + s], name="umask0",
                     extra={"mode": "0660"})
    finally:
        os.umask(old)
    seen = events()
    for path in (d, s):
        name = os.path.basename(path)
        check(("moved", name) in seen and ("create", name) not in seen,
              "%s did not appear by a rename: %r" % (name, seen))
        mode = stat.S_IMODE(os.stat(path).st_mode)
        check(mode == 0o660, "%s has mode %o, not 0660" % (path, mode))
    check(sorted(os.listdir(r.path("sockets"))) == ["d.sock", "s.sock"],
          "private directories left behind: %r" % os.listdir(r.path("sockets")))


def flood_half_sent(host, port, n, size):
    """n connections each sending size bytes of one line without its end,
    until every byte is sent or none of them can send for 1 s (the agent
    stopped reading them). Returns the sockets, still open."""
    head = b"<13>Jan  1 00:00:00 h app: "
    socks = [socket.create_connection((host, port)) for _ in range(n)]
    left = {}
    for s in socks:
        s.setblocking(False)
        left[s] = head + b"z" * (size - len(head))
    for _ in range(2000):  # bounded; each round waits at most 1 s
        if not left:
            break
        _, ready, _ = select.select([], list(left), [], 1.0)
        if not ready:
            break
        for s in ready:
            try:
                left[s] = left[s][s.send(left[s][:65536]):]
            except BlockingIOError:
                continue
            if not left[s]:
                del left[s]
    return socks


def budget_agent(r, name, budget="4MiB"):
    """An agent with one tcp:// syslog input (max_message 256KiB, the given
    max_memory) whose flood lines (zzzz...) a grep filter drops. Returns
    (proc, metrics url, host, port)."""
    cfg = {"agent": {"name": "web-1", "data_dir": r.path(name + "-data"), "http": "127.0.0.1:0"},
           "inputs": [{"type": "syslog", "tag": "sys", "listen": ["tcp://127.0.0.1:0"],
                       "max_message": "256KiB", "max_memory": budget}],
           "filters": [{"type": "grep", "match": "sys",
                        "exclude": {"field": "message", "regex": "^zzzz"}}],
           "outputs": [{"type": "stdout", "match": "*"}]}
    p = r.start(name, [AGENT, "-c", write_config(r.path(name + ".yaml"), cfg)])
    url = "http://%s/metrics" % p.wait_log(r"http listening on (\S+)").group(1)
    h, port = hostport(p.wait_log(r"syslog listening on tcp://(\S+)").group(1))
    wait_until(lambda: metric(url, "loghaul_agent_syslog_memory_bytes", {"input": "sys"}) == 0,
               10, "the memory gauge")
    return p, url, h, int(port)


def sys_metric(url, name):
    return metric(url, name, {"input": "sys"}) or 0


@test
def stream_memory_budget_pauses_and_closes_the_largest(r):
    """300 TCP connections each send 200 KB of one line without its end
    into an input with max_message 256KiB and max_memory 4MiB. Before the
    budget every decoder took what its connection sent (60 MB here, up to
    max_connections x max_message); now the peak RSS grows by less than
    24 MiB: past the budget connections stop reading (counted), the held
    memory stays near max_memory (the gauge), the largest holder is closed
    when they all wait (counted, logged), and a new sender's line still
    arrives."""
    n, size, budget = 300, 200000, 4 << 20
    p, url, h, port = budget_agent(r, "mem")
    base = status_kib(p.pid, "VmHWM")
    socks = flood_half_sent(h, port, n, size)
    wait_until(lambda: sys_metric(url, "loghaul_agent_syslog_read_pauses_total") > 0, 20,
               "connections waiting for memory")
    held = sys_metric(url, "loghaul_agent_syslog_memory_bytes")
    peak = status_kib(p.pid, "VmHWM")
    print("  VmHWM %d KiB before, %d KiB after %d x %d bytes half sent; %d bytes held"
          % (base, peak, n, size, held))
    check(held <= budget + n * 32 * 1024, "%d bytes held, max_memory is %d" % (held, budget))
    check(peak - base < 24 * 1024, "VmHWM grew by %d KiB" % (peak - base))
    wait_until(lambda: sys_metric(url, "loghaul_agent_syslog_memory_closes_total") > 0, 20,
               "the largest holder closed")
    p.wait_log(r"max_memory \(4194304 bytes\) full for 1000 ms with \d+ connections waiting: "
               r"closing 127\.0\.0\.1:\d+")
    s = socket.create_connection((h, port))
    s.sendall(b"<13>Jan  1 00:00:00 h app: a line after the flood\n")
    s.close()
    expect(wait_record(p, "a line after the flood"), appname="app")
    check(p.alive(), "the agent exited")
    for s in socks:
        s.close()


@test
def stream_memory_budget_resumes_when_memory_is_released(r):
    """16 connections hold 200 KB half-sent lines, all max_memory (4MiB)
    has room for; a 17th sending the same must wait. When the 16 end their
    lines (or, had they not, the stall closes the largest of them), the
    17th reads again and its line arrives whole."""
    p, url, h, port = budget_agent(r, "resume")
    holders = flood_half_sent(h, port, 16, 200000)
    wait_until(lambda: sys_metric(url, "loghaul_agent_syslog_memory_bytes") >= 16 * 200000, 20,
               "the 16 half-sent lines held")
    late = socket.create_connection((h, port))
    late.sendall(b"<13>Jan  1 00:00:00 h app: late " + b"y" * 199000)
    wait_until(lambda: sys_metric(url, "loghaul_agent_syslog_read_pauses_total") > 0, 20,
               "the 17th connection waiting")
    for s in holders:
        s.setblocking(True)
        s.sendall(b"\n")
    late.sendall(b" end\n")
    rec = wait_record(p, "late yyyy")
    check(rec["message"].endswith("y end") and len(rec["message"]) == 5 + 199000 + 4
          and "truncated" not in rec, "the waiting line arrived cut: %d bytes, %r"
          % (len(rec["message"]), {k: v for k, v in rec.items() if k != "message"}))
    wait_until(lambda: sys_metric(url, "loghaul_agent_syslog_messages_total")
               + sys_metric(url, "loghaul_agent_syslog_memory_closes_total") == 17, 30,
               "each holder's line delivered or its connection closed")
    for s in holders + [late]:
        s.close()
    wait_until(lambda: sys_metric(url, "loghaul_agent_syslog_memory_bytes") == 0, 30,
               "every connection's memory released")


if __name__ == "__main__":
    sys.exit(run(need=(CLI, AGENT, COLLECTOR)))
