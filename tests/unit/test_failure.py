from dynamopy.core.failure import PeerHealth


def test_two_failures_in_a_row_mark_down_and_one_success_revives():
    h = PeerHealth()
    h.success(0.0)
    h.failure(0.3)
    assert h.is_up(0.3)
    h.failure(0.6)
    assert not h.is_up(0.6)
    assert h.down_for(2.6) == 2.0
    h.success(2.7)
    assert h.is_up(2.7) and h.down_for(2.7) == 0.0


def test_phi_grows_with_silence_relative_to_the_heartbeat_rhythm():
    h = PeerHealth(threshold=8.0)
    t = 0.0
    for _ in range(50):
        t += 0.25
        h.success(t)
    assert h.phi(t + 0.25) < 1.0
    assert h.is_up(t + 1.0)
    assert not h.is_up(t + 10.0)  # a paused peer is suspected without a single failure
    assert h.down_for(t + 10.0) > 9.0


def test_running_mean_matches_the_window():
    h = PeerHealth()
    for i in range(300):
        h.success(i * 0.5)
    assert abs(h.interval_sum - sum(h.intervals)) < 1e-9
    assert len(h.intervals) == 100


def test_unknown_peer_is_up():
    assert PeerHealth().is_up(100.0)


# ---- found by mutation testing (python -m dynamopy.benchlib.mutation) ---------------------

import math  # noqa: E402


def test_a_repeated_timestamp_adds_no_interval():
    h = PeerHealth()
    h.success(1.0)
    h.success(1.0)
    assert len(h.intervals) == 0 and h.interval_sum == 0.0


def test_running_sum_drops_the_oldest_interval_when_the_window_is_full():
    h = PeerHealth()
    t = 0.0
    for i in range(250):
        t += 0.1 + (i % 7) * 0.05  # uneven arrivals
        h.success(t)
    assert len(h.intervals) == 100
    assert abs(h.interval_sum - sum(h.intervals)) < 1e-9


def test_down_since_is_the_failure_that_crossed_fail_after():
    h = PeerHealth()
    h.success(0.0)
    for t in (0.3, 0.6, 0.9, 1.2):
        h.failure(t)
    assert h.down_since == 0.6 and h.down_for(2.6) == 2.0


def test_phi_is_zero_for_an_unknown_peer_and_exact_otherwise():
    assert PeerHealth().phi(100.0) == 0.0
    h = PeerHealth()
    for t in (0.25, 0.5, 0.75, 1.0):
        h.success(t)
    assert abs(h.phi(2.0) - 1.0 / (0.25 * math.log(10))) < 1e-9


def test_without_intervals_phi_uses_the_floor_interval():
    h = PeerHealth()  # min_interval_s 0.2: phi passes 8 after 8 * 0.2 * ln 10 = 3.68 s
    h.success(0.0)
    assert h.is_up(3.6) and not h.is_up(3.8)


def test_phi_equal_to_the_threshold_is_still_up():
    h = PeerHealth(threshold=3.0 / (0.2 * math.log(10)))   # phi reaches it at t = 3.0
    h.success(0.0)
    t = h.up_until                # the last instant it is up (3.0 up to rounding)
    assert abs(t - 3.0) < 1e-9 and abs(h.phi(t) - h.threshold) < 1e-9
    assert h.is_up(t) and not h.is_up(t + 0.0001)


def test_down_for_by_phi_counts_from_the_last_success():
    h = PeerHealth()
    h.success(5.0)
    assert h.down_for(15.0) == 10.0


# ---- is_up is a precomputed deadline (it runs per request); same verdict as phi ----------

def test_is_up_agrees_with_phi_and_the_failure_count_over_random_histories():
    import random
    rng = random.Random(4)
    for _ in range(200):
        h, t = PeerHealth(), 0.0
        for _ in range(rng.randrange(1, 40)):
            t += rng.choice((0.05, 0.25, 0.3, 1.0, 4.0))
            (h.success if rng.random() < 0.7 else h.failure)(t)
            for later in (t, t + 0.5, t + 2.0, t + 5.0, t + 30.0):
                expected = (h.consecutive_failures < h.fail_after
                            and h.phi(later) <= h.threshold)
                assert h.is_up(later) == expected, (h, later)
