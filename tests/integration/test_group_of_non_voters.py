"""Review finding (session 4): the metadata group could be set to members that do not vote.

n1 loses its disk in a cluster of exactly N=3: it comes back as a replacement that cannot
be replaced yet ("add a member first"), alive, still listed as a normal member and as an
acceptor, but without a vote. Before the fix, `POST /cluster/config {"metadata_group":
["n1"]}` was accepted (202): n1 answers pings, so the 409 rule ("an explicit group has no
live majority") counted it; from then on nothing could commit, ever (no join, no setting,
not even n1's own replacement). `{"metadata_group_size": 1}` did the same through the
metadata leader, which kept the lowest-numbered live member, n1.
"""

import shutil

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_a_group_without_a_voting_majority_is_refused(make_cluster):
    c = make_cluster(3, n=3, r=2, w=2)
    c.kill(0)
    shutil.rmtree(f"{c.root}/{c.node_id(0)}")
    c.start_node(0)
    c.wait_until(lambda: c.node_view(0)["metadata"]["replacing"], 10, "n1 is a replacement")
    c.wait_until(lambda: {m["id"]: m["alive"] for m in c.cluster_info(1)["members"]}["n1"],
                 10, "n2 sees n1 alive")
    http = httpx.Client(base_url=c.url(1), timeout=20)
    try:
        resp = http.post("/cluster/config", json={"metadata_group": ["n1"]})
        assert resp.status_code == 409, resp.text
        resp = http.post("/cluster/config", json={"metadata_group": ["n1", "n2", "n3"]})
        assert resp.status_code == 202, resp.text   # the group it is already: 2 of 3 vote
        assert http.post("/cluster/config", json={"metadata_group_size": 1}).status_code == 202
        # the metadata leader trims the group (it looks every 0.5 s)
        c.wait_until(lambda: len(c.cluster_info(1)["metadata_group"]) == 1, 10, "trimmed")
        group = c.cluster_info(1)["metadata_group"]
        assert group != ["n1"], "the group was trimmed to the member without a vote"
        resp = http.post("/cluster/config", json={"hint_window_s": 1800})
        assert resp.status_code == 202, f"the metadata log no longer commits: {resp.text}"
    finally:
        http.close()
