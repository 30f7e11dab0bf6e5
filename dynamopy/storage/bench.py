"""Measure durable writes/s through GroupCommitter (a figure to print, never a test).

    python -m dynamopy.storage.bench [--writers 256] [--value-bytes 1024] [--seconds 2]

Each writer awaits one synced write after another (random tokens, fresh keys), so the
figure is acknowledged-and-synced writes per second with that many writes in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time

from dynamopy.core.records import Record
from dynamopy.storage.group_commit import GroupCommitter
from dynamopy.storage.store import Store


async def run(path: str, writers: int, value_bytes: int, seconds: float, use_uvloop: bool) -> None:
    batches: list[tuple[int, float]] = []
    rng = random.Random(1)
    value = rng.randbytes(value_bytes)
    done = 0
    stop_at = 0.0

    async def writer(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < stop_at:
            key = b"bench-%d-%d" % (w, i)
            await gc.write(rng.getrandbits(32), key, Record(version=i + 1, value=value))
            done += 1
            i += 1

    with Store(path) as store:
        gc = GroupCommitter(store, on_batch=lambda n, s: batches.append((n, s)))
        await gc.start()
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - started
        await gc.stop()
    sizes = [n for n, _ in batches]
    syncs = [s * 1000 for _, s in batches]
    print(
        f"loop={'uvloop' if use_uvloop else 'asyncio'} writers={writers} value={value_bytes}B "
        f"elapsed={elapsed:.2f}s acked={done} -> {done / elapsed:,.0f} synced writes/s; "
        f"batches={len(batches)} mean_batch={statistics.mean(sizes):.0f} "
        f"apply_ms p50={statistics.median(syncs):.2f} max={max(syncs):.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", type=int, default=256)
    ap.add_argument("--value-bytes", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop")
    ap.add_argument("--path", help="database directory (default: a fresh temp dir)")
    args = ap.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()

    def go(path: str) -> None:
        asyncio.run(run(path, args.writers, args.value_bytes, args.seconds, args.uvloop))

    if args.path:
        go(args.path)
    else:
        with tempfile.TemporaryDirectory(prefix="dynamopy-bench-") as tmp:
            go(tmp)


if __name__ == "__main__":
    main()
