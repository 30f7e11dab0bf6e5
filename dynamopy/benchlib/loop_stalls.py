"""How long a node's event loop stalls in each place that reads the store in bulk (a figure
to print, never a test).

    python -m dynamopy.benchlib.loop_stalls [--keys 1000000] [--held-fraction 1.0]
        [--load 200000] [--value-bytes 1024] [--repeat 5] [--dir DIR]

A node holding ``--keys`` keys over ``--held-fraction`` of the ring (1.0 for 3 nodes at N=3,
0.25 for 12) is emulated by a real LevelDB ``Store`` holding ``--load`` keys at that density
(tokens ``--keys / (held_fraction * 2**32)`` apart on average, in one window of the ring):
every call below reads a span of tokens inside that window, so it reads as many records as
it would on the full-size node. Hint reads are timed after ``--delivered`` hints of one
target were delivered (deleted: LevelDB keeps their tombstones until a compaction). The store is reopened after loading (caches empty; the
files are in the OS page cache).

Each candidate runs as the node runs it (the peer methods exactly as the transport calls
them, the reply encoded as the frame it sends; the requester's steps through the real
coroutines with in-process peers that answer at once), while a heartbeat task on the same
loop wakes at every loop iteration: the longest gap between two of its wake-ups is the
longest the loop was held by one step (``stall``); ``wall`` is the whole call. Printed per
candidate: records read, the median and worst stall and wall time over ``--repeat`` runs
(different windows each run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
from typing import Any, Awaitable, Callable

from dynamopy.benchlib.anti_entropy_bench import BenchClock
from dynamopy.benchlib.argtypes import nonnegative_int, positive_int, share
from dynamopy.core.membership import ClusterState
from dynamopy.core.merkle import LEAF_BITS
from dynamopy.core.records import Record
from dynamopy.node import anti_entropy as ae_mod
from dynamopy.node.anti_entropy import AntiEntropy, PeerExchange
from dynamopy.node.metrics import Metrics
from dynamopy.node.transfer import BATCH_KEYS, TransferManager
from dynamopy.peer.framing import encode_frame
from dynamopy.storage import Store

TOKENS = 1 << 32
EPOCH = 7


class _Barrier:
    """The transfer source's group-commit barrier, answered at once."""

    async def submit(self, **_kw) -> list:
        return []


async def _stall(make: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    """(longest loop step, wall time in seconds, what ``make()`` returned)."""
    gaps: list[float] = []
    done = False

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = asyncio.get_running_loop().create_task(heartbeat())
    await asyncio.sleep(0)
    started = time.perf_counter()
    out = await make()
    wall = time.perf_counter() - started
    done = True
    await beat
    return max(gaps), wall, out


def _load(path: str, load: int, density: float, value_bytes: int, tombstones: int,
          hints: int) -> int:
    """Write ``load`` keys ``1/density`` tokens apart on average from token 0 (the last
    ``tombstones`` of them deleted) and ``hints`` hints for member "x"; return the window's
    end token."""
    rng = random.Random(1)
    value = rng.randbytes(value_bytes)
    window = min(TOKENS, int(load / density))
    with Store(path) as store:
        batch = []
        for i in range(load):
            deleted = i >= load - tombstones
            batch.append((rng.randrange(window), b"key-%09d" % i,
                          Record(i + 1, deleted, "application/octet-stream",
                                 b"" if deleted else value)))
            if len(batch) == 1000:
                store.apply(batch, sync=False)
                batch = []
        store.apply(batch, sync=False)
        for i in range(0, hints, 1000):
            store.apply(hints_add=[("x", rng.randrange(window), b"hint-%09d" % j,
                                    Record(j + 1, False, "application/octet-stream", value))
                                   for j in range(i, min(hints, i + 1000))], sync=False)
        store.apply(sync=True)
    return window


def _ae(store, peers: dict) -> AntiEntropy:
    state = ClusterState(epoch=EPOCH)

    async def call(peer, method, payload, timeout_s=None):
        out = peers[method](payload)
        return await out if asyncio.iscoroutine(out) else out

    async def repair(epoch, items):
        return len(items)

    ae = AntiEntropy(node_id="a", interval_s=1, rate_keys_s=10**9, call_peer=call,
                     get_state=lambda: state, is_up=lambda m: True, apply_repairs=repair,
                     note_epoch=lambda e, p: None, clock=BenchClock(), rng=random.Random(1),
                     metrics=Metrics())
    ae.store = store   # the peer methods and the requester's steps need only the store
    return ae


def _served(fn, payload) -> Callable[[], Awaitable[Any]]:
    """A peer method called as the transport calls it, its reply encoded as the frame."""
    async def run():
        out = fn(payload, "b")
        if asyncio.iscoroutine(out):
            out = await out
        encode_frame([1, 0, out])
        return out
    return run


async def measure(args) -> None:
    density = args.keys / (args.held_fraction * TOKENS)
    directory = args.dir or tempfile.mkdtemp(prefix="loop-stalls-")
    path = os.path.join(directory, "db")
    t0 = time.perf_counter()
    window = _load(path, args.load, density, args.value_bytes, tombstones=5000, hints=2000)
    print(f"loaded {args.load:,} keys ({args.value_bytes} B values) over tokens [0, {window:,}) "
          f"in {time.perf_counter() - t0:.1f}s: the density of {args.keys:,} keys over "
          f"{args.held_fraction:g} of the ring ({density * (1 << LEAF_BITS):.1f} keys per "
          f"tree leaf)")
    store = Store(path)
    rng = random.Random(2)
    leaf = 1 << LEAF_BITS
    results: dict[str, list[tuple[int, float, float]]] = {}

    def record(name: str, n, measured: tuple[float, float, Any]) -> None:
        """``n``: records read, or a function of the call's result that counts them."""
        stall, wall, out = measured
        results.setdefault(name, []).append((n(out) if callable(n) else n, stall, wall))

    def span_at(tokens: int) -> tuple[int, int]:
        start = rng.randrange(0, max(1, window - tokens)) // leaf * leaf
        return start, start + tokens

    state = ClusterState(epoch=EPOCH)
    xfer = TransferManager(me="a", state=lambda: state, store=store, committer=_Barrier(),
                           clock=BenchClock(), detector=None, call_peer=None,
                           note_epoch=lambda e, p: None, observe_version=lambda v: None,
                           propose=None, hints=None, spawn=None, max_bytes_s=1,
                           stopping=lambda: False, handoff=None)
    tomb: list = []
    cursor = _deliver_hints(store, args.delivered)
    builder = _ae(store, {})
    await builder.attach(store)   # the hash tree, built off the loop as a node builds it
    builder.detach()
    tree = builder.tree
    for _ in range(args.repeat):
        # --- the transfer source: one xfer_pull batch (the gainer asks BATCH_KEYS; the
        # source allows up to 5000)
        for limit in (BATCH_KEYS, 5000):
            s, e = span_at(int(4 * limit / density))
            record(f"xfer_pull limit={limit}", lambda out: len(out[0]), await _stall(
                _served(xfer.rpc_pull, [0, [[s, e]], 0, s, None, limit])))

        # --- anti-entropy, the serving side
        ae = _ae(store, {})
        spans = [(s, s + leaf) for s, _ in [span_at(leaf)
                                            for _ in range(ae_mod.LEAF_BATCH)]]
        listed = [[t, k] for a, b in spans for t, k, _r in store.scan(a, b)]
        record(f"ae_keys {ae_mod.LEAF_BATCH} leaves", len,
               await _stall(_served(ae.rpc_keys, [EPOCH, spans])))
        s, e = span_at(4 * ae_mod.SPAN_PIECE)
        pieces = [(p, p + ae_mod.SPAN_PIECE) for p in range(s, e, ae_mod.SPAN_PIECE)]
        record("ae_keys 4 pieces (no trees)", len,
               await _stall(_served(ae.rpc_keys, [EPOCH, pieces])))
        s, e = span_at(int(8000 / density))
        keys = [[t, k] for t, k, _r in store.scan(s, e)]
        record("ae_get 8000 keys (one 8 MiB reply)", len,
               await _stall(_served(ae.rpc_get, [EPOCH, keys])))
        record(f"ae_get {ae_mod.LEAF_BATCH} leaves' keys", len,
               await _stall(_served(ae.rpc_get, [EPOCH, listed])))
        if not tomb:
            tomb += [[t, k] for t, k, r in store.scan(0, window) if r.deleted]
        rng.shuffle(tomb)
        record("ae_versions 1000 tombstones", 1000, await _stall(
            _served(ae.purge.rpc_versions, [EPOCH, tomb[:1000]])))

        # --- anti-entropy, the requester side: a hand-off to a peer that lacks everything
        # (no trees: 4 pieces a call), and 64 leaves that differ entirely (with trees)
        pushed = []
        ae = _ae(store, {"ae_keys": lambda p: [],
                         "ae_push": lambda p: pushed.append(len(p[1])) or len(p[1])})
        ae.built = False
        s, e = span_at(4 * ae_mod.SPAN_PIECE)
        record("hand-off step, no trees (list + push)", sum(1 for _ in store.scan(s, e)),
               await _stall(lambda: ae._push_missing("b", EPOCH, [(s, e)], PeerExchange())))
        # the same with trees: 64 differing leaves a step (an exchange's step lists and
        # pushes the same way, and pulls through the peer's ae_get)
        ae = _ae(store, {"ae_keys": lambda p: [],
                         "ae_tree": lambda p: [0] * (len(p[1]) // 2),
                         "ae_push": lambda p: len(p[1])})
        ae.tree, ae.built = tree, True
        s, e = span_at(ae_mod.LEAF_BATCH * leaf)
        record(f"hand-off step, trees, {ae_mod.LEAF_BATCH} leaves", len(listed),
               await _stall(lambda: ae._push_missing("b", EPOCH, [(s, e)], PeerExchange())))

        # --- hint delivery reads one batch on the loop
        from dynamopy.node.hints import DELIVERY_BATCH
        record(f"hints() batch of {DELIVERY_BATCH}", DELIVERY_BATCH,
               await _stall(_async(store.hints, "x", DELIVERY_BATCH)))
        # ... and once --delivered hints were delivered (deleted, their LevelDB tombstones
        # not compacted yet): read from the target's first hint, and through the delivery
        # (HintManager._read: from its cursor, off the loop, where this code has them)
        record(f"hints() after {args.delivered:,} delivered, from the start",
               DELIVERY_BATCH, await _stall(_async(store.hints, "y", DELIVERY_BATCH)))
        hm = _hint_manager(store, cursor)
        record(f"hint delivery read after {args.delivered:,} delivered", DELIVERY_BATCH,
               await _stall(lambda: hm._read("y")) if hm is not None else (0.0, 0.0, None))
    store.close()
    if not args.dir:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{'candidate':50} {'records':>8} {'stall ms p50':>12} {'max':>7} "
          f"{'wall ms p50':>11}")
    for name, rows in results.items():
        stalls = [r[1] * 1000 for r in rows]
        walls = [r[2] * 1000 for r in rows]
        print(f"{name:50} {int(statistics.median(r[0] for r in rows)):>8} "
              f"{statistics.median(stalls):>12.1f} {max(stalls):>7.1f} "
              f"{statistics.median(walls):>11.1f}")


def _deliver_hints(store, delivered: int) -> bytes:
    """Add ``delivered`` + 2 batches of hints for "y" and delete the first ``delivered``, as
    a delivery does (a batch at a time); return the last key deleted."""
    from dynamopy.node.hints import DELIVERY_BATCH
    value = b"v" * 1024
    for i in range(0, delivered + 2 * DELIVERY_BATCH, 1000):
        store.apply(hints_add=[("y", i, b"h%09d" % j, Record(j + 1, value=value))
                               for j in range(i, i + 1000)], sync=False)
    last = b""
    while delivered > 0:
        batch = store.hints("y", min(DELIVERY_BATCH, delivered))
        store.apply(hints_delete=[h for h, *_ in batch], sync=False)
        delivered -= len(batch)
        last = batch[-1][0]
    return last


def _hint_manager(store, cursor: bytes):
    """A HintManager over ``store`` whose cursor for "y" is ``cursor`` (None where the
    code has no cursor)."""
    import inspect
    from dynamopy.node.hints import HintManager
    if "inline" not in inspect.signature(HintManager).parameters:
        return None
    hm = HintManager(me="a", state=None, store=store, committer=None, clock=BenchClock(),
                     metrics=None, detector=None, call_peer=None, note_epoch=None,
                     stopping=lambda: False, observe_version=None, tombstone_grace_s=None)
    if cursor:
        hm._after["y"] = cursor
    return hm


def _async(fn, *args) -> Callable[[], Awaitable[Any]]:
    async def run():
        return fn(*args)
    return run


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=positive_int, default=1_000_000,
                    help="keys of the emulated node (default: %(default)s)")
    ap.add_argument("--held-fraction", type=share, default=1.0,
                    help="share of the ring the node replicates, N / nodes at most 1 "
                         "(default: %(default)s)")
    ap.add_argument("--load", type=positive_int, default=200_000,
                    help="keys actually written (default: %(default)s)")
    ap.add_argument("--value-bytes", type=positive_int, default=1024,
                    help="(default: %(default)s)")
    ap.add_argument("--repeat", type=positive_int, default=5,
                    help="windows timed per candidate (default: %(default)s)")
    ap.add_argument("--delivered", type=nonnegative_int, default=100_000,
                    help="hints delivered (deleted) before the hint reads are timed "
                         "(default: %(default)s)")
    ap.add_argument("--dir", default=None, help="where the store goes (default: a temp dir)")
    asyncio.run(measure(ap.parse_args(argv)))

if __name__ == "__main__":
    main()
