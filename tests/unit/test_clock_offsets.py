"""Clock offset estimation and the skew verdict (pure)."""

from dynamopy.core.clock_offsets import ClockFence, PeerOffsets


def test_ntp_style_offset_from_one_exchange():
    o = PeerOffsets()
    # sent at 1000, peer read 1250 (its clock), received at 1100: offset +200, rtt 100
    o.sample("p", 1000, 1250, 1100, now_s=1.0)
    e = o.estimate("p", now_s=1.0)
    assert (e.offset_ms, e.rtt_ms) == (200, 100)


def test_the_sample_with_the_smallest_round_trip_wins():
    o = PeerOffsets()
    o.sample("p", 0, 900, 1000, now_s=1.0)      # queued reply: offset 400, rtt 1000
    o.sample("p", 2000, 2210, 2020, now_s=2.0)  # quick: offset 200, rtt 20
    assert o.estimate("p", now_s=2.0).offset_ms == 200


def test_stale_samples_are_ignored():
    o = PeerOffsets(max_age_s=10)
    o.sample("p", 0, 5000, 10, now_s=0.0)
    assert o.estimate("p", now_s=11.0) is None


HOUR = 3_600_000
MAX = 500


class Node:
    """One node's fence fed by hand: ``wall_offset_ms`` is how far its wall clock is from
    true time (a jump changes it), ``t`` the monotonic (= true) time in seconds."""

    def __init__(self, name: str, wall_offset_ms: int = 0):
        self.name, self.wall_offset_ms, self.fence, self.t = name, wall_offset_ms, ClockFence(), 0.0

    def wall(self) -> int:
        return 1_000_000 + int(self.t * 1000) + self.wall_offset_ms

    def ping(self, peer: "Node") -> None:
        """An exchange with 10 ms of round trip; the reply carries the peer's trust."""
        peer.t = self.t
        sent = self.wall()
        self.fence.offsets.sample(peer.name, sent, peer.wall() + 5, sent + 10, self.t + 0.010,
                                  trusted=peer.fence.trusted)  # received 10 ms after sent

    def round(self, members: list["Node"], reachable: list["Node"]):
        for p in reachable:
            self.ping(p)
        others = [m.name for m in members if m is not self]
        return self.fence.judge(others, len(reachable), self.t, self.wall(), MAX)


def rounds(members, reachable_of, seconds=2.0, step=0.25):
    """Every node of ``reachable_of`` judges once per ``step`` of time."""
    verdicts = {}
    for _ in range(int(seconds / step)):
        for m in members:
            m.t += step
        for m, reach in reachable_of.items():
            verdicts[m.name] = m.round(members, reach)
    return verdicts


def test_a_node_far_from_a_majority_of_its_peers_is_skewed():
    a, b, c, d, e = (Node(x) for x in "abcde")
    a.wall_offset_ms = HOUR
    all5 = [a, b, c, d, e]
    v = rounds(all5, {m: [p for p in all5 if p is not m] for m in all5})
    assert v["a"].skewed and v["a"].reason == "majority" and v["a"].far == 4
    assert v["a"].offset_ms > HOUR - 100
    assert not any(v[x].skewed for x in "bcde") and all(v[x].checked for x in "bcde")


def test_far_from_both_measured_peers_fences_with_two_of_five_down():
    """The old rule (a majority of *all* peers) let this node stamp: 2 far of 4 peers."""
    a, b, c, d, e = (Node(x) for x in "abcde")
    a.wall_offset_ms = HOUR
    all5 = [a, b, c, d, e]
    v = rounds(all5, {a: [c, d], c: [a, d], d: [a, c]})
    assert v["a"].skewed and v["a"].reason == "majority"
    assert not v["c"].skewed and not v["d"].skewed


def test_one_far_peer_does_not_fence_this_node():
    a, b, c, d = (Node(x) for x in "abcd")
    a.wall_offset_ms = HOUR
    all4 = [a, b, c, d]
    v = rounds(all4, {m: [p for p in all4 if p is not m] for m in all4})
    assert not v["b"].skewed and v["b"].far == 1 and v["b"].checked


def _three_up_then_b_down_then_jump(jumper_offset_ms: int):
    a, b, c = Node("a"), Node("b"), Node("c")
    nodes = [a, b, c]
    rounds(nodes, {m: [p for p in nodes if p is not m] for m in nodes})   # all confirmed
    rounds(nodes, {a: [c], c: [a]}, seconds=12)    # b goes down (its samples go stale)
    a.wall_offset_ms = jumper_offset_ms                                  # a's clock jumps
    return nodes, rounds(nodes, {a: [c], c: [a]})


def test_a_jump_fences_the_node_that_jumped_while_one_of_its_two_peers_is_down():
    """The gap from last session: 1 far of 2 peers was no majority, so a stamped on."""
    for jump in (HOUR, -HOUR, 2 * MAX):
        (a, b, c), v = _three_up_then_b_down_then_jump(jump)
        assert v["a"].skewed and v["a"].reason == "stepped", jump
        assert abs(v["a"].offset_ms - jump) < 50
        # c's only reachable peer is the one that jumped: c keeps its clock and stamps.
        assert not v["c"].skewed and v["c"].checked and v["c"].far == 1, jump


def test_a_jump_within_the_bound_fences_nobody():
    (a, b, c), v = _three_up_then_b_down_then_jump(MAX - 100)
    assert not v["a"].skewed and not v["c"].skewed


def test_the_jumped_node_is_back_once_its_clock_is():
    (a, b, c), _ = _three_up_then_b_down_then_jump(HOUR)
    a.wall_offset_ms = 0
    v = rounds([a, b, c], {a: [c], c: [a]})
    assert not v["a"].skewed and v["a"].checked


def test_a_lone_node_whose_clock_jumps_fences_itself():
    a, b, c = Node("a"), Node("b"), Node("c")
    nodes = [a, b, c]
    rounds(nodes, {m: [p for p in nodes if p is not m] for m in nodes})
    rounds(nodes, {a: []}, seconds=12)
    a.wall_offset_ms = -HOUR
    assert rounds(nodes, {a: []})["a"].reason == "stepped"


def test_a_node_restarted_with_a_wrong_clock_defers_to_a_peer_that_trusts_its_own():
    a, b, c = Node("a"), Node("b"), Node("c")
    nodes = [a, b, c]
    rounds(nodes, {m: [p for p in nodes if p is not m] for m in nodes})
    a.fence, a.wall_offset_ms = ClockFence(), HOUR       # a restarts an hour ahead; b is down
    v = rounds(nodes, {a: [c], c: [a]})
    assert v["a"].skewed and v["a"].reason == "trusted_peer"
    assert not v["c"].skewed and v["c"].checked


def test_two_fresh_nodes_that_disagree_neither_stamps():
    """Nobody can tell which clock is off: neither is skewed nor checked (503 not_ready)."""
    a, b, c = Node("a"), Node("b", HOUR), Node("c")
    v = rounds([a, b, c], {a: [b], b: [a]})
    assert not v["a"].checked and not v["b"].checked


def test_in_a_two_node_cluster_only_the_node_that_jumped_is_fenced():
    a, b = Node("a"), Node("b")
    rounds([a, b], {a: [b], b: [a]})
    b.wall_offset_ms = HOUR
    v = rounds([a, b], {a: [b], b: [a]})
    assert v["b"].skewed and not v["a"].skewed and v["a"].checked


def test_uncertainty_never_fences():
    f = ClockFence()
    # offset 600 but rtt 400: the true offset may be 400, within the bound
    f.offsets.sample("a", 0, 800, 400, now_s=0.0)
    f.offsets.sample("b", 0, 800, 400, now_s=0.0)
    v = f.judge(["a", "b"], 2, 0.0, 400, MAX)
    assert not v.skewed and v.checked


def test_a_node_alone_from_the_start_trusts_its_clock_until_it_steps():
    f = ClockFence()
    assert f.judge(["a", "b"], 0, 0.0, 1_000, MAX).checked
    assert f.judge(["a", "b"], 0, 1.0, 2_000 + HOUR, MAX).reason == "stepped"


def test_zero_turns_the_check_off():
    f = ClockFence()
    f.offsets.sample("a", 0, HOUR, 10, now_s=0.0)
    v = f.judge(["a"], 1, 0.0, 10, 0)
    assert not v.skewed and v.checked


def test_a_peer_that_says_nothing_of_its_trust_is_not_trusted():
    o = PeerOffsets()
    o.sample("a", 0, 5, 10, now_s=0.0)
    assert not o.trusts_itself("a", 0.0)
    o.sample("a", 0, 5, 10, now_s=0.0, trusted=True)
    assert o.trusts_itself("a", 0.0) and not o.trusts_itself("a", 11.0)


def test_a_step_of_this_nodes_own_clock_moves_every_sample_it_holds():
    o = PeerOffsets()
    o.sample("p", 1_000, 1_005, 1_010, now_s=0.0)        # wall - mono = 1010 at the sample
    assert o.estimate("p", 1.0, wall_ms=2_010).offset_ms == 0      # no step: as measured
    assert o.estimate("p", 1.0, wall_ms=2_010 + HOUR).offset_ms == -HOUR   # we jumped


def test_a_zero_or_negative_round_trip_counts_as_zero():
    o = PeerOffsets()
    o.sample("p", 1000, 1500, 1000, now_s=1.0)   # within one millisecond
    o.sample("q", 1000, 1500, 990, now_s=1.0)    # our wall clock stepped back meanwhile
    assert (o.estimate("p", 1.0).rtt_ms, o.estimate("p", 1.0).offset_ms) == (0, 500)
    assert o.estimate("q", 1.0).rtt_ms == 0


def test_the_quickest_of_the_last_window_samples_wins_whatever_their_order():
    o = PeerOffsets(window=3)
    o.sample("p", 2000, 2210, 2020, now_s=1.0)  # quick: offset 200, rtt 20
    o.sample("p", 0, 900, 1000, now_s=2.0)      # queued reply: offset 400, rtt 1000
    o.sample("x", 0, 0, 10, now_s=2.0)          # another peer's samples are its own
    assert o.estimate("p", now_s=2.0).offset_ms == 200
    o.sample("p", 0, 900, 900, now_s=3.0)       # offset 450, rtt 900
    o.sample("p", 0, 960, 950, now_s=4.0)       # the quick one is now 4 samples back
    assert o.estimate("p", now_s=4.0).offset_ms == 450


def test_a_sample_is_fresh_for_max_age_s_and_not_a_moment_longer():
    o = PeerOffsets(max_age_s=10)
    o.sample("p", 0, 500, 10, now_s=5.0)
    assert o.estimate("p", now_s=15.0) is not None
    assert o.estimate("p", now_s=15.01) is None


def test_forget_keeps_only_the_members_named():
    o = PeerOffsets()
    for p in ("a", "b"):
        o.sample(p, 0, 5, 10, now_s=0.0)
    o.forget(iter(["a", "c"]))
    assert o.estimate("a", 0.0) is not None and o.estimate("b", 0.0) is None


# ---- boundaries of the rules (mutation testing, issue 18) -------------------------------

def test_a_step_correction_leaves_an_unstepped_clock_as_measured_at_any_time():
    o = PeerOffsets()
    o.sample("p", 6_000, 6_005, 6_010, now_s=5.0)         # wall - mono = 1010, as before
    assert o.estimate("p", 6.0, wall_ms=7_010).offset_ms == 0


def test_a_peers_word_on_its_clock_lasts_max_age_s_from_when_it_was_said():
    o = PeerOffsets(max_age_s=10)
    o.sample("a", 0, 5, 10, now_s=5.0, trusted=True)
    assert o.trusts_itself("a", 14.0) and o.trusts_itself("a", 15.0)
    assert not o.trusts_itself("a", 15.01)


def test_forget_also_forgets_the_peers_word_on_its_clock():
    o = PeerOffsets()
    o.sample("b", 0, 5, 10, now_s=0.0, trusted=True)
    o.forget(["a"])
    assert not o.trusts_itself("b", 0.0)


def test_a_peer_is_far_exactly_when_its_offset_less_half_the_round_trip_exceeds_the_bound():
    # offset, rtt -> far: |offset| - rtt/2 > MAX
    for offset, rtt, far in ((700, 200, True), (600, 200, False), (580, 200, False),
                             (601, 0, True), (-700, 200, True)):
        f = ClockFence()
        f.offsets.sample("p", 0, offset + rtt // 2, rtt, now_s=0.0)
        assert f.judge(["p"], 1, 0.0, rtt, MAX).far == (1 if far else 0), (offset, rtt)


def test_only_a_zero_bound_turns_the_fence_off():
    f = ClockFence()
    f.offsets.sample("a", 0, HOUR, 10, now_s=0.0)
    f.offsets.sample("b", 0, HOUR, 10, now_s=0.0)
    v = f.judge(["a", "b"], 2, 0.0, 10, 1)
    assert v.skewed and v.reason == "majority"


def test_a_node_with_no_peer_measured_reports_a_zero_offset():
    assert ClockFence().judge(["a", "b"], 0, 0.0, 1_000, MAX).offset_ms == 0


def test_a_node_that_never_steps_is_not_fenced_however_long_it_is_alone():
    a, b, c = Node("a"), Node("b"), Node("c")
    nodes = [a, b, c]
    rounds(nodes, {m: [p for p in nodes if p is not m] for m in nodes})
    v = rounds(nodes, {a: []}, seconds=3600, step=60)
    assert not v["a"].skewed and v["a"].checked


def test_a_restarted_node_near_one_of_its_two_peers_is_confirmed_and_stamps():
    """3 members, b down: a restarts (no anchor) and c is near it, a majority with itself."""
    a, b, c = Node("a"), Node("b"), Node("c")
    nodes = [a, b, c]
    rounds(nodes, {m: [p for p in nodes if p is not m] for m in nodes})
    a.fence = ClockFence()
    v = rounds(nodes, {a: [c], c: [a]})
    assert not v["a"].skewed and v["a"].checked


def test_the_anchor_keeps_this_nodes_offset_from_its_peers_when_it_was_confirmed():
    """a runs 400 ms ahead (within the bound, confirmed), then alone steps 200 ms more: 600
    ms ahead of its peers is beyond the bound, though the step alone is not."""
    a, b, c = Node("a", 400), Node("b"), Node("c")
    nodes = [a, b, c]
    rounds(nodes, {m: [p for p in nodes if p is not m] for m in nodes})
    rounds(nodes, {a: []}, seconds=12)
    a.wall_offset_ms += 200
    v = rounds(nodes, {a: []})["a"]
    assert v.skewed and v.reason == "stepped" and abs(v.offset_ms - 600) < 10


def _lone_step(jump_ms: int, peers_first: bool):
    """A node confirmed by its peers over 10 ms round trips (uncertainty 5 ms), or alone from
    the start (no uncertainty), then alone, steps by ``jump_ms``."""
    a, b, c = Node("a"), Node("b"), Node("c")
    nodes = [a, b, c]
    if peers_first:
        rounds(nodes, {m: [p for p in nodes if p is not m] for m in nodes})
    rounds(nodes, {a: []}, seconds=12)
    a.wall_offset_ms += jump_ms
    return rounds(nodes, {a: []})["a"]


def test_a_lone_node_is_fenced_once_its_step_certainly_exceeds_the_bound():
    for jump, fenced in ((504, False), (505, False), (506, True), (510, True), (-510, True)):
        v = _lone_step(jump, peers_first=True)
        assert v.skewed == fenced, jump
        if fenced:
            assert v.reason == "stepped" and v.offset_ms == jump, jump
    for jump, fenced in ((500, False), (501, True)):   # anchored alone: no uncertainty
        assert _lone_step(jump, peers_first=False).skewed == fenced, jump


def test_a_one_member_cluster_that_grew_is_fenced_once_it_steps_beyond_the_bound():
    """Alone in its cluster it is confirmed every round (a majority of one); once members
    joined and while none of them is measured yet, its anchor catches a step."""
    for jump, fenced in ((500, False), (501, True)):
        f = ClockFence()
        assert f.judge([], 0, 0.0, 1_000, MAX).checked
        v = f.judge(["b", "c"], 0, 1.0, 2_000 + jump, MAX)
        assert v.skewed == fenced, jump
        if fenced:
            assert v.reason == "stepped" and v.offset_ms == jump


class _SteppingClock:
    """A node's clocks: the wall clock may step (an NTP step, a host resumed), the monotonic
    clock never does."""

    def __init__(self, wall_ms: int, mono_s: float = 50.0):
        self.wall, self.mono = wall_ms, mono_s

    def wall_ms(self) -> int:
        return self.wall

    def monotonic(self) -> float:
        return self.mono


def _ping_across_a_step(off_before_ms: int, off_after_ms: int, rtt_ms: int = 10):
    """One ``FailureDetector._ping`` of a peer whose clock is right, by a node whose wall
    clock is ``off_before_ms`` off true time when the ping leaves and ``off_after_ms`` off
    when the reply arrives (it stepped in between); the node's estimate of the peer's
    offset (the peer's clock minus its own, so minus ``off_after_ms`` if right), read just
    after."""
    import asyncio
    from types import SimpleNamespace

    from dynamopy.node.detector import FailureDetector

    true_ms = 1_000_000
    clock = _SteppingClock(true_ms + off_before_ms)

    async def call_peer(member, method, payload, timeout_s=None):
        peer_ms = true_ms + rtt_ms // 2                 # the peer's (right) clock, mid-flight
        clock.wall = true_ms + rtt_ms + off_after_ms    # ours stepped meanwhile
        clock.mono += rtt_ms / 1000
        return {"epoch": 0, "wall_ms": peer_ms, "clock_trusted": True}

    d = FailureDetector(me="n1", state=lambda: SimpleNamespace(epoch=1), clock=clock, metrics=None,
                        call_peer=call_peer, note_epoch=lambda e, m: None,
                        max_clock_offset_ms=MAX, on_alive=lambda m: None)
    asyncio.run(d._ping("p"))
    e = d.offsets.estimate("p", clock.monotonic(), clock.wall_ms())
    return round(e.offset_ms), round(e.rtt_ms)


def test_a_step_of_our_own_clock_during_a_ping_gives_the_offset_after_the_step():
    """Seed 392 of the README's purge sweep (session 13): n2, its clock 4357 ms ahead and
    paused, got ping replies after its clock stepped back. Timed on the wall clock, the
    round trip came out negative (counted as 0, so the sample was the "best" for its 10 s
    of freshness) and the midpoint sat half the step away: n2, its clock right again,
    stayed fenced (far from 3 of 4 peers at -2130 ms) and refused writes for 4 s after
    healing. The round trip is timed on the monotonic clock and the midpoint taken back
    from the reply's arrival, on the clock the sample's correction is anchored to."""
    assert _ping_across_a_step(4_357, 0) == (0, 10)      # right again: near
    # A step back to 900 ms behind read as 450 ms off with a zero round trip would vouch
    # for a clock beyond the 500 ms bound.
    assert _ping_across_a_step(0, -900) == (900, 10)
    assert _ping_across_a_step(0, 2_000) == (-2_000, 10)
    assert _ping_across_a_step(300, 300) == (-300, 10)   # no step: as before


def test_a_step_since_the_last_round_is_seen_before_the_next_round():
    """A verdict is up to a round old; ``stepped`` reads rule 3 at this moment, so work that
    trusts the clock far (the tombstone purge) does not act on a step the next round would
    fence. It agrees with the next round's verdict, and says nothing without an anchor."""
    assert not ClockFence().stepped(0.0, 1_000, MAX)            # no anchor yet
    a, b, c = Node("a"), Node("b"), Node("c")
    nodes = [a, b, c]
    v = rounds(nodes, {m: [p for p in nodes if p is not m] for m in nodes})
    assert v["a"].checked
    for jump, fenced in ((MAX - 100, False), (11 * 24 * HOUR, True), (-HOUR, True)):
        a.wall_offset_ms = jump
        assert a.fence.stepped(a.t, a.wall(), MAX) == fenced, jump
        assert not a.fence.last.skewed                           # the last round's verdict
        assert not a.fence.stepped(a.t, a.wall(), 0)             # a zero bound: the fence is off
        a.wall_offset_ms = 0


def test_a_node_a_verdict_just_confirmed_has_not_stepped():
    """Rule 3 read at the moment of the verdict agrees with it. The anchor keeps the median
    offset of the near peers but the smallest of their uncertainties: a node 420 ms (+-1)
    from one peer and 600 ms (+-150) from the other, near both, was confirmed (and ready)
    while ``stepped`` read 510 - 1 > 500 and every write it coordinated was refused 503
    ``clock_skew`` "its wall clock stepped" with no step at all, round after round. Found
    in review (session 15)."""
    base = 1_000_000
    f = ClockFence()
    # a: offset -600, round trip 300 ms; b: offset -420, round trip 2 ms (no step between)
    f.offsets.sample("a", base, base + 150 - 600, base + 300, now_s=0.3)
    f.offsets.sample("b", base + 1000, base + 1001 - 420, base + 1002, now_s=1.002)
    for _ in range(3):
        v = f.judge(["a", "b"], 2, 1.002, base + 1002, MAX)
        assert v.checked and not v.skewed and v.far == 0
        assert not f.stepped(1.002, base + 1002, MAX)
    # The wall clock read a millisecond on (whole milliseconds) is no step; any step that
    # moves it further from its peers than it was vouched for is, at once.
    assert not f.stepped(1.002, base + 1002 + 1, MAX)
    assert f.stepped(1.002, base + 1002 + 2, MAX)
    assert f.stepped(1.002, base + 1002 + 600, MAX)
