"""The history of a system simulation run: what clients asked and heard, and what nodes did.

A history is an append-only list of small frozen events, in the order they happened in the
simulation (one thread, one virtual clock: list order is real-time order, and two events at
the same virtual millisecond are still ordered by their position). Like a Jepsen history,
client operations are split into an :class:`Invoke` and a :class:`Complete`, so checkers
can tell overlapping operations from ones that follow each other:

* operation ``a`` *precedes* ``b`` when ``a``'s completion comes before ``b``'s invocation
  in the list (:meth:`Operation.precedes`); otherwise, if both ran, they overlap;
* an operation that never completed (the run ended first) is ``UNKNOWN``, as is one whose
  client gave up waiting (a timeout): its write may or may not have taken effect.

Client results are recorded at the coordinator level, so a read that found a tombstone
reports its version (``deleted=True``); ``version == 0`` means no record at all.

Node-side events let the checkers see inside the data path:

* :class:`Stamped`: a coordinator gave an operation a version (a re-stamp after a replica
  answered with a newer version is another ``Stamped`` of the same operation);
* :class:`Synced`: a node's storage batch reached disk, holding these (key, version)s (data
  records and hints alike);
* :class:`Acked`: a node acknowledged one version of one write to its coordinator;
* :class:`Purged`: a node's tombstone purge decided a tombstone may go and dropped its own
  copy (what ``may_purge`` allowed: every current replica held that version or newer, and
  no other member of the ring an older one);
* :class:`Note`: free text (nemesis faults, run-loop phases) for traces; checkers ignore it.

Times (``t_ms``) are the simulator's true virtual time, never a node's (possibly jumped)
clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Union


class OpKind(str, enum.Enum):
    PUT = "put"
    DELETE = "delete"
    GET = "get"

    @property
    def is_write(self) -> bool:
        return self is not OpKind.GET


class Outcome(str, enum.Enum):
    OK = "ok"            # the client got a success answer
    FAILED = "failed"    # a definite error answer (e.g. 503 quorum_unavailable): may still be stored
    UNKNOWN = "unknown"  # no answer (timeout, or the run ended): may or may not have happened


@dataclass(frozen=True, slots=True)
class Invoke:
    """A client sent an operation to ``coordinator``. ``quorum`` is W for writes, R for
    reads; ``value`` the bytes a put writes (None for delete and get)."""

    op: int
    kind: OpKind
    key: str
    coordinator: str
    quorum: int
    strict: bool
    t_ms: int
    value: Optional[bytes] = None
    client: int = 0


@dataclass(frozen=True, slots=True)
class Complete:
    """The client heard back. For an ``OK`` write, ``version`` is the acknowledged version;
    for an ``OK`` read, the record returned (``version`` 0: none; ``deleted``: a tombstone)."""

    op: int
    outcome: Outcome
    t_ms: int
    version: int = 0
    deleted: bool = False
    value: Optional[bytes] = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Stamped:
    """Coordinator ``node`` gave write ``op`` on ``key`` the version ``version``."""

    node: str
    op: int
    key: str
    version: int
    t_ms: int


@dataclass(frozen=True, slots=True)
class Synced:
    """A storage batch of ``node`` is durable; ``items`` are the (key, version)s it held."""

    node: str
    items: tuple[tuple[str, int], ...]
    t_ms: int


@dataclass(frozen=True, slots=True)
class Acked:
    """``node`` acknowledged ``version`` of write ``op`` on ``key`` (``hint_for``: the home
    replica it holds the write for, when it is a sloppy-quorum fallback)."""

    node: str
    op: int
    key: str
    version: int
    t_ms: int
    hint_for: Optional[str] = None


@dataclass(frozen=True, slots=True)
class Purged:
    """``node`` dropped (or was asked to drop) the tombstone ``version`` of ``key``: the
    purge decided every current replica held it or newer, so no older live record of
    ``key`` may be read from then on."""

    node: str
    key: str
    version: int
    t_ms: int


@dataclass(frozen=True, slots=True)
class Note:
    t_ms: int
    text: str


@dataclass(frozen=True, slots=True)
class Wiped:
    """``node``'s disk was emptied (the nemesis ``wipe``), or the node was stopped for good
    (``gone``: crashed and removed, never started again): what it had synced is gone."""

    node: str
    t_ms: int
    gone: bool = False

    @property
    def text(self) -> str:
        if self.gone:
            return f"{self.node} is stopped for good (removed): everything it had synced is gone"
        return f"{self.node}'s disk is empty: everything it had synced is gone"


Event = Union[Invoke, Complete, Stamped, Synced, Acked, Purged, Note, Wiped]


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation, invocation and completion paired. ``end_index`` is None when
    it never completed (then ``outcome`` is ``UNKNOWN``). ``version``/``deleted``/``result``
    are what the client heard (see :class:`Complete`)."""

    op: int
    kind: OpKind
    key: str
    coordinator: str
    quorum: int
    strict: bool
    client: int
    value: Optional[bytes]
    start_ms: int
    start_index: int
    outcome: Outcome = Outcome.UNKNOWN
    end_ms: Optional[int] = None
    end_index: Optional[int] = None
    version: int = 0
    deleted: bool = False
    result: Optional[bytes] = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def acknowledged_write(self) -> bool:
        return self.ok and self.kind.is_write

    def precedes(self, other: "Operation") -> bool:
        """This operation completed before ``other`` was invoked (real-time order)."""
        return self.end_index is not None and self.end_index < other.start_index


def operations(events: Sequence[Event]) -> list[Operation]:
    """Pair invocations with completions, in invocation order. Raises ``ValueError`` on a
    malformed history (a completion without an invocation, or a second completion)."""
    ops: dict[int, Operation] = {}
    for i, ev in enumerate(events):
        if isinstance(ev, Invoke):
            if ev.op in ops:
                raise ValueError(f"operation #{ev.op} invoked twice")
            ops[ev.op] = Operation(ev.op, ev.kind, ev.key, ev.coordinator, ev.quorum, ev.strict, ev.client,
                                   ev.value, ev.t_ms, i)
        elif isinstance(ev, Complete):
            o = ops.get(ev.op)
            if o is None:
                raise ValueError(f"operation #{ev.op} completed but never invoked")
            if o.end_index is not None:
                raise ValueError(f"operation #{ev.op} completed twice")
            ops[ev.op] = Operation(o.op, o.kind, o.key, o.coordinator, o.quorum, o.strict, o.client, o.value,
                                   o.start_ms, o.start_index, ev.outcome, ev.t_ms, i, ev.version, ev.deleted,
                                   ev.value)
    return list(ops.values())


class History:
    """The recorder a run appends to: one method per event kind (operation ids are
    allocated here), ``operations()`` for the checkers and ``describe()`` for traces."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._next_op = 0
        self._open: set[int] = set()

    def invoke(self, kind: OpKind, key: str, *, coordinator: str, quorum: int, strict: bool, t_ms: int,
               value: Optional[bytes] = None, client: int = 0) -> int:
        if kind is OpKind.PUT and value is None:
            raise ValueError("a put needs a value")
        op = self._next_op
        self._next_op += 1
        self._open.add(op)
        self.events.append(Invoke(op, kind, key, coordinator, quorum, strict, t_ms, value, client))
        return op

    def complete(self, op: int, outcome: Outcome, *, t_ms: int, version: int = 0, deleted: bool = False,
                 value: Optional[bytes] = None, detail: str = "") -> None:
        if op not in self._open:
            raise ValueError(f"operation #{op} is not in flight")
        self._open.discard(op)
        self.events.append(Complete(op, outcome, t_ms, version, deleted, value, detail))

    def stamped(self, node: str, op: int, key: str, version: int, *, t_ms: int) -> None:
        self.events.append(Stamped(node, op, key, version, t_ms))

    def synced(self, node: str, items: Iterable[tuple[str, int]], *, t_ms: int) -> None:
        self.events.append(Synced(node, tuple(items), t_ms))

    def acked(self, node: str, op: int, key: str, version: int, *, t_ms: int,
              hint_for: Optional[str] = None) -> None:
        self.events.append(Acked(node, op, key, version, t_ms, hint_for))

    def purged(self, node: str, key: str, version: int, *, t_ms: int) -> None:
        self.events.append(Purged(node, key, version, t_ms))

    def note(self, text: str, *, t_ms: int) -> None:
        self.events.append(Note(t_ms, text))

    def wiped(self, node: str, *, t_ms: int, gone: bool = False) -> None:
        self.events.append(Wiped(node, t_ms, gone))

    @property
    def in_flight(self) -> frozenset[int]:
        """Operations invoked and not completed yet (``UNKNOWN`` if the run ends now)."""
        return frozenset(self._open)

    def operations(self) -> list[Operation]:
        return operations(self.events)

    def describe(self, *, key: Optional[str] = None, limit: Optional[int] = None) -> str:
        """A readable trace, one line per event (only those touching ``key`` if given)."""
        return describe(self.events, key=key, limit=limit)


def _short(value: Optional[bytes]) -> str:
    if value is None:
        return "-"
    return repr(value if len(value) <= 24 else value[:21] + b"...")


def describe_event(ev: Event, invokes: Optional[dict[int, Invoke]] = None) -> str:
    """One trace line for one event."""
    t = f"{ev.t_ms:>8}ms"
    if isinstance(ev, Invoke):
        q = ("W" if ev.kind.is_write else "R") + f"={ev.quorum}" + (" strict" if ev.strict else "")
        val = f" value={_short(ev.value)}" if ev.kind is OpKind.PUT else ""
        return f"{t} #{ev.op} c{ev.client} invoke {ev.kind.value} {ev.key!r} via {ev.coordinator} {q}{val}"
    if isinstance(ev, Complete):
        inv = (invokes or {}).get(ev.op)
        what = f"{inv.kind.value} {inv.key!r}" if inv else "op"
        res = ""
        if ev.outcome is Outcome.OK:
            if inv is not None and not inv.kind.is_write:
                res = " -> none" if ev.version == 0 else (
                    f" -> v{ev.version} tombstone" if ev.deleted else f" -> v{ev.version} {_short(ev.value)}")
            else:
                res = f" -> v{ev.version}"
        detail = f" ({ev.detail})" if ev.detail else ""
        return f"{t} #{ev.op} {what} {ev.outcome.value}{res}{detail}"
    if isinstance(ev, Stamped):
        return f"{t} #{ev.op} {ev.node} stamps {ev.key!r} v{ev.version}"
    if isinstance(ev, Synced):
        items = ", ".join(f"{k!r}@v{v}" for k, v in ev.items[:6]) + (" ..." if len(ev.items) > 6 else "")
        return f"{t} {ev.node} synced [{items}]"
    if isinstance(ev, Acked):
        hint = f" (hint for {ev.hint_for})" if ev.hint_for else ""
        return f"{t} #{ev.op} {ev.node} acks {ev.key!r} v{ev.version}{hint}"
    if isinstance(ev, Purged):
        return f"{t} {ev.node} purges {ev.key!r} v{ev.version} tombstone"
    return f"{t} -- {ev.text}"


def _touches(ev: Event, key: str, ops_of_key: set[int]) -> bool:
    if isinstance(ev, Invoke):
        return ev.key == key
    if isinstance(ev, Complete):
        return ev.op in ops_of_key
    if isinstance(ev, (Stamped, Acked, Purged)):
        return ev.key == key
    if isinstance(ev, Synced):
        return any(k == key for k, _ in ev.items)
    return True  # notes (faults) give context to every key's trace


def describe(events: Sequence[Event], *, key: Optional[str] = None, limit: Optional[int] = None) -> str:
    invokes = {ev.op: ev for ev in events if isinstance(ev, Invoke)}
    ops_of_key = {op for op, inv in invokes.items() if inv.key == key}
    lines = [describe_event(ev, invokes) for ev in events if key is None or _touches(ev, key, ops_of_key)]
    if limit is not None and len(lines) > limit:
        lines = lines[:limit] + [f"... {len(lines) - limit} more events"]
    return "\n".join(lines)
