"""t-visibility predicted with the WARS model (Bailis et al., "Probabilistically Bounded
Staleness for Practical Partial Quorums", VLDB 2012).

The model: a write goes to the N replicas; replica i has it (can return it) ``W_i`` after the
coordinator sent it, and its ack takes ``A_i`` to come back; the write commits when the W-th
ack arrives. A read starts ``t`` after the commit; its request reaches replica i after ``R_i``
and the answer returns after ``S_i``. Replica i answers with the write when ``W_i <= commit +
t + R_i``. The read sees the write when any replica whose answer it uses does. Monte Carlo:
draw every latency from its distribution, many times; one draw serves every ``t`` (common
random numbers, so the curve never goes down with ``t``).

Two read plans:

* ``"all"`` (the paper's, Cassandra's): the read is sent to all N replicas and uses the first
  R answers (smallest ``R_i + S_i``).
* ``"r"`` (dynamopy's): the read is sent to R replicas only -- the coordinator's own first when
  it is one -- and uses all R answers (backups are asked only after a failure or 100 ms).

``nodes``: with a number, each request's coordinator is one of that many nodes, uniformly,
independently for the write and the read; a coordinator that is one of the key's N replicas
uses itself for free (its ``W`` is ``local_apply``, its ``A``, ``R`` and ``S`` are 0), as the
node does. ``None``: coordinators are never replicas (the paper's setting).

Pure: no clock, no global random; every draw comes from the ``random.Random`` passed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional, Protocol, Sequence


class Sampler(Protocol):
    def sample(self, rng: random.Random) -> float: ...


@dataclass(frozen=True)
class Constant:
    value: float

    def sample(self, rng: random.Random) -> float:
        return self.value


@dataclass(frozen=True)
class Choice:
    """One of ``values``, equally likely."""
    values: tuple

    def sample(self, rng: random.Random) -> float:
        return self.values[rng.randrange(len(self.values))]


@dataclass(frozen=True)
class Scaled:
    inner: Sampler
    factor: float

    def sample(self, rng: random.Random) -> float:
        return self.inner.sample(rng) * self.factor


@dataclass(frozen=True)
class Sum:
    parts: tuple

    def sample(self, rng: random.Random) -> float:
        return sum(p.sample(rng) for p in self.parts)


@dataclass(frozen=True)
class LatencyModel:
    """One-way latency distributions in seconds (WARS), plus the local replica's apply time."""
    w: Sampler
    a: Sampler
    r: Sampler
    s: Sampler
    local_apply: Sampler = Constant(0.0)


def predict_t_visibility(n: int, r: int, w: int, t_ms: Sequence[float], model: LatencyModel,
                         rng: random.Random, *, trials: int = 20_000,
                         read_plan: str = "r", nodes: Optional[int] = None,
                         extra_gap: Optional[Sampler] = None) -> dict:
    """{t_ms: probability that a read started t ms after the commit sees the write}.

    ``extra_gap``: a delay added to t in each trial, for a t measured somewhere else than at
    the coordinators (the load generator measures it at the client: the write's answer and
    the read's request each travel between client and node)."""
    if not (1 <= r <= n and 1 <= w <= n):
        raise ValueError(f"need 1 <= R, W <= N, got R={r} W={w} N={n}")
    if read_plan not in ("r", "all"):
        raise ValueError(f"unknown read plan {read_plan!r}")
    if nodes is not None and nodes < n:
        raise ValueError(f"a cluster of {nodes} nodes cannot hold N={n} replicas")
    ts = [t / 1000.0 for t in t_ms]
    seen = [0] * len(ts)
    replicas = range(n)
    for _ in range(trials):
        # Replicas are nodes 0..n-1; a coordinator index >= n is a node that is not a replica.
        wc = rng.randrange(nodes) if nodes is not None else -1
        rc = rng.randrange(nodes) if nodes is not None else -1
        wl, done = [], []
        for i in replicas:
            if i == wc:
                wi, ai = model.local_apply.sample(rng), 0.0
            else:
                wi, ai = model.w.sample(rng), model.a.sample(rng)
            wl.append(wi)
            done.append(wi + ai)
        commit = sorted(done)[w - 1]
        rl = [0.0 if i == rc else model.r.sample(rng) for i in replicas]
        if read_plan == "all":
            sl = [0.0 if i == rc else model.s.sample(rng) for i in replicas]
            used = sorted(replicas, key=lambda i: rl[i] + sl[i])[:r]
        else:
            others = [i for i in replicas if i != rc]
            rng.shuffle(others)
            used = ([rc] if 0 <= rc < n else []) + others
            used = used[:r]
        # The read sees the write at t if some used replica had it when the request arrived:
        # the smallest t that works is min over used of (W_i - R_i) - commit.
        need = min(wl[i] - rl[i] for i in used) - commit
        if extra_gap is not None:
            need -= extra_gap.sample(rng)
        for j, t in enumerate(ts):
            if need <= t:
                seen[j] += 1
    return {t: seen[j] / trials for j, t in enumerate(t_ms)}
