"""Shared helpers for loghaul's integration tests (Python 3 stdlib only).

Environment: LH_BIN_DIR (build directory), LH_SRC_DIR (source tree),
LH_TEST_TMP (parent for temporary directories; else the system's).

A test file defines functions decorated with @test and ends with
`sys.exit(run())`. Every process started through a Run is stopped at exit,
even when a test fails; the logs of a failed test's processes are printed.
"""

import atexit
import collections
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

BIN_DIR = os.path.abspath(os.environ.get("LH_BIN_DIR", "build"))
SRC_DIR = os.path.abspath(os.environ.get("LH_SRC_DIR", "."))
AGENT = os.path.join(BIN_DIR, "agent", "loghaul-agent")
COLLECTOR = os.path.join(BIN_DIR, "collector", "loghaul-collector")
CLI = os.path.join(BIN_DIR, "cli", "loghaul")

# Sanitizer builds: fail loudly on leaks and errors, never hang on a report.
os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_until(cond, timeout, what, interval=0.05):
    """Polls cond() until it returns something truthy; returns that value.
    Raises TestFailure naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TestFailure("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------- processes

class Proc:
    """A daemon started with stderr (and stdout) captured to files."""

    def __init__(self, name, args, workdir, env=None):
        self.name = name
        self.args = args
        self.log_path = os.path.join(workdir, name + ".log")
        self.out_path = os.path.join(workdir, name + ".out")
        self._log = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
        self.popen = subprocess.Popen(args, stdout=self._out, stderr=self._log,
                                      stdin=subprocess.DEVNULL, env=env)
        self.pid = self.popen.pid

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, regex, timeout=20):
        """First match of regex in the log (a re.Match), waiting for it.
        Fails early if the process exits first."""
        pat = re.compile(regex)

        def found():
            m = pat.search(self.log())
            if m:
                return m
            if self.popen.poll() is not None:
                m = pat.search(self.log())
                if m:
                    return m
                raise TestFailure("%s exited with %s before logging /%s/"
                                  % (self.name, self.popen.returncode, regex))
            return None
        return wait_until(found, timeout, "/%s/ in %s's log" % (regex, self.name))

    def alive(self):
        return self.popen.poll() is None

    def stop(self, timeout=20):
        """SIGTERM, then SIGKILL after timeout; returns the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        self._out.close()
        return self.popen.returncode


class Run:
    """A temporary directory plus the processes started in it."""

    def __init__(self, name):
        parent = os.environ.get("LH_TEST_TMP")
        if parent:
            os.makedirs(parent, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="lh-%s-" % name, dir=parent)
        self.procs = []
        self._certs = None
        _RUNS.append(self)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def start(self, name, args, env=None):
        p = Proc(name, args, self.dir, env)
        self.procs.append(p)
        return p

    def certs(self, hosts=()):
        """Certificates from `loghaul certs` (made once per run)."""
        if self._certs is None:
            d = self.path("certs")
            args = [CLI, "certs", d]
            for h in hosts:
                args += ["--host", h]
            r = cli(args[1:])
            check(r.returncode == 0, "loghaul certs failed: %s" % r.stderr)
            self._certs = {k: os.path.join(d, k + ".pem") for k in
                           ("ca", "ca-key", "server", "server-key", "client", "client-key")}
        return self._certs

    def stop_all(self):
        for p in self.procs:
            if p.alive():
                p.popen.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.stop()

    def dump_logs(self):
        for p in self.procs:
            sys.stderr.write("----- %s (%s) log -----\n" % (p.name, " ".join(p.args)))
            try:
                sys.stderr.write(p.log()[-20000:])
            except OSError as e:
                sys.stderr.write("(cannot read: %s)\n" % e)
            sys.stderr.write("----- end of %s log -----\n" % p.name)

    def cleanup(self, keep=False):
        self.stop_all()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


_RUNS = []


def _cleanup_at_exit():
    for r in _RUNS:
        r.stop_all()


atexit.register(_cleanup_at_exit)


def _on_signal(signum, frame):
    _cleanup_at_exit()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)


def cli(args, timeout=60, input=None):
    """Runs `loghaul ARGS...`; a CompletedProcess with text stdout/stderr."""
    return subprocess.run([CLI] + list(args), capture_output=True, text=True,
                          timeout=timeout, input=input)


# ---------------------------------------------------------------- configs

def _yaml_scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists and scalars (strings quoted)."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines.append("%s%s:" % (pad, k))
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict):
                lines.append("%s%s: {}" % (pad, k))
            elif isinstance(v, list):
                lines.append("%s%s: []" % (pad, k))
            else:
                lines.append("%s%s: %s" % (pad, k, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                sub = to_yaml(v, indent + 2).split("\n")
                lines.append("%s- %s" % (pad, sub[0].lstrip()))
                lines.extend(sub[1:])
            else:
                lines.append("%s- %s" % (pad, _yaml_scalar(v)))
    else:
        lines.append(pad + _yaml_scalar(obj))
    return "\n".join(lines)


def write_config(path, obj):
    with open(path, "w") as f:
        f.write(to_yaml(obj) + "\n")
    return path


# ---------------------------------------------------------------- daemons

class Collector:
    def __init__(self, proc, forward, http):
        self.proc = proc
        self.forward = forward          # "127.0.0.1:PORT"
        self.http = http                # "127.0.0.1:PORT"
        self.url = "http://" + http

    @property
    def forward_host(self):
        return self.forward.rsplit(":", 1)[0]

    @property
    def forward_port(self):
        return int(self.forward.rsplit(":", 1)[1])

    def metric(self, name, labels=None):
        return metric(self.url + "/metrics", name, labels)

    def records_in(self):
        return self.metric("loghaul_collector_records_in_total") or 0


def collector_config(run, name, tls=True, mtls=True, shared_key=None, extra=None):
    """A collector config on loopback ports from the kernel; extra is merged in."""
    fwd = {"address": "127.0.0.1:0"}
    if tls:
        c = run.certs()
        fwd["tls"] = {"enabled": True, "ca": c["ca"], "cert": c["server"],
                      "key": c["server-key"], "require_client_cert": mtls}
    if shared_key is not None:
        fwd["shared_key"] = shared_key
    cfg = {
        "collector": {"name": name, "data_dir": run.path(name + "-data")},
        "listen": {"forward": fwd, "http": {"address": "127.0.0.1:0"}},
    }
    _merge(cfg, extra or {})
    return cfg


def _merge(base, extra):
    """Deep-merges dict extra into dict base."""
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def small_quarantine_env():
    """The environment for a daemon whose peak RSS a test checks: under ASan
    freed memory sits in a quarantine that would count as RSS."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"
    return env


def start_collector(run, name="collector", cfg=None, env=None, **kw):
    """Starts a collector (env: its environment, default ours) and waits for
    both of its listeners."""
    cfg = cfg or collector_config(run, name, **kw)
    path = write_config(run.path(name + ".yaml"), cfg)
    p = run.start(name, [COLLECTOR, "-c", path], env=env)
    fwd = p.wait_log(r"forward listening on (\S+)").group(1)
    http = p.wait_log(r"http listening on (\S+)").group(1)
    c = Collector(p, fwd, http)
    wait_until(lambda: http_get(c.url + "/healthz")[0] == 200, 20, name + " /healthz")
    return c


class Agent:
    def __init__(self, proc, http):
        self.proc = proc
        self.http = http
        self.url = "http://" + http if http else None

    def metric(self, name, labels=None):
        return metric(self.url + "/metrics", name, labels)


def agent_config(run, name, paths, collectors, tag="test.log", tls=True,
                 client_cert=True, shared_key=None, batch=None, compress=None):
    out = {"type": "forward", "match": "*", "collectors": list(collectors)}
    if tls:
        c = run.certs()
        t = {"enabled": True, "ca": c["ca"], "verify": True}
        if client_cert:
            t["cert"] = c["client"]
            t["key"] = c["client-key"]
        out["tls"] = t
    if shared_key is not None:
        out["shared_key"] = shared_key
    if batch:
        out["batch"] = batch
    if compress:
        out["compress"] = compress
    return {
        "agent": {"name": name, "data_dir": run.path(name + "-data"), "http": "127.0.0.1:0"},
        "inputs": [{"type": "file", "tag": tag, "paths": list(paths), "read_from": "head"}],
        "outputs": [out],
    }


def start_agent(run, name="agent", cfg=None, **kw):
    cfg = cfg or agent_config(run, name, **kw)
    path = write_config(run.path(name + ".yaml"), cfg)
    p = run.start(name, [AGENT, "-c", path])
    http = p.wait_log(r"http listening on (\S+)").group(1)
    return Agent(p, http)


# ---------------------------------------------------------------- HTTP

def http_get(url, headers=None, timeout=10):
    """(status, body bytes); status 0 when nothing answered."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} from Prometheus text."""
    out = {}
    pat = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = pat.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        try:
            out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
        except ValueError:
            pass
    return out


def metric(url, name, labels=None):
    """Value of metric name (with labels a subset of the series' labels),
    summed over matching series; None when absent or unreachable."""
    status, body = http_get(url)
    if status != 200:
        return None
    total = None
    want = set((labels or {}).items())
    for (n, ls), v in parse_metrics(body.decode("utf-8", "replace")).items():
        if n == name and want <= set(ls):
            total = (total or 0) + v
    return total


def search(urls, query, *opts, timeout=60):
    """Runs `loghaul search -o json`; (CompletedProcess, records, controls)."""
    args = ["search"]
    for u in urls:
        args += ["-s", u]
    args += ["-o", "json"] + list(opts) + ["--", query]
    r = cli(args, timeout=timeout)
    records, controls = [], []
    for line in r.stdout.splitlines():
        if not line:
            continue
        (records if line.startswith('{"time"') else controls).append(json.loads(line))
    return r, records, controls


# ---------------------------------------------------------------- msgpack

class ExtType:
    def __init__(self, code, data):
        self.code = code
        self.data = data

    def __eq__(self, other):
        return isinstance(other, ExtType) and (self.code, self.data) == (other.code, other.data)

    def __repr__(self):
        return "ExtType(%d, %r)" % (self.code, self.data)


def event_time(ns):
    """Forward EventTime: ext 0, big-endian seconds + nanoseconds."""
    return ExtType(0, struct.pack(">II", ns // 10**9, ns % 10**9))


def mp_pack(o):
    """msgpack for None, bool, int, float, str, bytes, list, tuple, dict, ExtType."""
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        return _pack_int(o)
    if isinstance(o, float):
        return b"\xcb" + struct.pack(">d", o)
    if isinstance(o, str):
        b = o.encode("utf-8")
        return _pack_len(len(b), 0xa0, 31, b"\xd9", b"\xda", b"\xdb") + b
    if isinstance(o, (bytes, bytearray)):
        return _pack_len(len(o), None, 0, b"\xc4", b"\xc5", b"\xc6") + bytes(o)
    if isinstance(o, (list, tuple)):
        return _pack_len(len(o), 0x90, 15, None, b"\xdc", b"\xdd") + b"".join(mp_pack(x) for x in o)
    if isinstance(o, dict):
        return (_pack_len(len(o), 0x80, 15, None, b"\xde", b"\xdf")
                + b"".join(mp_pack(k) + mp_pack(v) for k, v in o.items()))
    if isinstance(o, ExtType):
        n = len(o.data)
        fixed = {1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8}
        if n in fixed:
            head = bytes([fixed[n]])
        elif n < 256:
            head = b"\xc7" + bytes([n])
        else:
            head = b"\xc9" + struct.pack(">I", n)
        return head + struct.pack(">b", o.code) + o.data
    raise TypeError("cannot pack %r" % type(o))


def _pack_int(i):
    if 0 <= i < 128:
        return bytes([i])
    if -32 <= i < 0:
        return struct.pack(">b", i)
    if i >= 0:
        for tag, fmt, lim in ((0xcc, ">B", 2**8), (0xcd, ">H", 2**16), (0xce, ">I", 2**32),
                              (0xcf, ">Q", 2**64)):
            if i < lim:
                return bytes([tag]) + struct.pack(fmt, i)
    for tag, fmt, lim in ((0xd0, ">b", 2**7), (0xd1, ">h", 2**15), (0xd2, ">i", 2**31),
                          (0xd3, ">q", 2**63)):
        if -lim <= i:
            return bytes([tag]) + struct.pack(fmt, i)
    raise OverflowError(i)


def _pack_len(n, fix, fixmax, t8, t16, t32):
    if fix is not None and n <= fixmax:
        return bytes([fix | n])
    if t8 is not None and n < 256:
        return t8 + bytes([n])
    if n < 2**16:
        return t16 + struct.pack(">H", n)
    return t32 + struct.pack(">I", n)


class NeedMore(Exception):
    pass


def mp_unpack(buf, pos=0):
    """(object, next position) from buf at pos; raises NeedMore when the
    object is incomplete."""
    def take(n):
        nonlocal pos
        if pos + n > len(buf):
            raise NeedMore()
        b = buf[pos:pos + n]
        pos += n
        return b

    def obj():
        t = take(1)[0]
        if t <= 0x7f:
            return t
        if t >= 0xe0:
            return t - 0x100
        if 0x80 <= t <= 0x8f:
            return mapn(t & 0x0f)
        if 0x90 <= t <= 0x9f:
            return [obj() for _ in range(t & 0x0f)]
        if 0xa0 <= t <= 0xbf:
            return take(t & 0x1f).decode("utf-8", "replace")
        simple = {0xc0: None, 0xc2: False, 0xc3: True}
        if t in simple:
            return simple[t]
        ints = {0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q",
                0xd0: ">b", 0xd1: ">h", 0xd2: ">i", 0xd3: ">q", 0xca: ">f", 0xcb: ">d"}
        if t in ints:
            fmt = ints[t]
            return struct.unpack(fmt, take(struct.calcsize(fmt)))[0]
        lens = {0xc4: ">B", 0xc5: ">H", 0xc6: ">I", 0xd9: ">B", 0xda: ">H", 0xdb: ">I",
                0xdc: ">H", 0xdd: ">I", 0xde: ">H", 0xdf: ">I", 0xc7: ">B", 0xc8: ">H",
                0xc9: ">I"}
        if t in lens:
            fmt = lens[t]
            n = struct.unpack(fmt, take(struct.calcsize(fmt)))[0]
            if t in (0xc4, 0xc5, 0xc6):
                return bytes(take(n))
            if t in (0xd9, 0xda, 0xdb):
                return take(n).decode("utf-8", "replace")
            if t in (0xdc, 0xdd):
                return [obj() for _ in range(n)]
            if t in (0xde, 0xdf):
                return mapn(n)
            code = struct.unpack(">b", take(1))[0]
            return ExtType(code, bytes(take(n)))
        fixext = {0xd4: 1, 0xd5: 2, 0xd6: 4, 0xd7: 8, 0xd8: 16}
        if t in fixext:
            code = struct.unpack(">b", take(1))[0]
            return ExtType(code, bytes(take(fixext[t])))
        raise ValueError("bad msgpack type byte 0x%02x" % t)

    def mapn(n):
        d = {}
        for _ in range(n):
            k = obj()
            d[k if not isinstance(k, list) else tuple(k)] = obj()
        return d

    return obj(), pos


# ---------------------------------------------------------------- Forward

class ForwardClient:
    """A Forward v1 client over TCP or TLS, speaking just enough of the
    protocol for tests: handshake, PackedForward with a chunk id, acks."""

    def __init__(self, host, port, tls_ctx=None, server_hostname=None, timeout=10):
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = tls_ctx.wrap_socket(raw, server_hostname=server_hostname or host) \
            if tls_ctx else raw
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_obj(self):
        """Next msgpack object from the server; None when the connection
        closed (or was reset) first."""
        while True:
            try:
                o, pos = mp_unpack(self.buf)
                self.buf = self.buf[pos:]
                return o
            except NeedMore:
                pass
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
                return None
            if not data:
                return None
            self.buf += data

    def is_closed(self, timeout=10):
        """True once the server closes the connection (reads it to EOF)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def handshake(self, shared_key, hostname="lhtest-client"):
        """Answers HELO with PING; returns the PONG array (None if closed).
        Keeps the HELO nonce and our salt in .nonce / .salt."""
        helo = self.read_obj()
        check(isinstance(helo, list) and helo and helo[0] == "HELO", "expected HELO, got %r" % (helo,))
        opts = helo[1] if len(helo) > 1 and isinstance(helo[1], dict) else {}
        nonce = opts.get("nonce", b"")
        nonce = nonce.encode() if isinstance(nonce, str) else nonce
        salt = os.urandom(16)
        self.nonce, self.salt = nonce, salt
        digest = hashlib.sha512(salt + hostname.encode() + nonce + shared_key.encode()).hexdigest()
        self.send_raw(mp_pack(["PING", hostname, salt, digest, "", ""]))
        return self.read_obj()

    @staticmethod
    def packed_forward(tag, entries, chunk):
        """entries: [(ns, {fields})]."""
        payload = b"".join(mp_pack([event_time(ns), rec]) for ns, rec in entries)
        return mp_pack([tag, payload, {"chunk": chunk, "size": len(entries)}])

    def send_batch(self, tag, entries, chunk=None):
        """Sends a PackedForward batch; returns the ack (dict) or None."""
        chunk = chunk or os.urandom(16).hex()
        self.send_raw(self.packed_forward(tag, entries, chunk))
        ack = self.read_obj()
        return ack, chunk


def client_tls_context(certs, with_cert=True):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=certs["ca"])
    if with_cert:
        ctx.load_cert_chain(certs["client"], certs["client-key"])
    return ctx


# ---------------------------------------------------------------- delivery
# Sequence-numbered lines counted end to end (test_delivery*.py).

DELIVERY_TAG = "delivery.app"
SEQ = re.compile(r"^seq (\d{8}) ")


def seq_line(i):
    return "seq %08d the quick brown fox jumps over the lazy dog %s" % (i, "x" * (i % 40))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fixed_collector_config(run, name, port):
    cfg = collector_config(run, name)
    cfg["listen"]["forward"]["address"] = "127.0.0.1:%d" % port
    return cfg


def delivery_agent_config(run, log, ports, **out):
    cfg = agent_config(run, "agent", [log], ["127.0.0.1:%d" % p for p in ports], tag=DELIVERY_TAG,
                              batch={"max_records": 500, "max_wait": "200ms"})
    cfg["outputs"][0].update({"backoff_max": "1s", "ack_timeout": "5s"})
    cfg["outputs"][0].update(out)
    cfg["agent"]["shutdown_timeout"] = "5s"
    return cfg


def status_kib(pid, key):
    """A /proc/PID/status value in KiB (VmHWM: the peak RSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (key, pid))


def kill9(run, proc):
    """SIGKILL: the process is gone without any cleanup."""
    proc.popen.send_signal(signal.SIGKILL)
    proc.popen.wait(20)
    proc.stop()
    run.procs.remove(proc)


def seqs_on(col, n, query=""):
    """Counter of sequence numbers stored on a collector, for seqs below n,
    among the records matching query. A search returns at most 100k
    records: beyond that, slices of 10k by regex, each asked for twice as
    many so a duplicate cannot hide."""
    if n <= 50000:
        queries = [(query, max(2 * n, 10))]
    else:
        queries = [(('%s message:~"^seq %04d"' % (query, k)).strip(), 20000)
                   for k in range((n + 9999) // 10000)]
    out = collections.Counter()
    for q, limit in queries:
        r, recs, _ = search([col.url], q, "--limit", str(limit), timeout=120)
        check(r.returncode == 0, "search failed: %s" % r.stderr)
        check(len(recs) < limit, "search %r hit its limit %d" % (q, limit))
        for rec in recs:
            m = SEQ.match(rec.get("message", ""))
            check(m, "unexpected record %r" % rec)
            out[int(m.group(1))] += 1
    return out


def wait_all(cols, n, timeout=90, query=""):
    """Waits until seqs 0..n-1 are all stored (on any of cols) among the
    records matching query; returns the combined Counter. Large counts
    wait on the stored-records metric first (it counts no duplicate: those
    are acked without storing)."""
    state = {}

    def done():
        if n > 50000 and sum(c.metric("loghaul_collector_records_stored_total") or 0
                             for c in cols) < n:
            return False
        total = collections.Counter()
        for c in cols:
            total.update(seqs_on(c, n, query))
        state["c"] = total
        return len(total) >= n
    try:
        wait_until(done, timeout, "%d distinct sequence numbers delivered" % n, interval=1.0)
    except AssertionError:
        c = state.get("c", collections.Counter())
        missing = sorted(set(range(n)) - set(c))
        raise AssertionError("%d of %d delivered; first missing %r"
                             % (len(c), n, missing[:10]))
    return state["c"]


def check_exactly_once(counter, n):
    check(set(counter) == set(range(n)), "sequence numbers beyond 0..%d: %r"
          % (n - 1, sorted(set(counter) - set(range(n)))[:10]))
    dups = [s for s, k in counter.items() if k > 1]
    check(not dups, "%d duplicates, e.g. %r" % (len(dups), dups[:10]))


class Writer(threading.Thread):
    """Appends lines lo..hi-1 in small bursts, like a live application."""

    def __init__(self, path, lo, hi, burst=500, pause=0.02):
        super().__init__(daemon=True)
        self.path, self.lo, self.hi, self.burst, self.pause = path, lo, hi, burst, pause
        self.written = lo
        self.stop_ev = threading.Event()

    def run(self):
        with open(self.path, "a") as f:
            while self.written < self.hi:
                end = min(self.hi, self.written + self.burst)
                f.write("".join(seq_line(i) + "\n" for i in range(self.written, end)))
                f.flush()
                self.written = end
                self.stop_ev.wait(self.pause)


def write_lines(path, lo, hi):
    with open(path, "a") as f:
        for start in range(lo, hi, 10000):
            f.write("".join(seq_line(i) + "\n" for i in range(start, min(hi, start + 10000))))


# ---------------------------------------------------------------- runner

_TESTS = []


def test(fn):
    _TESTS.append(fn)
    return fn


def run(need=(CLI, AGENT, COLLECTOR)):
    """Runs every @test in order, each given its own Run. Returns the exit
    status for sys.exit. need: the binaries the tests use."""
    for path in need:
        what = os.path.basename(path)
        if not os.access(path, os.X_OK):
            print("missing %s at %s (set LH_BIN_DIR to the build directory)" % (what, path))
            return 1
    passed = failed = 0
    for fn in _TESTS:
        r = Run(fn.__name__)
        t0 = time.monotonic()
        try:
            fn(r)
        except Exception:
            failed += 1
            print("FAIL %s (%.1fs)" % (fn.__name__, time.monotonic() - t0))
            traceback.print_exc()
            r.stop_all()
            r.dump_logs()
            r.cleanup(keep=True)
            print("  (files kept in %s)" % r.dir)
            sys.stdout.flush()
            continue
        bad = [(p.name, p.stop()) for p in r.procs]
        bad = [(n, rc) for n, rc in bad if rc not in (0, None)]
        if bad:
            failed += 1
            print("FAIL %s: processes exited badly on SIGTERM: %s" % (fn.__name__, bad))
            r.dump_logs()
            r.cleanup(keep=True)
            continue
        passed += 1
        print("ok   %s (%.1fs)" % (fn.__name__, time.monotonic() - t0))
        sys.stdout.flush()
        r.cleanup()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0
