"""The system simulator's pure parts end to end on a toy quorum register (see
``toy_register.py``: a test fixture, not the node): the checkers raise no false alarm on
many faulty, concurrent runs of a correct protocol, and catch each broken variant on real
interleavings within a fixed seed range."""

from __future__ import annotations

import pytest

from dynamopy.sim.history import Outcome
from dynamopy.sim.system_invariants import outcomes
from tests.sim.toy_register import BUGS, ToyRegister


def test_a_correct_register_passes_every_checker_under_faults():
    failed_or_unknown = strict_reads = 0
    for seed in range(60):
        toy = ToyRegister(seed)
        violations = toy.run()
        assert violations == [], (seed, violations[:3])
        ops = toy.h.operations()
        failed_or_unknown += sum(o.outcome is not Outcome.OK for o in ops)
        strict_reads += sum(o.ok and o.strict and not o.kind.is_write and o.quorum >= 2 for o in ops)
    # The runs were not trivially easy: faults cost operations, strict reads were checked.
    assert failed_or_unknown > 400 and strict_reads > 600, (failed_or_unknown, strict_reads)


def test_a_run_replays_exactly():
    a, b = ToyRegister(7), ToyRegister(7)
    a.run(), b.run()
    assert a.h.events == b.h.events and a.store == b.store
    c = ToyRegister(8)
    c.run()
    assert c.h.events != a.h.events and outcomes(c.h.events) != outcomes(a.h.events)


@pytest.mark.parametrize("bug,expect,seeds", [
    ("ack_before_sync", ("ack before sync",), 5),
    ("short_quorum", ("short quorum",), 5),
    ("no_restamp", ("hidden write",), 20),
    ("repair_overwrites", ("stale strict read", "lost"), 100),  # needs a write racing a repair
])
def test_each_broken_variant_is_caught(bug, expect, seeds):
    assert bug in BUGS
    for seed in range(seeds):
        violations = ToyRegister(seed, bug=bug).run()
        if any(v.startswith(expect) for v in violations):
            return
    pytest.fail(f"{bug} went unnoticed for {seeds} seeds")
