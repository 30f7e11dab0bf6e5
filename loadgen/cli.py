"""``python -m loadgen``: run one workload under several (R, W) settings and compare them.

Every error a user can cause (bad flags, R or W above N, an unreachable --url) ends the run
with one line on stderr and a non-zero status, never a traceback. Every process the run
starts (nodes, drivers) is stopped by PID on the way out, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import sys
from typing import Optional

from loadgen.keys import DISTRIBUTIONS

DEFAULT_SETTINGS = ("1,1", "1,2", "2,1", "2,2", "1,3", "3,1", "3,3")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise SystemExit(_fail(f"{message} (see --help)", 2))


def _fail(message: str, code: int) -> int:
    print(f"loadgen: error: {message}", file=sys.stderr)
    return code


def _setting(text: str) -> tuple[int, int]:
    try:
        r, w = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"setting {text!r} is not R,W (two integers)") from None
    return r, w


def parse_args(argv: Optional[list]) -> argparse.Namespace:
    p = _Parser(prog="python -m loadgen", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--nodes", type=int, default=3,
                       help="start a local cluster of K nodes in a temp folder (default 3)")
    where.add_argument("--url", nargs="+", metavar="URL",
                       help="drive an existing cluster through these node URLs instead "
                            "(R/W set per request; faults not available)")
    p.add_argument("--settings", nargs="+", type=_setting, metavar="R,W",
                   default=[_setting(s) for s in DEFAULT_SETTINGS],
                   help=f"(R, W) settings to compare (default {' '.join(DEFAULT_SETTINGS)})")
    p.add_argument("--n", type=int, default=None,
                   help="replicas per key N (default 3; with --url, the cluster's)")
    p.add_argument("--duration-s", type=float, default=20.0,
                   help="measured seconds per setting (default 20)")
    p.add_argument("--warmup-s", type=float, default=3.0,
                   help="warm-up seconds before each setting's measurement (default 3)")
    p.add_argument("--concurrency", type=int, default=64,
                   help="requests in flight, all processes together (default 64); with --rate "
                        "the most in flight")
    p.add_argument("--rate", type=float, default=0.0, metavar="OPS_S",
                   help="open loop: offer this many ops/s and time each request from when it "
                        "was due (default: closed loop)")
    p.add_argument("--read-ratio", type=float, default=0.9,
                   help="share of reads, the rest are writes (default 0.9)")
    p.add_argument("--keys", type=int, default=10_000, help="distinct keys (default 10000)")
    p.add_argument("--distribution", default="zipfian",
                   help=f"key popularity: {'|'.join(DISTRIBUTIONS)} (default zipfian)")
    p.add_argument("--value-bytes", type=int, default=1024, help="value size (default 1024)")
    p.add_argument("--fault", default="none", choices=("none", "kill", "pause", "slow"),
                   help="at 1/3 of each setting SIGKILL / SIGSTOP / slow the last node; "
                        "restore at 2/3 (default none; local cluster only)")
    p.add_argument("--peer-delay-ms", default="50",
                   help="--fault slow: the slowed node's --peer-delay-ms (default 50)")
    p.add_argument("--processes", type=int, default=0,
                   help="driver processes (default: one per 128 in flight, or per 2500 ops/s "
                        "with --rate, at most one per core)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--out", default=None,
                   help="output folder (default ./loadgen-results/<timestamp>/)")
    p.add_argument("--timeout-s", type=float, default=5.0,
                   help="client timeout per request (default 5)")
    p.add_argument("--token", default=os.environ.get("DYNAMOPY_API_TOKEN"),
                   help="API bearer token (default $DYNAMOPY_API_TOKEN)")
    p.add_argument("--model-trials", type=int, default=20_000,
                   help="Monte Carlo trials of the WARS prediction per setting (default 20000)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p.parse_args(argv)


def validate(a: argparse.Namespace, n: int, nodes: Optional[int]) -> None:
    from loadgen.run import UsageError
    if a.distribution not in DISTRIBUTIONS:
        raise UsageError(f"unknown distribution {a.distribution!r}; choose one of "
                         f"{', '.join(DISTRIBUTIONS)}")
    if nodes is not None and not 1 <= n <= nodes:
        raise UsageError(f"N={n} needs at least N nodes, got --nodes {nodes}")
    for r, w in a.settings:
        if not (1 <= r <= n and 1 <= w <= n):
            raise UsageError(f"setting R={r},W={w}: R and W must be between 1 and N={n}")
    checks = ((a.duration_s > 0, "--duration-s must be > 0"),
              (a.warmup_s >= 0, "--warmup-s must be >= 0"),
              (a.concurrency >= 1, "--concurrency must be >= 1"),
              (a.rate >= 0, "--rate must be >= 0"),
              (0.0 <= a.read_ratio <= 1.0, "--read-ratio must be between 0 and 1"),
              (a.value_bytes >= 0, "--value-bytes must be >= 0"),
              (a.processes >= 0, "--processes must be >= 0"),
              (a.timeout_s > 0, "--timeout-s must be > 0"),
              (a.model_trials >= 100, "--model-trials must be >= 100"))
    for ok, msg in checks:
        if not ok:
            raise UsageError(msg)
    from loadgen.run import processes_for
    if a.keys < processes_for(a):
        raise UsageError("--keys must be at least the number of driver processes")
    if a.concurrency < processes_for(a):
        raise UsageError("--concurrency must be at least the number of driver processes")


def _interrupt(*_a) -> None:
    # One-shot: a second signal must not cut short the clean-up that stops our processes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def run(a: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (BarColumn, Progress, TextColumn, TimeElapsedColumn)

    from loadgen import report, run as runmod

    err = Console(stderr=True)
    if a.url:
        if a.fault != "none":
            raise runmod.UsageError("--fault is not available with --url: the load generator "
                                    "only faults the nodes it starts")
        # a URL without a scheme (localhost:8001) is HTTP, as the dynamopy CLI and curl take it
        urls = [(u if "://" in u else "http://" + u).rstrip("/") for u in a.url]
        info = runmod.probe_cluster(urls, a.token)
        n = int(info["n"])
        if a.n is not None and a.n != n:
            raise runmod.UsageError(f"--n {a.n} but the cluster's N is {n}")
        validate(a, n, None)
        nodes = max(len(info.get("members", [])), n)
        target = runmod.Target(urls, n, nodes, None, {"kind": "url", "members": nodes})
        target_text = f"existing cluster via {len(urls)} URL(s), {nodes} members, N={n}"
    else:
        n = a.n if a.n is not None else 3
        validate(a, n, a.nodes)
        err.print(f"loadgen: starting a local {a.nodes}-node cluster (N={n}) ...")
        target = runmod.start_local(a.nodes, n)
        target_text = f"local {a.nodes}-node cluster, N={n}"
    out_dir = a.out or os.path.join(
        "loadgen-results", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    load = (f"{'open loop ' + format(a.rate, ',.0f') + ' ops/s' if a.rate else 'closed loop'}, "
            f"{a.concurrency} in flight, {a.read_ratio:.0%} reads, {a.keys:,} keys "
            f"{a.distribution}, {a.value_bytes} B values, {a.duration_s:g} s per setting"
            + (f", fault {a.fault}" if a.fault != "none" else ""))
    runner = None
    try:
        with Progress(TextColumn("{task.description:<28}"), BarColumn(),
                      TimeElapsedColumn(), TextColumn("{task.fields[rate]}"),
                      console=err) as progress:
            runner = runmod.Runner(a, target, progress)
            runner.start_drivers()
            err.print(f"loadgen: {runner.p} driver process(es); preloading {a.keys:,} keys "
                      f"(W=N={n}) ...")
            preload = runner.preload()
            ceiling = runner.ceiling()
            results = [runner.setting(r, w, last=i == len(a.settings) - 1)
                       for i, (r, w) in enumerate(a.settings)]
    finally:
        if runner is not None:
            runner.stop()
        if target.cluster is not None:
            err.print("loadgen: stopping the cluster")
            target.cluster.stop()
    config = {k: v for k, v in vars(a).items() if k != "token"}
    config.update(settings=[list(s) for s in a.settings], n=n, nodes=target.nodes,
                  processes=runner.p, target=target_text, load=load, out=out_dir,
                  t_ms=list(runmod.T_MS), probe_workers_per_process=runmod.PROBE_WORKERS)
    doc = {"config": config,
           "machine": {"cores": os.cpu_count(), "load_avg_after": os.getloadavg(),
                       "python": platform.python_version(), "host": platform.node()},
           "preload": preload, "driver_ceiling": ceiling, "results": results}
    paths = report.write(doc, out_dir)
    if not a.no_plots:
        from loadgen import plots
        paths += plots.write_all(doc, out_dir)
    out = Console() if sys.stdout.isatty() else Console(width=200)
    out.print(report.table(doc))
    out.print(f"driver ceiling (GET /health, same processes and concurrency): "
              f"{ceiling['throughput_ops_s']:,.0f} ops/s, p50 "
              f"{ceiling['latency_ms']['p50']} ms; preload {preload['stored']}/{preload['keys']} "
              f"keys in {preload['seconds']} s")
    busiest = max(r["driver_cpu_pct_max"] for r in results)
    out.print(f"busiest driver process: {busiest:.0f}% of one core (the workload drivers' CPU "
              f"over each setting's window)")
    busy = [r for r in results if r["throughput_ops_s"] > 0.8 * ceiling["throughput_ops_s"]
            or r["driver_cpu_pct_max"] > 80]
    if busy:
        out.print("[yellow]warning: a setting ran above 80% of the driver ceiling or a driver "
                  "process above 80% CPU; the driver may be the bottleneck (raise "
                  "--processes)[/yellow]")
    out.print("t-visibility 'pred' is the WARS model's prediction from the nodes' peer latency "
              "histograms, not a measurement.")
    out.print("wrote " + ", ".join(paths))
    return 0


def main(argv: Optional[list] = None) -> int:
    try:
        a = parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    from loadgen.run import UsageError
    try:
        return run(a)
    except UsageError as e:
        return _fail(str(e), 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except RuntimeError as e:
        return _fail(str(e), 1)
