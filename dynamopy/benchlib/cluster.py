"""A throw-away local cluster for the benchmark: free ports, a temp data dir, node processes the
benchmark owns by PID (so it can sample their CPU and is sure to stop them), plus the
server-side signals worth reporting: Prometheus counters and error lines in the node logs."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import tempfile
from typing import Optional

import httpx

from dynamopy.launch import Nodes


class LocalCluster:
    """``nodes`` seed nodes started with the shared launcher (``dynamopy.launch``), addressed
    by index; ``data_dir`` None means a temp dir dropped at ``stop``."""

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
        self.launch = Nodes(self.data_dir, base_port, scheme="https" if tls else "http",
                            verify=verify(self.ca),
                            env={"DYNAMOPY_CLUSTER_SECRET": secrets.token_hex(16)})
        self.urls = [self.launch.url(i) for i in range(nodes)]

    def _args(self, extra: tuple[str, ...] = ()) -> list[str]:
        return ["--seeds", ",".join(self.urls), *self.extra_args, *extra]

    def log_path(self, i: int) -> str:
        return self.launch.log_path(i)

    def start(self, ready_timeout_s: float = 60.0) -> None:
        for i in range(self.nodes):
            self.launch.start(i, self._args())
        self.wait_ready(ready_timeout_s)

    # --- faults (the load generator's): node i by PID, never by name ---------------------
    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to node i; for SIGKILL/SIGTERM also wait for it to exit."""
        self.launch.signal(i, sig)

    def restart(self, i: int, extra: tuple[str, ...] = ()) -> None:
        """Start node i again on its data (after ``kill``), with ``extra`` serve flags;
        does not wait for it to be ready (see ``ready``)."""
        if self.launch.running(i):
            self.kill(i, signal.SIGTERM)
        self.launch.start(i, self._args(extra))

    def ready(self, i: int) -> bool:
        return self.launch.ready(i)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        self.launch.wait_ready(range(self.nodes), timeout_s)

    @property
    def pids(self) -> list[int]:
        return self.launch.pids

    def stop(self, keep_data: bool = False) -> None:
        """Stop each node we started (by PID; see ``dynamopy.launch``); then drop the data."""
        self.launch.stop()
        if self.own_dir and not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_problems(self, limit: int = 8) -> tuple[int, list[str]]:
        """Count of WARNING/ERROR/Traceback lines across node logs, and a few distinct examples."""
        count, examples = 0, []
        pattern = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")
        for i in range(self.nodes):
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
