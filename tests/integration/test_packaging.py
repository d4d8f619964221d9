"""The packages: `cpack -G "DEB;RPM"` from the build directory makes
loghaul-agent, loghaul-collector and loghaul-cli as .deb and .rpm. Checks
their files, conffiles, dependencies and maintainer scripts (run against
stub commands that record what they were asked to do), unpacks them into a
scratch root, runs the installed agent's --check-config on the installed
config, and runs `systemd-analyze verify` on the installed units — and makes
sure verify catches a broken unit.

Needs cpack, dpkg-deb, dpkg-shlibdeps, rpmbuild, rpm and systemd-analyze
(quickstart.sh installs them).

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_packaging.py
"""

import atexit
import glob
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import check, test  # noqa: E402

TOOLS = ("cpack", "dpkg-deb", "dpkg-shlibdeps", "dpkg", "rpmbuild", "rpm", "systemd-analyze")
COMPONENTS = ("agent", "collector", "cli")
# Libraries every daemon links: shlibdeps / autoreq must have found them.
DEB_LIBS = ("libevent-core-2.1-7", "libssl3", "libyaml-0-2", "libjansson4", "libmsgpackc2")
RPM_LIBS = ("libevent_core-2.1.so.7()(64bit)", "libssl.so.3()(64bit)", "libyaml-0.so.2()(64bit)",
            "libjansson.so.4()(64bit)")


def sh(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)
    check(r.returncode == 0, "%s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                      r.stdout[-3000:], r.stderr[-3000:]))
    return r.stdout


class Packages:
    """The six packages, built once into a temporary directory."""

    def __init__(self, out):
        sh(["cpack", "-G", "DEB;RPM", "-B", out], cwd=lhtest.BIN_DIR)
        self.deb, self.rpm = {}, {}
        for c in COMPONENTS:
            debs = glob.glob(os.path.join(out, "loghaul-%s_*.deb" % c))
            rpms = glob.glob(os.path.join(out, "loghaul-%s-[0-9]*.rpm" % c))
            check(len(debs) == 1 and len(rpms) == 1,
                  "want one .deb and one .rpm of loghaul-%s, got %r %r" % (c, debs, rpms))
            self.deb[c], self.rpm[c] = debs[0], rpms[0]
        self.version = sh(["dpkg-deb", "-f", self.deb["cli"], "Version"]).strip()


_PKGS = None


def packages(run):
    """Built on first use into a directory of its own, shared by the tests."""
    global _PKGS
    if _PKGS is None:
        own = lhtest.Run("packages")
        atexit.register(own.cleanup)
        try:
            _PKGS = Packages(own.path("pkgs"))
        except lhtest.TestFailure as e:
            _PKGS = e
    if isinstance(_PKGS, Exception):
        raise _PKGS
    return _PKGS


def deb_files(deb):
    return {line.split()[-1].lstrip(".") for line in sh(["dpkg-deb", "-c", deb]).splitlines()}


def deb_control(deb, dest):
    sh(["dpkg-deb", "-e", deb, dest])
    return dest


def stub_env(run, name):
    """A PATH of stub commands that append their argv to a log and succeed,
    except getent, which finds nobody (a fresh machine)."""
    d = run.path(name)
    os.makedirs(d)
    log = os.path.join(d, "calls.log")
    for cmd in ("groupadd", "useradd", "install", "chgrp", "chmod", "chown", "systemctl",
                "deb-systemd-helper", "deb-systemd-invoke", "getent"):
        with open(os.path.join(d, cmd), "w") as f:
            f.write('#!/bin/sh\necho "%s $*" >> "%s"\n%s\n'
                    % (cmd, log, "exit 2" if cmd == "getent" else "exit 0"))
        os.chmod(os.path.join(d, cmd), 0o755)
    env = dict(os.environ, PATH=d + ":/usr/bin:/bin")
    return env, log


def run_script(run, name, script, args):
    env, log = stub_env(run, name)
    path = run.path(name + ".sh")
    with open(path, "w") as f:
        f.write(script)
    sh(["sh", "-n", path])
    sh(["sh", path] + list(args), env=env)
    with open(log) if os.path.exists(log) else open(os.devnull) as f:
        return f.read().splitlines()


def check_fresh_install_calls(calls, comp, enable_cmd):
    joined = "\n".join(calls)
    check(any(c.startswith("groupadd --system loghaul") for c in calls),
          "the script does not create the loghaul group: %s" % joined)
    check(any(c.startswith("useradd --system") and c.endswith(" loghaul") for c in calls),
          "the script does not create the loghaul system user: %s" % joined)
    check(any(c.startswith("install -d -o loghaul -g loghaul")
              and c.endswith("/var/lib/loghaul-%s" % comp) for c in calls),
          "the script does not create /var/lib/loghaul-%s for loghaul: %s" % (comp, joined))
    check(any(c.startswith(enable_cmd) and "loghaul-%s.service" % comp in c for c in calls),
          "the script does not enable the unit with %r: %s" % (enable_cmd, joined))
    for c in calls:
        words = c.split()
        check(not ({"start", "restart", "--now", "try-restart"} & set(words)),
              "a fresh install must not start anything, but ran: %s" % c)


@test
def deb_contents_conffiles_dependencies(run):
    p = packages(run)
    for c in ("agent", "collector"):
        files = deb_files(p.deb[c])
        for want in ("/usr/bin/loghaul-%s" % c, "/etc/loghaul/%s.yaml" % c,
                     "/usr/lib/systemd/system/loghaul-%s.service" % c):
            check(want in files, "%s lacks %s: %r" % (p.deb[c], want, sorted(files)))
        check("/usr/bin/loghaul" not in files, "the CLI belongs to loghaul-cli only")
        ctl = deb_control(p.deb[c], run.path("ctl-" + c))
        with open(os.path.join(ctl, "conffiles")) as f:
            check(f.read().split() == ["/etc/loghaul/%s.yaml" % c], "conffiles of " + c)
        for s in ("postinst", "prerm", "postrm"):
            check(os.access(os.path.join(ctl, s), os.X_OK), "%s lacks an executable %s" % (c, s))
        deps = [d.strip() for d in sh(["dpkg-deb", "-f", p.deb[c], "Depends"]).split(",")]
        check("loghaul-cli (= %s)" % p.version in deps, "%s must depend on loghaul-cli: %r"
              % (c, deps))
        names = {d.split()[0] for d in deps}
        for lib in DEB_LIBS:
            check(lib in names, "%s Depends lacks %s (shlibdeps): %r" % (c, lib, deps))
        check(sh(["dpkg-deb", "-f", p.deb[c], "Package"]).strip() == "loghaul-" + c, "name")
    cli_files = {f for f in deb_files(p.deb["cli"]) if not f.endswith("/")}
    check(cli_files == {"/usr/bin/loghaul"}, "loghaul-cli files: %r" % cli_files)


@test
def deb_postinst_creates_user_and_enables_without_starting(run):
    p = packages(run)
    for c in ("agent", "collector"):
        ctl = deb_control(p.deb[c], run.path("ctl-" + c))
        with open(os.path.join(ctl, "postinst")) as f:
            calls = run_script(run, "deb-" + c, f.read(), ["configure", ""])
        check_fresh_install_calls(calls, c, "deb-systemd-helper enable")
        check(any(x.startswith("chgrp loghaul /etc/loghaul/%s.yaml" % c) for x in calls),
              "the config must become readable by the loghaul group: %r" % calls)


@test
def rpm_contents_config_requires_scripts(run):
    p = packages(run)
    for c in ("agent", "collector"):
        rpm = p.rpm[c]
        files = sh(["rpm", "-qpl", rpm]).split()
        check(sorted(files) == sorted(["/usr/bin/loghaul-%s" % c, "/etc/loghaul/%s.yaml" % c,
                                       "/usr/lib/systemd/system/loghaul-%s.service" % c]),
              "%s files: %r" % (rpm, files))
        check(sh(["rpm", "-qp", "--configfiles", rpm]).split() == ["/etc/loghaul/%s.yaml" % c],
              "config files of " + rpm)
        flags = sh(["rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", rpm])
        check(("cn /etc/loghaul/%s.yaml" % c) in flags.splitlines(),
              "the config must be %%config(noreplace): %s" % flags)
        reqs = [r.strip() for r in sh(["rpm", "-qp", "--requires", rpm]).splitlines()]
        check("loghaul-cli = %s" % p.version in reqs, "%s requires: %r" % (rpm, reqs))
        for lib in RPM_LIBS:
            check(lib in reqs, "%s lacks the autoreq %s: %r" % (rpm, lib, reqs))
        scripts = sh(["rpm", "-qp", "--scripts", rpm])
        for kind in ("postinstall", "preuninstall", "postuninstall"):
            check(kind + " scriptlet" in scripts, "%s has no %s script" % (rpm, kind))
        post = sh(["rpm", "-qp", "--qf", "%{POSTIN}", rpm])
        calls = run_script(run, "rpm-" + c, post, ["1"])
        check_fresh_install_calls(calls, c, "systemctl enable")
    files = sh(["rpm", "-qpl", p.rpm["cli"]]).split()
    check(files == ["/usr/bin/loghaul"], "loghaul-cli rpm files: %r" % files)


def scratch_root(run, p):
    """The three .debs unpacked into a directory, plus what systemd-analyze
    needs to resolve the units' dependencies and commands."""
    root = run.path("root")
    for c in COMPONENTS:
        sh(["dpkg-deb", "-x", p.deb[c], root])
    units = os.path.join(root, "usr/lib/systemd/system")
    for d in ("/usr/lib/systemd/system", "/lib/systemd/system"):
        for t in glob.glob(os.path.join(d, "*.target")):
            dst = os.path.join(units, os.path.basename(t))
            if not os.path.exists(dst):
                shutil.copy(t, dst)
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    shutil.copy(shutil.which("kill"), os.path.join(root, "bin/kill"))
    return root


def verify(root, unit):
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", "--root=" + root,
                        os.path.join(root, "usr/lib/systemd/system", unit)],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip()


@test
def installed_agent_checks_its_config(run):
    p = packages(run)
    root = scratch_root(run, p)
    agent = os.path.join(root, "usr/bin/loghaul-agent")
    r = subprocess.run([agent, "--check-config", "-c", os.path.join(root, "etc/loghaul/agent.yaml")],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "ok" in r.stdout,
          "installed agent --check-config failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr))
    col = os.path.join(root, "usr/bin/loghaul-collector")
    r = subprocess.run([col, "--check-config", "-c", os.path.join(root, "etc/loghaul/collector.yaml")],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "installed collector --check-config failed: %s" % r.stderr)
    if os.geteuid() == 0:
        # dpkg itself accepts the package and records the conffile.
        db = run.path("dpkg-root")
        os.makedirs(os.path.join(db, "var/lib/dpkg/info"))
        os.makedirs(os.path.join(db, "var/lib/dpkg/updates"))
        for f in ("status", "available"):
            open(os.path.join(db, "var/lib/dpkg", f), "w").close()
        sh(["dpkg", "--root=" + db, "--unpack", p.deb["cli"], p.deb["agent"]])
        st = sh(["dpkg", "--root=" + db, "-s", "loghaul-agent"])
        check(" /etc/loghaul/agent.yaml " in st, "dpkg recorded no conffile: %s" % st)


def unit_settings(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                out.setdefault(k, []).append(v)
    return out


@test
def units_verify_and_are_hardened(run):
    p = packages(run)
    root = scratch_root(run, p)
    for c in ("agent", "collector"):
        unit = "loghaul-%s.service" % c
        rc, out = verify(root, unit)
        check(rc == 0 and not out, "systemd-analyze verify %s (%d): %s" % (unit, rc, out))
        s = unit_settings(os.path.join(root, "usr/lib/systemd/system", unit))
        want = {"User": "loghaul", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                "PrivateTmp": "yes", "Restart": "on-failure",
                "ExecReload": "/bin/kill -HUP $MAINPID",
                "ExecStartPre": "/usr/bin/loghaul-%s --check-config -c /etc/loghaul/%s.yaml"
                                % (c, c)}
        for k, v in want.items():
            check(s.get(k) == [v], "%s: %s=%r, want %r" % (unit, k, s.get(k), v))
        check("/var/lib/loghaul-%s" % c in " ".join(s.get("ReadWritePaths", [])),
              "%s must be able to write its state directory" % unit)
        if c == "agent":
            check(s.get("SupplementaryGroups") == ["adm"], "the agent needs group adm")
        else:
            check("AmbientCapabilities" not in s, "the collector binds no port below 1024")

    # verify must actually judge our units: a broken copy fails.
    broken = run.path("broken")
    shutil.copytree(root, broken, symlinks=True)
    path = os.path.join(broken, "usr/lib/systemd/system/loghaul-agent.service")
    with open(path) as f:
        good = f.read()
    with open(path, "w") as f:
        f.write(good.replace("ProtectSystem=strict", "ProtectSystm=strict"))
    rc, out = verify(broken, "loghaul-agent.service")
    check("ProtectSystm" in out, "a misspelled key went unreported: (%d) %s" % (rc, out))
    with open(path, "w") as f:
        f.write(good.replace("ExecStart=/usr/bin/loghaul-agent ", "ExecStart=/usr/bin/nonesuch "))
    rc, out = verify(broken, "loghaul-agent.service")
    check(rc != 0 and "nonesuch" in out, "a missing binary went unreported: (%d) %s" % (rc, out))


if __name__ == "__main__":
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        print("missing tools: %s (quickstart.sh installs them)" % " ".join(missing))
        sys.exit(1)
    sys.exit(lhtest.run(need=(lhtest.AGENT, lhtest.COLLECTOR, lhtest.CLI)))
