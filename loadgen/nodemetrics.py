"""The nodes' Prometheus histograms the staleness model needs, and samplers built from them.

What the load generator reads from each node's ``/metrics`` (before and after each setting's
measured window; the difference is that window's traffic, summed over nodes):

* ``dynamopy_peer_call_seconds{method="get"|"ping"}``: round trips of peer calls that do almost
  no work at the replica (a point read, a failure-detector ping). Half of one is taken as a
  one-way trip between nodes (the network and both event loops), for W, A, R and S alike.
* ``dynamopy_replica_put_seconds``: how long a replica takes to make a put durable and readable
  (group commit), added to W; alone it is the coordinator's own replica's W.

So W = leg + apply, A = R = S = leg, each drawn independently: an estimate from round trips,
since the nodes share no clock that could time one-way trips. Within a bucket a value is
drawn uniformly; the open-ended last bucket is read as its lower bound.
"""

from __future__ import annotations

import bisect
import random
import re
from dataclasses import dataclass
from typing import Optional

from loadgen.wars import LatencyModel, Scaled, Sum

PEER = "dynamopy_peer_call_seconds"
APPLY = "dynamopy_replica_put_seconds"
_LINE = re.compile(r"^(\w+)_bucket\{([^}]*)\}\s+([0-9.eE+-]+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Buckets = dict  # {(metric, method or ""): {le: cumulative count}}


def parse(text: str) -> Buckets:
    """Cumulative bucket counts of the histograms above, keyed by (metric, method)."""
    out: Buckets = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m or m.group(1) not in (PEER, APPLY):
            continue
        labels = dict(_LABEL.findall(m.group(2)))
        le = labels.get("le")
        if le is None:
            continue
        key = (m.group(1), labels.get("method", ""))
        out.setdefault(key, {})[float(le)] = float(m.group(3))
    return out


def add(a: Buckets, b: Buckets, sign: float = 1.0) -> Buckets:
    """a + sign*b, bucket by bucket (sum over nodes, or after minus before)."""
    out = {k: dict(v) for k, v in a.items()}
    for key, buckets in b.items():
        tgt = out.setdefault(key, {})
        for le, c in buckets.items():
            tgt[le] = tgt.get(le, 0.0) + sign * c
    return out


def window(before: list, after: list) -> Buckets:
    """The traffic between two scrapes of each node (lists in node order; ``None`` for a node
    that did not answer), summed over nodes. A node whose counters went down restarted in
    between: everything it counted since its restart belongs to the window."""
    total: Buckets = {}
    for b, a in zip(before, after):
        if a is None:
            continue
        d = add(a, b or {}, -1.0)
        if any(c < 0 for buckets in d.values() for c in buckets.values()):
            d = a
        total = add(total, d)
    return total


@dataclass(frozen=True)
class Empirical:
    """Draws from a histogram given as cumulative counts per upper bound (seconds)."""
    bounds: tuple
    cumulative: tuple

    @classmethod
    def from_buckets(cls, *cumulatives: dict) -> Optional["Empirical"]:
        merged: dict = {}
        for c in cumulatives:
            for le, v in c.items():
                merged[le] = merged.get(le, 0.0) + v
        bounds = tuple(sorted(merged))
        cum = tuple(max(0.0, merged[b]) for b in bounds)
        if not cum or cum[-1] <= 0:
            return None
        return cls(bounds, cum)

    @property
    def count(self) -> int:
        return int(self.cumulative[-1])

    def sample(self, rng: random.Random) -> float:
        x = rng.random() * self.cumulative[-1]
        i = bisect.bisect_right(self.cumulative, x)
        i = min(i, len(self.bounds) - 1)
        lo = self.bounds[i - 1] if i > 0 else 0.0
        hi = self.bounds[i]
        if hi == float("inf"):
            return lo
        return lo + (hi - lo) * rng.random()

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding quantile q (for the report of model inputs)."""
        x = q * self.cumulative[-1]
        i = min(bisect.bisect_left(self.cumulative, x), len(self.bounds) - 1)
        b = self.bounds[i]
        return self.bounds[i - 1] if b == float("inf") and i > 0 else b


def latency_model(window: Buckets) -> tuple[Optional[LatencyModel], dict]:
    """The WARS inputs from one window's histograms, and a summary of them for the report
    (``None`` when the window saw no peer round trips or no replica puts)."""
    rtt = Empirical.from_buckets(window.get((PEER, "get"), {}), window.get((PEER, "ping"), {}))
    apply = Empirical.from_buckets(window.get((APPLY, ""), {}))
    put_rtt = Empirical.from_buckets(window.get((PEER, "put"), {}))
    info = {"source": "nodes' /metrics over the measured window: one-way leg = half a peer "
                      "get/ping round trip; W = leg + replica put time; A = R = S = leg"}
    for name, e in (("peer_rtt", rtt), ("replica_put", apply), ("peer_put_rtt", put_rtt)):
        if e is not None:
            info[name] = {"samples": e.count, "p50_ms_le": round(e.quantile(0.5) * 1000, 3),
                          "p99_ms_le": round(e.quantile(0.99) * 1000, 3)}
    if rtt is None or apply is None:
        return None, info
    leg = Scaled(rtt, 0.5)
    return LatencyModel(w=Sum((leg, apply)), a=leg, r=leg, s=leg, local_apply=apply), info
