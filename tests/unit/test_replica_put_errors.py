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
    def write_nowait(token, key, record):
        fut = asyncio.get_running_loop().create_future()
        fut.set_result((False,))          # not applied: a newer version is stored
        return fut

    return Replica(me="n1", state=lambda: None, clock=SystemClock(), metrics=Metrics(),
                   store=types.SimpleNamespace(get=get),
                   committer=types.SimpleNamespace(write_nowait=write_nowait),
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
