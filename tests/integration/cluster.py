"""A harness that runs real `dynamopy serve` processes on 127.0.0.1 for integration tests.

Every process is started in its own session and stopped by PID (SIGTERM, then SIGKILL);
every wait is bounded. Ports are taken from a per-run range and checked free before use.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

import httpx

from dynamopy.client import Client, DynamoError

_next_port = [20000 + (os.getpid() * 37) % 20000]


def _free(port: int) -> bool:
    for p in (port, port + 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def allocate_ports(count: int) -> int:
    """A base port such that base..base+count-1 and base+1000.. are free."""
    while True:
        base = _next_port[0]
        _next_port[0] += count + 3
        if _next_port[0] > 44000:
            _next_port[0] = 20000
        if all(_free(base + i) for i in range(count)):
            return base


class LocalCluster:
    def __init__(self, root: str, nodes: int = 3, *, n: int = 3, r: int = 2, w: int = 2,
                 extra: Optional[list[str]] = None, secret: str = "test-secret"):
        self.root = root
        self.size = nodes
        self.base = allocate_ports(nodes + 4)
        self.n, self.r, self.w = n, r, w
        self.extra = list(extra or [])
        self.secret = secret
        self.procs: dict[int, subprocess.Popen] = {}
        self.joins_through = 0  # nodes beyond the seeds join through this one
        self.logs: dict[int, object] = {}

    # ---- addresses ------------------------------------------------------------------
    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.base + i}"

    def node_id(self, i: int) -> str:
        return f"n{i + 1}"

    def client(self, i: int = 0, **kw) -> Client:
        return Client(self.url(i), **kw)

    def seeds(self) -> str:
        return ",".join(self.url(i) for i in range(self.size))

    # ---- processes ------------------------------------------------------------------
    def command(self, i: int, extra: Optional[list[str]] = None) -> list[str]:
        membership = (["--seeds", self.seeds()] if i < self.size
                      else ["--join", self.url(self.joins_through)])
        return [sys.executable, "-m", "dynamopy", "serve", "--node-id", self.node_id(i),
                "--host", "127.0.0.1", "--port", str(self.base + i),
                "--peer-port", str(self.base + 1000 + i),
                "--data-dir", os.path.join(self.root, self.node_id(i)),
                *membership, "--n", str(self.n), "--r", str(self.r),
                "--w", str(self.w), *self.extra, *(extra or [])]

    def start_node(self, i: int, extra: Optional[list[str]] = None,
                   env: Optional[dict] = None) -> None:
        """Start node ``i``; ``env`` adds environment variables (e.g. libfaketime's
        LD_PRELOAD, which keeps the node itself the process we stop by PID)."""
        assert i not in self.procs or self.procs[i].poll() is not None, f"node {i} running"
        log = open(os.path.join(self.root, f"{self.node_id(i)}.log"), "ab")
        env = {**os.environ, "DYNAMOPY_CLUSTER_SECRET": self.secret, **(env or {})}
        self.procs[i] = subprocess.Popen(self.command(i, extra), stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self.logs[i] = log

    def start(self, timeout_s: float = 30.0) -> "LocalCluster":
        os.makedirs(self.root, exist_ok=True)
        for i in range(self.size):
            self.start_node(i)
        self.wait_ready(range(self.size), timeout_s)
        return self

    def wait_ready(self, nodes, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(nodes)
        while pending:
            for i in list(pending):
                p = self.procs[i]
                if p.poll() is not None:
                    raise RuntimeError(f"node {i} exited with {p.returncode}:\n{self.log_tail(i)}")
                try:
                    if httpx.get(self.url(i) + "/ready", timeout=1.0).status_code == 200:
                        pending.discard(i)
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"nodes {sorted(pending)} not ready after {timeout_s}s:\n"
                                   + "\n".join(self.log_tail(i) for i in pending))
            time.sleep(0.1)

    def wait_until(self, predicate, timeout_s: float = 20.0, what: str = "condition") -> None:
        """Poll ``predicate`` until true; errors reaching a node count as 'not yet'."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if predicate():
                    return
            except (httpx.HTTPError, DynamoError, KeyError, TypeError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached after {timeout_s}s")
            time.sleep(0.1)

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
        p = self.procs[i]
        os.kill(p.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            p.wait(timeout=15)

    def pause(self, i: int) -> None:
        os.kill(self.procs[i].pid, signal.SIGSTOP)

    def resume(self, i: int) -> None:
        os.kill(self.procs[i].pid, signal.SIGCONT)

    def restart(self, i: int, timeout_s: float = 30.0) -> None:
        if self.procs[i].poll() is None:
            self.kill(i, signal.SIGTERM)
        self.start_node(i)
        self.wait_ready([i], timeout_s)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        for f in self.logs.values():
            f.close()

    def log_tail(self, i: int, lines: int = 30) -> str:
        path = os.path.join(self.root, f"{self.node_id(i)}.log")
        try:
            with open(path, "rb") as f:
                return f"--- {path}\n" + b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    # ---- inspection -----------------------------------------------------------------
    def local_record(self, i: int, key: str) -> Optional[dict]:
        with self.client(i, timeout_s=3.0) as c:
            return c.node_record(key)

    def node_view(self, i: int) -> dict:
        with self.client(i, timeout_s=3.0) as c:
            return c.node()
