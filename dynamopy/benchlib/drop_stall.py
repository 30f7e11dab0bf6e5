"""How long writes wait while a node drops ranges it no longer replicates:
``python -m dynamopy.benchlib.drop_stall``.

A store with ``--keys`` records (tokens spread over the ring), its group committer running on
its commit thread, writers keeping ``--inflight`` single-record writes queued (to keys of
the part of the ring that is kept), and then one ``delete_ranges_in_order`` of
``--drop-share`` of the ring in ``--ranges`` spans (what a node does after a join took part of
its ranges), or ``--drops`` of them back to back, the spans dealt out between them. It
prints how long the drop took, how many writes were acknowledged during it, and the
acknowledgement latency of the writes that overlapped it (p50, p99, max), next to the
same writes before the drop. A store watcher (the node's anti-entropy trees hear every
deleted record) is installed unless ``--no-watch``.

Before/after: the file runs against whichever ``dynamopy`` is on the path, e.g.
``PYTHONPATH=/old/checkout python dynamopy/benchlib/drop_stall.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Optional

from dynamopy.benchlib.argtypes import positive_int
from dynamopy.benchlib.report import percentile
from dynamopy.core.records import Record
from dynamopy.storage.group_commit import GroupCommitter
from dynamopy.storage.store import Store

TOKENS = 1 << 32


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:  # also false for NaN
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}")
    return value


def _load(store: Store, keys: int, value: bytes, rng: random.Random) -> None:
    batch = []
    for i in range(keys):
        batch.append((rng.randrange(TOKENS), b"key-%09d" % i, Record(i + 1, value=value)))
        if len(batch) == 10_000:
            store.apply(batch, sync=False)
            batch = []
    store.apply(batch, sync=True)


def _spans(share: float, count: int) -> list[tuple[int, int]]:
    """``count`` equal spans covering ``share`` of the ring, evenly spaced."""
    step = TOKENS // count
    width = int(step * share)
    return [(i * step, i * step + width) for i in range(count)]


async def _measure(store: Store, spans: list[tuple[int, int]], inflight: int,
                   before_s: float, rng: random.Random, drops: int = 1) -> dict:
    gc = GroupCommitter(store)
    await gc.start()
    kept = [(e, s2) for (_, e), (s2, _) in zip(spans, spans[1:] + [(TOKENS, 0)])]
    lat: list[tuple[float, float]] = []   # (submitted, acked) perf_counter
    stop = False

    async def writer(w: int) -> None:
        j = 0
        while not stop:
            lo, hi = kept[rng.randrange(len(kept))]
            t0 = time.perf_counter()
            await gc.write(rng.randrange(lo, hi), b"w%d-%d" % (w, j), Record(10**12 + j))
            lat.append((t0, time.perf_counter()))
            j += 1

    tasks = [asyncio.ensure_future(writer(w)) for w in range(inflight)]
    await asyncio.sleep(before_s)
    d0 = time.perf_counter()
    dropped = sum(await asyncio.gather(*(gc.delete_ranges_in_order(spans[i::drops])
                                         for i in range(drops))))
    d1 = time.perf_counter()
    await asyncio.sleep(0.2)
    stop = True
    await asyncio.gather(*tasks)
    await gc.stop()
    during = sorted((b - a) * 1000 for a, b in lat if b >= d0 and a <= d1)
    base = sorted((b - a) * 1000 for a, b in lat if b < d0)
    return dict(dropped=dropped, drop_s=d1 - d0,
                acked_during=sum(1 for _a, b in lat if d0 <= b <= d1), during=during, base=base)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dynamopy.benchlib.drop_stall",
                                description="write latency while a store drops ranges")
    p.add_argument("--keys", type=positive_int, default=400_000,
                   help="records in the store (default 400,000)")
    p.add_argument("--value-bytes", type=positive_int, default=100)
    p.add_argument("--drop-share", type=_share, default=0.25,
                   help="share of the ring dropped (default 0.25: a join into 3 nodes)")
    p.add_argument("--ranges", type=positive_int, default=64,
                   help="spans it is dropped in (default 64)")
    p.add_argument("--drops", type=positive_int, default=1,
                   help="submit the spans as this many drops back to back, every Nth span in "
                        "each (two ring changes in a row; default 1)")
    p.add_argument("--inflight", type=positive_int, default=16,
                   help="writes kept queued (default 16)")
    p.add_argument("--no-watch", action="store_true", help="no store watcher")
    p.add_argument("--dir", help="where the store goes (default: a temp folder)")
    p.add_argument("--chunk", type=positive_int,
                   help="records per drop step (group_commit.DROP_CHUNK; for code that drops "
                        "in steps)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if args.chunk is not None:
        from dynamopy.storage import group_commit
        if not hasattr(group_commit, "DROP_CHUNK"):
            p.error("--chunk: this dynamopy drops a range in one batch (no DROP_CHUNK)")
        group_commit.DROP_CHUNK = args.chunk
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="dynamopy-drop-", dir=args.dir)
    try:
        store = Store(os.path.join(work, "db"))
        t = time.perf_counter()
        _load(store, args.keys, b"x" * args.value_bytes, rng)
        print(f"loaded {args.keys} records in {time.perf_counter() - t:.1f} s", flush=True)
        heard = [0]
        if not args.no_watch:
            for _ in store.watch(lambda changes: heard.__setitem__(0, heard[0] + len(changes))):
                pass
        r = asyncio.run(_measure(store, _spans(args.drop_share, args.ranges), args.inflight,
                                 1.0, rng, args.drops))
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"dropped {r['dropped']} records in {r['drop_s'] * 1000:.0f} ms "
          f"({args.ranges} spans in {args.drops} drop{'s' if args.drops > 1 else ''}, "
          f"{args.drop_share:.0%} of the ring, watcher "
          f"{'off' if args.no_watch else 'on'}); {r['acked_during']} writes acked during it")
    for name, ms in (("before the drop", r["base"]), ("overlapping it", r["during"])):
        print(f"  write ack ms {name:16s} n={len(ms):6d} p50 {percentile(ms, 50):7.1f} "
              f"p99 {percentile(ms, 99):7.1f} max {max(ms) if ms else float('nan'):7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
