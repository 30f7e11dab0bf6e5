"""Local `dynamopy serve` processes on 127.0.0.1: the one launcher behind `dynamopy cluster up`,
the benchmark, the load generator and the integration tests.

Rules:

* Addresses: node ``i`` of a launch is ``n{i+1}``, serves HTTP on ``base_port + i`` and peers on
  ``base_port + PEER_OFFSET + i``, and keeps its data in ``<data_dir>/n{i+1}`` and its log
  (stdout and stderr) in ``<data_dir>/n{i+1}.log``. A port counts as free when a socket with
  SO_REUSEADDR can bind it, as the servers bind: connections of a previous run left in
  TIME_WAIT do not make a port busy, a listener does.
* Every process runs in its own session (a Ctrl-C in the launcher's terminal reaches only the
  launcher) with stdin closed, and is stopped by its PID, never by name: SIGCONT (a paused
  node must be able to handle SIGTERM), SIGTERM, a bounded wait, then SIGKILL.
* A node is ready when the process started for it is alive, holds a listener on its own HTTP
  port (checked in /proc where there is one, so a stranger on that port does not count) and
  answers ``GET /ready`` with 200 and its own node id. Every wait is bounded: a node that exits
  while awaited raises ``NodeExited``, one not ready in time raises ``NotReady``; both name it
  and carry the tail of its log.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, Iterable, Optional, Sequence

import httpx

PEER_OFFSET = 1000   # peer port = HTTP port + 1000
LOG_TAIL_LINES = 15


# --- ports ---------------------------------------------------------------------------------

def port_problem(port: int) -> Optional[str]:
    """Why ``port`` cannot be bound on 127.0.0.1 (e.g. "is already in use"), None if free."""
    if not 0 < port < 65536:
        return "is outside 1..65535"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return "is already in use" if e.errno == errno.EADDRINUSE else e.strerror
    return None


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of ephemeral ports (the source ports of outgoing connections), from
    /proc where there is one, else Linux's default. A server port inside it can be taken by any
    outgoing connection while its server is down, so a restart on it can fail to bind."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def block_free(base: int, nodes: int) -> bool:
    """Whether the HTTP and peer ports of ``nodes`` nodes from ``base`` are all free."""
    return all(port_problem(base + i) is None and port_problem(base + PEER_OFFSET + i) is None
               for i in range(nodes))


def find_base_port(base: int, nodes: int, tries: int = 50, step: int = 10) -> int:
    """The first base port from ``base`` upwards (in steps of ``step``) whose block is free."""
    for k in range(tries):
        if block_free(base + step * k, nodes):
            return base + step * k
    raise RuntimeError(f"no free block of ports from {base} upwards")


def _listening_inodes(port: int) -> Optional[set[str]]:
    """Socket inodes listening on 127.0.0.1/any:port per /proc/net/tcp (None without /proc)."""
    try:
        with open("/proc/net/tcp") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return None
    out = set()
    for row in rows:
        cols = row.split()
        local, state, inode = cols[1], cols[3], cols[9]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
            out.add(inode)
    return out


def owns_port(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port`` (True if unknowable)."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return True
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


# --- processes -----------------------------------------------------------------------------

def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log, each indented with "  | " ("" if unreadable)."""
    try:
        with open(path, "rb") as f:
            tail = f.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join("  | " + line for line in tail)


def stop_processes(procs: Iterable[subprocess.Popen], timeout_s: float) -> None:
    """SIGCONT and SIGTERM every process still running, wait up to ``timeout_s`` each, SIGKILL
    the rest. Only the given processes are signalled, by PID."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class NodeExited(RuntimeError):
    """A node's process exited while the launcher waited for it to become ready."""

    def __init__(self, nodes: "Nodes", i: int):
        self.index, self.returncode = i, nodes.procs[i].returncode
        super().__init__(f"{nodes.node_id(i)} ({nodes.url(i)}) exited with {self.returncode}; "
                         f"last lines of {nodes.log_path(i)}:\n{log_tail(nodes.log_path(i))}")


class NotReady(RuntimeError):
    """Nodes not ready within the wait's timeout; ``pending`` holds their indexes."""

    def __init__(self, nodes: "Nodes", pending: set[int], timeout_s: float):
        self.pending = sorted(pending)
        first = nodes.log_path(self.pending[0])
        names = ", ".join(nodes.node_id(i) for i in self.pending)
        said = "".join(f"\n{nodes.node_id(i)}'s /ready: {nodes.not_ready[i]}"
                       for i in self.pending if nodes.not_ready.get(i))
        super().__init__(f"{names} not ready after {timeout_s:.0f}s{said}\n"
                         f"last lines of {first}:\n{log_tail(first)}")


class Nodes:
    """The `dynamopy serve` processes of one local cluster, by node index (see the rules).

    ``env`` is added to the environment of every node (e.g. DYNAMOPY_CLUSTER_SECRET);
    ``scheme`` and ``verify`` (httpx's: True, or an ssl context trusting the cluster's CA) are
    how the launcher reaches nodes serving HTTPS."""

    def __init__(self, data_dir: str, base_port: int, *, env: Optional[dict] = None,
                 scheme: str = "http", verify=True) -> None:
        self.data_dir, self.base_port = data_dir, base_port
        self.env = dict(env or {})
        self.scheme, self.verify = scheme, verify
        self.procs: dict[int, subprocess.Popen] = {}
        # the last "not ready" answer of each node's own /ready ("503 <detail>"), which says
        # why (NotReady quotes it: the log need not)
        self.not_ready: dict[int, str] = {}
        self.left: dict[int, int] = {}   # node index -> the epoch its graceful leave finished

    def _verify(self):
        """httpx's ``verify``: ``True`` as the process's one default TLS context (built once,
        not for every readiness check: see ``dynamopy.client.default_tls_context``)."""
        from dynamopy.client import default_tls_context
        return default_tls_context() if self.verify is True else self.verify

    # ---- addresses ----------------------------------------------------------------------
    def node_id(self, i: int) -> str:
        return f"n{i + 1}"

    def port(self, i: int) -> int:
        return self.base_port + i

    def peer_port(self, i: int) -> int:
        return self.base_port + PEER_OFFSET + i

    def url(self, i: int) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port(i)}"

    def log_path(self, i: int) -> str:
        return os.path.join(self.data_dir, f"{self.node_id(i)}.log")

    def command(self, i: int, args: Sequence[str] = ()) -> list[str]:
        """``dynamopy serve`` for node ``i`` on its ports and data dir, then ``args``
        (membership, quorums, any other flag)."""
        return [sys.executable, "-m", "dynamopy", "serve", "--node-id", self.node_id(i),
                "--host", "127.0.0.1", "--port", str(self.port(i)),
                "--peer-port", str(self.peer_port(i)),
                "--data-dir", os.path.join(self.data_dir, self.node_id(i)), *args]

    # ---- processes ----------------------------------------------------------------------
    def start(self, i: int, args: Sequence[str] = (), env: Optional[dict] = None,
              command: Optional[list[str]] = None) -> subprocess.Popen:
        """Start node ``i`` (``command`` replaces ``self.command(i, args)``); ``env`` adds to
        the launch's environment. Does not wait for it to be ready."""
        assert not self.running(i), f"{self.node_id(i)} is running"
        os.makedirs(self.data_dir, exist_ok=True)
        with open(self.log_path(i), "ab") as log:
            self.procs[i] = subprocess.Popen(
                command or self.command(i, args), env={**os.environ, **self.env, **(env or {})},
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        return self.procs[i]

    def running(self, i: int) -> bool:
        return i in self.procs and self.procs[i].poll() is None

    def signal(self, i: int, sig: int) -> None:
        """Send ``sig`` to node i's process if it runs; for SIGTERM/SIGKILL wait for it to exit
        (SIGKILL after 10 s of a SIGTERM)."""
        p = self.procs[i]
        if sig in (signal.SIGTERM, signal.SIGKILL):
            if sig == signal.SIGKILL and p.poll() is None:
                p.kill()
            stop_processes([p], timeout_s=10)
        elif p.poll() is None:
            p.send_signal(sig)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every node this launch started (see ``stop_processes``)."""
        stop_processes(self.procs.values(), timeout_s)

    @property
    def pids(self) -> list[int]:
        return [self.procs[i].pid for i in sorted(self.procs)]

    # ---- readiness ----------------------------------------------------------------------
    def ready(self, i: int, http: Optional[httpx.Client] = None) -> bool:
        """Whether node i is ready (the rules above); False while its process is not running."""
        if not self.running(i) or not owns_port(self.procs[i].pid, self.port(i)):
            return False
        try:
            if http is None:
                with httpx.Client(timeout=1.0, verify=self._verify()) as c:
                    r = c.get(self.url(i) + "/ready")
            else:
                r = http.get(self.url(i) + "/ready")
            body = r.json()
            if r.status_code != 200 and body.get("id") == self.node_id(i) and body.get("detail"):
                self.not_ready[i] = f"{r.status_code} {body['detail']}"
                if isinstance(body.get("left"), dict):
                    self.left[i] = body["left"].get("epoch")
            return r.status_code == 200 and body.get("id") == self.node_id(i)
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    def wait_ready(self, nodes: Iterable[int], timeout_s: float = 60.0, *,
                   poll_s: float = 0.05,
                   interrupted: Callable[[], bool] = lambda: False,
                   left_ok: bool = False) -> bool:
        """Wait until every node in ``nodes`` is ready; False if ``interrupted()`` became true
        first. Raises NodeExited (one of ``nodes`` exited, even one already ready) or NotReady.
        ``left_ok``: a node whose /ready says it left the cluster (a graceful leave recorded
        in its data dir: it stays out for good) is not waited for; ``left`` lists it."""
        deadline = time.monotonic() + timeout_s
        awaited = sorted(set(nodes))
        pending = set(awaited)
        with httpx.Client(timeout=1.0, verify=self._verify()) as http:
            while pending:
                if interrupted():
                    return False
                for i in awaited:
                    if self.procs[i].poll() is not None:
                        raise NodeExited(self, i)
                pending = {i for i in pending if not self.ready(i, http)
                           and not (left_ok and i in self.left)}
                if not pending:
                    break
                if time.monotonic() > deadline:
                    raise NotReady(self, pending, timeout_s)
                time.sleep(poll_s)
        return True
