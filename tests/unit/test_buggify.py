"""BUGGIFY knobs (``dynamopy.core.buggify``): off in production, seeded per run in the
simulator, each enabled or not for a whole run."""

import random

import pytest

from dynamopy.cli.serve import production_node
from dynamopy.core.buggify import BUGGIFY_OFF, KNOBS, Buggify
from dynamopy.sim.inprocess import memory_config


def test_off_never_fires_and_draws_nothing():
    assert not BUGGIFY_OFF.on
    assert not any(BUGGIFY_OFF.fires(k) for k in KNOBS for _ in range(100))
    assert BUGGIFY_OFF.delay_s("replica_ack_delay", 5.0) == 0.0
    assert not BUGGIFY_OFF.fired and not BUGGIFY_OFF.enabled


def test_dynamopy_serve_builds_its_node_with_buggify_off(tmp_path):
    node = production_node(memory_config("a", ["a"], data_dir=str(tmp_path)))
    try:
        assert node.buggify is BUGGIFY_OFF
        assert node.committer.buggify is BUGGIFY_OFF and node.replica.buggify is BUGGIFY_OFF
        assert node.committer.sync_wait is None  # a real disk's sync takes its own time
    finally:
        node.store.close()


def test_a_knob_is_enabled_or_not_for_the_whole_run_and_fires_at_its_rate():
    bug = Buggify(random.Random(3))  # the defaults: half the knobs enabled, each firing at 25%
    shots = {k: sum(bug.fires(k) for _ in range(2000)) for k in KNOBS}
    for knob, n in shots.items():
        if bug.enabled[knob]:
            assert 350 < n < 650, (knob, n)  # ~25% of 2000
        else:
            assert n == 0
    assert 0 < sum(bug.enabled.values()) < len(KNOBS)  # this seed enables some, not all
    assert dict(bug.fired) == {k: n for k, n in shots.items() if n}


def test_the_same_seed_gives_the_same_firings_and_turning_off_stops_them():
    def firings(seed):
        bug = Buggify(random.Random(seed))
        return [(k, bug.fires(k), round(bug.delay_s(k, 1.0), 9)) for _ in range(50) for k in KNOBS]
    assert firings(11) == firings(11) != firings(12)
    bug = Buggify(random.Random(1), enable_p=1.0, fire_p=1.0)
    assert bug.fires("hint_pause") and 0 <= bug.delay_s("hint_pause", 2.0) <= 2.0
    bug.on = False
    assert not bug.fires("hint_pause") and bug.delay_s("hint_pause", 2.0) == 0.0


def test_an_unknown_knob_is_refused():
    with pytest.raises(KeyError):
        Buggify(random.Random(1)).fires("no_such_knob")


def test_a_delay_is_spread_over_zero_to_its_maximum():
    bug = Buggify(random.Random(5), enable_p=1.0, fire_p=1.0)
    delays = [bug.delay_s("replica_ack_delay", 0.5) for _ in range(200)]
    assert all(0.0 <= d <= 0.5 for d in delays)
    assert min(delays) < 0.05 and max(delays) > 0.45
