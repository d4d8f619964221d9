"""The collector's store reads back everything it acked, across SIGKILL and
restart: deeply nested records (which a whole-batch unpack could not read)
hide none of the records after them and are never truncated as a "torn
tail"; a record damaged on disk in the middle of a segment is skipped and
counted, the rest kept and found.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_store_recovery.py
"""

import glob
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import ForwardClient, check, test  # noqa: E402

TAG = "recov.app"


def nested(levels, leaf):
    """A record {"message": leaf, "d": [[...[1]...]]} nesting levels
    containers, the record's own map included."""
    v = [1]
    for _ in range(levels - 2):
        v = [v]
    return {"message": leaf, "d": v}


def ship(col, certs, entries):
    """Sends one PackedForward batch; True when it was acked."""
    c = ForwardClient("127.0.0.1", col.forward_port, lhtest.client_tls_context(certs),
                      server_hostname="127.0.0.1")
    try:
        ack, chunk = c.send_batch(TAG, entries)
    finally:
        c.close()
    return ack == {"ack": chunk}


def found(col):
    r, recs, ctl = lhtest.search([col.url], "recov", "--limit", "1000")
    check(r.returncode == 0 and not ctl, "search: %d %s %r" % (r.returncode, r.stderr, ctl))
    return sorted(x["message"] for x in recs)


def restart(run, col, name):
    lhtest.kill9(run, col.proc)
    return lhtest.start_collector(run, name, cfg=lhtest.collector_config(run, name))


def segments(run, name):
    return sorted(glob.glob(run.path(name + "-data", "store", "seg-*.lhs")))


def sizes(run, name):
    return {p: os.path.getsize(p) for p in segments(run, name)}


@test
def deep_records_hide_nothing_and_survive_sigkill(run):
    certs = run.certs()
    col = lhtest.start_collector(run, "collector")
    base = time.time_ns() - 60 * 10**9
    normal = ["recov normal %02d" % i for i in range(12)]
    check(ship(col, certs, [(base + i, {"message": normal[i]}) for i in range(4)]),
          "first batch not acked")
    acked = []
    # 30 and 31 levels: one or two levels more inside the stored batch than
    # msgpack-c unpacks; 32 is past what the reader takes (the ingest must
    # refuse it, not ack it).
    for levels in (30, 31, 32):
        leaf = "recov deep %d" % levels
        if ship(col, certs, [(base + 100 + levels, nested(levels, leaf)),
                             (base + 200 + levels, {"message": "recov beside %d" % levels})]):
            acked += [leaf, "recov beside %d" % levels]
    check("recov deep 30" in acked and "recov deep 31" in acked,
          "records the reader decodes must be accepted: acked %r" % acked)
    check(ship(col, certs, [(base + 1000 + i, {"message": normal[i]}) for i in range(4, 12)]),
          "last batch not acked")
    want = sorted(normal + acked)

    check(found(col) == want, "before restart: %r, want %r" % (found(col), want))
    before = sizes(run, "collector")

    col = restart(run, col, "collector")
    check(sizes(run, "collector") == before,
          "restart changed the store: %r -> %r" % (before, sizes(run, "collector")))
    check("truncating" not in col.proc.log(), "acked data truncated: %s" % col.proc.log())
    check(found(col) == want, "after restart: %r, want %r" % (found(col), want))
    check(col.metric("loghaul_collector_store_damaged_records_total", {"reason": "torn"}) == 0,
          "a torn tail counted")
    check(col.metric("loghaul_collector_store_unreadable_events_total") == 0,
          "an acked event is unreadable")


def record_offsets(path):
    """Offsets of the [u32 len][u32 crc][payload] records of a segment."""
    with open(path, "rb") as f:
        data = f.read()
    offs, off = [], 0
    while off + 8 <= len(data):
        offs.append(off)
        off += 8 + struct.unpack(">I", data[off:off + 4])[0]
    return offs


@test
def damaged_middle_record_is_skipped_not_truncated(run):
    certs = run.certs()
    col = lhtest.start_collector(run, "collector")
    base = time.time_ns() - 60 * 10**9
    for b in range(3):
        check(ship(col, certs, [(base + 10 * b + i, {"message": "recov b%d e%d" % (b, i)})
                                for i in range(3)]), "batch %d not acked" % b)
    check(len(found(col)) == 9, "stored: %r" % found(col))
    lhtest.kill9(run, col.proc)

    (seg,) = segments(run, "collector")
    offs = record_offsets(seg)
    check(len(offs) == 3, "three records: %r" % offs)
    with open(seg, "r+b") as f:
        f.seek(offs[2] - 3)          # inside the second record's payload
        c = f.read(1)
        f.seek(offs[2] - 3)
        f.write(bytes([c[0] ^ 0xff]))
    size = os.path.getsize(seg)

    col = lhtest.start_collector(run, "collector", cfg=lhtest.collector_config(run, "collector"))
    want = sorted("recov b%d e%d" % (b, i) for b in (0, 2) for i in range(3))
    check(found(col) == want, "after damage: %r, want %r" % (found(col), want))
    check(os.path.getsize(seg) == size, "the segment was cut: %d -> %d"
          % (size, os.path.getsize(seg)))
    check(col.metric("loghaul_collector_store_damaged_records_total",
                     {"reason": "checksum"}) == 1, "damage counted once")
    check(col.metric("loghaul_collector_store_damaged_records_total", {"reason": "torn"}) == 0,
          "no torn tail")
    col.proc.wait_log(r"damaged bytes at offset %d" % offs[1])


if __name__ == "__main__":
    sys.exit(lhtest.run(need=(lhtest.CLI, lhtest.COLLECTOR)))
