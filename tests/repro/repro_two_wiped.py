"""Review finding (session 4), fixed: two members lose their disks at once (5 nodes, N=3).

Each came back as a replacement and proposed `replace` of itself while the other's removal
was in progress; each was a gainer of the other's removal, so each `replace` abandoned the
other (the dead-gainer rule): `replace n4`, `replace n5`, ... about one entry a second for
ever, neither back, no ring change possible. A replacing node now waits for another
member's change (it takes part in it as a gainer). Before the fix: 59 log entries in 40 s,
not back; after: both back in 8-11 s, every acknowledged write read back.

About 20 s of real processes, so run by hand: ``python -m pytest -q tests/repro/repro_two_wiped.py``.
The suite's regression test is ``tests/unit/test_replacement_waits.py``.
"""

import shutil

import pytest

pytestmark = pytest.mark.integration


def test_two_members_wiped_at_once_both_come_back(make_cluster):
    c = make_cluster(3, n=3, r=2, w=2)
    a = c.add_node()
    c.wait_ready([a], 30)
    b = c.add_node()
    c.wait_ready([b], 30)
    c.wait_until(lambda: c.cluster_info(0)["change"] is None
                 and len(c.cluster_info(0)["members"]) == 5, 30, "five members")
    with c.client(0) as cl:
        acked = {f"k{i}": cl.put(f"k{i}", b"v")["version"] for i in range(40)}
    for i in (a, b):
        c.kill(i)
        shutil.rmtree(f"{c.root}/{c.node_id(i)}")
    for i in (a, b):
        c.start_node(i)

    def back():
        info = c.cluster_info(0)
        return (info["change"] is None and len(info["members"]) == 5
                and all(m["state"] == "normal" for m in info["members"])
                and not any(c.node_view(i)["metadata"]["replacing"] for i in (a, b)))

    c.wait_until(back, 30, "both wiped members replaced and back")
    log = [e["op"] for e in c.client(0).log()]
    assert log.count("replace") <= 4, log
    with c.client(0) as cl:
        for key, version in acked.items():
            assert cl.get(key, r=2).version >= version, key
