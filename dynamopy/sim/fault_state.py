"""The world as the nemesis has left it: a pure reducer over nemesis events.

``FaultState`` is frozen; ``apply(event)`` returns the state after one
:class:`~dynamopy.sim.nemesis.NemesisEvent`. The run loop keeps the current state and asks
it what each seam should do right now, so no fault logic lives in the transport, disk or
clock adapters:

* ``can_send(src, dst)``: the link is not cut (a partition cuts both ways between its group
  and the rest; a one-way partition only from the group to the rest) and neither end is
  crashed or removed. A paused node's messages are held, not lost: ``paused`` says whom to
  hold.
* ``loss``, ``duplicate``, ``reorder`` (probabilities) and ``extra_delay_ms``: the fates the
  network draws for each message;
* ``clock_offset_ms(node)``, ``sync_delay_ms(node)``: a node's clock jump and slow disk;
* ``wiped``: nodes whose disk a wipe emptied (the run loop restarts them on an empty disk);
* ``running(node)``: its process should be up (a member or a joiner, not crashed, not
  removed; a node that left is kept running: the run loop stops it once its leave is done).

Undoing a fault undoes exactly that fault (a clock jumps back by the amount it jumped), and
``HEAL_ALL`` undoes every fault still in effect while keeping membership changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Optional

from .nemesis import Action, Fault, FaultKind, NemesisEvent


@dataclass(frozen=True)
class FaultState:
    crashed: frozenset[str] = frozenset()
    paused: frozenset[str] = frozenset()
    joined: frozenset[str] = frozenset()
    left: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    wiped: frozenset[str] = frozenset()        # nodes whose disk was wiped (ever)
    partition: Optional[Fault] = None          # the PARTITION or ONE_WAY fault in effect
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    extra_delay_ms: int = 0
    clock_offsets: Mapping[str, int] = field(default_factory=dict)
    slow_disks: Mapping[str, int] = field(default_factory=dict)

    # -- queries --------------------------------------------------------------------------

    def running(self, node: str) -> bool:
        return node not in self.crashed and node not in self.removed

    def can_send(self, src: str, dst: str) -> bool:
        if not (self.running(src) and self.running(dst)):
            return False
        p = self.partition
        if p is None or src == dst:
            return True
        src_in, dst_in = src in p.group, dst in p.group
        if p.kind is FaultKind.ONE_WAY:
            return not (src_in and not dst_in)
        return src_in == dst_in

    def clock_offset_ms(self, node: str) -> int:
        return self.clock_offsets.get(node, 0)

    def sync_delay_ms(self, node: str) -> int:
        return self.slow_disks.get(node, 0)

    @property
    def healed(self) -> bool:
        """No fault in effect (membership changes are not faults)."""
        return self == FaultState(joined=self.joined, left=self.left, removed=self.removed, wiped=self.wiped)

    # -- transitions ----------------------------------------------------------------------

    def apply(self, event: NemesisEvent) -> "FaultState":
        if event.action is Action.HEAL_ALL:
            return FaultState(joined=self.joined, left=self.left, removed=self.removed, wiped=self.wiped)
        f = event.fault
        start = event.action is Action.START
        k = f.kind
        if k is FaultKind.CRASH:
            return replace(self, crashed=_toggle(self.crashed, f.node, start))
        if k is FaultKind.WIPE:  # down like a crash; the run loop empties its disk
            return replace(self, crashed=_toggle(self.crashed, f.node, start), wiped=self.wiped | {f.node})
        if k is FaultKind.PAUSE:
            return replace(self, paused=_toggle(self.paused, f.node, start))
        if k in (FaultKind.PARTITION, FaultKind.ONE_WAY):
            if start:
                return replace(self, partition=f)
            return replace(self, partition=None) if self.partition == f else self
        if k is FaultKind.LOSS:
            return replace(self, loss=f.prob if start else 0.0)
        if k is FaultKind.DUPLICATE:
            return replace(self, duplicate=f.prob if start else 0.0)
        if k is FaultKind.REORDER:
            return replace(self, reorder=f.prob if start else 0.0)
        if k is FaultKind.DELAY:
            return replace(self, extra_delay_ms=f.ms if start else 0)
        if k is FaultKind.CLOCK_JUMP:
            offset = self.clock_offset_ms(f.node) + (f.ms if start else -f.ms)
            offsets = {n: v for n, v in self.clock_offsets.items() if n != f.node}
            if offset:
                offsets[f.node] = offset
            return replace(self, clock_offsets=offsets)
        if k is FaultKind.SLOW_DISK:
            disks = {n: v for n, v in self.slow_disks.items() if n != f.node}
            if start:
                disks[f.node] = f.ms
            return replace(self, slow_disks=disks)
        if k is FaultKind.JOIN:
            return replace(self, joined=self.joined | {f.node})
        if k is FaultKind.LEAVE:
            return replace(self, left=self.left | {f.node})
        return replace(self, removed=self.removed | {f.node}, crashed=self.crashed - {f.node},
                       paused=self.paused - {f.node})


def _toggle(nodes: frozenset[str], node: str, on: bool) -> frozenset[str]:
    return nodes | {node} if on else nodes - {node}
