"""The application the simulator runs on top of the metadata log, and its durable store.

``LogApp`` stands in for the membership state machine. Its state is the whole applied
history (``values[slot]``), so invariant checkers can compare nodes slot by slot even
across snapshots, plus the derived member set. Apply rules, identical on every node:

- ``None`` (NOOP) changes nothing but occupies the slot.
- A value whose request id (``rid``) was applied before is a duplicate from a proposer
  retry: a deterministic no-op. ``effective`` lists the rids that took effect, in order;
  so each proposed value takes effect at most once.
- ``{"op": "join", "id": X}`` adds X to the members unless it already is one (an
  invalid change found at apply time is a no-op on every node).
- ``{"op": "set_group", "group": [ids]}`` changes the metadata group (``group_rule``): it
  decides slots from ``alpha`` slots after its own on.

``DurableStore`` is what survives a crash: the synced acceptor state, the app snapshot
and the applied entries after it. Everything else of a node is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dynamopy.core.paxos import AcceptorState, Snapshot
from dynamopy.core.paxos.groups import Reconfig


def group_rule(initial: tuple[str, ...], alpha: int) -> Reconfig:
    """The sim app's group changes: a ``set_group`` value with a non-empty list of
    distinct ids (and, if it names ``from_group``, only while that is the latest group:
    compare-and-set); the schedule of a snapshot (its whole history) replays them."""

    def group_of(value: Any, latest: tuple[str, ...]):
        if isinstance(value, dict) and value.get("op") == "set_group":
            g = value.get("group")
            frm = value.get("from_group")
            if frm is not None and tuple(frm) != tuple(latest):
                return None
            if isinstance(g, (list, tuple)) and g and len(set(g)) == len(g) \
                    and all(isinstance(x, str) for x in g):
                return tuple(g)
        return None

    def schedule_of(data: Any):
        pairs = [(0, tuple(initial))]
        for slot, value in enumerate(data):
            g = group_of(value, pairs[-1][1])
            if g is not None:
                pairs = [p for p in pairs if p[0] < slot + alpha] + [(slot + alpha, g)]
        return pairs

    def readmits(value: Any):
        r = value.get("readmit") if isinstance(value, dict) else None
        return r if isinstance(r, dict) else {}

    return Reconfig(alpha, group_of, schedule_of, readmits)


@dataclass
class DurableStore:
    acceptor: AcceptorState | None = None
    snapshot: Snapshot | None = None
    log: list[Any] = field(default_factory=list)  # values of slots snapshot.slot, +1, ...
    incarnation: str | None = None  # made up when it starts without acceptor state

    @property
    def base(self) -> int:
        return self.snapshot.slot if self.snapshot is not None else 0

    def entries(self) -> list[tuple[int, Any]]:
        return [(self.base + i, v) for i, v in enumerate(self.log)]


class LogApp:
    def __init__(self, initial_members: tuple[str, ...]) -> None:
        self.initial_members = tuple(initial_members)
        self.values: list[Any] = []
        self.effective: list[str] = []
        self.seen: set[str] = set()
        self.members: set[str] = set(initial_members)
        self.duplicates = 0

    @property
    def applied(self) -> int:
        return len(self.values)

    def apply(self, slot: int, value: Any) -> None:
        if slot != len(self.values):
            raise AssertionError(f"applied slot {slot} out of order (expected {len(self.values)})")
        self.values.append(value)
        if value is None:
            return
        rid = value["rid"]
        if rid in self.seen:
            self.duplicates += 1
            return
        self.seen.add(rid)
        self.effective.append(rid)
        if value.get("op") == "join":
            self.members.add(value["id"])

    def snapshot(self) -> Snapshot:
        return Snapshot(len(self.values), tuple(self.values))

    def install(self, snapshot: Snapshot) -> None:
        """Replace the state with a snapshot's (rebuilt by replaying its history)."""
        self.values, self.effective, self.seen = [], [], set()
        self.members = set(self.initial_members)
        self.duplicates = 0
        for slot, value in enumerate(snapshot.data):
            self.apply(slot, value)

    @classmethod
    def restore(cls, initial_members: tuple[str, ...], store: DurableStore) -> "LogApp":
        app = cls(initial_members)
        if store.snapshot is not None:
            app.install(store.snapshot)
        for slot, value in store.entries():
            app.apply(slot, value)
        return app
