#!/usr/bin/env python3
"""Hostile soak, bounded: an agent ships a steady stream to a collector
while a second process (tests/tools/hostile.py) attacks both daemons; every
line must be searchable exactly once and both daemons up at the end.

LH_SOAK_SECONDS (default 60) and LH_SOAK_RATE (lines/s, default 1000) make
it longer or heavier locally; tests/bench/bench_soak.py prints the memory.
"""

import os
import sys

import lhtest
import soak


@lhtest.test
def hostile_soak(run):
    seconds = float(os.environ.get("LH_SOAK_SECONDS", "60"))
    rate = int(os.environ.get("LH_SOAK_RATE", "1000"))
    res = soak.run_soak(run, seconds, rate)
    print("soak: %d lines in %.0f s, every one searchable once; hostile rounds %s; "
          "collector RSS %.1f MiB warm, %.1f MiB end, peak %.1f MiB; agent RSS %.1f / %.1f MiB"
          % (res["lines"], res["seconds"], res["hostile"]["rounds"],
             res["collector"]["rss_warm"], res["collector"]["rss_end"],
             res["collector"]["hwm"], res["agent"]["rss_warm"], res["agent"]["rss_end"]))
    lhtest.check(res["hostile_rc"] == 0, "the hostile peer failed (rc %r)" % res["hostile_rc"])


if __name__ == "__main__":
    sys.exit(lhtest.run())
