"""The read plan (core.read_plan) and how a read round counts R (core.quorum.ReadRound)."""

from hypothesis import given
from hypothesis import strategies as st

from dynamopy.core.quorum import Outcome, ReadRound, Target, plan_targets
from dynamopy.core.read_plan import plan_read
from dynamopy.core.records import Record

WALK = ["a", "b", "c", "f", "g"]


def up_except(*down):
    return lambda m: m not in down


def test_all_up_reads_the_preference_list_coordinator_first():
    assert plan_read(WALK, 3, up_except(), coordinator="c") == [
        Target("c"), Target("a"), Target("b")]
    assert plan_read(WALK, 3, up_except(), coordinator="x") == [
        Target("a"), Target("b"), Target("c")]


def test_issue_19_item_2_reachable_home_replicas_before_any_fallback():
    # A down; B coordinates. The old plan put F in A's slot ahead of C and asked B and F.
    plan = plan_read(WALK, 3, up_except("a"), coordinator="b")
    assert plan == [Target("b"), Target("c"), Target("f", hint_for="a"), Target("a")]
    assert plan[:2] == [Target("b"), Target("c")]  # the first R=2 asked are home replicas


def test_fallbacks_pair_with_down_home_replicas_as_the_write_plan_does():
    up = up_except("a", "c")
    read = plan_read(WALK, 3, up, coordinator="b")
    write = plan_targets(WALK, 3, up)
    assert {t for t in read if t.hint_for} == {t for t in write if t.hint_for}
    assert read == [Target("b"), Target("f", hint_for="a"), Target("g", hint_for="c"),
                    Target("a"), Target("c")]


def test_a_fallback_coordinator_looks_up_its_own_hints_first():
    plan = plan_read(WALK, 3, up_except("a", "c"), coordinator="g")
    assert plan[:3] == [Target("b"), Target("g", hint_for="c"), Target("f", hint_for="a")]


def test_strict_reads_ask_home_replicas_only_down_ones_last():
    assert plan_read(WALK, 3, up_except("a"), coordinator="c", sloppy=False) == [
        Target("c"), Target("b"), Target("a")]


def test_down_home_replicas_are_tried_when_no_fallback_is_up():
    assert plan_read(["a", "b", "c"], 3, up_except("b"), coordinator="a") == [
        Target("a"), Target("c"), Target("b")]


def test_the_walk_is_not_consumed_past_the_preference_list_when_all_are_up():
    def walk():
        yield from ["a", "b", "c"]
        raise AssertionError("fallbacks looked up although every home replica is up")
    assert len(plan_read(walk(), 3, up_except(), coordinator="a")) == 3


@given(st.sets(st.sampled_from(WALK)), st.sampled_from(WALK), st.booleans())
def test_plan_properties(down, coordinator, sloppy):
    plan = plan_read(WALK, 3, up_except(*down), coordinator=coordinator, sloppy=sloppy)
    nodes = [t.node for t in plan]
    assert len(nodes) == len(set(nodes))
    home_up = [m for m in WALK[:3] if m not in down]
    # every reachable home replica comes before any fallback and any down home replica
    assert nodes[:len(home_up)] == sorted(home_up, key=lambda m: (m != coordinator, WALK.index(m)))
    assert set(WALK[:3]) <= set(nodes)
    for t in plan:
        if t.hint_for is not None:
            assert sloppy and t.hint_for in down and t.node not in down and t.node in WALK[3:]


# ---- counting R -----------------------------------------------------------------------

def test_a_fallbacks_empty_answer_does_not_count_toward_r():
    rnd = ReadRound((Target("b"), Target("f", hint_for="a"), Target("c")), 2)
    assert rnd.reply("b", Record(5, value=b"v1")) is Outcome.PENDING
    assert rnd.reply("f", None) is Outcome.PENDING  # "unknown", not A's record
    assert rnd.counted == 1
    assert rnd.reply("c", Record(9, deleted=True)) is Outcome.SUCCEEDED
    assert rnd.newest().deleted and rnd.stale() == ["b", "f"]


def test_a_fallback_holding_a_hint_fills_its_members_slot_once():
    rnd = ReadRound((Target("b"), Target("f", hint_for="a"), Target("a")), 2)
    rnd.reply("f", Record(7))
    rnd.reply("a", Record(7))  # A itself answers too: still one slot
    assert rnd.counted == 1 and rnd.outcome is Outcome.PENDING
    assert rnd.reply("b", None) is Outcome.SUCCEEDED
    # Three slots exist only when three home members are planned.
    assert ReadRound((Target("b"), Target("f", hint_for="a"), Target("a")), 3).outcome \
        is Outcome.FAILED


def test_a_read_fails_once_open_slots_cannot_reach_r():
    rnd = ReadRound((Target("b"), Target("f", hint_for="a"), Target("a")), 2)
    assert rnd.reply("b", None) is Outcome.PENDING
    assert rnd.reply("f", None) is Outcome.PENDING   # A may still answer itself
    assert rnd.fail("a") is Outcome.FAILED
