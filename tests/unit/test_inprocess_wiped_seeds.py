"""Every seed wiped after the metadata group moved to non-seeds, over the in-memory seams:
six production nodes in one process on virtual time (n1..n3 seeds, n4..n6 joined; the
group set to {n4, n5, n6}). The three seeds crash and come back on empty disks through the
production ``ensure_member`` (``MemoryContact``: what ``dynamopy serve`` asks over HTTP).
Each asks every seed, all answer epoch 0: before the fix they bootstrapped a new cluster
whose acceptors shared ids with the real one (review finding 1, ``repro_wiped_seeds.py``)."""

import asyncio

from dynamopy.api.members import set_group
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster, until
from dynamopy.sim.storage import MemoryDisk

SEEDS = ["n1", "n2", "n3"]
OTHERS = ["n4", "n5", "n6"]


async def _real_cluster(seed: int) -> InProcessCluster:
    c = InProcessCluster(SEEDS, seed=seed, joiners=OTHERS, n=3, anti_entropy_interval_s=3600.0)
    await c.start_all()
    for mid in OTHERS:
        await c.start(mid)
        await until(lambda: _normal(c, mid), 60, f"{mid} joined")
    for _ in range(20):  # the last joiner's metadata catch-up may lag a moment
        try:
            await set_group(c.node("n4"), OTHERS)
            break
        except Exception:  # noqa: BLE001 - not caught up yet: retry
            await asyncio.sleep(0.5)
    await until(lambda: all(c.node(i).state.acceptors == tuple(OTHERS) for i in c.nodes), 30,
                "the group moved to the non-seeds")
    for s in SEEDS:
        await c.crash(s)
        c.disks[s] = MemoryDisk()
        c.production_start.add(s)
    return c


def _normal(c, mid):
    m = c.node("n1").state.member(mid)
    return m is not None and m.state == "normal" and c.node(mid).is_ready


def _log(c, via="n4"):
    return [(e["op"], e.get("id")) for e in c.node(via).log_entries(0)]


def test_every_seed_wiped_comes_back_as_a_replacement_when_it_hears_the_cluster(caplog):
    """The members reach the seeds (their leader heartbeats every member): a seed listening
    before it bootstraps hears the real cluster and joins it as a replacement (here n1; n2
    and n3 listened while the new group was still electing its leader: they started as
    voters, learned the real log, stopped voting (identity rule 5) and came back the same
    way). None bootstraps a cluster; none votes in the real group with an empty state."""
    async def main():
        c = await _real_cluster(seed=0)
        real = c.node("n4").metalog.paxos.cluster
        try:
            for s in SEEDS:
                await c.start(s)
            await until(lambda: all(("replace", s) in _log(c) for s in SEEDS), 120,
                        "every wiped seed was replaced")
            await until(lambda: all(c.node(s).state.member(s) is not None
                                    and c.node(s).state.member(s).state == "normal"
                                    for s in SEEDS), 120, "every wiped seed joined again")
            for s in SEEDS:
                paxos = c.node(s).metalog.paxos
                assert paxos.cluster == real and not c.node(s).metalog.alone
                assert ("bootstrap", None) not in _log(c, s)[1:]
            assert c.node("n4").metalog.paxos.cluster == real
        finally:
            await c.stop_all()
    run_virtual(main())
    text = caplog.text
    paths = {s: "listened" if f"{s}: a cluster that lists it reached it" in text else
             "rule 5" if f"{s} learned the log of cluster" in text else "other" for s in SEEDS}
    # n1 waits for n2 and n3, hears the cluster meanwhile; with this seed n2 and n3 take
    # the rule-5 path (the new group was electing its leader while they listened). Which
    # path a seed takes depends on the schedule: seed 5 did this until the first seed of a
    # bootstrap campaigned at once (node/metalog.py ``first_candidate``); seeds 0, 9 and 15
    # of 0-15 do now, the others all listen.
    assert paths["n1"] == "listened" and "rule 5" in paths.values(), paths


def test_seeds_cut_off_bootstrap_a_cluster_of_their_own_that_the_real_one_refuses():
    """Cut off from the members while they start, the three wiped seeds bootstrap a new
    cluster (three members: it does not yield by itself). It has another identity: once
    the network heals, neither cluster takes the other's Paxos messages; the real one keeps
    committing, and the seeds' GET /node shows the other cluster (the operator's cue)."""
    async def main():
        c = await _real_cluster(seed=6)
        real = c.node("n4").metalog.paxos.cluster
        try:
            c.network.partition([SEEDS, OTHERS])
            for s in SEEDS:
                await c.start(s)
            await until(lambda: all(c.node(s).state.bootstrapped for s in SEEDS), 60,
                        "the seeds bootstrapped a cluster of their own")
            own = c.node("n1").metalog.paxos.cluster
            assert own not in (None, real)
            c.network.heal()
            before = c.node("n4").state.epoch
            await c.node("n4").propose({"op": "remove", "id": "n1", "force": True})
            await until(lambda: c.node("n5").state.epoch > before, 30, "the real log commits")
            await until(lambda: (c.node("n1").node_view()["metadata"]["other_cluster"] or {})
                        .get("cluster") == real, 30, "n1 shows the real cluster")
            for s in SEEDS:
                assert c.node(s).metalog.paxos.cluster == own
                assert c.node(s).state.member("n4") is None  # never took the real log
            for o in OTHERS:
                assert c.node(o).metalog.paxos.cluster == real
                assert c.node(o).state.acceptors == tuple(OTHERS)
        finally:
            await c.stop_all()
    run_virtual(main())


def test_seeds_started_after_another_came_back_join_through_the_member_that_reached_them():
    """n1 comes back first and is a replacement (it reports an epoch); n2 and n3 then find
    the cluster bootstrapped, but the only URLs they were given are the seeds', which answer
    503 (replacements) or nothing: they ask the member whose Paxos traffic reached them
    (before the fix they asked the seeds for ever: tests/repro/repro_wiped_seeds.py)."""
    async def main():
        c = await _real_cluster(seed=7)
        real = c.node("n4").metalog.paxos.cluster
        try:
            await c.start("n1")
            await until(lambda: c.node("n1").metalog.replacing and c.node("n1").state.epoch > 0,
                        30, "n1 is a replacement that learned the log")
            for s in ("n2", "n3"):
                await c.start(s)
            await until(lambda: all(c.node(s).metalog.replacing for s in ("n2", "n3")), 30,
                        "n2 and n3 adopted the group as replacements")
            for s in ("n2", "n3"):
                assert not c.node(s).metalog.paxos.is_acceptor
            await until(lambda: all(c.node(s).metalog.paxos.cluster == real
                                    for s in ("n2", "n3")), 30, "they learned the real log")
        finally:
            await c.stop_all()
    run_virtual(main())
