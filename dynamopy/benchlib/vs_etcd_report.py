"""The pure half of the etcd comparison (``vs_etcd``): wrk's ``RESULT`` line as a
:class:`Run`, the tail evidence read from each process's /metrics text, and the table of
every run with its ratios against etcd. No I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

ETCD_STORE = "etcd 3.4"


@dataclass
class Run:
    store: str
    endpoints: str          # "one" or "all"
    round: int
    ops: float              # 2xx answers per second
    p50_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int
    requests: int
    cpu_ms_per_op: float = 0.0    # CPU time of all the store's processes per 2xx answer
    first_cpu_ms_per_op: float = 0.0   # ... of the endpoint process (node 1 / member 1)
    tail: str = ""                # dynamopy: per node, GC pauses, loop lag, slow syncs in it
    beside: str = ""              # --together: the store driven at the same time (etcd rows)


_RESULT = re.compile(r"^RESULT (.*)$", re.M)


def parse_wrk(text: str, store: str, endpoints: str, round_: int) -> Run:
    """The ``RESULT k=v ...`` line our Lua ``done()`` prints, as a :class:`Run`."""
    m = _RESULT.search(text)
    if m is None:
        raise ValueError(f"no RESULT line in wrk output: {text[-400:]!r}")
    f = {k: int(v) for k, v in (kv.split("=", 1) for kv in m.group(1).split())}
    seconds = f["duration_us"] / 1e6
    ok = f["requests"] - f["non2xx"]
    return Run(store, endpoints, round_, ops=ok / seconds if seconds > 0 else 0.0,
               p50_ms=f["p50_us"] / 1000, p99_ms=f["p99_us"] / 1000, max_ms=f["max_us"] / 1000,
               non2xx=f["non2xx"],
               socket_errors=f["connect"] + f["read"] + f["write"] + f["timeout"],
               requests=f["requests"])


def _over(vals: dict, histogram: str, bounds_ms: tuple[int, ...]) -> tuple[float, dict]:
    """(count, {bound_ms: observations above it}) of an unlabelled histogram's buckets."""
    total = vals.get(f'{histogram}_bucket{{le="+Inf"}}', 0.0)
    return total, {ms: total - vals.get(f'{histogram}_bucket{{le="{ms / 1000}"}}', total)
                   for ms in bounds_ms}


def _series(metrics_text: str, prefixes: tuple[str, ...]) -> dict[str, float]:
    """The values of the /metrics series whose names start with one of ``prefixes``, by
    series name (labels included; a name seen twice is summed)."""
    vals: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith(prefixes):
            name, _, value = line.rpartition(" ")
            vals[name] = vals.get(name, 0.0) + float(value)
    return vals


def _per_process(label: str, before: list, after: list, describe) -> str:
    """``label``1, 2, ...: ``describe(after - before)`` of each process's counters ("-" for a
    process whose counters could not be read at either edge), joined by "; "."""
    parts = []
    for i, (b, a) in enumerate(zip(before, after), 1):
        if a is None or b is None:
            parts.append(f"{label}{i} -")
        else:
            parts.append(f"{label}{i} " + describe({k: a[k] - b[k] for k in a}))
    return "; ".join(parts)


def requests_over(metrics_text: str, bound_s: float) -> tuple[float, float]:
    """(requests, requests slower than ``bound_s``) in a node's own request-latency histogram,
    all routes and outcomes together (``bound_s`` must be one of its bucket bounds): the
    server's view of the tail, without wrk's coordinated-omission correction."""
    vals = _series(metrics_text, ("dynamopy_request_seconds_bucket",))
    total = sum(v for k, v in vals.items() if 'le="+Inf"' in k)
    under = sum(v for k, v in vals.items() if f'le="{bound_s}"' in k)
    return total, total - under


def _health_values(metrics_text: str) -> Optional[dict[str, float]]:
    """The GC-pause, event-loop-lag and synced-batch series of a node's /metrics text, by
    series name (None if the node does not export them, e.g. an older baseline)."""
    vals = _series(metrics_text, ("dynamopy_gc_pause_seconds_",
                                  "dynamopy_event_loop_lag_seconds_",
                                  "dynamopy_storage_sync_seconds_"))
    if not any(k.startswith("dynamopy_event_loop_lag") for k in vals):
        return None
    return vals


def health_counts(metrics_text: str) -> Optional[dict[str, float]]:
    """A node's running totals of what makes a tail: GC pauses (count, ms), event-loop lag
    ticks over 50 ms, synced batches over 50 ms, and requests it answered in over 200 ms
    (None without those metrics)."""
    vals = _health_values(metrics_text)
    if vals is None:
        return None
    return {
        "gc": sum(v for k, v in vals.items() if k.startswith("dynamopy_gc_pause_seconds_count")),
        "gc_ms": 1000 * sum(v for k, v in vals.items()
                            if k.startswith("dynamopy_gc_pause_seconds_sum")),
        "lag50": _over(vals, "dynamopy_event_loop_lag_seconds", (50,))[1][50],
        "sync50": _over(vals, "dynamopy_storage_sync_seconds", (50,))[1][50],
        "req200": requests_over(metrics_text, 0.2)[1],
    }


def tail_line(before: list, after: list) -> str:
    """Per node, what one run added to ``health_counts``: the evidence next to its p99."""
    return _per_process("node", before, after, lambda d: (
        f"gc {d['gc']:.0f} ({d['gc_ms']:.0f} ms) lag>50ms {d['lag50']:.0f} "
        f"sync>50ms {d['sync50']:.0f} answered>200ms {d['req200']:.0f}"))


ETCD_SYNCS = (("wal", "etcd_disk_wal_fsync_duration_seconds"),
              ("commit", "etcd_disk_backend_commit_duration_seconds"))


def etcd_health_counts(metrics_text: str) -> Optional[dict[str, float]]:
    """An etcd member's running totals of its own slow syncs: WAL fsyncs and backend (bbolt)
    commits over 64 ms (etcd's buckets double from 1 ms, so 64 ms is its bound nearest our
    50 ms). The evidence that a device-wide stall hit etcd too. None without those metrics."""
    vals = _series(metrics_text, tuple(h for _, h in ETCD_SYNCS))
    if not vals:
        return None
    return {f"{short}64": _over(vals, histogram, (64,))[1][64] for short, histogram in ETCD_SYNCS}


def etcd_tail_line(before: list, after: list) -> str:
    """Per etcd member, what one run added to ``etcd_health_counts``."""
    return _per_process("member", before, after, lambda d: (
        f"wal fsync>64ms {d['wal64']:.0f} backend commit>64ms {d['commit64']:.0f}"))


def process_health(metrics_text: str) -> Optional[str]:
    """One line on GC pauses, event-loop lag and synced-batch (fsync) times from a node's
    /metrics text (None if the node does not export them, e.g. an older baseline)."""
    vals = _health_values(metrics_text)
    if vals is None:
        return None
    gc_n = sum(v for k, v in vals.items() if k.startswith("dynamopy_gc_pause_seconds_count"))
    gc_s = sum(v for k, v in vals.items() if k.startswith("dynamopy_gc_pause_seconds_sum"))
    ticks, lag = _over(vals, "dynamopy_event_loop_lag_seconds", (50, 200))
    syncs, slow = _over(vals, "dynamopy_storage_sync_seconds", (50, 200))
    return (f"GC: {gc_n:.0f} pauses, {gc_s * 1000:.0f} ms in all; event-loop lag over 50 ms "
            f"{lag[50]:.0f} times, over 200 ms {lag[200]:.0f} times (of {ticks:.0f} ticks); "
            f"synced batches over 50 ms {slow[50]:.0f}, over 200 ms {slow[200]:.0f} "
            f"(of {syncs:.0f})")


def _span(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, fmt) if lo == hi else f"{format(lo, fmt)}-{format(hi, fmt)}"


def row_label(r: Run) -> str:
    """A row's store column: etcd driven beside a dynamopy setting names that setting."""
    return f"{r.store} | {r.beside.split(' ', 1)[-1]}" if r.beside else r.store


def _etcd_of(etcd: dict, r: Run) -> Optional[Run]:
    """The etcd run ``r`` is compared with: the one driven beside it (``--together``), else
    the one of the same round and endpoints."""
    return etcd.get((r.endpoints, r.round, r.store), etcd.get((r.endpoints, r.round, "")))


def build_table(runs: list[Run]) -> str:
    """Every run as a row, then per endpoint mode and store: ranges over rounds and the ratio
    of ops/s to etcd's in the same round."""
    lines = [f"{'endpoints':<9} {'store':<18} {'round':>5} {'ops/s':>8} {'p50 ms':>8} "
             f"{'p99 ms':>8} {'max ms':>8} {'non-2xx':>8} {'sock err':>8} {'cpu ms/op':>9} "
             f"{'node1 ms/op':>11}"]
    for r in runs:
        lines.append(f"{r.endpoints:<9} {row_label(r):<18} {r.round:>5} {r.ops:>8.0f} "
                     f"{r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.max_ms:>8.1f} {r.non2xx:>8} "
                     f"{r.socket_errors:>8} {r.cpu_ms_per_op:>9.3f} {r.first_cpu_ms_per_op:>11.3f}")
    lines.append("")
    lines.append(f"{'endpoints':<9} {'store':<18} {'ops/s':>13} {'p99 ms':>13} "
                 f"{'x etcd ops/s':>13} {'x etcd p99':>11} {'non-2xx':>8}")
    etcd = {(r.endpoints, r.round, r.beside): r for r in runs if r.store == ETCD_STORE}
    for endpoints in dict.fromkeys(r.endpoints for r in runs):
        for store in dict.fromkeys(row_label(r) for r in runs if r.endpoints == endpoints):
            mine = [r for r in runs if r.endpoints == endpoints and row_label(r) == store]
            pairs = [(r, _etcd_of(etcd, r)) for r in mine if r.store != ETCD_STORE]
            pairs = [(r, e) for r, e in pairs if e is not None and e.ops > 0 and e.p99_ms > 0]
            ratio = _span([r.ops / e.ops for r, e in pairs], ".2f") if pairs else "-"
            p99 = _span([r.p99_ms / e.p99_ms for r, e in pairs], ".2f") if pairs else "-"
            lines.append(f"{endpoints:<9} {store:<18} {_span([r.ops for r in mine], '.0f'):>13} "
                         f"{_span([r.p99_ms for r in mine], '.0f'):>13} {ratio:>13} {p99:>11} "
                         f"{sum(r.non2xx for r in mine):>8}")
    base = {(r.endpoints, r.round, r.store.split(" ", 1)[1]): r for r in runs
            if r.store.startswith("baseline ")}
    if base:
        lines.append("")
        lines.append("new code over baseline (same round, endpoints and quorums): ops/s, p99")
        for r in runs:
            b = base.get((r.endpoints, r.round, r.store.split(" ", 1)[-1]))
            if r.store.startswith("dynamopy ") and b is not None and b.ops > 0 and b.p99_ms > 0:
                lines.append(f"{r.endpoints:<9} {r.store:<18} round {r.round}: "
                             f"{r.ops / b.ops:.2f}x ops/s, {r.p99_ms / b.p99_ms:.2f}x p99" + (
                    f", {r.cpu_ms_per_op / b.cpu_ms_per_op:.2f}x CPU/op"
                    if b.cpu_ms_per_op > 0 else ""))
    return "\n".join(lines)
