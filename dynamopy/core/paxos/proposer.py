"""The proposer side of an acceptor node: candidate (phase 1) and leader (phase 2).

Rules:

- A candidate picks a ballot above every round it has seen and sends Prepare(ballot,
  from_slot) where ``from_slot`` is its learner's contiguous frontier. One phase 1 covers
  every slot ``>= from_slot`` (Multi-Paxos).
- With Promises from a majority it becomes leader. Let ``c`` be the largest
  ``compacted_below`` reported: slots below ``c`` are chosen, so the leader only learns
  them (catch-up) and never proposes them. For each slot ``s >= max(from_slot, c)`` up to
  the highest reported slot it re-proposes the value with the highest ballot reported
  for ``s``, or ``NOOP`` if none was reported (a gap). Only then do new values get slots.
- Phase 2: a value is chosen at a slot when a majority of acceptors accepted it under
  the leader's ballot. At most ``max_inflight`` new values are in flight at once; the
  rest wait in a bounded queue (overflow is dropped: proposals may be lost, callers retry).
- Any Nack, or any higher ballot seen, ends the candidacy or leadership (step down).
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Any

from .messages import NOOP, Accepted, Ballot, Entry, Promise, ZERO_BALLOT


class Role(Enum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


class _Slot:
    """A value in flight at one slot, and who accepted it under the current ballot."""

    __slots__ = ("value", "voters")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.voters: set[str] = set()


class Proposer:
    def __init__(self, n_acceptors: int, max_inflight: int, max_queue: int) -> None:
        self.quorum = n_acceptors // 2 + 1
        self.max_inflight = max_inflight
        self.max_queue = max_queue
        self.role = Role.FOLLOWER
        self.ballot: Ballot = ZERO_BALLOT
        self.from_slot = 0
        self.promises: dict[str, Promise] = {}
        self.inflight: dict[int, _Slot] = {}
        self.next_slot = 0
        self.queue: deque[Any] = deque()

    # -- phase 1 ------------------------------------------------------------------------

    def start_candidacy(self, ballot: Ballot, from_slot: int) -> None:
        self.role = Role.CANDIDATE
        self.ballot = ballot
        self.from_slot = from_slot
        self.promises = {}
        self.inflight = {}

    def on_promise(self, sender: str, msg: Promise) -> bool:
        """Record a promise; True when this one completes a majority."""
        if self.role is not Role.CANDIDATE or msg.ballot != self.ballot:
            return False
        self.promises[sender] = msg
        return len(self.promises) >= self.quorum

    def become_leader(self, is_chosen, min_next: int) -> tuple[int, list[Entry]]:
        """Finish phase 1. ``is_chosen(slot)`` says the learner already knows a slot;
        ``min_next`` is above every slot the learner knows (new values go at or above it).

        Returns (compacted frontier c, the (slot, value) pairs to send in phase 2).
        """
        compacted = max(p.compacted_below for p in self.promises.values())
        start = max(self.from_slot, compacted)
        best: dict[int, tuple[Ballot, Any]] = {}
        for p in self.promises.values():
            for slot, ballot, value in p.accepted:
                if slot >= start and (slot not in best or ballot > best[slot][0]):
                    best[slot] = (ballot, value)
        top = max(max(best) + 1 if best else start, min_next)
        self.role = Role.LEADER
        self.promises = {}
        self.inflight = {}
        out: list[Entry] = []
        for slot in range(start, top):
            if is_chosen(slot):
                continue  # already learned; its value is safe and known, no need to re-run it
            value = best[slot][1] if slot in best else NOOP
            self.inflight[slot] = _Slot(value)
            out.append((slot, value))
        self.next_slot = top
        out.extend(self.fill())
        return compacted, out

    # -- phase 2 ------------------------------------------------------------------------

    def submit(self, value: Any) -> list[Entry]:
        """A new value to append. Returns entries to send now (maybe none: queued)."""
        if any(s.value == value for s in self.inflight.values()) or value in self.queue:
            return []  # a retry of something already on its way: don't spend a slot twice
        if len(self.queue) >= self.max_queue:
            return []
        self.queue.append(value)
        return self.fill() if self.role is Role.LEADER else []

    def fill(self) -> list[Entry]:
        out: list[Entry] = []
        while self.queue and len(self.inflight) < self.max_inflight:
            slot = self.next_slot
            self.next_slot += 1
            value = self.queue.popleft()
            self.inflight[slot] = _Slot(value)
            out.append((slot, value))
        return out

    def on_accepted(self, sender: str, msg: Accepted) -> list[Entry]:
        """Record votes; returns the (slot, value) pairs that just became chosen."""
        if self.role is not Role.LEADER or msg.ballot != self.ballot:
            return []
        chosen: list[Entry] = []
        for slot in msg.slots:
            st = self.inflight.get(slot)
            if st is None:
                continue
            st.voters.add(sender)
            if len(st.voters) >= self.quorum:
                chosen.append((slot, st.value))
                del self.inflight[slot]
        return chosen

    def forget_chosen(self, is_chosen) -> None:
        """Drop in-flight slots the learner knows are chosen (learned some other way)."""
        for slot in [s for s in self.inflight if is_chosen(s)]:
            del self.inflight[slot]

    def resend(self, acceptors: tuple[str, ...]) -> dict[str, list[Entry]]:
        """For each acceptor, the in-flight entries it has not accepted yet."""
        out: dict[str, list[Entry]] = {}
        for slot, st in sorted(self.inflight.items()):
            for a in acceptors:
                if a not in st.voters:
                    out.setdefault(a, []).append((slot, st.value))
        return out

    def step_down(self) -> None:
        """Back to follower. Unchosen in-flight values are dropped (their proposers retry);
        queued values that never got a slot are kept for the next leader."""
        self.role = Role.FOLLOWER
        self.promises = {}
        self.inflight = {}

    def take_queue(self) -> list[Any]:
        q = list(self.queue)
        self.queue.clear()
        return q
