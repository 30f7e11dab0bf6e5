"""CPU accounting from /proc (no psutil): per-process user+system time and the machine's busy
time, sampled at the edges of a measured window."""

from __future__ import annotations

import os
from typing import Iterable, Optional

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> Optional[float]:
    """utime + stime of one process in seconds, or None if it is gone."""
    return _stat_cpu_s(f"/proc/{pid}/stat")


def main_thread_cpu_s(pid: int) -> Optional[float]:
    """utime + stime of a process's main thread (a node's event loop) in seconds."""
    return _stat_cpu_s(f"/proc/{pid}/task/{pid}/stat")


def _stat_cpu_s(path: str) -> Optional[float]:
    try:
        with open(path) as f:
            raw = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK   # fields 14 and 15 of stat(5)


def process_written_bytes(pid: int) -> Optional[int]:
    """Bytes a process caused to be sent to the storage layer (``write_bytes`` of
    ``/proc/PID/io``: its files' data and what fsync flushed for it), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds summed over all cores since boot, from the 'cpu' line."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)   # idle + iowait
    total = sum(parts[:8])  # guest time is already counted in user
    return (total - idle) / TICK, total / TICK


class CpuWindow:
    """CPU used by named groups of processes, and by the whole machine, between two samples."""

    def __init__(self, groups: dict[str, Iterable[int]]) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self._start: dict[int, float] = {}
        self._machine = (0.0, 0.0)
        self._t = 0.0

    def _sample(self) -> dict[int, float]:
        out = {}
        for pids in self.groups.values():
            for pid in pids:
                v = process_cpu_s(pid)
                if v is not None:
                    out[pid] = v
        return out

    def begin(self, now: float) -> None:
        self._start, self._machine, self._t = self._sample(), machine_cpu_s(), now

    def end(self, now: float) -> dict:
        """Percent of one core per group and per process; 'machine' is percent of all cores."""
        wall = max(now - self._t, 1e-9)
        stop = self._sample()
        report: dict = {"wall_s": round(wall, 3), "cores": os.cpu_count()}
        for name, pids in self.groups.items():
            per = {pid: 100.0 * (stop[pid] - self._start[pid]) / wall
                   for pid in pids if pid in stop and pid in self._start}
            report[name] = {"total_pct": round(sum(per.values()), 1),
                            "per_pid": {str(p): round(v, 1) for p, v in per.items()}}
        busy0, total0 = self._machine
        busy1, total1 = machine_cpu_s()
        report["machine_busy_pct"] = round(100.0 * (busy1 - busy0) / max(total1 - total0, 1e-9), 1)
        # Whatever else ran on the machine meanwhile, in percent of one core: on a shared box
        # this is what the cluster and driver were competing with.
        ours = sum(report[name]["total_pct"] for name in self.groups)
        others = 100.0 * (busy1 - busy0) / wall - ours
        report["others_pct"] = round(max(others, 0.0), 1)
        return report
