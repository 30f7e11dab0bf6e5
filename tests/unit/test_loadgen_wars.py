"""The WARS staleness prediction (loadgen.wars) on latency inputs with known answers."""

import random

import pytest

from loadgen.wars import Choice, Constant, LatencyModel, predict_t_visibility

T = (0, 1, 5, 19, 20, 50)


def _exp(mean_s):
    class Exp:
        def sample(self, rng):
            return rng.expovariate(1.0 / mean_s)
    return Exp()


@pytest.mark.parametrize("r,w", [(2, 2), (1, 3), (3, 1), (2, 3)])
@pytest.mark.parametrize("plan", ["r", "all"])
def test_overlapping_quorums_always_see_the_write(r, w, plan):
    m = LatencyModel(w=_exp(0.01), a=_exp(0.002), r=_exp(0.002), s=_exp(0.002),
                     local_apply=_exp(0.005))
    p = predict_t_visibility(3, r, w, T, m, random.Random(1), trials=3000, read_plan=plan,
                             nodes=3 if plan == "r" else None)
    assert set(p.values()) == {1.0}


def test_two_replicas_one_fast_one_slow():
    # N=2, W=1, R=1, reads go to one random replica; W_i is 0 or 20 ms with equal odds,
    # no other delay. Commit = min(W1, W2). Both equal (p=1/2): the read sees it. Different
    # (p=1/2): commit at 0, the read sees it if it hits the fast one (1/2) or t >= 20 ms.
    # So P = 3/4 for t < 20 ms, 1 from 20 ms on.
    m = LatencyModel(w=Choice((0.0, 0.020)), a=Constant(0.0), r=Constant(0.0),
                     s=Constant(0.0))
    p = predict_t_visibility(2, 1, 1, T, m, random.Random(2), trials=40_000, read_plan="r")
    for t in (0, 1, 5, 19):
        assert abs(p[t] - 0.75) < 0.015, (t, p[t])
    assert p[20] == 1.0 and p[50] == 1.0


def test_constant_latencies_step_at_the_replication_delay():
    # The paper's setting (coordinator not a replica): W=10 ms, A=1 ms, R=S=1 ms for every
    # replica. Every write reaches all replicas at 10 ms and commits at 11 ms, so a read
    # arriving at 11 + t + 1 ms always sees it.
    m = LatencyModel(w=Constant(0.010), a=Constant(0.001), r=Constant(0.001),
                     s=Constant(0.001))
    p = predict_t_visibility(3, 1, 1, T, m, random.Random(3), trials=500, read_plan="all")
    assert set(p.values()) == {1.0}


def test_local_replica_of_the_coordinator():
    # 3 nodes, N=3, W=1, R=1: the write coordinator applies locally at once (commit at 0),
    # the other two replicas get the write after 20 ms. A read's coordinator is a replica
    # and reads itself: it sees the write only if it is the write's coordinator (1/3) until
    # t reaches 20 ms.
    m = LatencyModel(w=Constant(0.020), a=Constant(0.0), r=Constant(0.0), s=Constant(0.0),
                     local_apply=Constant(0.0))
    p = predict_t_visibility(3, 1, 1, T, m, random.Random(4), trials=30_000, nodes=3)
    for t in (0, 1, 5, 19):
        assert abs(p[t] - 1 / 3) < 0.015, (t, p[t])
    assert p[20] == 1.0


def test_never_decreasing_in_t_and_bad_inputs():
    m = LatencyModel(w=_exp(0.01), a=_exp(0.002), r=_exp(0.001), s=_exp(0.001),
                     local_apply=_exp(0.004))
    p = predict_t_visibility(3, 1, 1, T, m, random.Random(5), trials=5000, nodes=3)
    values = [p[t] for t in T]
    assert values == sorted(values) and 0 < values[0] < 1
    with pytest.raises(ValueError):
        predict_t_visibility(3, 4, 1, T, m, random.Random(1))
    with pytest.raises(ValueError):
        predict_t_visibility(3, 1, 1, T, m, random.Random(1), nodes=2)


def test_extra_gap_shifts_t():
    # The two-replica case above with a client trip of 0 or 20 ms added to t: half the
    # trials now wait long enough, so P = 3/4 + 1/4 * 1/2 below 20 ms.
    m = LatencyModel(w=Choice((0.0, 0.020)), a=Constant(0.0), r=Constant(0.0),
                     s=Constant(0.0))
    p = predict_t_visibility(2, 1, 1, T, m, random.Random(6), trials=40_000, read_plan="r",
                             extra_gap=Choice((0.0, 0.020)))
    assert abs(p[0] - 0.875) < 0.015
    q = predict_t_visibility(2, 1, 1, T, m, random.Random(6), trials=2000, read_plan="r",
                             extra_gap=Constant(0.020))
    assert set(q.values()) == {1.0}
