#!/usr/bin/env python3
"""A hostile peer for loghaul's soak test and bench: for a bounded time it
throws at a collector and an agent, over loopback only, the inputs that
issue "Hostile input and overload" found or feared -- garbage and oversized
Forward frames, half-sent frames, records nested too deep, invalid UTF-8 and
NUL bytes, gzip bombs, idle floods, huge HTTP headers, URIs and bodies,
slow clients, connection floods, catastrophic regexes and bad queries,
syslog garbage.

  hostile.py --forward 127.0.0.1:P --http 127.0.0.1:P --agent-http 127.0.0.1:P
             --syslog-tcp 127.0.0.1:P --syslog-udp 127.0.0.1:P
             [--ca FILE] [--shared-key KEY] [--duration S] [--report FILE]

Every attack is one function; they run in rounds until --duration is spent.
Each attack's own timeouts bound it, so the process always ends. At the end
it writes (to --report, as JSON) how often each attack ran and how many
acks its valid hostile records got, so a test can account for them.
Attacks that the daemons should refuse are never retried: the point is the
daemon's survival and memory, judged by the caller.
"""

import argparse
import json
import os
import resource
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lhtest  # noqa: E402

MiB = 1024 * 1024
HOSTILE_TAG = "hostile.rec"


def hostport(s):
    h, p = s.rsplit(":", 1)
    check_loopback(h)
    return h, int(p)


def check_loopback(host):
    """Refuses any target outside the loopback range: this tool floods."""
    if not (host.startswith("127.") or host in ("::1", "localhost")):
        raise SystemExit("hostile.py only targets loopback, not %r" % host)


class Ctx:
    def __init__(self, a):
        self.a = a
        self.fwd = hostport(a.forward) if a.forward else None
        self.http = hostport(a.http) if a.http else None
        self.agent_http = hostport(a.agent_http) if a.agent_http else None
        self.syslog_tcp = hostport(a.syslog_tcp) if a.syslog_tcp else None
        self.syslog_udp = hostport(a.syslog_udp) if a.syslog_udp else None
        self.tls = None
        if a.ca:
            self.tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=a.ca)
            self.tls.check_hostname = False
        self.deadline = time.monotonic() + a.duration
        self.counts = {}
        self.acked_records = 0
        self.bomb = None
        self.seconds = {}
        self.lock = threading.Lock()

    def left(self):
        return self.deadline - time.monotonic()

    def note(self, name, n=1):
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + n


# ---------------------------------------------------------------- plumbing

def tcp(addr, timeout=5):
    s = socket.create_connection(addr, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def fwd_conn(ctx, timeout=5):
    """A Forward connection (TLS when the collector has it), not yet authed."""
    raw = tcp(ctx.fwd, timeout)
    return ctx.tls.wrap_socket(raw, server_hostname="localhost") if ctx.tls else raw


def fwd_client(ctx, authed=True, timeout=10):
    c = lhtest.ForwardClient(ctx.fwd[0], ctx.fwd[1], tls_ctx=ctx.tls,
                             server_hostname="localhost", timeout=timeout)
    if authed and ctx.a.shared_key:
        pong = c.handshake(ctx.a.shared_key, hostname="hostile")
        if not (isinstance(pong, list) and len(pong) > 1 and pong[1] is True):
            c.close()
            return None
    return c


def send_quietly(sock, data, step=256 * 1024, stop_after=None):
    """Sends data in steps until the peer closes or stop_after seconds
    pass; returns the bytes sent."""
    sent = 0
    t0 = time.monotonic()
    try:
        while sent < len(data):
            if stop_after is not None and time.monotonic() - t0 > stop_after:
                break
            sock.sendall(data[sent:sent + step])
            sent += step
    except (OSError, ssl.SSLError):
        pass
    return min(sent, len(data))


def closed_by_peer(sock, timeout):
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except socket.timeout:
        return False
    except (OSError, ssl.SSLError):
        return True


def close(sock):
    try:
        sock.close()
    except OSError:
        pass


def array32_header(n):
    return b"\xdd" + n.to_bytes(4, "big")


# ---------------------------------------------------------------- Forward

def fwd_garbage(ctx):
    s = fwd_conn(ctx)
    send_quietly(s, os.urandom(64 * 1024))
    closed_by_peer(s, 3)
    close(s)


def fwd_nils_frame(ctx):
    """One 60 MiB frame of nils: an array claiming 60M elements."""
    c = fwd_client(ctx)
    if c:
        n = 60 * MiB
        send_quietly(c.sock, array32_header(n) + b"\xc0" * n, step=4 * MiB, stop_after=20)
        closed_by_peer(c.sock, 5)
        c.close()


def fwd_preauth_big(ctx):
    """32 MiB sent after HELO, before PING."""
    if not ctx.a.shared_key:
        return
    s = fwd_conn(ctx)
    n = 32 * MiB
    send_quietly(s, b"\xc6" + n.to_bytes(4, "big") + b"\0" * n, step=4 * MiB, stop_after=15)
    closed_by_peer(s, 3)
    close(s)


def fwd_half_frames(ctx, conns=20):
    """Many connections each send half of a 60 MiB frame, then wait."""
    socks = []
    half = b"\x93\xa4test\xc6" + (60 * MiB).to_bytes(4, "big") + b"\0" * (30 * MiB)
    for _ in range(conns):
        c = fwd_client(ctx)
        if c:
            socks.append(c)
    threads = [threading.Thread(target=send_quietly, args=(c.sock, half, 1 * MiB, 10))
               for c in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    time.sleep(min(2, max(0, ctx.left())))  # hold them a moment, as an attacker would
    for c in socks:
        c.close()


def fwd_too_big(ctx):
    """A bin header claiming more than max_frame."""
    c = fwd_client(ctx)
    if c:
        send_quietly(c.sock, b"\x93\xa4test\xc6\xff\xff\xff\xff" + b"\0" * 1024)
        closed_by_peer(c.sock, 3)
        c.close()


def nested(depth):
    v = "deep"
    for _ in range(depth):
        v = {"d": v}
    return v


def fwd_records(ctx, records):
    """Sends valid PackedForward batches of hostile records; counts acks."""
    c = fwd_client(ctx)
    if not c:
        return
    try:
        for rec in records:
            ack, chunk = c.send_batch(HOSTILE_TAG, [(time.time_ns(), rec)])
            if isinstance(ack, dict) and ack.get("ack") == chunk:
                with ctx.lock:
                    ctx.acked_records += 1
            else:
                break
    except (OSError, ssl.SSLError):
        pass
    finally:
        c.close()


def fwd_deep(ctx):
    for depth in (28, 29, 30, 31, 40):
        fwd_records(ctx, [{"message": "deep %d" % depth, "nest": nested(depth)}])


def fwd_bytes(ctx):
    fwd_records(ctx, [
        {"message": b"bad utf8 \xff\xfe \xc0\xaf \xed\xa0\x80 end", b"k\xff": b"v\x80"},
        {"message": "nul in field", "user": "a\0b", "level": "x\0"},
        {"message": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"},
    ])


def gzip_bomb(size):
    """gzip of size zero bytes, made in steps (a few hundred KiB out)."""
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = b"\0" * MiB
    return b"".join([co.compress(zero) for _ in range(size // MiB)] + [co.flush()])


def fwd_gzip_bomb(ctx):
    c = fwd_client(ctx)
    if not c:
        return
    if ctx.bomb is None:
        ctx.bomb = gzip_bomb(1024 * MiB)
    z = ctx.bomb
    frame = lhtest.mp_pack(["bomb", z, {"compressed": "gzip", "chunk": "bomb"}])
    send_quietly(c.sock, frame)
    closed_by_peer(c.sock, 10)
    c.close()


def fwd_idle_flood(ctx, n=200):
    socks = []
    for _ in range(n):
        try:
            socks.append(tcp(ctx.fwd, 2))
        except OSError:
            break
    time.sleep(min(2, max(0, ctx.left())))
    for s in socks:
        close(s)


def fwd_tiny_conns(ctx, n=1600, hold=4):
    """Many connections that each send one byte of a frame and wait: they
    must not take the memory budget from senders making progress."""
    socks = []
    for _ in range(n):
        try:
            s = tcp(ctx.fwd, 2)
            s.sendall(b"\x16" if ctx.tls else b"\x93")
            socks.append(s)
        except OSError:
            break
    time.sleep(min(hold, max(0, ctx.left())))
    for s in socks:
        close(s)


def fwd_big_records(ctx):
    """A few 500 KB records, so slow_query has something costly to match."""
    fwd_records(ctx, [{"message": "big " + ("zz%d " % i) * 100000} for i in range(8)])


# ---------------------------------------------------------------- HTTP

def http_send(addr, head, body_len=0, stop_after=10, chunk=1 * MiB):
    """Sends an HTTP request whose head is `head` bytes (generated lazily
    so a 64 MiB header costs no memory here) and reads the status."""
    s = tcp(addr, 5)
    try:
        for part in head:
            s.sendall(part)
        sent, t0 = 0, time.monotonic()
        zero = b"\0" * chunk
        while sent < body_len and time.monotonic() - t0 < stop_after:
            s.sendall(zero)
            sent += chunk
    except (OSError, ssl.SSLError):
        pass
    closed_by_peer(s, 5)
    close(s)


def big_header(size):
    yield b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
    for _ in range(size // MiB):
        yield b"a" * MiB
    yield b"\r\n\r\n"


def big_uri(size):
    yield b"GET /api/v1/search?q="
    for _ in range(size // MiB):
        yield b"a" * MiB
    yield b" HTTP/1.1\r\nHost: x\r\n\r\n"


def http_attacks(ctx, addr):
    if not addr:
        return
    http_send(addr, big_header(64 * MiB))
    http_send(addr, big_uri(32 * MiB))
    http_send(addr, [b"POST /api/v1/search HTTP/1.1\r\nHost: x\r\nContent-Length: 209715200"
                     b"\r\n\r\n"], body_len=200 * MiB)
    slowloris(addr)
    conn_flood(addr)


def slowloris(addr, seconds=4):
    s = tcp(addr, 2)
    t0 = time.monotonic()
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        while time.monotonic() - t0 < seconds:
            s.sendall(b"X")
            time.sleep(0.5)
    except OSError:
        pass
    close(s)


def conn_flood(addr, n=300):
    socks = []
    for _ in range(n):
        try:
            socks.append(tcp(addr, 2))
        except OSError:
            break
    time.sleep(1)
    for s in socks:
        close(s)


def api(ctx, path, **q):
    url = "http://%s:%d%s?%s" % (ctx.http[0], ctx.http[1], path, urllib.parse.urlencode(q))
    return lhtest.http_get(url, timeout=60)


def bad_queries(ctx):
    for q in ('message:~"(a+)+$"', '((((', 'status:>=', '"unterminated', 'x | stats nope',
              'user:* | stats count by user', 'a' * 100000):
        api(ctx, "/api/v1/search", q=q, limit=100)
    api(ctx, "/api/v1/search", q="", to="9999999999")
    api(ctx, "/api/v1/search", q="", limit="99999999999")
    api(ctx, "/api/v1/histogram", q="", step="0s")
    api(ctx, "/api/v1/search", q="x | stats count by level")


def slow_query(ctx):
    """A query whose every record costs a thousand word matches (the most
    terms a query may have)."""
    q = "NOT (" + " OR ".join("zq%d" % i for i in range(1000)) + ")"
    api(ctx, "/api/v1/search", q=q, limit=10)


def tails_never_read(ctx, n=100, hold=5):
    """Live tails whose clients never read: what they queue must be bounded
    in total, not only per client."""
    socks = []
    for _ in range(n):
        try:
            s = tcp(ctx.http, 2)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /api/v1/tail?q= HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        except OSError:
            break
    fwd_records(ctx, [{"message": "tail feed " + "y" * 200000} for _ in range(20)])
    time.sleep(min(hold, max(0, ctx.left())))
    for s in socks:
        close(s)


# ---------------------------------------------------------------- syslog

def syslog_attacks(ctx):
    if ctx.syslog_tcp:
        s = tcp(ctx.syslog_tcp)
        send_quietly(s, b"99999999999 " + os.urandom(1 * MiB))
        close(s)
        s = tcp(ctx.syslog_tcp)
        send_quietly(s, b"<13>" + b"x" * (8 * MiB) + b"\n")
        close(s)
        conn_flood(ctx.syslog_tcp, 200)
    if ctx.syslog_udp:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(200):
            u.sendto(os.urandom(1400), ctx.syslog_udp)
        u.close()


ATTACKS = [
    ("fwd_garbage", fwd_garbage), ("fwd_nils_frame", fwd_nils_frame),
    ("fwd_preauth_big", fwd_preauth_big), ("fwd_half_frames", fwd_half_frames),
    ("fwd_too_big", fwd_too_big), ("fwd_deep", fwd_deep), ("fwd_bytes", fwd_bytes),
    ("fwd_gzip_bomb", fwd_gzip_bomb), ("fwd_idle_flood", fwd_idle_flood),
    ("fwd_tiny_conns", fwd_tiny_conns), ("fwd_big_records", fwd_big_records),
    ("slow_query", slow_query), ("tails_never_read", tails_never_read),
    ("collector_http", lambda c: http_attacks(c, c.http)),
    ("agent_http", lambda c: http_attacks(c, c.agent_http)),
    ("bad_queries", bad_queries), ("syslog", syslog_attacks),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--forward")
    ap.add_argument("--http")
    ap.add_argument("--agent-http")
    ap.add_argument("--syslog-tcp")
    ap.add_argument("--syslog-udp")
    ap.add_argument("--ca")
    ap.add_argument("--shared-key")
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--report")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    ctx = Ctx(a)
    rounds = 0
    while ctx.left() > 0:
        for name, fn in ATTACKS:
            if ctx.left() <= 0:
                break
            if name.startswith("fwd") and not ctx.fwd:
                continue
            t0 = time.monotonic()
            try:
                fn(ctx)
            except (OSError, ssl.SSLError) as e:
                ctx.note(name + "_refused")
                print("hostile: %s: %s" % (name, e), flush=True)
            ctx.note(name)
            ctx.seconds[name] = ctx.seconds.get(name, 0) + time.monotonic() - t0
        rounds += 1
    rep = {"rounds": rounds, "counts": ctx.counts, "acked_records": ctx.acked_records,
           "seconds": {k: round(v, 2) for k, v in ctx.seconds.items()}}
    print("hostile: " + json.dumps(rep), flush=True)
    if a.report:
        with open(a.report, "w") as f:
            json.dump(rep, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
