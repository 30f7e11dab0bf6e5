"""Seeded schedules of the metadata log under faults, checked by the invariant checkers,
and proof that the checkers (and the whole pipeline) do catch a broken protocol."""

from __future__ import annotations

import pytest

from dynamopy.core.paxos import acceptor as acceptor_mod
from dynamopy.sim import SimFailure, run_metalog
from dynamopy.sim.__main__ import main
from dynamopy.sim.invariants import (
    check_agreement, check_at_most_once, check_chosen_unique, check_liveness, check_no_loss,
    check_prefix,
)

# (name, params, number of seeds): 2,550 schedules in CI (the suite's time budget); the sweeps
# in the README (`dynamopy sim --seeds 0:2000 ...`) run many more.
FAMILIES = [
    ("default", {}, 1000),                       # 5 nodes, 3 acceptors, a late learner
    ("one-acceptor", {"acceptors": 1, "nodes": 3}, 200),
    ("five-acceptors", {"acceptors": 5, "nodes": 7}, 200),
    ("churn", {"election_ticks": 4, "heartbeat_ticks": 1, "max_delay_ms": 80, "loss": 0.15}, 300),
    ("hostile", {"loss": 0.3, "dup": 0.2, "crashes": 8, "partitions": 6, "steps": 400, "slow": 0.2}, 200),
    ("compact-often", {"compact_every": 2, "acceptors": 5, "nodes": 6}, 100),
    ("no-compaction", {"compact_every": 0, "nodes": 3}, 100),
    # A seed's disk is wiped right after a decisive vote; it comes back without voting.
    ("wipe", {"wipes": 1}, 100),
    ("wipe-five", {"wipes": 2, "acceptors": 5, "nodes": 7}, 50),
    # The metadata group changes through the log (groups of 1, 3 or 5) under the faults above.
    ("reconfig", {"reconfigs": 4}, 100),
    ("reconfig-churn", {"reconfigs": 8, "alpha": 2, "election_ticks": 4, "heartbeat_ticks": 1,
                        "max_delay_ms": 80, "loss": 0.15}, 50),
    # ...and a seed's disk wiped meanwhile: re-admitted only by a change that adds it back.
    ("reconfig-wipe-churn", {"reconfigs": 8, "wipes": 1, "alpha": 2, "election_ticks": 4,
                             "heartbeat_ticks": 1, "max_delay_ms": 80, "loss": 0.15}, 100),
    ("reconfig-hostile", {"reconfigs": 10, "loss": 0.3, "dup": 0.2, "crashes": 8, "partitions": 6,
                          "steps": 400, "slow": 0.2}, 50),
]
CHUNK = 100


def _chunks():
    for name, params, n in FAMILIES:
        for start in range(0, n, CHUNK):
            yield pytest.param(params, start, min(start + CHUNK, n), id=f"{name}-{start}")


@pytest.mark.parametrize("params,start,stop", list(_chunks()))
def test_seeded_schedules(params, start, stop):
    failures = [r.report() for r in (run_metalog(s, **params) for s in range(start, stop)) if not r.ok]
    assert not failures, "\n".join(failures[:3])


@pytest.mark.parametrize("seed", range(4))
def test_long_schedules(seed):
    r = run_metalog(seed, steps=3000, proposals=300, crashes=30, partitions=30, bursts=30, liveness_ticks=800)
    r.raise_if_failed()
    assert r.stats["slots"] >= 300 and r.stats["snapshots_installed"] > 0


def test_default_schedule_exercises_the_hard_paths():
    """Across a few seeds: crashes, snapshot installs, compaction, duplicate proposals
    deduplicated at apply, and the late joiner is a member that learned everything."""
    results = [run_metalog(s) for s in range(20)]
    assert all(r.ok for r in results)
    total = lambda k: sum(r.stats[k] for r in results)  # noqa: E731
    assert total("crashes") > 20 and total("snapshots_installed") > 20 and total("compactions") > 100
    assert total("duplicates") > 0
    r = results[0]
    assert {"rid": "join-n4", "op": "join", "id": "n4"} in r.final_logs["n4"]


def test_a_seed_replays_exactly():
    a, b = run_metalog(123), run_metalog(123)
    assert a.stats == b.stats and a.final_logs == b.final_logs
    assert run_metalog(124).final_logs != a.final_logs


# -- the checkers can fail --------------------------------------------------------------


def test_checkers_report_a_fabricated_divergent_history():
    x, y, z = {"rid": "x"}, {"rid": "y"}, {"rid": "z"}
    applied = [("n0", 0, x), ("n1", 0, x), ("n0", 1, y), ("n2", 1, z)]
    logs = {"n0": [x, y], "n1": [x], "n2": [x, z]}
    assert check_agreement(applied) and "slot 1" in check_agreement(applied)[0]
    assert check_prefix(logs)
    assert check_no_loss(applied, logs)
    assert check_liveness(logs, ["x", "y"], converged=False)
    assert check_at_most_once({"n0": [x, x]}, {"n0": ["x", "x"]})
    assert check_chosen_unique([("a", 0, 1, x), ("b", 0, 1, x), ("b", 0, 2, y), ("c", 0, 2, y)], 3)
    # per-slot groups: only the slot's group votes count, against its own majority
    groups = lambda slot: ("a",) if slot == 0 else ("b", "c", "d")  # noqa: E731
    assert check_chosen_unique([("a", 0, 1, x), ("b", 0, 2, y), ("c", 0, 2, y)], groups) == []
    assert check_chosen_unique([("b", 1, 1, x), ("c", 1, 1, x), ("c", 1, 2, y), ("d", 1, 2, y)], groups)
    # ...and stay quiet on a consistent one.
    good = {"n0": [x, y], "n1": [x, y]}
    assert not check_agreement([("n0", 0, x), ("n1", 0, x)]) and not check_prefix(good)
    assert not check_no_loss([("n0", 1, y)], good) and not check_liveness(good, ["x", "y"], True)
    assert not check_at_most_once(good, {"n0": ["x", "y"], "n1": ["x", "y"]})


def test_a_broken_acceptor_is_caught_with_its_seed(monkeypatch, capsys):
    """Acceptor state that is never really persisted (a crash forgets promises and
    accepts): the simulator must find a seed that breaks agreement and print SEED=."""
    monkeypatch.setattr(acceptor_mod.AcceptorState, "apply", lambda self, update: self)
    churn = {"election_ticks": 4, "heartbeat_ticks": 1, "max_delay_ms": 80, "loss": 0.15}
    failing = next((r for r in (run_metalog(s, **churn) for s in range(300)) if not r.ok), None)
    assert failing is not None, "a non-durable acceptor went unnoticed for 300 seeds"
    with pytest.raises(SimFailure, match=f"SEED={failing.params.seed} "):
        failing.raise_if_failed()
    assert any(v.startswith(("chosen:", "agreement:", "exception", "prefix:", "lost:")) for v in failing.violations)
    assert main(["--seed", str(failing.params.seed), "--election-ticks", "4", "--heartbeat-ticks", "1",
                 "--max-delay-ms", "80", "--loss", "0.15"]) == 1
    assert f"SEED={failing.params.seed} FAILED" in capsys.readouterr().out


def test_wiped_acceptors_come_back_without_voting_and_the_log_stays_whole():
    """Wipes do happen in these schedules (else the families above prove nothing), and the
    wiped nodes learn the whole log back as learners."""
    results = [run_metalog(s, wipes=1) for s in range(20)]
    assert all(r.ok for r in results), next(r.report() for r in results if not r.ok)
    assert sum(r.stats["wipes"] for r in results) >= 10


def test_an_acceptor_that_forgets_its_state_and_votes_is_caught(capsys):
    """The bug the real node must not have: a seed whose data directory was wiped comes
    back voting with an empty acceptor state. Within a few dozen seeds the invariants
    (one value per slot) catch it, and the report replays it."""
    failing = next((r for r in (run_metalog(s, wipes=1, unsafe_wipe=True) for s in range(40))
                    if not r.ok), None)
    assert failing is not None, "an amnesiac voting acceptor went unnoticed for 40 seeds"
    assert any(v.startswith(("chosen:", "agreement:", "exception")) for v in failing.violations)
    seed = failing.params.seed
    assert main(["--seed", str(seed), "--wipes", "1", "--unsafe-wipe"]) == 1
    assert f"SEED={seed} FAILED" in capsys.readouterr().out
    # The same schedule with the rule kept (it comes back without a vote) holds.
    run_metalog(seed, wipes=1).raise_if_failed()


def test_group_changes_take_effect_and_a_leader_that_ignores_them_is_caught(monkeypatch):
    """Group changes commit and take effect in these schedules; and a leader that counts
    any promises as a majority, whatever the slot's group (the classic reconfiguration
    bug: phase 1 with the old group only), is caught within a few dozen seeds."""
    results = [run_metalog(s, reconfigs=4) for s in range(10)]
    assert all(r.ok for r in results)
    assert sum(r.stats["group_changes"] for r in results) >= 30
    from dynamopy.core.paxos import proposer
    monkeypatch.setattr(proposer.Proposer, "covered",
                        lambda self, slot, group: len(self.promises) >= len(group) // 2 + 1)
    churn = {"reconfigs": 8, "alpha": 2, "election_ticks": 4, "heartbeat_ticks": 1,
             "max_delay_ms": 80, "loss": 0.15}
    failing = next((r for r in (run_metalog(s, **churn) for s in range(60)) if not r.ok), None)
    assert failing is not None, "phase 1 with the wrong group went unnoticed for 60 seeds"
    assert any(v.startswith(("chosen:", "agreement:", "exception", "prefix:", "lost:"))
               for v in failing.violations)


def test_cli_single_seed_and_range(capsys):
    assert main(["--seed", "7", "--nodes", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("SEED=7 OK") and "--nodes 4" in out
    assert main(["--seeds", "0:5"]) == 0
    assert "5 runs, 0 failed" in capsys.readouterr().out
