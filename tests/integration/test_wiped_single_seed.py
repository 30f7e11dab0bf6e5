"""Review finding (session 4), fixed in session 5: the only seed of a cluster loses its disk.

A cluster started from one seed (``--seeds`` naming one URL, or ``dynamopy serve`` with no
seeds) grows its metadata group as nodes join, here to 3. The seed is SIGKILLed, its data
directory removed, and it is started again while the two other members are paused, so it
hears nobody: its only seed is itself, which answers epoch 0, so it bootstraps a one-node
cluster of its own (before the fix it then voted in the real group with an empty acceptor
state, or kept its own cluster for ever). Now that cluster has another identity (its slot 0
names the new store's token), the real members' Paxos messages are refused by it and its
messages by them, and once the members are back it hears their leader, drops its one-node
log and comes back as a replacement (``replace`` in the real log).

Writes a client made to the one-node cluster meanwhile (acknowledged: 200) are kept when it
drops its log (review 5: they were all deleted, since with no ring every range looked lost)
and handed to their owners in the real cluster once it learns its ring.
"""

import shutil
import time

import pytest

from dynamopy.client import DynamoError

pytestmark = pytest.mark.integration


def test_the_only_seed_wiped_comes_back_as_a_replacement_not_a_voter(make_cluster):
    c = make_cluster(1, n=1, r=1, w=1, extra=["--anti-entropy-interval-s", "0"])
    c.wait_ready([c.add_node(), c.add_node()], 20)
    c.wait_until(lambda: len(c.cluster_info(1)["metadata_group"]) == 3
                 and c.cluster_info(1)["change"] is None, 15, "the group grew to 3")
    seed = c.node_id(0)
    real = c.node_view(1)["metadata"]["cluster"]
    old_store = c.node_view(0)["store_token"]
    assert real and old_store and c.node_view(0)["metadata"]["cluster"] == real

    c.kill(0)
    shutil.rmtree(f"{c.root}/{seed}")
    for i in (1, 2):
        c.pause(i)
    try:
        c.start_node(0)
        c.wait_until(lambda: c.node_view(0)["epoch"] > 0, 10, "the wiped seed bootstrapped alone")
        alone = c.node_view(0)["metadata"]
        assert alone["cluster"] not in (None, real), alone  # a cluster of its own
        assert c.node_view(0)["store_token"] not in (None, old_store)  # a new store
        c.wait_until(lambda: c.node_view(0)["ready"], 10, "the one-node cluster serves")
        with c.client(0, timeout_s=3) as cl:
            acked = {f"alone{k}": cl.put(f"alone{k}", f"v{k}")["version"] for k in range(10)}
    finally:
        for i in (1, 2):
            c.resume(i)

    def replaced():
        return ("replace", seed) in [(e["op"], e.get("id")) for e in c.client(1).log()]

    c.wait_until(replaced, 15, "the wiped seed was replaced")
    c.wait_until(lambda: c.node_view(0)["state"] == "normal"
                 and c.node_view(0)["metadata"]["cluster"] == real, 15,
                 "the wiped seed joined the real cluster again")
    assert "lists it: dropping its one-node cluster" in c.log_tail(0, 200)

    def unreadable():
        out = []
        with c.client(1, timeout_s=3) as cl:
            for k in acked:
                try:
                    cl.get(k)
                except DynamoError as e:
                    out.append((k, e.status))
        return out

    deadline = time.monotonic() + 8  # the hand-off retries every second
    while (missing := unreadable()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not missing, f"writes acknowledged by the one-node cluster lost: {missing}"
