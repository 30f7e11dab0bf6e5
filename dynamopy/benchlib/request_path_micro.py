"""Micro-benchmarks of the request path's per-answer objects (docs/perf.md, wave 2 session 7):
``python dynamopy/benchlib/request_path_micro.py`` prints CPU µs per

- peer call: a ``PeerServer`` and a ``PeerClient`` in one process on uvloop, 32 calls in
  flight started with ``PeerClient.start`` (client + server CPU, as the data path's calls);
- replica put: ``Replica.put_nowait`` + its synced batch's resolution (a stand-in committer
  resolving every queued write at once) + one caller callback;
- quorum plan: a write's and a read's targets for 2,000 keys (``Coordinator``, 4 members,
  every one up);
- ``HybridClock.observe`` of an older version;
- a timer made and cancelled: a loop timer, and ``dynamopy.deadlines`` when present.

It imports ``dynamopy`` from wherever Python finds it, so the same file measures an older
checkout: ``PYTHONPATH=/path/to/old python dynamopy/benchlib/request_path_micro.py`` (``--peer-only``:
the first figure only). Each
figure is the best of a few repeats (CPU time, ``time.process_time``). Prints; asserts
nothing. On a busy machine compare A and B alternately, several times.
"""

from __future__ import annotations

import asyncio
import os
import time
import timeit
import types

import uvloop

import dynamopy
from dynamopy.core.membership import ClusterState, Member, Settings
from dynamopy.core.read_plan import plan_read
from dynamopy.core.records import Record
from dynamopy.core.versions import HybridClock, compose
from dynamopy.node.clock import SystemClock
from dynamopy.node.coordinator import Coordinator
from dynamopy.node.metrics import Metrics
from dynamopy.node.replica import Replica
from dynamopy.peer import PeerClient, PeerServer
from ring import Ring

PAYLOAD = [7, 123456, b"user:0000012345", [1_700_000_000_123_456, False, "b", b"v" * 100], None]


async def peer_call_us(calls: int = 50_000, inflight: int = 32) -> float:
    server = PeerServer("s", b"secret", None, sync_methods={"echo": lambda p, peer: p})
    host, port = await server.start("127.0.0.1", 0)
    addr = f"{host}:{port}"
    client = PeerClient("c", b"secret")
    await client.call(addr, "echo", 1, 1.0)
    finished = asyncio.get_running_loop().create_future()
    left = [calls]

    def again(fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        left[0] -= 1
        if left[0] <= 0:
            if not finished.done():
                finished.set_result(None)
            return
        client.start(addr, "echo", PAYLOAD, 2.0).add_done_callback(again)

    t0 = time.process_time()
    for _ in range(inflight):
        client.start(addr, "echo", PAYLOAD, 2.0).add_done_callback(again)
    await finished
    cpu = time.process_time() - t0
    await client.close()
    await server.stop()
    return cpu / calls * 1e6


async def replica_put_us(puts: int = 20_000) -> float:
    loop = asyncio.get_running_loop()
    queued: list = []

    def write_nowait(token, key, record):  # older checkouts
        fut = loop.create_future()
        queued.append(fut)
        return fut

    def write_into(token, key, record, sink):
        queued.append(sink)
        return sink

    committer = types.SimpleNamespace(write_nowait=write_nowait, write_into=write_into)
    replica = Replica(me="n1", state=lambda: None, store=None, committer=committer,
                      clock=SystemClock(), metrics=Metrics(), catchup=None, poke_metalog=None,
                      note_epoch=None, observe_version=lambda v: None, hints=None)
    record = Record(5, value=b"v")
    best = float("inf")
    for _ in range(5):
        queued.clear()
        got = [0]

        def answered(fut: asyncio.Future) -> None:
            got[0] += 1

        t0 = time.process_time()
        for _ in range(puts):
            replica.put_nowait(1, b"k", record).add_done_callback(answered)
        for sub in queued:
            sub.set_result([True])
        while got[0] < puts:
            await asyncio.sleep(0)
        best = min(best, (time.process_time() - t0) / puts * 1e6)
    return best


def plan_us() -> float:
    members = ("n1", "n2", "n3", "n4")
    ring = Ring.build(list(members))
    state = ClusterState(epoch=1, settings=Settings(n=3), acceptors=members, ring=ring,
                         members={m: Member(m, f"http://{m}", f"{m}:1", i + 1)
                                  for i, m in enumerate(members)})
    detector = types.SimpleNamespace(is_up=lambda m: True)
    coord = Coordinator(me="n1", config=None, state=lambda: state, clock=None, metrics=None,
                        detector=detector, replica=None, hints=None, call_peer=None,
                        versions=None, observe_version=None, serving_state=None,
                        require_ready=None, wait_for_epoch=None)
    tokens = [ring.token(f"key-{i}".encode()) for i in range(2000)]
    if hasattr(coord, "_read_targets"):
        def one(t):
            coord._targets(state, t, True)
            coord._read_targets(state, t, True)
    else:
        def one(t):
            coord._targets(state, t, True)
            plan_read(state.ring.walk_token(t), 3, detector.is_up, coordinator="n1")

    def all_keys():
        for t in tokens:
            one(t)

    all_keys()
    return min(timeit.repeat(all_keys, number=10, repeat=5)) / (10 * len(tokens)) * 1e6


def observe_us() -> float:
    clock = HybridClock(3)
    clock.next(1_700_000_000_000)
    older = compose(1_699_999_999_000, 5, 2)
    n = 500_000
    return min(timeit.repeat(lambda: clock.observe(older), number=n, repeat=3)) / n * 1e6


async def timers_us(n: int = 200_000) -> tuple[float, float | None]:
    loop = asyncio.get_running_loop()

    def cb() -> None:
        pass

    t0 = time.process_time()
    for _ in range(n):
        loop.call_at(loop.time() + 2.5, cb).cancel()
    plain = (time.process_time() - t0) / n * 1e6
    if not os.path.exists(os.path.join(os.path.dirname(dynamopy.__file__), "deadlines.py")):
        return plain, None  # an older checkout (an editable install would find another's)
    from dynamopy.deadlines import Deadlines
    d = Deadlines(loop)
    t0 = time.process_time()
    for _ in range(n):
        d.at(loop.time() + 2.5, cb).cancel()
    return plain, (time.process_time() - t0) / n * 1e6


def main() -> None:
    import sys
    print(f"dynamopy from {dynamopy.__file__}")
    print(f"peer call (client + server): {min(uvloop.run(peer_call_us()) for _ in range(3)):.2f} µs")
    if sys.argv[1:] == ["--peer-only"]:
        return
    print(f"replica put + resolution:    {uvloop.run(replica_put_us()):.2f} µs")
    print(f"write + read plan:           {plan_us():.2f} µs")
    print(f"HybridClock.observe:         {observe_us():.3f} µs")
    plain, queued = uvloop.run(timers_us())
    print(f"timer made and cancelled:    loop {plain:.2f} µs"
          + (f", Deadlines {queued:.2f} µs" if queued is not None else ", (no Deadlines)"))


if __name__ == "__main__":
    main()
