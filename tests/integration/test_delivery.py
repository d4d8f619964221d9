"""Delivery that survives failures, counted by sequence number end to end:
every line written must be found exactly once on the collectors.

Collector SIGKILLed mid-stream, collector down while lines pile up, agent
SIGKILLed twice, two collectors with one killed, and a graceful stop that
flushes. Buffer limits and damage are in test_delivery_buffer.py.

Run alone: LH_BIN_DIR=build LH_SRC_DIR=. python3 tests/integration/test_delivery.py
"""

import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import (Writer, check, check_exactly_once, delivery_agent_config,  # noqa: E402
                    fixed_collector_config, free_port, kill9, seqs_on, test, wait_all,
                    wait_until, write_lines)

@test
def collector_killed_mid_stream_and_restarted(run):
    n = 20000
    port = free_port()
    ccfg = fixed_collector_config(run, "collector", port)
    col = lhtest.start_collector(run, "collector", cfg=ccfg)
    log = run.path("app.log")
    open(log, "w").close()
    lhtest.start_agent(run, "agent", cfg=delivery_agent_config(run, log, [port]))
    w = Writer(log, 0, n, burst=200, pause=0.02)
    w.start()
    wait_until(lambda: col.records_in() >= 2000, 30, "first records on the collector")
    kill9(run, col.proc)
    wait_until(lambda: w.written >= n * 3 // 4, 60, "more lines written while it is down")
    col = lhtest.start_collector(run, "collector-r1", cfg=ccfg)
    w.join(60)
    check_exactly_once(wait_all([col], n), n)


@test
def collector_down_while_lines_pile_up(run):
    # The 300k lines (about 25 MiB); they are written as fast as
    # possible rather than over 60 s, which is the harder case for the buffer.
    n = 300000
    port = free_port()
    log = run.path("app.log")
    open(log, "w").close()
    agent = lhtest.start_agent(run, "agent", cfg=delivery_agent_config(run, log, [port]))
    write_lines(log, 0, n)
    wait_until(lambda: (agent.metric("loghaul_agent_records_acked_total") or 0) >= n, 90,
               "every line read into the disk buffer")
    check((agent.metric("loghaul_agent_buffer_bytes") or 0) > 0, "buffer_bytes should be > 0")
    col = lhtest.start_collector(run, "collector", cfg=fixed_collector_config(run, "collector", port))
    check_exactly_once(wait_all([col], n, timeout=120), n)
    wait_until(lambda: agent.metric("loghaul_agent_buffer_bytes") == 0, 20,
               "buffer_bytes back to 0 once delivered")


@test
def agent_killed_mid_stream_twice(run):
    n = 30000
    port = free_port()
    col = lhtest.start_collector(run, "collector", cfg=fixed_collector_config(run, "collector", port))
    log = run.path("app.log")
    open(log, "w").close()
    cfg = delivery_agent_config(run, log, [port])
    agent = lhtest.start_agent(run, "agent", cfg=cfg)
    w = Writer(log, 0, n, burst=300, pause=0.02)
    w.start()
    for k, at in enumerate((3000, 12000)):
        wait_until(lambda: col.records_in() >= at, 60, "%d records before kill %d" % (at, k + 1))
        kill9(run, agent.proc)
        agent = lhtest.start_agent(run, "agent-r%d" % (k + 1), cfg=cfg)
    w.join(60)
    check_exactly_once(wait_all([col], n), n)


@test
def two_collectors_one_killed(run):
    n = 10000
    ports = [free_port(), free_port()]
    a = lhtest.start_collector(run, "col-a", cfg=fixed_collector_config(run, "col-a", ports[0]))
    b = lhtest.start_collector(run, "col-b", cfg=fixed_collector_config(run, "col-b", ports[1]))
    log = run.path("app.log")
    open(log, "w").close()
    agent = lhtest.start_agent(run, "agent", cfg=delivery_agent_config(run, log, ports))
    write_lines(log, 0, n // 2)
    first = wait_all([a, b], n // 2)
    on_a, on_b = seqs_on(a, n), seqs_on(b, n)
    check(on_a and on_b, "round_robin should use both collectors (a %d, b %d)"
          % (len(on_a), len(on_b)))
    check_exactly_once(first, n // 2)
    kill9(run, a.proc)
    write_lines(log, n // 2, n)
    wait_until(lambda: set(range(n // 2, n)) <= set(seqs_on(b, n)), 60,
               "the second half entirely on the surviving collector")
    later = seqs_on(b, n)
    combined = collections.Counter(on_a)
    combined.update(later)
    check_exactly_once(combined, n)
    check((agent.metric("loghaul_agent_connections_total") or 0) >= 2, "two connections")


@test
def sigterm_flushes_what_is_buffered(run):
    n = 5000
    port = free_port()
    col = lhtest.start_collector(run, "collector", cfg=fixed_collector_config(run, "collector", port))
    log = run.path("app.log")
    open(log, "w").close()
    cfg = delivery_agent_config(run, log, [port])
    cfg["outputs"][0]["batch"] = {"max_records": 500, "max_wait": "10s"}
    agent = lhtest.start_agent(run, "agent", cfg=cfg)
    write_lines(log, 0, n)
    wait_until(lambda: (agent.metric("loghaul_agent_records_read_total") or 0) >= n, 30,
               "every line read")
    rc = agent.proc.stop(timeout=15)
    check(rc == 0, "agent exit status %s on SIGTERM, want 0" % rc)
    run.procs.remove(agent.proc)
    check_exactly_once(wait_all([col], n, timeout=10), n)


@test
def a_burst_goes_out_without_waiting_for_max_wait(run):
    # Batches stay open while the output waits on acks; once the input has
    # read everything and nothing is unacknowledged, the open batch is
    # sealed at once rather than after max_wait (60 s here).
    port = free_port()
    col = lhtest.start_collector(run, "collector", cfg=fixed_collector_config(run, "collector", port))
    log = run.path("app.log")
    open(log, "w").close()
    cfg = delivery_agent_config(run, log, [port])
    cfg["outputs"][0]["batch"] = {"max_records": 100000, "max_wait": "60s"}
    lhtest.start_agent(run, "agent", cfg=cfg)
    write_lines(log, 0, 1000)
    wait_until(lambda: col.records_in() >= 1000, 15, "the first burst, long before max_wait")
    write_lines(log, 1000, 3000)
    check_exactly_once(wait_all([col], 3000, timeout=15), 3000)


if __name__ == "__main__":
    sys.exit(lhtest.run())
