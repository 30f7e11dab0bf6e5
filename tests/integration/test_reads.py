"""Reads against real processes: sloppy read planning and reads through a lagging node."""

import signal

import httpx
import pytest

from dynamopy.client import DynamoError

pytestmark = pytest.mark.integration

FAST = ["--request-timeout-s", "1.5"]


def alive_view(c, observer: int, member: str) -> bool:
    with c.client(observer, timeout_s=2.0) as cl:
        return {m["id"]: m["alive"] for m in cl.cluster()["members"]}[member]


def metric(c, i: int, name: str, *labels: str) -> float:
    text = httpx.get(c.url(i) + "/metrics", timeout=3).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " ")
               if all(label in line for label in labels))


def index(member: str) -> int:
    return int(member[1:]) - 1


def test_sloppy_read_asks_reachable_home_replicas_before_a_fallback(make_cluster):
    """Issue 19 item 2: preference list A, B, C, fallback F. B misses a delete (down past the
    hint window, so no hint); B comes back, A goes down. A read at R=2 through B must ask C
    (a reachable home replica, holding the tombstone) before F, whose empty hint lookup
    for A must not stand in for a home replica's record."""
    c = make_cluster(4, extra=FAST + ["--hint-window-s", "1"])
    key = "sloppy-read"
    with c.client(0) as cl:
        pref = cl.preference_list(key)
    a, b, cc = (index(m) for m in pref)
    f = ({0, 1, 2, 3} - {a, b, cc}).pop()
    with c.client(cc) as cl:
        cl.put(key, "v1", w=3)
    c.kill(b, signal.SIGTERM)
    # Wait (on an event, not a clock) until the hint window for B has passed on the fallback:
    # a probe write whose preference list holds B makes F refuse its hint by the window.
    with c.client(a) as cl:
        probe = next(k for k in (f"probe{i}" for i in range(1000))
                     if cl.preference_list(k)[:3] == pref)
        def window_passed() -> bool:
            cl.put(probe, "p", w=2)
            return metric(c, f, "dynamopy_hints_dropped_total",
                          f'target="{pref[1]}"', 'reason="window"') > 0
        c.wait_until(window_passed, timeout_s=20, what="F refusing hints for B (window)")
        out = cl.delete(key, w=2)
        assert out["acks"] == 2
    c.start_node(b)
    c.wait_ready([b])
    assert c.local_record(b, key)["deleted"] is False  # B still holds v1
    c.kill(a)
    c.wait_until(lambda: not alive_view(c, b, pref[0]), what="B sees A down")
    with c.client(b) as cl:
        with pytest.raises(DynamoError) as e:
            got = cl.get(key, r=2)
            pytest.fail(f"sloppy read returned {got.value!r} (version {got.version}); "
                        "expected 404: the key was deleted")
        assert e.value.status == 404
        with pytest.raises(DynamoError) as e:
            cl.get(key, r=2, strict=True)
        assert e.value.status == 404
    # The read saw B stale and repaired it (C is a home replica; F never was asked for it).
    c.wait_until(lambda: c.local_record(b, key)["deleted"], what="B repaired")
