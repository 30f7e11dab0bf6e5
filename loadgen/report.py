"""The final table in the terminal, results.json and results.csv."""

from __future__ import annotations

import csv
import json
import os

from rich.table import Table

CSV_FIELDS = ("r", "w", "n", "duration_s", "ops", "reads", "writes", "not_found", "errors",
              "error_fraction", "throughput_ops_s", "stale_reads", "stale_fraction",
              "k_max", "read_p50_ms", "read_p95_ms", "read_p99_ms", "read_p999_ms",
              "read_max_ms", "write_p50_ms", "write_p95_ms", "write_p99_ms", "write_p999_ms",
              "write_max_ms", "vis_measured_t0", "vis_predicted_t0", "vis_measured_t5",
              "vis_predicted_t5", "fault")


def _ms(v) -> str:
    return "-" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _p(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def table(doc: dict) -> Table:
    cfg = doc["config"]
    t = Table(title=f"dynamopy load generator: {cfg['target']}; {cfg['load']}",
              title_justify="left")
    for name in ("R,W", "ops/s", "read p50/p99/p99.9 ms", "write p50/p99/p99.9 ms", "errors",
                 "stale reads", "k max", "P(see write) t=0ms meas/pred", "t=5ms meas/pred"):
        t.add_column(name, justify="right")
    for res in doc["results"]:
        rd, wr, tv = res["read_ms"], res["write_ms"], res["t_visibility"]
        pred = tv.get("predicted") or {}
        errs = f"{res['errors']} ({res['error_fraction']:.1%})"
        t.add_row(f"{res['r']},{res['w']}", f"{res['throughput_ops_s']:,.0f}",
                  f"{_ms(rd['p50'])}/{_ms(rd['p99'])}/{_ms(rd['p999'])}",
                  f"{_ms(wr['p50'])}/{_ms(wr['p99'])}/{_ms(wr['p999'])}", errs,
                  f"{res['stale_reads']} ({res['stale_fraction']:.2%})",
                  str(res["k_staleness"]["max"]),
                  f"{_p(tv['measured'].get('0'))}/{_p(pred.get('0'))}",
                  f"{_p(tv['measured'].get('5'))}/{_p(pred.get('5'))}")
    return t


def csv_row(res: dict) -> dict:
    rd, wr, tv = res["read_ms"], res["write_ms"], res["t_visibility"]
    pred = tv.get("predicted") or {}
    row = {k: res[k] for k in ("r", "w", "n", "duration_s", "ops", "reads", "writes",
                               "not_found", "errors", "error_fraction", "throughput_ops_s",
                               "stale_reads", "stale_fraction")}
    row["k_max"] = res["k_staleness"]["max"]
    for prefix, lat in (("read", rd), ("write", wr)):
        for p in ("p50", "p95", "p99", "p999", "max"):
            row[f"{prefix}_{p}_ms"] = lat[p]
    row["vis_measured_t0"], row["vis_predicted_t0"] = tv["measured"].get("0"), pred.get("0")
    row["vis_measured_t5"], row["vis_predicted_t5"] = tv["measured"].get("5"), pred.get("5")
    row["fault"] = res["fault"]["kind"] if res.get("fault") else "none"
    return row


def write(doc: dict, out_dir: str) -> list:
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, "results.json"), os.path.join(out_dir, "results.csv")]
    with open(paths[0], "w") as f:
        json.dump(doc, f, indent=2)
    with open(paths[1], "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        wr.writeheader()
        for res in doc["results"]:
            wr.writerow(csv_row(res))
    return paths
