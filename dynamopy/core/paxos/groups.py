"""Which acceptors decide which slot: the metadata group as part of the log (reconfiguration).

Lamport's rule ("Reconfiguring a State Machine", the alpha method): the group that decides
slot ``t`` is the one set by the last group change chosen at a slot ``<= t - alpha``, or the
initial group. A change chosen at slot ``s`` therefore takes effect at ``s + alpha``, and the
group of every slot below ``chosen_below + alpha`` is known to a node that has learned every
slot below ``chosen_below``. Rules the protocol keeps with it (``proposer``, ``node``):

* A leader puts a value in slot ``t`` only if it knows the group of ``t`` (``t <
  chosen_below + alpha``) and holds promises for its ballot from a majority of that group.
  A leader whose window reaches a new group sends that group its Prepare first (one ballot
  for every group: ballots are totally ordered across groups).
* A vote counts for slot ``t`` only if it comes from a member of the group of ``t``; a slot is
  chosen by a majority of its own group.
* An acceptor that lost its state (a wiped disk) never votes again under its old state. It
  comes back with a new *incarnation* token (made up when it starts without state, kept on
  its disk) and may vote again only once a change chosen at ``s`` includes it and names
  that token (``readmits``). Its new, empty state then votes only for slots ``>= s +
  alpha`` (``votes_from``). Why that is safe: the token did not exist before the wipe, so
  the change was chosen after it; a slot not chosen then is at or above every leader's
  learned frontier at the wipe, and the old incarnation only ever voted below such a
  frontier plus alpha, so below ``s + alpha``. (Being left out of the group and added back
  is not enough: both changes may predate the wipe, the simulator found that.)

``GroupSchedule`` is the pure bookkeeping: immutable, built from the initial group and the
changes learned in slot order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

Group = tuple[str, ...]


@dataclass(frozen=True)
class Reconfig:
    """How the app marks a group change, given to ``MetaLogNode``.

    ``alpha``: slots between a change being chosen and taking effect (also the leader's
    pipeline bound). ``group_of(value, latest)``: the new group if ``value`` changes it, else
    None; ``latest`` is the group of the most recent change before it (deterministic; a
    change that would be invalid must return None on every node). A proposal retried can be
    chosen twice: a change that names the group it replaces and applies only if that is
    ``latest`` (compare-and-set) cannot undo a later change when its duplicate commits.
    ``schedule_of(snapshot_data)``: the (from_slot, group) changes in effect in an app
    snapshot, so a node that installs a snapshot knows the groups of the slots after it."""

    alpha: int
    group_of: Callable[[Any, Group], Group | None]
    schedule_of: Callable[[Any], Sequence[tuple[int, Sequence[str]]]]
    # The members a change re-admits with a new state: {id: incarnation token}.
    readmits: Callable[[Any], Mapping[str, str]] = lambda value: {}


def majority(group: Sequence[str]) -> int:
    return len(group) // 2 + 1


@dataclass(frozen=True)
class GroupSchedule:
    """(from_slot, group) pairs, ascending ``from_slot``, the first from slot 0."""

    alpha: int
    changes: tuple[tuple[int, Group], ...]

    @classmethod
    def initial(cls, group: Iterable[str], alpha: int) -> "GroupSchedule":
        return cls(alpha, ((0, tuple(group)),))

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[int, Sequence[str]]], alpha: int) -> "GroupSchedule":
        out = sorted((int(f), tuple(g)) for f, g in pairs)
        if not out or out[0][0] != 0:
            raise ValueError("a schedule starts with the group of slot 0")
        return cls(alpha, tuple(out))

    def at(self, slot: int) -> Group:
        """The group that decides ``slot`` (as far as the changes recorded so far say)."""
        group = self.changes[0][1]
        for from_slot, g in self.changes:
            if from_slot > slot:
                break
            group = g
        return group

    def with_change(self, chosen_slot: int, group: Iterable[str]) -> "GroupSchedule":
        """After a change chosen at ``chosen_slot``: ``group`` decides slots from
        ``chosen_slot + alpha`` on. Changes must be added in slot order, each slot once
        (a change taking effect at or before the last recorded one raises ValueError)."""
        frm = chosen_slot + self.alpha
        if frm <= self.changes[-1][0]:
            raise ValueError("group changes must be recorded in slot order, each slot once")
        return GroupSchedule(self.alpha, self.changes + ((frm, tuple(group)),))

    def groups_between(self, lo: int, hi: int) -> list[Group]:
        """The distinct groups deciding some slot in ``[lo, hi)``, in slot order."""
        out: list[Group] = []
        for i, (frm, g) in enumerate(self.changes):
            nxt = self.changes[i + 1][0] if i + 1 < len(self.changes) else None
            if (nxt is None or nxt > lo) and frm < hi and g not in out:
                out.append(g)
        return out

    def pruned(self, below: int) -> "GroupSchedule":
        """Forget changes superseded before ``below`` (keeps the group of ``below``)."""
        keep = [c for c in self.changes if c[0] > below]
        return GroupSchedule(self.alpha, ((0, self.at(below)),) + tuple(keep))

    def to_pairs(self) -> list[list]:
        return [[f, list(g)] for f, g in self.changes]
