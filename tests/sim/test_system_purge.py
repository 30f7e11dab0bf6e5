"""The system simulator with a short tombstone grace (``--tombstone-grace-ms``): the nodes'
own anti-entropy timers run the purge under crashes, pauses, partitions, message loss and
clock jumps, the checkers accept a purged delete, and a purge that ignores a replica still
missing the tombstone and hints that never expire (patched in here, never a production
flag) are caught."""

from __future__ import annotations

import logging

import pytest

from dynamopy.core import tombstones
from dynamopy.node import hints, tombstone_purge
from dynamopy.sim.__main__ import main as sim_main
from dynamopy.sim.history import OpKind, Purged
from dynamopy.sim.system_run import SystemParams, run_system
from dynamopy.storage.store import Store

# A 1 s grace (hint window 0.4 s: 90% of it less the nodes' 500 ms clock bound), anti-entropy
# (and so a purge pass) every 0.5-1 s, 16 keys, 40% deletes, faults that take replicas away
# (a replica that missed a delete is what a purge must wait for). About 3-5 s a run here.
PURGE = dict(tombstone_grace_ms=1000, anti_entropy_interval_ms=1000, duration_ms=8000, faults=10, keys=16,
             delete=0.4, kinds="crash,pause,partition,one_way,loss,clock_jump")
PASSING_SEED = 4  # crashes, clock jumps, and the purge_pause knob fires
# Seed 17 catches it (0-16 do not; seed 0 did until session 14 checked the clock for a step
# at the start of a pass; last checked: session 14)
CAUGHT_SEEDS = range(17, 20)
# Seed 29 catches it with a value brought back (seed 1 did until session 15 read a clock
# step at stamping time too; in 0:40 seeds 13, 17, 25, 29 and 35 catch it, 13 and 25 only
# with an older tombstone read back; last checked: session 15)
HINT_SEEDS = range(29, 36)
# Busier: 32 keys, 4 x 60 operations over 10 s, every BUGGIFY knob enabled (purge_pause lets
# writes land between a batch's confirmations and its drops). About 6 s a run here.
RACE = dict(tombstone_grace_ms=1000, anti_entropy_interval_ms=1000, duration_ms=10000, faults=6, keys=32,
            ops_per_client=60, delete=0.3, buggify=1.0)
RACE_SEEDS = range(0, 10)    # seed 0 catches it (and passes without it; last checked)


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def test_a_short_grace_purges_tombstones_under_faults_and_passes_every_checker():
    result = run_system(SystemParams(seed=PASSING_SEED, **PURGE))
    assert result.ok, result.report()
    s = result.stats
    assert s["purge_passes"] >= 5 and s["tombstones_purged"] > 0, s
    purged = [e for e in result.history.events if isinstance(e, Purged)]
    assert len({(e.key, e.version) for e in purged}) > 1
    ops = result.history.operations()
    assert sum(o.kind is OpKind.DELETE and o.ok for o in ops) > 10
    # faults took replicas away and jumped clocks meanwhile; a purge batch paused between
    # its confirmations and its drops (BUGGIFY purge_pause)
    assert s["boots"] > 5 and s["max_clock_offset_ms"] > 0 and s["lost_messages"] > 0
    assert "purge_pause=" in s["buggify"], s
    # and some read found a key's tombstone purged (no record where a delete was acknowledged)
    keys = {e.key for e in purged}
    assert any(o.kind is OpKind.GET and o.ok and o.version == 0 and o.key in keys
               and o.start_index > min(i for i, e in enumerate(result.history.events)
                                       if isinstance(e, Purged) and e.key == o.key)
               for o in ops)


def test_the_default_grace_purges_nothing():
    """Without the flag a run keeps the 10-day grace: passes run, nothing is purged."""
    result = run_system(SystemParams(seed=PASSING_SEED, clients=3, ops_per_client=8, duration_ms=2000, faults=3,
                                     keys=2, delete=0.5))
    assert result.ok, result.report()
    assert not any(isinstance(e, Purged) for e in result.history.events)
    assert "purge_passes" not in result.stats


def test_unsafe_purge_that_ignores_a_replica_missing_the_tombstone_is_caught(monkeypatch):
    """``may_purge`` without "every current replica holds it": the first replica purges
    while a crashed, paused or cut-off replica still holds an older version, which comes
    back through anti-entropy once it is reachable again."""
    monkeypatch.setattr(tombstone_purge, "may_purge",
                        lambda rec, now_ms, grace_s, replicas, others, confirmed, change, *_:
                        not change and tombstones.old_enough(rec, now_ms, grace_s))
    _assert_caught(CAUGHT_SEEDS)


def test_unsafe_hints_that_never_expire_are_caught(monkeypatch):
    """A hint older than the grace delivered after the purge brings the value the purged
    delete shadowed back (hence hints expire at 90% of the grace less the clock bound)."""
    monkeypatch.setattr(hints.HintManager, "expired", lambda self, record: False)
    _assert_caught(HINT_SEEDS)


def test_unsafe_purge_that_drops_a_newer_tombstone_is_caught(monkeypatch):
    """A replica told to drop tombstone v drops whatever tombstone it holds, a newer one
    too (a delete that landed after the confirmations): a key whose newest acknowledged
    delete was never confirmed everywhere reads as no record."""
    purge = Store.purge

    def purge_newer_too(self, items, sync=True):
        held = [(t, k, self.get(int(t), bytes(k))) for t, k, _v in items]
        return purge(self, [(t, k, rec.version if rec is not None and rec.deleted else v)
                            for (t, k, rec), (_t, _k, v) in zip(held, items)], sync)
    monkeypatch.setattr(Store, "purge", purge_newer_too)
    _assert_caught(RACE_SEEDS, RACE)


def _assert_caught(seeds: range, params: dict = PURGE) -> None:
    """The first of ``seeds`` whose run fails reports an older version (or none) seen after
    a newer acknowledged or purged delete."""
    for seed in seeds:
        result = run_system(SystemParams(seed=seed, **params))
        if not result.ok:
            break
    else:
        pytest.fail(f"no seed of {seeds} caught it")
    older = ("resurrected:", "stale strict read:", "lost:")
    assert any(v.startswith(older) for v in result.violations), result.report()


def test_cli_flags_and_a_grace_too_short_for_any_hint_window(capsys):
    assert SystemParams(tombstone_grace_ms=2000).hint_window_s == pytest.approx(1.3)
    assert SystemParams().hint_window_s == 0.0 and not SystemParams().purge
    assert "--tombstone-grace-ms 2000 --delete 0.3" in SystemParams(tombstone_grace_ms=2000, delete=0.3).cli_args()
    assert sim_main(["--system", "--seed", "0", "--tombstone-grace-ms", "500"]) == 2
    assert "leaves no hint window" in capsys.readouterr().err
    assert sim_main(["--system", "--seed", "0", "--delete", "1.5"]) == 2
    assert "--delete is a share" in capsys.readouterr().err


def test_a_node_whose_clock_stepped_back_during_its_pings_serves_again_after_healing():
    """Seed 392 (session 13's sweep of 200-599): n2's clock, 4357 ms ahead, steps back at
    healing while its ping replies are held (it was paused). Those replies, timed on the
    wall clock, had a round trip below zero and an offset of half the step; as the
    "quickest" samples they outlived the step by their 10 s of freshness, so n2 stayed
    fenced for clock skew and its probes failed with ``clock_skew`` 4 s after healing."""
    result = run_system(SystemParams(seed=392, **PURGE))
    assert result.ok, result.report()
    assert result.stats["max_clock_offset_ms"] == 4357


# Purges with ring changes, a grace (5 s) above every window a node is down (at most 1.9 s
# here): the README's operator rule is kept, and no node is down at all in the failure below.
CHANGES = dict(kinds="crash,pause,partition,loss,join,leave,remove", spares=2, changes=3, bound_ms=30000,
               anti_entropy_interval_ms=1000, tombstone_grace_ms=5000, delete=0.3, duration_ms=12000)


@pytest.mark.timeout(120)
def test_regression_seed_134_a_hand_off_delayed_past_the_grace_by_one_lost_reply():
    """n5 joins at 2.5 s and takes k3's range from n1, which holds v931 (a put the new
    owners n3, n4, n5 hold too). n1's hand-off walk loses one ``ae_tree`` reply (10% loss)
    and waits out its 10 s call timeout. Meanwhile k3 is deleted (5.9 s, n3 n4 n5 hold the
    tombstone; n1 is no replica, so none is sent to it) and, every current replica holding
    it and no ring change in progress, purged at 13.8 s. n1's retry at 14.4 s finds the new
    owners lacking k3 and pushes v931 to all three: the deleted value is back. n1 was never
    down: the operator rule ("bring a node back within the grace, counting until it has
    handed off") is not broken. Same mechanism as seed 45 (below), other trigger. Fixed:
    the purge asks every member, and n1's old copy holds it back until handed off."""
    result = run_system(SystemParams(seed=134, **CHANGES))
    assert result.ok, result.report()
    assert result.stats["tombstones_purged"] > 0, result.stats


@pytest.mark.timeout(120)
def test_regression_seed_45_a_hand_off_held_back_by_ring_changes():
    """Seed 45 with a 1 s grace: n0, down 1.8 s, misses a delete of k0; its hand-off of
    k0's range (lost in a ring change meanwhile) is held back by further ring changes and
    reached the new owners after they had purged the tombstone: k0's old value was back.
    n0 is a member all along, so the purge now waits for its old copy to be handed off."""
    result = run_system(SystemParams(seed=45, kinds="crash,pause,partition,loss,join,leave,remove",
                                     spares=2, changes=3, bound_ms=30000,
                                     anti_entropy_interval_ms=1000, tombstone_grace_ms=1000,
                                     delete=0.3))
    assert result.ok, result.report()


@pytest.mark.timeout(120)
def test_unsafe_purge_that_ignores_old_copies_on_other_members_is_caught(monkeypatch):
    """``may_purge`` as before session 13 (replicas only): seed 134 undoes a purged delete."""
    may_purge = tombstone_purge.may_purge
    monkeypatch.setattr(tombstone_purge, "may_purge",
                        lambda rec, now_ms, grace_s, replicas, others, confirmed, change, *_:
                        may_purge(rec, now_ms, grace_s, replicas, [], confirmed, change))
    assert not run_system(SystemParams(seed=134, **CHANGES)).ok


@pytest.mark.timeout(120)
def test_regression_seed_2029_a_w1_write_lost_with_the_node_removed_for_good_is_excused():
    """Seed 2029 (session 14 hunt): n4, cut off while n5 joins, acks a strict W=1 delete of
    k13 alone; the join pauses anti-entropy and n5's pull from n4 waits out a reply lost in
    the partition, so nothing copies it before n4 is stopped for good and removed (10 s).
    The final R=N read then returns the older put: a W=1 write whose only disk is gone, as
    after a wipe, not a bug of the nodes. The checker now excuses it (``Wiped.gone``)."""
    result = run_system(SystemParams(seed=2029, kinds="crash,pause,partition,one_way,loss,clock_jump,"
                                     "join,leave,remove", spares=2, changes=3, bound_ms=30000,
                                     duration_ms=12000, faults=10, keys=16,
                                     anti_entropy_interval_ms=1000, tombstone_grace_ms=1000,
                                     delete=0.4))
    assert result.ok, result.report()
    assert result.stats["w1_writes_lost_to_wipes"] >= 1, result.stats


# Leaves kept running until they have handed off (README: "keep it running and reachable
# until it has handed them off"; the run stops a leaver once its store is empty).
LEAVES = dict(kinds="crash,pause,partition,loss,join,leave,remove", spares=2, changes=4, bound_ms=30000,
              duration_ms=12000, keys=16, anti_entropy_interval_ms=1000, tombstone_grace_ms=1000, delete=0.4)


@pytest.mark.timeout(120)
def test_seed_3057_with_leavers_kept_until_they_handed_off_purges_safely():
    """Seed 3057 of these parameters used to undo a purged delete of k0 without 9be3391's
    rule (no purge within the grace after a member left the ring): a node that left handed
    its old copy to the new owners after they purged. The run passes with the rule.

    The run also showed the rule's absence (a ``resurrected`` violation with
    ``no_recent_exit`` patched to True) until session 16, whose membership changes moved the
    schedule. A search since (seeds 3000-3332, changes=4; 3000-3080, changes=6;
    /work/notes/tasks16/find_purge_seed.py) found no seed that passes with the rule and
    resurrects without it: the only seeds that resurrect without it (3058; 3009, 3024 with
    changes=6) resurrect *with* it too, because the rule rests on the leaver handing off
    within the grace, and there a node that left handed off 1.2-3.2 s after its exit with a
    1 s grace (session 16's closing note, "Noticed and left alone"). The rule is tested at
    the node: ``tests/unit/test_anti_entropy.py::test_no_purge_within_the_grace_after_a_member_left_the_ring``
    and ``tests/unit/test_tombstones.py::test_no_purge_until_the_grace_has_passed_since_a_member_left_the_ring``."""
    result = run_system(SystemParams(seed=3057, **LEAVES))
    assert result.ok, result.report()
    assert result.stats["tombstones_purged"] > 0, result.stats
