"""Clock offset estimation and the skew verdict (pure)."""

from dynamopy.core.clock_offsets import PeerOffsets


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


def test_a_node_far_from_a_majority_of_its_peers_is_skewed():
    o = PeerOffsets()
    for p in ("a", "b", "c", "d"):
        o.sample(p, 0, -3_600_000, 10, now_s=0.0)   # every peer an hour behind us
    v = o.verdict(["a", "b", "c", "d"], 0.0, 500)
    assert v.skewed and v.far == 4 and v.offset_ms > 3_500_000


def test_one_far_peer_does_not_fence_this_node():
    o = PeerOffsets()
    o.sample("a", 0, 3_600_000, 10, now_s=0.0)
    for p in ("b", "c", "d"):
        o.sample(p, 0, 5, 10, now_s=0.0)
    v = o.verdict(["a", "b", "c", "d"], 0.0, 500)
    assert not v.skewed and v.far == 1


def test_uncertainty_never_fences_and_unmeasured_peers_count_as_not_far():
    o = PeerOffsets()
    # offset 600 but rtt 400: the true offset may be 400, within the bound
    o.sample("a", 0, 800, 400, now_s=0.0)
    o.sample("b", 0, 800, 400, now_s=0.0)
    assert not o.verdict(["a", "b"], 0.0, 500).skewed
    o.sample("c", 0, 5000, 10, now_s=0.0)
    # 1 far of 3 peers (two unmeasured): not a majority
    assert not o.verdict(["c", "x", "y"], 0.0, 500).skewed


def test_zero_turns_the_check_off():
    o = PeerOffsets()
    o.sample("a", 0, 3_600_000, 10, now_s=0.0)
    assert not o.verdict(["a"], 0.0, 0).skewed


def test_in_a_two_node_cluster_a_skew_fences_both():
    a, b = PeerOffsets(), PeerOffsets()
    a.sample("b", 0, 3_600_000, 10, now_s=0.0)
    b.sample("a", 0, -3_600_000, 10, now_s=0.0)
    assert a.verdict(["b"], 0.0, 500).skewed and b.verdict(["a"], 0.0, 500).skewed


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


def test_far_means_certainly_beyond_the_bound_after_half_the_round_trip():
    o = PeerOffsets()
    o.sample("at", 0, 700, 200, now_s=0.0)      # offset 600, rtt 200: 500, not beyond
    o.sample("beyond", 0, 701, 200, now_s=0.0)  # offset 601: 501
    assert not o.verdict(["at"], 0.0, 500).skewed
    v = o.verdict(["beyond"], 0.0, 500)
    assert v.skewed and (v.far, v.measured, v.peers) == (1, 1, 1)
    assert o.verdict(["beyond"], 0.0, 1).skewed  # any positive bound is checked


def test_exactly_half_of_the_peers_far_is_not_a_majority():
    o = PeerOffsets()
    for p in ("a", "b"):
        o.sample(p, 0, 3_600_000, 10, now_s=0.0)
    for p in ("c", "d"):
        o.sample(p, 0, 5, 10, now_s=0.0)
    v = o.verdict(["a", "b", "c", "d"], 0.0, 500)
    assert not v.skewed and (v.far, v.measured, v.peers) == (2, 4, 4)
    assert not o.verdict(["a", "c"], 0.0, 500).skewed
    assert o.verdict(["a", "b", "c"], 0.0, 500).skewed


def test_with_no_peer_measured_the_offset_is_zero():
    v = PeerOffsets().verdict(["a", "b"], 0.0, 500)
    assert (v.skewed, v.offset_ms, v.far, v.measured, v.peers) == (False, 0.0, 0, 0, 2)
