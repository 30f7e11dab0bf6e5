"""What a system-simulation run prints: SEED= first, the replay command, the violations,
and (verbose) the schedule, workload and the trace of each key a violation names."""

from __future__ import annotations

from tests.sim.toy_register import ToyRegister

from dynamopy.sim.system_report import keys_named, run_report


def test_keys_named_in_violations():
    v = ["lost: 'k1': acknowledged put v5 ...", "diverge: 'k0': n1 has v2 b'x', n2 has none",
         "stale strict read: #4 get 'k1' R=2 ..."]
    assert keys_named(v) == ["k1", "k0", "x"]  # without the key set, a quoted value looks like a key
    assert keys_named(v, known=["k0", "k1", "k2"]) == ["k1", "k0"]
    assert keys_named([r"lost: 'it\'s': ..."]) == [r"it\'s"]


def test_a_failing_run_prints_seed_replay_and_the_broken_keys_history():
    toy = ToyRegister(3, bug="short_quorum")
    violations = toy.run()
    assert violations
    text = run_report(3, "--nodes 5", violations, toy.h.events, stats={"ops": 1}, schedule=toy.schedule,
                      workload=toy.workload, verbose=True)
    lines = text.splitlines()
    assert lines[0] == "SEED=3 FAILED params: --system --seed 3 --nodes 5"
    assert lines[1] == "  replay: dynamopy sim --system --seed 3 --nodes 5 -v"
    assert lines[2].startswith("  operations: {") and "stats: {'ops': 1}" in lines[3]
    assert lines[4] == "  " + violations[0]
    assert "nemesis: " in text and "workload: 4 clients" in text
    key = keys_named(violations)[0]
    trace = text.split(f"history of {key!r}:\n", 1)[1]
    assert f"invoke put {key!r}" in trace or f"invoke delete {key!r}" in trace
    assert "heal all" in trace  # faults are in every key's trace


def test_a_passing_run_is_one_short_block():
    toy = ToyRegister(4)
    text = run_report(4, "", toy.run(), toy.h.events, schedule=toy.schedule)
    assert text.splitlines()[0] == "SEED=4 OK params: --system --seed 4" and "nemesis:" not in text
    assert len(text.splitlines()) == 3
    many = run_report(4, "", [f"lost: 'k{i}'" for i in range(30)], [], max_violations=5)
    assert many.splitlines()[-1] == "  ... 25 more violations"
