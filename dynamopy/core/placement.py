"""Placement during ring changes: who replicates a token, as pure queries on a ClusterState.

While a ring change (join, leave or remove) is in progress the state holds two rings:
``ring``, the placement reads use, and ``pending_ring``, the placement once the change's
``finish_*`` entry switches over (``core/membership.py``). Every question the runtime asks
about a token's replicas is answered here, from the state alone, and nowhere else:

* :func:`replicas` -> ``Replicas(current, pending)``: the token's preference list in
  ``ring``, and in ``pending_ring`` (empty when no change is in progress). ``after`` is the
  replica set once the change is over (where a hint must end up); ``gaining`` the members
  of ``pending`` not in ``current`` (a write goes to them too, and each one raises the
  number of acks the write needs: ``core.quorum.pending_required``).
* :func:`replicates`: ``member`` is in ``current`` or ``pending``: it holds the token now or
  will once the change is over, so it accepts and keeps data for it.
* :func:`held_ranges`: the same question by token ranges (a token is in one of ``member``'s
  ranges exactly when ``replicates`` says so); :func:`lost_ranges` what a state change takes
  away from a member.
* :func:`check_epoch`: whether a member refuses a request routed at an older epoch,
  raising :class:`StaleEpoch` (with this member's epoch, an int, for the router to catch up
  to) when it does.
"""

from __future__ import annotations

from typing import NamedTuple

from dynamopy.core.membership import ClusterState


class StaleEpoch(Exception):
    """A request was routed by a ring older than the member's and must not be served.

    ``epoch`` is the refusing member's epoch: the router catches up with the metadata log
    to at least that epoch and plans again."""

    def __init__(self, epoch: int):
        super().__init__(f"routed by an older ring: this member is at epoch {epoch}")
        self.epoch = epoch


class Replicas(NamedTuple):
    """A token's replicas in the current ring and in the pending ring (if a change is in
    progress, else ``pending`` is empty; a pending ring always has members, so a non-empty
    ``pending`` means a change)."""

    current: tuple[str, ...]
    pending: tuple[str, ...] = ()

    @property
    def after(self) -> tuple[str, ...]:
        """The replicas once the change in progress is over (``current`` when none is)."""
        return self.pending if self.pending else self.current

    @property
    def gaining(self) -> tuple[str, ...]:
        """Members that replicate the token after the change and not now (pending order)."""
        if not self.pending:
            return ()
        return tuple(m for m in self.pending if m not in self.current)


def replicas(state: ClusterState, token: int) -> Replicas:
    """Who replicates ``token`` now (``ring``) and after the change in progress
    (``pending_ring``), each in preference-list order. The state must be bootstrapped."""
    n = state.settings.n
    current = tuple(state.ring.preference_list_for_token(token, n))
    if state.pending_ring is None:
        return Replicas(current)
    return Replicas(current, tuple(state.pending_ring.preference_list_for_token(token, n)))


def replicates(state: ClusterState, member: str, token: int) -> bool:
    """``member`` holds ``token`` now or will once the change in progress is over (False
    before bootstrap)."""
    if state.ring is None:
        return False
    current, pending = replicas(state, token)
    return member in current or member in pending


def check_epoch(state: ClusterState, member: str, epoch: int, token: int) -> None:
    """Raise :class:`StaleEpoch` if ``member`` (at ``state``) must refuse a request for
    ``token`` routed by a coordinator at ``epoch``. A request routed at ``state.epoch`` or
    later, or before bootstrap, is served. An older one is refused when

    * a change is in progress that the router did not know (``epoch < change_epoch``) and
      the token's replica set changes in it: the router would not have sent this moving
      key to its new owners; or
    * ``member`` does not replicate the token (a write must not land on a member that
      already dropped the range)."""
    if epoch >= state.epoch or state.ring is None:
        return
    current, pending = replicas(state, token)
    if pending and epoch < state.change_epoch and set(pending) != set(current):
        raise StaleEpoch(state.epoch)
    if member not in current and member not in pending:
        raise StaleEpoch(state.epoch)


# ---- the same by token ranges ------------------------------------------------------------

def held_ranges(state: ClusterState, member: str) -> list[tuple[int, int]]:
    """Sorted, merged token ranges ``member`` replicates in ``state`` (ring or pending ring):
    a token lies in one of them exactly when ``replicates(state, member, token)``."""
    out: list[tuple[int, int]] = []
    for ring in (state.ring, state.pending_ring):
        if ring is not None and member in ring.members:
            out += ring.ranges_of(member, state.settings.n)
    return merge_spans(out)


def lost_ranges(old: ClusterState, new: ClusterState, member: str) -> list[tuple[int, int]]:
    """The ranges ``member`` replicated in ``old`` and does not in ``new``."""
    if old.ring is new.ring and old.pending_ring is new.pending_ring:
        return []  # the common case (settings, epochs): nothing moved
    if old.ring == new.ring and old.pending_ring == new.pending_ring:
        return []
    before = held_ranges(old, member)
    return subtract_sorted(before, held_ranges(new, member)) if before else []


def subtract_sorted(spans: list[tuple[int, int]],
                    cut: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``spans`` not covered by ``cut``; both sorted and disjoint (one sweep)."""
    out: list[tuple[int, int]] = []
    j = 0
    for start, end in spans:
        while j < len(cut) and cut[j][1] <= start:
            j += 1
        cur, k = start, j
        while k < len(cut) and cut[k][0] < end:
            if cut[k][0] > cur:
                out.append((cur, cut[k][0]))
            cur = max(cur, cut[k][1])
            k += 1
        if cur < end:
            out.append((cur, end))
    return out


def merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or touching ``[start, end)`` spans."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


# ---- where a gainer pulls from ---------------------------------------------------------------

def pull_sources(state: ClusterState, member: str) -> dict[str, list[tuple[int, int]]]:
    """source member -> sorted token ranges ``member`` pulls from it in the change in
    progress (empty when none, or when ``member`` gains nothing).

    Each range ``member`` gains is pulled from its current replicas (the old ones). In a
    merged removal (``ClusterState.merged``) it is also pulled from every member that
    replicated it in one of the change's stage rings (``ClusterState.stage_rings``): a write
    acknowledged at a stage may have its only live copies there (the argument is in
    ``core/membership.py``, "Several dead members"). Ranges are cut per partition, so a
    source is asked only for tokens it replicated."""
    moves = [m for m in state.transfers() if member in m.gained]
    out: dict[str, list[tuple[int, int]]] = {}
    if not state.merged:
        for move in moves:
            for source in move.old:
                if source != member:
                    out.setdefault(source, []).append((move.start, move.end))
        return out
    n, ring = state.settings.n, state.ring
    stages = state.stage_rings()
    for move in moves:
        first = ring.partition_of(move.start)
        last = ring.partition_of(move.end - 1)
        for p in range(first, last + 1):
            start, end = ring.partition_range(p)
            start, end = max(start, move.start), min(end, move.end)
            token = start
            sources = set(move.old)
            for stage in stages:
                sources.update(stage.preference_list_for_token(token, n))
            sources.discard(member)
            for source in sources:
                spans = out.setdefault(source, [])
                if spans and spans[-1][1] == start:
                    spans[-1] = (spans[-1][0], end)
                else:
                    spans.append((start, end))
    return {source: sorted(spans) for source, spans in out.items()}
