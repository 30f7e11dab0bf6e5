"""Where slow synced batches come from: ``python -m dynamopy.benchlib.sync_stalls``.

Runs the bench's load (wrk, 50/50 get/put of 2,000 1 KiB keys, R=2,W=2, spread over all three
nodes of a local cluster; optionally alternating with the same load on a 3-member etcd, as
``--vs-etcd`` does) and, meanwhile, samples every ``--sample-ms`` the kernel's view of the
disk: ``/proc/meminfo`` Dirty and Writeback, ``/proc/diskstats`` of the data directory's
device (write requests, sectors, requests in flight), and the bytes each node and etcd
process wrote (``/proc/PID/io``). Afterwards it reads the nodes' "slow synced batch" log
lines (``group_commit.SLOW_SYNC_SECONDS``) and each node's LevelDB ``LOG`` (memtable flushes
and compactions), and prints, for every slow synced batch, what the disk, the other nodes,
LevelDB and etcd did in the second before it ended, then the same figures averaged over all
seconds without one. A figure to read, never a test; the machine is shared, so say whether it
was busy next to what it prints.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from typing import Optional

from dynamopy.benchlib.argtypes import positive_float, positive_int, whole_seconds
from dynamopy.benchlib.cluster import LocalCluster
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
from dynamopy.benchlib.vs_etcd_report import parse_wrk
from dynamopy.launch import find_base_port

_SLOW = re.compile(r"^(\S+ \S+) (\S+) INFO dynamopy\.storage\.group_commit: slow synced batch: "
                   r"(\d+) operations in ([\d.]+) ms(?: \((\d+) more since the last line\))?")
# LevelDB LOG: "2026/12/01-12:00:00.123456 7f0e... <event>"
_LDB = re.compile(r"^(\d{4}/\d\d/\d\d-\d\d:\d\d:\d\d\.\d+) \S+ (.*)$")


def _device_of(path: str) -> str:
    """The /proc/diskstats name of the block device holding ``path`` (best effort)."""
    st = os.stat(path)
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            if int(p[0]) == major and int(p[1]) == minor:
                return p[2]
    return "vda"


class Sampler(threading.Thread):
    """Every ``period`` s: (wall time, Dirty kB, Writeback kB, disk writes, sectors written,
    in flight, {pid: write_bytes})."""

    def __init__(self, device: str, pids: dict[str, list[int]], period: float) -> None:
        super().__init__(daemon=True)
        self.device, self.pids, self.period = device, pids, period
        self.rows: list[tuple] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            now = time.time()
            mem = {}
            with open("/proc/meminfo") as f:
                for line in f:
                    k, v = line.split(":", 1)
                    if k in ("Dirty", "Writeback"):
                        mem[k] = int(v.split()[0])
            disk = (0, 0, 0)
            with open("/proc/diskstats") as f:
                for line in f:
                    p = line.split()
                    if p[2] == self.device:
                        disk = (int(p[7]), int(p[9]), int(p[11]))
            io = {}
            for who, pids in self.pids.items():
                total = 0
                for pid in pids:
                    try:
                        with open(f"/proc/{pid}/io") as f:
                            for line in f:
                                if line.startswith("write_bytes:"):
                                    total += int(line.split()[1])
                    except OSError:
                        pass
                io[who] = total
            self.rows.append((now, mem.get("Dirty", 0), mem.get("Writeback", 0), *disk, io))
            self.stop_event.wait(self.period)


def slow_syncs(log_paths: list[str]) -> tuple[list[tuple[float, str, int, float]], int]:
    """(end wall time, node, operations, ms) of every slow synced batch the nodes logged, and
    how many more they left out of the log (at most one line a second per node)."""
    out, unlogged = [], 0
    for path in log_paths:
        with open(path, errors="replace") as f:
            for line in f:
                m = _SLOW.match(line)
                if m:
                    t = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    out.append((t, m.group(2), int(m.group(3)), float(m.group(4))))
                    unlogged += int(m.group(5) or 0)
    return sorted(out), unlogged


def leveldb_events(node_dirs: dict[str, str]) -> list[tuple[float, str, str]]:
    """(wall time, node, event) of each node's LevelDB LOG lines (flushes, compactions)."""
    out = []
    for node, d in node_dirs.items():
        for path in glob.glob(os.path.join(d, "db", "LOG*")):
            with open(path, errors="replace") as f:
                for line in f:
                    m = _LDB.match(line)
                    if m:
                        t = dt.datetime.strptime(m.group(1), "%Y/%m/%d-%H:%M:%S.%f").timestamp()
                        out.append((t, node, m.group(2)[:90]))
    return sorted(out)


def window(rows: list[tuple], t0: float, t1: float) -> Optional[dict]:
    """What the samples say about [t0, t1]: max Dirty/Writeback MB, MB written to the disk,
    max requests in flight, MB written by each watched process group."""
    inside = [r for r in rows if t0 <= r[0] <= t1]
    before = [r for r in rows if r[0] < t0]
    if not inside or not before:
        return None
    a, b = before[-1], inside[-1]
    return {"dirty": max(r[1] for r in inside) / 1024, "wb": max(r[2] for r in inside) / 1024,
            "disk_mb": (b[4] - a[4]) * 512 / 2**20, "writes": b[3] - a[3],
            "inflight": max(r[5] for r in inside),
            "io": {k: (b[6][k] - a[6].get(k, 0)) / 2**20 for k in b[6]}}


def _fmt(w: dict) -> str:
    io = " ".join(f"{k} {v:.1f}" for k, v in sorted(w["io"].items()))
    return (f"dirty<= {w['dirty']:.1f} MB writeback<= {w['wb']:.1f} MB disk {w['disk_mb']:.1f} MB "
            f"in {w['writes']} writes, in flight<= {w['inflight']}; written MB: {io}")


def _sync_totals(url: str) -> tuple[float, float, float]:
    """(synced batches, seconds in them, batches of 50 ms or less) so far, from a node's
    /metrics."""
    import httpx
    count = total = fast = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("dynamopy_storage_sync_seconds_count"):
            count += float(line.rpartition(" ")[2])
        elif line.startswith("dynamopy_storage_sync_seconds_sum"):
            total += float(line.rpartition(" ")[2])
        elif line.startswith('dynamopy_storage_sync_seconds_bucket{le="0.05"}'):
            fast += float(line.rpartition(" ")[2])
    return count, total, fast


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dynamopy.benchlib.sync_stalls",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=positive_int, default=4, help="dynamopy runs (default 4)")
    p.add_argument("--seconds", type=whole_seconds, default=10.0, help="s per run (default 10)")
    p.add_argument("--etcd", action="store_true",
                   help="start etcd too and drive it between dynamopy runs, as --vs-etcd does")
    p.add_argument("--keys", type=positive_int, default=2000)
    p.add_argument("--value-bytes", type=positive_int, default=1024)
    p.add_argument("--sample-ms", type=positive_float, default=50.0)
    p.add_argument("--serve-args", default="", help="extra `dynamopy serve` flags, one string")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, LOGs)")
    args = p.parse_args(argv)
    why = ensure_tools()
    if why is not None:
        print(f"sync_stalls {why}")
        return 0
    work = tempfile.mkdtemp(prefix="dynamopy-sync-stalls-")
    cluster = LocalCluster(3, find_base_port(18101, 3), data_dir=os.path.join(work, "dynamopy"),
                           extra_args=tuple(args.serve_args.split()))
    etcd = EtcdCluster(3, os.path.join(work, "etcd")) if args.etcd else None
    prefix = "bench-"
    sampler = None
    results = []
    try:
        if etcd is not None:
            os.makedirs(etcd.data_dir, exist_ok=True)
            etcd.start()
        cluster.start()
        preload_dynamopy(cluster.urls[0], args.keys, args.value_bytes, prefix)
        if etcd is not None:
            preload_etcd(etcd.urls[0], args.keys, args.value_bytes, prefix)
        pids = {f"n{i + 1}": [pid] for i, pid in enumerate(cluster.pids)}
        if etcd is not None:
            pids["etcd"] = [pr.pid for pr in etcd.procs]
        sampler = Sampler(_device_of(work), pids, args.sample_ms / 1000)
        sampler.start()
        ports = [int(u.rsplit(":", 1)[1]) for u in cluster.urls]
        script = lua_dynamopy(ports, True, 2, 2, args.keys, args.value_bytes, prefix)
        for i in range(1, args.runs + 1):
            if etcd is not None:
                run_wrk(etcd.urls[0], lua_etcd(etcd.client_ports, True, args.keys,
                                               args.value_bytes, prefix),
                        args.seconds, WRK_ALL, work)
            t0 = time.time()
            before = [_sync_totals(u) for u in cluster.urls]
            run = parse_wrk(run_wrk(cluster.urls[0], script, args.seconds, WRK_ALL, work),
                            "dynamopy", "all", i)
            after = [_sync_totals(u) for u in cluster.urls]
            n = sum(a[0] - b[0] for a, b in zip(after, before))
            slow_n = n - sum(a[2] - b[2] for a, b in zip(after, before))
            run.tail = (f"{n / args.seconds / 3:.0f} synced batches/s per node, mean "
                        f"{1000 * sum(a[1] - b[1] for a, b in zip(after, before)) / max(1, n):.2f}"
                        f" ms, {slow_n:.0f} over 50 ms (all nodes, /metrics)")
            results.append((t0, time.time(), run))
            print(f"[sync-stalls] run {i}: {run.ops:.0f} ops/s p50 {run.p50_ms:.1f} ms "
                  f"p99 {run.p99_ms:.1f} ms; {run.tail}", file=sys.stderr, flush=True)
    finally:
        if sampler is not None:
            sampler.stop_event.set()
            sampler.join()
        if etcd is not None:
            etcd.stop()
        cluster.stop(keep_data=True)
    rows = sampler.rows if sampler else []
    slow, unlogged = slow_syncs([cluster.log_path(i) for i in range(3)])
    events = leveldb_events({f"n{i + 1}": os.path.join(cluster.data_dir, f"n{i + 1}")
                             for i in range(3)})
    span = (results[0][0], results[-1][1]) if results else (0, 0)
    print(f"{args.runs} runs of {args.seconds:g} s, wrk {' '.join(WRK_ALL)} R=2,W=2"
          f"{' alternating with etcd' if args.etcd else ''}; serve args {args.serve_args!r}")
    for t0, t1, run in results:
        n = sum(1 for s in slow if t0 <= s[0] <= t1)
        print(f"  run {run.round}: {run.ops:.0f} ops/s p50 {run.p50_ms:.1f} ms p99 "
              f"{run.p99_ms:.1f} ms, slow synced batches logged {n}; {run.tail}")
    during = [s for s in slow if span[0] <= s[0] <= span[1]]
    print(f"slow synced batches during the runs: {len(during)}"
          f" (>= 100 ms: {sum(1 for s in during if s[3] >= 100)}); left out of the logs (at "
          f"most one line a second per node): {unlogged}")
    together = [s for s in during
                if any(o[1] != s[1] and abs(o[0] - s[0]) <= 0.3 for o in during)]
    print(f"  of which on two or more nodes within 0.3 s of each other (a quorum of 2 of 3 "
          f"waits): {len(together)}")
    for t, node, ops, ms in during:
        w = window(rows, t - ms / 1000 - 1.0, t)
        near = [e for e in events if t - ms / 1000 - 2.0 <= e[0] <= t]
        print(f"  {dt.datetime.fromtimestamp(t).strftime('%H:%M:%S.%f')[:-3]} {node} "
              f"{ms:6.1f} ms ({ops} ops): {_fmt(w) if w else 'no samples'}")
        for e in near:
            print(f"      leveldb {e[1]} {dt.datetime.fromtimestamp(e[0]).strftime('%H:%M:%S.%f')[:-3]}"
                  f" {e[2]}")
    # Seconds of the runs with no slow sync ending in them, for contrast.
    quiet = []
    for t0, t1, _run in results:
        s = t0 + 1.0
        while s + 1.0 <= t1:
            if not any(s <= x[0] <= s + 1.0 for x in slow):
                w = window(rows, s, s + 1.0)
                if w:
                    quiet.append(w)
            s += 1.0
    if quiet:
        avg = {k: sum(w[k] for w in quiet) / len(quiet)
               for k in ("dirty", "wb", "disk_mb", "writes", "inflight")}
        avg["writes"] = round(avg["writes"])
        avg["io"] = {k: sum(w["io"].get(k, 0) for w in quiet) / len(quiet)
                     for k in quiet[0]["io"]}
        print(f"an average second without a slow sync ({len(quiet)} s): {_fmt(avg)}")
    kinds: dict[str, int] = {}
    for t, node, text in events:
        if span[0] <= t <= span[1]:
            key = ("flush" if text.startswith("Level-0 table") and "started" in text else
                   "compaction" if text.startswith("Compacting") else None)
            if key:
                kinds[f"{node} {key}"] = kinds.get(f"{node} {key}", 0) + 1
    print("leveldb during the runs: " + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
                                           or "no flush or compaction"))
    if args.keep:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
