"""Ballots, snapshots and the wire messages of the metadata-log Multi-Paxos.

Every message is a small frozen dataclass. The transport supplies the sender's id
(``MetaLogNode.step(sender, msg)``), so messages do not carry it. ``encode`` / ``decode``
turn a message into a msgpack-able list and back; values and snapshot data are opaque
and must themselves be msgpack-able.

Slots are numbered from 0; the entry at slot ``s`` gives epoch ``s + 1``. The value
``NOOP`` (``None``) fills a slot that a new leader found empty: it still occupies the slot
(and bumps the epoch) but changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

NOOP = None  # the filler value a new leader proposes for gaps; the app treats it as "no change"

Entry = tuple[int, Any]  # (slot, value)


@dataclass(frozen=True, slots=True, order=True)
class Ballot:
    """A proposal number: (round, member index). Totally ordered, unique per proposer.

    ``member`` is the proposer's index in the acceptor tuple, so two acceptors never use
    the same ballot. ``ZERO_BALLOT`` is below every real ballot.
    """

    round: int
    member: int


ZERO_BALLOT = Ballot(0, -1)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The application's state after applying every slot ``< slot``. ``data`` is opaque."""

    slot: int
    data: Any


# --- phase 1 -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepare:
    """Candidate -> acceptors: promise ``ballot`` for every slot ``>= from_slot``."""

    ballot: Ballot
    from_slot: int


@dataclass(frozen=True, slots=True)
class Promise:
    """Acceptor -> candidate: promised; here is every (slot, ballot, value) I accepted at
    slots ``>= max(from_slot, compacted_below)``. Slots ``< compacted_below`` are chosen
    and forgotten by this acceptor: the candidate must learn them, never propose them."""

    ballot: Ballot
    from_slot: int
    accepted: tuple[tuple[int, Ballot, Any], ...]
    compacted_below: int
    votes_from: int = 0  # the promise counts only for slots >= this (see acceptor)


@dataclass(frozen=True, slots=True)
class Nack:
    """Acceptor -> proposer: ``ballot`` is refused because I promised ``promised``."""

    ballot: Ballot
    promised: Ballot


# --- phase 2 -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    """Leader -> acceptors: accept these (slot, value) pairs under ``ballot``."""

    ballot: Ballot
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Accepted:
    """Acceptor -> leader: accepted ``slots`` under ``ballot``. ``chosen_below`` is the
    acceptor's contiguous learned frontier: slots below it are chosen (and maybe
    compacted, hence absent from ``slots``); the leader stops proposing them."""

    ballot: Ballot
    slots: tuple[int, ...]
    chosen_below: int


# --- leadership and learning ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader -> everyone: I lead under ``ballot``; every slot ``< chosen_below`` is chosen."""

    ballot: Ballot
    chosen_below: int


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    """Acceptor -> leader: I still accept ``ballot`` (feeds the leader's check-quorum)."""

    ballot: Ballot


@dataclass(frozen=True, slots=True)
class Commit:
    """Leader -> everyone: these slots are chosen with these values."""

    entries: tuple[Entry, ...]
    chosen_below: int


@dataclass(frozen=True, slots=True)
class Propose:
    """Any node -> leader (or an acceptor): please append ``value``. ``hops`` bounds
    forwarding so a proposal never circulates."""

    value: Any
    hops: int


@dataclass(frozen=True, slots=True)
class CatchupRequest:
    """Learner -> anyone: send me the chosen entries from ``from_slot`` on."""

    from_slot: int


@dataclass(frozen=True, slots=True)
class CatchupReply:
    """Reply to ``CatchupRequest``. If the responder compacted below ``from_slot`` it
    sends its ``snapshot`` and the entries from ``snapshot.slot``; otherwise entries from
    ``from_slot``. ``entries`` may stop early (size cap): ``chosen_below`` says how far
    the responder knows, so the learner asks again."""

    from_slot: int
    snapshot: Snapshot | None
    entries: tuple[Entry, ...]
    chosen_below: int


Message = Union[
    Prepare, Promise, Nack, Accept, Accepted, Heartbeat, HeartbeatAck, Commit, Propose,
    CatchupRequest, CatchupReply,
]


# --- wire form -----------------------------------------------------------------------
# Each message becomes [tag, field, ...]; ballots become [round, member].


def _b(b: Ballot) -> list:
    return [b.round, b.member]


def _ub(w: Any) -> Ballot:
    return Ballot(int(w[0]), int(w[1]))


def _entries(es: tuple[Entry, ...]) -> list:
    return [[s, v] for s, v in es]


def _uentries(w: Any) -> tuple[Entry, ...]:
    return tuple((int(s), v) for s, v in w)


def encode(msg: Message) -> list:
    """A msgpack-able list for ``msg``."""
    t = type(msg)
    if t is Prepare:
        return [1, _b(msg.ballot), msg.from_slot]
    if t is Promise:
        acc = [[s, b.round, b.member, v] for s, b, v in msg.accepted]
        out = [2, _b(msg.ballot), msg.from_slot, acc, msg.compacted_below]
        return out + [msg.votes_from] if msg.votes_from else out
    if t is Nack:
        return [3, _b(msg.ballot), _b(msg.promised)]
    if t is Accept:
        return [4, _b(msg.ballot), _entries(msg.entries)]
    if t is Accepted:
        return [5, _b(msg.ballot), list(msg.slots), msg.chosen_below]
    if t is Heartbeat:
        return [6, _b(msg.ballot), msg.chosen_below]
    if t is HeartbeatAck:
        return [7, _b(msg.ballot)]
    if t is Commit:
        return [8, _entries(msg.entries), msg.chosen_below]
    if t is Propose:
        return [9, msg.value, msg.hops]
    if t is CatchupRequest:
        return [10, msg.from_slot]
    if t is CatchupReply:
        snap = None if msg.snapshot is None else [msg.snapshot.slot, msg.snapshot.data]
        return [11, msg.from_slot, snap, _entries(msg.entries), msg.chosen_below]
    raise TypeError(f"not a paxos message: {msg!r}")


def decode(w: Any) -> Message:
    """The message for a wire list from ``encode``. Raises ``ValueError`` on garbage
    (remote misbehaviour: the caller drops the message)."""
    try:
        tag = w[0]
        if tag == 1:
            return Prepare(_ub(w[1]), int(w[2]))
        if tag == 2:
            acc = tuple((int(s), Ballot(int(r), int(m)), v) for s, r, m, v in w[3])
            return Promise(_ub(w[1]), int(w[2]), acc, int(w[4]), int(w[5]) if len(w) > 5 else 0)
        if tag == 3:
            return Nack(_ub(w[1]), _ub(w[2]))
        if tag == 4:
            return Accept(_ub(w[1]), _uentries(w[2]))
        if tag == 5:
            return Accepted(_ub(w[1]), tuple(int(s) for s in w[2]), int(w[3]))
        if tag == 6:
            return Heartbeat(_ub(w[1]), int(w[2]))
        if tag == 7:
            return HeartbeatAck(_ub(w[1]))
        if tag == 8:
            return Commit(_uentries(w[1]), int(w[2]))
        if tag == 9:
            return Propose(w[1], int(w[2]))
        if tag == 10:
            return CatchupRequest(int(w[1]))
        if tag == 11:
            snap = None if w[2] is None else Snapshot(int(w[2][0]), w[2][1])
            return CatchupReply(int(w[1]), snap, _uentries(w[3]), int(w[4]))
    except (TypeError, ValueError, IndexError, KeyError) as e:
        raise ValueError(f"malformed paxos message: {e}") from e
    raise ValueError(f"unknown paxos message tag: {tag!r}")
