"""Which requests make the p99, and when: ``python -m dynamopy.benchlib.request_timeline``.

Runs the bench's spread load on a local 3-node cluster (wrk, 50/50 get/put of 2,000 1 KiB
keys, R=2,W=2, 63 connections over the three nodes) with one connection per wrk thread, so the
Lua script can pair each answer with its request and log both times from the wall clock
(LuaJIT's ffi ``clock_gettime``; wrk's own Lua clock has whole seconds only). Afterwards it
groups the slow requests into episodes (overlapping slow requests), and prints, for each, how
many requests it held, of which kind, and what the nodes logged meanwhile: slow synced batches
(``group_commit``, at most one line a second per node), and, per run, what each node's own
request-latency histogram saw over the slow bound (the server's view, without the client's
queueing) and the CPU time the hypervisor stole. ``--vs-etcd-order`` drives etcd before each
run, as ``--vs-etcd`` does (etcd's dirty pages meet our run). A figure to read, never a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

from dynamopy.benchlib import report
from dynamopy.benchlib.argtypes import positive_float, positive_int, whole_seconds
from dynamopy.benchlib.cluster import LocalCluster
from dynamopy.benchlib.sync_stalls import leveldb_events, slow_syncs
from dynamopy.benchlib.vs_etcd import (
    WRK_ALL,
    EtcdCluster,
    ensure_tools,
    lua_dynamopy,
    lua_etcd,
    preload_dynamopy,
    preload_etcd,
    run_wrk,
)
from dynamopy.benchlib.vs_etcd_report import health_counts, parse_wrk, requests_over, tail_line
from dynamopy.launch import find_base_port

CONNS = 63

# ---- the wrk Lua additions (pure) ----------------------------------------------------------

_LUA_LOG = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } dp_timespec;
int clock_gettime(int clk_id, dp_timespec *tp);
]]
local ts = ffi.new("dp_timespec")
local function now_us()
  ffi.C.clock_gettime(0, ts)  -- CLOCK_REALTIME: the clock the nodes' log lines use
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end
local next_tid = 0
local base_setup = setup
function setup(thread)
  base_setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
end
local out, started, kind = nil, 0, "G"
local base_init = init
function init(args)
  base_init(args)
  out = io.open("%(dir)s/req-" .. tostring(tid) .. ".log", "w")
  out:setvbuf("full")
end
function request()
  local i = math.random(#reqs)
  if i %% 2 == 1 then kind = "G" else kind = "P" end
  started = now_us()
  return reqs[i]
end
function response(status, headers, body)
  out:write(string.format("%%.0f %%.0f %%s %%d\\n", started, now_us() - started, kind, status))
end
"""


def lua_logged(base: str, log_dir: str) -> str:
    """``base`` (a bench script, one connection per thread) plus a line per answer:
    ``<start us> <latency us> <G|P> <status>`` in ``log_dir``/req-<thread>.log."""
    return base + _LUA_LOG % {"dir": log_dir}


# ---- the analysis (pure) -------------------------------------------------------------------

@dataclass
class Req:
    start: float    # wall-clock seconds
    ms: float
    kind: str       # "G" or "P"
    status: int
    conn: int = 0   # the wrk thread (one connection each)

    @property
    def end(self) -> float:
        return self.start + self.ms / 1000


def parse_lines(lines, conn: int = 0) -> list[Req]:
    out = []
    for line in lines:
        p = line.split()
        if len(p) == 4 and p[0].isdigit() and p[1].isdigit():
            out.append(Req(int(p[0]) / 1e6, int(p[1]) / 1000, p[2], int(p[3]), conn))
    return out


def client_gaps(reqs: list[Req], t0: float, t1: float) -> list[float]:
    """Per connection, its longest time in [t0, t1] with no request in flight (ms): the
    client's own delay between an answer and its next request."""
    by_conn: dict[int, list[Req]] = {}
    for r in reqs:
        if r.end >= t0 - 1 and r.start <= t1 + 1:
            by_conn.setdefault(r.conn, []).append(r)
    gaps = []
    for rs in by_conn.values():
        rs.sort(key=lambda r: r.start)
        worst = 0.0
        for a, b in zip(rs, rs[1:]):
            lo, hi = max(a.end, t0), min(b.start, t1)
            worst = max(worst, hi - lo)
        gaps.append(1000 * worst)
    return sorted(gaps)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (any order; 0.0 for none), for printing."""
    return report.percentile(sorted(values), pct) if values else 0.0


def episodes(slow: list[Req], gap_s: float = 0.0) -> list[list[Req]]:
    """Slow requests grouped so that each group's intervals overlap (or lie within ``gap_s``
    of each other): one group per event that held them."""
    groups: list[list[Req]] = []
    end = None
    for r in sorted(slow, key=lambda r: r.start):
        if end is not None and r.start <= end + gap_s:
            groups[-1].append(r)
            end = max(end, r.end)
        else:
            groups.append([r])
            end = r.end
    return groups


def steal_ticks() -> int:
    """Ticks the hypervisor stole from this machine's CPUs so far (``/proc/stat``)."""
    with open("/proc/stat") as f:
        p = f.readline().split()
    return int(p[8]) if len(p) > 8 else 0


def _clock(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


def describe_run(reqs: list[Req], slow_ms: float, slow_batches: list, top: int,
                 ldb: tuple = ()) -> list[str]:
    """The lines printed for one run's requests: counts, then the largest episodes."""
    lat = sorted(r.ms for r in reqs)
    p99 = report.percentile(lat, 99) if lat else 0.0
    span = (max(r.end for r in reqs) - min(r.start for r in reqs)) if reqs else 0.0
    lines = [f"  {len(reqs)} answers in {span:.1f} s ({len(reqs) / max(span, 1e-9):.0f}/s), "
             f"p50 {report.percentile(lat, 50) if lat else 0.0:.1f} ms, p99 {p99:.1f} ms, "
             f"max {lat[-1] if lat else 0.0:.1f} "
             f"ms; non-2xx {sum(1 for r in reqs if not 200 <= r.status < 300)}"]
    at_p99 = [r for r in reqs if r.ms >= p99]
    slow = [r for r in reqs if r.ms >= slow_ms]
    lines.append(f"  at or above the p99: {len(at_p99)} ({sum(r.kind == 'P' for r in at_p99)} "
                 f"puts); at or above {slow_ms:g} ms: {len(slow)} "
                 f"({sum(r.kind == 'P' for r in slow)} puts)")
    groups = episodes(slow)
    lines.append(f"  episodes (slow requests overlapping in time): {len(groups)}; slow requests "
                 f"per episode: {', '.join(str(len(g)) for g in groups[:40])}"
                 f"{' ...' if len(groups) > 40 else ''}")
    for g in sorted(groups, key=len, reverse=True)[:top]:
        t0, t1 = min(r.start for r in g), max(r.end for r in g)
        during = [r for r in reqs if t0 <= r.end <= t1]
        batches = [b for b in slow_batches if t0 - 0.05 <= b[0] <= t1 + 0.05]
        gaps = client_gaps(reqs, t0, t1)
        nodes = {}
        for r in g:
            nodes[(r.conn - 1) % 3 + 1] = nodes.get((r.conn - 1) % 3 + 1, 0) + 1
        events = [e for e in ldb if t0 - 0.2 <= e[0] <= t1]
        lines.append(
            f"    {_clock(t0)}-{_clock(t1)[6:]} ({1000 * (t1 - t0):.0f} ms): {len(g)} slow "
            f"({sum(r.kind == 'P' for r in g)} puts, max {max(r.ms for r in g):.0f} ms; by "
            f"coordinator {', '.join(f'n{k} {v}' for k, v in sorted(nodes.items()))}); "
            f"answers ending meanwhile {len(during)}; connections idle (client side) over "
            f"50 ms: {sum(1 for g in gaps if g > 50)}, longest {max(gaps, default=0):.0f} ms; "
            f"slow synced batches logged: "
            + (", ".join(f"{b[1]} {b[3]:.0f} ms at {_clock(b[0])[6:]}" for b in batches)
               or "none"))
        for e in events:
            lines.append(f"      leveldb {e[1]} {_clock(e[0])[6:]} {e[2]}")
    return lines


# ---- the run -------------------------------------------------------------------------------

def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dynamopy.benchlib.request_timeline",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=positive_int, default=4, help="runs (default 4)")
    p.add_argument("--seconds", type=whole_seconds, default=10.0, help="s per run (default 10)")
    p.add_argument("--slow-ms", type=positive_float, default=100.0,
                   help="a request this slow or slower is in an episode (default 100)")
    p.add_argument("--top", type=positive_int, default=8,
                   help="largest episodes shown per run (default 8)")
    p.add_argument("--vs-etcd-order", action="store_true",
                   help="start etcd too and drive it before each run, as --vs-etcd does")
    p.add_argument("--keys", type=positive_int, default=2000, help="keys (default 2000)")
    p.add_argument("--value-bytes", type=positive_int, default=1024,
                   help="bytes per value (default 1024)")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory (request logs, node logs, LevelDB LOGs)")
    args = p.parse_args(argv)
    why = ensure_tools()
    if why is not None:
        print(f"request_timeline {why}")
        return 0
    work = tempfile.mkdtemp(prefix="dynamopy-request-timeline-")
    cluster = LocalCluster(3, find_base_port(18201, 3), data_dir=os.path.join(work, "dynamopy"))
    etcd = EtcdCluster(3, os.path.join(work, "etcd")) if args.vs_etcd_order else None
    prefix = "bench-"
    bound = 0.2 if args.slow_ms <= 200 else 0.5
    results = []
    import httpx
    try:
        if etcd is not None:
            os.makedirs(etcd.data_dir, exist_ok=True)
            etcd.start()
            preload_etcd(etcd.urls[0], args.keys, args.value_bytes, prefix)
        cluster.start()
        preload_dynamopy(cluster.urls[0], args.keys, args.value_bytes, prefix)
        ports = [int(u.rsplit(":", 1)[1]) for u in cluster.urls]
        for i in range(1, args.runs + 1):
            if etcd is not None:
                run_wrk(etcd.urls[0], lua_etcd(etcd.client_ports, True, args.keys,
                                               args.value_bytes, prefix),
                        args.seconds, WRK_ALL, work)
            log_dir = os.path.join(work, f"run{i}")
            os.makedirs(log_dir)
            script = lua_logged(lua_dynamopy(ports, True, 2, 2, args.keys, args.value_bytes,
                                             prefix), log_dir)
            texts = [httpx.get(f"{u}/metrics", timeout=5).text for u in cluster.urls]
            before = [requests_over(t, bound) for t in texts]
            health0 = [health_counts(t) for t in texts]
            steal0, t0 = steal_ticks(), time.time()
            out = run_wrk(cluster.urls[0], script, args.seconds,
                          (f"-t{CONNS}", f"-c{CONNS}"), work)
            t1, steal1 = time.time(), steal_ticks()
            texts = [httpx.get(f"{u}/metrics", timeout=5).text for u in cluster.urls]
            after = [requests_over(t, bound) for t in texts]
            health = tail_line(health0, [health_counts(t) for t in texts])
            wrk_run = parse_wrk(out, "dynamopy", "all", i)
            reqs: list[Req] = []
            for path in glob.glob(os.path.join(log_dir, "req-*.log")):
                with open(path) as f:
                    reqs.extend(parse_lines(f, int(path.rsplit("-", 1)[1].split(".")[0])))
            server = [(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before)]
            results.append((i, t0, t1, wrk_run, reqs, server, health,
                            (steal1 - steal0) / os.sysconf("SC_CLK_TCK")))
            print(f"[request-timeline] run {i}: wrk {wrk_run.ops:.0f} ops/s p99 "
                  f"{wrk_run.p99_ms:.1f} ms; {len(reqs)} answers logged", file=sys.stderr,
                  flush=True)
    finally:
        if etcd is not None:
            etcd.stop()
        cluster.stop(keep_data=True)
    slow_b, unlogged = slow_syncs([cluster.log_path(i) for i in range(3)])
    print(f"{args.runs} runs of {args.seconds:g} s, wrk -t{CONNS} -c{CONNS} (one connection "
          f"per thread), spread, R=2,W=2{', each after an etcd run' if etcd else ''}; "
          f"slow synced batches left out of the logs (one line a second per node): {unlogged}")
    ldb = leveldb_events({f"n{k + 1}": os.path.join(cluster.data_dir, f"n{k + 1}")
                          for k in range(3)})
    for i, t0, t1, wrk_run, reqs, server, health, stolen in results:
        print(f"run {i}: wrk says {wrk_run.ops:.0f} ops/s, p99 {wrk_run.p99_ms:.1f} ms, "
              f"max {wrk_run.max_ms:.1f} ms; the hypervisor stole {stolen:.2f} CPU-s")
        print("  the nodes' own view, requests over " f"{1000 * bound:.0f} ms: "
              + "; ".join(f"n{k + 1} {s[1]:.0f} of {s[0]:.0f}" for k, s in enumerate(server)))
        print(f"  {health}")
        for line in describe_run(reqs, args.slow_ms,
                                 [b for b in slow_b if t0 <= b[0] <= t1 + 1], args.top, ldb):
            print(line)
    if args.keep:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
