"""A throw-away local cluster for the benchmark: free ports, a temp data dir, node processes the
benchmark owns by PID (so it can sample their CPU and is sure to stop them), plus the
server-side signals worth reporting: Prometheus counters and error lines in the node logs."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Optional

import httpx

PEER_OFFSET = 1000   # as `dynamopy cluster up`: peer port = HTTP port + 1000


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers do: connections of a previous run in TIME_WAIT must not count as busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def block_free(base: int, nodes: int) -> bool:
    return all(_port_free(base + i) and _port_free(base + PEER_OFFSET + i) for i in range(nodes))


def find_base_port(base: int, nodes: int, tries: int = 50) -> int:
    """The first base port from `base` upwards (in steps of 10) whose HTTP and peer ports are free."""
    for k in range(tries):
        if block_free(base + 10 * k, nodes):
            return base + 10 * k
    raise RuntimeError(f"no free block of ports from {base} upwards")


class LocalCluster:
    def __init__(self, nodes: int, base_port: int, data_dir: Optional[str] = None,
                 extra_args: tuple[str, ...] = (), tls: bool = False) -> None:
        self.nodes, self.base_port = nodes, base_port
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="dynamopy-bench-")
        self.extra_args = list(extra_args)
        # --tls: every node serves HTTPS and peer mutual TLS with one self-signed certificate
        # naming all of them; ``ca`` is the file clients must trust (None without TLS).
        self.ca: Optional[str] = None
        if tls:
            from dynamopy.tls import self_signed
            os.makedirs(self.data_dir, exist_ok=True)
            f = self_signed(self.data_dir, [f"n{i + 1}" for i in range(nodes)])
            self.ca = f.ca
            self.extra_args += ["--tls-cert", f.cert, "--tls-key", f.key, "--tls-ca", f.ca]
        scheme = "https" if tls else "http"
        self.urls = [f"{scheme}://127.0.0.1:{base_port + i}" for i in range(nodes)]
        self.procs: list[subprocess.Popen] = []

    def _command(self, i: int, extra: tuple[str, ...] = ()) -> list[str]:
        return [sys.executable, "-m", "dynamopy", "serve", "--node-id", f"n{i + 1}",
                "--host", "127.0.0.1", "--port", str(self.base_port + i),
                "--peer-port", str(self.base_port + PEER_OFFSET + i),
                "--data-dir", os.path.join(self.data_dir, f"n{i + 1}"),
                "--seeds", ",".join(self.urls), *self.extra_args, *extra]

    def log_path(self, i: int) -> str:
        return os.path.join(self.data_dir, f"n{i + 1}.log")

    def _spawn(self, i: int, extra: tuple[str, ...] = ()) -> subprocess.Popen:
        with open(self.log_path(i), "ab") as log:
            # Own session: a Ctrl-C in the terminal reaches only us; we stop nodes by PID.
            return subprocess.Popen(self._command(i, extra), env=self._env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)

    def start(self, ready_timeout_s: float = 60.0) -> None:
        self._env = {**os.environ, "DYNAMOPY_CLUSTER_SECRET": secrets.token_hex(16)}
        for i in range(self.nodes):
            self.procs.append(self._spawn(i))
        self._wait_ready(ready_timeout_s)

    # --- faults (the load generator's): node i by PID, never by name ---------------------
    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to node i; for SIGKILL/SIGTERM also wait for it to exit."""
        p = self.procs[i]
        if p.poll() is None:
            if sig == signal.SIGTERM:
                p.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            p.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            stop_processes([p], timeout_s=10)

    def restart(self, i: int, extra: tuple[str, ...] = ()) -> None:
        """Start node i again on its data (after ``kill``), with ``extra`` serve flags;
        does not wait for it to be ready (see ``ready``)."""
        if self.procs[i].poll() is None:
            self.kill(i, signal.SIGTERM)
        self.procs[i] = self._spawn(i, extra)

    def ready(self, i: int) -> bool:
        try:
            return httpx.get(f"{self.urls[i]}/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(self.urls)
        with httpx.Client(timeout=1.0, verify=verify(self.ca)) as c:
            while pending:
                for p in self.procs:
                    if p.poll() is not None:
                        raise RuntimeError(f"node pid {p.pid} exited with {p.returncode}; "
                                           f"logs in {self.data_dir}")
                for url in list(pending):
                    try:
                        if c.get(f"{url}/ready").status_code == 200:
                            pending.discard(url)
                    except httpx.HTTPError:
                        pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not ready after {timeout_s:.0f}s: {sorted(pending)}")
                time.sleep(0.2)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self, keep_data: bool = False) -> None:
        """SIGTERM each node we started (by PID), wait, SIGKILL stragglers; then drop the data."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)  # a paused node must be able to handle SIGTERM
        stop_processes(self.procs, timeout_s=10)
        if self.own_dir and not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_problems(self, limit: int = 8) -> tuple[int, list[str]]:
        """Count of WARNING/ERROR/Traceback lines across node logs, and a few distinct examples."""
        count, examples = 0, []
        pattern = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")
        for i in range(len(self.procs)):
            try:
                with open(self.log_path(i), errors="replace") as f:
                    for line in f:
                        if pattern.search(line):
                            count += 1
                            # Drop the timestamp so repeats of one message dedupe.
                            text = line.strip().split(" ", 2)[-1][:200]
                            if text not in examples and len(examples) < limit:
                                examples.append(text)
            except OSError:
                pass
        return count, examples


# --- server metrics ------------------------------------------------------------------------

# Counters whose growth during a phase means the server had trouble (or did extra work).
WATCHED = ("dynamopy_requests_total", "dynamopy_quorum_failures_total",
           "dynamopy_peer_errors_total", "dynamopy_hints_stored_total",
           "dynamopy_read_repairs_total")
_LINE = re.compile(r"^(\w+)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN|[+-]Inf)$")


def verify(ca: Optional[str]):
    """httpx's ``verify`` for a cluster whose certificates ``ca`` issued (True: system CAs)."""
    import ssl
    return ssl.create_default_context(cafile=ca) if ca else True


def scrape(urls: list[str], ca: Optional[str] = None) -> dict[str, float]:
    """Watched counters summed over all nodes, keyed 'name{labels}'; unreachable nodes skipped."""
    out: dict[str, float] = {}
    with httpx.Client(timeout=5.0, verify=verify(ca)) as c:
        for url in urls:
            try:
                text = c.get(f"{url}/metrics").text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                m = _LINE.match(line)
                if m and m.group(1) in WATCHED:
                    key = m.group(1) + (m.group(2) or "")
                    out[key] = out.get(key, 0.0) + float(m.group(3))
    return out


def server_trouble(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Counter growth between two scrapes, leaving out the expected (ok / not_found requests)."""
    diff = {}
    for key, v in after.items():
        d = int(round(v - before.get(key, 0.0)))
        if d <= 0:
            continue
        if key.startswith("dynamopy_requests_total") and (
                'outcome="ok"' in key or 'outcome="not_found"' in key):
            continue
        diff[key.replace("dynamopy_", "").replace("_total", "")] = d
    return diff


def stop_processes(procs: list[subprocess.Popen], timeout_s: float) -> None:
    """SIGTERM every process still running, wait up to ``timeout_s`` each, SIGKILL the rest."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
