"""Anti-entropy costs, as figures to print (never a test).

    python -m dynamopy.benchlib.anti_entropy_bench [--keys 100000] [--differ 100]

1. The tree update cost per write: the same batches of 256 unsynced writes through
   ``Store.apply`` with and without the anti-entropy watcher (the watcher runs on the
   commit thread, so this is the share of a replica's write path it adds).
2. Convergence: three replicas (N=3) over real LevelDB stores hold ``--keys`` keys, of which
   ``--differ`` differ (missing or stale on one replica); one round of the first replica
   brings all three level. Printed: bytes exchanged, against the bytes of a full comparison
   (every key and version listed once per peer), the keys compared, the tree build time.
3. Idle rounds: a ring of ``--members`` (N=3) whose replicas agree; the CPU of one node's
   round (an exchange with each co-replica) that finds nothing, first and then warm.

The components talk in-process (no sockets), exactly as in the unit tests, so the bytes are
the msgpack payloads a real exchange sends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time

import msgpack

from dynamopy.core.membership import ClusterState, Settings
from dynamopy.core.merkle import shared_ranges
from dynamopy.core.records import Record
from dynamopy.node.anti_entropy import AntiEntropy
from dynamopy.node.metrics import Metrics
from dynamopy.storage import Store
from ring import Ring


class BenchClock:
    """Wall and monotonic time from the process; ``sleep`` only yields (a bench runs flat out)."""

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, s: float) -> None:
        await asyncio.sleep(0)


def write_cost(batches: int = 200, batch: int = 256) -> None:
    rng = random.Random(1)
    value = rng.randbytes(1024)
    results = {}
    for watched in (False, True) * 4:
        with tempfile.TemporaryDirectory() as d, Store(d) as store:
            if watched:
                ae = _component("a", None, None)
                list(store.watch(ae._on_change))
            started = time.process_time()  # CPU time: less noisy on a shared machine
            for b in range(batches):
                store.apply([(rng.getrandbits(32), b"k%d-%d" % (b, i), Record(b * batch + i + 1,
                                                                            value=value))
                             for i in range(batch)], sync=False)
            results.setdefault(watched, []).append(time.process_time() - started)
    per = {w: min(t) / (batches * batch) * 1e6 for w, t in results.items()}
    print(f"write path (Store.apply, unsynced batches of {batch}, 1 KiB values, CPU time, "
          f"best of 4): "
          f"{per[False]:.1f} us/write without the tree, {per[True]:.1f} us/write with it "
          f"(+{per[True] - per[False]:.1f} us, {100 * (per[True] / per[False] - 1):.0f}%); "
          f"a synced batch costs milliseconds, so against durable writes the share is smaller")


def _component(me, state_box, stores, peers=None):
    async def call(peer, method, payload, timeout_s=None):
        ae = peers[peer]
        fn = {"ae_tree": ae.rpc_tree, "ae_keys": ae.rpc_keys, "ae_get": ae.rpc_get,
              "ae_push": ae.rpc_push}[method]
        out = fn(payload, me)
        return await out if asyncio.iscoroutine(out) else out

    async def repair(epoch, items):
        return sum(stores[me].apply(items, sync=False))

    return AntiEntropy(node_id=me, interval_s=1, rate_keys_s=10**9, call_peer=call,
                       get_state=lambda: state_box[0], is_up=lambda m: True,
                       apply_repairs=repair, note_epoch=lambda e, p: None, clock=BenchClock(),
                       rng=random.Random(1), metrics=Metrics())


@contextlib.contextmanager
def _replicas(ids: list[str]):
    """``(state box, stores, components)`` of ``ids`` on one ring (N=3) over LevelDB stores in
    a scratch directory; every component detached and store closed on the way out."""
    state = [ClusterState(epoch=1, ring=Ring.build(ids), settings=Settings(n=3, r=2, w=2))]
    with tempfile.TemporaryDirectory() as d:
        stores = {m: Store(f"{d}/{m}") for m in ids}
        peers: dict = {}
        for m in ids:
            peers[m] = _component(m, state, stores, peers)
        try:
            yield state, stores, peers
        finally:
            for m in ids:
                peers[m].detach()
                stores[m].close()


async def convergence(keys: int, differ: int) -> None:
    ids = ["a", "b", "c"]
    with _replicas(ids) as (state, stores, peers):
        ring = state[0].ring
        rng = random.Random(2)
        odd = set(rng.sample(range(keys), differ))
        full_bytes = 0
        for start in range(0, keys, 1000):
            writes = []
            for i in range(start, min(keys, start + 1000)):
                key = b"key-%d" % i
                writes.append((ring.token(key), key, Record(10 + i, value=b"v" * 100)))
                full_bytes += len(msgpack.packb([writes[-1][0], key, 10 + i]))
            for m in ids:
                mine = [w for w in writes if not (m == "c" and int(w[1][4:]) in odd)]
                stores[m].apply(mine, sync=False)
        started = time.perf_counter()
        for m in ids:
            await peers[m].attach(stores[m])
        build_s = (time.perf_counter() - started) / 3
        started = time.perf_counter()
        await peers["a"].round()
        round_s = time.perf_counter() - started
        t = peers["a"].totals
        level = len({peers[m].tree.root() for m in ids}) == 1
        exchanged = t.bytes_sent + t.bytes_received
        print(f"convergence: {keys} keys on 3 replicas, {differ} missing on one; one round of "
              f"one node: {t.keys_repaired} keys repaired, {t.keys_compared} keys compared, "
              f"{exchanged} bytes exchanged vs {2 * full_bytes} for a full key/version "
              f"listing to both peers ({100 * exchanged / (2 * full_bytes):.1f}%); "
              f"round {round_s:.2f}s; tree build {build_s:.2f}s per replica; level={level}")


async def idle_rounds(members: int, rounds: int = 20) -> None:
    """Rounds that find nothing to repair, on a ring of ``members`` (N=3): what every node
    pays every interval. With more members than N the ranges two nodes share are many small
    pieces, so the tree nodes compared are thousands, not one root."""
    ids = [f"m{i}" for i in range(members)]
    with _replicas(ids) as (state, stores, peers):
        ring = state[0].ring
        for i in range(2000):  # a few records everywhere they belong, equal on all replicas
            key = b"key-%d" % i
            for m in ring.preference_list(key, 3):
                stores[m].apply([(ring.token(key), key, Record(10 + i, value=b"v"))], sync=False)
        for m in ids:
            await peers[m].attach(stores[m])
        me = peers[ids[0]]
        times = []
        for _ in range(rounds):
            before = sum(s.keys_compared for s in me.totals.peers.values())
            started = time.process_time()
            await me.round()
            times.append(time.process_time() - started)
            assert sum(s.keys_compared for s in me.totals.peers.values()) == before
        exchanges = len(me.co_replicas(state[0]))
        nodes = sum(len(me.tree.cover_ranges(shared_ranges(ring, 3, ids[0], p)))
                    for p in me.co_replicas(state[0]))
        print(f"idle rounds: {members} members, N=3, {ring.partition_count} partitions; one node's "
              f"round is {exchanges} exchanges comparing {nodes} tree nodes in all; CPU per "
              f"round: first {1000 * times[0]:.1f} ms, then median "
              f"{1000 * sorted(times[1:])[len(times[1:]) // 2]:.1f} ms (of {rounds - 1})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=100_000, help="keys per replica")
    p.add_argument("--differ", type=int, default=100, help="keys one replica lacks")
    p.add_argument("--members", type=int, default=8,
                   help="ring members for the idle rounds (N=3)")
    args = p.parse_args()
    write_cost()
    asyncio.run(convergence(args.keys, args.differ))
    asyncio.run(idle_rounds(args.members))


if __name__ == "__main__":
    main()
