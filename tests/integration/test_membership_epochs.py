"""Ring changes are told apart by their epoch (issue 20): a stale ``finish_*`` cannot finish
a later change, the ranges a node keeps follow the ring however it learned it, and a change
of the R/W defaults never lets a read miss an acknowledged write. Real processes."""

import concurrent.futures as cf
import threading

import httpx
import pytest

from dynamopy.client import DynamoError
from tests.integration.test_membership import (assert_all_readable, local_records, preload,
                                              state_of)

pytestmark = pytest.mark.integration


def log_changes(c, i):
    return [(e["epoch"], e["op"], e.get("id"), e.get("change_epoch"))
            for e in httpx.get(c.url(i) + "/cluster/log", timeout=5).json()["entries"]
            if e["op"] != "bootstrap"]


def test_a_stale_finish_join_does_not_finish_a_later_join(make_cluster):
    """Issue 20.1. n4's transfer finishes while no majority can commit its finish_join; it
    dies; its join is abandoned (remove). Restarted on its old data (with the durable "done"
    marker of the first join), n4 learns it was removed and joins again (a join is admitted
    only once the joiner answers on its peer port, so it cannot be re-added while down): its
    old finish must never finish the new join, and n4 must pull its ranges for the new join
    before it becomes normal."""
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
    c.start_node(n4)  # on its old data directory: it joins again by itself
    c.wait_until(lambda: state_of(c, 0, "n4") == "normal", timeout_s=60, what="n4 normal")
    with c.client(0) as cl:
        mine = [k for k in acked if "n4" in cl.preference_list(k)]
    assert len(mine) > 20
    missing = [k for k, rec in local_records(c, n4, mine).items()
               if (rec or {}).get("version") != acked[k]]
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
    def settings_changes(part: int) -> list[int]:  # 70 in all, 4 proposals in flight
        with httpx.Client(base_url=c.url(1), timeout=15) as http:
            return [http.post("/cluster/config", json={"hint_window_s": 3600 + i}).status_code
                    for i in range(part, 70, 4)]
    with cf.ThreadPoolExecutor(4) as pool:
        statuses = [st for part in pool.map(settings_changes, range(4)) for st in part]
    assert statuses == [202] * 70
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


def test_flipping_the_rw_defaults_never_lets_a_read_miss_a_write(make_cluster):
    """Issue 20.3. The defaults flip between (r=1, w=3) and (r=3, w=1) every 50 ms; each
    satisfies R + W > N. Writes go through node i and are read back at once through node
    i+1, both with the defaults. Peer messages are delayed 0-30 ms, so nodes apply each
    change at visibly different instants and a write acknowledged by one replica reaches the
    others late: a node still on (r=1, w=3) reading a write acknowledged under (r=3, w=1)
    would miss it. No read may miss its write."""
    c = make_cluster(3, r=1, w=3, extra=["--peer-delay-ms", "0-30"])
    halt = threading.Event()
    flips = [0]

    def flipper():
        with httpx.Client(base_url=c.url(2), timeout=10) as http:
            while not halt.wait(0.05):
                rw = {"r": 3, "w": 1} if flips[0] % 2 == 0 else {"r": 1, "w": 3}
                if http.post("/cluster/config", json=rw).status_code == 202:
                    flips[0] += 1

    stale, pairs, errors = [], [0], [0]

    def pairs_through(i):
        with c.client(i, timeout_s=10) as writer, c.client((i + 1) % 3, timeout_s=10) as reader:
            j = 0
            while not halt.is_set():
                key = f"flip-{i}-{j}"
                j += 1
                try:
                    version = writer.put(key, b"v")["version"]
                    got = reader.get(key).version
                except DynamoError as e:
                    if e.status == 404:
                        stale.append((key, "404"))
                    else:
                        errors[0] += 1
                    continue
                pairs[0] += 1
                if got != version:
                    stale.append((key, got))

    threads = [threading.Thread(target=flipper, daemon=True)] + [
        threading.Thread(target=pairs_through, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    try:
        c.wait_until(lambda: flips[0] >= 40, timeout_s=60, what="40 flips")
    finally:
        halt.set()
        for t in threads:
            t.join(timeout=30)
    settled = sum(1 for e in log_changes(c, 0) if e[1] == "finish_config")
    print(f"{flips[0]} flips ({settled} settled), {pairs[0]} write/read pairs, "
          f"{len(stale)} stale reads, {errors[0]} errors")
    assert pairs[0] > 100
    assert not stale, f"{len(stale)} reads missed the write just acknowledged: {stale[:5]}"
    # once the flips stop, the last change settles everywhere: its values are in effect
    last = {"r": 3, "w": 1} if flips[0] % 2 == 1 else {"r": 1, "w": 3}
    for i in range(3):
        c.wait_until(lambda i=i: c.cluster_info(i)["settling"] is None, timeout_s=20,
                     what=f"the defaults settled on node {i}")
        info = c.cluster_info(i)
        assert {"r": info["r"], "w": info["w"]} == last


def test_a_member_removed_while_down_joins_again_when_restarted_with_join(make_cluster):
    """Issue 20, checked: a member removed while down, restarted with ``--join``, finds in
    its own log that it is a member. It must learn that it was removed, refuse to coordinate
    as a non-member, and join again (it was started to be a member)."""
    c = make_cluster(3)
    n4 = c.add_node()
    c.wait_until(lambda: state_of(c, 0, "n4") == "normal", timeout_s=60, what="n4 normal")
    c.kill(n4)
    with httpx.Client(base_url=c.url(0), timeout=15) as http:
        assert http.delete("/cluster/members/n4", params={"force": "true"}).status_code == 202
    c.wait_until(lambda: state_of(c, 0, "n4") is None, timeout_s=60, what="n4 removed")
    c.start_node(n4)  # same data directory, same --join
    answers = []

    def rejoined():
        with httpx.Client(timeout=5) as http:  # meanwhile: never a 200 from a non-member
            before = c.node_view(n4)["state"]
            resp = http.put(c.url(n4) + "/kv/probe", content=b"x")
            answers.append((before, c.node_view(n4)["state"], resp.status_code))
        return state_of(c, 0, "n4") == "normal"

    try:
        c.wait_until(rejoined, timeout_s=30, what="n4 a member again")
    finally:
        print(f"n4 (state before, after, PUT status): {answers[:2]} ... {answers[-2:]}")
    assert not [a for a in answers if a == ("none", "none", 200)], "a non-member coordinated"
    ops = [e[1] for e in log_changes(c, 0)]
    assert ops[-4:] == ["remove", "finish_leave", "join", "finish_join"], ops
    c.wait_ready([n4])
