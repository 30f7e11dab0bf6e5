"""Found by a user (session 13): seeds fewer than --n (`--seeds A,B --n 3`) waited for ever,
unready, logging "bootstrap proposal: n=3 needs at least 3 seeds" three times a second. A
new cluster needs at least N seeds (each key needs N distinct members), so once every seed
answers and none runs a cluster, each seed says why once (an ERROR line naming --seeds and
--n, and `GET /ready`) and proposes nothing. It stays up rather than exits (review 14): fewer
seeds than --n still serve to join a cluster they already run, and a wiped seed of a cluster
made with a lower --n comes back as a replacement once the cluster reaches it."""

import os
import shutil

import httpx
import pytest

from dynamopy.launch import Nodes
from tests.integration.cluster import allocate_ports, wait_until

pytestmark = pytest.mark.integration


def _ready_detail(launch, i) -> str:
    return httpx.get(launch.url(i) + "/ready", timeout=2).json()["detail"]


def test_seeds_fewer_than_n_say_so_once_and_propose_nothing(tmp_path):
    base = allocate_ports(2)
    launch = Nodes(str(tmp_path), base, env={"DYNAMOPY_CLUSTER_SECRET": "test-secret"})
    seeds = f"{launch.url(0)},{launch.url(1)}"
    flags = ["--seeds", seeds, "--n", "3", "--r", "2", "--w", "2"]
    try:
        launch.start(0, flags)
        # while the other seed is not up, /ready says what the node waits for and why
        wait_until(lambda: "fewer than --n 3" in _ready_detail(launch, 0),
                   timeout_s=30, what="n1's /ready naming --seeds and --n")
        launch.start(1, flags)
        for i in range(2):
            wait_until(lambda i=i: "--n is 3" in _ready_detail(launch, i), timeout_s=30,
                       what=f"n{i + 1}'s /ready saying it cannot bootstrap")
        for i in range(2):
            assert launch.running(i)
            r = httpx.get(launch.url(i) + "/ready", timeout=2)
            assert r.status_code == 503 and "--seeds names 2 members" in r.json()["detail"]
            log = open(launch.log_path(i)).read()
            errors = [line for line in log.splitlines() if " ERROR " in line]
            assert len(errors) == 1 and "--seeds names 2 members" in errors[0] \
                and "--n is 3" in errors[0], log[-3000:]
            assert "needs at least 3 seeds" not in log   # no refused bootstrap proposals
    finally:
        launch.stop()


def test_fewer_seeds_than_n_still_join_a_cluster_they_run(make_cluster):
    c = make_cluster(1, n=1, r=1, w=1)
    i = 1
    c.launch.start(i, ["--seeds", f"{c.url(0)},{c.url(i)}", "--n", "3"],
                   {"DYNAMOPY_CLUSTER_SECRET": c.secret})
    c.wait_ready([i], timeout_s=60)
    c.wait_until(lambda: {m["id"]: m["state"] for m in c.cluster_info(0)["members"]}
                 == {"n1": "normal", "n2": "normal"}, timeout_s=30, what="n2 joined")
    assert c.procs[i].poll() is None


def test_a_wiped_seed_restarted_with_fewer_seeds_than_n_comes_back_as_a_replacement(
        make_cluster):
    """Review 14 (exited 2 on a8e7fa3): the only seed of a cluster made with --n 1 (n2, n3
    joined since, the metadata group grew to 3) loses its disk and restarts with the default
    --n 3 while the others are paused: no seed runs a cluster it can reach, but the flags no
    longer matter once the cluster exists. It waits, and once the cluster reaches it, it
    comes back as a replacement."""
    c = make_cluster(1, n=1, r=1, w=1)
    env = {"DYNAMOPY_CLUSTER_SECRET": c.secret}
    for i in (1, 2):
        c.launch.start(i, ["--join", c.url(0)], env)
        c.wait_ready([i], timeout_s=60)
    c.wait_until(lambda: len(c.cluster_info(0)["metadata_group"]) == 3
                 and c.cluster_info(0)["change"] is None, timeout_s=60, what="a group of 3")
    with c.client(1) as cl:
        cl.put("k", "v", w=1)
    c.kill(0)
    shutil.rmtree(os.path.join(c.root, c.node_id(0)))
    for i in (1, 2):
        c.pause(i)
    try:
        c.launch.start(0, ["--seeds", c.url(0)], env)     # --n left at its default, 3
        wait_until(lambda: "--n is 3" in _ready_detail(c.launch, 0), timeout_s=30,
                   what="n1 saying it cannot bootstrap")
        assert c.launch.running(0)
    finally:
        for i in (1, 2):
            c.resume(i)
    c.wait_ready([0], timeout_s=90)
    c.wait_until(lambda: {m["id"]: m["state"] for m in c.cluster_info(1)["members"]}
                 == {"n1": "normal", "n2": "normal", "n3": "normal"}, timeout_s=60,
                 what="n1 back as a member")
    with c.client(0) as cl:
        assert cl.get("k", r=1).value == b"v"
