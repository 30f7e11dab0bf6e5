"""Quorum write and read rounds as small state machines, and target planning.

A round knows its targets and how many distinct nodes must answer. The runtime feeds it
replies and failures as they come and asks for the outcome; the round never does I/O.

Rules:

* W and R count distinct nodes that answered.
* A round succeeds as soon as ``required`` counting answers arrived; it fails as soon as
  that can no longer happen (too many failures) — callers answer at once either way and let
  the remaining calls finish in the background.
* A write counts only acks of its own version. A replica that already holds a newer version
  answers with it (``newer``): that is not an ack, and the coordinator re-stamps the write
  above ``newest_heard`` and sends it again (a later write then never hides behind an
  earlier one with a larger version, whatever the clocks do, for W > N/2).
* A read's answer is the newest record among the replies (largest version); replicas that
  answered with an older record or none are repaired. R counts quorum slots: a fallback's
  empty answer never fills a home replica's slot (see ``ReadRound`` and ``core.read_plan``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from dynamopy.core.records import Record, newest


class Outcome(enum.Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Target:
    """A node to send a replica write/read to.

    ``hint_for`` names the preference-list member this node stands in for (a sloppy-quorum
    fallback) or ``None`` for a home replica.
    """

    node: str
    hint_for: Optional[str] = None


def plan_targets(
    walk: Sequence[str],
    n: int,
    is_up,
    *,
    sloppy: bool = True,
    extra: Iterable[str] = (),
) -> list[Target]:
    """The targets of a write for one key.

    ``walk`` is the ring walk of the key (preference list first, then fallbacks);
    ``is_up(node)`` is the failure detector's view. Each down home replica gets the next up
    fallback beyond the first ``n`` (sloppy quorum). When none is left, the home replica is
    tried anyway (the detector may be behind: a restarted node is alive before it is seen
    so); if that fails, the coordinator keeps a hint for it, which never counts toward W
    (Cassandra's coordinator hints, so small clusters converge too). With ``sloppy=False``
    (strict mode) no fallback is used. ``extra`` lists members gaining the key in a ring
    change in progress: they receive the write too, and count (see :func:`pending_required`).
    """
    home = list(walk[:n])
    targets: list[Target] = []
    fallbacks = [m for m in walk[n:] if is_up(m)]
    for member in home:
        if is_up(member) or not sloppy or not fallbacks:
            targets.append(Target(member))
        else:
            targets.append(Target(fallbacks.pop(0), hint_for=member))
    named = {t.node for t in targets if t.hint_for is None}
    for node in extra:
        if node not in named:
            targets.append(Target(node))
            named.add(node)
    return targets


def _slot(t: Target) -> str:
    """The home member whose place in a read quorum ``t`` answers for."""
    return t.hint_for if t.hint_for is not None else t.node


def pending_required(w: int, targets: list[Target], home: list[str]) -> int:
    """W plus one per member gaining the key in a ring change in progress (Cassandra's
    "blockFor + pending"): with W + P acks among the N + P targets, at least W are on the
    replica set after the change, whichever way it ends, so the change cannot lose the write
    even if the gainer missed it."""
    return w + sum(1 for t in targets if t.hint_for is None and t.node not in home)


@dataclass
class WriteRound:
    """Counts durable acks of one write until W distinct target nodes acked."""

    targets: tuple[Target, ...]
    required: int
    acked: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    newest_heard: int = 0  # the largest version a replica answered with instead of an ack

    def __post_init__(self) -> None:
        self._counting = {t.node for t in self.targets}

    def ack(self, node: str) -> Outcome:
        if node in self._counting:
            self.acked.add(node)
        return self.outcome

    def fail(self, node: str) -> Outcome:
        if node in self._counting and node not in self.acked:
            self.failed.add(node)
        return self.outcome

    def newer(self, node: str, version: int) -> Outcome:
        """``node`` holds ``version``, newer than this write's: not an ack."""
        self.newest_heard = max(self.newest_heard, version)
        return self.fail(node)

    @property
    def outcome(self) -> Outcome:
        if len(self.acked) >= self.required:
            return Outcome.SUCCEEDED
        if len(self._counting) - len(self.failed) < self.required:
            return Outcome.FAILED
        return Outcome.PENDING


@dataclass
class ReadRound:
    """Collects replica replies of one read until R quorum slots are filled.

    A slot is a home replica (``Target.hint_for`` for a fallback, else the node). A home
    replica's reply fills its slot whatever it holds; a fallback's fills the slot it stands
    in for only with a record (an empty hint lookup is "unknown"); each slot counts once.
    The read fails once the slots still open cannot reach R. (Plan: ``core.read_plan``.)
    """

    targets: tuple[Target, ...]
    required: int
    replies: dict[str, Optional[Record]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._target = {t.node: t for t in self.targets}
        self._filled: set[str] = set()

    def reply(self, node: str, record: Optional[Record]) -> Outcome:
        """Record one reply. A node that answers twice is one reply holding the newer of its
        two records."""
        if node in self.replies:
            record = newest((self.replies[node], record))
        self.replies[node] = record
        self.failed.discard(node)
        t = self._target.get(node)
        if t is not None and (t.hint_for is None or record is not None):
            self._filled.add(_slot(t))
        return self.outcome

    def fail(self, node: str) -> Outcome:
        if node not in self.replies:
            self.failed.add(node)
        return self.outcome

    @property
    def counted(self) -> int:
        """Quorum slots filled so far (what R is compared with)."""
        return len(self._filled)

    @property
    def outcome(self) -> Outcome:
        if len(self._filled) >= self.required:
            return Outcome.SUCCEEDED
        open_slots = {_slot(t) for t in self.targets
                      if t.node not in self.replies and t.node not in self.failed}
        if len(self._filled) + len(open_slots - self._filled) < self.required:
            return Outcome.FAILED
        return Outcome.PENDING

    @property
    def done(self) -> bool:
        """Every target either replied or failed."""
        return len(self.replies) + len(self.failed) >= len({t.node for t in self.targets})

    def newest(self) -> Optional[Record]:
        return newest(self.replies.values())

    def stale(self) -> list[str]:
        """Nodes that replied with something older than the newest record (or nothing)."""
        best = self.newest()
        if best is None:
            return []
        return [
            node
            for node, rec in self.replies.items()
            if rec is None or rec.version < best.version
        ]
