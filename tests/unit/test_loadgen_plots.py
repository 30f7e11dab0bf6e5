"""``loadgen/plots.py``: the PNG plots of a run."""

import os

from loadgen import plots


def _doc() -> dict:
    """A run's results.json of two settings (session 15's, trimmed): reads p50 ~16 ms,
    p99.9 ~42 ms; writes p50 ~27 ms, p99.9 ~75 ms."""
    def lat(p50, p95, p99, p999):
        return {"count": 4000, "p50": p50, "p95": p95, "p99": p99, "p999": p999,
                "max": p999 * 1.2, "mean": p50 * 1.1}
    return {"config": {"target": "existing cluster via 3 URL(s), 3 members, N=3",
                       "load": "closed loop, 16 in flight"},
            "results": [{"r": 2, "w": 2, "read_ms": lat(15.8, 29.5, 35.7, 41.5),
                         "write_ms": lat(27.4, 45.0, 52.2, 58.8)},
                        {"r": 1, "w": 1, "read_ms": lat(15.7, 27.0, 32.4, 41.8),
                         "write_ms": lat(35.6, 54.0, 61.4, 74.9)}]}


def test_every_latency_bar_shows_on_the_log_scale(tmp_path, monkeypatch):
    """Found in session 15's operator walk-through: on the log scale matplotlib put the
    axis floor just under the smallest value, so the reads' p50 bars (15.7 and 15.8 ms
    under a floor of ~15.5) were slivers that read as zero. The axis now starts well
    below the smallest percentile (a power of ten at least a factor 2 below it): each bar
    stands at least a third of a decade high."""
    import math

    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    path = str(tmp_path / "latency.png")
    plots.latency(_doc(), path)
    assert os.path.getsize(path) > 0
    (fig,) = figures
    for ax, op in zip(fig.axes[:2], ("read_ms", "write_ms")):
        low, high = ax.get_ylim()
        values = [r[op][k] for r in _doc()["results"] for k in ("p50", "p95", "p99", "p999")]
        assert math.log10(min(values) / low) >= 1 / 3, (op, low, min(values))
        assert high >= max(values)
