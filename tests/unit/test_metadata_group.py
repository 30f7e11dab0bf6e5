"""core/metadata_group.py: group changes in the membership state (they apply exactly when the
Paxos core counts them), the choice of a new group, and the 409/503 rule."""

from dynamopy.core import metadata_group as mg
from dynamopy.core.membership import ClusterState, Settings, bootstrap_entry
from dynamopy.core.paxos.groups import GroupSchedule


def _cluster(k=5, zones=None, size=3, n=3) -> ClusterState:
    seeds = [{"id": f"n{i}", "url": f"u{i}", "peer": f"p{i}",
              **({"zone": zones[i - 1]} if zones else {})} for i in range(1, 4)]
    s = ClusterState().apply(bootstrap_entry(seeds, Settings(n=n, metadata_group_size=size)))
    for i in range(4, k + 1):
        s = s.apply({"op": "join", "id": f"n{i}", "url": f"u{i}", "peer": f"p{i}",
                     **({"zone": zones[i - 1]} if zones else {})})
        s = s.apply({"op": "finish_join", "id": f"n{i}", "change_epoch": s.change_epoch})
    return s


def _set(s, group, frm=None, **kw):
    return s.apply({"op": "set_group", "group": group,
                    "from_group": list(s.acceptors if frm is None else frm), **kw})


def test_a_group_change_applies_once_and_its_duplicate_changes_nothing():
    s = _cluster()
    change = {"op": "set_group", "group": ["n2", "n3", "n4"], "from_group": ["n1", "n2", "n3"],
              "rid": "r1"}
    after = s.apply(change)
    assert after.acceptors == ("n2", "n3", "n4") and after.epoch == s.epoch + 1
    # Lamport's alpha rule: the change decides slots from its own slot + ALPHA on.
    # (The entry sits at slot s.epoch; slots up to it are chosen, so the schedule forgets
    # them.)
    assert GroupSchedule.from_pairs(after.schedule_pairs(), mg.ALPHA).at(
        s.epoch + mg.ALPHA) == ("n2", "n3", "n4")
    sched = GroupSchedule.from_pairs(s.schedule_pairs(), mg.ALPHA)
    assert sched.at(s.epoch) == ("n1", "n2", "n3")
    again = after.apply(change)  # a retry committed twice: the compare-and-set refuses it
    assert again.acceptors == after.acceptors and again.skipped == after.skipped + 1


def test_the_state_and_the_paxos_core_agree_on_every_group_change():
    """Apply decides by (entry, latest group) alone, like the core's ``group_of``: even a
    change naming a non-member (refused before proposing) applies if it commits."""
    s = _cluster()
    entries = [
        {"op": "set_group", "group": ["n1", "n9"], "from_group": ["n1", "n2", "n3"]},
        {"op": "set_group", "group": ["n4"], "from_group": ["n1", "n2", "n3"]},  # stale
        {"op": "set_group", "group": ["n2", "n2"], "from_group": ["n1", "n9"]},  # not distinct
        {"op": "set_group", "group": ["n5", "n1"], "from_group": ["n9", "n1"]},  # any order
    ]
    latest = tuple(s.acceptors)
    for e in entries:
        core = mg.group_of(e, latest)
        s = s.apply(e)
        latest = core or latest
        assert s.acceptors == latest
    assert s.acceptors == ("n1", "n5")
    # A snapshot carries the schedule a node installing it needs.
    again = ClusterState.from_dict(s.to_dict())
    assert mg.schedule_of(s.to_dict()) == [(f, tuple(g)) for f, g in s.schedule_pairs()]
    assert again.schedule_pairs() == s.schedule_pairs()


def test_readmission_clears_retired_and_sets_the_size():
    s = _cluster()
    s = s.apply({"op": "replace", "id": "n3"})
    assert s.retired == ("n3",)
    s = _set(s, ["n1", "n2", "n3"], readmit={"n3": "tok"}, size=3)
    assert s.retired == () and s.settings.metadata_group_size == 3


def test_plan_replaces_a_leaving_member_with_the_lowest_numbered_live_member():
    s = _cluster().apply({"op": "leave", "id": "n1"})
    live = {"n1", "n2", "n3", "n4", "n5"}
    assert mg.plan_group(s, live, set()) == ("n2", "n3", "n4")
    assert mg.plan_group(s, live - {"n4"}, set()) == ("n2", "n3", "n5")


def test_a_leaving_member_stays_in_the_group_until_a_live_replacement_exists():
    """System simulator seed 9233: n2 of the group [n0, n1, n2] was leaving, no other member
    looked live, so the group shrank to [n0, n1]; n1 then died and the log stopped for good
    (no majority of two). Kept, the leaving member still votes until a replacement is live."""
    s = _cluster().apply({"op": "leave", "id": "n1"})
    assert mg.plan_group(s, {"n1", "n2", "n3"}, set()) is None          # n4, n5 not seen up
    assert mg.plan_group(s, {"n1", "n2", "n3", "n5"}, set()) == ("n2", "n3", "n5")
    assert mg.plan_group(s, {"n2", "n3"}, set()) == ("n2",)   # down: dropped; odd size


def test_a_leaver_hands_its_group_seat_over_before_it_finishes():
    """System simulator seed 7: the group [n1, n2, n3]; n1 lost its disk (alive, caught up
    on nothing, no vote) and waits to be replaced; n2 finished its leave still holding its
    seat and was stopped: only n3 voted, so neither the group change nor n1's replacement
    could ever commit. A leaver in the group now finishes only once the group moved off
    it (the metadata leader hands its seat to a live member), or, when nobody can take
    it, only while the rest of the group still has a voting majority."""
    s = _cluster().apply({"op": "leave", "id": "n2"})  # group n1, n2, n3; n4, n5 outside
    votes = {"caught_up": True, "voting": True}
    member = {"caught_up": True, "voting": False}      # a caught-up non-group member
    wiped = {"caught_up": False, "voting": False}      # coming back as a replacement
    seed_7 = {"n1": wiped, "n3": votes, "n4": member, "n5": member}
    problem = mg.leaver_seat_problem(s, "n2", seed_7)
    assert problem is not None and "n4" in problem and "n5" in problem
    # Even with the rest of the group voting, the seat goes first: a finish would leave
    # the group without a spare vote until the leader replaced it.
    assert mg.leaver_seat_problem(s, "n2", {"n1": votes, "n3": votes, "n4": member}) is not None
    moved = _set(s, ["n1", "n3", "n4"])                # the leader handed the seat to n4
    assert mg.leaver_seat_problem(moved, "n2", seed_7) is None
    # Nobody can take the seat (n4 and n5 silent or not caught up): finish only while
    # the others vote as a majority of the group (the leader then shrinks it).
    assert mg.leaver_seat_problem(s, "n2", {"n1": votes, "n3": votes, "n5": wiped}) is None
    problem = mg.leaver_seat_problem(s, "n2", {"n1": wiped, "n3": votes, "n4": wiped})
    assert problem is not None and "fewer than a majority (2)" in problem
    assert mg.leaver_seat_problem(s, "n2", {"n3": votes}) is not None  # n1 silent
    # Only a member can take the seat (an answer from an id the state does not list, e.g.
    # a node whose removal the leaver has learned, does not count).
    assert mg.leaver_seat_problem(s, "n2", {"n1": wiped, "n3": votes, "n9": member}) is not None
    # A leaver outside the group finishes at once, whoever answers.
    out = _cluster().apply({"op": "leave", "id": "n4"})
    assert mg.leaver_seat_problem(out, "n4", {}) is None


def test_a_leaver_counts_the_votes_of_peers_from_before_the_voting_field():
    """Review 11: a peer of the version before the seat hand-over answers ``group_token``
    with {"token", "caught_up"} only. Counting such a peer as not voting kept the leave of
    a group member with nobody to take its seat (every member in the group, e.g. a
    three-node cluster) waiting for as long as the rest of the group ran the older version
    (real processes: n1, n2 at e87eaf7, n3 at main; n3's leave never finished: "only 0
    members vote"). Its ``caught_up`` stands in; an explicit ``voting`` still decides."""
    s = _cluster(k=3, n=2).apply({"op": "leave", "id": "n3"})  # group n1, n2, n3; nobody outside
    old = {"token": None, "caught_up": True}
    assert mg.leaver_seat_problem(s, "n3", {"n1": old, "n2": old}) is None
    behind = {"token": None, "caught_up": False}              # e.g. an old peer being replaced
    assert mg.leaver_seat_problem(s, "n3", {"n1": old, "n2": behind}) is not None
    assert mg.leaver_seat_problem(s, "n3", {"n1": old, "n2": {"caught_up": True,
                                                             "voting": False}}) is not None


def test_plan_waits_for_the_delay_before_replacing_a_down_member():
    s = _cluster()
    live = {"n2", "n3", "n4", "n5"}
    assert mg.plan_group(s, live, set()) is None  # n1 down, not for long yet
    assert mg.plan_group(s, live, {"n1"}) == ("n2", "n3", "n4")


def test_plan_prefers_a_zone_the_group_does_not_cover():
    s = _cluster(zones=["a", "a", "b", "a", "c"]).apply({"op": "leave", "id": "n1"})
    assert mg.plan_group(s, set(s.members), set()) == ("n2", "n3", "n5")


def test_plan_trims_and_grows_to_the_target_size():
    s = _cluster()
    big = _set(s, ["n1", "n2", "n3", "n4", "n5"])
    assert mg.plan_group(big, set(s.members) - {"n2"}, set()) == ("n1", "n3", "n4")
    assert mg.plan_group(s, set(s.members), set(), target=5) == ("n1", "n2", "n3", "n4", "n5")
    assert mg.plan_group(s, set(s.members), set()) is None


def test_plan_trims_to_live_members_first_then_one_per_zone_then_lower_numbers():
    s = _cluster(zones=["a", "a", "a", "b", "c"])
    big = _set(s, ["n1", "n2", "n3", "n4", "n5"])
    everyone = set(s.members)
    assert mg.plan_group(big, everyone, set()) == ("n1", "n4", "n5")
    # a member seen down goes first, whatever its zone or number
    assert mg.plan_group(big, everyone - {"n4"}, set()) == ("n1", "n2", "n5")
    assert mg.plan_group(big, everyone - {"n1"}, set()) == ("n2", "n4", "n5")
    # without zones: the lowest member numbers (the order they joined in the log)
    s = _cluster()
    big = _set(s, ["n1", "n2", "n3", "n4", "n5"])
    assert mg.plan_group(big, set(s.members), set()) == ("n1", "n2", "n3")
    assert mg.plan_group(big, set(s.members), set(), target=1) == ("n1",)


def test_plan_readmits_a_retired_member_in_place_when_nobody_else_can_take_it():
    s = _cluster(k=3, n=2).apply({"op": "replace", "id": "n3"})
    live = {"n1", "n2", "n3"}
    assert mg.plan_group(s, live, set()) == ("n1",)  # n3 not back yet: out; odd size
    s = s.apply({"op": "finish_leave", "id": "n3", "change_epoch": s.change_epoch})
    s = s.apply({"op": "join", "id": "n3", "url": "u3", "peer": "p3"})
    s = s.apply({"op": "finish_join", "id": "n3", "change_epoch": s.change_epoch})
    assert mg.plan_group(s, live, set()) == ("n1", "n2", "n3")  # back: re-admitted


def test_plan_chooses_odd_sized_groups_only():
    """A group of 2 stops if either member fails, where a group of 1 stops only if its one
    member does; 4 tolerates one failure as 3 does. So the keeper never builds an even group:
    a cluster grown from one seed keeps a group of 1 until a third member is up, a target of
    5 with four members gives 3, and a group of 3 that lost a member with no replacement
    becomes a group of 1 (of a current member), not 2."""
    one = ClusterState().apply(bootstrap_entry([{"id": "n1", "url": "u1", "peer": "p1"}],
                                               Settings(n=1, r=1, w=1)))
    for i in (2, 3):
        one = one.apply({"op": "join", "id": f"n{i}", "url": f"u{i}", "peer": f"p{i}"})
        one = one.apply({"op": "finish_join", "id": f"n{i}", "change_epoch": one.change_epoch})
        if i == 2:
            assert mg.plan_group(one, {"n1", "n2"}, set()) is None      # not [n1, n2]
    assert mg.plan_group(one, {"n1", "n2", "n3"}, set()) == ("n1", "n2", "n3")
    assert mg.plan_group(one, {"n1", "n2"}, set()) is None              # n3 not seen up
    s4 = _cluster(k=4)
    assert mg.plan_group(s4, set(s4.members), set(), target=5) is None  # 4 live: stays 3
    assert mg.plan_group(_cluster(k=5), {"n1", "n2", "n3", "n4"}, set(), target=5) is None
    assert mg.plan_group(_cluster(k=5), {f"n{i}" for i in range(1, 6)}, set(),
                         target=5) == ("n1", "n2", "n3", "n4", "n5")
    # n3 removed, nobody to take its place: a group of one current member, not [n1, n2].
    s = _cluster(k=3, n=2)
    s = s.apply({"op": "remove", "id": "n3"})
    s = s.apply({"op": "finish_leave", "id": "n3", "change_epoch": s.change_epoch})
    assert mg.plan_group(s, {"n1", "n2"}, set()) == ("n1",)
    assert mg.plan_group(s, {"n2"}, set()) == ("n2",)   # the live one is kept
    # a group of 2 from an older version is brought to 1, keeping the live member
    two = _set(_cluster(k=3), ["n1", "n2"])
    assert mg.plan_group(two, {"n1", "n2", "n3"}, set()) == ("n1", "n2", "n3")
    assert mg.plan_group(two, {"n2"}, {"n1"}) == ("n2",)


def test_plan_never_returns_an_even_group_whatever_the_state():
    """Random current groups (even ones too, as an older version built), liveness views,
    delays, targets, with a member leaving or retired: the planned group is odd-sized."""
    import random
    rng = random.Random(14)
    states = []
    for k in (3, 5):
        s = _cluster(k=k)
        states += [s, s.apply({"op": "leave", "id": "n1"}), s.apply({"op": "replace", "id": "n2"})]
    for _ in range(300):
        s = rng.choice(states)
        ids = sorted(s.members)
        if rng.random() < 0.5:
            s = _set(s, sorted(rng.sample(ids, rng.randint(1, min(4, len(ids))))))
        live = {m for m in ids if rng.random() < 0.8}
        down = {m for m in ids if m not in live and rng.random() < 0.5}
        new = mg.plan_group(s, live, down, target=rng.choice((None, 1, 3, 5)))
        assert new is None or len(new) % 2 == 1, (new, s.acceptors, live, down)


def test_plan_never_moves_to_a_group_without_a_live_majority():
    s = _cluster(k=3)
    assert mg.plan_group(_set(s, ["n1"]), {"n1"}, set()) is None  # no one else is live


def test_change_rule_503_without_a_live_majority_and_409_when_a_leave_would_lose_it():
    s = _cluster(k=3, n=2)
    assert mg.change_problem(s, {"n1"}, leaving="n2")[:2] == (503, "no_majority")
    problem = mg.change_problem(s, {"n1", "n2"}, leaving="n1")
    assert problem[:2] == (409, "conflict") and "metadata group" in problem[2]
    assert mg.change_problem(s, {"n1", "n2", "n3"}, leaving="n1") is None
    five = _cluster()  # a live spare can take the leaver's place: allowed
    assert mg.change_problem(five, {"n1", "n2", "n4"}, leaving="n1") is None
    assert mg.change_problem(s, {"n1", "n2"}, leaving="n3") is None  # removing a dead one
    assert mg.change_problem(five, {"n1", "n2", "n3"}, new_group=["n3", "n4", "n5"])[:2] == (
        409, "conflict")


def test_group_settings_flags_env_defaults_and_bounds():
    import argparse

    import pytest

    from dynamopy import config
    from dynamopy.node.bootstrap import effective_seeds

    def resolve(argv, env=None):
        p = argparse.ArgumentParser()
        config.add_arguments(p)
        return config.resolve(p.parse_args(argv), env or {})

    c = resolve([])
    assert (c.metadata_group_size, c.metadata_group_replace_after_s, c.zone) == (3, 300.0, "")
    c = resolve(["--metadata-group-size", "5", "--zone", "rack-a"],
                {"DYNAMOPY_METADATA_GROUP_SIZE": "1",
                 "DYNAMOPY_METADATA_GROUP_REPLACE_AFTER_S": "30"})
    assert (c.metadata_group_size, c.metadata_group_replace_after_s, c.zone) == (5, 30.0, "rack-a")
    with pytest.raises(ValueError, match="metadata-group-size must be 1, 3 or 5"):
        resolve(["--metadata-group-size", "4"])
    with pytest.raises(ValueError, match="metadata-group-replace-after-s"):
        resolve(["--metadata-group-replace-after-s", "0"])
    # Found in review: `--zone "rack 1"` started, its join was refused (400: the join route
    # takes only these ids and zones) and the node waited unready for ever; now it does not start.
    for argv in (["--zone", "rack 1"], ["--node-id", "node 1"], ["--zone", "_a"]):
        with pytest.raises(ValueError, match="want 1-63 letters"):
            resolve(argv)
    assert resolve(["--zone", "eu-west-1a", "--node-id", "dynamopy-0.peers"]).zone == "eu-west-1a"

    class _Node:  # the bootstrap entry takes the target size from the bootstrapping seed
        config = resolve(["--seeds", "http://a:1,http://b:2,http://c:3",
                          "--metadata-group-size", "1"])

    seeds, settings = effective_seeds(_Node())
    state = ClusterState().apply(bootstrap_entry(
        [{"id": f"n{i}", "url": u, "peer": f"p{i}"} for i, u in enumerate(seeds)], settings))
    assert state.settings.metadata_group_size == 1 and len(state.acceptors) == 3
    assert mg.plan_group(state, set(state.members), set()) == ("n0",)  # trimmed to one


def test_an_even_plan_drops_the_member_the_group_can_best_spare():
    """With too few members for an odd target the plan drops one: a leaving member before a
    normal one, a re-admitted retired member before the others, and among equals the highest
    member number (not the last in id order: "n10" sorts before "n9")."""
    s = _set(_cluster(k=5), ["n1", "n2", "n3", "n4", "n5"])
    leaving = s.apply({"op": "leave", "id": "n1"})
    assert leaving.members["n1"].state == "leaving"
    assert mg.plan_group(leaving, set(s.members), {"n5"}, target=5) == ("n2", "n3", "n4")
    # n3 lost its disk (retired) and came back, normal and live: with n5 down too long the
    # four that are left give three, without the retired n3
    back = s.apply({"op": "replace", "id": "n3"})
    back = back.apply({"op": "finish_leave", "id": "n3", "change_epoch": back.change_epoch})
    back = back.apply({"op": "join", "id": "n3", "url": "u3", "peer": "p3"})
    back = back.apply({"op": "finish_join", "id": "n3", "change_epoch": back.change_epoch})
    assert back.retired == ("n3",) and back.members["n3"].state == "normal"
    assert mg.plan_group(back, set(back.members), {"n5"}, target=5) == ("n1", "n2", "n4")
    big = _cluster(k=10)
    big = _set(big, ["n10", "n2", "n3", "n4", "n9"])
    live = {"n10", "n3", "n4", "n9"}
    assert mg.plan_group(big, live, {"n2"}, target=5) == ("n3", "n4", "n9")
