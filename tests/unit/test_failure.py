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
