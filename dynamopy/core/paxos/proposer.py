"""The proposer side of an acceptor node: candidate (phase 1) and leader (phase 2).

Rules (``groups`` says which group decides a slot; with no group change every slot has the
same group and this is plain Multi-Paxos):

- A candidate picks a ballot above every round it has seen and sends Prepare(ballot,
  from_slot) where ``from_slot`` is its learner's contiguous frontier. One phase 1 covers
  every slot ``>= from_slot`` (Multi-Paxos); an acceptor's promise counts for a slot only
  if it is in that slot's group and its ``votes_from`` is not above the slot.
- It leads once the promises cover ``from_slot`` (a majority of its group). Let ``c`` be the
  largest ``compacted_below`` reported: slots below ``c`` are chosen, so the leader only
  learns them (catch-up) and never proposes them.
- Slots are *opened* in order, each once its group is known (``limit``: below the learned
  frontier + alpha) and covered by promises. An opened slot gets the value with the highest
  ballot any promise reported for it, else ``NOOP`` if it lies below a reported or known
  slot (a gap), else the next queued new value. A slot the learner already knows is skipped.
- Phase 2: a value is chosen at a slot when a majority of *that slot's group* accepted it
  under the leader's ballot. At most ``max_inflight`` values are in flight at once; the
  rest wait in a bounded queue (overflow is dropped: proposals may be lost, callers retry).
- Any Nack, or any higher ballot seen, ends the candidacy or leadership (step down).
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Any, Callable, Sequence

from .groups import majority
from .messages import NOOP, Accepted, Ballot, Entry, Promise, ZERO_BALLOT

GroupAt = Callable[[int], Sequence[str]]


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
    def __init__(self, max_inflight: int, max_queue: int) -> None:
        self.max_inflight = max_inflight
        self.max_queue = max_queue
        self.role = Role.FOLLOWER
        self.ballot: Ballot = ZERO_BALLOT
        self.from_slot = 0
        self.promises: dict[str, Promise] = {}
        self.best: dict[int, tuple[Ballot, Any]] = {}
        self.compacted = 0
        self.fill_below = 0      # slots below this with nothing reported get NOOP
        self.inflight: dict[int, _Slot] = {}
        self.next_slot = 0
        self.queue: deque[Any] = deque()

    # -- phase 1 ------------------------------------------------------------------------

    def start_candidacy(self, ballot: Ballot, from_slot: int) -> None:
        self.role = Role.CANDIDATE
        self.ballot = ballot
        self.from_slot = from_slot
        self.promises = {}
        self.best = {}
        self.compacted = 0
        self.fill_below = from_slot
        self.inflight = {}

    def on_promise(self, sender: str, msg: Promise) -> None:
        """Record a promise for the current ballot (as candidate or leader) and what it
        reports accepted."""
        if self.role is Role.FOLLOWER or msg.ballot != self.ballot or sender in self.promises:
            return
        self.promises[sender] = msg
        self.compacted = max(self.compacted, msg.compacted_below)
        for slot, ballot, value in msg.accepted:
            if slot not in self.best or ballot > self.best[slot][0]:
                self.best[slot] = (ballot, value)
            self.fill_below = max(self.fill_below, slot + 1)

    def covered(self, slot: int, group: Sequence[str]) -> bool:
        """Promises from a majority of ``group`` that count for ``slot``."""
        n = sum(1 for a in group if a in self.promises and self.promises[a].votes_from <= slot)
        return n >= majority(group)

    def become_leader(self, min_next: int) -> None:
        """Finish phase 1 (the caller checked ``covered(from_slot, ...)``). ``min_next`` is
        above every slot the learner knows: unknown slots below it are gaps (NOOP)."""
        self.role = Role.LEADER
        self.inflight = {}
        self.next_slot = max(self.from_slot, self.compacted)
        self.fill_below = max(self.fill_below, min_next)

    # -- phase 2 ------------------------------------------------------------------------

    def open_slots(self, group_at: GroupAt, limit: int, is_chosen) -> list[Entry]:
        """Open slots in order while their group is known (below ``limit``) and covered,
        the pipeline has room, and there is something to put in them."""
        out: list[Entry] = []
        if self.role is not Role.LEADER:
            return out
        while self.next_slot < limit and len(self.inflight) < self.max_inflight:
            slot = self.next_slot
            if is_chosen(slot) or slot < self.compacted:
                # Already learned (its value is safe and known), or chosen and compacted by
                # an acceptor whose promise came after this leader started: learn it.
                self.next_slot += 1
                continue
            if not self.covered(slot, group_at(slot)):
                break  # a new group: wait for its promises
            if slot in self.best:
                value = self.best[slot][1]
            elif slot < self.fill_below:
                value = NOOP
            elif self.queue:
                value = self.queue.popleft()
            else:
                break
            self.inflight[slot] = _Slot(value)
            self.next_slot += 1
            out.append((slot, value))
        return out

    def submit(self, value: Any) -> bool:
        """Queue a new value (False if it is a duplicate or the queue is full); the caller
        opens slots for it."""
        if any(s.value == value for s in self.inflight.values()) or value in self.queue:
            return False  # a retry of something already on its way: don't spend a slot twice
        if len(self.queue) >= self.max_queue:
            return False
        self.queue.append(value)
        return True

    def on_accepted(self, sender: str, msg: Accepted, group_at: GroupAt) -> list[Entry]:
        """Record votes (only from the slot's group); returns the (slot, value) pairs that
        just became chosen."""
        if self.role is not Role.LEADER or msg.ballot != self.ballot:
            return []
        chosen: list[Entry] = []
        for slot in msg.slots:
            st = self.inflight.get(slot)
            if st is None:
                continue
            group = group_at(slot)
            if sender not in group:
                continue
            st.voters.add(sender)
            if len(st.voters) >= majority(group):
                chosen.append((slot, st.value))
                del self.inflight[slot]
        return chosen

    def forget_chosen(self, is_chosen) -> None:
        """Drop in-flight slots the learner knows are chosen (learned some other way)."""
        for slot in [s for s in self.inflight if is_chosen(s)]:
            del self.inflight[slot]

    def resend(self, group_at: GroupAt) -> dict[str, list[Entry]]:
        """For each acceptor of each slot's group, the in-flight entries it has not
        accepted yet."""
        out: dict[str, list[Entry]] = {}
        for slot, st in sorted(self.inflight.items()):
            for a in group_at(slot):
                if a not in st.voters:
                    out.setdefault(a, []).append((slot, st.value))
        return out

    def step_down(self) -> None:
        """Back to follower. Unchosen in-flight values are dropped (their proposers retry);
        queued values that never got a slot are kept for the next leader."""
        self.role = Role.FOLLOWER
        self.promises = {}
        self.best = {}
        self.inflight = {}

    def take_queue(self) -> list[Any]:
        q = list(self.queue)
        self.queue.clear()
        return q
