"""Security hardening against real `dynamopy serve` processes: nothing unauthenticated can
exhaust a node (peer and HTTP ports), and insecure defaults never leave loopback.

One 3-node cluster is shared by the attack tests; every attack runs a bounded time and the
test then checks the node still serves quorum writes and reads."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import httpx
import msgpack
import pytest

from dynamopy.peer import auth
from dynamopy.peer.framing import MAX_FRAME_BYTES, encode_frame
from dynamopy.peer.limits import PREAUTH_MAX_FRAME_BYTES
from tests.integration.cluster import LocalCluster, allocate_ports

RSS_BOUND_BYTES = 64 * 1024 * 1024
READ_TIMEOUT_S = 2.0
UNAUTH_CAP = 64  # the default of --peer-max-unauthenticated
LIMIT_FLAGS = ["--http-read-timeout-s", str(READ_TIMEOUT_S), "--max-concurrent-requests", "64"]


@pytest.fixture(scope="module")
def sec_cluster(tmp_path_factory):
    c = LocalCluster(str(tmp_path_factory.mktemp("security")), 3, extra=LIMIT_FLAGS)
    c.start()
    yield c
    c.stop()


# ---- helpers --------------------------------------------------------------------------------
def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def peer_addr(c: LocalCluster, i: int) -> tuple[str, int]:
    return "127.0.0.1", c.base + 1000 + i


def metric(c: LocalCluster, i: int, name: str, **labels) -> float:
    text = httpx.get(c.url(i) + "/metrics", timeout=5.0).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}{{{re.escape(want)}}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def quorum_round(c: LocalCluster, tag: str, coordinators=(0, 1, 2)) -> None:
    """A write with W=N=3 and a read with R=3 through each coordinator: every node's peer
    server must answer its authenticated peers."""
    for i in coordinators:
        with c.client(i, timeout_s=10.0) as cl:
            key = f"sec-{tag}-{i}"
            assert cl.put(key, f"v-{tag}".encode(), w=3)["acks"] == 3
            assert cl.get(key, r=3).value == f"v-{tag}".encode()


class Attack:
    """Run ``make_tasks(stop_event)`` coroutines on an event loop in a background thread."""

    def __init__(self, make_tasks) -> None:
        self._make_tasks = make_tasks
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.errors: list = []

    def _run(self) -> None:
        async def main():
            self._stop = asyncio.Event()
            await asyncio.gather(*self._make_tasks(self._stop), return_exceptions=True)
        self._loop.run_until_complete(main())

    def __enter__(self) -> "Attack":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "attack tasks did not stop"


async def _until(stop: asyncio.Event, coro_fn) -> None:
    """Repeat ``coro_fn`` (one connection's life) until stopped; errors mean 'closed by the
    node', which is what we want, so reconnect after a short pause."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(coro_fn(stop), 10.0)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.02)


async def _close(writer) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


# ---- the memory bound -----------------------------------------------------------------------
def test_unauthenticated_big_frames_cannot_exhaust_memory(sec_cluster):
    """100 unauthenticated connections, 30 announcing the largest frame the port accepts
    (32 MiB) and streaming data into it, 70 announcing the largest pre-handshake frame and
    holding it half-sent, reconnecting whenever the node drops them (peer limits at their
    defaults). The node's RSS stays
    within +64 MiB and it keeps serving W=3 writes to and from its authenticated peers."""
    c = sec_cluster
    host, port = peer_addr(c, 0)
    pid = c.procs[0].pid
    quorum_round(c, "mem-warm")
    baseline = rss_bytes(pid)
    chunk = b"\xa5" * 65536

    async def big_frame(stop):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(struct.pack(">I", MAX_FRAME_BYTES))
            sent = 0
            while sent < MAX_FRAME_BYTES and not stop.is_set():
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        finally:
            await _close(writer)

    async def held_preauth_frame(stop):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(struct.pack(">I", PREAUTH_MAX_FRAME_BYTES)
                         + b"\0" * (PREAUTH_MAX_FRAME_BYTES - 1))
            await writer.drain()
            while not stop.is_set():   # hold until the node drops us
                if not await reader.read(65536):
                    return
        finally:
            await _close(writer)

    def tasks(stop):
        return [_until(stop, big_frame if k < 30 else held_preauth_frame) for k in range(100)]

    peak = baseline
    writes = 0
    deadline = time.monotonic() + 4.0   # the attack's length: at least 4 s and 3 W=3 rounds
    with Attack(tasks):
        while time.monotonic() < deadline or writes < 3:
            quorum_round(c, f"mem-{writes}", coordinators=(writes % 3,))
            writes += 1
            peak = max(peak, rss_bytes(pid))
            if peak - baseline > RSS_BOUND_BYTES:
                break   # fail fast (and keep the machine safe) if the bound is broken
    print(f"RSS baseline {baseline / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB "
          f"(+{(peak - baseline) / 2**20:.1f} MiB); {writes} W=3 rounds during the attack")
    assert peak - baseline <= RSS_BOUND_BYTES, (
        f"RSS grew by {(peak - baseline) / 2**20:.1f} MiB under the attack")
    assert c.procs[0].poll() is None
    # The limits did the work (not luck): oversized pre-handshake frames and the cap fired.
    assert metric(c, 0, "dynamopy_peer_rejected_total", reason="preauth_bad_frame") > 0
    assert metric(c, 0, "dynamopy_peer_rejected_total", reason="unauthenticated_cap") > 0
    quorum_round(c, "mem-after")


# ---- peer-port fuzzing ----------------------------------------------------------------------
def test_peer_port_fuzz_keeps_the_node_serving(sec_cluster):
    c = sec_cluster
    host, port = peer_addr(c, 1)
    # a failing run prints SEED=n; DYNAMOPY_FUZZ_SEED=n replays it
    seed = int(os.environ.get("DYNAMOPY_FUZZ_SEED") or int.from_bytes(os.urandom(4), "big"))
    rng = random.Random(seed)
    secret = c.secret.encode()
    print(f"SEED={seed}")

    def random_obj(depth=0):
        kind = rng.randrange(8 if depth < 2 else 5)
        if kind == 0:
            return rng.randrange(-2**63, 2**64)
        if kind == 1:
            return rng.randbytes(rng.randrange(40))
        if kind == 2:
            return "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(20)))
        if kind == 3:
            return rng.choice([None, True, False, 1.5])
        if kind == 4:
            return rng.choice(["put", "get", "ping", "meta_prepare", "hint", "id", "nonce"])
        if kind == 5:
            return [random_obj(depth + 1) for _ in range(rng.randrange(5))]
        if kind == 6:
            return {random_obj(depth + 1): random_obj(depth + 1) for _ in range(rng.randrange(4))}
        return [0, rng.randrange(100), rng.choice(["put", "get", "ping", "nope"]),
                random_obj(depth + 1)]

    def random_frame() -> bytes:
        kind = rng.randrange(5)
        if kind == 0:   # garbage bytes
            return rng.randbytes(rng.randrange(1, 300))
        if kind == 1:   # a header announcing a random size, then a few bytes (truncated)
            return struct.pack(">I", rng.randrange(2**32)) + rng.randbytes(rng.randrange(50))
        if kind == 2:   # a well-formed frame of random content
            return encode_frame(random_obj())
        if kind == 3:   # a valid request before the handshake
            return encode_frame([0, 1, rng.choice(["put", "get", "ping"]),
                                 {"key": b"k", "version": 1, "value": b"v"}])
        body = msgpack.packb(random_obj(), use_bin_type=True)   # truncated valid frame
        return (struct.pack(">I", len(body)) + body)[: rng.randrange(1, len(body) + 4)]

    captured: list[bytes] = []

    async def handshake(reader, writer, client_id="fuzz"):
        (n,) = struct.unpack(">I", await reader.readexactly(4))
        nonce_s = auth.parse_server_hello(msgpack.unpackb(await reader.readexactly(n)))
        answer = encode_frame(auth.client_answer(secret, client_id, nonce_s,
                                                 rng.randbytes(auth.NONCE_BYTES)))
        writer.write(answer)
        return answer

    async def one(k):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            mode = k % 4
            if mode == 0:            # random frames before the handshake
                await reader.readexactly(4)
                for _ in range(rng.randrange(1, 4)):
                    writer.write(random_frame())
            elif mode == 1:          # a replayed handshake answer (other server nonce)
                await asyncio.sleep(0)
                if captured:
                    writer.write(rng.choice(captured))
            elif mode == 2:          # authenticate, then random frames / replayed handshake
                captured.append(await handshake(reader, writer))
                writer.write(random_frame() if rng.random() < 0.7 else captured[-1])
            else:                    # connect and vanish, possibly mid-header
                writer.write(rng.randbytes(rng.randrange(4)))
            await writer.drain()
            try:
                await asyncio.wait_for(reader.read(65536), 0.2)
            except asyncio.TimeoutError:
                pass
        finally:
            writer.transport.abort()

    async def main():
        for start in range(0, 500, 50):
            await asyncio.gather(*(one(k) for k in range(start, start + 50)),
                                 return_exceptions=True)

    asyncio.run(asyncio.wait_for(main(), 60.0))
    assert c.procs[1].poll() is None, f"SEED={seed}: node died\n{c.log_tail(1)}"
    quorum_round(c, "fuzz")
    c.wait_until(lambda: all(m["alive"] for m in c.cluster_info(1)["members"]), 20.0,
                 "all members alive after the fuzz")
    assert metric(c, 1, "dynamopy_peer_rejected_total", reason="handshake_failed") > 0


# ---- slowloris on both ports ----------------------------------------------------------------
def test_slowloris_on_both_ports_is_cut_off(sec_cluster):
    """80 HTTP connections trickle a request's headers and 20 a request's body, one byte a
    second, 5 say nothing, 5 stay idle after one request; 80 peer connections trickle a
    handshake frame. The node keeps serving; the read timeout (2 s here), the keep-alive
    timeout (5 s), the handshake timeout (5 s) and the cap on unauthenticated peer connections
    (64) close every one of them."""
    c = sec_cluster
    http_host, http_port = "127.0.0.1", c.base + 2
    peer_host, peer_port = peer_addr(c, 2)
    outcome: dict[str, list] = {"header": [], "body": [], "peer": [], "silent": [],
                                "keepalive": []}

    async def trickle(kind, host, port, prefix: bytes, drip: bytes):
        reader, writer = await asyncio.open_connection(host, port)
        got = b""
        try:
            writer.write(prefix)
            for _ in range(60):
                try:
                    data = await asyncio.wait_for(reader.read(65536), 1.0)
                except asyncio.TimeoutError:
                    writer.write(drip)
                    continue
                if kind == "keepalive" and got == b"":
                    got = b"(answered)"   # the one request was answered; now stay idle
                    continue
                if not data:
                    break
                got += data
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            writer.transport.abort()
        outcome[kind].append(got)

    async def main():
        put_head = (b"PUT /kv/slow HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\n"
                    b"content-length: 1000\r\n\r\n")
        tasks = [trickle("header", http_host, http_port, b"GET /kv/a HTTP/1.1\r\n", b"x")
                 for _ in range(80)]
        tasks += [trickle("body", http_host, http_port, put_head, b"v") for _ in range(20)]
        tasks += [trickle("peer", peer_host, peer_port, struct.pack(">I", 100), b"\x01")
                  for _ in range(80)]
        # Connects and says nothing; and a keep-alive connection idle after one request.
        tasks += [trickle("silent", http_host, http_port, b"", b"") for _ in range(5)]
        tasks += [trickle("keepalive", http_host, http_port,
                          b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n", b"") for _ in range(5)]
        serving = asyncio.get_running_loop().run_in_executor(
            None, quorum_round, c, "slowloris", (2,))
        await asyncio.gather(*tasks)
        await serving

    asyncio.run(asyncio.wait_for(main(), 90.0))
    # Every trickling connection was closed by the node well before our 60 drips ran out.
    assert all(len(v) for v in outcome.values())
    for got in outcome["header"] + outcome["silent"]:
        assert got.startswith(b"HTTP/1.1 408"), got[:200]
        assert json.loads(got.split(b"\r\n\r\n", 1)[1])["error"] == "timeout"
    # Cut off mid-body: nothing stored under the slow key.
    assert c.local_record(2, "slow") is None
    assert outcome["keepalive"] == [b"(answered)"] * 5   # closed by the keep-alive timeout
    assert metric(c, 2, "dynamopy_http_rejected_total", reason="read_timeout") >= 105
    # Peer trickles: 64 wait out the handshake timeout, the oldest 16 are dropped by the cap.
    assert metric(c, 2, "dynamopy_peer_rejected_total", reason="unauthenticated_cap") >= 16
    assert (metric(c, 2, "dynamopy_peer_rejected_total", reason="handshake_timeout")
            + metric(c, 2, "dynamopy_peer_rejected_total", reason="unauthenticated_cap")) >= 80
    quorum_round(c, "after-slowloris")


def test_oversized_headers_and_too_many_requests(sec_cluster):
    c = sec_cluster
    url = c.url(0)
    with socket.create_connection(("127.0.0.1", c.base)) as s:
        s.sendall(b"GET /kv/a HTTP/1.1\r\nhost: x\r\n" + b"x-pad: " + b"p" * 70_000 + b"\r\n\r\n")
        s.settimeout(10.0)
        got = b""
        while True:
            data = s.recv(65536)
            if not data:
                break
            got += data
    assert got.startswith(b"HTTP/1.1 431"), got[:200]
    assert json.loads(got.split(b"\r\n\r\n", 1)[1])["error"] == "bad_request"

    # 64 PUTs holding their requests open (body not sent yet) use up the cap of 64.
    held = []
    try:
        for _ in range(64):
            s = socket.create_connection(("127.0.0.1", c.base))
            s.sendall(b"PUT /kv/held HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n")
            held.append(s)
        c.wait_until(lambda: httpx.get(url + "/kv/other", timeout=5.0).status_code == 503,
                     10.0, "the 65th request refused")
        r = httpx.get(url + "/kv/other", timeout=5.0)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"] == "overloaded"
        assert httpx.get(url + "/health", timeout=5.0).status_code == 200
    finally:
        for s in held:
            s.close()
    c.wait_until(lambda: httpx.get(url + "/kv/other", timeout=5.0).status_code == 404,
                 10.0, "requests served again once the held ones are gone")
    assert metric(c, 0, "dynamopy_http_rejected_total", reason="overloaded") >= 1


# ---- insecure defaults stay on loopback -----------------------------------------------------
def _serve_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNAMOPY_")}
    return env


def test_non_loopback_host_with_the_default_secret_refuses_to_start(tmp_path):
    base = allocate_ports(1)
    data = tmp_path / "n1"
    p = subprocess.run([sys.executable, "-m", "dynamopy", "serve", "--host", "0.0.0.0",
                        "--port", str(base), "--peer-port", str(base + 1000),
                        "--data-dir", str(data)],
                       env=_serve_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("dynamopy: error:") and "--cluster-secret" in lines[0]
    assert "--insecure" in lines[0] and "Traceback" not in p.stderr
    assert not data.exists()   # refused before touching the data dir or binding a port


def test_insecure_flag_starts_with_warnings(tmp_path):
    base = allocate_ports(1)
    log_path = tmp_path / "n1.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dynamopy", "serve", "--host", "0.0.0.0", "--insecure",
             "--port", str(base), "--peer-port", str(base + 1000),
             "--data-dir", str(tmp_path / "n1"), "--n", "1", "--r", "1", "--w", "1"],
            env=_serve_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        info = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{base}/cluster", timeout=1.0)
                if r.status_code == 200:
                    info = r.json()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert info is not None, log_path.read_text()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    assert any(w.startswith("INSECURE") for w in info["warnings"]), info
    assert any("--api-token" in w for w in info["warnings"]), info
    text = log_path.read_text()
    assert re.search(r"WARNING dynamopy: INSECURE: --host 0\.0\.0\.0 .*--cluster-secret", text)
    assert re.search(r"WARNING dynamopy: .*no --api-token is set", text)
