"""A seeded fault schedule for a system simulation run (the nemesis), as pure data.

``generate(rng, params)`` turns one ``random.Random`` and a few parameters into a
:class:`Schedule`: fault windows (a start and an end, when the fault is undone) and
permanent membership changes, flattened into timed :class:`NemesisEvent`s for the run loop.
It does no I/O and reads no clock: the same seed and parameters give the same schedule.

Fault kinds (:class:`FaultKind`): crash and restart (the node loses what it had not synced),
pause and resume, message loss / extra delay / duplication / reordering windows, partitions
(both ways, or one way: the cut-off group's messages to the rest are lost while the rest's
still arrive), a clock jump on one node (forward or back, and back again at the window's
end), a slow disk, a wiped disk (the node crashes, its disk is replaced by an empty one, and
it restarts with the same id: a replacement), and joins, leaves and removals.

Rules that keep a run meaningful (:func:`rule_violations` checks them on any schedule):

1. Every window ends by ``duration_ms``, when the liveness phase starts: nothing is left
   broken for it. Membership changes start ``settle_ms`` before that at the latest.
2. At no instant are more than ``max_down`` nodes down, where a node is down while it is
   crashed or paused, cut off by a partition (the smaller, listed side), or removed and
   less than ``settle_ms`` ago (its ranges are short a replica until the removal's
   transfer ends), or wiped at any time before ``duration_ms`` (its data is gone until its
   replacement has streamed its ranges back, which the schedule cannot time: so for the
   rest of the safety phase). ``max_down`` is N - W (a write still finds W home replicas up) unless
   the run tests unavailability (``unavailable=True``: anything but all members down).
3. One node is in at most one crash or pause window at a time; one topology at a time (no
   two partition windows overlap); no network window overlaps another of its kind; one
   clock jumped at a time; a node's disk is slowed by one window at a time. At most
   ``max_wipes`` wipes per schedule (one by default).
4. Faults hit members: a node is targeted only for windows it is a member throughout
   (joined before, not left or removed before the end). Membership changes are
   ``settle_ms`` apart, a join takes a spare node, a leave or removal takes a member that is
   not ``fixed`` and keeps at least ``min_members`` members (never fewer than N).
5. A wipe hits a member that is not in ``never_wiped``, while the cluster has more than
   that floor of members (its old incarnation is removed before it joins again), not within
   ``settle_ms`` of a membership change and no leave starts after it. A removal may share
   the run: the replacement is a removal too, and a dead member's removal merges with
   another in progress (``core.membership``; seed 9026 deadlocked before that fix).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Iterable, Optional

# -- the vocabulary ---------------------------------------------------------------------


class FaultKind(str, enum.Enum):
    CRASH = "crash"
    PAUSE = "pause"
    LOSS = "loss"
    DELAY = "delay"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    PARTITION = "partition"
    ONE_WAY = "one_way"
    CLOCK_JUMP = "clock_jump"
    SLOW_DISK = "slow_disk"
    JOIN = "join"
    LEAVE = "leave"
    REMOVE = "remove"
    WIPE = "wipe"


NODE_FAULTS = frozenset({FaultKind.CRASH, FaultKind.PAUSE, FaultKind.CLOCK_JUMP, FaultKind.SLOW_DISK,
                         FaultKind.WIPE})
DOWN_FAULTS = frozenset({FaultKind.CRASH, FaultKind.PAUSE, FaultKind.WIPE})  # one per node at a time
NET_FAULTS = frozenset({FaultKind.LOSS, FaultKind.DELAY, FaultKind.DUPLICATE, FaultKind.REORDER})
PARTITIONS = frozenset({FaultKind.PARTITION, FaultKind.ONE_WAY})
CHANGES = frozenset({FaultKind.JOIN, FaultKind.LEAVE, FaultKind.REMOVE})
ALL_KINDS = frozenset(FaultKind)


def parse_kinds(text: str) -> frozenset[FaultKind]:
    """``"crash,loss,partition"`` -> kinds; ``"all"`` -> every kind. ValueError names a bad one."""
    if text.strip() == "all":
        return ALL_KINDS
    out = set()
    for name in filter(None, (p.strip() for p in text.split(","))):
        try:
            out.add(FaultKind(name.replace("-", "_")))
        except ValueError:
            raise ValueError(f"unknown fault kind {name!r}; known: {', '.join(k.value for k in FaultKind)}") from None
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault. ``end_ms`` is when it is undone (None for a membership change, which is
    permanent). ``node``: the node it hits; ``group``: the cut-off side of a partition;
    ``prob``: loss/duplication/reordering probability; ``ms``: extra delay, clock jump
    (signed) or extra sync time."""

    kind: FaultKind
    start_ms: int
    end_ms: Optional[int] = None
    node: Optional[str] = None
    group: tuple[str, ...] = ()
    prob: float = 0.0
    ms: int = 0

    def active(self, t_ms: int) -> bool:
        """In effect at ``t_ms`` (windows are half-open: [start, end))."""
        return self.start_ms <= t_ms and (self.end_ms is None or t_ms < self.end_ms)

    def overlaps(self, other: "Fault") -> bool:
        a_end = self.end_ms if self.end_ms is not None else float("inf")
        b_end = other.end_ms if other.end_ms is not None else float("inf")
        return self.start_ms < b_end and other.start_ms < a_end


class Action(str, enum.Enum):
    START = "start"
    END = "end"
    HEAL_ALL = "heal_all"


@dataclass(frozen=True, slots=True)
class NemesisEvent:
    """What the run loop does at ``t_ms``: start or end ``fault``, or heal everything."""

    t_ms: int
    action: Action
    fault: Optional[Fault] = None

    def describe(self) -> str:
        """One trace line: the time, then :attr:`text`."""
        return f"{self.t_ms:>8}ms {self.text}"

    @property
    def text(self) -> str:
        """What happens, in words (for a history note, which has its own time)."""
        f = self.fault
        if self.action is Action.HEAL_ALL or f is None:
            return "heal all: every fault undone, liveness phase begins"
        start = self.action is Action.START
        k = f.kind
        group = "{" + ",".join(f.group) + "}"
        if k is FaultKind.CRASH:
            text = f"crash {f.node} (unsynced writes lost)" if start else f"restart {f.node}"
        elif k is FaultKind.WIPE:
            text = (f"crash {f.node} and wipe its disk (data, acceptor state, hints lost)" if start
                    else f"restart {f.node} on an empty disk (a replacement)")
        elif k is FaultKind.PAUSE:
            text = f"pause {f.node}" if start else f"resume {f.node}"
        elif k is FaultKind.LOSS:
            text = f"message loss {f.prob:.0%} on" if start else "message loss off"
        elif k is FaultKind.DELAY:
            text = f"message delay up to +{f.ms}ms on" if start else "message delay off"
        elif k is FaultKind.DUPLICATE:
            text = f"message duplication {f.prob:.0%} on" if start else "message duplication off"
        elif k is FaultKind.REORDER:
            text = f"message reordering {f.prob:.0%} on" if start else "message reordering off"
        elif k is FaultKind.PARTITION:
            text = f"partition {group} | rest" if start else f"partition of {group} healed"
        elif k is FaultKind.ONE_WAY:
            text = f"one-way partition: {group} -> rest lost" if start else f"one-way partition of {group} healed"
        elif k is FaultKind.CLOCK_JUMP:
            text = f"clock of {f.node} jumps {f.ms:+d}ms" if start else f"clock of {f.node} jumps back {-f.ms:+d}ms"
        elif k is FaultKind.SLOW_DISK:
            text = f"disk of {f.node} slow (+{f.ms}ms per sync)" if start else f"disk of {f.node} normal"
        elif k is FaultKind.JOIN:
            text = f"join {f.node}"
        elif k is FaultKind.LEAVE:
            text = f"leave {f.node}"
        else:
            text = f"remove {f.node} (stopped for good, removed by an operator)"
        return text


# -- parameters and schedule --------------------------------------------------------------


@dataclass(frozen=True)
class NemesisParams:
    """What a schedule may contain. ``nodes``: the initial members; ``spares``: nodes that
    may join. ``faults``: how many windows to try to place (some may not fit the rules);
    ``changes``: how many membership changes to try. ``fixed`` nodes are never chosen to
    leave or be removed (today the bootstrap seeds: the metadata group is fixed at bootstrap
    and ``core/membership.py`` refuses their leave)."""

    nodes: tuple[str, ...]
    spares: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()   # members that never leave nor are removed (the metadata group's seeds)
    duration_ms: int = 10_000
    kinds: frozenset[FaultKind] = ALL_KINDS
    faults: int = 12
    changes: int = 2
    replication_n: int = 3
    write_quorum: int = 2
    unavailable: bool = False
    min_members: int = 0          # 0: N
    min_window_ms: int = 200
    max_window_ms: int = 3000
    settle_ms: int = 2000
    max_loss: float = 0.5
    max_delay_ms: int = 500
    max_clock_jump_ms: int = 60_000
    max_slow_disk_ms: int = 200
    max_wipes: int = 1
    never_wiped: tuple[str, ...] = ()

    @property
    def max_down(self) -> int:
        if self.unavailable:
            return len(self.nodes) + len(self.spares) - 1
        return max(self.replication_n - self.write_quorum, 0)

    @property
    def floor_members(self) -> int:
        return max(self.min_members, self.replication_n)


@dataclass(frozen=True)
class Schedule:
    params: NemesisParams
    faults: tuple[Fault, ...]
    events: tuple[NemesisEvent, ...] = field(repr=False, default=())
    skipped: int = 0  # windows drawn that did not fit the rules

    @property
    def heal_ms(self) -> int:
        return self.params.duration_ms

    def members_at(self, t_ms: int) -> tuple[str, ...]:
        return _members_at(self.params, self.faults, t_ms)

    def down_at(self, t_ms: int) -> frozenset[str]:
        return _down_at(self.params, self.faults, t_ms)

    def describe(self) -> str:
        p = self.params
        kinds = ",".join(sorted(k.value for k in p.kinds))
        head = (f"nemesis: {len(self.faults)} faults ({self.skipped} drawn did not fit), nodes "
                f"{','.join(p.nodes)}{' spares ' + ','.join(p.spares) if p.spares else ''}, "
                f"max {p.max_down} down, kinds {kinds}, heal at {self.heal_ms}ms")
        return "\n".join([head] + [e.describe() for e in self.events])


# -- the rules ------------------------------------------------------------------------------


def _members_at(p: NemesisParams, faults: Iterable[Fault], t_ms: int) -> tuple[str, ...]:
    """Members at ``t_ms``: initial nodes, plus joins started at or before it, minus leaves
    and removals started at or before it. (Only the membership changes among ``faults``
    matter: pass just those where speed counts.)"""
    members = list(p.nodes)
    for f in sorted((f for f in faults if f.kind in CHANGES and f.start_ms <= t_ms), key=lambda f: f.start_ms):
        if f.kind is FaultKind.JOIN:
            members.append(f.node)
        elif f.node in members:
            members.remove(f.node)
    return tuple(members)


def _member_throughout(p: NemesisParams, faults: Iterable[Fault], node: str, start: int, end: int) -> bool:
    faults = [f for f in faults if f.kind in CHANGES]
    if node not in _members_at(p, faults, start):
        return False
    return not any(f.kind in (FaultKind.LEAVE, FaultKind.REMOVE) and f.node == node and f.start_ms < end
                   for f in faults)


def _down_at(p: NemesisParams, faults: Iterable[Fault], t_ms: int) -> frozenset[str]:
    down: set[str] = set()
    for f in faults:
        if f.kind in (FaultKind.CRASH, FaultKind.PAUSE) and f.active(t_ms):
            down.add(f.node)
        elif f.kind is FaultKind.WIPE and f.start_ms <= t_ms < p.duration_ms:
            down.add(f.node)
        elif f.kind in PARTITIONS and f.active(t_ms):
            down.update(f.group)
        elif f.kind is FaultKind.REMOVE and f.start_ms <= t_ms < f.start_ms + p.settle_ms:
            down.add(f.node)
    return frozenset(down)


def _conflicts(a: Fault, b: Fault) -> bool:
    """Rule 3: two windows that must not overlap."""
    if not a.overlaps(b):
        return False
    if a.kind in DOWN_FAULTS and b.kind in DOWN_FAULTS:
        return a.node == b.node
    if a.kind in PARTITIONS and b.kind in PARTITIONS:
        return True
    if a.kind in NET_FAULTS or a.kind is FaultKind.CLOCK_JUMP:
        return a.kind is b.kind
    if a.kind is FaultKind.SLOW_DISK:
        return b.kind is FaultKind.SLOW_DISK and a.node == b.node
    return False


def _label(f: Fault) -> str:
    who = f" {f.node}" if f.node else f" {{{','.join(f.group)}}}" if f.group else ""
    return f"{f.kind.value}{who} [{f.start_ms}, {f.end_ms})"


def rule_violations(schedule: Schedule) -> list[str]:
    """Every rule of the module docstring this schedule breaks (empty: it keeps them all)."""
    p, faults, out = schedule.params, list(schedule.faults), []
    for f in faults:
        if f.kind not in p.kinds:
            out.append(f"kind {f.kind.value} is not enabled")
        if f.kind in CHANGES:
            if f.end_ms is not None or f.start_ms > p.duration_ms - p.settle_ms:
                out.append(f"change {f.kind.value} {f.node} at {f.start_ms}ms does not settle before healing")
        elif f.end_ms is None or not 0 <= f.start_ms < f.end_ms <= p.duration_ms:
            out.append(f"{f.kind.value} [{f.start_ms}, {f.end_ms}) is not healed by {p.duration_ms}ms")
    for i, a in enumerate(faults):
        for b in faults[i + 1:]:
            if _conflicts(a, b):
                out.append(f"{_label(a)} and {_label(b)} overlap")
    for t in sorted({f.start_ms for f in faults}):
        down = _down_at(p, faults, t)
        if len(down) > p.max_down:
            out.append(f"{len(down)} nodes down at {t}ms ({','.join(sorted(down))}), more than {p.max_down}")
        members = _members_at(p, faults, t)
        if len(members) < p.floor_members:
            out.append(f"{len(members)} members at {t}ms, fewer than {p.floor_members}")
    for f in faults:
        if f.kind in NODE_FAULTS and not _member_throughout(p, faults, f.node, f.start_ms, f.end_ms):
            out.append(f"{f.kind.value} hits {f.node}, not a member throughout [{f.start_ms}, {f.end_ms})")
        if f.kind in PARTITIONS:
            members = _members_at(p, faults, f.start_ms)
            if not f.group or not set(f.group) < set(members):
                out.append(f"{f.kind.value} group {f.group} is not a proper subset of the members {members}")
    wipes = [f for f in faults if f.kind is FaultKind.WIPE]
    if len(wipes) > p.max_wipes:
        out.append(f"{len(wipes)} wipes, more than {p.max_wipes}")
    for f in wipes:
        problem = _wipe_problem(p, faults, f)
        if problem:
            out.append(f"{_label(f)}: {problem}")
    changes = sorted((f for f in faults if f.kind in CHANGES), key=lambda f: f.start_ms)
    for a, b in zip(changes, changes[1:]):
        if b.start_ms - a.start_ms < p.settle_ms:
            out.append(f"changes at {a.start_ms}ms and {b.start_ms}ms are closer than {p.settle_ms}ms")
    for f in changes:
        before = _members_at(p, faults, f.start_ms - 1)
        if f.kind is FaultKind.JOIN and (f.node not in p.spares or f.node in before):
            out.append(f"join of {f.node}, not a spare outside the cluster")
        if f.kind in (FaultKind.LEAVE, FaultKind.REMOVE) and (f.node not in before or f.node in p.fixed):
            out.append(f"{f.kind.value} of {f.node}, not a member that may go")
    return out


def _wipe_problem(p: NemesisParams, faults: Iterable[Fault], w: Fault) -> Optional[str]:
    """Rule 5 for the wipe ``w``: why it may not be placed, or None."""
    if w.node in p.never_wiped:
        return "that node is never wiped"
    changes = [f for f in faults if f.kind in CHANGES]
    if len(_members_at(p, changes, w.start_ms)) <= p.floor_members:
        return "too few members to replace it"
    for c in changes:
        if abs(c.start_ms - w.start_ms) < p.settle_ms or (c.kind is FaultKind.LEAVE and c.start_ms >= w.start_ms):
            return f"too close to the {c.kind.value} of {c.node} at {c.start_ms}ms"
    return None


# -- generation -------------------------------------------------------------------------------


def _plan_changes(rng: random.Random, p: NemesisParams) -> list[Fault]:
    kinds = sorted((k for k in p.kinds if k in CHANGES), key=lambda k: k.value)
    last_start = p.duration_ms - p.settle_ms
    if not kinds or p.changes <= 0 or last_start < 0:
        return []
    slots = (last_start // p.settle_ms) + 1  # change i goes in slot [i*settle, (i+1)*settle)
    picks = sorted(rng.sample(range(slots), min(p.changes, slots)))
    members, spares, out = list(p.nodes), list(p.spares), []
    for slot in picks:
        t = min(slot * p.settle_ms + rng.randrange(max(p.settle_ms // 2, 1)), last_start)
        if out and t - out[-1].start_ms < p.settle_ms:
            continue
        options = [k for k in kinds if (k is FaultKind.JOIN and spares)
                   or (k is FaultKind.LEAVE and len(members) > p.floor_members)
                   or (k is FaultKind.REMOVE and len(members) > p.floor_members and p.max_down >= 1)]
        if not options:
            continue
        kind = rng.choice(options)
        if kind is FaultKind.JOIN:
            node = rng.choice(spares)
            spares.remove(node)
            members.append(node)
        else:
            movable = [m for m in members if m not in p.fixed]
            if not movable:
                continue
            node = rng.choice(movable)
            members.remove(node)
        out.append(Fault(kind, t, node=node))
    return out


def _draw(rng: random.Random, p: NemesisParams, kind: FaultKind, changes: list[Fault]) -> Optional[Fault]:
    span = p.duration_ms - p.min_window_ms
    if span <= 0:
        return None
    start = rng.randrange(span)
    end = min(start + rng.randint(p.min_window_ms, p.max_window_ms), p.duration_ms)
    members = sorted(m for m in _members_at(p, changes, start) if _member_throughout(p, changes, m, start, end))
    if kind is FaultKind.WIPE:
        members = [m for m in members if m not in p.never_wiped]
    if kind in NODE_FAULTS:
        if not members:
            return None
        node = rng.choice(members)
        if kind is FaultKind.CLOCK_JUMP:
            jump = rng.randint(1000, max(p.max_clock_jump_ms, 1000))
            return Fault(kind, start, end, node=node, ms=jump if rng.random() < 0.5 else -jump)
        if kind is FaultKind.SLOW_DISK:
            return Fault(kind, start, end, node=node, ms=rng.randint(min(50, max(p.max_slow_disk_ms, 5)), max(p.max_slow_disk_ms, 5)))
        return Fault(kind, start, end, node=node)
    if kind in PARTITIONS:
        size_cap = min(p.max_down, len(members) - 1)
        if size_cap < 1:
            return None
        group = tuple(sorted(rng.sample(members, rng.randint(1, size_cap))))
        return Fault(kind, start, end, group=group)
    if kind is FaultKind.DELAY:
        return Fault(kind, start, end, ms=rng.randint(10, max(p.max_delay_ms, 10)))
    top = p.max_loss if kind is FaultKind.LOSS else 0.3
    return Fault(kind, start, end, prob=round(rng.uniform(0.05, max(top, 0.05)), 2))


def _fits(p: NemesisParams, placed: list[Fault], f: Fault) -> bool:
    if any(_conflicts(f, g) for g in placed):
        return False
    if f.kind is FaultKind.WIPE and (_wipe_problem(p, placed, f) or
                                     sum(g.kind is FaultKind.WIPE for g in placed) >= p.max_wipes):
        return False
    trial = placed + [f]
    down_end = p.duration_ms if f.kind is FaultKind.WIPE else (f.end_ms or 0)
    checkpoints = {f.start_ms} | {g.start_ms for g in placed if f.start_ms <= g.start_ms < down_end}
    return all(len(_down_at(p, trial, t)) <= p.max_down for t in checkpoints)


def _events(faults: Iterable[Fault], heal_ms: int) -> tuple[NemesisEvent, ...]:
    # At one instant, ends come before starts (a fault is undone before the next one
    # begins, so the down budget holds at every instant), then generation order.
    timed = []
    for i, f in enumerate(faults):
        timed.append((f.start_ms, 1, i, NemesisEvent(f.start_ms, Action.START, f)))
        if f.end_ms is not None:
            timed.append((f.end_ms, 0, i, NemesisEvent(f.end_ms, Action.END, f)))
    timed.sort(key=lambda x: x[:3])
    return tuple(e for *_, e in timed) + (NemesisEvent(heal_ms, Action.HEAL_ALL),)


def generate(rng: random.Random, params: NemesisParams, *, attempts: int = 8) -> Schedule:
    """A schedule that keeps every rule: membership changes first (spaced, in time order),
    then up to ``max_wipes`` wipes, then ``params.faults`` windows of other enabled kinds, each redrawn up to ``attempts`` times
    until it fits (else skipped, and counted)."""
    if params.write_quorum > params.replication_n or len(params.nodes) < params.replication_n:
        raise ValueError("need W <= N <= number of nodes")
    changes = _plan_changes(rng, params)
    placed = list(changes)
    skipped = 0
    # Wipes first (they are few, and take the down budget for the rest of the safety phase):
    # other windows fit around them.
    for _ in range(params.max_wipes if FaultKind.WIPE in params.kinds else 0):
        for _ in range(attempts):
            f = _draw(rng, params, FaultKind.WIPE, changes)
            if f is not None and _fits(params, placed, f):
                placed.append(f)
                break
        else:
            skipped += 1
    window_kinds = sorted((k for k in params.kinds if k not in CHANGES and k is not FaultKind.WIPE),
                          key=lambda k: k.value)
    for _ in range(params.faults if window_kinds else 0):
        kind = rng.choice(window_kinds)
        for _ in range(attempts):
            f = _draw(rng, params, kind, changes)
            if f is not None and _fits(params, placed, f):
                placed.append(f)
                break
        else:
            skipped += 1
    placed.sort(key=lambda f: (f.start_ms, f.kind.value))
    faults = tuple(placed)
    return Schedule(params, faults, _events(faults, params.duration_ms), skipped)
