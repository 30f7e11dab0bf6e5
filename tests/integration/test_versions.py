"""Versions through real processes: restarts keep them at the wall clock (issue 19 item 1)."""

import signal
import time

import pytest

from dynamopy.client import DynamoError
from dynamopy.core.versions import physical_ms
from dynamopy.node.version_clock import LEAD_MS

pytestmark = pytest.mark.integration


def _key_replicated_by(c, inside: str, outside: str) -> str:
    with c.client(0) as cl:
        for i in range(500):
            key = f"k{i}"
            nodes = cl.preference_list(key)
            if inside in nodes and outside not in nodes:
                return key
    raise AssertionError("no such key")


def test_restarts_keep_versions_at_the_wall_clock_and_later_deletes_win(make_cluster):
    """Issue 19 item 1: 4 nodes; restart n1 (clean, clean, then SIGKILL); after each, PUT k
    through n1 then DELETE k through n4 (not a replica of k): GET ?r=3 must answer 404.
    Before the fix each restart pushed n1's versions ~10 s further ahead, so the later
    delete was acknowledged and lost."""
    c = make_cluster(4)
    key = _key_replicated_by(c, "n1", "n4")
    with c.client(0) as a:
        a.put("warm-up", b"x")
    time.sleep(1.5)  # the scenario of the issue: n1 ran long enough to store its mark
    for round_no, sig in enumerate((signal.SIGTERM, signal.SIGTERM, signal.SIGKILL)):
        c.kill(0, sig)
        c.start_node(0)
        c.wait_ready([0])
        with c.client(0) as a, c.client(3) as d:
            put = a.put(key, f"A{round_no}".encode())
            now_ms = time.time_ns() // 1_000_000
            # The version is n1's wall clock when it stamped it, not ahead of real time
            # (the stated bound is 0 after a restart; LEAD_MS leaves room for rounding).
            assert physical_ms(put["version"]) <= now_ms + LEAD_MS, (round_no, put)
            time.sleep(0.05)  # the delete comes later in real time
            deleted = d.delete(key)
            assert deleted["version"] > put["version"], (round_no, put, deleted)
            with pytest.raises(DynamoError) as e:
                d.get(key, r=3)
            assert e.value.status == 404, (round_no, put, deleted)
