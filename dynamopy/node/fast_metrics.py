"""Counters and histograms for the request path, exported in the Prometheus text format through
the node's registry, but updated without prometheus_client's per-update cost.

prometheus_client guards every value with a lock and walks a histogram's buckets in a Python
loop on each observation; on the request path (several updates per client request) that was a
few percent of a node's CPU. Here an update is an integer add and a ``bisect``; the samples are
built only when ``/metrics`` is scraped.

Rule: update these only from the event-loop thread (the request path and the peer client run
there; the storage thread's metrics stay prometheus_client ones). Names, labels, buckets and
the exposition text are those prometheus_client's ``Counter``/``Histogram`` give (without the
``_created`` samples).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Iterable

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString


class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)   # the last one is +Inf
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # bisect_left: a value equal to a bound falls in that bound's bucket (le = "<=").
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class _Family:
    def __init__(self, name: str, documentation: str, labelnames: Iterable[str],
                 registry) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self._children: dict = {}
        if not self.labelnames:
            self._children[()] = self._new_child()
        registry.register(self)

    def labels(self, *values: str):
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            child = self._children[values] = self._new_child()
        return child

    def describe(self):
        return [self._family()]

    def collect(self):
        family = self._family()
        for values, child in list(self._children.items()):
            self._add(family, list(values), child)
        return [family]


class FastCounter(_Family):
    """A ``Counter``; ``name`` ends in ``_total`` as the exposed series does."""

    def _new_child(self) -> _CounterChild:
        return _CounterChild()

    def inc(self, amount: float = 1.0) -> None:
        self._children[()].inc(amount)

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name.removesuffix("_total"), self.documentation,
                                   labels=self.labelnames)

    @staticmethod
    def _add(family, values, child: _CounterChild) -> None:
        family.add_metric(values, child.value)


class FastHistogram(_Family):
    """A ``Histogram`` with fixed ``buckets`` (upper bounds, ascending; +Inf is implied)."""

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (), *,
                 buckets: tuple[float, ...], registry) -> None:
        self.bounds = tuple(float(b) for b in buckets if b != float("inf"))
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> _HistogramChild:
        return _HistogramChild(self.bounds)

    def observe(self, amount: float) -> None:
        self._children[()].observe(amount)

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    @staticmethod
    def _add(family, values, child: _HistogramChild) -> None:
        buckets, total = [], 0
        for bound, count in zip(child.bounds + (float("inf"),), child.counts):
            total += count
            buckets.append((floatToGoString(bound), total))
        family.add_metric(values, buckets, child.sum)
