"""Latency histograms: HdrHistogram (the ``hdrhistogram`` package), recorded in microseconds.

Rules: each driver process records its own histograms and sends them encoded (HdrHistogram's
compressed base64 form); the parent *adds* them, bucket by bucket, and reads percentiles off
the sum. Percentiles are never averaged across processes (the average of two p99s is not the
p99 of anything). Values are kept to 3 significant digits from 1 us to 120 s.
"""

from __future__ import annotations

from typing import Iterable

from hdrh.histogram import HdrHistogram

LOWEST_US, HIGHEST_US, DIGITS = 1, 120_000_000, 3
PERCENTILES = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))


def new() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def from_seconds(values: Iterable[float]) -> HdrHistogram:
    h = new()
    for v in values:
        h.record_value(min(HIGHEST_US, max(LOWEST_US, int(round(v * 1e6)))))
    return h


def encode(h: HdrHistogram) -> str:
    return h.encode().decode("ascii")


def merge(encoded: Iterable[str]) -> HdrHistogram:
    """The sum of encoded histograms (one per driver process)."""
    total = new()
    for e in encoded:
        total.add(HdrHistogram.decode(e.encode("ascii")))
    return total


def summary_ms(h: HdrHistogram) -> dict:
    """count, p50/p95/p99/p99.9/max and mean in milliseconds; only ``count`` when empty."""
    n = h.get_total_count()
    if n == 0:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "p999": None,
                "max": None, "mean": None}
    out = {"count": n}
    for name, p in PERCENTILES:
        out[name] = round(h.get_value_at_percentile(p) / 1000.0, 3)
    out["max"] = round(h.get_max_value() / 1000.0, 3)
    out["mean"] = round(h.get_mean_value() / 1000.0, 3)
    return out
