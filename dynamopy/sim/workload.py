"""A seeded client workload for a system simulation run, as pure data.

``generate(rng, params)`` gives each simulated client a sequence of :class:`ClientOp`s:
puts, deletes and gets over a small key set (one hot key, so writes race), with the
cluster's default R/W or another value in 1..N, some with ``strict=True``. A client runs
its operations one after the other (at most one in flight, as a Jepsen process), waiting
``think_ms`` after each answer; the run loop decides when that is, so the workload itself
holds no times beyond a client's start offset.

Coordinators are picked when an operation starts, among the members the run loop offers
then (``ClientOp.coordinator``), because membership changes during a run; the choice is
still a pure function of the operation and that list. Every put writes a value no other
put writes (``c<client>-<n>``), so a read's value names the write it came from.

``probes`` and ``final_reads`` give the liveness-phase operations: a put and a get per key
after healing, then an R=N strict read of every key for the no-lost-write check.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional, Sequence

from .history import OpKind


@dataclass(frozen=True, slots=True)
class ClientOp:
    """One operation: ``quorum`` is W for a write, R for a read; ``rank`` picks the
    coordinator; ``think_ms`` is the pause after the answer before the client's next one."""

    kind: OpKind
    key: str
    quorum: int
    strict: bool
    value: Optional[bytes] = None
    rank: int = 0
    think_ms: int = 0

    def coordinator(self, candidates: Sequence[str]) -> str:
        """The coordinator among ``candidates`` (members up for clients at that moment)."""
        if not candidates:
            raise ValueError("no coordinator to choose from")
        return sorted(candidates)[self.rank % len(candidates)]

    def describe(self) -> str:
        q = ("W" if self.kind.is_write else "R") + f"={self.quorum}" + (" strict" if self.strict else "")
        val = f" {self.value!r}" if self.value is not None else ""
        return f"{self.kind.value} {self.key!r} {q}{val}"


@dataclass(frozen=True)
class WorkloadParams:
    clients: int = 4
    ops_per_client: int = 40
    keys: int = 5
    hot_key: float = 0.3          # share of operations on key k0
    put: float = 0.45             # shares of puts and deletes; the rest are gets
    delete: float = 0.1
    replication_n: int = 3
    default_r: int = 2
    default_w: int = 2
    other_quorum: float = 0.4     # share of operations with R/W drawn from 1..N instead of the default
    strict: float = 0.3           # share of operations with strict=True
    max_think_ms: int = 50
    max_start_ms: int = 100       # clients start at a random offset below this
    max_value_pad: int = 16       # random extra bytes after a value's unique prefix

    def __post_init__(self) -> None:
        n = self.replication_n
        if not (1 <= self.default_r <= n and 1 <= self.default_w <= n):
            raise ValueError("default R and W must be within 1..N")
        if self.put < 0 or self.delete < 0 or self.put + self.delete > 1:
            raise ValueError("put and delete shares must be >= 0 and add up to at most 1")


@dataclass(frozen=True)
class Workload:
    params: WorkloadParams
    starts_ms: tuple[int, ...]
    clients: tuple[tuple[ClientOp, ...], ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return key_names(self.params.keys)

    def describe(self) -> str:
        p = self.params
        lines = [f"workload: {p.clients} clients x {p.ops_per_client} ops over {p.keys} keys "
                 f"(N={p.replication_n}, default R={p.default_r} W={p.default_w})"]
        for c, (start, ops) in enumerate(zip(self.starts_ms, self.clients)):
            lines.append(f"  c{c} from {start}ms: " + "; ".join(op.describe() for op in ops[:8])
                         + (f"; ... {len(ops) - 8} more" if len(ops) > 8 else ""))
        return "\n".join(lines)


def key_names(count: int) -> tuple[str, ...]:
    return tuple(f"k{i}" for i in range(count))


def _op(rng: random.Random, p: WorkloadParams, client: int, i: int, keys: tuple[str, ...]) -> ClientOp:
    key = keys[0] if rng.random() < p.hot_key else rng.choice(keys)
    x = rng.random()
    kind = OpKind.PUT if x < p.put else OpKind.DELETE if x < p.put + p.delete else OpKind.GET
    if rng.random() < p.other_quorum:
        quorum = rng.randint(1, p.replication_n)
    else:
        quorum = p.default_w if kind.is_write else p.default_r
    strict = rng.random() < p.strict
    value = None
    if kind is OpKind.PUT:
        value = f"c{client}-{i}".encode() + b"." * rng.randint(0, p.max_value_pad)
    return ClientOp(kind, key, quorum, strict, value, rng.getrandbits(31), rng.randint(0, p.max_think_ms))


def generate(rng: random.Random, params: WorkloadParams) -> Workload:
    """Each client's operations, drawn in client order from ``rng`` (same seed, same workload)."""
    keys = key_names(params.keys)
    starts = tuple(rng.randrange(max(params.max_start_ms, 1)) for _ in range(params.clients))
    clients = tuple(tuple(_op(rng, params, c, i, keys) for i in range(params.ops_per_client))
                    for c in range(params.clients))
    return Workload(params, starts, clients)


def probes(rng: random.Random, keys: Sequence[str], *, default_r: int, default_w: int,
           tag: str = "probe") -> tuple[ClientOp, ...]:
    """Liveness-phase operations: for each key a put then a get at the default quorums,
    one of the two strict; each put's value is unique (``<tag>-<key>``)."""
    out = []
    for key in keys:
        strict_put = rng.random() < 0.5
        out.append(ClientOp(OpKind.PUT, key, default_w, strict_put, f"{tag}-{key}".encode(), rng.getrandbits(31)))
        out.append(ClientOp(OpKind.GET, key, default_r, not strict_put, None, rng.getrandbits(31)))
    return tuple(out)


def final_reads(keys: Sequence[str], *, n: int) -> tuple[ClientOp, ...]:
    """The reads the no-lost-write check uses: R=N, strict (home replicas only), per key."""
    return tuple(ClientOp(OpKind.GET, key, n, True, None, i) for i, key in enumerate(keys))
