"""Reads against real processes: sloppy read planning and reads through a lagging node."""

import concurrent.futures as cf
import signal
import time

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


def lagging_keys(count: int) -> list[str]:
    """Keys replicated by n1, n2, n3 on the 4-seed ring and by n2, n3, n5 once n5 joined."""
    from ring import Ring
    old = Ring.build(["n1", "n2", "n3", "n4"])
    new = old.add("n5")
    keys = [k for k in (f"lag{i}" for i in range(5000))
            if set(old.preference_list(k, 3)) == {"n1", "n2", "n3"}
            and set(new.preference_list(k, 3)) == {"n2", "n3", "n5"}]
    return keys[:count]


def status_of(http: httpx.Client, method: str, url: str, **kw) -> tuple[int, bytes]:
    resp = http.request(method, url, **kw)
    return resp.status_code, resp.content


def test_a_restarted_node_behind_the_log_never_serves_its_old_ring(make_cluster):
    """Issue 19 item 4: n1 is down while n5 joins and takes over keys from it, then v2 is
    written to all of n5, n2, n3. n1 restarts on its old ring (it still holds v1 and thinks
    it replicates the keys). Until it has learned the log up to what its peers report it
    must neither coordinate nor count its own copy: while every peer is paused it cannot
    learn, so it answers 503 (before the fix: v1 at R=1, and a W=1 write acked on n1 alone,
    lost once it caught up and dropped the range); once they are back it catches up, and
    reads through it never return v1."""
    c = make_cluster(4, extra=FAST + ["--hint-window-s", "0"])
    keys = lagging_keys(3)
    with c.client(1) as cl:
        assert set(cl.preference_list(keys[0])) == {"n1", "n2", "n3"}
        for k in keys:
            cl.put(k, "v1", w=3)
    c.kill(0, signal.SIGTERM)
    n5 = c.add_node(through=1)
    # n5's own view too: it may apply the join's last entry a moment after n2 (CI 41 read
    # the old preference list through n5 right after n2 said it was normal)
    c.wait_until(lambda: all({m["id"]: m["state"] for m in c.cluster_info(i)["members"]}
                             .get("n5") == "normal" for i in (1, n5)),
                 timeout_s=60, what="n5 joined, in n2's and its own view")
    with c.client(n5) as cl:
        assert set(cl.preference_list(keys[0])) == {"n2", "n3", "n5"}
        for k in keys:
            assert cl.put(k, "v2", w=3)["acks"] == 3
    url, peers = c.url(0), [1, 2, 3, n5]
    acked: dict[str, bytes] = {}
    with httpx.Client(timeout=10.0) as http:
        for i in peers:
            c.pause(i)
        try:
            c.start_node(0)
            c.wait_until(lambda: http.get(url + "/health").status_code == 200, what="n1 up")
            c.wait_until(lambda: not any(m["alive"] for m in c.cluster_info(0)["members"]
                                         if m["id"] != "n1"), what="n1 sees its peers down")
            assert http.get(url + "/ready").status_code == 503
            assert c.node_view(0)["metadata"]["caught_up"] is False
            isolated = [status_of(http, "GET", f"{url}/kv/{k}", params={"r": 1})
                        for k in keys[:2]]
            isolated_write = status_of(http, "PUT", f"{url}/kv/{keys[2]}", params={"w": 1},
                                       content=b"isolated-write")
            if isolated_write[0] == 200:
                acked[keys[2]] = b"isolated-write"
        finally:
            for i in peers:
                c.resume(i)
        # From the first instant its peers are back: never the old ring.
        seen: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(st == 200 for st, _ in seen) < 2 * len(keys):
            for k in keys:
                seen.append(status_of(http, "GET", f"{url}/kv/{k}", params={"r": 1}))
        c.wait_ready([0])
        view = c.node_view(0)
        assert view["metadata"]["caught_up"] and view["metadata"]["peer_epoch"] <= view["epoch"]
        for attempt, k in enumerate(keys[:2]):
            value = f"after-{attempt}".encode()
            assert status_of(http, "PUT", f"{url}/kv/{k}", params={"w": 2},
                             content=value)[0] == 200
            acked[k] = value
    assert [st for st, _ in isolated] == [503, 503] and isolated_write[0] == 503, \
        f"isolated n1 served reads {isolated} and the write {isolated_write}"
    assert b"not_ready" in isolated[0][1], isolated
    with c.client(n5) as cl:
        for k, value in acked.items():
            assert cl.get(k, r=3).value == value, f"a write to {k} acknowledged by n1 was lost"
    old = [body for st, body in seen if st == 200 and body == b"v1"]
    assert not old, f"{len(old)} reads through n1 returned the old value v1: {seen}"
    assert {st for st, _ in seen} <= {200, 503} and sum(st == 200 for st, _ in seen) >= 6


def test_sloppy_read_finds_the_newest_hint_whatever_order_hints_arrived_in(make_cluster):
    """Issue 19 item 5: N=2, both home replicas A, B paused; fallbacks F1, F2 stand in.
    v1 is written through a slowed coordinator X, v2 through F1 just after: both fallbacks
    receive v2 before v1. A sloppy read at R=2 answers from the two fallbacks' hints and must
    return the newest acknowledged write (it returned v1 although v2 was newer before the
    index fix). Since the review fix, a fallback already holding v2 answers v1's hint with
    v2's version, so X re-stamps v1 above it: v1 is then the newer write (acknowledged last)
    and must be the one read. The index rule itself is pinned by the storage unit test
    ``test_hint_index_points_at_the_newest_version_not_the_last_hint_added``."""
    from ring import Ring
    c = make_cluster(5, n=2, r=2, w=2, extra=FAST)
    ring = Ring.build([c.node_id(i) for i in range(5)])
    walk = list(ring.walk("hinted0"))
    key = "hinted0"
    a, b, f1, f2, x = (index(m) for m in walk)
    c.kill(x, signal.SIGTERM)
    # X's peer messages take 0.3 s (below the detector's 0.5 s ping timeout).
    c.start_node(x, ["--peer-delay-ms", "300"])
    c.wait_ready([x])
    for i in (a, b):
        c.pause(i)
    try:
        for i in (f1, f2, x):
            for m in (a, b):
                c.wait_until(lambda i=i, m=m: not alive_view(c, i, c.node_id(m)),
                             what=f"n{i + 1} sees n{m + 1} down")
        with c.client(x) as cx, c.client(f1) as c1, cf.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(cx.put, key, "v1", w=2)
            time.sleep(0.1)  # v2 is written while X's hints of v1 are held back by its delay
            v2 = c1.put(key, "v2", w=2)["version"]
            v1 = slow.result(timeout=20)["version"]
        newest = (b"v1", v1) if v1 > v2 else (b"v2", v2)
        c.wait_until(lambda: all(c.node_view(i)["hints"].get(c.node_id(m), 0) >= 2
                                 for i, m in ((f1, a), (f2, b))),
                     what="both fallbacks hold both hints")
        for via in (f1, f2):
            with c.client(via, session=False) as cl:
                got = cl.get(key, r=2)
                assert (got.value, got.version) == newest, f"read via n{via + 1}"
    finally:
        for i in (a, b):
            c.resume(i)
