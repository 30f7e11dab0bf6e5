"""One load-driver process: ``python -m dynamopy.benchlib.driver``, controlled over stdin/stdout.

It lives in its own process so that the HTTP client's CPU is not shared with the coordinator of
the benchmark (and, with ``--driver-procs K``, load can use more than one core).

Protocol (one JSON object per line):

1. parent -> driver: the spec (``mode`` is ``mix``, ``noop`` or ``preload``; see ``Driver``).
2. driver -> parent: ``{"ready": true}`` once everything that can be precomputed is.
3. parent -> driver: ``{"start": T0, "end": T1}`` as ``time.monotonic()`` values shared by every
   driver, so all of them measure the same window. Requests *started* in ``[T0, T1)`` are measured;
   those started before ``T0`` are the warm-up; no request is started at or after ``T1``.
4. driver -> parent: the result (latencies in seconds as base64 of a native ``array('d')``,
   so tens of thousands of samples cross the pipe cheaply), then the driver exits.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import sys
import time
from array import array

import aiohttp
from yarl import URL

SEQ_PER_NODE = 8192     # request sequence length per node; long enough that repeats do not matter


def key_name(prefix: str, i: int) -> str:
    """Keys are URL-safe so they can go into a pre-encoded URL as they are."""
    return f"{prefix}{i:06d}"


class Samples:
    """Latencies in a preallocated array: recording one is an index store, not an allocation."""

    __slots__ = ("data", "n")

    def __init__(self, capacity: int) -> None:
        self.data = array("d", bytes(8 * capacity))
        self.n = 0

    def add(self, seconds: float) -> None:
        n = self.n
        if n < len(self.data):
            self.data[n] = seconds
        else:  # more than we planned for: grow rather than lose samples
            self.data.append(seconds)
        self.n = n + 1

    def encode(self) -> str:
        return base64.b64encode(self.data[: self.n].tobytes()).decode()


class Driver:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.urls = [u.rstrip("/") for u in spec["urls"]]
        self.inflight = int(spec["inflight"])
        self.value = random.Random(spec["seed"]).randbytes(int(spec["value_bytes"]))
        capacity = int(spec.get("capacity", 200_000))
        self.get_lat = Samples(capacity)
        self.put_lat = Samples(capacity)
        self.misses = 0          # GET 404: a valid answer, but the key was not found
        self.started = 0         # requests started inside the window, errors included
        self.errors: dict[str, int] = {}
        self.cursor = int(spec.get("offset", 0))
        self.seq = self._sequence()

    def _sequence(self) -> list[tuple[bool, URL]]:
        """(is_get, URL) per request, precomputed so the hot loop only indexes a list.

        Entry j goes to node j % len(urls): round-robin across nodes comes for free from the
        shared cursor, and the length is a multiple of the node count so wrapping keeps it.
        """
        s, n = self.spec, len(self.urls)
        if s["mode"] == "noop":
            return [(True, URL(f"{u}/health", encoded=True)) for u in self.urls]
        if s["mode"] == "preload":
            first, step = s["key_slice"]
            keys = range(first, int(s["keys"]), step)
            return [(False, URL(f"{self.urls[j % n]}/kv/{key_name(s['key_prefix'], k)}"
                                f"?w={s['w']}", encoded=True)) for j, k in enumerate(keys)]
        rng = random.Random(s["seed"])
        seq = []
        for j in range(SEQ_PER_NODE * n):
            k = key_name(s["key_prefix"], rng.randrange(int(s["keys"])))
            is_get = rng.random() < s["get_ratio"]
            query = f"?r={s['r']}" if is_get else f"?w={s['w']}"
            seq.append((is_get, URL(f"{self.urls[j % n]}/kv/{k}{query}", encoded=True)))
        return seq

    def _error(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1

    async def _one(self, session: aiohttp.ClientSession, is_get: bool, url: URL) -> int:
        """Issue one request and drain the body (so the connection goes back to the pool)."""
        if is_get:
            async with session.get(url) as resp:
                await resp.read()
                return resp.status
        async with session.put(url, data=self.value) as resp:
            await resp.read()
            return resp.status

    async def _worker(self, session: aiohttp.ClientSession, start: float, end: float) -> None:
        seq, nseq, perf = self.seq, len(self.seq), time.perf_counter
        rate = float(self.spec.get("rate") or 0)
        while True:
            t0 = perf()
            if t0 >= end:
                return
            i = self.cursor
            self.cursor = i + 1
            if rate:
                # Open loop: request i is due at base + i/rate whatever came before; its
                # latency counts from when it was due, so a stall shows in the figures
                # instead of silently lowering the load (no coordinated omission).
                due = self.paced_base + (i - self.paced_first) / rate
                if due > t0:
                    await asyncio.sleep(due - t0)
                t0 = due
                if t0 >= end:
                    return
            is_get, url = seq[i % nseq]
            err = ""
            try:
                status = await self._one(session, is_get, url)
            except Exception as e:  # a failed request is a data point, not a reason to stop
                status, err = -1, type(e).__name__
            t1 = perf()
            if t0 < start:
                continue  # warm-up
            self.started += 1
            if status == 200:
                (self.get_lat if is_get else self.put_lat).add(t1 - t0)
            elif status == 404 and is_get:
                self.misses += 1
                self.get_lat.add(t1 - t0)
            else:
                self._error(err or f"HTTP {status}")

    async def _preload_worker(self, session: aiohttp.ClientSession) -> None:
        """Each key once; a failed put is retried a few times so gets later mostly hit."""
        seq = self.seq
        while self.cursor < len(seq):
            _, url = seq[self.cursor]
            self.cursor += 1
            for _attempt in range(3):
                try:
                    if await self._one(session, False, url) == 200:
                        self.started += 1
                        break
                except Exception:
                    pass
            else:
                self._error("preload put failed")

    async def run(self, start: float, end: float) -> None:
        # The pool holds exactly one keep-alive connection per in-flight request.
        ssl_ctx = None
        if self.spec.get("ca"):  # an HTTPS cluster with its own CA (bench --tls)
            import ssl
            ssl_ctx = ssl.create_default_context(cafile=self.spec["ca"])
        connector = aiohttp.TCPConnector(limit=self.inflight, limit_per_host=0,
                                         keepalive_timeout=120, ttl_dns_cache=None,
                                         ssl=ssl_ctx if ssl_ctx is not None else True)
        timeout = aiohttp.ClientTimeout(total=float(self.spec["timeout_s"]))
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         auto_decompress=False,
                                         skip_auto_headers=("User-Agent",)) as session:
            if self.spec["mode"] == "preload":
                self.cursor = 0
                jobs = [self._preload_worker(session) for _ in range(self.inflight)]
            else:
                self.paced_base, self.paced_first = time.perf_counter(), self.cursor
                jobs = [self._worker(session, start, end) for _ in range(self.inflight)]
            await asyncio.gather(*jobs)

    def result(self) -> dict:
        t = os.times()
        return {"pid": os.getpid(), "started": self.started, "misses": self.misses,
                "errors": self.errors, "get_lat": self.get_lat.encode(),
                "put_lat": self.put_lat.encode(), "cpu_s": t.user + t.system}


def _send(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    line = sys.stdin.readline()
    if not line:
        return 1
    driver = Driver(json.loads(line))
    _send({"ready": True})
    go = sys.stdin.readline()
    if not go:  # the parent went away before the start: nothing to do
        return 1
    window = json.loads(go)
    # Shared deadlines are time.monotonic(); the hot loop uses perf_counter (same clock on
    # Linux, but converting costs nothing and keeps this correct elsewhere).
    shift = time.perf_counter() - time.monotonic()
    start, end = window.get("start", 0.0) + shift, window.get("end", 0.0) + shift
    try:
        import uvloop
        uvloop.run(driver.run(start, end))
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(driver.run(start, end))
    _send(driver.result())
    return 0


if __name__ == "__main__":
    sys.exit(main())
