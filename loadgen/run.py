"""One load-generator run: the cluster (started here, or reached with --url), the driver
processes, the preload, the driver's ceiling, then each (R, W) setting with its fault.

Timing of a setting: the drivers get one shared window: ``warmup_s`` of warm-up, then
``duration_s`` measured. With a fault, the victim node (the last one) is SIGKILLed /
SIGSTOPped / restarted with ``--peer-delay-ms`` a third into the measured window and restored
(restarted / SIGCONT / restarted without the delay) at two thirds. Before the next setting
every node must answer /ready again (bounded).

Processes: ``processes_for`` workload drivers, each owning a share of the keys, plus one probe
driver that runs the t-visibility chains (write, wait t, read) and times ``GET /health`` round
trips, in an event loop of its own so the workload's load does not stretch its waits. Probe
requests are not counted in the setting's ops or latencies.
"""

from __future__ import annotations

import math
import os
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Optional

import httpx

from dynamopy.benchlib.cluster import LocalCluster
from dynamopy.launch import find_base_port
from loadgen import nodemetrics, results, wars
from loadgen.pool import DriverPool

T_MS = (0, 1, 2, 5, 10, 50)
PROBE_WORKERS = 4          # t-visibility probe chains, in a driver process of their own
CEILING_MAX_S = 5.0
READY_TIMEOUT_S = 60.0


class UsageError(Exception):
    """Bad arguments or an unusable target: a one-line message, exit status 2."""


@dataclass
class Target:
    urls: list
    n: int
    nodes: int
    cluster: Optional[LocalCluster] = None
    info: dict = field(default_factory=dict)


def probe_cluster(urls: list, token: Optional[str]) -> dict:
    """GET /cluster from the first URL that answers; every URL must answer /health."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    info = None
    with httpx.Client(timeout=3.0, headers=headers) as c:
        for url in urls:
            try:
                c.get(f"{url}/health").raise_for_status()
                if info is None:
                    resp = c.get(f"{url}/cluster")
                    resp.raise_for_status()
                    info = resp.json()
            except (httpx.HTTPError, ValueError) as e:
                raise UsageError(f"cannot reach {url}: {type(e).__name__}: {e}") from None
    return info


def start_local(nodes: int, n: int) -> Target:
    cluster = LocalCluster(nodes, find_base_port(18101, nodes),
                           extra_args=("--n", str(n)))
    try:
        cluster.start(READY_TIMEOUT_S)
    except BaseException:
        cluster.stop()
        raise
    return Target(cluster.urls, n, nodes, cluster,
                  {"kind": "local", "data_dir": cluster.data_dir, "pids": cluster.pids})


def scrape(urls: list) -> list:
    out = []
    with httpx.Client(timeout=3.0) as c:
        for url in urls:
            try:
                out.append(nodemetrics.parse(c.get(f"{url}/metrics").text))
            except httpx.HTTPError:
                out.append(None)
    return out


def processes_for(args) -> int:
    """--processes, or enough to keep up: one per 128 requests in flight (open loop: per
    2,500 ops/s offered), at most one per core."""
    if args.processes:
        return args.processes
    want = math.ceil(args.rate / 2500) if args.rate else math.ceil(args.concurrency / 128)
    return max(1, min(os.cpu_count() or 1, want))


def _split(total: int, parts: int) -> list:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Runner:
    def __init__(self, args, target: Target, progress) -> None:
        self.args, self.target, self.progress = args, target, progress
        self.p = processes_for(args)
        self.inflight = [max(1, c) for c in _split(args.concurrency, self.p)]
        self.pool = DriverPool()

    def start_drivers(self) -> None:
        a = self.args
        self.pool.start([{"urls": self.target.urls, "part": i, "parts": self.p,
                          "keys": a.keys, "distribution": a.distribution,
                          "value_bytes": a.value_bytes, "seed": a.seed,
                          "timeout_s": a.timeout_s, "token": a.token,
                          "inflight_max": self.inflight[i] + PROBE_WORKERS}
                         for i in range(self.p)]
                        # The probes get a process (an event loop) of their own, so a busy
                        # workload loop does not stretch their t ms waits.
                        + [{"urls": self.target.urls, "part": 0, "parts": self.p,
                            "keys": a.keys, "distribution": a.distribution,
                            "value_bytes": a.value_bytes, "seed": a.seed + 1,
                            "timeout_s": a.timeout_s, "token": a.token,
                            "inflight_max": PROBE_WORKERS, "probe_id": self.p}])

    def stop(self) -> None:
        self.pool.stop()

    def _window(self, specs: list, warmup_s: float, duration_s: float, label: str,
                on_tick=None) -> list:
        self.pool.phase(specs)
        t_begin = time.monotonic()
        start = t_begin + 0.05 + warmup_s
        end = start + duration_s
        self.pool.go(start, end)
        task = self.progress.add_task(label, total=warmup_s + duration_s, rate="")
        while True:
            now = time.monotonic()
            if on_tick is not None:
                on_tick(now - start)
            ok, err = self.pool.live()
            measured = now - start
            rate = f"{ok / measured:,.0f} ops/s, {err} errors" if measured > 0.5 else "warm-up"
            self.progress.update(task, completed=min(now - t_begin, warmup_s + duration_s),
                                 rate=rate)
            if now >= end:
                break
            time.sleep(min(0.25, max(0.01, end - now)))
        out = self.pool.results(self.args.timeout_s + 30.0)
        self.progress.update(task, completed=warmup_s + duration_s)
        return out

    def preload(self) -> dict:
        a = self.args
        specs = [{"kind": "preload", "w": self.target.n, "inflight": c}
                 for c in self.inflight + [0]]
        self.pool.phase(specs)
        t0 = time.monotonic()
        self.pool.go(0.0, 0.0)
        res = self.pool.results(a.keys / 50.0 + 60.0)
        elapsed = time.monotonic() - t0
        stored = sum(x["writes"] for x in res)
        return {"keys": a.keys, "stored": stored, "w": self.target.n,
                "failed": sum(sum(x["errors"].values()) for x in res),
                "seconds": round(elapsed, 2)}

    def ceiling(self) -> dict:
        d = min(CEILING_MAX_S, max(1.0, self.args.duration_s / 2))
        specs = [{"kind": "health", "inflight": c} for c in self.inflight + [0]]
        res = self._window(specs, 0.5, d, "driver ceiling (GET /health)")
        return results.ceiling(d, res)

    def setting(self, r: int, w: int, last: bool = False) -> dict:
        a, tgt = self.args, self.target
        rates = [a.rate / self.p if a.rate else 0.0] * self.p
        specs = [{"kind": "mix", "r": r, "w": w, "read_ratio": a.read_ratio, "rate": rates[i],
                  "inflight": self.inflight[i], "probe_workers": 0,
                  "t_ms": list(T_MS)} for i in range(self.p)]
        specs.append({"kind": "mix", "r": r, "w": w, "read_ratio": a.read_ratio, "rate": 0.0,
                      "inflight": 0, "probe_workers": PROBE_WORKERS, "t_ms": list(T_MS)})
        fault = Fault(a.fault, tgt.cluster, a.duration_s, a.peer_delay_ms) \
            if a.fault != "none" else None
        before = scrape(tgt.urls)
        try:
            res = self._window(specs, a.warmup_s, a.duration_s, f"R={r},W={w}",
                               on_tick=fault.tick if fault else None)
        finally:
            if fault is not None:
                fault.finish()
        after = scrape(tgt.urls)
        out = results.merge_setting(r, w, tgt.n, a.duration_s, res, list(T_MS))
        out["fault"] = fault.report() if fault else None
        results.add_driver_load(out, a.warmup_s + a.duration_s)
        model, inputs = nodemetrics.latency_model(nodemetrics.window(before, after))
        predicted = with_trips = None
        if model is not None:
            predicted = wars.predict_t_visibility(
                tgt.n, r, w, T_MS, model, random.Random(a.seed), trials=a.model_trials,
                read_plan="r", nodes=tgt.nodes)
            trips = results.client_trips(res)
            if trips:
                # The probes time t at the client, so the nodes see t plus the write's answer
                # trip and the read's request trip: about one client round trip.
                inputs["client_rtt"] = {"samples": len(trips),
                                        "p50_ms": round(sorted(trips)[len(trips) // 2] * 1000, 3),
                                        "source": "GET /health round trips of the probe process"}
                with_trips = wars.predict_t_visibility(
                    tgt.n, r, w, T_MS, model, random.Random(a.seed), trials=a.model_trials,
                    read_plan="r", nodes=tgt.nodes, extra_gap=wars.Choice(tuple(trips)))
        results.add_prediction(out, predicted, inputs, with_trips)
        if tgt.cluster is not None and not last:
            tgt.cluster.wait_ready(READY_TIMEOUT_S)  # every setting starts on a whole cluster
        return out


class Fault:
    """A fault on the last node, applied at a third of the window and restored at two."""

    def __init__(self, kind: str, cluster: LocalCluster, duration_s: float,
                 delay_ms: str) -> None:
        self.kind, self.cluster, self.duration_s = kind, cluster, duration_s
        self.delay_ms = delay_ms
        self.victim = cluster.nodes - 1
        self.at = self.restored = self.ready = None

    def tick(self, t: float) -> None:
        c, v = self.cluster, self.victim
        if self.at is None and t >= self.duration_s / 3:
            self.at = round(t, 3)
            if self.kind == "kill":
                c.kill(v, signal.SIGKILL)
            elif self.kind == "pause":
                c.kill(v, signal.SIGSTOP)
            else:
                c.restart(v, ("--peer-delay-ms", self.delay_ms))
            return
        if self.at is not None and self.restored is None and t >= 2 * self.duration_s / 3:
            self.restored = round(t, 3)
            if self.kind == "pause":
                c.kill(v, signal.SIGCONT)
            else:
                c.restart(v)
            return
        if self.restored is not None and self.ready is None and c.ready(v):
            self.ready = round(t, 3)

    def finish(self) -> None:
        """Restore whatever is still faulted (a short window, an error, Ctrl-C)."""
        if self.at is not None and self.restored is None:
            self.restored = -1.0
            if self.kind == "pause":
                self.cluster.kill(self.victim, signal.SIGCONT)
            else:
                self.cluster.restart(self.victim)

    def report(self) -> dict:
        what = {"kill": "SIGKILL, then restarted on its data",
                "pause": "SIGSTOP, then SIGCONT",
                "slow": f"restarted with --peer-delay-ms {self.delay_ms}, then without"}
        return {"kind": self.kind, "node": f"n{self.victim + 1}", "what": what[self.kind],
                "at_s": self.at, "restored_at_s": self.restored, "ready_again_s": self.ready}
