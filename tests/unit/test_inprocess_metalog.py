"""The metadata log over the in-memory seams: three production nodes agree on a proposed
join, in the same slot, and a node restarted from its (synced) disk still has it."""

from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

IDS = ["n1", "n2", "n3"]
JOIN = {"op": "join", "id": "n4", "url": "mem://n4", "peer": "n4"}


def test_three_nodes_agree_on_a_join_entry():
    async def main():
        async with InProcessCluster(IDS, seed=6) as c:
            epoch = await c.node("n2").propose(dict(JOIN))
            await until(lambda: all(c.node(i).state.epoch >= epoch for i in IDS), 10,
                        "every node applies the join")
            logs = {i: c.node(i).log_entries(0) for i in IDS}
            joiner = {i: c.node(i).state.member("n4") for i in IDS}
            await c.crash("n3")
            restarted = await c.start("n3")
            return epoch, logs, joiner, restarted.log_entries(0), restarted.state.epoch

    epoch, logs, joiner, after_restart, restart_epoch = run_virtual(main())
    assert logs["n1"] == logs["n2"] == logs["n3"]
    joins = [e for e in logs["n1"] if e["op"] == "join"]
    assert len(joins) == 1 and joins[0]["epoch"] == epoch and joins[0]["id"] == "n4"
    assert all(m is not None and m.state == "joining" for m in joiner.values())
    assert restart_epoch >= epoch and any(e["op"] == "join" for e in after_restart)
