"""Merging driver results into one phase result, percentiles, and the final table."""

from __future__ import annotations

import base64
import math
from array import array
from typing import Optional


def decode(b64: str) -> array:
    a = array("d")
    a.frombytes(base64.b64decode(b64))
    return a


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (exact, no interpolation)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary_ms(values: list[float]) -> dict:
    """p50/p95/p99/max/mean in milliseconds of latencies given in seconds."""
    s = sorted(values)
    if not s:
        return {"count": 0}
    ms = lambda v: round(v * 1000.0, 3)  # noqa: E731 - tiny local formatter
    return {"count": len(s), "p50": ms(percentile(s, 50)), "p95": ms(percentile(s, 95)),
            "p99": ms(percentile(s, 99)), "max": ms(s[-1]), "mean": ms(sum(s) / len(s))}


def merge(name: str, r: Optional[int], w: Optional[int], seconds: float,
          results: list[dict]) -> dict:
    """One phase's numbers from every driver's raw result."""
    gets, puts, errors = array("d"), array("d"), {}
    misses = started = 0
    for res in results:
        gets.extend(decode(res["get_lat"]))
        puts.extend(decode(res["put_lat"]))
        misses += res["misses"]
        started += res["started"]
        for k, v in res["errors"].items():
            errors[k] = errors.get(k, 0) + v
    ok = len(gets) + len(puts)
    return {"phase": name, "r": r, "w": w, "seconds": seconds, "ok_ops": ok,
            "ops_per_s": round(ok / seconds, 1), "requests": started,
            "gets": len(gets), "puts": len(puts), "get_misses": misses,
            "errors": errors, "errors_total": sum(errors.values()),
            "latency_ms": {"all": summary_ms(list(gets) + list(puts)),
                           "get": summary_ms(list(gets)), "put": summary_ms(list(puts))}}


def _f(v, width: int, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-".rjust(width)
    return f"{v:{width}.{digits}f}"


def table(phases: list[dict]) -> str:
    """The main table: one row per phase, latency over all measured requests."""
    head = (f"{'phase':<22} {'ops/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
            f"{'max ms':>8} {'errors':>7} {'404s':>6} {'nodes cpu%':>10} {'driver cpu%':>11} "
            f"{'other cpu%':>10} {'machine%':>8}")
    lines = [head, "-" * len(head)]
    for p in phases:
        lat, cpu = p["latency_ms"]["all"], p.get("cpu", {})
        nodes = cpu.get("nodes", {})  # empty with --url: those nodes are not ours to sample
        lines.append(
            f"{p['label']:<22} {p['ops_per_s']:>9.1f} {_f(lat.get('p50'), 8, 2)} "
            f"{_f(lat.get('p95'), 8, 2)} {_f(lat.get('p99'), 8, 2)} {_f(lat.get('max'), 8, 2)} "
            f"{p['errors_total']:>7d} {p['get_misses']:>6d} "
            f"{_f(nodes.get('total_pct') if nodes.get('per_pid') else None, 10)} "
            f"{_f(cpu.get('drivers', {}).get('total_pct'), 11)} "
            f"{_f(cpu.get('others_pct'), 10)} {_f(cpu.get('machine_busy_pct'), 8)}")
    return "\n".join(lines)


def op_table(phases: list[dict]) -> str:
    """Gets and puts separately: a quorum read and a quorum write cost differently."""
    head = f"{'phase':<22} {'op':<4} {'count':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    lines = [head, "-" * len(head)]
    for p in phases:
        for op in ("get", "put"):
            lat = p["latency_ms"][op]
            if not lat.get("count"):
                continue
            lines.append(f"{p['label']:<22} {op:<4} {lat['count']:>8d} {_f(lat['p50'], 8, 2)} "
                         f"{_f(lat['p95'], 8, 2)} {_f(lat['p99'], 8, 2)} {_f(lat['max'], 8, 2)}")
    return "\n".join(lines)
