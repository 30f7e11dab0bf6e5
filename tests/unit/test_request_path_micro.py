"""``dynamopy/benchlib/request_path_micro.py`` runs against this checkout and prints a figure
per line (small sizes: a smoke test of the script docs/perf.md cites, not a timing)."""

import uvloop

from dynamopy.benchlib import request_path_micro as micro


def test_each_micro_benchmark_runs_and_gives_a_positive_figure():
    assert uvloop.run(micro.peer_call_us(calls=300, inflight=8)) > 0
    assert uvloop.run(micro.replica_put_us(puts=200)) > 0
    assert micro.plan_us() > 0
    assert micro.observe_us() > 0
    plain, queued = uvloop.run(micro.timers_us(n=2000))
    assert plain > 0 and queued is not None and queued > 0
