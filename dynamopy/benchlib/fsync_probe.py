"""Does the disk stall every file at once? ``python -m dynamopy.benchlib.fsync_probe``.

No store runs. ``--writers`` threads (three, like a local cluster's nodes) each write a record
and call ``fdatasync`` in a loop, in one of two modes, alternated A B A B for ``--rounds``:

* ``append`` grows its file at every write, as LevelDB's log does (each sync also commits the
  new file size);
* ``overwrite`` writes inside a file that was written and synced beforehand (``--span-mib``),
  wrapping at its end, as a preallocated WAL of our own would (no metadata to commit).

Optionally a further thread plays a LevelDB memtable flush (``--flush-mib`` written and fsynced
every 1.5 s), and ``--rate`` caps each writer's syncs per second (a store's rate, rather than as
fast as the disk goes). Per mode and round it prints syncs/s, p50, p99, max, the count of
syncs over 50 ms, and how many of those *stalls* ended on every writer within 5 ms of each
other (a device-wide stall). A figure to read, never a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from typing import Optional

from dynamopy.benchlib.argtypes import positive_float, positive_int

SLOW_S = 0.05
TOGETHER_S = 0.005
MODES = ("append", "overwrite")


class Writer(threading.Thread):
    """One writer: a record, then ``fdatasync``, in a loop until stopped; keeps (end, seconds)
    of every sync."""

    def __init__(self, path: str, mode: str, record_bytes: int, span_bytes: int,
                 rate: Optional[float], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.path, self.mode, self.stop = path, mode, stop
        self.record = b"x" * record_bytes
        self.span = span_bytes
        self.rate = rate
        self.syncs: list[tuple[float, float]] = []

    def prepare(self) -> None:
        """The file exists before the clock starts; ``overwrite`` fills and syncs its span."""
        fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            if self.mode == "overwrite":
                chunk = b"\0" * (1 << 20)
                for off in range(0, self.span, len(chunk)):
                    os.pwrite(fd, chunk[:self.span - off], off)
                os.fsync(fd)
        finally:
            os.close(fd)

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        off, size = 0, len(self.record)
        due = time.perf_counter()
        try:
            while not self.stop.is_set():
                if self.rate:
                    due += 1.0 / self.rate
                    wait = due - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                os.pwrite(fd, self.record, off)
                off += size
                if self.mode == "overwrite" and off + size > self.span:
                    off = 0
                t = time.perf_counter()
                os.fdatasync(fd)
                end = time.perf_counter()
                self.syncs.append((end, end - t))
        finally:
            os.close(fd)


def flusher(directory: str, mib: int, stop: threading.Event) -> None:
    """Every 1.5 s write ``mib`` MiB to a new file and fsync it; keep the last three files."""
    block = os.urandom(1 << 20)
    made: list[str] = []
    while not stop.wait(1.5):
        path = os.path.join(directory, f"table-{len(made)}")
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            for _ in range(mib):
                os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)
        made.append(path)
        if len(made) > 3:
            os.unlink(made[-4])
    for path in made[-3:]:
        os.unlink(path)


def summarize(per_writer: list[list[tuple[float, float]]], seconds: float) -> dict:
    """Figures of one run from each writer's (end, seconds) syncs: rate, percentiles in ms,
    the syncs over ``SLOW_S`` and the stalls among them that ended on every writer within
    ``TOGETHER_S``."""
    lat = sorted(s for syncs in per_writer for _, s in syncs)
    if not lat:
        return {"syncs_per_s": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0,
                "slow": 0, "device_wide": 0}

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000

    slow_ends = [[end for end, s in syncs if s > SLOW_S] for syncs in per_writer]
    device_wide = 0
    for end in slow_ends[0] if slow_ends else []:
        if all(any(abs(end - other) <= TOGETHER_S for other in ends) for ends in slow_ends[1:]):
            device_wide += 1
    return {"syncs_per_s": len(lat) / seconds, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "max_ms": lat[-1] * 1000, "slow": sum(len(e) for e in slow_ends),
            "device_wide": device_wide}


def run_once(directory: str, mode: str, args: argparse.Namespace) -> dict:
    stop = threading.Event()
    writers = [Writer(os.path.join(directory, f"wal-{i}"), mode, args.record_bytes,
                      args.span_mib << 20, args.rate, stop) for i in range(args.writers)]
    for w in writers:
        w.prepare()
    extra = []
    if args.flush_mib:
        extra.append(threading.Thread(target=flusher, args=(directory, args.flush_mib, stop),
                                      daemon=True))
    for t in [*writers, *extra]:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in [*writers, *extra]:
        t.join()
    for w in writers:
        os.unlink(w.path)
    return summarize([w.syncs for w in writers], args.seconds)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dynamopy.benchlib.fsync_probe",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default=".", help="where the files go: the data directory's "
                   "filesystem (default: the current directory)")
    p.add_argument("--seconds", type=positive_float, default=10.0, help="s per run (default 10)")
    p.add_argument("--rounds", type=positive_int, default=2, help="A B rounds (default 2)")
    p.add_argument("--writers", type=positive_int, default=3, help="default 3")
    p.add_argument("--record-bytes", type=positive_int, default=8192, help="default 8192")
    p.add_argument("--span-mib", type=positive_int, default=128,
                   help="overwrite mode: the preallocated file's size (default 128)")
    p.add_argument("--rate", type=positive_float, default=None,
                   help="at most this many syncs/s per writer (default: as fast as it goes)")
    p.add_argument("--flush-mib", type=positive_int, default=None,
                   help="also write and fsync a file of this many MiB every 1.5 s")
    args = p.parse_args(argv)
    if args.record_bytes > args.span_mib << 20:
        p.error("--record-bytes must fit in --span-mib")
    if not os.path.isdir(args.dir) or not os.access(args.dir, os.W_OK):
        p.error(f"--dir {args.dir!r} is not a directory this user can write to")
    directory = tempfile.mkdtemp(prefix="dynamopy-fsync-probe-", dir=args.dir)
    try:
        for rnd in range(1, args.rounds + 1):
            for mode in MODES:
                r = run_once(directory, mode, args)
                print(f"round {rnd} {mode:9}: {r['syncs_per_s']:7.0f} syncs/s  p50 "
                      f"{r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  max {r['max_ms']:7.1f} ms"
                      f"  over 50 ms {r['slow']:3d}  device-wide stalls {r['device_wide']}",
                      flush=True)
    finally:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
