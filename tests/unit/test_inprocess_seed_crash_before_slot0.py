"""A seed that crashed after it adopted the metadata group as a voter but before it learned
slot 0, restarted on its intact disk after the other seeds bootstrapped (three production
nodes in one process on virtual time; the restart runs the production ``ensure_member``).
It finds the cluster bootstrapped and joins through the seeds, but it still holds its
acceptor state from before the bootstrap, and slot 0 names its store: it votes. The log
line must say so (review5: it said "it will not vote")."""

import logging

from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

SEEDS = ["n1", "n2", "n3"]


def test_a_seed_that_crashed_before_slot_0_says_it_votes_and_does(caplog):
    caplog.set_level(logging.WARNING, logger="dynamopy.node.bootstrap")

    async def main():
        c = InProcessCluster(SEEDS, seed=3, anti_entropy_interval_s=3600.0)
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
            c.production_start.add("n3")
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


class _OtherStore(InProcessCluster):
    """The seeds' bootstrap names another store token for n3 than the one n3 voted from
    (n3's store was replaced between the seeds asking it and it adopting the group)."""

    def identities(self):
        return [{**i, "token": "an-older-store"} if i["id"] == "n3" else i
                for i in super().identities()]


def test_a_seed_whose_slot_0_names_another_store_comes_back_as_a_replacement(caplog):
    """The other outcome of the same restart: n3 learns slot 0, which names another store
    of its id, so its acceptor state stops voting there (identity rule 5) and the node is
    ``disowned``. Before, it stayed so (not ready, no vote, no data) until restarted again;
    now it comes back as a replacement at once, as a disowned seed restarted does."""
    caplog.set_level(logging.WARNING, logger="dynamopy.node.bootstrap")

    async def main():
        c = _OtherStore(SEEDS, seed=3, anti_entropy_interval_s=3600.0, n=2, r=1, w=1)
        c.network.partition([["n1", "n2"], ["n3"]])
        try:
            for s in SEEDS:
                await c.start(s)
            await until(lambda: c.node("n3").metalog.voter, 10, "n3 adopted the group")
            await c.wait_ready(["n1", "n2"])
            await c.crash("n3")
            c.network.heal()
            c.production_start.add("n3")
            await c.start("n3")
            await until(lambda: ("replace", "n3") in
                        [(e["op"], e.get("id")) for e in c.node("n1").log_entries(0)], 60,
                        "n3 came back as a replacement")
            await until(lambda: c.node("n3").is_ready, 60, "n3 joined again")
        finally:
            await c.stop_all()
    run_virtual(main())
    assert "whose bootstrap does not name this store" in caplog.text
