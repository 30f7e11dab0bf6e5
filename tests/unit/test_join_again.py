"""``node/joins.py`` ``join_again_if_abandoned``: a joiner whose join the log drops while
it runs (a gainer's removal abandoned it, or the join timeout while the joiner was only
slow) asks to join again; a node past its join, or one that left by its own leave, does
not. The node is a stand-in whose log the test moves by hand; the real-process case is
``tests/integration/test_membership.py::test_a_join_whose_other_gainer_died_finishes_after_that_gainer_is_removed``."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace

from dynamopy.core.membership import ClusterState, Settings, bootstrap_entry
from dynamopy.node.joins import join_again_if_abandoned

SEEDS = [{"id": f"n{i}", "url": f"u{i}", "peer": f"p{i}"} for i in range(1, 4)]
JOIN = {"op": "join", "id": "n4", "url": "u4", "peer": "p4", "at_ms": 1}


def _boot() -> ClusterState:
    return ClusterState().apply(bootstrap_entry(SEEDS, dataclasses.replace(Settings(), n=3)))


class _Node:
    """What the watch reads: id, state, metalog.left, join_accepted_epoch, stopping, and
    the observers it hangs on; ``drive`` moves its log by a script of steps, telling the
    observers after each, as ``Node.apply_entry`` does."""

    def __init__(self, state: ClusterState, accepted=None) -> None:
        self.id, self.state, self.stopping = "n4", state, False
        self.metalog = SimpleNamespace(left=None)
        self.join_accepted_epoch = accepted
        self.observers: list = []
        self.asked = 0

    def move(self, state: ClusterState) -> None:
        old, self.state = self.state, state
        for observer in list(self.observers):
            observer(old, state)

    async def join_again(self) -> None:
        self.asked += 1
        await asyncio.sleep(0)
        self.move(self.state.apply(JOIN))              # accepted: the log lists it again
        self.join_accepted_epoch = self.state.epoch


def _run(node: _Node, steps=()) -> bool:
    """Run the watch while the steps move the log; True if it returned by itself (not
    because the script ran out and the node was stopped)."""
    async def drive():
        for step in steps:
            for _ in range(3):
                await asyncio.sleep(0)
            step(node)
        for _ in range(3):
            await asyncio.sleep(0)
        if not watch.done():
            node.stopping = True
            node.move(node.state)          # wake it to see it is stopping

    async def main():
        nonlocal watch
        watch = asyncio.ensure_future(join_again_if_abandoned(node, node.join_again))
        await asyncio.wait_for(asyncio.gather(watch, drive()), 5)

    watch = None
    asyncio.run(main())
    return not node.stopping


def _abandon(node: _Node) -> None:
    node.move(node.state.apply({"op": "remove", "id": "n4", "abandon_join": True,
                                "change_epoch": node.state.change_epoch, "at_ms": 2}))


def _finish(node: _Node) -> None:
    node.move(node.state.apply({"op": "finish_join", "id": "n4",
                                "change_epoch": node.state.change_epoch}))


def test_a_join_dropped_while_the_joiner_runs_is_asked_again_and_then_the_watch_ends():
    node = _Node(_boot().apply(JOIN))
    assert _run(node, [_abandon, _finish])   # returned because the join finished
    assert node.asked == 1 and node.state.member("n4").state == "normal"
    assert node.observers == []


def test_a_join_learned_together_with_its_end_is_asked_again():
    """A snapshot may carry the join and its end at once: the node never saw itself
    joining, but its log is past the epoch its join request committed at."""
    joined = _boot().apply(JOIN)
    gone = joined.apply({"op": "remove", "id": "n4", "abandon_join": True,
                         "change_epoch": joined.change_epoch, "at_ms": 2})
    node = _Node(_boot(), accepted=joined.epoch)
    assert _run(node, [lambda n: n.move(gone), _finish])
    assert node.asked == 1 and node.state.member("n4").state == "normal"


def test_a_node_whose_join_was_not_yet_learned_waits_instead_of_asking_again():
    """Accepted at an epoch its log has not reached: the join is on its way, not dropped."""
    joined = _boot().apply(JOIN)
    node = _Node(_boot(), accepted=joined.epoch)
    assert _run(node, [lambda n: n.move(n.state), lambda n: n.move(joined), _finish])
    assert node.asked == 0 and node.state.member("n4").state == "normal"


def test_a_member_past_its_join_and_a_node_that_left_are_not_asked_to_join():
    normal = _boot().apply(JOIN)
    normal = normal.apply({"op": "finish_join", "id": "n4", "change_epoch": normal.change_epoch})
    node = _Node(normal)
    assert _run(node) and node.asked == 0
    left = _Node(_boot(), accepted=1)
    left.metalog.left = {"epoch": 1}
    assert _run(left) and left.asked == 0


def test_a_node_with_no_join_on_its_way_waits_until_it_stops():
    """Not a member and no join asked for (e.g. still waiting for its seeds): nothing to
    ask again; the watch ends when the node stops."""
    node = _Node(_boot())
    assert not _run(node, [lambda n: n.move(n.state)]) and node.asked == 0
    assert node.observers == []
