"""The system simulator end to end: real Nodes on the in-memory seams under seeded faults
(``dynamopy/sim/system_run.py``). A fast subset of seeds must pass every checker, a seed
replays byte for byte, and deliberately unsafe variants of the node (patched in here, never
a production flag) are caught."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys

import pytest

from dynamopy.core import quorum
from dynamopy.node import coordinator, hints
from dynamopy.node.replica import Replica
from dynamopy.sim.__main__ import main as sim_main
from dynamopy.sim.system_run import SystemParams, run_system

CI_SEEDS = range(0, 20)   # a fast subset; `dynamopy sim --system --seeds A:B` runs more
HUNT = range(100, 116)    # seeds an unsafe variant must be caught within (stops at the first)


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.timeout(120)
def test_fast_subset_of_seeds_passes_every_checker():
    failed = []
    for seed in CI_SEEDS:
        result = run_system(SystemParams(seed=seed))
        if not result.ok:
            failed.append(result.report())
    assert not failed, "\n\n".join(failed)


def test_a_run_exercises_the_data_path_and_the_faults():
    """Not vacuous: operations succeed and fail, nodes stamp, sync and ack, faults happen."""
    result = run_system(SystemParams(seed=3))
    kinds = {type(e).__name__ for e in result.history.events}
    assert {"Invoke", "Complete", "Stamped", "Synced", "Acked", "Note"} <= kinds
    outcomes = {o.outcome.value for o in result.history.operations()}
    assert "ok" in outcomes and outcomes - {"ok"}
    assert result.stats["faults"] > 0 and result.stats["lost_messages"] > 0


@pytest.mark.parametrize("kind,stat", [("crash", "boots"), ("pause", "held_messages"),
                                       ("partition", "lost_messages"), ("one_way", "lost_messages"),
                                       ("clock_jump", "max_clock_offset_ms"), ("duplicate", "duplicated"),
                                       ("loss", "replies_lost")])
def test_each_fault_kind_takes_effect_on_the_nodes(kind, stat):
    """A schedule of one kind changes what the nodes see: crashed nodes boot again, a
    paused node's messages are held, a partition's messages are lost."""
    calm = run_system(SystemParams(seed=4, kinds="delay", faults=1, ops_per_client=5))
    result = run_system(SystemParams(seed=4, kinds=kind, faults=4, ops_per_client=5))
    assert result.ok, result.report()
    assert result.stats[stat] > calm.stats[stat], (result.stats, calm.stats)


CHANGES = dict(spares=2, changes=2, kinds="crash,loss,partition,join,leave,remove", duration_ms=10000,
               bound_ms=30000, anti_entropy_interval_ms=0)  # anti-entropy off: these runs are long


@pytest.mark.timeout(60)
def test_joins_leaves_and_removals_under_faults_pass_and_change_the_ring():
    epochs = []
    for seed in range(0, 4):
        result = run_system(SystemParams(seed=seed, **CHANGES))
        assert result.ok, result.report()
        epochs.append(result.stats["epoch"])
    # seed 2 joins n6 and has it leave again: join, finish_join, leave, finish_leave
    assert max(epochs) >= 5, epochs


def test_a_join_goes_through_the_routes_admission_check(monkeypatch):
    """A spare is admitted as ``POST /cluster/members`` admits a node (``admit_join``:
    ``check_joiner`` asks it to identify itself, then the join is proposed). A spare that
    answers the handshake as another node is refused, so its join never happens and its
    later leave is never accepted, which the run reports."""
    from dynamopy.sim import system_net

    real_identify = system_net.FaultyTransport.identify

    async def impostor(self, addr, timeout_s):
        got = await real_identify(self, addr, timeout_s)
        return "someone-else" if addr == "n6" else got

    monkeypatch.setattr(system_net.FaultyTransport, "identify", impostor)
    result = run_system(SystemParams(seed=2, **CHANGES))
    assert "liveness: the leave of n6 was never accepted by the end of the run" in result.violations


def test_nodes_run_anti_entropy_in_the_simulation(monkeypatch):
    from dynamopy.sim import system_run

    methods = []
    delay = system_run.SystemRun._delay_s
    monkeypatch.setattr(system_run.SystemRun, "_delay_s",
                        lambda self, src, dst, method: methods.append(method) or delay(self, src, dst, method))
    assert run_system(SystemParams(seed=1)).ok
    assert "ae_tree" in methods
    methods.clear()
    assert run_system(SystemParams(seed=1, anti_entropy_interval_ms=0)).ok
    assert "ae_tree" not in methods


def test_the_same_seed_prints_byte_identical_output(capsys):
    outputs = []
    for _ in range(2):
        assert sim_main(["--system", "--seed", "7", "-v"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert outputs[0].startswith("SEED=7 OK params: --system --seed 7\n")
    assert "nemesis:" in outputs[0] and "workload:" in outputs[0]


@pytest.mark.timeout(60)
def test_replay_is_identical_in_another_process_with_another_hash_seed(capsys):
    assert sim_main(["--system", "--seed", "11", "-v"]) == 0
    here = capsys.readouterr().out
    env = dict(os.environ, PYTHONHASHSEED="12345")
    there = subprocess.run([sys.executable, "-m", "dynamopy.sim", "--system", "--seed", "11", "-v"],
                           env=env, capture_output=True, timeout=50, check=True).stdout.decode()
    assert here == there


def _first_failure(seeds, verbose: bool = False, **params) -> str:
    for seed in seeds:
        result = run_system(SystemParams(seed=seed, **params))
        if not result.ok:
            return result.report(verbose=verbose)
    return ""


@pytest.mark.timeout(60)
def test_unsafe_read_that_answers_the_first_reply_is_caught(monkeypatch):
    """A coordinator that answers the first of R replies, not the newest. Only strict reads
    after strict writes are checked for staleness, so this hunt makes most operations
    strict (with the default 30% it takes many more seeds)."""
    monkeypatch.setattr(quorum.ReadRound, "newest",
                        lambda self: next(iter(self.replies.values()), None))
    report = _first_failure(HUNT, strict=0.9)
    assert "FAILED" in report and "stale strict read" in report, report


@pytest.mark.timeout(60)
def test_unsafe_replica_that_acks_before_its_sync_is_caught(monkeypatch):
    """A home replica that answers a put before the group commit has synced it."""
    synced_put = Replica.put

    async def put_then_sync(self, token, key, record, hint_for=None):
        if hint_for is not None:
            return await synced_put(self, token, key, record, hint_for)
        self.observe_version(record.version)
        asyncio.get_running_loop().create_task(self.committer.write(token, key, record))
        return record.version

    monkeypatch.setattr(Replica, "put", put_then_sync)
    report = _first_failure(HUNT, verbose=True)
    assert "FAILED" in report and "ack before sync" in report, report
    assert "replay: dynamopy sim --system --seed" in report
    # -v: the trace of a key the violation names, the replica's ack before its sync in it
    assert "history of 'k" in report and " acks 'k" in report and " synced [" in report


@pytest.mark.timeout(60)
def test_unsafe_write_that_answers_one_ack_early_is_caught(monkeypatch):
    """A coordinator whose write round succeeds with W-1 acks (the spike in
    test_system_spike.py missed this one without the node-side events)."""
    real_round = coordinator.WriteRound
    monkeypatch.setattr(coordinator, "WriteRound",
                        lambda targets, required: real_round(targets, max(1, required - 1)))
    report = _first_failure(HUNT)
    assert "FAILED" in report and "short quorum" in report, report


@pytest.mark.timeout(60)
def test_unsafe_coordinator_whose_kept_hint_counts_toward_w_is_caught(monkeypatch):
    """A coordinator that counts the hint it keeps for an unreachable home replica as that
    replica's ack."""
    real_put_one = coordinator.Coordinator._put_one

    async def hint_counts(self, t, epoch, token, key, record, wire, hint_on_failure=True, stale=None):
        try:
            return await real_put_one(self, t, epoch, token, key, record, wire, hint_on_failure, stale)
        except Exception:
            if hint_on_failure and t.hint_for is None:
                return record.version
            raise

    monkeypatch.setattr(coordinator.Coordinator, "_put_one", hint_counts)
    report = _first_failure(HUNT)
    assert "FAILED" in report and "short quorum" in report, report


def test_hints_never_delivered_are_caught_after_healing(monkeypatch):
    """Hinted handoff that never runs: the final reads' repair hides it from the data
    checks, so the run checks that every hint queue drained once faults are healed."""
    async def never_deliver(self):
        await asyncio.sleep(1e6)

    monkeypatch.setattr(hints.HintManager, "run", never_deliver)
    report = _first_failure(HUNT)
    assert "FAILED" in report and "hint queues still hold hints after healing" in report, report


def test_cli_exit_status_and_summary_for_a_range(capsys):
    assert sim_main(["--system", "--seeds", "0:2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("system seeds 0:2: 2 runs, 0 failed")


def test_cli_refuses_a_fault_kind_it_does_not_model(capsys):
    assert sim_main(["--system", "--seed", "1", "--kinds", "crash,slow_disk"]) == 2
    assert "does not model slow_disk" in capsys.readouterr().err


def test_replay_flags_name_every_non_default_knob():
    params = SystemParams(seed=9, unavailable=True, faults=20, strict=0.6)
    assert params.cli_args() == "--faults 20 --unavailable --strict 0.6"
    assert SystemParams(seed=9).cli_args() == ""
