"""Anti-entropy with real processes: a replica that missed writes and deletes, with no hint
to heal it and no client reading the keys, is brought level with its co-replicas."""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

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


def test_a_replica_that_missed_writes_and_deletes_converges_without_reads(make_cluster):
    c = make_cluster(3, extra=AE)  # N=3 on three nodes: every node replicates every key
    run_all(c, [("put", (f"old{i}", f"v{i}"), {"w": 3}) for i in range(50)])
    c.kill(2)  # n3 misses everything below
    c.wait_until(lambda: not alive_view(c, 0, "n3") and not alive_view(c, 1, "n3"),
                 what="n1 and n2 see n3 down")
    run_all(c, [("put", (f"new{i}", f"w{i}"), {"w": 2}) for i in range(200)]
            + [("delete", (f"old{i}",), {"w": 2}) for i in range(50)])
    assert all(c.node_view(i)["hints"].get("n3", 0) == 0 for i in range(2))  # nothing hinted
    started = time.monotonic()
    c.start_node(2)
    c.wait_ready([2])

    def level() -> bool:
        views = [c.node_view(i)["anti_entropy"] for i in range(3)]
        return (all(c.node_view(i)["keys"] == 250 for i in range(3))
                and len({v["tree_root"] for v in views}) == 1)
    c.wait_until(level, timeout_s=15, what="n3's records equal its co-replicas'")
    took = time.monotonic() - started
    # Record by record, on a sample (no quorum read: each node's own copy).
    for key in ("new0", "new99", "new199", "old0", "old25", "old49"):
        recs = [c.local_record(i, key) for i in range(3)]
        assert recs[0] == recs[1] == recs[2], (key, recs)
        assert recs[2]["deleted"] == key.startswith("old")
    view = c.node_view(2)["anti_entropy"]
    assert view["enabled"] and view["exchanges"] >= 1
    # Nothing else could have done it (no hints, no reads, no ring change): anti-entropy
    # repaired at least the 250 records n3 missed (200 writes, 50 deletes).
    repaired = sum(metric(c, i, "dynamopy_anti_entropy_keys_repaired_total") for i in range(3))
    assert repaired >= 250
    assert took < 15
    status = subprocess.run([sys.executable, "-m", "dynamopy", "status", "--url", c.url(2)],
                            capture_output=True, timeout=20)
    assert status.returncode == 0
    assert json.loads(status.stdout)["anti_entropy"].startswith("on, every 1s")
