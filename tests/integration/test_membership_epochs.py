"""Ring changes are told apart by their epoch (issue 20): a stale ``finish_*`` cannot finish
a later change, the ranges a node keeps follow the ring however it learned it, and a change
of the R/W defaults never lets a read miss an acknowledged write. Real processes."""

import httpx
import pytest

from tests.integration.test_membership import assert_all_readable, preload, state_of

pytestmark = pytest.mark.integration


def log_changes(c, i):
    return [(e["epoch"], e["op"], e.get("id"), e.get("change_epoch"))
            for e in httpx.get(c.url(i) + "/cluster/log", timeout=5).json()["entries"]
            if e["op"] != "bootstrap"]


def test_a_stale_finish_join_does_not_finish_a_later_join(make_cluster):
    """Issue 20.1. n4's transfer finishes while no majority can commit its finish_join; it
    dies; its join is abandoned (remove) and n4 is added again while down. Restarted on its
    old data, n4 proposes finish_join from its old state at once: it must be refused, and n4
    must pull its ranges for the new join before it becomes normal."""
    c = make_cluster(3)
    c.kill(2)  # n3 down: n4's pull from it waits out the dead-source grace (5 s) ...
    n4 = c.add_node()
    c.wait_until(lambda: c.node_view(n4)["state"] == "joining", timeout_s=30,
                 what="n4 joining")
    c.kill(0)  # ... while the rest of the metadata group dies: no finish_join can commit
    c.kill(1)
    c.wait_until(lambda: (c.node_view(n4)["transfer"] or {}).get("done"), timeout_s=30,
                 what="n4's transfer done")  # its durable "done" marker is written
    c.kill(n4)
    for i in range(3):
        c.start_node(i)
    c.wait_ready(range(3))
    with httpx.Client(base_url=c.url(0), timeout=15) as http:
        assert http.delete("/cluster/members/n4", params={"force": "true"}).status_code == 202
        acked = preload(c, 60, prefix="after-remove-")
        me = {"id": "n4", "url": c.url(n4), "peer": f"127.0.0.1:{c.base + 1000 + n4}"}
        assert http.post("/cluster/members", json=me).status_code == 202
    c.start_node(n4)  # on its old data directory
    c.wait_until(lambda: state_of(c, 0, "n4") == "normal", timeout_s=60, what="n4 normal")
    with c.client(0) as cl:
        mine = [k for k in acked if "n4" in cl.preference_list(k)]
    assert len(mine) > 20
    missing = [k for k in mine if (c.local_record(n4, k) or {}).get("version") != acked[k]]
    print(f"n4 lacks {len(missing)} of the {len(mine)} keys it replicates; log {log_changes(c, 0)}")
    assert not missing, f"n4 became normal without {len(missing)} of its {len(mine)} keys"
    with c.client(n4, timeout_s=10) as cl:
        lost = [k for k, v in acked.items() if cl.get(k, r=2).version != v]
    assert not lost, f"{len(lost)} of {len(acked)} reads at R=2 through n4 missed the write"
    changes = log_changes(c, 0)
    assert [e[1] for e in changes] == ["join", "remove", "join", "finish_join"], changes
    assert changes[3][3] == changes[2][0], "the finish names the second join"


def test_catching_up_from_a_snapshot_drops_the_ranges_a_node_lost(make_cluster):
    """Issue 20.2. n1 is down across a join, its finish and 70 settings changes (more than a
    compaction interval), so it catches up from a snapshot: it must drop the ranges it gave
    to n4, as it would have through the entries."""
    c = make_cluster(3)
    acked = preload(c, 200)
    c.kill(0)
    n4 = c.add_node(through=1)
    c.wait_until(lambda: state_of(c, 1, "n4") == "normal", timeout_s=60, what="n4 normal")
    with httpx.Client(base_url=c.url(1), timeout=15) as http:
        for i in range(70):
            assert http.post("/cluster/config", json={"hint_window_s": 3600 + i}).status_code == 202
    epoch = c.cluster_info(1)["epoch"]
    with c.client(1) as cl:
        mine = sum(1 for k in acked if "n1" in cl.preference_list(k))
    assert 100 < mine < 200
    c.start_node(0)
    c.wait_ready([0])
    c.wait_until(lambda: c.node_view(0)["epoch"] >= epoch, what="n1 caught up")
    try:
        c.wait_until(lambda: c.node_view(0)["keys"] == mine, timeout_s=15,
                     what="n1 holds only the keys it replicates")
    finally:
        print(f"n1 holds {c.node_view(0)['keys']} records; it replicates {mine} of {len(acked)}")
    assert_all_readable(c, acked, via=0)
