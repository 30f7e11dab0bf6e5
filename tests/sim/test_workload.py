"""The client workload generator: deterministic per seed, and the mix it promises."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from dynamopy.sim.history import OpKind
from dynamopy.sim.workload import ClientOp, WorkloadParams, final_reads, generate, probes

P = WorkloadParams(clients=5, ops_per_client=200, keys=4)


def _all(w):
    return [op for ops in w.clients for op in ops]


def test_same_seed_same_workload():
    assert generate(random.Random(5), P) == generate(random.Random(5), P)
    assert generate(random.Random(5), P).describe() == generate(random.Random(5), P).describe()
    assert generate(random.Random(5), P) != generate(random.Random(6), P)


def test_the_mix():
    w = generate(random.Random(1), P)
    ops = _all(w)
    assert len(w.clients) == 5 and all(len(c) == 200 for c in w.clients) and len(w.starts_ms) == 5
    kinds = Counter(op.kind for op in ops)
    assert 0.38 < kinds[OpKind.PUT] / 1000 < 0.52 and 0.06 < kinds[OpKind.DELETE] / 1000 < 0.14
    assert {op.key for op in ops} == {"k0", "k1", "k2", "k3"} == set(w.keys)
    keys = Counter(op.key for op in ops)
    assert keys["k0"] > 1.5 * max(keys["k1"], keys["k2"], keys["k3"])  # the hot key
    assert 0.22 < sum(op.strict for op in ops) / 1000 < 0.38
    assert {op.quorum for op in ops} == {1, 2, 3}
    assert Counter(op.quorum for op in ops)[2] > 500  # the default dominates
    values = [op.value for op in ops if op.kind is OpKind.PUT]
    assert len(values) == len(set(values)) and all(v.startswith(b"c") for v in values)
    assert all(op.value is None for op in ops if op.kind is not OpKind.PUT)
    assert all(0 <= op.think_ms <= 50 for op in ops) and all(0 <= s < 100 for s in w.starts_ms)
    # Strict reads with R + W > N after strict writes: the regularity checker has work.
    assert sum(op.strict and op.kind is OpKind.GET and op.quorum >= 2 for op in ops) > 50


def test_shares_follow_the_parameters():
    ops = _all(generate(random.Random(2), replace(P, put=1.0, delete=0.0, strict=0.0, other_quorum=0.0)))
    assert {op.kind for op in ops} == {OpKind.PUT} and not any(op.strict for op in ops)
    assert {op.quorum for op in ops} == {2}
    with pytest.raises(ValueError):
        WorkloadParams(default_w=4)
    with pytest.raises(ValueError):
        WorkloadParams(put=0.8, delete=0.3)


def test_coordinator_choice_is_a_function_of_the_op_and_the_members():
    ops = _all(generate(random.Random(3), P))
    members = ["n2", "n0", "n1"]
    picks = Counter(op.coordinator(members) for op in ops)
    assert set(picks) == {"n0", "n1", "n2"} and min(picks.values()) > 250
    assert [op.coordinator(members) for op in ops] == [op.coordinator(sorted(members)) for op in ops]
    with pytest.raises(ValueError):
        ops[0].coordinator([])


def test_probes_and_final_reads():
    ps = probes(random.Random(4), ["k0", "k1"], default_r=2, default_w=2)
    assert [(p.kind, p.key) for p in ps] == [(OpKind.PUT, "k0"), (OpKind.GET, "k0"),
                                             (OpKind.PUT, "k1"), (OpKind.GET, "k1")]
    assert all(ps[i].strict != ps[i + 1].strict for i in (0, 2)) and ps[0].value == b"probe-k0"
    assert final_reads(["a", "b"], n=3) == (ClientOp(OpKind.GET, "a", 3, True, None, 0),
                                            ClientOp(OpKind.GET, "b", 3, True, None, 1))
    assert ps[0].describe().startswith("put 'k0' W=2")
