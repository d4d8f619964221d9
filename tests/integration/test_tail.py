"""File tailing counted by sequence number end to end (no loss, no
duplicate): rename rotations during a fast write, copytruncate, the agent
SIGKILLed twice during rotations, a file rotated while the agent is down,
a file deleted and recreated, an inode reused by another file while the
agent is stopped, a 1 MiB line, a missing trailing newline,
and 1000 files under a `**` pattern.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_tail.py
"""

import collections
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import (check, check_exactly_once, delivery_agent_config,  # noqa: E402
                    fixed_collector_config, free_port, kill9, seq_line, test, wait_all,
                    wait_until)


class RotatingWriter(threading.Thread):
    """Writes seq lines lo..hi-1 to path in bursts; every `every` lines the
    file is renamed to path.K (or copied and truncated) and reopened."""

    def __init__(self, path, lo, hi, every, copytruncate=False, burst=500, pause=0.01,
                 before_rotate=None):
        super().__init__(daemon=True)
        self.path, self.lo, self.hi, self.every = path, lo, hi, every
        self.copytruncate, self.burst, self.pause = copytruncate, burst, pause
        self.before_rotate = before_rotate
        self.written = lo
        self.rotations = 0
        self.error = None

    def rotate(self, f):
        f.close()
        if self.before_rotate:
            self.before_rotate(self)
        self.rotations += 1
        old = "%s.%d" % (self.path, self.rotations)
        if self.copytruncate:
            with open(self.path, "rb") as src, open(old, "wb") as dst:
                dst.write(src.read())
            os.truncate(self.path, 0)
        else:
            os.rename(self.path, old)
        return open(self.path, "a")

    def run(self):
        try:
            f = open(self.path, "a")
            while self.written < self.hi:
                end = min(self.hi, self.written + self.burst,
                          (self.written // self.every + 1) * self.every)
                f.write("".join(seq_line(i) + "\n" for i in range(self.written, end)))
                f.flush()
                self.written = end
                if end % self.every == 0 and end < self.hi:
                    f = self.rotate(f)
                threading.Event().wait(self.pause)
            f.close()
        except Exception as e:  # reported by the test thread
            self.error = e


def start_pair(run, log, tail_paths=None):
    port = free_port()
    col = lhtest.start_collector(run, "collector", cfg=fixed_collector_config(run, "collector",
                                                                              port))
    cfg = delivery_agent_config(run, log, [port])
    if tail_paths:
        cfg["inputs"][0]["paths"] = tail_paths
    agent = lhtest.start_agent(run, "agent", cfg=cfg)
    return col, agent, cfg


def finish(w, col, n):
    w.join(120)
    check(not w.is_alive() and w.error is None, "writer failed: %r" % w.error)
    check_exactly_once(wait_all([col], n), n)


@test
def ten_rename_rotations_during_fast_write(run):
    n = 55000
    log = run.path("app.log")
    open(log, "w").close()
    col, _, _ = start_pair(run, log)
    w = RotatingWriter(log, 0, n, every=5000, pause=0.002)
    w.start()
    finish(w, col, n)
    check(w.rotations == 10, "rotations: %d" % w.rotations)


@test
def copytruncate(run):
    n = 12000
    log = run.path("app.log")
    open(log, "w").close()
    col, _, _ = start_pair(run, log)

    # copytruncate loses what the writer adds between the copy and the
    # truncation; here nothing is added then, so every line must arrive.
    def settled(w):
        wait_until(lambda: col.records_in() >= w.written, 30, "lines before truncation")
    w = RotatingWriter(log, 0, n, every=3000, copytruncate=True, before_rotate=settled)
    w.start()
    finish(w, col, n)
    check(w.rotations == 3, "rotations: %d" % w.rotations)


@test
def agent_killed_twice_during_rotations(run):
    n = 40000
    log = run.path("app.log")
    open(log, "w").close()
    col, agent, cfg = start_pair(run, log)
    w = RotatingWriter(log, 0, n, every=4000, burst=200, pause=0.01)
    w.start()
    for k, at in enumerate((5000, 17000)):
        wait_until(lambda: col.records_in() >= at, 60, "%d records before kill %d" % (at, k + 1))
        kill9(run, agent.proc)
        agent = lhtest.start_agent(run, "agent-r%d" % (k + 1), cfg=cfg)
    finish(w, col, n)


@test
def rotated_while_agent_down(run):
    log = run.path("app.log")
    lhtest.write_lines(log, 0, 1000)
    col, agent, cfg = start_pair(run, log)
    wait_all([col], 1000)
    check(agent.proc.stop() == 0, "agent did not stop cleanly")
    run.procs.remove(agent.proc)
    lhtest.write_lines(log, 1000, 2000)   # unread tail of the old file
    os.rename(log, log + ".1")
    lhtest.write_lines(log, 2000, 3000)   # the new file, never seen
    lhtest.start_agent(run, "agent-r1", cfg=cfg)
    check_exactly_once(wait_all([col], 3000), 3000)


@test
def deleted_and_recreated(run):
    log = run.path("app.log")
    lhtest.write_lines(log, 0, 2000)
    col, _, _ = start_pair(run, log)
    wait_all([col], 2000)
    os.unlink(log)
    lhtest.write_lines(log, 2000, 6000)   # may reuse the inode; longer than before
    check_exactly_once(wait_all([col], 6000), 6000)


# ---- content, through the stdout output -----------------------------------

def stdout_agent(run, paths, name="agent", **inp):
    i = {"type": "file", "tag": "t", "paths": paths, "read_from": "head"}
    i.update(inp)
    cfg = {"agent": {"name": "a", "data_dir": run.path("data"), "http": "127.0.0.1:0"},
           "inputs": [i], "outputs": [{"type": "stdout", "match": "*"}]}
    return lhtest.start_agent(run, name, cfg=cfg)


def records(agent):
    out = []
    with open(agent.proc.out_path, "rb") as f:
        data = f.read()
    # Only whole lines: the agent may be writing the last one.
    for line in data[:data.rfind(b"\n") + 1].split(b"\n"):
        if line.startswith(b"{"):
            out.append(json.loads(line))
    return out


def saved_offsets(run):
    with open(run.path("data", "checkpoints.json")) as f:
        return {e["path"]: e for e in json.load(f)["files"]}


def reuse_inode(path, ino, tries=3000):
    """Creates files beside path until one gets inode ino, renames it to
    path and returns True; the misses are removed afterwards. ext4 hands
    out the lowest free inode of the group, so keeping the misses walks up
    to the freed one."""
    d = os.path.dirname(path)
    misses = []
    try:
        for k in range(tries):
            p = os.path.join(d, "probe%d" % k)
            open(p, "w").close()
            if os.stat(p).st_ino == ino:
                os.rename(p, path)
                return True
            misses.append(p)
        return False
    finally:
        for p in misses:
            os.unlink(p)


@test
def inode_reused_across_restart(run):
    log = run.path("logs", "app.log")
    os.makedirs(os.path.dirname(log))
    lhtest.write_lines(log, 0, 1000)
    agent = stdout_agent(run, [log])
    wait_until(lambda: len(records(agent)) >= 1000, 30, "the first file")
    check(agent.proc.stop() == 0, "agent did not stop cleanly")
    run.procs.remove(agent.proc)
    st = os.stat(log)
    e = saved_offsets(run).get(log)
    check(e and e["offset"] == st.st_size and e["fp_len"] > 0,
          "checkpoint of the first file: %r" % e)
    os.unlink(log)
    if not reuse_inode(log, st.st_ino):
        print("note: this file system did not hand inode %d out again; the reuse is "
              "simulated by the saved identity only" % st.st_ino)
        return
    # Another file with the old inode, longer than the old offset: only its
    # first bytes tell it apart.
    lhtest.write_lines(log, 1000, 4000)
    check(os.stat(log).st_size > e["offset"], "new file longer than the saved offset")
    a2 = stdout_agent(run, [log], name="agent-r1")
    wait_until(lambda: len(records(a2)) >= 3000, 30, "every line of the new file")
    a2.proc.wait_log(r"reuses the inode")
    seqs = collections.Counter(int(r["message"].split()[1]) for r in records(a2))
    check(set(seqs) == set(range(1000, 4000)) and max(seqs.values()) == 1,
          "new file read once from its start: %d distinct, first %r"
          % (len(seqs), sorted(seqs)[:3]))


@test
def one_mib_line(run):
    log = run.path("big.log")
    big = "".join(chr(ord("a") + i % 26) for i in range(1 << 20))
    with open(log, "w") as f:
        f.write("before\n" + big + "\nafter\n")
    agent = stdout_agent(run, [log], max_line="2MiB")
    recs = wait_until(lambda: (lambda r: r if len(r) >= 3 else None)(records(agent)), 30,
                      "three records")
    check([len(r["message"]) for r in recs] == [6, 1 << 20, 5], "record sizes")
    check(recs[1]["message"] == big and "truncated" not in recs[1], "1 MiB line whole")
    # With the default max_line (64 KiB) it is cut into flagged pieces.
    log2 = run.path("big2.log")
    with open(log2, "w") as f:
        f.write(big + "\n")
    agent.proc.stop()
    run.procs.remove(agent.proc)
    os.unlink(log)
    a2 = stdout_agent(run, [log2])
    pieces = wait_until(lambda: (lambda r: r if len(r) >= 16 else None)(records(a2)), 30,
                        "16 pieces")
    check(len(pieces) == 16 and all(p.get("truncated") is True for p in pieces),
          "16 truncated pieces")
    check("".join(p["message"] for p in pieces) == big, "pieces rebuild the line")


@test
def missing_trailing_newline(run):
    log = run.path("app.log")
    with open(log, "w") as f:
        f.write("one\r\ntwo\nthr")
    agent = stdout_agent(run, [log])
    wait_until(lambda: len(records(agent)) >= 2, 20, "two complete lines")
    # The half-written line waits: give the agent a few read turns.
    agent.proc.wait_log(r"following .*app.log")
    deadline_lines = [r["message"] for r in records(agent)]
    check(deadline_lines == ["one", "two"], "CRLF stripped, partial held: %r" % deadline_lines)
    with open(log, "a") as f:
        f.write("ee\n")
    wait_until(lambda: len(records(agent)) >= 3, 20, "the finished line")
    check([r["message"] for r in records(agent)] == ["one", "two", "three"], "three lines once")


@test
def thousand_files_under_double_star(run):
    root = run.path("logs")
    n_files, per = 1000, 5
    for i in range(n_files):
        d = os.path.join(root, "d%02d" % (i % 20), "sub")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "f%04d.log" % i), "w") as f:
            f.write("".join("f%04d %d\n" % (i, k) for k in range(per)))
    with open(os.path.join(root, "skip.gz"), "w") as f:
        f.write("excluded\n")
    agent = stdout_agent(run, [os.path.join(root, "**", "*.log"), os.path.join(root, "*.gz")],
                         exclude=["*.gz"])
    total = n_files * per
    wait_until(lambda: len(records(agent)) >= total, 60, "%d records" % total)
    # A new file in a new directory is found within about a second.
    nd = os.path.join(root, "late")
    os.makedirs(nd)
    with open(os.path.join(nd, "late.log"), "w") as f:
        f.write("late 0\n")
    wait_until(lambda: len(records(agent)) >= total + 1, 5, "the late file")
    c = collections.Counter(r["message"] for r in records(agent))
    check(len(c) == total + 1 and max(c.values()) == 1, "each line once")
    check(not any(m.startswith("excluded") for m in c), "exclude honoured")


if __name__ == "__main__":
    sys.exit(lhtest.run())
