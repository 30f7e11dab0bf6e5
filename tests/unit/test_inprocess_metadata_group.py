"""The running node's metadata group changes through the log (issue 14), over the in-memory
seams in virtual time: the metadata leader trims the group to its target size, replaces a
member down longer than the replacement delay with a live one, re-admits a non-seed by its
incarnation token (it then votes), and the log keeps committing after the original group
lost its majority."""

from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until

SEEDS = ["n1", "n2", "n3", "n4", "n5"]


def _group(c, i):
    return tuple(sorted(c.node(i).state.acceptors))


def test_group_is_trimmed_to_its_target_and_a_dead_member_is_replaced_after_the_delay():
    async def main():
        async with InProcessCluster(SEEDS, seed=3, group_size=3,
                                    metadata_group_replace_after_s=3.0) as c:
            await until(lambda: all(_group(c, i) == ("n1", "n2", "n3") for i in SEEDS), 20,
                        "the five seeds trim the group to three (lowest numbers)")
            await c.crash("n1")
            await until(lambda: _group(c, "n2") == ("n2", "n3", "n4"), 30,
                        "n1, down longer than 3 s, is replaced by n4")
            await c.crash("n2")
            await until(lambda: _group(c, "n3") == ("n3", "n4", "n5"), 30,
                        "n2 is replaced by n5")
            # Two of the three original members are down: only the new group can commit.
            epoch = await c.node("n5").propose({"op": "set_config", "hint_window_s": 7.0})
            log = [e["op"] for e in c.node("n3").log_entries(0)]
            return epoch, log, c.node("n4").node_view()["metadata"]

    epoch, log, meta = run_virtual(main())
    assert epoch > 0 and log.count("set_group") == 3
    assert meta["acceptors"] == ["n3", "n4", "n5"] and meta["voting"]


def test_a_joined_member_is_readmitted_by_its_token_and_then_votes():
    async def main():
        async with InProcessCluster(["n1", "n2", "n3"], joiners=["n4"], seed=5, n=2, r=1, w=1,
                                    metadata_group_replace_after_s=2.0) as c:
            await c.start("n4")
            await until(lambda: c.node("n4").state.member("n4") is not None
                        and c.node("n4").state.member("n4").state == "normal", 60,
                        "n4 joins and finishes its join")
            before = c.node("n4").node_view()["metadata"]["voting"]
            await c.crash("n1")
            await until(lambda: _group(c, "n2") == ("n2", "n3", "n4"), 30,
                        "n1 is replaced by the joiner n4")
            await until(lambda: c.node("n4").node_view()["metadata"]["voting"], 10,
                        "n4 votes once the change naming its token is learned")
            await c.crash("n2")
            # n1 and n2 down: {n3, n4} is a majority of the new group only if n4 votes.
            epoch = await c.node("n3").propose({"op": "set_config", "hint_window_s": 9.0})
            entry = [e for e in c.node("n3").log_entries(0) if e["op"] == "set_group"][-1]
            # Its re-admitted acceptor state is on its disk: after a crash it still votes.
            await c.crash("n4")
            await c.start("n4")
            again = await c.node("n3").propose({"op": "set_config", "hint_window_s": 10.0})
            return before, epoch, entry, again, c.node("n4").node_view()["metadata"]["voting"]

    before, epoch, entry, again, voting_after_restart = run_virtual(main())
    assert before is False and epoch > 0 and again > epoch and voting_after_restart
    assert entry["group"] == ["n2", "n3", "n4"] and set(entry["readmit"]) == {"n4"}


def test_a_member_that_learned_its_readmission_from_a_snapshot_is_named_again():
    """The change naming n4's token commits while n4 is down; more than a compaction
    interval of entries follow, so n4 learns it from a snapshot (which is not replayed) and
    does not vote; the metadata leader sees that and names its token again."""
    async def main():
        async with InProcessCluster(["n1", "n2", "n3"], joiners=["n4"], seed=9, n=2, r=1,
                                    w=1) as c:
            await c.start("n4")
            await until(lambda: c.node("n4").state.member("n4") is not None
                        and c.node("n4").state.member("n4").state == "normal", 60, "n4 joined")
            token = (await c.node("n4").group_token())["token"]
            await c.crash("n4")
            await c.node("n2").propose({"op": "set_group", "group": ["n1", "n2", "n4"],
                                        "from_group": ["n1", "n2", "n3"],
                                        "readmit": {"n4": token}})
            for i in range(70):
                await c.node("n2").propose({"op": "set_config", "hint_window_s": 100.0 + i})
            await c.start("n4")
            await until(lambda: c.node("n4").state.epoch >= c.node("n2").state.epoch, 20,
                        "n4 caught up")
            silent = not c.node("n4").node_view()["metadata"]["voting"]
            await until(lambda: c.node("n4").node_view()["metadata"]["voting"], 30,
                        "n4 named again and voting")
            return silent, [e for e in c.node("n2").log_entries(0) if e["op"] == "set_group"]

    silent, changes = run_virtual(main())
    assert silent, "n4 learned its readmission from a snapshot (the case under test)"
    assert changes[-1]["group"] == changes[-1]["from_group"] == ["n1", "n2", "n4"]
    assert changes[-1]["readmit"] == {"n4": changes[0]["readmit"]["n4"]}
