"""The learner: which slots are chosen, with what value, and what the app has applied.

State and invariants:

- ``base``: the slot of the current snapshot (0 without one). Values of slots ``< base``
  are forgotten; the snapshot stands for them.
- ``log``: chosen values of slots ``>= base``. Slots in ``[base, chosen_below)`` are all
  present (contiguous); slots ``>= chosen_below`` may be present out of order.
- ``applied <= chosen_below``: slots ``< applied`` were delivered to the app.
- ``hint >= chosen_below``: the highest "everything below is chosen" frontier anyone told
  us about. ``hint > chosen_below`` is a gap: ask someone (catch-up).
- A slot is learned at most one value. Learning a different value for a known slot means
  Paxos itself is broken: ``PaxosSafetyError``.
"""

from __future__ import annotations

from typing import Any, Iterable

from .messages import CatchupReply, Entry, Snapshot


class PaxosSafetyError(RuntimeError):
    """Two different values were learned for one slot: a protocol bug, never expected."""


def _canon(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_canon(x) for x in v]
    if isinstance(v, dict):
        return {k: _canon(x) for k, x in v.items()}
    return v


def same_value(a: Any, b: Any) -> bool:
    """Equal, up to what a msgpack round trip changes (tuples come back as lists): a
    leader holds the value it was given, peers hold the decoded copy."""
    return a == b or _canon(a) == _canon(b)


class Learner:
    def __init__(self, snapshot: Snapshot | None, log: Iterable[Entry]) -> None:
        self.snapshot = snapshot
        self.base = snapshot.slot if snapshot is not None else 0
        self.log: dict[int, Any] = {}
        expect = self.base
        for slot, value in log:
            if slot != expect:
                raise ValueError(f"restart log must be contiguous from {self.base}: got slot {slot}, expected {expect}")
            self.log[slot] = value
            expect += 1
        self.chosen_below = expect
        self.applied = expect
        self.hint = expect
        self.hint_from: str | None = None
        # A snapshot installed from a peer, not yet handed to the app via Ready.
        self.pending_snapshot: Snapshot | None = None

    def knows(self, slot: int) -> bool:
        return slot < self.chosen_below or slot in self.log

    def learn(self, slot: int, value: Any) -> bool:
        """Record that ``slot`` is chosen with ``value``; True if that was news."""
        if slot < self.base:
            return False
        if slot in self.log:
            if not same_value(self.log[slot], value):
                raise PaxosSafetyError(f"slot {slot}: learned {value!r} but already had {self.log[slot]!r}")
            return False
        self.log[slot] = value
        if slot + 1 > self.hint:
            self.hint = slot + 1
        while self.chosen_below in self.log:
            self.chosen_below += 1
        return True

    def note_hint(self, chosen_below: int, source: str) -> None:
        """Someone says every slot below ``chosen_below`` is chosen."""
        if chosen_below > self.hint:
            self.hint = chosen_below
            self.hint_from = source

    @property
    def has_gap(self) -> bool:
        return self.hint > self.chosen_below

    # -- snapshots ----------------------------------------------------------------------

    def compact(self, upto: int, snapshot: Snapshot) -> bool:
        """Keep ``snapshot`` (the app state for slots < upto) and drop log entries below.
        Returns False (and changes nothing) if ``upto`` is not above the current base."""
        if snapshot.slot != upto:
            raise ValueError("snapshot.slot must equal upto")
        if upto > self.applied:
            raise ValueError(f"cannot compact to {upto}: only slots < {self.applied} are applied")
        if upto <= self.base:
            return False
        self.snapshot = snapshot
        self.base = upto
        self.log = {s: v for s, v in self.log.items() if s >= upto}
        return True

    def install(self, snapshot: Snapshot) -> bool:
        """Adopt a peer's snapshot if it is ahead of what we know; True if adopted."""
        if snapshot.slot <= self.chosen_below:
            return False  # we already know everything it covers
        self.snapshot = snapshot
        self.base = snapshot.slot
        self.log = {s: v for s, v in self.log.items() if s >= snapshot.slot}
        self.chosen_below = snapshot.slot
        while self.chosen_below in self.log:
            self.chosen_below += 1
        if self.chosen_below > self.hint:
            self.hint = self.chosen_below
        self.pending_snapshot = snapshot
        return True

    # -- serving peers ------------------------------------------------------------------

    def serve(self, from_slot: int, max_entries: int) -> CatchupReply:
        """What to answer a peer that asks for the chosen entries from ``from_slot``."""
        snap = None
        lo = max(from_slot, self.base)
        if from_slot < self.base and self.snapshot is not None:
            snap = self.snapshot
        hi = min(self.chosen_below, lo + max_entries)
        entries = tuple((s, self.log[s]) for s in range(lo, hi))
        return CatchupReply(from_slot, snap, entries, self.chosen_below)

    def absorb(self, reply: CatchupReply, source: str) -> bool:
        """Take a catch-up reply; True if we learned anything."""
        progressed = False
        if reply.snapshot is not None and self.install(reply.snapshot):
            progressed = True
        for slot, value in reply.entries:
            if self.learn(slot, value):
                progressed = True
        self.note_hint(reply.chosen_below, source)
        return progressed
