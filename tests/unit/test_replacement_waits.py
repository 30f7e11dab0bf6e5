"""node/replacement.py: a node that lost its disk waits for another member's change before it
proposes its own replacement (found in review: two nodes wiped at once proposed `replace`
in turn, each abandoning the other's removal, for ever: 59 entries in 40 s, neither back).
Stand-ins for the node around the function; the real one is exercised by
tests/integration/test_metadata_group.py and, for two wiped nodes, by hand with
tests/repro/repro_two_wiped.py."""

import asyncio
from types import SimpleNamespace

from dynamopy.node.replacement import retire_old_incarnation


def _node(changes):
    """A replacing n4 whose state shows ``changes`` one after another (one per pause)."""
    proposed = []
    states = iter(changes)
    member = SimpleNamespace(id="n4")

    def state_of(change):
        # ("remove", "n5", "n4"): a merged removal of n5 and n4 (core.membership)
        removing = set(change[1:]) if change and change[0] == "remove" else set()
        return SimpleNamespace(epoch=10, change=change and change[:2], member=lambda mid: member,
                               is_removing=lambda mid: mid in removing)

    node = SimpleNamespace(id="n4", stopping=False, state=state_of(next(states)))

    async def propose(entry):
        proposed.append((entry["op"], entry["id"], node.state.change))
        return 11

    async def sleep(_s):
        try:
            node.state = state_of(next(states))
        except StopIteration:
            node.stopping = True

    node.propose = propose
    node.clock = SimpleNamespace(sleep=sleep)
    node.metalog = SimpleNamespace(replacing=5, replacement_blocked=None, poke=lambda: None)
    return node, proposed


def test_a_replacement_waits_for_another_members_change_then_proposes():
    node, proposed = _node([("remove", "n5"), ("remove", "n5"), ("join", "n6"), None])
    asyncio.run(retire_old_incarnation(node))
    assert proposed == [("replace", "n4", None)]


def test_a_change_of_its_own_old_incarnation_does_not_make_it_wait():
    # its old incarnation was joining or leaving: the replacement abandons the join or
    # turns the leave into the removal (core.membership._replace)
    for change in (("join", "n4"), ("leave", "n4")):
        node, proposed = _node([change])
        asyncio.run(retire_old_incarnation(node))
        assert proposed == [("replace", "n4", change)]
    node, proposed = _node([("remove", "n4")])   # its removal is under way: nothing to do
    asyncio.run(retire_old_incarnation(node))
    assert proposed == []
    # merged into another dead member's removal (an operator removed both): nothing to do
    node, proposed = _node([("remove", "n5", "n4"), ("remove", "n5", "n4")])
    asyncio.run(retire_old_incarnation(node))
    assert proposed == []
