"""Wire form of the Paxos messages: every kind survives encode -> msgpack -> decode."""

import msgpack
import pytest

from dynamopy.core.paxos import (
    Accept, Accepted, Ballot, CatchupReply, CatchupRequest, Commit, Heartbeat, HeartbeatAck,
    Nack, Prepare, Promise, Propose, Snapshot, decode, encode,
)

B = Ballot(3, 1)
SAMPLES = [
    Prepare(B, 5),
    Promise(B, 5, ((5, Ballot(2, 0), {"op": "join", "id": "n4"}), (6, B, None)), 4),
    Promise(B, 5, (), 4, 7),   # counts only for slots >= 7 (a re-admitted acceptor)
    Nack(Ballot(1, 2), B),
    Accept(B, ((7, {"rid": "x"}), (8, None))),
    Accepted(B, (7, 8), 6),
    Heartbeat(B, 9),
    HeartbeatAck(B),
    Commit(((7, {"rid": "x"}),), 8),
    Propose({"rid": "y", "op": "set_config", "cfg": {"n": 3}}, 1),
    CatchupRequest(0),
    CatchupReply(0, Snapshot(4, {"members": ["a", "b"]}), ((4, {"rid": "z"}),), 5),
    CatchupReply(3, None, (), 3),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_through_msgpack(msg):
    wire = msgpack.unpackb(msgpack.packb(encode(msg)), use_list=True)
    assert decode(wire) == msg


def test_ballots_are_totally_ordered():
    assert Ballot(1, 2) < Ballot(2, 0) < Ballot(2, 1)
    assert max([Ballot(1, 4), Ballot(2, 0)]) == Ballot(2, 0)


@pytest.mark.parametrize("garbage", [[], [99], [1, "x"], None, [2, [1, 0], 0, [[1]], 0]])
def test_garbage_is_a_value_error(garbage):
    with pytest.raises(ValueError):
        decode(garbage)


def test_errors_say_what_was_wrong():
    with pytest.raises(ValueError, match=r"^malformed paxos message: "):
        decode([1, "x"])
    with pytest.raises(ValueError, match=r"^unknown paxos message tag: 99$"):
        decode([99])
    with pytest.raises(TypeError, match=r"^not a paxos message: 'hello'$"):
        encode("hello")
