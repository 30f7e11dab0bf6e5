"""``bootstrap._joined_since``: when a node that ran a one-node cluster of its own finds a
cluster listing it, it carries on with that cluster's join of it (no replacement) only when
that is certain to be a join of this very process (README: "A node started by hand with
neither --seeds nor --join")."""

import asyncio
import types

from dynamopy.node import bootstrap

START = 1_000_000   # this node's wall clock when it started running its one-node cluster


class Contact:
    def __init__(self, entries):
        self.entries, self.asked = entries, []

    async def cluster_log(self, url, since):
        self.asked.append(since)
        if isinstance(self.entries, Exception):
            raise self.entries
        return self.entries


def _node(bound=500):
    return types.SimpleNamespace(id="n4", config=types.SimpleNamespace(max_clock_offset_ms=bound))


def _info(state="joining", change=("join", "n4")):
    return {"epoch": 7, "change": list(change) if change else None,
            "members": [{"id": "n1", "state": "normal"}, {"id": "n4", "state": state}]}


def _join_entry(at_ms):
    return [{"epoch": 5, "op": "join", "id": "n2", "at_ms": START + 5000},
            {"epoch": 7, "op": "join", "id": "n4", "at_ms": at_ms}]


def _ask(node, contact, info):
    return asyncio.run(bootstrap._joined_since(node, contact, "http://m", info, START))


def test_a_join_proposed_well_after_the_start_is_this_process_join():
    contact = Contact(_join_entry(START + 1001))
    assert _ask(_node(), contact, _info()) is True
    assert contact.asked == [0]


def test_anything_less_certain_is_a_replacement():
    assert _ask(_node(), Contact(_join_entry(START + 1000)), _info()) is False   # within 2x bound
    assert _ask(_node(), Contact(_join_entry(START - 60_000)), _info()) is False  # an older join
    assert _ask(_node(bound=0), Contact(_join_entry(START + 99_999)), _info()) is False
    assert _ask(_node(), Contact(_join_entry(START + 99_999)), _info(state="normal")) is False
    assert _ask(_node(), Contact(_join_entry(START + 99_999)),
                _info(change=("leave", "n1"))) is False
    assert _ask(_node(), Contact([]), _info()) is False                          # not in the log
    assert _ask(_node(), Contact(bootstrap.ContactError("503")), _info()) is False
    assert _ask(_node(), object(), _info()) is False          # a contact that cannot read it
