"""Review 5 probes of issue 14's wiped-seed paths (cluster identity, listen, yield) with real
processes; each passed (held) when run. Too slow for the suite (~60 s in all): run by hand,
``python -m pytest -q -s tests/repro/repro_review5_probes.py``. The finding of this review
(a one-node cluster's acknowledged writes deleted when it yields) is asserted in the suite by
``tests/integration/test_wiped_single_seed.py``."""

import shutil
import time

import pytest

from dynamopy.client import DynamoError

pytestmark = pytest.mark.integration


def _grow_single_seed(make_cluster):
    c = make_cluster(1, n=1, r=1, w=1, extra=["--anti-entropy-interval-s", "0"])
    c.wait_ready([c.add_node(), c.add_node()], 20)
    c.wait_until(lambda: len(c.cluster_info(1)["metadata_group"]) == 3
                 and c.cluster_info(1)["change"] is None, 15, "the group grew to 3")
    return c


@pytest.mark.parametrize("attempt", range(3))
def test_probe_the_only_seed_wiped_and_restarted_at_once_never_bootstraps_alone(make_cluster,
                                                                                 attempt):
    """Nobody paused: the only seed (likely the leader) is SIGKILLed, wiped and started at
    once. The listen window (0.5 s) races the election of a new leader and the peer
    client's reconnect back-off (0.5 s max): does it bootstrap a one-node cluster?"""
    c = _grow_single_seed(make_cluster)
    seed = c.node_id(0)
    real = c.node_view(1)["metadata"]["cluster"]
    c.kill(0)
    shutil.rmtree(f"{c.root}/{seed}")
    c.start_node(0)
    seen = set()
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        try:
            v = c.node_view(0)
            seen.add((v["metadata"]["cluster"], v["epoch"] > 0, v["ready"]))
            if v["state"] == "normal" and v["metadata"]["cluster"] == real:
                break
        except Exception:
            pass
        time.sleep(0.05)
    tail = c.log_tail(0, 200)
    alone = [s for s in seen if s[0] not in (None, real)]
    assert not alone and "dropping its one-node cluster" not in tail, (seen, tail)


def test_probe_all_seeds_killed_and_restarted_with_disks_intact(make_cluster):
    c = make_cluster(3)
    with c.client(0, timeout_s=5) as cl:
        for k in range(10):
            cl.put(f"a{k}", f"v{k}")
    cluster = c.node_view(0)["metadata"]["cluster"]
    for i in range(3):
        c.kill(i)
    for i in range(3):
        c.start_node(i)
    c.wait_ready(range(3), 20)
    for i in range(3):
        md = c.node_view(i)["metadata"]
        assert md["voting"] and md["cluster"] == cluster, md
    with c.client(1, timeout_s=5) as cl:
        for k in range(10):
            assert cl.get(f"a{k}").value == f"v{k}".encode()
    with c.client(2, timeout_s=5) as cl:
        cl.put("after", "x")
    # a membership change still commits (the group votes)
    c.wait_ready([c.add_node()], 20)


@pytest.mark.parametrize("delay", [0.0, 0.4, 0.9])
def test_probe_a_seed_wiped_during_the_initial_bootstrap(tmp_path, delay):
    """Seeds 0 and 1 wait for seed 2; seed 2 starts, is SIGKILLed ``delay`` s after its
    peers could have adopted its store token, wiped and restarted: the cluster still forms,
    seed 2 ends up a normal member, and writes work."""
    from tests.integration.cluster import LocalCluster
    c = LocalCluster(str(tmp_path / "c"), 3, n=2, r=1, w=1)  # n=3 cannot replace in 3
    try:
        c.start_node(0)
        c.start_node(1)
        time.sleep(1.0)
        c.start_node(2)
        c.wait_until(lambda: c.node_view(2)["store_token"] is not None, 10, "seed 2 answers")
        time.sleep(delay)
        c.kill(2)
        shutil.rmtree(f"{c.root}/{c.node_id(2)}")
        c.start_node(2)
        c.wait_ready(range(3), 25)
        views = [c.node_view(i) for i in range(3)]
        clusters = {v["metadata"]["cluster"] for v in views}
        assert len(clusters) == 1 and None not in clusters, views
        with c.client(0, timeout_s=5) as cl:
            cl.put("x", "1")
        with c.client(2, timeout_s=5) as cl:
            assert cl.get("x").value == b"1"
        print("seed 2 path:", [l for l in c.log_tail(2, 300).splitlines()
                               if "WARNING" in l][:3])
    finally:
        c.stop()


def test_probe_the_yielding_seed_killed_right_after_it_drops_its_log(make_cluster):
    """As test_wiped_single_seed, but SIGKILL the seed as soon as it logs that it drops its
    one-node cluster (a crash in the middle of the yield), then start it again: it still
    comes back in the real cluster and the writes it acknowledged alone are readable."""
    c = _grow_single_seed(make_cluster)
    seed = c.node_id(0)
    real = c.node_view(1)["metadata"]["cluster"]
    c.kill(0)
    shutil.rmtree(f"{c.root}/{seed}")
    for i in (1, 2):
        c.pause(i)
    try:
        c.start_node(0)
        c.wait_until(lambda: c.node_view(0)["ready"], 10, "alone and ready")
        with c.client(0, timeout_s=3) as cl:
            acked = {f"y{k}": cl.put(f"y{k}", "v")["version"] for k in range(10)}
    finally:
        for i in (1, 2):
            c.resume(i)
    deadline = time.monotonic() + 10
    while "dropping its one-node cluster" not in c.log_tail(0, 300):
        assert time.monotonic() < deadline, c.log_tail(0, 50)
        time.sleep(0.01)
    c.kill(0)
    c.start_node(0)
    c.wait_until(lambda: c.node_view(0)["state"] == "normal"
                 and c.node_view(0)["metadata"]["cluster"] == real, 25, "back in the real cluster")
    deadline = time.monotonic() + 8
    while True:
        missing = []
        with c.client(1, timeout_s=3) as cl:
            for k in acked:
                try:
                    cl.get(k)
                except DynamoError as e:
                    missing.append((k, e.status))
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not missing, missing


def test_probe_the_only_seed_restarted_with_its_disk_intact_still_votes(make_cluster):
    """The only seed (it bootstrapped alone from an empty directory: paxos/alone on disk) is
    SIGKILLed and restarted with its disk; then another group member is paused, so a
    change commits only with the restarted seed's vote."""
    c = _grow_single_seed(make_cluster)
    real = c.node_view(1)["metadata"]["cluster"]
    c.kill(0)
    c.start_node(0)
    c.wait_ready([0], 20)
    md = c.node_view(0)["metadata"]
    assert md["voting"] and md["cluster"] == real and not md.get("other_cluster"), md
    c.pause(1)
    try:
        with c.client(2, timeout_s=10) as cl:
            cl.set_config(hint_window_s=61)  # a settings change commits too
        c.wait_ready([c.add_node(through=2)], 25)  # a join commits: s0 + n2 voted
    finally:
        c.resume(1)
