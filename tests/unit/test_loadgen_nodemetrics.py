"""The staleness model's inputs read from the nodes' Prometheus text (loadgen.nodemetrics)."""

import random

from loadgen import nodemetrics as nm

TEXT = '''# HELP dynamopy_peer_call_seconds peer RPC latency
# TYPE dynamopy_peer_call_seconds histogram
dynamopy_peer_call_seconds_bucket{le="0.001",method="get"} 10.0
dynamopy_peer_call_seconds_bucket{le="0.002",method="get"} 30.0
dynamopy_peer_call_seconds_bucket{le="+Inf",method="get"} 30.0
dynamopy_peer_call_seconds_count{method="get"} 30.0
dynamopy_peer_call_seconds_bucket{le="0.001",method="put"} 0.0
dynamopy_peer_call_seconds_bucket{le="+Inf",method="put"} 5.0
dynamopy_replica_put_seconds_bucket{le="0.005"} 4.0
dynamopy_replica_put_seconds_bucket{le="+Inf"} 4.0
dynamopy_requests_total{route="get",outcome="ok"} 3.0
'''


def test_parse_and_window():
    b = nm.parse(TEXT)
    assert b[(nm.PEER, "get")] == {0.001: 10.0, 0.002: 30.0, float("inf"): 30.0}
    assert b[(nm.APPLY, "")] == {0.005: 4.0, float("inf"): 4.0}
    zero = {k: {le: 0.0 for le in v} for k, v in b.items()}
    # Node 1 grew from zero; node 2 restarted in between (its counters went down): all of
    # its counts since the restart belong to the window; node 3 did not answer.
    doubled = nm.add(b, b)
    w = nm.window([zero, doubled, zero], [b, b, None])
    assert w[(nm.PEER, "get")][0.002] == 60.0


def test_empirical_sampling_stays_in_its_buckets():
    e = nm.Empirical.from_buckets({0.001: 10.0, 0.002: 30.0, float("inf"): 30.0})
    rng = random.Random(1)
    xs = [e.sample(rng) for _ in range(20_000)]
    assert all(0 <= x <= 0.002 for x in xs)
    below = sum(x <= 0.001 for x in xs) / len(xs)
    assert abs(below - 1 / 3) < 0.02
    assert e.count == 30 and e.quantile(0.5) == 0.002


def test_latency_model_needs_round_trips_and_apply_times():
    model, info = nm.latency_model(nm.parse(TEXT))
    assert model is not None and info["peer_rtt"]["samples"] == 30
    rng = random.Random(2)
    legs = [model.a.sample(rng) for _ in range(2000)]
    assert max(legs) <= 0.001          # half of a round trip of at most 2 ms
    assert all(model.w.sample(rng) <= 0.001 + 0.005 for _ in range(2000))
    none, _ = nm.latency_model({})
    assert none is None
