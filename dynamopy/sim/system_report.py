"""The report of one system-simulation run: what a failing seed prints.

The first line is ``SEED=<n> OK|FAILED`` and the flags that replay it (as the metadata-log
simulator prints, so one grep finds both); then the replay command, outcome counts and every
violation. Verbose (``-v``) adds the nemesis schedule, the workload and, for each key a
violation names, that key's history trace, faults included: the interleaving that broke
it, readable without re-running anything.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Optional, Sequence

from .history import Event, describe
from .nemesis import Schedule
from .system_invariants import outcomes
from .workload import Workload

_KEY = re.compile(r"'((?:[^'\\]|\\.)*)'")  # keys appear in violations as repr(key)


def keys_named(violations: Iterable[str], known: Optional[Iterable[str]] = None) -> list[str]:
    """The keys the violations name (``'k3'`` in the text), first mention first, no repeats;
    only ``known`` keys if given (a quoted value such as ``b'x'`` is not a key)."""
    allowed = None if known is None else set(known)
    seen: dict[str, None] = {}
    for v in violations:
        for m in _KEY.finditer(v):
            if allowed is None or m.group(1) in allowed:
                seen.setdefault(m.group(1), None)
    return list(seen)


def run_report(seed: int, replay_args: str, violations: Sequence[str], events: Sequence[Event], *,
               stats: Optional[Mapping[str, object]] = None, schedule: Optional[Schedule] = None,
               workload: Optional[Workload] = None, verbose: bool = False, max_violations: int = 20,
               max_trace_lines: int = 200) -> str:
    """The text a run prints. ``replay_args`` are the non-default flags after ``--seed <n>``."""
    ok = not violations
    flags = f"--system --seed {seed}" + (f" {replay_args}" if replay_args else "")
    lines = [f"SEED={seed} {'OK' if ok else 'FAILED'} params: {flags}",
             f"  replay: dynamopy sim {flags} -v",
             f"  operations: {outcomes(events)}"]
    if stats:
        lines.append(f"  stats: {dict(stats)}")
    lines += [f"  {v}" for v in violations[:max_violations]]
    if len(violations) > max_violations:
        lines.append(f"  ... {len(violations) - max_violations} more violations")
    if verbose:
        if schedule is not None:
            lines += ["", schedule.describe()]
        if workload is not None:
            lines += ["", workload.describe()]
        for key in keys_named(violations, workload.keys if workload is not None else None):
            lines += ["", f"history of {key!r}:", describe(events, key=key, limit=max_trace_lines)]
    return "\n".join(lines)
