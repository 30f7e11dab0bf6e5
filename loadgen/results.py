"""One setting's result from its drivers' raw results (and the ceiling's), as results.json
holds it. Histograms are added, never their percentiles averaged; every count is a sum."""

from __future__ import annotations

import math
from typing import Optional

from loadgen import histogram
from loadgen.staleness import summarize


def _sum_dicts(dicts) -> dict:
    out: dict = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def timeline(results: list[dict], duration_s: float) -> list[dict]:
    """Completed ops and errors per second of the measured window, by completion time.
    Requests that started in the window but ended after it count in the totals, not here."""
    ok = _sum_dicts(r["timeline_ok"] for r in results)
    err = _sum_dicts(r["timeline_err"] for r in results)
    return [{"t_s": s, "ops": ok.get(str(s), 0), "errors": err.get(str(s), 0)}
            for s in range(0, max(1, math.ceil(duration_s)))]


def wilson(seen: int, total: int, z: float = 1.96) -> Optional[list]:
    """95% Wilson score interval of a measured proportion (None without samples)."""
    if not total:
        return None
    p = seen / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def merge_setting(r: int, w: int, n: int, duration_s: float, results: list[dict],
                  t_ms: list) -> dict:
    reads = sum(x["reads"] for x in results)
    writes = sum(x["writes"] for x in results)
    errors = _sum_dicts(x["errors"] for x in results)
    read_h = histogram.merge(x["read_hist"] for x in results)
    write_h = histogram.merge(x["write_hist"] for x in results)
    stale_reads = sum(x["stale"]["stale"] for x in results)
    judged = sum(x["stale"]["reads"] for x in results)
    k_hist = _sum_dicts(x["stale"]["k_hist"] for x in results)
    probes = {str(t): [sum(x["probes"][str(t)][0] for x in results),
                       sum(x["probes"][str(t)][1] for x in results)] for t in t_ms}
    gaps = {str(t): max((x["probe_gap_p50_ms"][str(t)] for x in results
                         if x["probe_gap_p50_ms"][str(t)] is not None), default=None)
            for t in t_ms}
    ops = reads + writes
    errors_total = sum(errors.values())
    return {
        "r": r, "w": w, "n": n, "duration_s": duration_s,
        "ops": ops, "reads": reads, "writes": writes,
        "not_found": sum(x["not_found"] for x in results),
        "errors": errors_total, "errors_by_code": dict(sorted(errors.items())),
        "error_fraction": round(errors_total / (ops + errors_total), 6) if ops + errors_total else 0.0,
        "stale_reads": stale_reads,
        "stale_fraction": round(stale_reads / judged, 6) if judged else 0.0,
        "k_staleness": summarize(judged, stale_reads, k_hist),
        "throughput_ops_s": round(ops / duration_s, 1),
        "read_ms": histogram.summary_ms(read_h),
        "write_ms": histogram.summary_ms(write_h),
        "t_visibility": {
            "measured": {t: (round(s / c, 4) if c else None) for t, (s, c) in probes.items()},
            "measured_95ci": {t: wilson(s, c) for t, (s, c) in probes.items()},
            "probes": {t: c for t, (s, c) in probes.items()},
            "probe_gap_p50_ms": gaps,
            "probe_errors": sum(x["probe_errors"] for x in results),
        },
        "timeline": timeline(results, duration_s),
        "driver_cpu_s": [x["cpu_s"] for x in results],
    }


def add_driver_load(result: dict, window_s: float) -> None:
    """The busiest driver process's CPU over the whole window (warm-up included), in percent
    of one core: near 100 means the driver, not the cluster, set the pace."""
    result["driver_cpu_pct_max"] = round(100.0 * max(result["driver_cpu_s"]) / window_s, 1)


def ceiling(duration_s: float, results: list[dict]) -> dict:
    h = histogram.merge(x["read_hist"] for x in results)
    ok = sum(x["reads"] for x in results)
    return {"what": "GET /health at the same concurrency and processes (no quorum, no storage)",
            "duration_s": duration_s, "ops": ok,
            "throughput_ops_s": round(ok / duration_s, 1),
            "errors": sum(sum(x["errors"].values()) for x in results),
            "latency_ms": histogram.summary_ms(h),
            "driver_cpu_s": [x["cpu_s"] for x in results]}


def client_trips(results: list[dict]) -> list:
    """Every GET /health round trip the probe process timed in the window (seconds)."""
    return [x for r in results for x in r.get("health_rtt_s", ())]


def add_prediction(result: dict, predicted: Optional[dict], inputs: dict,
                   with_trips: Optional[dict] = None) -> None:
    tv = result["t_visibility"]
    tv["predicted"] = ({str(t): round(p, 4) for t, p in predicted.items()}
                       if predicted is not None else None)
    tv["predicted_with_client_trips"] = ({str(t): round(p, 4) for t, p in with_trips.items()}
                                         if with_trips is not None else None)
    tv["predicted_by"] = ("WARS model (Bailis et al., VLDB 2012), Monte Carlo over the "
                          "latencies below; a model, not a measurement")
    tv["model_inputs"] = inputs
