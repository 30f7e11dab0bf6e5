"""One load-driver process: ``python -m loadgen.driver``, driven over stdin/stdout (JSON lines).

Protocol:

1. parent -> driver: the setup (urls, this process's ``part`` of ``parts``, keys, distribution,
   value size, seed, timeout, token). The driver keeps its key share and its acknowledgement
   book (``staleness.AckBook``) for its whole life, across phases.
2. per phase: parent -> ``{"phase": {...}}``; driver -> ``{"ready": true}``; parent ->
   ``{"start": T0, "end": T1}`` (``time.monotonic()``, shared by every driver); while it runs
   the driver prints ``{"tick": {"ok": n, "err": m}}`` about twice a second; then the result.
   Requests *started* in ``[T0, T1)`` are measured; earlier ones are the warm-up.
3. ``{"exit": true}`` or end of input: the driver exits.

Phase kinds: ``preload`` (every own key once), ``mix`` (reads and writes of the workload, plus
t-visibility probes), ``health`` (``GET /health``: the driver's own ceiling).

Like a real client, each request goes to a live node (round robin, skipping nodes that failed
in the last second) and a request that could not be delivered -- connection refused, the
connection dropped before an answer, or a 503 other than ``quorum_unavailable`` (``not_ready``:
the node is starting or catching up) -- is retried on the next node.
Nothing else is retried: a 503 ``quorum_unavailable`` or a timeout is an error of the request.
Latency counts from the first attempt (or, open loop, from when the request was due).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from array import array

import aiohttp
from yarl import URL

from loadgen import histogram
from loadgen.keys import KeyPicker, key_name
from loadgen.staleness import AckBook, StaleStats

DOWN_FOR_S = 1.0
_RETRY = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
          aiohttp.ClientPayloadError)


class Driver:
    def __init__(self, setup: dict) -> None:
        self.setup = setup
        self.urls = [u.rstrip("/") for u in setup["urls"]]
        self.part, self.parts = int(setup["part"]), int(setup["parts"])
        self.rng = random.Random(int(setup["seed"]) * 1_000_003 + self.part)
        self.picker = KeyPicker(setup["distribution"], int(setup["keys"]), self.part,
                                self.parts, self.rng)
        self.value = random.Random(setup["seed"]).randbytes(int(setup["value_bytes"]))
        self.book = AckBook()
        self.down_until = [0.0] * len(self.urls)
        self.cursor = self.part
        self.headers = ({"Authorization": f"Bearer {setup['token']}"}
                        if setup.get("token") else {})
        self.session: aiohttp.ClientSession | None = None

    # ---- one request, with the client's retry on another node ------------------------
    def _node(self) -> int:
        n, now = len(self.urls), time.monotonic()
        for _ in range(n):
            i = self.cursor % n
            self.cursor += 1
            if self.down_until[i] <= now:
                return i
        i = self.cursor % n  # every node looks down: try anyway
        self.cursor += 1
        return i

    async def _once(self, method: str, url: URL) -> tuple[int, int, str]:
        """(status, version from the ETag or 0, error code for statuses other than 200/404)."""
        kw = {"data": self.value} if method == "PUT" else {}
        async with self.session.request(method, url, headers=self.headers, **kw) as resp:
            body = await resp.read()
            status = resp.status
            etag = resp.headers.get("ETag")
        version = int(etag.strip('"')) if etag and status == 200 else 0
        code = ""
        if status not in (200, 404):
            try:
                code = json.loads(body).get("error") or f"http_{status}"
            except (ValueError, AttributeError):
                code = f"http_{status}"
        return status, version, code

    async def request(self, method: str, path: str) -> tuple[int, int, str]:
        last = "unreachable"
        for _attempt in range(len(self.urls)):
            i = self._node()
            url = URL(self.urls[i] + path, encoded=True)
            try:
                status, version, code = await self._once(method, url)
            except _RETRY as e:
                self.down_until[i] = time.monotonic() + DOWN_FOR_S
                last = "refused" if isinstance(e, aiohttp.ClientConnectorError) else "disconnected"
                continue
            except asyncio.TimeoutError:
                self.down_until[i] = time.monotonic() + DOWN_FOR_S
                return -1, 0, "timeout"
            except aiohttp.ClientError as e:
                return -1, 0, type(e).__name__
            if status == 503 and code != "quorum_unavailable":
                # This node cannot serve yet (not_ready: starting, catching up): like a
                # refused connection, try another; a quorum failure is an answer.
                self.down_until[i] = time.monotonic() + DOWN_FOR_S
                last = code or "http_503"
                continue
            return status, version, code
        return -1, 0, last

    # ---- phases -------------------------------------------------------------------------
    def _new_phase(self, spec: dict) -> None:
        self.spec = spec
        self.read_lat, self.write_lat = array("d"), array("d")
        self.reads = self.writes = self.not_found = self.errors_total = 0
        self.errors: dict[str, int] = {}
        self.stale = StaleStats()
        self.tl_ok: dict[int, int] = {}
        self.tl_err: dict[int, int] = {}
        self.probes = {str(t): [0, 0] for t in spec.get("t_ms", ())}
        self.gaps: dict[str, list] = {str(t): [] for t in spec.get("t_ms", ())}
        self.probe_errors = 0
        self.trips: list = []
        self.cpu0 = os.times()

    def _error(self, code: str, t1: float) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1
        self.errors_total += 1
        sec = int(t1 - self.start)
        self.tl_err[sec] = self.tl_err.get(sec, 0) + 1

    def _ok(self, t1: float) -> None:
        sec = int(t1 - self.start)
        self.tl_ok[sec] = self.tl_ok.get(sec, 0) + 1

    async def _mix_worker(self, w: int) -> None:
        spec, perf, book = self.spec, time.perf_counter, self.book
        r, wq = f"?r={spec['r']}", f"?w={spec['w']}"
        rate, ratio = float(spec.get("rate") or 0.0), float(spec["read_ratio"])
        start, end = self.start, self.end
        while True:
            t0 = perf()
            if t0 >= end:
                return
            if rate:
                # Open loop: request i is due at base + i/rate whatever happened before; its
                # latency counts from when it was due (wrk2), so a stall shows in the
                # figures instead of quietly lowering the offered load.
                i = self.next_due
                self.next_due = i + 1
                due = self.paced_base + i / rate
                if due >= end:
                    return
                if due > t0:
                    await asyncio.sleep(due - t0)
                t0 = due
            is_read = self.rng.random() < ratio
            k = self.picker.pick(is_read)
            name = key_name(k)
            if is_read:
                snap = book.before_read(k)
                status, version, code = await self.request("GET", f"/kv/{name}{r}")
            else:
                status, version, code = await self.request("PUT", f"/kv/{name}{wq}")
                if status == 200:
                    book.acked(k, version)  # warm-up acks count too: they are real acks
            t1 = perf()
            if t0 < start:
                continue
            if status == 200 or (is_read and status == 404):
                self._ok(t1)
                if is_read:
                    self.reads += 1
                    self.not_found += status == 404
                    self.read_lat.append(t1 - t0)
                    self.stale.add(book.versions_behind(k, snap, version))
                else:
                    self.writes += 1
                    self.write_lat.append(t1 - t0)
            else:
                self._error(code or f"http_{status}", t1)

    async def _probe_worker(self, j: int) -> None:
        """Write a key, wait t ms after the ack, read it: did the read see the write?"""
        spec, perf = self.spec, time.perf_counter
        points = list(spec["t_ms"])
        name = f"lg-probe-{self.setup.get('probe_id', self.part)}-{j}"
        n = j
        while perf() < self.end:
            t_ms = points[n % len(points)]
            n += 1
            status, version, _ = await self.request("PUT", f"/kv/{name}?w={spec['w']}")
            t_ack = perf()
            if status != 200:
                self.probe_errors += t_ack >= self.start
                await asyncio.sleep(0.01)
                continue
            if t_ms:
                await asyncio.sleep(t_ms / 1000.0)
            sent = perf()
            status, got, _ = await self.request("GET", f"/kv/{name}?r={spec['r']}")
            if t_ack < self.start or sent >= self.end:
                continue
            if status in (200, 404):
                cell = self.probes[str(t_ms)]
                cell[1] += 1
                cell[0] += got >= version
                self.gaps[str(t_ms)].append(sent - t_ack)
            else:
                self.probe_errors += 1

    async def _trip_worker(self) -> None:
        """Beside the probes: GET /health round trips, from which the model estimates the
        client <-> node trips that a t measured at the client includes."""
        perf = time.perf_counter
        while perf() < self.end:
            t0 = perf()
            status, _, _ = await self.request("GET", "/health")
            if status == 200 and t0 >= self.start:
                self.trips.append(round(perf() - t0, 6))
            await asyncio.sleep(0.02)

    async def _health_worker(self) -> None:
        perf = time.perf_counter
        while True:
            t0 = perf()
            if t0 >= self.end:
                return
            status, _, code = await self.request("GET", "/health")
            t1 = perf()
            if t0 < self.start:
                continue
            if status == 200:
                self._ok(t1)
                self.reads += 1
                self.read_lat.append(t1 - t0)
            else:
                self._error(code or f"http_{status}", t1)

    async def _preload_worker(self, keys: list) -> None:
        w = self.spec["w"]
        while keys:
            k = keys.pop()
            for _attempt in range(5):
                status, version, _ = await self.request("PUT", f"/kv/{key_name(k)}?w={w}")
                if status == 200:
                    self.book.acked(k, version)
                    self.writes += 1
                    break
            else:
                self._error("preload_failed", time.perf_counter())

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            _send({"tick": {"ok": self.reads + self.writes, "err": self.errors_total}})

    async def run_phase(self, start: float, end: float) -> dict:
        spec = self.spec
        self.start, self.end = start, end
        inflight = int(spec["inflight"])
        kind = spec["kind"]
        if kind == "preload":
            self.start = time.perf_counter()
            keys = list(self.picker.own())
            jobs = [self._preload_worker(keys) for _ in range(inflight)]
        elif kind == "health":
            jobs = [self._health_worker() for _ in range(inflight)]
        else:
            self.paced_base, self.next_due = time.perf_counter(), 0
            jobs = [self._mix_worker(i) for i in range(inflight)]
            probes = int(spec.get("probe_workers", 0))
            jobs += [self._probe_worker(j) for j in range(probes)]
            jobs += [self._trip_worker()] if probes else []
        ticker = asyncio.get_running_loop().create_task(self._ticker())
        try:
            await asyncio.gather(*jobs)
        finally:
            ticker.cancel()
        return self.result()

    def result(self) -> dict:
        t = os.times()
        gaps = {}
        for key, values in self.gaps.items():
            s = sorted(values)
            gaps[key] = round(s[len(s) // 2] * 1000.0, 3) if s else None
        return {"pid": os.getpid(), "reads": self.reads, "writes": self.writes,
                "not_found": self.not_found, "errors": self.errors,
                "read_hist": histogram.encode(histogram.from_seconds(self.read_lat)),
                "write_hist": histogram.encode(histogram.from_seconds(self.write_lat)),
                "stale": self.stale.to_dict(),
                "timeline_ok": {str(k): v for k, v in self.tl_ok.items()},
                "timeline_err": {str(k): v for k, v in self.tl_err.items()},
                "probes": self.probes, "probe_gap_p50_ms": gaps,
                "probe_errors": self.probe_errors, "health_rtt_s": self.trips,
                "cpu_s": round((t.user + t.system) - (self.cpu0.user + self.cpu0.system), 3)}


def _send(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _serve() -> int:
    loop = asyncio.get_running_loop()

    async def read() -> dict | None:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        return json.loads(line) if line.strip() else None

    setup = await read()
    if setup is None:
        return 1
    driver = Driver(setup)
    inflight_max = int(setup.get("inflight_max", 256))
    connector = aiohttp.TCPConnector(limit=inflight_max + 16, limit_per_host=0,
                                     keepalive_timeout=120, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=float(setup["timeout_s"]))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     auto_decompress=False,
                                     skip_auto_headers=("User-Agent",)) as session:
        driver.session = session
        _send({"ready": True})
        while True:
            msg = await read()
            if msg is None or msg.get("exit"):
                return 0
            driver._new_phase(msg["phase"])
            _send({"ready": True})
            go = await read()
            if go is None:
                return 1
            # Shared deadlines are time.monotonic(); the hot loop uses perf_counter.
            shift = time.perf_counter() - time.monotonic()
            result = await driver.run_phase(go["start"] + shift, go["end"] + shift)
            _send({"result": result})


def main() -> int:
    try:
        import uvloop
        return uvloop.run(_serve())
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(_serve())


if __name__ == "__main__":
    sys.exit(main())
