"""Anti-entropy with real processes: a replica that missed writes and deletes, with no hint
to heal it and no client reading the keys, is brought level with its co-replicas."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from dynamopy.cli import anti_entropy_line
from dynamopy.client import DynamoError

pytestmark = pytest.mark.integration

AE = ["--request-timeout-s", "1.5", "--hint-window-s", "0",
      "--anti-entropy-interval-s", "1", "--anti-entropy-rate", "100000"]


def alive_view(c, observer: int, member: str) -> bool:
    with c.client(observer, timeout_s=2.0) as cl:
        return {m["id"]: m["alive"] for m in cl.cluster()["members"]}[member]


def metric(c, i: int, name: str) -> float:
    text = httpx.get(c.url(i) + "/metrics", timeout=3).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def run_all(c, ops, workers: int = 8) -> None:
    """Apply ``(method, args, kwargs)`` ops through node 0 from a few clients at once."""
    def worker(part):
        with c.client(0) as cl:
            for method, args, kwargs in part:
                getattr(cl, method)(*args, **kwargs)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(worker, [ops[i::workers] for i in range(workers)]))


def test_a_replica_that_missed_writes_and_deletes_converges_and_deletes_stay_deleted(
        make_cluster):
    """n2 is down (no hints: window 0) while 200 keys are written and 50 deleted; nobody
    reads them. Anti-entropy brings n2 level, and the 50 tombstones (grace 1 s) are purged
    only once both replicas hold them: had n1 purged while n2 was down, anti-entropy would
    have copied n2's old live values back. At the end both hold exactly the 200 live keys
    and the deleted keys are gone everywhere."""
    # N=2 on two nodes (every node replicates every key): the smallest cluster that shows it
    c = make_cluster(2, n=2, r=1, w=1, extra=AE + ["--tombstone-grace-s", "1"])
    run_all(c, [("put", (f"old{i}", f"v{i}"), {"w": 2}) for i in range(50)])
    c.kill(1)  # n2 misses everything below
    c.wait_until(lambda: not alive_view(c, 0, "n2"), what="n1 sees n2 down")
    run_all(c, [("put", (f"new{i}", f"w{i}"), {"w": 1}) for i in range(200)]
            + [("delete", (f"old{i}",), {"w": 1}) for i in range(50)])
    assert c.node_view(0)["hints"].get("n2", 0) == 0  # nothing hinted
    time.sleep(1.5)  # the tombstones are past their grace while n2 is still down
    assert c.local_record(0, "old7")["deleted"]  # n2 is down: n1 may not purge
    started = time.monotonic()
    c.start_node(1)
    c.wait_ready([1])

    def level() -> bool:
        views = [c.node_view(i)["anti_entropy"] for i in range(2)]
        return (all(c.node_view(i)["keys"] == 200 for i in range(2))
                and len({v["tree_root"] for v in views}) == 1)
    c.wait_until(level, timeout_s=15, what="n2 level with n1, tombstones purged")
    took = time.monotonic() - started
    # Record by record (no quorum read: each node's own copy).
    for key in ("new0", "new99", "new199"):
        recs = [c.local_record(i, key) for i in range(2)]
        assert recs[0] == recs[1] and not recs[0]["deleted"], (key, recs)
    for i in range(2):
        with c.client(i, timeout_s=3.0) as cl:
            assert all(cl.node_record(f"old{j}") is None for j in range(50))
    with c.client(1) as cl:
        assert all(_missing(cl, f"old{j}") for j in range(0, 50, 7))
    view = c.node_view(1)["anti_entropy"]
    assert view["enabled"] and view["exchanges"] >= 1
    # Nothing else could have done it (no hints, no reads, no ring change): anti-entropy
    # repaired at least the 250 records n2 missed (200 writes, 50 deletes), and the purge
    # dropped the 50 tombstones on each node.
    repaired = sum(metric(c, i, "dynamopy_anti_entropy_keys_repaired_total") for i in range(2))
    assert repaired >= 250
    assert sum(metric(c, i, "dynamopy_tombstones_purged_total") for i in range(2)) >= 100
    assert took < 15
    # what `dynamopy status` prints from this node's view
    assert anti_entropy_line(c.node_view(1)).startswith("on, every 1s")


def _missing(cl, key: str) -> bool:
    try:
        cl.get(key, r=2)
    except DynamoError as e:
        return e.status == 404
    return False
