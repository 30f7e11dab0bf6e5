"""Issue 14: the running cluster's metadata group changes through the log. Five nodes, seeds
n1..n3: a seed leaves and a live member takes its place; a SIGKILLed seed is removed (which
commits only through the new group: two of the three seeds are gone) and the group is
refilled; a wiped seed comes back as a replacement, streams its ranges back and is
re-admitted to the group; no acknowledged write is lost."""

import shutil
import signal
import time

import httpx
import pytest

from dynamopy.client import DynamoError
from tests.integration.test_cli import cli

pytestmark = pytest.mark.integration


def _members(info):
    return {m["id"]: m for m in info["members"]}


def test_seeds_leave_die_and_lose_their_disk_and_the_group_refills(make_cluster):
    t0 = time.monotonic()
    c = make_cluster(3, n=2, r=1, w=2)
    n4, n5 = c.add_node(), c.add_node(["--zone", "rack-b"])

    def settled(i, ids):
        info = c.cluster_info(i)
        ms = _members(info)
        return info["change"] is None and sorted(ms) == sorted(ids) and all(
            m["state"] == "normal" for m in ms.values())

    c.wait_until(lambda: settled(0, ["n1", "n2", "n3", "n4", "n5"]), 40, "n4 and n5 joined")
    acked = {}
    with c.client(n4, timeout_s=5) as cl:
        for i in range(40):
            acked[f"k{i}"] = cl.put(f"k{i}", f"v{i}".encode())["version"]

        # A seed leaves: the metadata leader gives its place to a live member, n5 rather
        # than the lower-numbered n4: n5's zone is one the group does not cover yet.
        cl.leave("n1")
        c.wait_until(lambda: settled(n4, ["n2", "n3", "n4", "n5"])
                     and c.cluster_info(n4)["metadata_group"] == ["n2", "n3", "n5"], 20,
                     "n1 left and n5 took its place in the metadata group")
        c.kill(0, signal.SIGTERM)
        info = c.cluster_info(n4)
        assert _members(info)["n5"]["zone"] == "rack-b" and _members(info)["n4"]["zone"] is None
        rows = {r.split()[0]: r.split() for r in
                cli("members", url=c.url(n4)).stdout.decode().splitlines()[1:]}
        assert (rows["n5"][3], rows["n5"][4]) == ("metadata", "rack-b") and rows["n4"][4] == "-"
        assert {m: v["role"] for m, v in _members(info).items()} == {
            "n2": "acceptor", "n3": "acceptor", "n4": "learner", "n5": "acceptor"}
        c.wait_until(lambda: c.node_view(n5)["metadata"]["voting"], 5, "n5 votes")

        # A seed dies and is removed: with n1 and n2 gone only the new group can commit it.
        c.kill(1)
        c.wait_until(lambda: not _members(c.cluster_info(n4))["n2"]["alive"], 10, "n2 seen down")
        cl.remove("n2")
        c.wait_until(lambda: settled(n4, ["n3", "n4", "n5"])
                     and c.cluster_info(n4)["metadata_group"] == ["n3", "n4", "n5"], 20,
                     "n2 removed and the group refilled with n4")
        for i in range(40, 60):
            acked[f"k{i}"] = cl.put(f"k{i}", f"v{i}".encode())["version"]

    # n3 loses its disk and restarts with the same id (its seeds n1, n2 are gone: it is
    # given a live member to ask): it comes back as a replacement and is re-admitted.
    c.kill(2)
    shutil.rmtree(f"{c.root}/{c.node_id(2)}")
    c.start_node(2, ["--join", c.url(n4)])

    votes, refused = [], []

    def back_and_voting():
        view = c.node_view(2)
        if view["metadata"]["replacing"]:  # no vote, no data served while being replaced
            votes.append(view["metadata"]["voting"])
            ready = httpx.get(c.url(2) + "/ready", timeout=3)
            with c.client(2, timeout_s=3) as cl3:
                try:
                    cl3.get("k0")
                    status = 200
                except DynamoError as e:
                    status = e.status
            if c.node_view(2)["metadata"]["replacing"]:  # still, after both answers
                refused.append(status)
                assert ready.status_code == 503
                assert "coming back as a replacement" in ready.json()["detail"]
            return False
        info = c.cluster_info(n4)
        return (settled(n4, ["n3", "n4", "n5"]) and not view["metadata"]["replacing"]
                and view["metadata"]["voting"] and view["ready"]
                and info["metadata_group"] == ["n3", "n4", "n5"]
                and all(m["role"] == "acceptor" for m in info["members"]))

    c.wait_until(back_and_voting, 30, "n3 replaced, streamed back and voting again")
    assert votes and not any(votes), "the wiped seed voted with an empty acceptor state"
    assert refused and set(refused) == {503}, "it served a read while being replaced"
    group_changes = [e for e in c.client(n4).log() if e["op"] == "set_group"]
    assert group_changes[-1]["group"] == ["n3", "n4", "n5"]
    assert list(group_changes[-1]["readmit"]) == ["n3"]  # its new incarnation's token
    log = [(e["op"], e.get("id")) for e in c.client(n4).log()]
    assert ("replace", "n3") in log and log.index(("replace", "n3")) < log.index(("join", "n3"))
    with c.client(n4, timeout_s=10) as cl, c.client(2, timeout_s=10) as back:
        for key, version in acked.items():
            if "n3" in cl.preference_list(key):
                rec = back.node_record(key)
                assert rec is not None and rec["version"] >= version, key
            assert cl.get(key, r=2).version >= version, key
        cl.set_config(hint_window_s=1800)  # the refilled group commits

    # The operator's knobs: a target size, an explicit group; bad ones are refused.
    http = httpx.Client(base_url=c.url(n4), timeout=15)
    assert http.post("/cluster/config", json={"metadata_group_size": 1}).status_code == 202
    # trimmed to the lowest-numbered live member (n3 joined again under a new number)
    lowest = min(c.cluster_info(n4)["members"], key=lambda m: m["number"])["id"]
    assert lowest in ("n4", "n5")
    c.wait_until(lambda: c.cluster_info(n4)["metadata_group"] == [lowest], 10, "trimmed to 1")
    resp = http.post("/cluster/config", json={"metadata_group": ["n5", "n4", "n3"]})
    assert resp.status_code == 202, resp.text
    info = c.cluster_info(n4)  # (the node that took the change has applied it)
    assert info["metadata_group"] == ["n3", "n4", "n5"] and info["metadata_group_size"] == 3
    for body, status in (({"metadata_group_size": 2}, 400), ({"metadata_group": ["n3", "n4"]}, 400),
                         ({"metadata_group": ["n3", "n4", "n9"]}, 404),
                         ({"metadata_group": None}, 400),
                         # a group with a bad setting: refused whole, the group unchanged
                         ({"metadata_group": [lowest], "r": 99}, 400)):
        assert http.post("/cluster/config", json=body).status_code == status, body
    assert c.cluster_info(n4)["metadata_group"] == ["n3", "n4", "n5"]
    http.close()
    print(f"metadata group scenario: {time.monotonic() - t0:.1f}s")
