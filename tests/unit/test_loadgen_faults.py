"""The fault schedule of a setting (loadgen.run.Fault) against a recording stand-in for the
local cluster: what is done to which node, and when in the measured window."""

import signal

import pytest

from loadgen.run import Fault


class FakeCluster:
    nodes = 3

    def __init__(self):
        self.calls = []
        self.up = True

    def kill(self, i, sig=signal.SIGKILL):
        self.calls.append(("signal", i, sig))

    def restart(self, i, extra=()):
        self.calls.append(("restart", i, tuple(extra)))

    def ready(self, i):
        return self.up


def _run(kind, ticks, ready=True):
    c = FakeCluster()
    c.up = ready
    f = Fault(kind, c, 9.0, "50")
    for t in ticks:
        f.tick(t)
    f.finish()
    return c.calls, f.report()


@pytest.mark.parametrize("kind,apply,restore", [
    ("kill", ("signal", 2, signal.SIGKILL), ("restart", 2, ())),
    ("pause", ("signal", 2, signal.SIGSTOP), ("signal", 2, signal.SIGCONT)),
    ("slow", ("restart", 2, ("--peer-delay-ms", "50")), ("restart", 2, ())),
])
def test_fault_at_one_third_restored_at_two_thirds(kind, apply, restore):
    calls, rep = _run(kind, [0.5, 2.9, 3.0, 3.5, 5.9, 6.0, 6.5, 8.9])
    assert calls == [apply, restore]
    assert rep["kind"] == kind and rep["node"] == "n3"
    assert rep["at_s"] == 3.0 and rep["restored_at_s"] == 6.0 and rep["ready_again_s"] == 6.5


def test_a_window_cut_short_still_restores_the_node():
    calls, rep = _run("pause", [0.1, 3.2])
    assert calls == [("signal", 2, signal.SIGSTOP), ("signal", 2, signal.SIGCONT)]
    assert rep["restored_at_s"] == -1.0


def test_no_fault_before_one_third_and_not_ready_is_reported():
    calls, rep = _run("kill", [0.0, 1.0, 2.99])
    assert calls == [] and rep["at_s"] is None
    calls, rep = _run("kill", [3.0, 6.0, 7.0], ready=False)
    assert rep["ready_again_s"] is None
