"""PNG plots of a run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
import os
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
from matplotlib.ticker import FuncFormatter  # noqa: E402

_PLAIN = FuncFormatter(lambda v, _pos: f"{v:g}")

PCTS = (("p50", "p50"), ("p95", "p95"), ("p99", "p99"), ("p999", "p99.9"))


def _labels(doc: dict) -> list:
    return [f"R={r['r']},W={r['w']}" for r in doc["results"]]


def _subtitle(doc: dict) -> str:
    return textwrap.fill(f"{doc['config']['target']}; {doc['config']['load']}", 100)


def throughput(doc: dict, path: str) -> None:
    labels = _labels(doc)
    ops = [r["throughput_ops_s"] for r in doc["results"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bars = ax.bar(labels, ops, color="tab:blue", label="successful reads + writes")
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in ops], fontsize=8)
    ceil = (doc.get("driver_ceiling") or {}).get("throughput_ops_s")
    if ceil:
        ax.axhline(ceil, color="tab:gray", linestyle="--",
                   label=f"driver ceiling, GET /health ({ceil:,.0f} ops/s)")
    ax.set_xlabel("setting (read quorum R, write quorum W)")
    ax.set_ylabel("throughput (ops/s)")
    ax.set_title("Throughput per setting\n" + _subtitle(doc), fontsize=10)
    ax.set_ylim(0, max(ops + [ceil or 0]) * 1.18 or 1)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def latency(doc: dict, path: str) -> None:
    labels = _labels(doc)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    width = 0.8 / len(PCTS)
    for ax, op, title in ((axes[0], "read_ms", "reads (GET)"), (axes[1], "write_ms", "writes (PUT)")):
        for j, (key, name) in enumerate(PCTS):
            xs = [i + (j - (len(PCTS) - 1) / 2) * width for i in range(len(labels))]
            ys = [r[op][key] or 0 for r in doc["results"]]
            ax.bar(xs, ys, width, label=name)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_PLAIN)
        ax.yaxis.set_minor_formatter(_PLAIN)
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_title(title)
        ax.set_xlabel("setting")
        ax.grid(axis="y", which="both", alpha=0.3)
    # On a log scale matplotlib puts the floor just under the smallest value, and its bar
    # reads as zero: start at a power of ten at least a factor 2 below it (shared axis).
    lowest = [r[op][key] for r in doc["results"] for op in ("read_ms", "write_ms")
              for key, _name in PCTS if r[op][key]]
    if lowest:
        axes[0].set_ylim(bottom=10 ** math.floor(math.log10(min(lowest) / 2)))
    axes[0].set_ylabel("latency (ms, log scale)")
    # beside the plots: over them it hid the tallest bars once every bar showed in full
    axes[1].legend(title="percentile", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle("Latency percentiles per setting (HdrHistogram over every measured request)\n"
                 + _subtitle(doc), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def staleness(doc: dict, path: str) -> None:
    labels = _labels(doc)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    frac = [r["stale_fraction"] * 100 for r in doc["results"]]
    bars = ax1.bar(labels, frac, color="tab:red")
    ax1.bar_label(bars, labels=[f"{v:.2f}%" for v in frac], fontsize=8)
    ax1.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax1.set_xlabel("setting")
    ax1.set_ylabel("stale reads (% of reads)")
    ax1.set_ylim(0, max(frac + [0.1]) * 1.25)
    ax1.set_title("Stale reads: older than the newest acked version\nacknowledged before the read was sent",
                  fontsize=9)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    always = []
    for i, r in enumerate(doc["results"]):
        tv, c = r["t_visibility"], colors[i % len(colors)]
        ts = sorted(tv["measured"], key=float)
        values = [v for key in ("measured", "predicted", "predicted_with_client_trips")
                  for v in (tv.get(key) or {}).values() if v is not None]
        if r["r"] + r["w"] > r["n"] and values and min(values) == 1.0:
            always.append(labels[i])  # overlapping quorums: all at 1, listed not drawn
            continue
        meas = [(float(t), tv["measured"][t]) for t in ts if tv["measured"][t] is not None]
        if meas:
            ax2.plot([x for x, _ in meas], [y for _, y in meas], "o-", color=c,
                     label=f"{labels[i]} measured (95% CI)")
            ci = tv.get("measured_95ci") or {}
            pts = [(float(t), tv["measured"][t], ci[t]) for t in ts if ci.get(t)]
            if pts:
                ax2.errorbar([x for x, _, _ in pts], [y for _, y, _ in pts],
                             yerr=[[y - lo for _, y, (lo, _) in pts],
                                   [hi - y for _, y, (_, hi) in pts]],
                             fmt="none", ecolor=c, capsize=3, alpha=0.7)
        if tv.get("predicted"):
            pred = [(float(t), tv["predicted"][t]) for t in ts]
            ax2.plot([x for x, _ in pred], [y for _, y in pred], "x--", color=c, alpha=0.8,
                     label=f"{labels[i]} predicted (WARS)")
        if tv.get("predicted_with_client_trips"):
            pred = [(float(t), tv["predicted_with_client_trips"][t]) for t in ts]
            ax2.plot([x for x, _ in pred], [y for _, y in pred], ":", color=c, alpha=0.8,
                     label=f"{labels[i]} predicted + client trips")
    ax2.set_xscale("symlog", linthresh=1)
    ax2.set_xticks([0, 1, 2, 5, 10, 50], ["0", "1", "2", "5", "10", "50"])
    ax2.set_xlabel("t: from the write's ack to sending the read, at the driver (ms)")
    ax2.set_ylim(-0.02, 1.05)
    ax2.set_ylabel("P(read sees the write)")
    ax2.set_title("t-visibility: measured (solid), WARS-predicted (dashed; dotted: plus the\n"
                  "client<->node trips a t timed at the client includes)", fontsize=9)
    ax2.grid(alpha=0.3)
    if always:
        ax2.set_xlabel(ax2.get_xlabel() + "\nnot drawn, all 1 (R+W>N): " + ", ".join(always))
    ax2.legend(fontsize=7, ncol=1 if len(doc["results"]) - len(always) < 3 else 2,
               loc="lower right")
    fig.suptitle(_subtitle(doc), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def faults(doc: dict, path: str) -> None:
    res = doc["results"]
    fig, axes = plt.subplots(len(res), 1, figsize=(11, 2.4 * len(res) + 0.8), sharex=True,
                             squeeze=False)
    for ax, r in zip(axes[:, 0], res):
        tl = r["timeline"]
        xs = [p["t_s"] + 0.5 for p in tl]
        ax.plot(xs, [p["ops"] for p in tl], "o-", color="tab:blue", ms=3, label="ok ops/s")
        ax.plot(xs, [p["errors"] for p in tl], "s-", color="tab:red", ms=3, label="errors/s")
        f = r.get("fault") or {}
        if f.get("at_s") is not None:
            end = f["restored_at_s"] if (f.get("restored_at_s") or -1) >= 0 else r["duration_s"]
            ax.axvspan(f["at_s"], end, color="tab:orange", alpha=0.2,
                       label=f"{f['node']} faulted ({f['kind']}) until restored")
            if f.get("ready_again_s") is not None:
                ax.axvline(f["ready_again_s"], color="tab:green", linestyle=":",
                           label=f"{f['node']} ready again")
        ax.set_xlim(0, r["duration_s"])
        ax.set_ylabel("ops/s, errors/s")
        ax.set_title(f"R={r['r']},W={r['w']}: {r['errors']} errors "
                     f"({r['error_fraction']:.1%})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xlabel("time since the measured window began (s)")
    fig.suptitle("Throughput and errors over time under a fault\n" + _subtitle(doc), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_all(doc: dict, out_dir: str) -> list:
    os.makedirs(out_dir, exist_ok=True)
    made = []
    for name, fn in (("throughput.png", throughput), ("latency.png", latency),
                     ("staleness.png", staleness)):
        fn(doc, os.path.join(out_dir, name))
        made.append(os.path.join(out_dir, name))
    if doc["config"].get("fault", "none") != "none":
        faults(doc, os.path.join(out_dir, "faults.png"))
        made.append(os.path.join(out_dir, "faults.png"))
    return made
