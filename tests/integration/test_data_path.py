"""Quorum reads and writes through real `dynamopy serve` processes."""

import asyncio
import signal

import aiohttp
import pytest

from dynamopy.client import DynamoError
from tests.integration.cluster import in_parallel

pytestmark = pytest.mark.integration


def test_put_get_delete_through_different_nodes(shared_cluster):
    c = shared_cluster
    with c.client(0) as a, c.client(1) as b, c.client(2) as d:
        out = a.put("photos/cat.jpg", b"\x89PNG...", content_type="image/png")
        assert out["acks"] >= 2 and out["key"] == "photos/cat.jpg"
        item = b.get("photos/cat.jpg")
        assert item.value == b"\x89PNG..." and item.version == out["version"]
        assert item.content_type == "image/png"
        assert d.get("photos/cat.jpg", r=3).value == b"\x89PNG..."
        # an overwrite gets a larger version
        out2 = d.put("photos/cat.jpg", b"v2")
        assert out2["version"] > out["version"]
        assert a.get("photos/cat.jpg", r=3).value == b"v2"
        deleted = b.delete("photos/cat.jpg")
        assert deleted["version"] > out2["version"]
        with pytest.raises(DynamoError) as e:
            d.get("photos/cat.jpg")
        assert e.value.status == 404 and e.value.code == "not_found"


def test_every_replica_stores_the_write(shared_cluster):
    c = shared_cluster
    with c.client(1) as cl:
        out = cl.put("replicated", b"x" * 1000, w=3)
        nodes = cl.preference_list("replicated")
    assert out["acks"] == 3 and len(nodes) == 3
    for i in range(3):
        rec = c.local_record(i, "replicated")
        assert rec["version"] == out["version"] and rec["value_bytes"] == 1000


def test_odd_keys_round_trip(shared_cluster):
    keys = ["a/b/c", "with space", "ünïcødé/ключ", "q?x=1&y=2", "100%", "k" * 1024, "#frag"]
    with shared_cluster.client(2) as cl:
        for k in keys:
            cl.put(k, k.encode())
        for k in keys:
            assert cl.get(k).value == k.encode()


def test_restart_on_same_data_keeps_everything(make_cluster):
    c = make_cluster(3)
    with c.client(0) as cl:
        versions = {f"k{i}": cl.put(f"k{i}", f"v{i}")["version"] for i in range(50)}
        cl.delete("k0")
    for i in range(3):
        c.kill(i, signal.SIGTERM)
    for i in range(3):
        c.start_node(i)
    c.wait_ready(range(3))
    with c.client(2) as cl:
        for i in range(1, 50):
            item = cl.get(f"k{i}", r=3)
            assert item.value == f"v{i}".encode() and item.version == versions[f"k{i}"]
        with pytest.raises(DynamoError) as e:
            cl.get("k0", r=3)
        assert e.value.status == 404
        # the clock never goes backwards across a restart
        assert cl.put("k1", "newer")["version"] > versions["k1"]


def test_sigkill_one_node_quorums_two_work_three_fails(make_cluster):
    c = make_cluster(3, extra=["--request-timeout-s", "1.0"])
    with c.client(0) as cl:
        cl.put("before", "1", w=3)
    c.kill(2)  # SIGKILL n3
    with c.client(0) as cl:
        assert cl.put("during", "2", w=2)["acks"] == 2
        assert cl.get("during", r=2).value == b"2"
        assert cl.get("before", r=2).value == b"1"
        with pytest.raises(DynamoError) as e:
            cl.put("during", "3", w=3)
        assert e.value.status == 503 and e.value.code == "quorum_unavailable"
        assert e.value.body["required"] == 3 and e.value.body["acks"] == 2
        with pytest.raises(DynamoError) as e:
            cl.get("during", r=3)
        assert e.value.status == 503 and e.value.body["required"] == 3
    c.start_node(2)
    c.wait_ready([2])
    with c.client(2) as cl:
        # R=3 after the restart reads the newest acknowledged write, never the failed one's
        # absence: "3" may surface (a failed write can still be stored), "2" at least.
        assert cl.get("during", r=3).value in (b"2", b"3")


def test_concurrent_writers_converge_on_the_highest_version(shared_cluster):
    c = shared_cluster  # no fault: the module's cluster serves ("hot" is this test's key)
    # 48 writers on one key through three coordinators: every write must succeed. (With at
    # most 3 re-stamps, about 1 write in 200 got a 503 under such contention: the CI run of
    # stop 28 failed here.)

    async def writers() -> list[int]:
        # aiohttp, as loadgen drives: httpx's client spends ~1.5 ms of CPU per request, too
        # slow to make the writers meet on the replicas.
        async def writer(http: aiohttp.ClientSession, i: int) -> list[int]:
            out = []
            for j in range(40):
                async with http.put(f"{c.url(i % 3)}/kv/hot", data=f"w{i}-{j}") as resp:
                    body = await resp.json()
                    assert resp.status == 200, body
                    out.append(body["version"])
            return out

        async with aiohttp.ClientSession() as http:
            done = await asyncio.gather(*(writer(http, i) for i in range(48)))
        return [v for vs in done for v in vs]

    versions = asyncio.run(asyncio.wait_for(writers(), 120))
    assert len(set(versions)) == len(versions), "versions must be unique per write"
    top = max(versions)
    c.wait_until(lambda: all(c.local_version(i, "hot") == top for i in range(3)),
                 what="all replicas at the highest version")
    with c.client(1) as cl:
        assert cl.get("hot", r=3).version == top


def test_no_acknowledged_write_lost_when_a_node_is_killed_midway(make_cluster):
    c = make_cluster(3)
    acked: dict[str, int] = {}

    def writes(start: int) -> None:
        """100 writes through n1, a few at a time; the acknowledged ones go to ``acked``."""
        def put(cl, key: str):
            try:
                return cl.put(key, key[1:])["version"]
            except DynamoError:
                return None
        done = in_parallel(c, 0, [f"d{j}" for j in range(start, start + 100)], put)
        acked.update((k, v) for k, v in done.items() if v is not None)

    def n1_sees_alive(member: str) -> bool:
        with c.client(0) as cl:
            return {m["id"]: m["alive"] for m in cl.cluster()["members"]}[member]

    writes(0)
    c.kill(1)
    writes(100)
    c.start_node(1)
    c.wait_ready([1])
    c.wait_until(lambda: n1_sees_alive("n2"), what="n1 sees n2 alive again")
    c.kill(2)
    writes(200)
    c.start_node(2)
    c.wait_ready([2])
    assert len(acked) == 300  # W=2 of 3 holds through each single failure
    got = in_parallel(c, 1, list(acked), lambda cl, k: cl.get(k, r=2).version)
    lost = [k for k, v in acked.items() if got[k] < v]
    assert not lost, f"{len(lost)} acknowledged writes read back older, e.g. {lost[:5]}"
