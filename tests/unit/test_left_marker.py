"""A node that left by its own graceful leave does not join again by itself (issue 14):
the pure rule (core.membership.left_by_own_leave), the marker written with the batch that
commits the finish_leave (node/metalog.py), and what a restart does (node/bootstrap.py).
Real processes: tests/integration/test_membership.py::test_leave_while_writing_loses_nothing."""

import asyncio
import types

from dynamopy.core.membership import ClusterState, Settings, bootstrap_entry, left_by_own_leave
from dynamopy.node import bootstrap
from dynamopy.node.metalog import MetaLog


def _four() -> ClusterState:
    seeds = [{"id": f"n{i}", "url": f"u{i}", "peer": f"p{i}"} for i in (1, 2, 3)]
    s = ClusterState().apply(bootstrap_entry(seeds, Settings(n=3)))
    s = s.apply({"op": "join", "id": "n4", "url": "u4", "peer": "p4"})
    return s.apply({"op": "finish_join", "id": "n4", "change_epoch": s.change_epoch})


FOUR = _four()
LEAVING = FOUR.apply({"op": "leave", "id": "n4"})
LEFT = LEAVING.apply({"op": "finish_leave", "id": "n4", "change_epoch": LEAVING.change_epoch})
REMOVING = FOUR.apply({"op": "remove", "id": "n4"})
REMOVED = REMOVING.apply({"op": "finish_leave", "id": "n4", "change_epoch": REMOVING.change_epoch})


def test_only_a_finished_graceful_leave_of_this_node_counts_as_left():
    assert left_by_own_leave(LEAVING, LEFT, "n4")
    assert not left_by_own_leave(REMOVING, REMOVED, "n4")      # removed: it joins again
    assert not left_by_own_leave(LEAVING, LEAVING, "n4")       # still leaving
    assert not left_by_own_leave(LEAVING, LEFT, "n3")          # another node's leave
    assert not left_by_own_leave(FOUR, LEFT, "n4")             # no leave of its own seen


def test_the_marker_goes_with_the_batch_that_commits_the_finish_leave():
    log = types.SimpleNamespace(state=lambda: LEAVING, me="n4")
    finish = {"op": "finish_leave", "id": "n4", "change_epoch": LEAVING.change_epoch}
    rd = types.SimpleNamespace(snapshot=None, committed=[(LEAVING.epoch, finish)])
    assert MetaLog._left_in(log, rd) == {"epoch": LEFT.epoch}
    quiet = types.SimpleNamespace(snapshot=None, committed=[(LEAVING.epoch, {"op": "noop"})])
    assert MetaLog._left_in(log, quiet) is None
    snap = types.SimpleNamespace(snapshot=types.SimpleNamespace(data=LEFT.to_dict()),
                                 committed=[])
    assert MetaLog._left_in(log, snap) == {"epoch": LEFT.epoch}   # learnt from a snapshot
    removing = types.SimpleNamespace(state=lambda: REMOVING, me="n4")
    rm = {"op": "finish_leave", "id": "n4", "change_epoch": REMOVING.change_epoch}
    assert MetaLog._left_in(removing, types.SimpleNamespace(
        snapshot=None, committed=[(REMOVING.epoch, rm)])) is None


class _Log:
    def __init__(self, left):
        self.left, self.replacing, self.calls = left, 0, []
        self.alone = self.disowned = False  # not a wiped seed (branch seedwipe's checks)

    async def mark_left(self, epoch):
        self.left = {"epoch": epoch}
        self.calls.append(("mark", epoch))

    async def forget_left(self):
        self.left = None
        self.calls.append(("forget",))


def _restart(state, left, rejoin, monkeypatch, later=None):
    """ensure_member on a node whose disk holds ``state`` (and the ``left`` marker); the log
    it catches up with says ``later``. Returns (joined again?, the marker calls)."""
    joined = []

    async def become_member(node, contact):
        joined.append(node.id)
        node.stopping = True   # else ensure_member would watch the (stand-in) join for ever

    monkeypatch.setattr(bootstrap, "_become_member", become_member)
    node = types.SimpleNamespace(id="n4", state=state, metalog=_Log(left), stopping=False,
                                 config=types.SimpleNamespace(rejoin_after_leave=rejoin, join=""),
                                 catchup=types.SimpleNamespace(caught_up=False),
                                 join_accepted_epoch=None, observers=[])

    async def sleep(_s):
        node.state, node.catchup.caught_up = later, True

    node.clock = types.SimpleNamespace(sleep=sleep)
    asyncio.run(bootstrap.ensure_member(node, contact=object()))
    return bool(joined), node.metalog.calls


def test_a_restart_after_its_own_leave_stays_out_unless_told(monkeypatch):
    # The marker on disk: it stays out; with --rejoin-after-leave it drops it and joins.
    assert _restart(LEFT, {"epoch": 9}, False, monkeypatch) == (False, [])
    assert _restart(LEFT, {"epoch": 9}, True, monkeypatch) == (True, [("forget",)])
    # Its leave finished while it was down (no marker yet): it learns it, records it, stays out.
    assert _restart(LEAVING, None, False, monkeypatch, later=LEFT) == \
        (False, [("mark", LEFT.epoch)])
    assert _restart(LEAVING, None, True, monkeypatch, later=LEFT) == (True, [])
    # Removed while it was down: it joins again, as before (the k8s-friendly behaviour).
    assert _restart(FOUR, None, False, monkeypatch, later=REMOVED) == (True, [])
    assert _restart(REMOVING, None, False, monkeypatch, later=REMOVED) == (True, [])
    # Still a member: nothing to do.
    assert _restart(FOUR, None, False, monkeypatch, later=FOUR) == (False, [])


def test_a_production_node_records_its_leave_and_drops_the_record_when_added_back():
    """Over the in-memory seams: n4 leaves; the batch that commits its finish_leave leaves
    the ``left`` marker on its disk (GET /node: state "left"); an operator adds it back by
    hand while it runs: once a member again it drops the marker (a stale one would keep it
    out after a later removal and restart)."""
    from dynamopy.sim.clock import run_virtual
    from dynamopy.sim.inprocess import InProcessCluster, until

    async def main():
        c = InProcessCluster(["n1", "n2", "n3"], seed=5, joiners=["n4"],
                             anti_entropy_interval_s=3600.0)
        await c.start_all()
        try:
            await c.start("n4")
            member = lambda: c.node("n1").state.member("n4")  # noqa: E731
            await until(lambda: member() is not None and member().state == "normal", 60,
                        "n4 normal")
            n4 = c.node("n4")
            assert n4.metalog.left is None and n4.store.meta_get("left") is None
            await c.node("n1").propose({"op": "leave", "id": "n4"})
            await until(lambda: n4.state.member("n4") is None, 60, "n4 left")
            left = n4.metalog.left
            assert left is not None and 0 < left["epoch"] <= n4.state.epoch, left
            assert n4.store.meta_get("left") is not None        # durable
            assert n4.node_view()["state"] == "left"
            await c.node("n1").propose({"op": "join", "id": "n4", "url": "mem://n4",
                                        "peer": "n4"})
            await until(lambda: n4.state.member("n4") is not None and n4.metalog.left is None,
                        60, "n4 a member again, the marker dropped")
            assert n4.store.meta_get("left") is None
        finally:
            await c.stop_all()

    run_virtual(main())
