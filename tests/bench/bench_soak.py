#!/usr/bin/env python3
"""Hostile soak with memory figures: an agent ships a steady stream to a
collector (default budgets) while tests/tools/hostile.py attacks both; prints
each daemon's RSS after warm-up, its peak and at the end against an absolute
cap (collector 256 MiB, agent 64 MiB), and checks every line arrived once.
Not a test (ctest never runs it): numbers, not verdicts; the bounded
verdict is tests/integration/test_soak.py.

  LH_BIN_DIR=build python3 tests/bench/bench_soak.py --seconds 300 --rate 2000

Use a build without sanitizers (ASan inflates memory several times).
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lhtest  # noqa: E402
import soak  # noqa: E402

CAPS = {"collector": 256.0, "agent": 64.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300, help="attack time (default 300)")
    ap.add_argument("--rate", type=int, default=2000, help="lines/s written (default 2000)")
    ap.add_argument("--warmup", type=float, default=20, help="seconds before 'warm' RSS")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    a = ap.parse_args()
    run = lhtest.Run("bench_soak")
    ok = False
    try:
        res = soak.run_soak(run, a.seconds, a.rate, warmup=a.warmup)
        ok = True
    finally:
        run.stop_all()
        if not ok:
            run.dump_logs()
        run.cleanup(keep=a.keep or not ok)
    h = res["hostile"]
    print("soak: %d lines over %.0f s, each searchable exactly once; %d hostile rounds, "
          "%d hostile records acked" % (res["lines"], res["seconds"], h["rounds"],
                                        h["acked_records"]))
    print("attacks run: " + ", ".join("%s %d" % kv for kv in sorted(h["counts"].items())))
    print()
    print("| daemon | RSS after %.0fs warm-up | RSS max | RSS end | peak (VmHWM) | cap | within |"
          % a.warmup)
    print("|---|---|---|---|---|---|---|")
    for name in ("collector", "agent"):
        r = res[name]
        print("| %s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %.0f MiB | %s |"
              % (name, r["rss_warm"], r["rss_max"], r["rss_end"], r["hwm"], CAPS[name],
                 "yes" if r["hwm"] <= CAPS[name] else "NO"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
