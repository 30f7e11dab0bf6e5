"""Placement during ring changes (core/placement.py): who replicates a token now and after
the change in progress, whether a member refuses a request routed at an older epoch, and the
stale-epoch refusal between peers (node/errors.py). States are built with ClusterState.apply,
as the metadata log builds them."""

import bisect
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamopy.core.membership import ClusterState, Settings, bootstrap_entry
from dynamopy.core.placement import (Replicas, StaleEpoch, check_epoch, held_ranges, lost_ranges,
                                     replicas, replicates, subtract_sorted)
from dynamopy.node.errors import STALE_EPOCH, StaleEpochError, stale_epoch_of
from dynamopy.peer import PeerUnavailable, RemoteError
from ring import Ring

SEEDS = [{"id": f"n{i}", "url": f"u{i}", "peer": f"p{i}"} for i in (1, 2, 3)]
BASE = ClusterState().apply(bootstrap_entry(SEEDS, Settings()))  # epoch 1, n1..n3, N=3
FOUR = BASE.apply({"op": "join", "id": "n4", "url": "u4", "peer": "p4"}).apply(
    {"op": "finish_join", "id": "n4", "change_epoch": 2})         # epoch 3, n1..n4
JOINING = FOUR.apply({"op": "join", "id": "n5", "url": "u5", "peer": "p5"})  # epoch 4
# keys' tokens, and tokens on both sides of partition boundaries (of 512 and 4096 partitions)
TOKENS = [BASE.ring.token(f"key-{i}") for i in range(150)] + [0, 2**32 - 1] + [
    k * 2**23 - d for k in range(1, 512, 9) for d in (0, 1)]


def moving(state):
    """(token, a member gaining it, a member losing it) in the change in progress."""
    for move in state.transfers():
        if move.gained and move.lost:
            return move.start, move.gained[0], move.lost[0]
    raise AssertionError("nothing moves")


def test_without_a_change_the_replicas_are_the_preference_list_and_nothing_is_pending():
    for token in TOKENS[:50]:
        placed = replicas(FOUR, token)
        assert placed == Replicas(tuple(FOUR.ring.preference_list_for_token(token, 3)))
        assert placed.pending == () and placed.gaining == () and placed.after == placed.current
        assert len(set(placed.current)) == 3
        for m in FOUR.members:
            assert replicates(FOUR, m, token) is (m in placed.current)


def test_during_a_join_the_gainer_replicates_before_the_switch_and_the_loser_until_it():
    token, gainer, loser = moving(JOINING)
    assert gainer == "n5"
    placed = replicas(JOINING, token)
    assert gainer in placed.pending and gainer not in placed.current
    assert loser in placed.current and loser not in placed.pending
    assert placed.gaining == (gainer,) and placed.after == placed.pending
    assert replicates(JOINING, gainer, token) and replicates(JOINING, loser, token)
    done = JOINING.apply({"op": "finish_join", "id": "n5", "change_epoch": 4})
    assert replicas(done, token) == Replicas(placed.pending)
    assert replicates(done, gainer, token) and not replicates(done, loser, token)


def test_nothing_replicates_before_bootstrap():
    assert not replicates(ClusterState(), "n1", 0)
    check_epoch(ClusterState(), "n1", 0, 0)  # served: there is no ring to be stale against


def test_a_request_routed_at_the_current_epoch_or_later_is_served_by_anyone():
    token = TOKENS[0]
    outsider = next(m for m in FOUR.members if not replicates(FOUR, m, token))
    check_epoch(FOUR, outsider, FOUR.epoch, token)
    check_epoch(FOUR, outsider, FOUR.epoch + 5, token)


def test_an_older_request_is_refused_by_a_member_that_does_not_replicate_the_token():
    token = TOKENS[0]
    outsider = next(m for m in FOUR.members if not replicates(FOUR, m, token))
    owner = replicas(FOUR, token).current[0]
    check_epoch(FOUR, owner, FOUR.epoch - 1, token)
    with pytest.raises(StaleEpoch) as e:
        check_epoch(FOUR, outsider, FOUR.epoch - 1, token)
    assert e.value.epoch == FOUR.epoch and type(e.value.epoch) is int


def test_a_moving_token_routed_before_the_change_began_is_refused_even_by_its_owners():
    token, gainer, loser = moving(JOINING)
    keeper = next(m for m in replicas(JOINING, token).current if m != loser)
    before = JOINING.change_epoch - 1  # the router does not know the join
    for member in (gainer, loser, keeper):
        with pytest.raises(StaleEpoch) as e:
            check_epoch(JOINING, member, before, token)
        assert e.value.epoch == JOINING.epoch
    # a token the join does not move is still served by its owners
    still = next(t for t in TOKENS if not replicas(JOINING, t).gaining)
    check_epoch(JOINING, replicas(JOINING, still).current[0], before, still)


def test_a_router_that_knows_the_change_reaches_gainer_and_loser_alike():
    token, gainer, loser = moving(JOINING)
    later = JOINING.apply({"op": "set_config", "hint_window_s": 60.0})  # epoch 5
    knows = JOINING.change_epoch  # routed at the epoch the join began: it knows it
    check_epoch(later, gainer, knows, token)
    check_epoch(later, loser, knows, token)


def test_held_ranges_are_the_tokens_a_member_replicates():
    token, gainer, loser = moving(JOINING)
    for member in (gainer, loser, "n1"):
        spans = held_ranges(JOINING, member)
        for t in TOKENS + [token]:
            assert _in_spans(spans, t) is replicates(JOINING, member, t)


# ---- the refusal between peers (node/errors.py) ----------------------------------------

def test_a_stale_epoch_refusal_keeps_its_wire_form_and_reads_back_as_an_int():
    e = StaleEpochError(12)
    assert e.epoch == 12 and e.to_wire() == {"code": STALE_EPOCH, "detail": "12"}
    from_peer = RemoteError(**e.to_wire())  # what PeerClient raises for that answer
    assert stale_epoch_of(from_peer) == 12 and stale_epoch_of(e) == 12


@pytest.mark.parametrize("err", [RemoteError(STALE_EPOCH, "soon"), RemoteError(STALE_EPOCH, "-3"),
                                 RemoteError(STALE_EPOCH, ""), RemoteError("not_caught_up", "4"),
                                 PeerUnavailable("down"), ValueError("4")])
def test_anything_else_names_no_epoch(err):
    assert stale_epoch_of(err) is None


# ---- properties over random membership histories ----------------------------------------

IDS = [f"n{i}" for i in range(1, 8)]
# The same cluster on a ring of 512 partitions instead of 4096: placement does not depend on
# the partition count, and ring.add/remove and ranges_of run 8 times faster.
SMALL = replace(BASE, ring=Ring.build([m["id"] for m in SEEDS], partitions=512))


def _choices(state):
    """Entries a log could hold next: mostly ones that apply, some that are refused (a join
    during a change, a seed leaving, a finish naming an older change)."""
    out = [{"op": "set_config", "hint_window_s": float(state.epoch)}]
    out += [{"op": "join", "id": m, "url": f"u-{m}", "peer": f"p-{m}"}
            for m in IDS if m not in state.members][:2]
    if state.change is None:
        others = [m for m in state.members if m not in state.acceptors]
        out += [{"op": op, "id": m} for op in ("leave", "remove") for m in others]
        out.append({"op": "leave", "id": state.acceptors[0]})
    else:
        op, mid = state.change
        finish = "finish_join" if op == "join" else "finish_leave"
        out += [{"op": finish, "id": mid, "change_epoch": state.change_epoch}] * 3
        out += [{"op": finish, "id": mid, "change_epoch": state.change_epoch - 1},
                {"op": "remove", "id": mid}]
    return out


def _in_spans(spans, token):
    i = bisect.bisect_right(spans, (token, float("inf"))) - 1
    return i >= 0 and spans[i][0] <= token < spans[i][1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), steps=st.integers(0, 14),
       picks=st.lists(st.integers(0, len(TOKENS) - 1), min_size=1, max_size=6))
def test_placement_queries_agree_over_any_membership_history(data, steps, picks):
    history = [(None, SMALL)]
    for _ in range(steps):
        state = history[-1][1]
        entry = data.draw(st.sampled_from(_choices(state)))
        history.append((entry, state.apply(entry)))
    for i, (entry, s) in enumerate(history):
        n = s.settings.n
        held = {m: held_ranges(s, m) for m in IDS}
        lost = {m: lost_ranges(history[i - 1][1], s, m) for m in IDS} if i else {}
        for token in [TOKENS[p] for p in picks]:
            placed = replicas(s, token)
            current, pending = placed
            # pending is empty exactly when no change is in progress
            assert (pending == ()) is (s.change is None)
            assert len(current) == len(set(current)) == min(n, len(s.ring.members))
            assert placed.gaining == tuple(m for m in pending if m not in current)
            assert placed.after == (pending or current)
            for m in IDS:
                assert replicates(s, m, token) is (m in current or m in pending)
                assert _in_spans(held[m], token) is replicates(s, m, token)
                if replicates(s, m, token):
                    assert m in s.members
                _check_epoch_rule(s, m, token)
            if i:
                old = history[i - 1][1]
                _check_transition(old, entry, s, token)
                for m in IDS:  # what the entry took away from m: it drops those ranges
                    assert _in_spans(lost[m], token) is (
                        replicates(old, m, token) and not replicates(s, m, token))


def _check_epoch_rule(s, m, token):
    check_epoch(s, m, s.epoch, token)  # routed at this epoch: always served
    current, pending = replicas(s, token)
    moves = bool(pending) and set(pending) != set(current)
    for epoch in {0, s.change_epoch - 1, s.change_epoch, s.epoch - 1}:
        if not 0 <= epoch < s.epoch:
            continue
        must_refuse = not replicates(s, m, token) or (moves and epoch < s.change_epoch)
        try:
            check_epoch(s, m, epoch, token)
        except StaleEpoch as e:
            assert must_refuse and e.epoch == s.epoch
        else:
            assert not must_refuse


def _check_transition(old, entry, new, token):
    before, after = replicas(old, token), replicas(new, token)
    applied = new.skipped == old.skipped
    op = entry["op"]
    if applied and op in ("finish_join", "finish_leave"):
        assert after == Replicas(before.pending)  # the pending placement becomes current
    elif applied and op == "remove" and old.change == ("join", entry["id"]):
        assert after == Replicas(before.current)  # an abandoned join: the ring never switched
    elif applied and old.change is None and op in ("join", "leave", "remove"):
        assert after.current == before.current and after.pending  # a change begins
    else:
        assert after == before  # a no-op, a setting, or a leave turned into a removal


def test_subtract_sorted_keeps_exactly_the_uncut_points():
    import random
    rng = random.Random(7)

    def spans():  # sorted, disjoint, possibly touching, within [0, 40)
        cuts = sorted(rng.sample(range(41), 2 * rng.randint(0, 5)))
        return [(a, b) for a, b in zip(cuts[::2], cuts[1::2])]
    for _ in range(2000):
        a, b = spans(), spans()
        got = subtract_sorted(a, b)
        points = {t for s, e in a for t in range(s, e)} - {t for s, e in b for t in range(s, e)}
        assert {t for s, e in got for t in range(s, e)} == points, (a, b, got)
        assert all(s < e for s, e in got) and got == sorted(got)


def test_a_state_equal_to_the_old_one_or_a_settings_change_loses_nothing():
    for s in (FOUR, JOINING):
        for m in ("n1", "n4", "n5"):
            assert lost_ranges(ClusterState.from_dict(s.to_dict()), s, m) == []
            assert lost_ranges(s, s.apply({"op": "set_config", "hint_window_s": 1.0}), m) == []


def test_a_stale_epoch_says_which_epoch_the_member_is_at():
    e = StaleEpoch(7)
    assert e.epoch == 7 and str(e) == "routed by an older ring: this member is at epoch 7"


def test_merge_spans_sorts_and_joins_overlapping_and_touching_spans():
    from dynamopy.core.placement import merge_spans
    assert merge_spans([(5, 10), (0, 5), (20, 30), (22, 25), (9, 12)]) == [(0, 12), (20, 30)]
    assert merge_spans([(3, 4), (1, 2)]) == [(1, 2), (3, 4)] and merge_spans([]) == []
