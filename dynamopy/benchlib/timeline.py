"""A per-second timeline of what each node of a benchmarked cluster does: ``vs_etcd
--timeline FILE`` (or :class:`Timeline` on its own).

Every ``every_s`` it reads each node's ``/metrics`` and the CPU of its event-loop thread and
of its other threads (``/proc``), and appends one line per node to FILE: the seconds since
the start, the bench's phase when the interval ended (``preload``, ``hold``, ``warm-up 1
all dynamopy R=2,W=2``, ``round 1 all dynamopy R=2,W=2``, ...), requests per second, loop and other-thread CPU in ms per second, loop CPU per request,
and every background counter that moved (anti-entropy, read repairs, hints, re-stamps, peer
calls by method). What it is for: finding what a node does in one phase and not another
(round 1 after the preload is the slow one), with numbers rather than a guess.

Cost: a ``/metrics`` scrape is 10-30 ms of a node's CPU, so the timeline itself adds one
to three percent of CPU at one scrape a second: compare phases within a timeline run, not
against runs without it. Prints figures; asserts nothing.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Optional

from dynamopy.benchlib.procstat import main_thread_cpu_s, process_cpu_s

# The counters worth a line when they move (labels kept), and the request counter.
_WATCH = re.compile(
    r"^dynamopy_(requests_total|peer_calls_total|read_repairs_total|write_restamps_total|"
    r"hints_(stored|delivered|dropped)_total|anti_entropy_\w+_total|"
    r"tombstones_purged_total|storage_batch_size_count)(\{[^}]*\})? (\S+)$")


def counters(metrics_text: str) -> dict[str, float]:
    """The watched counters of one ``/metrics`` text, by name with labels."""
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        m = _WATCH.match(line)
        if m:
            out[f"dynamopy_{m.group(1)}{m.group(3) or ''}"] = float(m.group(4))
    return out


def _short(name: str) -> str:
    """``dynamopy_peer_calls_total{method="put",outcome="ok"}`` -> ``peer_calls put ok``."""
    base, _, labels = name.partition("{")
    base = base[len("dynamopy_"):].removesuffix("_total")
    values = re.findall(r'="([^"]*)"', labels)
    return " ".join([base, *values])


def line(t: float, phase: str, node: int, dt: float, before: dict, after: dict,
         cpu_before: Optional[tuple[float, float]],
         cpu_after: Optional[tuple[float, float]]) -> str:
    """One node's line for one interval of ``dt`` seconds: counters and (loop, process) CPU
    seconds at its start and end."""
    moved = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    req = sum(v for k, v in moved.items() if k.startswith("dynamopy_requests_total"))
    parts = [f"{t:7.1f}s {phase:<32} n{node} {req / dt:6.0f} req/s"]
    if cpu_before is not None and cpu_after is not None:
        loop = cpu_after[0] - cpu_before[0]
        other = (cpu_after[1] - cpu_after[0]) - (cpu_before[1] - cpu_before[0])
        per_req = f"{1000 * loop / req:.3f}" if req else "-"
        parts.append(f"loop {1000 * loop / dt:4.0f} ms/s other {1000 * other / dt:4.0f} ms/s "
                     f"loop/req {per_req} ms")
    rest = [f"{_short(k)} {v:g}" for k, v in sorted(moved.items())
            if not k.startswith("dynamopy_requests_total")]
    if rest:
        parts.append("; ".join(rest))
    return " | ".join(parts)


class Timeline:
    """A thread that writes the timeline of ``urls`` (with their ``pids``) to ``path``
    until ``stop()``; ``phase`` is read at each line (the bench sets it)."""

    def __init__(self, path: str, urls: list[str], pids: list[int], every_s: float = 1.0):
        self.path, self.urls, self.pids, self.every_s = path, urls, pids, every_s
        self.phase = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timeline", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _sample(self) -> tuple[list[dict], list[Optional[tuple[float, float]]]]:
        import httpx
        metrics = []
        for url in self.urls:
            try:
                metrics.append(counters(httpx.get(f"{url}/metrics", timeout=2).text))
            except Exception:  # noqa: BLE001 - a figure missing, not a reason to stop
                metrics.append({})
        cpu = []
        for pid in self.pids:
            loop, total = main_thread_cpu_s(pid), process_cpu_s(pid)
            cpu.append(None if loop is None or total is None else (loop, total))
        return metrics, cpu

    def _run(self) -> None:
        started = last_t = time.monotonic()
        last = self._sample()
        with open(self.path, "a") as f:
            while not self._stop.wait(self.every_s):
                now = time.monotonic()
                cur = self._sample()
                for i in range(len(self.urls)):
                    f.write(line(now - started, self.phase, i + 1, now - last_t, last[0][i],
                                 cur[0][i], last[1][i], cur[1][i]) + "\n")
                f.flush()
                last, last_t = cur, now
