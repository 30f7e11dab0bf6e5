"""Sloppy quorum, hinted handoff and read repair with real processes (N=3 on 4 nodes)."""

import signal

import httpx
import pytest

from dynamopy.client import DynamoError

pytestmark = pytest.mark.integration

FAST = ["--request-timeout-s", "1.5"]


def keys_replicated_by(c, member: str, count: int, prefix: str = "k") -> list[str]:
    """Keys whose preference list includes ``member`` (asked of the cluster itself)."""
    out, i = [], 0
    with c.client(0) as cl:
        while len(out) < count:
            key = f"{prefix}{i}"
            if member in cl.preference_list(key):
                out.append(key)
            i += 1
    return out


def alive_view(c, observer: int, member: str) -> bool:
    with c.client(observer, timeout_s=2.0) as cl:
        return {m["id"]: m["alive"] for m in cl.cluster()["members"]}[member]


def hints_for(c, i: int, member: str) -> int:
    return c.node_view(i)["hints"].get(member, 0)


def metric(c, i: int, name: str, *labels: str) -> float:
    """Sum of a metric's samples on node i, over the series carrying every given label."""
    text = httpx.get(c.url(i) + "/metrics", timeout=3).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " ")
               if all(label in line for label in labels))


def test_paused_replica_sloppy_quorum_then_handoff(make_cluster):
    c = make_cluster(4, extra=FAST)
    victim = 3  # n4
    keys = keys_replicated_by(c, "n4", 20)
    c.pause(victim)
    try:
        for i in range(3):
            c.wait_until(lambda i=i: not alive_view(c, i, "n4"), what=f"n{i+1} sees n4 down")
        versions = {}
        with c.client(0, timeout_s=10) as cl:
            for k in keys:
                out = cl.put(k, f"while-paused-{k}", w=3)
                assert out["acks"] == 3
                versions[k] = out["version"]
            for k in keys:
                item = cl.get(k, r=3)
                assert item.version == versions[k]
        assert sum(hints_for(c, i, "n4") for i in range(3)) == len(keys)
    finally:
        c.resume(victim)
    c.wait_until(lambda: all(hints_for(c, i, "n4") == 0 for i in range(3)), timeout_s=30,
                 what="hints for n4 drained on every node")
    for k in keys:
        assert c.local_record(victim, k)["version"] == versions[k]
    assert sum(metric(c, i, "dynamopy_hints_delivered_total") for i in range(3)) >= len(keys)


def test_read_repairs_a_replica_whose_hint_holder_died(make_cluster):
    c = make_cluster(4, extra=FAST)
    key = keys_replicated_by(c, "n3", 1, prefix="rr")[0]
    with c.client(0) as cl:
        pref = cl.preference_list(key)
        old = cl.put(key, "old", w=3)["version"]
    replica = int(pref[pref.index("n3")][1:]) - 1
    c.kill(replica)
    with c.client(0) as cl:
        c.wait_until(lambda: not alive_view(c, 0, "n3"), what="n1 sees n3 down")
        new = cl.put(key, "new", w=2)["version"]
    holders = [i for i in range(4) if i != replica and hints_for(c, i, "n3")]
    assert len(holders) == 1 and f"n{holders[0] + 1}" not in pref  # the fallback holds it
    c.kill(holders[0])  # the hint dies with its holder (until it restarts)
    c.start_node(replica)
    c.wait_ready([replica])
    assert c.local_record(replica, key)["version"] == old
    reader = next(i for i in range(4) if i not in holders and i != replica)
    c.wait_until(lambda: alive_view(c, reader, "n3"), what="the reader sees n3 back")
    with c.client(reader, timeout_s=10) as cl:
        item = cl.get(key, r=3)
    assert item.version == new and item.value == b"new"
    c.wait_until(lambda: c.local_version(replica, key) == new,
                 what="stale replica repaired by the read")
    assert metric(c, reader, "dynamopy_read_repairs_total") >= 1


def test_hints_survive_a_restart_of_their_holder(make_cluster):
    c = make_cluster(4, extra=FAST)
    keys = keys_replicated_by(c, "n2", 10, prefix="hs")
    c.kill(1)
    c.wait_until(lambda: not alive_view(c, 0, "n2"), what="n1 sees n2 down")
    with c.client(0) as cl:
        versions = {k: cl.put(k, "v", w=2)["version"] for k in keys}
    holders = [i for i in (0, 2, 3) if hints_for(c, i, "n2")]
    assert holders, "some node must hold hints for n2"
    for i in holders:
        c.kill(i, signal.SIGKILL)
        c.start_node(i)
    c.wait_ready(holders)
    assert sum(hints_for(c, i, "n2") for i in holders) == len(keys)
    c.start_node(1)
    c.wait_ready([1])
    c.wait_until(lambda: all(hints_for(c, i, "n2") == 0 for i in holders), timeout_s=30,
                 what="hints delivered after the holder's restart")
    for k, v in versions.items():
        assert c.local_record(1, k)["version"] == v


def test_no_new_hints_past_the_hint_window(make_cluster):
    c = make_cluster(4, extra=FAST + ["--hint-window-s", "1"])
    keys = keys_replicated_by(c, "n4", 5, prefix="hw")
    c.kill(3)

    def dropped(i: int) -> float:
        return metric(c, i, "dynamopy_hints_dropped_total", 'target="n4"', 'reason="window"')

    # Wait on the event, not a clock: on each possible fallback i (the one node outside a
    # key's preference list), a probe write refused its hint for n4 by the window.
    with c.client(0) as cl:
        for i in range(3):
            probe = next(k for k in (f"hwprobe{i}-{j}" for j in range(1000))
                         if set(cl.preference_list(k)) == {"n1", "n2", "n3", "n4"}
                         - {c.node_id(i)})
            c.wait_until(lambda i=i, probe=probe: cl.put(probe, "p", w=2) and dropped(i) > 0,
                         what=f"n{i + 1} refusing hints for n4 by the window")
    hints_before = sum(hints_for(c, i, "n4") for i in range(3))  # from probes in the window
    dropped_before = sum(dropped(i) for i in range(3))
    with c.client(0) as cl:
        for k in keys:
            assert cl.put(k, "v", w=2)["acks"] >= 2
    assert sum(hints_for(c, i, "n4") for i in range(3)) == hints_before
    assert sum(dropped(i) for i in range(3)) - dropped_before >= len(keys)


def test_hint_cap_holds_under_a_write_flood(make_cluster):
    cap = 40_000
    c = make_cluster(4, extra=FAST + ["--hint-max-bytes", str(cap)])
    keys = keys_replicated_by(c, "n4", 120, prefix="fl")
    c.kill(3)
    c.wait_until(lambda: not alive_view(c, 0, "n4"), what="n1 sees n4 down")
    value = b"x" * 1024
    with c.client(0) as cl:
        for k in keys:
            cl.put(k, value, w=2)       # W=2 is met by home replicas whatever the hints do
        with pytest.raises(DynamoError) as e:
            cl.put(keys[-1], value, w=3)  # W=3 needs the hint, which is refused at the cap
        assert e.value.status == 503
    per_node = [hints_for(c, i, "n4") for i in range(3)]
    assert 0 < sum(per_node) < len(keys)
    for i in range(3):
        assert c.node_view(i)["hints"].get("n4", 0) * 1024 <= cap
    dropped = sum(metric(c, i, "dynamopy_hints_dropped_total", 'reason="cap"') for i in range(3))
    assert dropped >= len(keys) - sum(per_node)
    with c.client(1) as cl:  # still responsive
        assert cl.get(keys[0], r=2).value == value


def test_peer_delay_knob_slows_replica_traffic(make_cluster):
    """--peer-delay-ms adds latency to every peer message (an experiment knob that shows the
    R/W trade-offs loopback hides): shown by the node's own peer-call histogram, not by a
    clock in the test: no peer put of a W=3 write came back sooner than the delay."""
    c = make_cluster(3, extra=["--peer-delay-ms", "150"])

    def peer_puts_faster_than_delay() -> tuple[float, float]:
        """(peer puts n1 made, those answered within 0.1 s) from n1's own histogram."""
        return (metric(c, 0, "dynamopy_peer_call_seconds_count", 'method="put"'),
                metric(c, 0, "dynamopy_peer_call_seconds_bucket", 'method="put"', 'le="0.1"'))
    with c.client(0, timeout_s=30) as cl:
        assert cl.put("slow", "x", w=3)["acks"] == 3
        calls, fast = peer_puts_faster_than_delay()
        assert calls >= 2 and fast == 0  # both replicas' acks waited for the delay
        # W=1 answers on the coordinator's own ack, before the delayed replicas' acks.
        assert cl.put("fast", "y", w=1)["acks"] == 1
        assert cl.get("fast", r=1).value == b"y"  # local: every node replicates every key


def test_read_through_a_stale_replica_answers_the_newest_of_r(make_cluster):
    """The read answer is the newest of the R replies, not the first: read through a replica
    that missed a write (no hint to heal it: window 0), whose own stale record is, by
    construction, the first reply (a local read answers in the same step it starts)."""
    c = make_cluster(3, extra=FAST + ["--hint-window-s", "0"])
    key = "newest-of-r"
    with c.client(0) as cl:
        old = cl.put(key, "old", w=3)["version"]
    c.kill(2)  # n3
    c.wait_until(lambda: not alive_view(c, 0, "n3") and not alive_view(c, 1, "n3"),
                 what="n1 and n2 see n3 down")
    with c.client(0) as cl:
        new = cl.put(key, "new", w=2)["version"]
    assert new > old
    c.start_node(2)
    c.wait_ready([2])
    # Preconditions: n3 holds the old record and nobody holds a hint that would heal it.
    assert c.local_record(2, key)["version"] == old
    assert all(hints_for(c, i, "n3") == 0 for i in range(2))
    with c.client(2, timeout_s=10) as cl:
        item = cl.get(key, r=2)
    assert item.version == new and item.value == b"new"
    c.wait_until(lambda: c.local_version(2, key) == new,
                 what="the stale coordinator repaired itself")
