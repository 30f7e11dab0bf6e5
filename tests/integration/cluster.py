"""A harness that runs real `dynamopy serve` processes on 127.0.0.1 for integration tests.

Processes are started, awaited and stopped by the shared launcher (``dynamopy.launch``): own
session, stopped by PID (SIGCONT, SIGTERM, then SIGKILL). Every wait is bounded and retries
only "not yet" answers (``not_yet``). Ports are taken from a per-run range and checked free.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import time
from typing import Optional

import httpx

from dynamopy.client import Client, DynamoError
from dynamopy.launch import PEER_OFFSET, Nodes, block_free, ephemeral_range, log_tail

# Test ports lie below the kernel's ephemeral range: a port inside it can be taken as the source
# port of any outgoing connection while a killed node is down, and the node's restart then fails
# to bind ("address already in use"; seen in CI on 2026-12-01).
PORTS_LOW = 10000
PORTS_HIGH = min(ephemeral_range()[0], 65536) - PEER_OFFSET   # exclusive, for base + i
# The range is cut into windows of WINDOW base ports; a window's peer ports (base + PEER_OFFSET)
# lie in a stretch no other window's ports touch. Under pytest-xdist each worker takes every
# n-th window, so two workers never hand out the same port: a port of a node one worker killed
# (and will restart) is never seen free and taken by the other.
WINDOW = 100


def _windows(worker: str, workers: int) -> list[int]:
    """The first base port of each window of xdist worker ``worker`` ("gw<k>") of ``workers``."""
    starts = [block + k * WINDOW
              for block in range(PORTS_LOW, PORTS_HIGH - PEER_OFFSET + 1, 2 * PEER_OFFSET)
              for k in range(PEER_OFFSET // WINDOW)]
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    assert workers <= len(starts), f"{workers} test workers; the test ports have room for {len(starts)}"
    return [s for j, s in enumerate(starts) if j % workers == index % workers]


_WINDOWS = _windows(os.environ.get("PYTEST_XDIST_WORKER", "gw0"),
                    int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
# where the next allocation looks: (window index, offset in it); a per-process start keeps two
# runs side by side (e.g. two checkouts) mostly apart too
_next_port = [(os.getpid() * 7) % len(_WINDOWS), 0]


def allocate_ports(count: int) -> int:
    """A base port such that base..base+count-1 and base+PEER_OFFSET.. are free, below the
    ephemeral range and in this test worker's windows; successive calls move on through the
    windows, so a test never reuses the ports of the one before."""
    assert count + 3 <= WINDOW and len(_WINDOWS) * WINDOW > 10 * count, \
        "the test ports leave no room for this many nodes"
    while True:
        window, offset = _next_port
        if offset + count > WINDOW:
            _next_port[:] = [(window + 1) % len(_WINDOWS), 0]
            continue
        _next_port[1] = offset + count + 3
        base = _WINDOWS[window] + offset
        if block_free(base, count):
            return base


def not_yet(e: Exception) -> bool:
    """Whether ``e`` means "the cluster cannot answer this yet": a transport error (refused,
    reset, timed out) or a 503, through httpx or the client library."""
    if isinstance(e, httpx.HTTPStatusError):
        return e.response.status_code == 503
    if isinstance(e, httpx.HTTPError):
        return True
    return isinstance(e, DynamoError) and e.status in (0, 503)


def wait_until(predicate, timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 0.1 s until it returns true (see ``LocalCluster.wait_until``);
    TimeoutError after ``timeout_s``, naming ``what`` and the last "not yet" error."""
    deadline = time.monotonic() + timeout_s
    last: Optional[Exception] = None
    while True:
        try:
            if predicate():
                return
        except (httpx.HTTPError, DynamoError) as e:
            if not not_yet(e):
                raise
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached after {timeout_s}s"
                               + (f" (last error: {last!r})" if last else ""))
        time.sleep(0.1)


PARALLEL = 8  # requests in flight: the nodes serve them concurrently and share their syncs


def in_parallel(c, via: int, keys: list[str], fn) -> dict:
    """``fn(client, key)`` for every key, PARALLEL at a time through node ``via``; the
    results keyed and ordered as ``keys``."""
    def run(chunk: list[str]) -> dict:
        with c.client(via, timeout_s=10) as cl:
            return {k: fn(cl, k) for k in chunk}
    out: dict = {}
    with cf.ThreadPoolExecutor(PARALLEL) as pool:
        for part in pool.map(run, [keys[i::PARALLEL] for i in range(PARALLEL)]):
            out.update(part)
    return {k: out[k] for k in keys}


class LocalCluster:
    """``nodes`` seed nodes (n1..) with quorums n/r/w started with the shared launcher
    (``dynamopy.launch``); up to 4 more nodes can join (``add_node``)."""

    def __init__(self, root: str, nodes: int = 3, *, n: int = 3, r: int = 2, w: int = 2,
                 extra: Optional[list[str]] = None, secret: str = "test-secret"):
        self.root = root
        self.size = nodes
        self.base = allocate_ports(nodes + 4)
        self.n, self.r, self.w = n, r, w
        self.extra = list(extra or [])
        self.secret = secret  # read at each start: a test may change it (an impostor)
        self.launch = Nodes(root, self.base, scheme=self.scheme, verify=self.verify)
        self.procs = self.launch.procs  # index -> Popen of every node started
        self.joins_through = 0  # nodes beyond the seeds join through this one

    scheme = "http"
    verify = True

    # ---- addresses ------------------------------------------------------------------
    def url(self, i: int) -> str:
        return self.launch.url(i)

    def node_id(self, i: int) -> str:
        return self.launch.node_id(i)

    def client(self, i: int = 0, **kw) -> Client:
        return Client(self.url(i), **kw)

    def seeds(self) -> str:
        return ",".join(self.url(i) for i in range(self.size))

    # ---- processes ------------------------------------------------------------------
    def args(self, i: int, extra: Optional[list[str]] = None) -> list[str]:
        """The serve flags of node ``i`` after its address and data dir."""
        membership = (["--seeds", self.seeds()] if i < self.size
                      else ["--join", self.url(self.joins_through)])
        return [*membership, "--n", str(self.n), "--r", str(self.r), "--w", str(self.w),
                *self.extra, *(extra or [])]

    def start_node(self, i: int, extra: Optional[list[str]] = None,
                   env: Optional[dict] = None) -> None:
        """Start node ``i``; ``env`` adds environment variables (e.g. libfaketime's
        LD_PRELOAD, which keeps the node itself the process we stop by PID)."""
        self.launch.start(i, self.args(i, extra),
                          {"DYNAMOPY_CLUSTER_SECRET": self.secret, **(env or {})})

    def start(self, timeout_s: float = 30.0) -> "LocalCluster":
        """Start the seed nodes and wait until they are ready; if they are not, stop every
        node started (whatever fixture called this)."""
        try:
            for i in range(self.size):
                self.start_node(i)
            self.wait_ready(range(self.size), timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, nodes, timeout_s: float = 30.0) -> None:
        self.launch.wait_ready(nodes, timeout_s)

    def wait_until(self, predicate, timeout_s: float = 20.0, what: str = "condition") -> None:
        """Poll ``predicate`` until true. Only "not yet" answers are retried: a node that
        cannot be reached (connection error, timeout) or answers 503 (not ready, no quorum).
        Any other error (a KeyError or TypeError of a broken predicate, a 4xx) surfaces at
        once instead of looking like a timeout."""
        wait_until(predicate, timeout_s, what)

    def add_node(self, extra: Optional[list[str]] = None, through: int = 0) -> int:
        """Start one more node (index = next free) that joins through node ``through``."""
        i = max(self.procs) + 1
        assert i < self.size + 4, "the harness reserved ports for 4 extra nodes"
        self.joins_through = through
        self.start_node(i, extra)
        return i

    def cluster_info(self, i: int) -> dict:
        with self.client(i, timeout_s=3.0) as c:
            return c.cluster()

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to node i; for SIGKILL/SIGTERM also wait for it to exit."""
        self.launch.signal(i, sig)

    def pause(self, i: int) -> None:
        self.launch.signal(i, signal.SIGSTOP)

    def resume(self, i: int) -> None:
        self.launch.signal(i, signal.SIGCONT)

    def restart(self, i: int, timeout_s: float = 30.0) -> None:
        if self.launch.running(i):
            self.kill(i, signal.SIGTERM)
        self.start_node(i)
        self.wait_ready([i], timeout_s)

    def stop(self) -> None:
        self.launch.stop()

    def log_tail(self, i: int, lines: int = 30) -> str:
        path = self.launch.log_path(i)
        return f"--- {path}\n" + log_tail(path, lines)

    # ---- inspection -----------------------------------------------------------------
    def local_record(self, i: int, key: str) -> Optional[dict]:
        with self.client(i, timeout_s=3.0) as c:
            return c.node_record(key)

    def local_version(self, i: int, key: str) -> Optional[int]:
        """The version node i holds for ``key`` (None if it holds no record)."""
        record = self.local_record(i, key)
        return None if record is None else record["version"]

    def node_view(self, i: int) -> dict:
        with self.client(i, timeout_s=3.0) as c:
            return c.node()
