"""What an idle cluster costs: CPU seconds per node per minute with no client traffic, and the
peer calls per second by method that the nodes' background work makes (failure-detector
pings, metadata-log heartbeats, anti-entropy, ...).

    python -m dynamopy.benchlib.idle_cpu [--seconds 60] [--settle 5] [--src DIR,DIR] [--rounds 2]
    python -m dynamopy.benchlib.idle_cpu --wait-cost

Starts a 3-node cluster (the benchmark's ``LocalCluster``; ``--src`` runs the dynamopy found
in each DIR instead, A B A B, for a before/after), waits until every node is ready, lets it
settle, then reads ``/proc/PID/stat`` at both ends of the window. The nodes' ``/metrics`` are
scraped only before and after the window (a scrape costs CPU). ``--py-spy FILE`` also records
node 1 through the window (``pip install py-spy``; raw format, idle frames included).
Figures from a shared machine are noisy: the machine's busy share is printed next to them.
``--wait-cost`` prints instead the CPU of one timed-out wait of a background loop (what the
metadata-log pump does 20 times a second): an ``asyncio.Event`` under ``asyncio.timeout``
against ``node.clock.Wakeup``, on uvloop, no cluster.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from typing import Optional

import httpx

from dynamopy.benchlib.cluster import LocalCluster
from dynamopy.benchlib.procstat import machine_cpu_s, main_thread_cpu_s, process_cpu_s
from dynamopy.launch import find_base_port

_CALLS = re.compile(r'^dynamopy_peer_calls_total\{method="([^"]+)",outcome="([^"]+)"\}\s+(\S+)$')


def peer_calls(url: str) -> dict[str, float]:
    """Outgoing peer calls of one node so far, by method (all outcomes)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=5.0).text
    except httpx.HTTPError:
        return {}
    return parse_peer_calls(text)


def parse_peer_calls(text: str) -> dict[str, float]:
    """``dynamopy_peer_calls_total`` of a ``/metrics`` page by method, outcomes added up."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _CALLS.match(line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


def measure(src: Optional[str], seconds: float, settle: float,
            py_spy: Optional[str] = None) -> dict:
    """One idle window on a fresh cluster; ``src`` None runs this checkout's code."""
    base = find_base_port(21000, 3)
    cluster = LocalCluster(3, base)
    if src is not None:
        cluster.launch.env["PYTHONPATH"] = os.path.abspath(src)
        cluster.launch.env["PYTHONSAFEPATH"] = "1"   # (see vs_etcd.SourceCluster)
    try:
        cluster.start()
        time.sleep(settle)
        pids = cluster.pids
        before_calls = [peer_calls(u) for u in cluster.urls]
        spy = None
        if py_spy:
            spy = subprocess.Popen(["py-spy", "record", "--idle", "--format", "raw",
                                    "--rate", "200", "--duration", str(int(seconds)),
                                    "--output", py_spy, "--pid", str(pids[0])],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu0 = [process_cpu_s(p) for p in pids]
        loop0 = [main_thread_cpu_s(p) for p in pids]
        m0, t0 = machine_cpu_s(), time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - t0
        cpu1 = [process_cpu_s(p) for p in pids]
        loop1 = [main_thread_cpu_s(p) for p in pids]
        m1 = machine_cpu_s()
        if spy is not None:
            spy.wait(timeout=30)
        after_calls = [peer_calls(u) for u in cluster.urls]
    finally:
        cluster.stop()
    per_min = 60.0 / wall
    methods = sorted({k for d in after_calls for k in d})
    calls = {m: round(sum(a.get(m, 0.0) - b.get(m, 0.0)
                          for a, b in zip(after_calls, before_calls)) / wall, 1)
             for m in methods}
    return {
        "cpu_s_per_min": [round((b - a) * per_min, 2) for a, b in zip(cpu0, cpu1)],
        "loop_s_per_min": [round((b - a) * per_min, 2) for a, b in zip(loop0, loop1)],
        "calls_per_s": {m: v for m, v in calls.items() if v > 0},
        "machine_busy_pct": round(100.0 * (m1[0] - m0[0]) / max(m1[1] - m0[1], 1e-9), 1),
    }


def wait_cost(waits: int = 2000, repeats: int = 3) -> None:
    """CPU microseconds per timed-out wait (0.5 ms timeouts), both ways, ``repeats`` times."""
    import asyncio

    import uvloop

    from dynamopy.node.clock import Wakeup, wait_set

    async def event_under_timeout(event: asyncio.Event, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await event.wait()
            return True
        except TimeoutError:
            return False

    async def cost(wait, flag) -> float:
        t = time.process_time()
        for _ in range(waits):
            await wait(flag, 0.0005)
        return (time.process_time() - t) / waits * 1e6

    async def run() -> None:
        for _ in range(repeats):
            a = await cost(event_under_timeout, asyncio.Event())
            b = await cost(wait_set, Wakeup())
            print(f"CPU per timed-out wait: asyncio.Event under asyncio.timeout {a:.1f} us, "
                  f"Wakeup {b:.1f} us (includes the loop's own wake-up)", flush=True)

    uvloop.run(run())


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dynamopy.benchlib.idle_cpu",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0,
                   help="length of the idle window [default: 60]")
    p.add_argument("--settle", type=float, default=5.0,
                   help="seconds after all nodes are ready before the window [default: 5]")
    p.add_argument("--src", default="",
                   help="comma-separated checkouts to compare (PYTHONPATH=DIR), '.' for this "
                        "one [default: this one only]")
    p.add_argument("--rounds", type=int, default=1,
                   help="windows per source, alternating A B A B [default: 1]")
    p.add_argument("--py-spy", metavar="FILE", default=None,
                   help="record node 1 through the (first) window with py-spy, raw format")
    p.add_argument("--wait-cost", action="store_true",
                   help="print the CPU of a timed-out background wait, both ways, and exit")
    args = p.parse_args(argv)
    if args.wait_cost:
        wait_cost()
        return 0
    srcs = [s.strip() for s in args.src.split(",") if s.strip()] or ["."]
    first = True
    for r in range(args.rounds):
        for s in srcs:
            res = measure(None if s == "." else s, args.seconds, args.settle,
                          args.py_spy if first else None)
            first = False
            cpu = res["cpu_s_per_min"]
            print(f"round {r + 1} {s}: CPU s/min per node {cpu} (loop thread "
                  f"{res['loop_s_per_min']}), mean {sum(cpu) / len(cpu):.2f}; machine busy "
                  f"{res['machine_busy_pct']}%", flush=True)
            calls = ", ".join(f"{m} {v}" for m, v in res["calls_per_s"].items())
            print(f"  peer calls/s (3 nodes): {calls}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
