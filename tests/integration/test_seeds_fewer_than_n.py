"""Found by a user (session 13): seeds fewer than --n (`--seeds A,B --n 3`) waited for ever,
unready, logging "bootstrap proposal: n=3 needs at least 3 seeds" three times a second. A
new cluster needs at least N seeds (each key needs N distinct members), so once every seed
answers and none runs a cluster, each seed exits 2 with one line naming --seeds and --n.
Fewer seeds than --n still serve to join a cluster they already run."""

import httpx
import pytest

from dynamopy.launch import Nodes
from tests.integration.cluster import allocate_ports, wait_until

pytestmark = pytest.mark.integration


def test_seeds_fewer_than_n_exit_2_naming_both_flags(tmp_path):
    base = allocate_ports(2)
    launch = Nodes(str(tmp_path), base, env={"DYNAMOPY_CLUSTER_SECRET": "test-secret"})
    seeds = f"{launch.url(0)},{launch.url(1)}"
    flags = ["--seeds", seeds, "--n", "3", "--r", "2", "--w", "2"]
    try:
        launch.start(0, flags)
        # while the other seed is not up, /ready says what the node waits for and why
        wait_until(lambda: "fewer than --n 3" in httpx.get(launch.url(0) + "/ready",
                                                           timeout=2).json()["detail"],
                   timeout_s=30, what="n1's /ready naming --seeds and --n")
        launch.start(1, flags)
        for i in range(2):
            rc = launch.procs[i].wait(timeout=30)
            log = open(launch.log_path(i)).read()
            errors = [line for line in log.splitlines() if " ERROR " in line]
            assert rc == 2, (rc, log[-3000:])
            assert len(errors) == 1 and "--seeds names 2 members" in errors[0] \
                and "--n is 3" in errors[0], log[-3000:]
            assert "fewer than --n 3" in log   # the warning while it waited for the seeds
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
