"""A seed that crashed after it adopted the metadata group as a voter but before it learned
slot 0, restarted on its intact disk after the other seeds bootstrapped (three production
nodes in one process on virtual time; the restart runs the production ``ensure_member``).
It finds the cluster bootstrapped and joins through the seeds, but it still holds its
acceptor state from before the bootstrap, and slot 0 names its store: it votes. The log
line must say so (review5: it said "it will not vote")."""

import logging

from dynamopy.node.bootstrap import ensure_member
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until
from dynamopy.sim.system_contact import MemoryContact

SEEDS = ["n1", "n2", "n3"]


class Cluster(InProcessCluster):
    restarted: set = set()

    async def _become_member(self, node):
        if node.id in self.restarted:  # what `dynamopy serve` runs on a restart
            contact = MemoryContact(node.id, lambda: self.nodes,
                                    lambda a, b: self.network.connected(a, b))
            return await ensure_member(node, contact)
        return await super()._become_member(node)


def test_a_seed_that_crashed_before_slot_0_says_it_votes_and_does(caplog):
    caplog.set_level(logging.WARNING, logger="dynamopy.node.bootstrap")

    async def main():
        c = Cluster(SEEDS, seed=3, anti_entropy_interval_s=3600.0)
        c.restarted = set()
        # n3 adopts the group (a voter) but hears nothing: n1 and n2 bootstrap without it
        c.network.partition([["n1", "n2"], ["n3"]])
        try:
            for s in SEEDS:
                await c.start(s)
            await until(lambda: c.node("n3").metalog.voter, 10, "n3 adopted the group")
            await c.wait_ready(["n1", "n2"])
            assert not c.node("n3").state.bootstrapped
            await c.crash("n3")
            c.network.heal()
            c.restarted.add("n3")
            await c.start("n3")
            await until(lambda: c.node("n3").state.member("n3") is not None, 30,
                        "n3 learned the log")
            n3 = c.node("n3").metalog
            assert n3.paxos.is_acceptor and not n3.disowned
            # it does vote: with n1 cut off, n2 and n3 still commit a change
            c.network.partition([["n1"], ["n2", "n3"]])
            before = c.node("n2").state.epoch
            await until(lambda: c.node("n2").metalog.is_leader
                        or c.node("n3").metalog.is_leader, 30, "n2 or n3 leads")
            leader = c.node("n2") if c.node("n2").metalog.is_leader else c.node("n3")
            await leader.propose({"op": "set_config", "anti_entropy_rate": 7})
            await until(lambda: c.node("n3").state.settings.anti_entropy_rate == 7, 30,
                        "n2 and n3 committed a change without n1")
            assert c.node("n1").state.epoch == before
        finally:
            await c.stop_all()
    run_virtual(main())
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("n3 "))
    assert "will not vote" not in line and "votes with it" in line, line
