"""Review finding (session 4): a node fenced for a clock step keeps pushing its durable version
mark ahead with the stepped clock; after a crash it stamps versions that far in the future.

README (Versions): "after any number of restarts a node's versions are at its own wall
clock"; a node whose own wall clock stepped "stops stamping writes". The background loop of
``node/version_clock.py`` keeps the mark ``LEAD_MS`` ahead of the wall clock whatever the
fence says, so while n1's clock is 10 minutes ahead (fenced, stamping nothing) the mark goes
10 minutes ahead. n1 crashes, its clock is corrected, it restarts: versions continue from the
mark ("a wall clock that stepped back by more than 2 s is not waited for"), 10 minutes ahead
of every other node, and its fence (which compares wall clocks) sees nothing wrong. At W=1 a
write through another node after n1's write is then hidden by it.

Fixed (``VersionClock.may_lead`` and the step hold); the suite's regression test is
``tests/unit/test_version_clock.py::test_the_mark_does_not_follow_a_clock_that_stepped_ahead``.
This real-process repro takes 11-15 s, so it is run by hand:
``python -m pytest -q tests/repro/repro_clock_step_mark.py`` (it failed before the fix: n1
stamped versions 596 s ahead of real time after its restart).

The same when n1 *starts* 10 minutes ahead: a seed judges its clock alone before the
bootstrap (it knows no peers yet), and that verdict let the loop lead the mark to +10 min in
the moment after the bootstrap, before the next round fenced it. The mark now leads only
on a verdict of a majority of the current members (``FailureDetector.clock_confirmed``).

n1 runs under libfaketime with a timestamp file (``FAKETIME_TIMESTAMP_FILE``), so its clock
can be stepped while it runs; the monotonic clock is left alone, as a real step would.
"""

import signal
import time

import pytest

from dynamopy.core.versions import physical_ms
from tests.integration.cluster import LocalCluster
from tests.integration.test_clock_skew import libfaketime  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

STEP_S = 600


@pytest.mark.parametrize("start_ahead", [False, True])
def test_a_clock_step_while_fenced_does_not_move_versions_ahead_after_a_crash(
        libfaketime, tmp_path, start_ahead):  # noqa: F811
    c = LocalCluster(str(tmp_path / "c"), 3, n=3, r=1, w=1)
    stamp = tmp_path / "faketime"
    stamp.write_text(f"+{STEP_S}\n" if start_ahead else "+0\n")
    env = {"LD_PRELOAD": libfaketime, "FAKETIME_TIMESTAMP_FILE": str(stamp),
           "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_CACHE_DURATION": "1"}
    try:
        import os
        os.makedirs(c.root, exist_ok=True)
        c.start_node(0, env=env)
        for i in (1, 2):
            c.start_node(i)
        c.wait_ready([1, 2] if start_ahead else range(3), 30)

        stamp.write_text(f"+{STEP_S}\n")   # n1's wall clock jumps 10 minutes ahead
        c.wait_until(lambda: c.cluster_info(0)["clock"]["skewed"], 10, "n1 fenced")
        time.sleep(2.5)                    # fenced for a while (past any grace of the loop)
        c.kill(0, signal.SIGKILL)
        stamp.write_text("+0\n")           # the clock is corrected; n1 restarts
        c.start_node(0, env=env)
        c.wait_ready([0], 30)

        with c.client(0, session=False) as n1, c.client(1, session=False) as n2:
            first = n1.put("k", b"first", w=1)
            second = n2.put("k", b"second", w=1)   # acknowledged after the first
            ahead_s = (physical_ms(first["version"]) - time.time() * 1000) / 1000
            assert ahead_s < 5, f"n1 stamps versions {ahead_s:.0f} s ahead of real time"
            assert n2.get("k", r=3).value == b"second", "a later write is hidden by n1's"
            assert second["version"] > first["version"]
    finally:
        c.stop()
