"""Several dead members removed in one change (core/membership.py, "Several dead members"):
the removal of a dead gainer of a removal in progress merges into it."""

from itertools import combinations

import pytest

from dynamopy.core.membership import ClusterState, InvalidEntry, Settings, bootstrap_entry, validate
from dynamopy.core.placement import pull_sources, replicas
from dynamopy.core.quorum import Target, pending_required


def cluster(size: int, **settings) -> ClusterState:
    """n1..n3 seeds, then n4..n<size> joined one by one (each join finished)."""
    seeds = [{"id": f"n{i}", "url": f"u{i}", "peer": f"p{i}"} for i in (1, 2, 3)]
    s = ClusterState().apply(bootstrap_entry(seeds, Settings(**settings)))
    for i in range(4, size + 1):
        s = s.apply({"op": "join", "id": f"n{i}", "url": f"u{i}", "peer": f"p{i}", "at_ms": 1})
        s = s.apply({"op": "finish_join", "id": f"n{i}", "change_epoch": s.change_epoch})
    assert s.skipped == 0
    return s


def remove(s: ClusterState, mid: str, at_ms: int = 1000) -> ClusterState:
    """A removal as this version's nodes propose it (Node.propose adds the flag)."""
    return s.apply({"op": "remove", "id": mid, "merge": True, "at_ms": at_ms})


def finish(s: ClusterState, change_epoch=None, at_ms: int = 5000) -> ClusterState:
    return s.apply({"op": "finish_leave", "id": s.change[1], "at_ms": at_ms,
                    "change_epoch": s.change_epoch if change_epoch is None else change_epoch})


def test_removing_a_dead_gainer_of_a_removal_merges_it_and_recomputes_the_gainers():
    first = remove(cluster(5), "n4")
    assert "n5" in first.gainers()
    merged = remove(first, "n5")
    assert merged.skipped == 0
    assert merged.change == ("remove", "n4") and merged.leaving() == ("n4", "n5")
    assert merged.members["n4"].state == merged.members["n5"].state == "leaving"
    assert merged.change_epoch == merged.epoch != first.change_epoch
    assert merged.ring == first.ring                      # reads still use the old ring
    assert set(merged.pending_ring.members) == {"n1", "n2", "n3"}
    expected = {g for mv in merged.ring.moves(merged.pending_ring, 3) for g in mv.gained}
    assert set(merged.gainers()) == expected and not {"n4", "n5"} & expected
    assert merged.change_view() == ["remove", "n4", "n5"]      # GET /cluster "change"
    assert first.change_view() == ["remove", "n4"] and cluster(5).change_view() is None
    assert [set(r.members) for r in merged.stage_rings()] == [{"n1", "n2", "n3", "n5"},
                                                             {"n1", "n2", "n3"}]


def test_re_issued_removals_of_merged_members_are_refused_and_the_finish_removes_both():
    """Last session's deadlock (sim seeds 9001, 9016, 9023): the removal of the second dead
    member abandoned the first's, which it then waited for; re-issuing alternated for ever."""
    s = remove(cluster(5), "n4")
    s = remove(s, "n5")
    for victim in ("n4", "n5"):          # the operator re-issues: refused, nothing abandoned
        with pytest.raises(InvalidEntry) as e:
            validate(s, {"op": "remove", "id": victim, "merge": True})
        assert e.value.status == 409
        again = remove(s, victim)
        assert (again.change, again.change_epoch, again.leaving()) == \
            (s.change, s.change_epoch, s.leaving())
    assert not {"n4", "n5"} & set(s.gainers())
    done = finish(s)
    assert done.skipped == 0 and done.change is None and done.merged == ()
    assert sorted(done.members) == ["n1", "n2", "n3"]
    assert done.ring == s.pending_ring and done.pending_ring is None


def test_a_finish_naming_the_plan_before_the_merge_is_refused():
    first = remove(cluster(5), "n4")
    merged = remove(first, "n5")
    stale = finish(merged, change_epoch=first.change_epoch)
    assert stale.skipped == merged.skipped + 1
    assert stale.change == merged.change and stale.leaving() == ("n4", "n5")
    assert "n4" in stale.members and "n5" in stale.members
    with pytest.raises(InvalidEntry) as e:
        validate(merged, {"op": "finish_leave", "id": "n4", "change_epoch": first.change_epoch})
    assert e.value.status == 409 and str(first.change_epoch) in e.value.detail


def test_the_finish_releases_the_number_of_every_removed_member():
    s = cluster(5)
    numbers = {m: s.members[m].number for m in ("n4", "n5")}
    done = finish(remove(remove(s, "n4"), "n5"), at_ms=7000)
    assert {n: t for n, t in done.free_numbers.items()} == {
        numbers["n4"]: 7000 + 60_000, numbers["n5"]: 7000 + 60_000}


def test_three_dead_members_are_removed_in_one_change():
    s = remove(cluster(7), "n5")
    for dead in ("n6", "n7"):
        assert dead in s.gainers()
        s = remove(s, dead)
        assert s.skipped == 0
    assert s.leaving() == ("n5", "n6", "n7") and len(s.stage_rings()) == 3
    assert not {"n5", "n6", "n7"} & set(s.gainers())
    done = finish(s)
    assert sorted(done.members) == ["n1", "n2", "n3", "n4"] and done.change is None
    assert set(done.ring.members) == {"n1", "n2", "n3", "n4"}


def test_a_merge_that_would_leave_fewer_than_n_members_is_refused():
    s = remove(cluster(4), "n4")
    assert "n3" in s.gainers()
    with pytest.raises(InvalidEntry) as e:
        validate(s, {"op": "remove", "id": "n3", "merge": True})
    assert e.value.status == 409 and "2 members would be fewer than n=3" in e.value.detail
    assert remove(s, "n3").skipped == s.skipped + 1


def test_an_entry_without_the_flag_keeps_the_older_meaning():
    """Old logs replay to the same state: a ``remove`` of a gainer written by an older node
    abandons the removal in progress, as it did when it was written."""
    first = remove(cluster(5), "n4")
    old = first.apply({"op": "remove", "id": "n5"})
    assert old.change == ("remove", "n5") and old.members["n4"].state == "normal"
    assert old.merged == () and old.leaving() == ("n5",)
    # ... and abandoning a merged removal puts every member of it back to normal
    merged = remove(cluster(6), "n4")
    merged = remove(merged, "n5")
    dead = next(g for g in merged.gainers())
    back = merged.apply({"op": "remove", "id": dead})
    assert back.change == ("remove", dead) and back.merged == ()
    assert back.members["n4"].state == back.members["n5"].state == "normal"


def test_a_graceful_leave_whose_gainer_dies_is_still_abandoned():
    s = cluster(5).apply({"op": "leave", "id": "n4"})
    assert "n5" in s.gainers()
    after = remove(s, "n5")
    assert after.change == ("remove", "n5") and after.merged == ()
    assert after.members["n4"].state == "normal"


def test_a_merged_removal_survives_a_snapshot():
    s = remove(remove(cluster(6), "n4"), "n5")
    back = ClusterState.from_dict(s.to_dict())
    assert back == s
    assert finish(back) == finish(s)
    plain = remove(cluster(5), "n4")
    assert "merged" not in plain.to_dict()       # unchanged for older readers
    assert ClusterState.from_dict(plain.to_dict()).merged == ()


def test_a_replace_merges_like_a_removal():
    s = remove(cluster(5), "n4")
    after = s.apply({"op": "replace", "id": "n5", "merge": True, "at_ms": 1})
    assert after.leaving() == ("n4", "n5") and after.is_removing("n5")
    assert after.change_epoch == after.epoch


# ---- where gainers pull from ---------------------------------------------------------

def test_a_plain_change_pulls_from_the_old_replicas_only():
    s = remove(cluster(5), "n4")
    for g in s.gainers():
        want: dict = {}
        for mv in s.transfers():
            if g in mv.gained:
                for src in mv.old:
                    if src != g:
                        want.setdefault(src, []).append((mv.start, mv.end))
        assert pull_sources(s, g) == want


def _holders_after(state, plans, token, holders, dead):
    """Members of the final replica set holding a write held by ``holders`` once every
    gainer pulled from its live sources (a gainer gets it if one live source holds it);
    ``plans``: gainer -> its ``pull_sources``."""
    final = replicas(state, token).pending
    out = set(h for h in holders if h in final)
    for g in replicas(state, token).gaining:
        sources = {src for src, spans in plans[g].items()
                   if any(a <= token < b for a, b in spans)}
        if (sources - dead) & holders:
            out.add(g)
    return out


@pytest.mark.parametrize("size,n,w,x,y", [(6, 3, 2, "n6", None), (5, 3, 2, "n5", None),
                                         (5, 2, 2, "n2", "n4"), (7, 3, 3, "n7", None)])
def test_every_write_acked_during_a_merged_removal_keeps_w_copies_whichever_way_it_ends(
        size, n, w, x, y):
    """For each write acked at either stage of a merged removal (every ack set that meets
    ``pending_required``): the current set holds W copies (the change is abandoned), and
    after the finish the final set holds W copies, the dead members' copies lost, whenever
    one live member held it; with W >= 2 a write acked during the change always has one.
    (5 members with n=2: the ring is re-dealt when it becomes small, so a stage's gainer
    may not replicate the key at the end: the pull from the stage rings saves it.)"""
    s0 = cluster(size, n=n, r=n + 1 - w if n + 1 - w >= 1 else 1, w=w)
    s1 = remove(s0, x)
    y = y or s1.gainers()[0]
    s2 = remove(s1, y)
    assert s2.leaving() == (x, y)
    dead = {x, y}
    plans = {g: pull_sources(s2, g) for g in s2.gainers()}
    checked = 0
    for partition in range(0, 4096, 17):       # every 17th partition: 241 of 4,096
        token = partition << 20
        current = replicas(s2, token).current
        final = replicas(s2, token).pending
        for stage in (s1, s2):
            targets = [Target(m) for m in replicas(stage, token).current] + \
                      [Target(m) for m in replicas(stage, token).gaining]
            need = pending_required(w, targets, list(current))
            for acks in combinations([t.node for t in targets], need):
                holders = set(acks)
                assert len(holders & set(current)) >= w          # abandoned: still W
                assert holders - dead, (token, acks)             # one live holder
                got = _holders_after(s2, plans, token, holders, dead)
                assert len(got) >= w, (token, stage.change_epoch, acks, final, got)
                checked += 1
    assert checked > 100
