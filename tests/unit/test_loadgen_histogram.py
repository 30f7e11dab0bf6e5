"""Percentiles merged across driver processes (loadgen.histogram): histograms are added,
never their percentiles averaged."""

import math
import random

from loadgen import histogram


def _nearest_rank(values, p):
    s = sorted(values)
    return s[max(1, math.ceil(len(s) * p / 100)) - 1]


def test_merged_histograms_equal_one_histogram_over_all_values():
    rng = random.Random(7)
    fast = [rng.uniform(0.001, 0.002) for _ in range(9000)]      # one process: fast replies
    slow = [rng.uniform(0.050, 0.200) for _ in range(1000)]      # another: slow ones
    merged = histogram.merge([histogram.encode(histogram.from_seconds(fast)),
                              histogram.encode(histogram.from_seconds(slow))])
    whole = histogram.from_seconds(fast + slow)
    assert histogram.summary_ms(merged) == histogram.summary_ms(whole)
    got = histogram.summary_ms(merged)
    assert got["count"] == 10_000
    for key, p in (("p50", 50), ("p95", 95), ("p99", 99), ("p999", 99.9)):
        exact_ms = _nearest_rank(fast + slow, p) * 1000
        assert abs(got[key] - exact_ms) <= exact_ms * 0.001 + 0.001, key   # 3 digits
    # Averaging the two processes' p50s would say ~62 ms; the true median is ~1.5 ms.
    avg_p50 = (histogram.summary_ms(histogram.from_seconds(fast))["p50"]
               + histogram.summary_ms(histogram.from_seconds(slow))["p50"]) / 2
    assert got["p50"] < 2.1 < 50 < avg_p50


def test_percentiles_are_ordered_and_max_is_the_largest():
    rng = random.Random(3)
    values = [rng.expovariate(100) for _ in range(5000)]
    s = histogram.summary_ms(histogram.from_seconds(values))
    assert s["p50"] <= s["p95"] <= s["p99"] <= s["p999"] <= s["max"]
    assert abs(s["max"] - max(values) * 1000) <= max(values) * 1000 * 0.001 + 0.001


def test_empty():
    s = histogram.summary_ms(histogram.merge([histogram.encode(histogram.new())]))
    assert s["count"] == 0 and s["p99"] is None
