#!/usr/bin/env python3
"""Seeded generator of realistic log lines for demos and benchmarks.

Kinds: nginx (combined access log), syslog (RFC 3164 as in /var/log/syslog),
json (structured application logs), logfmt, and mixed (all four). Lines
average about 200 bytes. The same --seed gives the same file.

  gen_corpus.py --lines 100000 --kind mixed --seed 1 --out corpus.log
"""

import argparse
import json
import random
import sys
import time

PATHS = ["/", "/index.html", "/api/v1/users", "/api/v1/orders", "/api/v2/search",
         "/static/app.js", "/static/style.css", "/login", "/logout", "/healthz",
         "/api/v1/orders/{id}/items", "/images/{id}.png", "/cart", "/checkout"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "curl/8.5.0", "Go-http-client/1.1", "kube-probe/1.29",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
]
STATUSES = [200] * 40 + [201, 204, 301, 302, 304] * 2 + [400, 401, 403, 404, 404, 429, 500, 502, 503]
METHODS = ["GET"] * 8 + ["POST", "POST", "PUT", "DELETE"]
HOSTS = ["web-1", "web-2", "db-1", "cache-3", "worker-7"]
PROCS = [("sshd", "auth"), ("CRON", "cron"), ("systemd", "daemon"), ("kernel", "kern"),
         ("postfix/smtpd", "mail"), ("dockerd", "daemon"), ("sudo", "authpriv")]
SYSLOG_MSGS = [
    "Accepted publickey for deploy from {ip} port {port} ssh2: ED25519 SHA256:{hex}",
    "Failed password for invalid user admin from {ip} port {port} ssh2 [preauth] (attempt {n} of 6, disconnecting)",
    "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0); running /usr/lib/php/sessionclean",
    "Started Daily apt upgrade and clean activities (unit apt-daily-upgrade.service).",
    "warning: hostname mail.example does not resolve to address {ip}: connect from unknown[{ip}] refused after {n} attempts",
    "TCP: request_sock_TCP: Possible SYN flooding on port {port}. Sending cookies.",
    "level=info msg=\"Container {hex} health status changed to healthy\"",
    "deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx",
]
LEVELS = ["debug", "info", "info", "info", "info", "warn", "error"]
SERVICES = ["checkout", "payments", "search", "inventory", "auth", "gateway"]
EVENTS = ["request completed", "cache miss for key", "retrying upstream call",
          "user session refreshed", "payment authorised", "query took longer than expected",
          "connection refused by upstream", "timeout waiting for lock"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class Gen:
    def __init__(self, seed, start):
        self.r = random.Random(seed)
        self.t = start

    def tick(self):
        self.t += self.r.expovariate(200.0)  # ~200 lines per second
        return self.t

    def ip(self):
        r = self.r
        return "%d.%d.%d.%d" % (r.choice((10, 172, 192, 203)), r.randrange(256),
                                r.randrange(256), r.randrange(1, 255))

    def path(self):
        p = self.r.choice(PATHS).replace("{id}", str(self.r.randrange(1, 99999)))
        if self.r.random() < 0.3:
            p += "?page=%d&sort=%s" % (self.r.randrange(1, 50), self.r.choice(("asc", "desc")))
        return p

    def nginx(self):
        t = self.tick()
        r = self.r
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))
        # nginx "combined" plus request time and upstream, as often configured
        return '%s - %s [%s] "%s %s HTTP/1.1" %d %d "%s" "%s" %.3f %s' % (
            self.ip(), r.choice(("-", "-", "alice", "bob")), stamp, r.choice(METHODS),
            self.path(), r.choice(STATUSES), r.randrange(120, 60000),
            r.choice(("-", "https://shop.example/", "https://www.example.org/search")),
            r.choice(AGENTS), r.lognormvariate(-3, 1), r.choice(("10.0.3.11:8080", "10.0.3.12:8080")))

    def syslog(self):
        t = self.tick()
        r = self.r
        g = time.gmtime(t)
        proc, _ = r.choice(PROCS)
        msg = r.choice(SYSLOG_MSGS).format(ip=self.ip(), port=r.randrange(1024, 65535),
                                           hex="%032x" % r.getrandbits(128), n=r.randrange(1, 9))
        return "%s %2d %s %s %s[%d]: %s" % (MONTHS[g.tm_mon - 1], g.tm_mday,
                                            time.strftime("%H:%M:%S", g), r.choice(HOSTS),
                                            proc, r.randrange(100, 65000), msg)

    def _fields(self, t):
        r = self.r
        return {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int(t % 1 * 1000),
            "level": r.choice(LEVELS),
            "service": r.choice(SERVICES),
            "msg": r.choice(EVENTS),
            "trace_id": "%032x" % r.getrandbits(128),
            "duration_ms": round(r.lognormvariate(3, 1), 2),
            "user_id": r.randrange(1, 500000),
            "path": self.path(),
            "version": "1.%d.%d" % (r.randrange(4), r.randrange(20)),
        }

    def json(self):
        return json.dumps(self._fields(self.tick()), separators=(",", ":"))

    def logfmt(self):
        parts = []
        for k, v in self._fields(self.tick()).items():
            v = str(v)
            parts.append('%s="%s"' % (k, v) if " " in v else "%s=%s" % (k, v))
        return " ".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=100000, help="number of lines (default 100000)")
    ap.add_argument("--kind", default="mixed", choices=("mixed", "nginx", "syslog", "json", "logfmt"))
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--start", type=float, default=1_790_000_000.0,
                    help="unix time of the first line (default 1790000000)")
    ap.add_argument("--number", action="store_true",
                    help="prefix each line with its number (seq=N), for loss checks")
    ap.add_argument("--out", default="-", help="output file (default: standard output)")
    a = ap.parse_args(argv)
    if a.lines < 0:
        ap.error("--lines must be >= 0")
    g = Gen(a.seed, a.start)
    kinds = [g.nginx, g.syslog, g.json, g.logfmt] if a.kind == "mixed" else [getattr(g, a.kind)]
    out = sys.stdout if a.out == "-" else open(a.out, "w", encoding="utf-8")
    try:
        chunk = []
        for i in range(1, a.lines + 1):
            line = kinds[g.r.randrange(len(kinds))]() if len(kinds) > 1 else kinds[0]()
            chunk.append("seq=%d %s" % (i, line) if a.number else line)
            if len(chunk) >= 10000:
                out.write("\n".join(chunk) + "\n")
                chunk = []
        if chunk:
            out.write("\n".join(chunk) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
