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

    monkeypatch.setattr(bootstrap, "_become_member", become_member)
    node = types.SimpleNamespace(id="n4", state=state, metalog=_Log(left), stopping=False,
                                 config=types.SimpleNamespace(rejoin_after_leave=rejoin),
                                 catchup=types.SimpleNamespace(caught_up=False))

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
