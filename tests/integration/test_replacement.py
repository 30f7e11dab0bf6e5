"""Issue 14 item 1: a seed whose data directory is wiped comes back with the same id. It
never votes with the empty acceptor state; the cluster retires the old incarnation and the
node joins again, streaming its ranges back; no acknowledged write is lost. (The full
scenario, with the node re-admitted to the metadata group afterwards, is in
test_metadata_group.py.)"""

import shutil

import httpx
import pytest

pytestmark = pytest.mark.integration


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
