"""A replica's put when the store fails: a write the committer did not apply (something at
least as new is stored) answers with the stored version, read back from the store; when that
read fails, the put fails with the store's error (never an ack of a version it did not see)."""

import asyncio
import types

import pytest

from dynamopy.core.records import Record
from dynamopy.node.clock import SystemClock
from dynamopy.node.metrics import Metrics
from dynamopy.node.replica import Replica


def _replica(get):
    def write_into(token, key, record, sink):
        sink.set_result([False])          # synced, not applied: a newer version is stored
        return sink

    return Replica(me="n1", state=lambda: None, clock=SystemClock(), metrics=Metrics(),
                   store=types.SimpleNamespace(get=get),
                   committer=types.SimpleNamespace(write_into=write_into),
                   catchup=None, poke_metalog=None, note_epoch=None,
                   observe_version=lambda v: None, hints=None)


def test_a_put_not_applied_answers_the_newer_stored_version():
    replica = _replica(lambda token, key: Record(9, value=b"newer"))

    async def main():
        return await replica.put_nowait(5, b"k", Record(3, value=b"v"))

    assert asyncio.run(main()) == 9


def test_a_put_not_applied_whose_stored_version_cannot_be_read_fails():
    def get(token, key):
        raise OSError("store closed")

    replica = _replica(get)

    async def main():
        return await replica.put_nowait(5, b"k", Record(3, value=b"v"))

    with pytest.raises(OSError, match="store closed"):
        asyncio.run(main())


def test_a_put_that_waited_to_catch_up_is_refused_for_a_range_the_new_ring_moved_away():
    """A peer's put reaches n1 while n1 is behind its peers: it waits to catch up, then makes
    the check every put makes; the new ring no longer gives n1 the key, and the put was
    routed by the old one: stale_epoch, nothing stored."""
    from dynamopy.core.records import Record as R
    from dynamopy.node.replica import STALE_EPOCH
    from dynamopy.peer import RemoteError
    from tests.unit.test_catchup import NEW, OLD, _rpc_put, hint_target, state_at

    node, _ = hint_target(state_at(4, OLD))
    for m in ("n2", "n3", "n4", "n5"):
        node.catchup.note(5, m)                      # the peers are at epoch 5: n1 is behind
    dropped = next(t for t in range(0, 2**32, 2**20)
                   if "n1" in OLD.preference_list_for_token(t, 3)
                   and "n1" not in NEW.preference_list_for_token(t, 3))
    writes = []

    def write_into(token, key, record, sink):
        writes.append(key)
        sink.set_result([True])                      # the group committer: synced at once
        return sink

    async def catch_up_meanwhile(s):
        node.state = state_at(5, NEW)                # the log arrives during the wait

    node.committer.write_into = write_into
    node.clock.sleep = catch_up_meanwhile
    with pytest.raises(RemoteError) as e:
        asyncio.run(_rpc_put(node, [4, dropped, b"k", R(8).to_wire(), None], "n2"))
    assert e.value.code == STALE_EPOCH and e.value.detail == "5"
    assert writes == []
