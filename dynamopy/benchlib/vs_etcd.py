"""dynamopy against a 3-member etcd 3.4 on the same machine: ``python -m dynamopy.bench --vs-etcd``
(or ``python -m dynamopy.benchlib.vs_etcd``).

What it runs
    A 3-node dynamopy cluster (``benchlib.cluster.LocalCluster``) and a 3-member etcd 3.4
    (Debian's ``etcd-server``; reads and writes through its JSON gateway ``/v3/kv/range`` and
    ``/v3/kv/put``, reads linearizable, etcd's default), both on 127.0.0.1 with free ports,
    both started here and stopped by PID at the end (also on error or Ctrl-C). Each store gets
    ``--keys`` (2,000) keys of ``--value-bytes`` (1 KiB) preloaded, then the same wrk driver
    (``-t1 -c64`` and a Lua script: 50/50 get/put of those keys, uniformly at random, 1 KiB
    values, every request built once up front) drives it

    * through ONE endpoint (node 1 / member 1, as a client with one address does), and
    * spread over ALL endpoints (``-t3 -c63``: one wrk thread, 21 connections, per endpoint),

    dynamopy at R=2,W=2 and at R=1,W=1 (``?r=``/``?w=`` on every request). The runs alternate
    stores (etcd, dynamopy R=2,W=2, dynamopy R=1,W=1, then again: A B A B) for ``--rounds``
    rounds, each a ``--warmup`` s unrecorded wrk run then a ``--seconds`` s measured one.

    ``--together`` drives etcd and each dynamopy setting at the same time instead (etcd and its
    wrk pinned to core 0, dynamopy and its wrk to core 1; ``benchlib/pinning.py``): run one
    after the other, the two stores meet different moments of the disk, and this VM's disk
    stalls every ``fdatasync`` for up to ~1.3 s now and then, which sets the p99 of whichever
    run it falls in. Side by side they meet the same stalls, each with half the machine.

What it prints
    One row per measured run: ok (2xx) ops/s, p50/p99/max latency in ms (wrk's own histogram
    over every request of the run), non-2xx answers and socket errors, and the CPU time the
    store's processes used per 2xx answer (all of them, and the endpoint process alone: on a
    busy machine this moves much less than ops/s); then per endpoint mode
    and store the range over rounds, and dynamopy's ops/s over etcd's in the same round (the
    issue's targets: >= 1.0x through one endpoint and >= 1.5x spread, p99 no higher than etcd's,
    zero non-2xx).

If ``etcd`` or ``wrk`` is missing it runs ``apt-get install -y etcd-server wrk`` when it can
(root, apt-get present), else it prints why it skips and exits 0 without measuring.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Optional

from dynamopy.benchlib import pinning
from dynamopy.benchlib.argtypes import (existing_dir, nonnegative_float, positive_int, quorum_pairs,
                                         whole_seconds)
from dynamopy.benchlib.cluster import LocalCluster
from dynamopy.launch import find_base_port, port_problem, stop_processes
from dynamopy.benchlib.procstat import main_thread_cpu_s, process_cpu_s, process_written_bytes
from dynamopy.benchlib.vs_etcd_report import (ETCD_STORE, Run, build_table, etcd_health_counts,
                                              etcd_tail_line, health_counts, parse_wrk,
                                              process_health, row_label, tail_line)

WRK_ONE = ("-t1", "-c64")
WRK_ALL = ("-t3", "-c63")

# ---- the wrk Lua scripts (pure) ------------------------------------------------------------

_LUA_COMMON = """
local PORTS = {%(ports)s}
local SPREAD = %(spread)s
local addrs, next_addr = nil, 0
function setup(thread)
  if SPREAD then
    if addrs == nil then
      addrs = {}
      for _, p in ipairs(PORTS) do
        for _, a in ipairs(wrk.lookup("127.0.0.1", tostring(p))) do table.insert(addrs, a) end
      end
    end
    thread.addr = addrs[(next_addr %% #addrs) + 1]
    next_addr = next_addr + 1
  end
end
local reqs = {}
function init(args)
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6) + #reqs)
  build()
end
function request()
  return reqs[math.random(#reqs)]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%%d duration_us=%%d p50_us=%%d p99_us=%%d max_us=%%d non2xx=%%d " ..
    "connect=%%d read=%%d write=%%d timeout=%%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
"""


def _lua_head(ports: list[int], spread: bool) -> str:
    return _LUA_COMMON % {"ports": ", ".join(str(p) for p in ports),
                          "spread": "true" if spread else "false"}


def lua_dynamopy(ports: list[int], spread: bool, r: int, w: int, keys: int,
                 value_bytes: int, prefix: str) -> str:
    """wrk script: GET ``/kv/<prefix><i>?r=R`` or PUT ``?w=W`` with a ``value_bytes`` body."""
    return _lua_head(ports, spread) + f"""
function build()
  local value = string.rep("v", {value_bytes})
  local hdr = {{["Content-Type"] = "application/octet-stream"}}
  for i = 0, {keys - 1} do
    table.insert(reqs, wrk.format("GET", "/kv/{prefix}" .. i .. "?r={r}"))
    table.insert(reqs, wrk.format("PUT", "/kv/{prefix}" .. i .. "?w={w}", hdr, value))
  end
end
"""


def etcd_key(prefix: str, i: int) -> str:
    return base64.b64encode(f"{prefix}{i}".encode()).decode()


def lua_etcd(ports: list[int], spread: bool, keys: int, value_bytes: int, prefix: str) -> str:
    """wrk script: POST ``/v3/kv/range`` (linearizable) or ``/v3/kv/put``, JSON, base64."""
    value = base64.b64encode(b"v" * value_bytes).decode()
    names = ",".join(f'"{etcd_key(prefix, i)}"' for i in range(keys))
    return _lua_head(ports, spread) + f"""
function build()
  local names = {{{names}}}
  local hdr = {{["Content-Type"] = "application/json"}}
  for _, k in ipairs(names) do
    table.insert(reqs, wrk.format("POST", "/v3/kv/range", hdr, '{{"key":"' .. k .. '"}}'))
    table.insert(reqs, wrk.format("POST", "/v3/kv/put", hdr,
                                  '{{"key":"' .. k .. '","value":"{value}"}}'))
  end
end
"""


# ---- tail evidence from a running store ------------------------------------------------

def _health(url: str, etcd: bool = False) -> Optional[dict[str, float]]:
    try:
        import httpx
        text = httpx.get(f"{url}/metrics", timeout=5).text
        return etcd_health_counts(text) if etcd else health_counts(text)
    except Exception:  # noqa: BLE001 - a report figure, not a reason to fail the run
        return None


# ---- tools and processes -------------------------------------------------------------------

def ensure_tools() -> Optional[str]:
    """None when etcd and wrk are there (installing them if we can), else why we skip."""
    missing = [t for t in ("etcd", "wrk") if shutil.which(t) is None]
    if not missing:
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return (f"skipped: {', '.join(missing)} not installed and cannot apt-get install "
                f"(need root and apt-get): apt-get install -y etcd-server wrk")
    _log(f"installing etcd-server and wrk (missing: {', '.join(missing)})")
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "etcd-server", "wrk"]):
            subprocess.run(cmd, check=True, timeout=600, stdout=subprocess.DEVNULL,
                           stderr=subprocess.STDOUT, env={**os.environ,
                                                          "DEBIAN_FRONTEND": "noninteractive"})
    except (subprocess.SubprocessError, OSError) as e:
        return f"skipped: apt-get install -y etcd-server wrk failed ({e})"
    still = [t for t in ("etcd", "wrk") if shutil.which(t) is None]
    return f"skipped: {', '.join(still)} still missing after apt-get" if still else None


def _free_block(count: int, start: int) -> list[int]:
    port = start
    while port < 60000:
        ports = list(range(port, port + count))
        if all(port_problem(p) is None for p in ports):
            return ports
        port += 10
    raise RuntimeError(f"no {count} free ports from {start}")


class EtcdCluster:
    """Three etcd members on 127.0.0.1, each its own process and session, stopped by PID."""

    def __init__(self, members: int, data_dir: str, start_port: int = 23790) -> None:
        self.data_dir = data_dir
        self.client_ports = _free_block(members, start_port)
        self.peer_ports = _free_block(members, self.client_ports[-1] + 100)
        self.urls = [f"http://127.0.0.1:{p}" for p in self.client_ports]
        self.procs: list[subprocess.Popen] = []

    def start(self, timeout_s: float = 30.0) -> None:
        names = [f"m{i + 1}" for i in range(len(self.client_ports))]
        initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(names, self.peer_ports))
        for n, cport, pport in zip(names, self.client_ports, self.peer_ports):
            cmd = ["etcd", "--name", n, "--data-dir", os.path.join(self.data_dir, n),
                   "--listen-client-urls", f"http://127.0.0.1:{cport}",
                   "--advertise-client-urls", f"http://127.0.0.1:{cport}",
                   "--listen-peer-urls", f"http://127.0.0.1:{pport}",
                   "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                   "--initial-cluster", initial, "--initial-cluster-state", "new",
                   "--initial-cluster-token", f"vs-etcd-{os.getpid()}",
                   "--logger", "zap", "--log-level", "error"]
            with open(os.path.join(self.data_dir, f"{n}.log"), "ab") as log:
                self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL,
                                                   start_new_session=True))
        import httpx
        deadline = time.monotonic() + timeout_s
        pending = set(self.urls)
        while pending:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"etcd pid {p.pid} exited ({p.returncode}); logs in "
                                       f"{self.data_dir}")
            for url in list(pending):
                try:
                    if httpx.get(f"{url}/health", timeout=1.0).json().get("health") == "true":
                        pending.discard(url)
                except (httpx.HTTPError, ValueError):
                    pass
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"etcd not healthy after {timeout_s:.0f}s: {sorted(pending)}")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_processes(self.procs, timeout_s=10)


async def _preload(requests: list[tuple[str, str, bytes, dict]], concurrency: int = 32) -> None:
    """Send every (method, url, body, headers) once; any non-2xx is an error."""
    import asyncio

    import aiohttp
    queue = list(reversed(requests))
    async with aiohttp.ClientSession() as session:
        async def worker():
            while queue:
                method, url, body, headers = queue.pop()
                async with session.request(method, url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status // 100 != 2:
                        raise RuntimeError(f"preload {method} {url}: {resp.status}")
        await asyncio.gather(*(worker() for _ in range(concurrency)))


def preload_dynamopy(url: str, keys: int, value_bytes: int, prefix: str) -> None:
    import asyncio
    value = b"v" * value_bytes
    reqs = [("PUT", f"{url}/kv/{prefix}{i}?w=3", value,
             {"Content-Type": "application/octet-stream"}) for i in range(keys)]
    asyncio.run(asyncio.wait_for(_preload(reqs), 120))


def preload_etcd(url: str, keys: int, value_bytes: int, prefix: str) -> None:
    import asyncio
    b64 = base64.b64encode(b"v" * value_bytes).decode()
    reqs = [("POST", f"{url}/v3/kv/put",
             json.dumps({"key": etcd_key(prefix, i), "value": b64}).encode(),
             {"Content-Type": "application/json"}) for i in range(keys)]
    asyncio.run(asyncio.wait_for(_preload(reqs), 120))


def run_wrk(url: str, script: str, seconds: float, conns: tuple[str, str], work_dir: str,
            timeout_s: float = 10.0) -> str:
    """One wrk run; returns its stdout. Own session, stopped by PID if it overruns."""
    path = os.path.join(work_dir, "drive.lua")
    with open(path, "w") as f:
        f.write(script)
    cmd = ["wrk", *conns, "-d", f"{max(1, round(seconds))}s", "--timeout", f"{timeout_s:g}s",
           "-s", path, url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=seconds + timeout_s + 30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        raise RuntimeError(f"wrk overran: {out[-400:]}")
    return out


def _log(msg: str) -> None:
    print(f"[vs-etcd] {msg}", file=sys.stderr, flush=True)


STORES = ("etcd", "dynamopy", "baseline")


def _stores(text: str) -> list[str]:
    """``--stores``: a comma-separated list of distinct names from ``STORES``."""
    names = [s.strip() for s in text.split(",")]
    if not all(n in STORES for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"must be distinct names from {', '.join(STORES)}, got {text!r}")
    return names


def _args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dynamopy.benchlib.vs_etcd",
                                description="dynamopy vs a 3-member etcd 3.4 under wrk",
                                epilog="See the module docstring for what each number means.")
    p.add_argument("--seconds", type=whole_seconds, default=10.0,
                   help="measured s per run (default 10)")
    p.add_argument("--warmup", type=nonnegative_float, default=2.0,
                   help="unrecorded s before each run")
    p.add_argument("--rounds", type=positive_int, default=2, help="A B A B rounds (default 2)")
    p.add_argument("--keys", type=positive_int, default=2000)
    p.add_argument("--value-bytes", type=positive_int, default=1024)
    p.add_argument("--endpoints", choices=("one", "all", "both"), default="both")
    p.add_argument("--quorums", type=quorum_pairs, default="2/2,1/1",
                   help="dynamopy R/W pairs (default 2/2,1/1)")
    p.add_argument("--serve-args", default="", help="extra `dynamopy serve` flags, one string")
    p.add_argument("--stores", type=_stores, default="etcd,dynamopy",
                   help="which to drive, in this order each round: etcd, dynamopy, baseline "
                        "(default etcd,dynamopy)")
    p.add_argument("--baseline-src", metavar="DIR",
                   help="with --stores ...,baseline: a checkout of an older dynamopy; a second "
                        "3-node cluster runs its code (PYTHONPATH=DIR) for a before/after A B A B")
    p.add_argument("--hold", type=nonnegative_float, default=0.0,
                   help="after preloading, wait this many s before measuring (to attach a "
                        "profiler to the printed PIDs)")
    p.add_argument("--work-dir", metavar="DIR", type=existing_dir,
                   help="make the stores' data folder under DIR (default: the system temp "
                        "folder). On a tmpfs such as /dev/shm, fsync costs nothing and the "
                        "disk's stalls are out of the picture for both stores: not durable, "
                        "a way to see the software's own tail")
    p.add_argument("--together", action="store_true",
                   help="drive etcd and each dynamopy setting at the same time instead of one "
                        "after the other, etcd's members and wrk pinned to core 0, dynamopy's "
                        "nodes and wrk to core 1: both meet the same disk stalls at the same "
                        "moments, each with one core (needs 2 cores; stores etcd,dynamopy)")
    p.add_argument("--json", metavar="FILE", help="also write every run as JSON to FILE")
    p.add_argument("--timeline", metavar="FILE",
                   help="append a per-second line per dynamopy node to FILE: phase, requests, "
                        "loop and other CPU, background counters (benchlib/timeline.py; its "
                        "scrapes cost the nodes 1-3%% CPU)")
    return p.parse_args(argv)


def _phase(timeline, phase: str) -> None:
    if timeline is not None:
        timeline.phase = phase


class SourceCluster(LocalCluster):
    """A LocalCluster whose nodes run the dynamopy found in ``src`` (PYTHONPATH)."""

    def __init__(self, src: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.src = os.path.abspath(src)
        self.launch.env["PYTHONPATH"] = self.src  # every node the launcher starts
        # ``python -m dynamopy`` puts the working directory first on sys.path: run from a
        # checkout (the usual case) the "baseline" nodes imported the checkout's code, not
        # ``src``'s. PYTHONSAFEPATH (Python 3.11+, like ``-P``) leaves it out.
        self.launch.env["PYTHONSAFEPATH"] = "1"


@dataclass
class Drive:
    """One store as a wrk run drives it: its label, the URL wrk connects to (spread scripts
    pick their own addresses), the Lua script, the store's PIDs and node URLs (for /metrics)."""
    store: str
    url: str
    script: str
    pids: list
    node_urls: list


class _Sample:
    """A store's counters at the start of a measured run; ``finish`` makes the run's row."""

    def __init__(self, drive: Drive) -> None:
        self.drive, self.etcd = drive, drive.store == ETCD_STORE
        self.health0 = [_health(u, self.etcd) for u in drive.node_urls]
        self.loop0 = sum(main_thread_cpu_s(p) or 0.0 for p in drive.pids)
        self.cpu0 = [process_cpu_s(p) or 0.0 for p in drive.pids]
        self.disk0 = [process_written_bytes(p) or 0 for p in drive.pids]

    def finish(self, wrk_out: str, mode: str, round_: int) -> Run:
        d = self.drive
        cpu = [(process_cpu_s(p) or 0.0) - c0 for p, c0 in zip(d.pids, self.cpu0)]
        loop = sum(main_thread_cpu_s(p) or 0.0 for p in d.pids) - self.loop0
        disk = sum((process_written_bytes(p) or 0) - d0 for p, d0 in zip(d.pids, self.disk0))
        run = parse_wrk(wrk_out, d.store, mode, round_)
        ok = max(1, run.requests - run.non2xx)
        written = f"disk written {disk / 1024 / ok:.1f} KiB/op; "
        if self.etcd:
            run.tail = written + etcd_tail_line(self.health0, [_health(u, True)
                                                               for u in d.node_urls])
        else:
            run.tail = (f"loop threads {1000 * loop / ok:.3f} ms/op, other threads "
                        f"{1000 * (sum(cpu) - loop) / ok:.3f}; " + written
                        + tail_line(self.health0, [_health(u) for u in d.node_urls]))
        run.cpu_ms_per_op = 1000 * sum(cpu) / ok
        run.first_cpu_ms_per_op = 1000 * cpu[0] / ok
        _log(f"round {round_} {mode:<3} {d.store:<18} {run.ops:7.0f} ops/s "
             f"p99 {run.p99_ms:6.1f} ms non-2xx {run.non2xx}")
        return run


def _together(etcd_drive: Drive, drive: Drive, mode: str, round_: int, args, conns,
              work: str, timeline) -> list[Run]:
    """``--together``: etcd and one dynamopy quorum setting driven at the same time, each by
    its own wrk pinned to the store's core (``pinning.TOGETHER_CPUS``), warm-up included."""
    pair = (etcd_drive, drive)
    dirs = [os.path.join(work, f"w{i}") for i in range(len(pair))]
    for d in dirs:
        os.makedirs(d, exist_ok=True)

    def both(seconds: float) -> list[str]:
        return pinning.run_pinned([(cpu, run_wrk, (d.url, d.script, seconds, conns, wd))
                                   for cpu, d, wd in zip(pinning.TOGETHER_CPUS, pair, dirs)])

    _phase(timeline, f"warm-up {round_} {mode} {drive.store} beside etcd")
    if args.warmup > 0:
        both(args.warmup)
    samples = [_Sample(d) for d in pair]
    _phase(timeline, f"round {round_} {mode} {drive.store} beside etcd")
    outs = both(args.seconds)
    _phase(timeline, "between runs")
    runs = [s.finish(o, mode, round_) for s, o in zip(samples, outs)]
    runs[0].beside = drive.store
    return runs


def main(argv: Optional[list[str]] = None) -> int:
    args = _args(argv)
    quorums = args.quorums
    modes = ["one", "all"] if args.endpoints == "both" else [args.endpoints]
    prefix = "bench-"
    stores = args.stores
    if "baseline" in stores and not args.baseline_src:
        print("--stores baseline needs --baseline-src DIR", file=sys.stderr)
        return 2
    if args.together and stores != ["etcd", "dynamopy"]:
        print("--together drives etcd and dynamopy side by side: leave --stores out (or "
              "give --stores etcd,dynamopy)", file=sys.stderr)
        return 2
    if args.together and not set(pinning.TOGETHER_CPUS) <= pinning.usable_cpus():
        print(f"--together pins the stores to cores {pinning.TOGETHER_CPUS}; this process may "
              f"use only {sorted(pinning.usable_cpus())}", file=sys.stderr)
        return 2
    why = ensure_tools()
    if why is not None:
        print(f"vs-etcd {why}")
        return 0
    work = tempfile.mkdtemp(prefix="dynamopy-vs-etcd-", dir=args.work_dir)
    clusters: dict[str, LocalCluster] = {}
    etcd: Optional[EtcdCluster] = None
    runs: list[Run] = []
    health: list[str] = []
    problems, examples = 0, []
    timeline = None
    _log(f"data under {work}")
    try:  # (from here on, whatever fails, the stores are stopped and the folder removed)
        base = 18001
        for name in ("dynamopy", "baseline"):
            if name in stores:
                port = find_base_port(base, 3)
                kw = dict(data_dir=os.path.join(work, name),
                          extra_args=tuple(args.serve_args.split()))
                clusters[name] = (SourceCluster(args.baseline_src, 3, port, **kw)
                                  if name == "baseline" else LocalCluster(3, port, **kw))
                os.makedirs(clusters[name].data_dir, exist_ok=True)
                base = port + 10
        if "etcd" in stores:
            etcd = EtcdCluster(3, os.path.join(work, "etcd"))
        if etcd is not None:
            os.makedirs(etcd.data_dir, exist_ok=True)
            _log(f"starting etcd on {etcd.urls}")
            etcd.start()
        for name, c in clusters.items():
            _log(f"starting {name} on {c.urls}")
            c.start()
        if args.timeline and "dynamopy" in clusters:
            from dynamopy.benchlib.timeline import Timeline
            timeline = Timeline(args.timeline, clusters["dynamopy"].urls, clusters["dynamopy"].pids)
            timeline.start()
        _phase(timeline, "preload")
        _log(f"preloading {args.keys} keys of {args.value_bytes} bytes into each")
        for c in clusters.values():
            preload_dynamopy(c.urls[0], args.keys, args.value_bytes, prefix)
        if etcd is not None:
            preload_etcd(etcd.urls[0], args.keys, args.value_bytes, prefix)
        if args.together:
            pinning.pin_processes([p.pid for p in etcd.procs], pinning.TOGETHER_CPUS[0])
            pinning.pin_processes(clusters["dynamopy"].pids, pinning.TOGETHER_CPUS[1])
            _log(f"etcd pinned to core {pinning.TOGETHER_CPUS[0]}, dynamopy to core "
                 f"{pinning.TOGETHER_CPUS[1]}; each store driven beside the other")
        if args.hold > 0:
            _log(f"holding {args.hold:g} s; node PIDs: "
                 + ", ".join(f"{n} {c.pids}" for n, c in clusters.items()))
            _phase(timeline, "hold")
            time.sleep(args.hold)
        for round_ in range(1, args.rounds + 1):
            for mode in modes:
                spread = mode == "all"
                conns = WRK_ALL if spread else WRK_ONE
                drives = []
                for name in stores:
                    if name == "etcd":
                        drives.append(Drive(ETCD_STORE, etcd.urls[0], lua_etcd(
                            etcd.client_ports, spread, args.keys, args.value_bytes, prefix),
                            [p.pid for p in etcd.procs], etcd.urls))
                        continue
                    c = clusters[name]
                    ports = [int(u.rsplit(":", 1)[1]) for u in c.urls]
                    label = "dynamopy" if name == "dynamopy" else "baseline"
                    drives += [Drive(f"{label} R={r},W={w}", c.urls[0], lua_dynamopy(
                        ports, spread, r, w, args.keys, args.value_bytes, prefix), c.pids,
                        c.urls) for r, w in quorums]
                if args.together:
                    etcd_drive = drives[0]
                    for drive in drives[1:]:
                        runs += _together(etcd_drive, drive, mode, round_, args, conns, work,
                                          timeline)
                    continue
                for drive in drives:
                    _phase(timeline, f"warm-up {round_} {mode} {drive.store}")
                    if args.warmup > 0:
                        run_wrk(drive.url, drive.script, args.warmup, conns, work)
                    sample = _Sample(drive)
                    _phase(timeline, f"round {round_} {mode} {drive.store}")
                    out = run_wrk(drive.url, drive.script, args.seconds, conns, work)
                    _phase(timeline, "between runs")
                    runs.append(sample.finish(out, mode, round_))
        for name, c in clusters.items():
            try:
                import httpx
                line = process_health(httpx.get(f"{c.urls[0]}/metrics", timeout=5).text)
            except Exception as e:  # noqa: BLE001 - a report line, not a reason to fail
                line = f"/metrics unreadable ({e!r})"
            if line:
                health.append(f"{name} node 1 over the whole run: {line}")
    except KeyboardInterrupt:
        _log("interrupted; stopping the stores")
    finally:
        if timeline is not None:
            timeline.stop()
        if etcd is not None:
            etcd.stop()
        for c in clusters.values():
            c.stop(keep_data=True)
            n, ex = c.log_problems()
            problems, examples = problems + n, examples + ex
        shutil.rmtree(work, ignore_errors=True)
    if not runs:
        return 1
    print(f"wrk {' '.join(WRK_ONE)} (one endpoint) / {' '.join(WRK_ALL)} (all endpoints), "
          f"{args.keys} keys, {args.value_bytes} B values, 50/50 get/put, "
          f"{args.seconds:g} s per run after {args.warmup:g} s warm-up, {os.cpu_count()} cores")
    print("p50/p99/max are wrk's, after its coordinated-omission correction: an answer held "
          "L ms adds samples at L - I, L - 2I, ... (I: mean time per request of a "
          "connection), the requests it would have sent meanwhile; a disk stall that holds "
          "every connection for S ms puts the p99 near S minus 1% of the run. The answers' "
          "own tail: answered>200ms per node below (docs/perf.md, wave 2, session 8)")
    if args.together:
        print("--together: etcd and each dynamopy setting driven at the same time, each store "
              f"and its wrk pinned to one core (etcd {pinning.TOGETHER_CPUS[0]}, dynamopy "
              f"{pinning.TOGETHER_CPUS[1]}): every pair of rows met the same disk moments; "
              "x etcd compares a row with the etcd row driven beside it")
    print(build_table(runs))
    for line in health:
        print(line)
    tails = [r for r in runs if r.tail]
    if tails:
        print("in each run (dynamopy: CPU per answer by thread, then per node; etcd: per "
              "member, its own slow syncs; the evidence next to the p99):")
        for r in tails:
            print(f"  round {r.round} {r.endpoints:<3} {row_label(r):<18} p99 {r.p99_ms:6.1f} ms: "
                  f"{r.tail}")
    if problems:
        print(f"dynamopy node logs: {problems} warning/error lines, e.g. {examples[:3]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in runs], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
