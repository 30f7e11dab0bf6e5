"""Issue 14 item 1: a seed whose data directory is wiped comes back with the same id. It
never votes with the empty acceptor state; the cluster retires the old incarnation and the
node joins again, streaming its ranges back; no acknowledged write is lost."""

import shutil
import time

import httpx
import pytest

from dynamopy.client import DynamoError

pytestmark = pytest.mark.integration


def test_a_wiped_seed_comes_back_as_a_replacement_without_voting(make_cluster):
    t0 = time.monotonic()
    # Three seeds with N=2: removing one still leaves N members (with N=3 a fourth member
    # must be added first, else the replacement waits with a 409 in its log).
    c = make_cluster(3, n=2, r=1, w=1)
    acked = {}
    with c.client(0, timeout_s=5) as cl:
        for i in range(60):
            acked[f"k{i}"] = cl.put(f"k{i}", f"v{i}".encode(), w=2)["version"]
    wiped = 2  # n3, a seed: one of the metadata group
    c.kill(0)  # n1 is down meanwhile: n3 must not wait for every seed to learn it is known
    c.kill(wiped)
    shutil.rmtree(f"{c.root}/{c.node_id(wiped)}")
    c.start_node(wiped)
    c.wait_until(lambda: c.node_view(wiped)["metadata"]["replacing"], 8,
                 "the wiped seed knows it is a replacement (from n2 alone)")
    c.start_node(0)

    # It comes back without a vote and serves nothing while it is being replaced.
    votes, refused = [], []

    def replaced_and_back():
        view = c.node_view(wiped)
        votes.append(view["metadata"]["voting"])
        if view["metadata"]["replacing"]:
            ready = httpx.get(c.url(wiped) + "/ready", timeout=3)
            with c.client(wiped, timeout_s=3) as cl3:
                try:
                    cl3.get("k0")
                    status = 200
                except DynamoError as e:
                    status = e.status
            if c.node_view(wiped)["metadata"]["replacing"]:  # still, after both answers
                refused.append(status)
                assert ready.status_code == 503
                assert "coming back as a replacement" in ready.json()["detail"]
        if not view["ready"] or view["metadata"]["replacing"]:
            return False
        info = c.cluster_info(0)
        return info["change"] is None and any(
            m["id"] == "n3" and m["state"] == "normal" for m in info["members"])

    with c.client(1, timeout_s=5) as cl:  # the cluster keeps taking writes meanwhile
        for i in range(60, 80):  # (W=1: the node being replaced refuses to be a replica)
            acked[f"k{i}"] = cl.put(f"k{i}", f"v{i}".encode(), w=1)["version"]
    c.wait_until(replaced_and_back, 15, "the wiped seed replaced and back")
    assert votes and not any(votes), "the wiped seed voted with an empty acceptor state"
    assert refused and set(refused) == {503}, "it served a read while being replaced"

    info = c.cluster_info(0)
    me = next(m for m in info["members"] if m["id"] == "n3")
    assert me["state"] == "normal" and info["change"] is None
    assert info["metadata_group"] == ["n1", "n2", "n3"]
    assert {m["id"]: m["role"] for m in info["members"]} == {
        "n1": "acceptor", "n2": "acceptor", "n3": "retired_acceptor"}
    log = [(e["op"], e.get("id")) for e in c.client(0).log()]
    assert ("replace", "n3") in log and log.index(("replace", "n3")) < log.index(("join", "n3"))
    # Every key it replicates is on its disk again, and every acknowledged write reads
    # back with R=N (a write acked by W=1 on the wiped node alone would be gone: W=2 above).
    with c.client(0, timeout_s=10) as cl, c.client(wiped, timeout_s=10) as back:
        for key, version in acked.items():
            if "n3" in cl.preference_list(key):
                rec = back.node_record(key)
                assert rec is not None and rec["version"] >= version, key
            item = cl.get(key, r=2)
            assert item.version >= version, key
    # The metadata log still commits (two voters of three): a settings change goes through.
    with c.client(1, timeout_s=10) as cl:
        cl.set_config(hint_window_s=3600)
    assert time.monotonic() - t0 < 30


def test_a_wiped_seed_of_a_cluster_of_exactly_n_waits_and_says_why(make_cluster):
    """With N=3 and three members, removing the old incarnation would leave fewer than N:
    the node waits, never votes, serves nothing, and GET /ready says what to do."""
    c = make_cluster(3)
    c.kill(2)
    shutil.rmtree(f"{c.root}/{c.node_id(2)}")
    c.start_node(2)

    def blocked():
        r = httpx.get(c.url(2) + "/ready", timeout=3)
        return r.status_code == 503 and "add a member first" in r.json()["detail"]

    c.wait_until(blocked, 10, "the replacement blocked with a hint")
    view = c.node_view(2)
    assert view["metadata"]["replacing"] and not view["metadata"]["voting"]
    with c.client(0, timeout_s=10) as cl:  # the two voting seeds still commit changes
        cl.set_config(hint_window_s=1800)
    assert c.cluster_info(0)["hint_window_s"] == 1800
