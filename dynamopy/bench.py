"""Throughput and latency benchmark: ``python -m dynamopy.bench``.

What it measures
    A 50/50 mix of ``GET /kv/{key}?r=R`` and ``PUT /kv/{key}?w=W`` with 1 KiB values over 10,000
    keys, at a fixed number of requests in flight (closed loop: each of the in-flight "users"
    sends its next request as soon as the previous one answers), for

    * R=2, W=2 (the default quorums: every request waits for two of three replicas),
    * R=1, W=1 on the same cluster and data,
    * and the driver's own ceiling: ``GET /health`` (no quorum, no storage) at the same
      concurrency, which shows how far the client side plus bare HTTP handling can go.

    For each it prints ok ops/s, p50/p95/p99/max latency in ms, error counts, GET 404s, and the
    CPU used by the nodes, the drivers and the whole machine during the measured window
    (from /proc/<pid>/stat and /proc/stat). Server-side trouble (non-ok request outcomes, quorum
    failures, peer RPC errors, hints, read repairs) comes from the nodes' /metrics counters, and
    for a cluster it started, WARNING/ERROR lines in the node logs.

How
    Unless ``--url`` names a running cluster, it starts a 3-node cluster on 127.0.0.1 (free ports
    from ``--base-port``, default 18001; data in a temp dir removed afterwards) and stops every
    node by PID at the end, also on error or Ctrl-C.

    Load comes from ``--driver-procs`` separate processes (dynamopy/benchlib/driver.py), each with
    aiohttp on uvloop, ``--inflight`` concurrent requests and a keep-alive pool of exactly that
    many connections, spreading requests round-robin over the nodes. Requests (method, node, key)
    are precomputed; latencies go into preallocated arrays via time.perf_counter, and percentiles
    are computed once at the end over every measured request (nearest rank, exact).

    Before measuring, the same drivers preload every key once (W=2) so gets mostly hit. Each
    phase is a warm-up (``--warmup`` s, connections opened, not recorded) followed by the measured
    window (``--seconds``); a request counts in the window it *started* in, so no latency sample is
    cut off at the edge.

Example
    python -m dynamopy.bench --seconds 10 --json bench.json
    python -m dynamopy.bench --url http://127.0.0.1:8001,http://127.0.0.1:8002 --driver-procs 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Optional

from dynamopy.benchlib import report
from dynamopy.benchlib.argtypes import (fraction, nonnegative_float, positive_float,
                                         positive_int)
from dynamopy.benchlib.cluster import LocalCluster, scrape, server_trouble
from dynamopy.launch import block_free, find_base_port, stop_processes
from dynamopy.benchlib.procstat import CpuWindow

# (label, mode, R, W) in the order they run; every phase shares the same cluster and keys.
PHASES = (("R=2,W=2", "mix", 2, 2), ("R=1,W=1", "mix", 1, 1),
          ("driver ceiling /health", "noop", None, None))
TARGET_OPS, TARGET_P99_MS = 2000.0, 50.0


def _args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dynamopy.bench",
                                description=__doc__.split("\n\n")[0].split(": ")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring for what each number means.")
    p.add_argument("--url", help="comma-separated node URLs of a running cluster (no nodes started)")
    p.add_argument("--nodes", type=positive_int, default=3, help="nodes to start (default 3)")
    p.add_argument("--base-port", type=int, default=None,
                   help="first HTTP port of the started cluster (default: first free from 18001)")
    p.add_argument("--data-dir", help="data dir for the started cluster (default: a temp dir)")
    p.add_argument("--keep-data", action="store_true", help="keep the temp data dir and logs")
    p.add_argument("--seconds", type=positive_float, default=10.0, help="measured time per phase (default 10)")
    p.add_argument("--warmup", type=nonnegative_float, default=2.0, help="warm-up per phase (default 2)")
    p.add_argument("--driver-procs", type=positive_int, default=1, help="driver processes (default 1)")
    p.add_argument("--inflight", type=positive_int, default=64, help="in-flight requests per driver (default 64)")
    p.add_argument("--keys", type=positive_int, default=10_000)
    p.add_argument("--value-bytes", type=positive_int, default=1024)
    p.add_argument("--get-ratio", type=fraction, default=0.5)
    p.add_argument("--timeout", type=positive_float, default=10.0, help="client timeout per request, s")
    p.add_argument("--key-prefix", default="bench-")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=nonnegative_float, default=2000.0,
                   help="offered ops/s (all drivers together) of the paced R=2,W=2 phase that "
                        "checks latency at a given load; 0 skips it (default 2000)")
    p.add_argument("--skip-preload", action="store_true")
    p.add_argument("--tls", action="store_true",
                   help="start the cluster with TLS on both ports (HTTPS + peer mutual TLS, a "
                        "throwaway self-signed certificate) to measure what TLS costs")
    p.add_argument("--ca", help="with --url: CA bundle of an HTTPS cluster")
    p.add_argument("--json", metavar="FILE", help="also write every number as JSON to FILE")
    p.add_argument("--vs-etcd", action="store_true",
                   help="instead: dynamopy against a 3-member etcd 3.4 under wrk; the flags "
                        "after it go to dynamopy.benchlib.vs_etcd (--vs-etcd --help lists them)")
    return p.parse_args(argv)


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --- drivers -------------------------------------------------------------------------------

class Drivers:
    """The driver processes of one phase: started together, given one shared window, stopped by
    PID whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, specs: list[dict]) -> None:
        for spec in specs:
            # Own session so a terminal Ctrl-C does not kill them mid-write; we stop them.
            proc = subprocess.Popen([sys.executable, "-m", "dynamopy.benchlib.driver"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    start_new_session=True)
            self.procs.append(proc)
            self._send(proc, spec)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    @staticmethod
    def _send(proc: subprocess.Popen, obj: dict) -> None:
        proc.stdin.write(json.dumps(obj) + "\n")
        proc.stdin.flush()

    @staticmethod
    def _receive(proc: subprocess.Popen) -> dict:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"driver pid {proc.pid} exited early ({proc.wait()})")
        return json.loads(line)

    def wait_ready(self) -> None:
        for p in self.procs:
            self._receive(p)

    def go(self, start: float, end: float) -> None:
        for p in self.procs:
            self._send(p, {"start": start, "end": end})

    def results(self) -> list[dict]:
        out = [self._receive(p) for p in self.procs]
        for p in self.procs:
            p.wait(timeout=30)
        return out

    def stop(self) -> None:
        stop_processes(self.procs, timeout_s=5)


def _spec(args: argparse.Namespace, urls: list[str], mode: str, i: int, **extra) -> dict:
    return {"mode": mode, "urls": urls, "inflight": args.inflight, "keys": args.keys,
            "key_prefix": args.key_prefix, "value_bytes": args.value_bytes,
            "get_ratio": args.get_ratio, "timeout_s": args.timeout,
            # Distinct request streams per driver; staggered so they start on different nodes.
            "seed": args.seed + 7919 * i, "offset": i,
            "capacity": int(args.seconds * 40_000 / args.driver_procs) + 1000,
            "ca": args.ca, **extra}


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# --- phases --------------------------------------------------------------------------------

def preload(args: argparse.Namespace, urls: list[str]) -> dict:
    """Write every key once, split across the drivers, as fast as the cluster takes it."""
    specs = [_spec(args, urls, "preload", i, w=2, key_slice=[i, args.driver_procs])
             for i in range(args.driver_procs)]
    drivers = Drivers()
    try:
        drivers.start(specs)  # inside try: drivers already started are stopped on failure
        drivers.wait_ready()
        t0 = time.monotonic()
        drivers.go(0.0, 0.0)
        results = drivers.results()
        elapsed = time.monotonic() - t0
    finally:
        drivers.stop()
    stored = sum(r["started"] for r in results)
    failed = sum(sum(r["errors"].values()) for r in results)
    return {"keys": args.keys, "stored": stored, "failed": failed, "seconds": round(elapsed, 2),
            "puts_per_s": round(stored / elapsed, 1)}


def measure(args: argparse.Namespace, urls: list[str], node_pids: list[int], label: str,
            mode: str, r: Optional[int], w: Optional[int], rate: float = 0.0) -> dict:
    """One phase: warm-up, then the measured window with CPU and server counters around it.
    ``rate`` > 0 paces the drivers (open loop) to that many ops/s in total."""
    specs = [_spec(args, urls, mode, i, r=r, w=w, rate=rate / args.driver_procs)
             for i in range(args.driver_procs)]
    drivers = Drivers()
    try:
        drivers.start(specs)  # inside try: drivers already started are stopped on failure
        drivers.wait_ready()
        before = scrape(urls, args.ca)
        cpu = CpuWindow({"nodes": node_pids, "drivers": drivers.pids, "bench": [os.getpid()]})
        start = time.monotonic() + 0.05 + args.warmup
        end = start + args.seconds
        drivers.go(start, end)
        _sleep_until(start)
        cpu.begin(time.monotonic())
        _sleep_until(end)
        cpu_report = cpu.end(time.monotonic())
        results = drivers.results()
    finally:
        drivers.stop()
    phase = report.merge(label, r, w, args.seconds, results)
    phase.update(label=label, mode=mode, cpu=cpu_report,
                 server=server_trouble(before, scrape(urls, args.ca)),
                 driver_cpu_s=[round(res["cpu_s"], 2) for res in results])
    return phase


# --- output --------------------------------------------------------------------------------

def _verdict(phases: list[dict]) -> str:
    """The target is latency at a throughput: judged on the paced phase when there is one
    (offered load >= the target rate), else on the saturated R=2,W=2 phase."""
    main = next((p for p in phases if p["label"].startswith("R=2,W=2 @")),
                next(p for p in phases if p["label"] == "R=2,W=2"))
    ops, p99 = main["ops_per_s"], main["latency_ms"]["all"].get("p99", float("nan"))
    met = ops >= TARGET_OPS and p99 < TARGET_P99_MS
    return (f"target at R=2,W=2 (>= {TARGET_OPS:.0f} ops/s with p99 < {TARGET_P99_MS:.0f} ms), "
            f"judged on phase {main['label']!r}: "
            f"{'MET' if met else 'NOT MET'} ({ops:.0f} ops/s, p99 {p99:.1f} ms)")


def _cpu_lines(phases: list[dict], node_pids: list[int]) -> list[str]:
    names = {str(pid): f"n{i + 1}" for i, pid in enumerate(node_pids)}
    lines = []
    for p in phases:
        cpu = p["cpu"]
        nodes = " ".join(f"{names.get(pid, pid)}={v:.0f}%"
                         for pid, v in cpu.get("nodes", {}).get("per_pid", {}).items())
        lines.append(f"  {p['label']:<22} nodes[{nodes or 'not ours: counted in other'}] "
                     f"drivers={cpu['drivers']['total_pct']:.0f}% "
                     f"bench={cpu['bench']['total_pct']:.0f}% "
                     f"other processes={cpu['others_pct']:.0f}% "
                     f"machine={cpu['machine_busy_pct']:.0f}% of {cpu['cores']} cores")
    return lines


def print_report(args: argparse.Namespace, setup: dict, phases: list[dict],
                 node_pids: list[int], log_problems: Optional[tuple[int, list[str]]]) -> None:
    print()
    print(f"dynamopy bench: {setup['cluster']}; {args.driver_procs} driver proc(s) x "
          f"{args.inflight} in flight; {args.keys} keys, {args.value_bytes} B values, "
          f"{args.get_ratio:.0%} gets; {args.warmup:g} s warm-up + {args.seconds:g} s per phase")
    if setup.get("preload"):
        pl = setup["preload"]
        print(f"preload: {pl['stored']}/{pl['keys']} keys in {pl['seconds']} s "
              f"({pl['puts_per_s']:.0f} puts/s, W=2), {pl['failed']} failed")
    print()
    print(report.table(phases))
    print()
    print(report.op_table(phases))
    print()
    print("CPU during each measured window (percent of one core; machine = busy share of all "
          "cores; 'other' = processes that are not this benchmark's):")
    print("\n".join(_cpu_lines(phases, node_pids)))
    print()
    print("errors and server-side counters (growth during each phase, summed over nodes):")
    for p in phases:
        errs = ", ".join(f"{k}={v}" for k, v in sorted(p["errors"].items())) or "none"
        server = ", ".join(f"{k}={v}" for k, v in sorted(p["server"].items())) or "none"
        print(f"  {p['label']:<22} client errors: {errs}; server: {server}")
    if log_problems is not None:
        count, examples = log_problems
        print(f"node logs: {count} WARNING/ERROR/Traceback line(s)")
        for e in examples:
            print(f"  {e}")
    print()
    print(_verdict(phases))


# --- main ----------------------------------------------------------------------------------

def _raise_interrupt(*_a) -> None:
    """SIGTERM takes the same clean-up path as Ctrl-C. One-shot: a second signal must not cut
    short the clean-up that stops our processes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _start_cluster(args: argparse.Namespace) -> LocalCluster:
    if args.base_port is not None:
        if not block_free(args.base_port, args.nodes):
            raise RuntimeError(f"ports {args.base_port}+ (or their peer ports) are in use")
        base = args.base_port
    else:
        base = find_base_port(18001, args.nodes)
    cluster = LocalCluster(args.nodes, base, args.data_dir, tls=args.tls)
    args.ca = cluster.ca
    _log(f"starting {args.nodes} nodes on 127.0.0.1:{base}.. (data in {cluster.data_dir})")
    return cluster


def run(args: argparse.Namespace) -> int:
    cluster: Optional[LocalCluster] = None
    try:
        if args.url:
            urls = [u.strip().rstrip("/") for u in args.url.split(",") if u.strip()]
            setup = {"cluster": f"existing cluster {', '.join(urls)}"}
        else:
            cluster = _start_cluster(args)
            cluster.start()  # inside try: a half-started cluster is still stopped
            urls = cluster.urls
            setup = {"cluster": f"local {args.nodes}-node cluster on {urls[0]}.."
                                + (" (TLS on both ports)" if args.tls else "")}
            _log(f"cluster ready, node pids {cluster.pids}")
        node_pids = cluster.pids if cluster else []
        if not args.skip_preload:
            _log(f"preloading {args.keys} keys")
            setup["preload"] = preload(args, urls)
            _log(f"preload: {setup['preload']}")
        phases = []
        plan = [(label, mode, r, w, 0.0) for label, mode, r, w in PHASES]
        if args.rate > 0:
            plan.insert(2, (f"R=2,W=2 @{args.rate:.0f}/s", "mix", 2, 2, args.rate))
        for label, mode, r, w, rate in plan:
            _log(f"phase {label}: {args.warmup:g} s warm-up + {args.seconds:g} s")
            phases.append(measure(args, urls, node_pids, label, mode, r, w, rate))
            _log(f"  {phases[-1]['ops_per_s']:.0f} ops/s, "
                 f"p99 {phases[-1]['latency_ms']['all'].get('p99', float('nan')):.1f} ms")
        log_problems = cluster.log_problems() if cluster else None
        print_report(args, setup, phases, node_pids, log_problems)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "setup": setup, "phases": phases,
                           "node_log_problems": log_problems}, f, indent=2)
            _log(f"wrote {args.json}")
        return 0
    except KeyboardInterrupt:
        _log("interrupted")
        return 130
    finally:
        if cluster is not None:
            _log("stopping the cluster")
            cluster.stop(keep_data=args.keep_data)
            if args.keep_data:
                _log(f"data and logs kept in {cluster.data_dir}")


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--vs-etcd" in argv:
        from dynamopy.benchlib import vs_etcd
        return vs_etcd.main(argv[argv.index("--vs-etcd") + 1:])
    args = _args(argv)  # a bad value exits with status 2 here (benchlib/argtypes.py)
    # Set both explicitly: Python leaves SIGINT ignored if it started ignored (e.g. `cmd &`).
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return run(args)
    except RuntimeError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
