"""Multi-Paxos for the metadata log, as pure state machines (no I/O, no clock).

``MetaLogNode`` is the one object the runtime drives; see ``node`` for the Ready
contract (persist before send) and the restart procedure, and ``finish_ready`` for the
one handler of a Ready after its sync, shared by the node, the simulator and the tests. ``identity``
says which cluster a message belongs to and which acceptor state may vote in it. ``acceptor``, ``proposer``
and ``learner`` hold the three roles; ``messages`` the wire messages and their
msgpack-able encoding.
"""

from .acceptor import Acceptor, AcceptorState, AcceptorUpdate
from .identity import Identity
from .learner import PaxosSafetyError
from .messages import (
    NOOP, ZERO_BALLOT, Accept, Accepted, Ballot, CatchupReply, CatchupRequest, Commit,
    Heartbeat, HeartbeatAck, Message, Nack, Prepare, Promise, Propose, Snapshot, decode,
    encode,
)
from .node import MetaLogNode, Ready
from .proposer import Role
from .ready import finish_ready

__all__ = [
    "Accept", "Accepted", "Acceptor", "AcceptorState", "AcceptorUpdate", "Ballot",
    "CatchupReply", "CatchupRequest", "Commit", "Heartbeat", "HeartbeatAck", "Identity", "Message",
    "MetaLogNode", "NOOP", "Nack", "PaxosSafetyError", "Prepare", "Promise", "Propose",
    "Ready", "Role", "Snapshot", "ZERO_BALLOT", "decode", "encode", "finish_ready",
]
