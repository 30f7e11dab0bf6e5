"""The Paxos acceptor: the only durable part of the protocol.

Rules (per slot, with one promise shared by all slots, as Multi-Paxos does):

- Prepare(b): if ``b >= promised`` then ``promised = b`` and reply Promise with every
  accepted (slot, ballot, value) at slots ``>= from_slot``; otherwise Nack(promised).
  (``b == promised`` is a retransmission and gets the same answer again.)
- Accept(b, entries): if ``b >= promised`` then ``promised = b`` and for each slot
  ``accepted[slot] = (b, value)``; reply Accepted; otherwise Nack(promised).
- Slots below ``compacted_below`` are chosen and applied into a snapshot; the acceptor
  forgot them. It never accepts them again and reports ``compacted_below`` instead.
- Slots below ``votes_from`` are not this state's to vote on (it was created when the
  node was re-admitted to the metadata group after losing its state; ``groups``): it
  accepts none of them, and its Promise says so (the leader counts it only from there).

Durability contract: every change is recorded in a pending ``AcceptorUpdate`` (taken by
``take_update``). The caller must make it durable (fsync) before sending any message
produced after the change; a promise or an accept that was sent but not synced could be
forgotten by a crash, and then two different values could be chosen for one slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .messages import ZERO_BALLOT, Accepted, Ballot, Entry, Nack, Promise


@dataclass(frozen=True, slots=True)
class AcceptorUpdate:
    """What changed in the acceptor state since the last update; persist it atomically.

    Apply in this order (``AcceptorState.apply`` does): set ``promised`` if not None;
    store each (slot, ballot, value) of ``accepted`` (a later entry for a slot replaces an
    earlier one); then, if ``compacted_below`` is not None, delete every slot below it
    and store the new ``compacted_below``.
    """

    promised: Ballot | None = None
    accepted: tuple[tuple[int, Ballot, Any], ...] = ()
    compacted_below: int | None = None
    votes_from: int | None = None  # a new state (re-admission): store it with the rest


@dataclass(frozen=True, slots=True)
class AcceptorState:
    """The durable acceptor state a node is rebuilt from after a crash.

    ``accepted`` maps slot -> (ballot, value). Treat instances as immutable.
    """

    promised: Ballot = ZERO_BALLOT
    accepted: Mapping[int, tuple[Ballot, Any]] = field(default_factory=dict)
    compacted_below: int = 0
    votes_from: int = 0

    def apply(self, update: AcceptorUpdate) -> "AcceptorState":
        """The state after durably applying ``update`` (pure: returns a new state)."""
        accepted = dict(self.accepted)
        for slot, ballot, value in update.accepted:
            accepted[slot] = (ballot, value)
        compacted = self.compacted_below
        if update.compacted_below is not None and update.compacted_below > compacted:
            compacted = update.compacted_below
        if compacted:
            accepted = {s: bv for s, bv in accepted.items() if s >= compacted}
        promised = self.promised
        if update.promised is not None and update.promised > promised:
            promised = update.promised
        votes_from = self.votes_from if update.votes_from is None else update.votes_from
        return AcceptorState(promised, accepted, compacted, votes_from)


class Acceptor:
    """In-memory acceptor over a (possibly restored) ``AcceptorState``."""

    def __init__(self, state: AcceptorState | None = None) -> None:
        state = state or AcceptorState()
        self.promised: Ballot = state.promised
        self.accepted: dict[int, tuple[Ballot, Any]] = dict(state.accepted)
        self.compacted_below: int = state.compacted_below
        self.votes_from: int = state.votes_from
        self._dirty_votes_from = False
        self._dirty_promised = False
        self._dirty_slots: dict[int, tuple[Ballot, Any]] = {}
        self._dirty_compacted = False

    # -- rules ------------------------------------------------------------------------

    def on_prepare(self, ballot: Ballot, from_slot: int) -> Promise | Nack:
        if ballot < self.promised:
            return Nack(ballot, self.promised)
        self._promise(ballot)
        lo = max(from_slot, self.compacted_below)
        acc = tuple(sorted((s, b, v) for s, (b, v) in self.accepted.items() if s >= lo))
        return Promise(ballot, from_slot, acc, self.compacted_below, self.votes_from)

    def on_accept(self, ballot: Ballot, entries: Iterable[Entry], chosen_below: int) -> Accepted | Nack:
        """``chosen_below`` is this node's learned frontier, echoed to the leader."""
        if ballot < self.promised:
            return Nack(ballot, self.promised)
        self._promise(ballot)
        slots = []
        for slot, value in entries:
            if slot < self.compacted_below:
                continue  # chosen and forgotten; the reply's chosen_below tells the leader
            if slot < self.votes_from:
                continue  # not ours to vote on (a state created at re-admission)
            cur = self.accepted.get(slot)
            if cur is None or cur[0] != ballot or cur[1] != value:
                self.accepted[slot] = (ballot, value)
                self._dirty_slots[slot] = (ballot, value)
            slots.append(slot)
        return Accepted(ballot, tuple(slots), chosen_below)

    def compact(self, below: int) -> None:
        """Forget accepted values of slots ``< below``; they are chosen and snapshotted."""
        if below <= self.compacted_below:
            return
        self.compacted_below = below
        self.accepted = {s: bv for s, bv in self.accepted.items() if s >= below}
        self._dirty_slots = {s: bv for s, bv in self._dirty_slots.items() if s >= below}
        self._dirty_compacted = True

    def _promise(self, ballot: Ballot) -> None:
        if ballot > self.promised:
            self.promised = ballot
            self._dirty_promised = True

    # -- durability -------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """True if there are changes not yet taken by ``take_update``."""
        return bool(self._dirty_promised or self._dirty_slots or self._dirty_compacted
                    or self._dirty_votes_from)

    def take_update(self) -> AcceptorUpdate | None:
        """The pending changes (or None), clearing them. Persist before sending."""
        if not self.dirty:
            return None
        upd = AcceptorUpdate(
            promised=self.promised if self._dirty_promised else None,
            accepted=tuple((s, b, v) for s, (b, v) in sorted(self._dirty_slots.items())),
            compacted_below=self.compacted_below if self._dirty_compacted else None,
            votes_from=self.votes_from if self._dirty_votes_from else None,
        )
        self._dirty_votes_from = False
        self._dirty_promised = False
        self._dirty_slots = {}
        self._dirty_compacted = False
        return upd

    def state(self) -> AcceptorState:
        """The full in-memory state (including changes not yet taken)."""
        return AcceptorState(self.promised, dict(self.accepted), self.compacted_below,
                             self.votes_from)

    @classmethod
    def readmitted(cls, votes_from: int) -> "Acceptor":
        """A new, empty state voting only from ``votes_from``; its first update carries it
        (persist it before any vote, like every update)."""
        a = cls(AcceptorState(votes_from=votes_from))
        a._dirty_votes_from = True
        return a
