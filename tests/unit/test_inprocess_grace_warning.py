"""A cluster whose settings in the log already break the grace rule (90% of the tombstone
grace less the clock bound >= the hint window) runs on, but every node says so: a warning
in its log and ``dynamopy_grace_rule_broken`` 1 in ``/metrics``, at start-up (the log
loaded from disk) and when such settings commit; 0 again once they are fixed. Start-up flags
and ``POST /cluster/config`` refuse such a pair, but not one already in the log (written
before the rule existed, here proposed straight to the log as such a version would have
done), nor one accepted by a node with a smaller clock bound."""

import logging
from dataclasses import replace

from dynamopy.node.grace_check import GraceCheck
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

SEEDS = ["n1", "n2", "n3"]


def _broken(node) -> float:
    """``dynamopy_grace_rule_broken`` as ``GET /metrics`` renders it."""
    text = node.metrics.render().decode()
    line = next(x for x in text.splitlines() if x.startswith("dynamopy_grace_rule_broken "))
    return float(line.split()[1])


def test_settings_in_the_log_that_break_the_grace_rule_are_reported_at_start_up(caplog):
    caplog.set_level(logging.WARNING, logger="dynamopy.node.grace_check")

    async def main():
        c = InProcessCluster(SEEDS, seed=2, max_clock_offset_ms=500,
                             anti_entropy_interval_s=3600.0)
        c.settings = replace(c.settings, hint_window_s=3600.0)
        await c.start_all()
        try:
            assert [_broken(c.node(i)) for i in SEEDS] == [0, 0, 0]
            assert caplog.records == []
            # what a version without the rule let through: a grace of 1000 s for a 1-hour window
            await c.node("n1").propose({"op": "set_config", "tombstone_grace_s": 1000.0})
            await until(lambda: all(_broken(c.node(i)) == 1 for i in SEEDS), 10,
                        "every node reports the broken rule")
            await c.node("n1").propose({"op": "set_config", "anti_entropy_rate": 7})
            await until(lambda: all(c.node(i).state.settings.anti_entropy_rate == 7
                                    for i in SEEDS), 10, "another change applied")
            seen = len(caplog.records)
            await c.stop("n2")
            caplog.clear()
            await c.start("n2")  # the log loaded from its disk
            at_start = [r.getMessage() for r in caplog.records]
            problem = c.node("n2").grace_check.problem
            await c.node("n1").propose({"op": "set_config", "tombstone_grace_s": 4001.0})
            await until(lambda: all(_broken(c.node(i)) == 0 for i in SEEDS), 10,
                        "every node sees the rule kept again")
            return seen, at_start, problem, c.node("n2").grace_check.problem
        finally:
            await c.stop_all()

    seen, at_start, problem, after = run_virtual(main())
    assert seen == 3  # once per node, not once per state change
    # at start-up the log replays bootstrap, the grace, the rate: one warning
    assert len(at_start) == 1 and at_start[0] == problem
    assert "tombstone_grace_s=1000 is too short for hint_window_s=3600" in problem
    assert "--max-clock-offset-ms=500" in problem and "tombstone_grace_s >= 4000.556" in problem
    assert after is None


class _Gauge:
    def __init__(self):
        self.value = None

    def set(self, v):
        self.value = v


def test_the_check_uses_this_nodes_clock_bound():
    """A pair accepted by a node with no clock bound breaks the rule on one with 1 s."""
    from dynamopy.core.membership import ClusterState, Settings, bootstrap_entry
    seeds = [{"id": "n1", "url": "u", "peer": "p"}]
    state = ClusterState().apply(bootstrap_entry(
        seeds, Settings(n=1, r=1, w=1, hint_window_s=900.0, tombstone_grace_s=1000.0)))
    for bound, broken in ((0, 0), (1000, 1)):
        gauge = _Gauge()
        GraceCheck(me="n1", max_clock_offset_ms=bound, gauge=gauge).on_state_change(
            ClusterState(), state)
        assert gauge.value == broken, bound
    gauge = _Gauge()
    GraceCheck(me="n1", max_clock_offset_ms=1000, gauge=gauge).on_state_change(
        ClusterState(), ClusterState())
    assert gauge.value is None  # nothing to check before the bootstrap
