"""The agent's disk buffer at its limits, counted by sequence number: a full
buffer with `block` pauses tailing and loses nothing; `drop_oldest` drops
and counts; a corrupted segment loses only the damaged chunk, counted; a
full disk under the buffer stalls tailing and loses nothing.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_delivery_buffer.py
"""

import glob
import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import (check, check_exactly_once, delivery_agent_config,  # noqa: E402
                    fixed_collector_config, free_port, seqs_on, test, wait_all, wait_until,
                    write_lines)

MAX_SIZE = 256 * 1024


def small_buffer_cfg(run, log, port, on_full):
    cfg = delivery_agent_config(run, log, [port], max_in_flight=1,
                    buffer={"max_size": MAX_SIZE, "on_full": on_full})
    cfg["outputs"][0]["batch"] = {"max_records": 200, "max_bytes": "16KiB", "max_wait": "100ms"}
    return cfg


def file_status(agent):
    status, body = lhtest.http_get(agent.url + "/status")
    check(status == 200, "/status: %s" % status)
    files = json.loads(body)["files"]
    check(len(files) == 1, "one file expected in /status: %r" % files)
    return files[0]


@test
def block_pauses_tailing_and_loses_nothing(run):
    n = 20000  # about 1.7 MiB of lines against a 256 KiB buffer
    port = free_port()
    log = run.path("app.log")
    write_lines(log, 0, n)
    agent = lhtest.start_agent(run, "agent", cfg=small_buffer_cfg(run, log, port, "block"))
    size = os.path.getsize(log)
    # Reading stops well short of the end and stays there.
    wait_until(lambda: (agent.metric("loghaul_agent_buffer_bytes") or 0) >= MAX_SIZE // 2, 30,
               "the buffer to fill")
    first = wait_until(lambda: (lambda a, b: a == b and a)(
        file_status(agent)["offset"], file_status(agent)["offset"]), 10, "a steady offset")
    read = agent.metric("loghaul_agent_records_read_total")
    qdir = run.path("agent-data", "buffer", "forward-0")
    on_disk = sum(os.path.getsize(p) for p in glob.glob(os.path.join(qdir, "*.seg")))
    check(0 < on_disk <= MAX_SIZE, "segment files hold %d bytes, max_size %d" % (on_disk, MAX_SIZE))
    # In memory besides: the pipeline's cap plus one read of the file.
    check(first < size and read < n, "tailing should pause: offset %d of %d, %s of %d lines"
          % (first, size, read, n))
    check(file_status(agent)["offset"] == first, "the offset must not move while blocked")
    col = lhtest.start_collector(run, "collector", cfg=fixed_collector_config(run, "collector", port))
    check_exactly_once(wait_all([col], n), n)
    check(agent.metric("loghaul_agent_records_dropped_total") == 0, "nothing may be dropped")
    check(file_status(agent)["offset"] == size, "the whole file read in the end")


@test
def drop_oldest_counts_its_drops(run):
    n = 20000
    port = free_port()
    log = run.path("app.log")
    write_lines(log, 0, n)
    agent = lhtest.start_agent(run, "agent", cfg=small_buffer_cfg(run, log, port, "drop_oldest"))
    size = os.path.getsize(log)
    wait_until(lambda: file_status(agent)["offset"] == size, 30, "the whole file read")
    wait_until(lambda: (agent.metric("loghaul_agent_records_acked_total") or 0) >= n, 30,
               "every record through the buffer")
    dropped = agent.metric("loghaul_agent_records_dropped_total", {"reason": "buffer_full"})
    check(dropped and dropped > 0, "drops must be counted, got %r" % dropped)
    check((agent.metric("loghaul_agent_buffer_bytes") or 0) <= MAX_SIZE,
          "buffer over max_size")
    col = lhtest.start_collector(run, "collector", cfg=fixed_collector_config(run, "collector", port))
    want = n - int(dropped)
    wait_until(lambda: (col.metric("loghaul_collector_records_stored_total") or 0) >= want, 60,
               "the %d records not dropped" % want)
    got = seqs_on(col, n)
    check(sum(got.values()) == want, "stored %d, want %d (n - dropped)"
          % (sum(got.values()), want))
    check(max(got.values()) == 1, "duplicates stored")
    # The oldest were dropped: what is left is the newest tail.
    check(n - 1 in got and min(got) > 0, "drop_oldest must keep the newest records")


def chunks_of(seg):
    """(offset, header length, payload length, records) of each chunk."""
    data = open(seg, "rb").read()
    off, out = 0, []
    while off + 48 <= len(data):
        check(data[off:off + 4] == b"LHQC", "segment %s: no magic at %d" % (seg, off))
        tag_len, n_pos, pay_len, n_rec = struct.unpack(">HIII", data[off + 6:off + 20])
        hdr = 48 + tag_len + 24 * n_pos
        out.append((off, hdr, pay_len, n_rec))
        off += hdr + pay_len
    return out


@test
def corrupted_segment_skips_only_the_damaged_chunk(run):
    n = 5000
    port = free_port()
    log = run.path("app.log")
    write_lines(log, 0, n)
    cfg = delivery_agent_config(run, log, [port])
    cfg["agent"]["shutdown_timeout"] = "1s"
    agent = lhtest.start_agent(run, "agent", cfg=cfg)
    wait_until(lambda: (agent.metric("loghaul_agent_records_acked_total") or 0) >= n, 30,
               "every line in the disk buffer")
    rc = agent.proc.stop()
    run.procs.remove(agent.proc)
    check(rc == 0, "agent exit %s on SIGTERM with the collector down, want 0" % rc)
    segs = glob.glob(run.path("agent-data", "buffer", "forward-0", "*.seg"))
    check(len(segs) == 1, "one segment expected: %r" % segs)
    chunks = chunks_of(segs[0])
    check(len(chunks) >= 5, "several chunks expected, got %d" % len(chunks))
    off, hdr, pay_len, lost = chunks[2]
    with open(segs[0], "r+b") as f:
        f.seek(off + hdr + pay_len // 2)
        b = f.read(1)
        f.seek(off + hdr + pay_len // 2)
        f.write(bytes([b[0] ^ 0xFF]))

    col = lhtest.start_collector(run, "collector", cfg=fixed_collector_config(run, "collector", port))
    agent = lhtest.start_agent(run, "agent-r1", cfg=cfg)
    agent.proc.wait_log(r"skipped 0 torn and 1 corrupt chunks")
    check(agent.metric("loghaul_agent_buffer_skipped_total", {"reason": "corrupt"}) == 1,
          "the damaged chunk must be counted")
    want = n - lost
    wait_until(lambda: (col.metric("loghaul_collector_records_stored_total") or 0) >= want, 60,
               "the %d records of the intact chunks" % want)
    got = seqs_on(col, n)
    check(sum(got.values()) == want and max(got.values()) == 1,
          "stored %d (max copies %d), want %d once each"
          % (sum(got.values()), max(got.values()), want))
    missing = sorted(set(range(n)) - set(got))
    check(missing == list(range(missing[0], missing[0] + lost)),
          "only one contiguous run (the damaged chunk) may be missing: %r" % missing[:20])
    wait_until(lambda: agent.metric("loghaul_agent_buffer_bytes") == 0, 20, "buffer drained")


@test
def a_full_disk_stalls_tailing_and_loses_nothing(run):
    """The filesystem under the agent's data_dir (a 1 MiB tmpfs) fills up
    while the collector is down: appends fail with ENOSPC and tailing waits;
    once the collector is back every line arrives exactly once."""
    mnt = run.path("small-disk")
    os.makedirs(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("  (not run: mounting a tmpfs needs root: %s)" % r.stderr.strip())
        return
    agent = None
    try:
        n = 30000  # about 2.5 MiB of lines, more again as msgpack
        port = free_port()
        log = run.path("app.log")
        write_lines(log, 0, n)
        cfg = delivery_agent_config(run, log, [port])
        cfg["agent"]["data_dir"] = os.path.join(mnt, "agent-data")
        # A small memory cap (max_in_flight x max_bytes), so the disk is what fills.
        cfg["outputs"][0]["batch"] = {"max_records": 500, "max_bytes": "64KiB",
                                      "max_wait": "200ms"}
        agent = lhtest.start_agent(run, "agent", cfg=cfg)
        agent.proc.wait_log(r"No space left on device", 30)
        read = agent.metric("loghaul_agent_records_read_total")
        check(read < n, "tailing should stall on the full disk: %s of %d lines read" % (read, n))
        col = lhtest.start_collector(run, "collector",
                                     cfg=fixed_collector_config(run, "collector", port))
        check_exactly_once(wait_all([col], n), n)
    finally:
        if agent:
            agent.proc.stop()
            run.procs.remove(agent.proc)
        subprocess.run(["umount", "-l", mnt], capture_output=True)


if __name__ == "__main__":
    sys.exit(lhtest.run())
