"""CPU cost of the request limits on the hot paths, measured in process CPU time (so a busy
machine slows the run but does not skew the figures much):

- HTTP: one ASGI request through ``RequestLimits`` vs the same request to the bare app;
- peer: ``PeerServer`` answering pipelined small requests over loopback, with the per-chunk
  budget check vs with it bypassed.

``python -m dynamopy.benchlib.limits_bench [--requests N] [--calls N]``
"""

from __future__ import annotations

import argparse
import asyncio
import time

from dynamopy.api.http_limits import RequestLimits
from dynamopy.peer import PeerClient, PeerServer
from dynamopy.peer import server as server_mod


async def _app(scope, receive, send):
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _http_cpu_per_request(app, n: int) -> float:
    scope = {"type": "http", "method": "PUT", "path": "/kv/k",
             "headers": [(b"host", b"x"), (b"content-type", b"text/plain"),
                         (b"content-length", b"1024")]}
    msg = {"type": "http.request", "body": b"x" * 1024, "more_body": False}

    async def receive():
        return msg

    async def send(_m):
        pass

    t0 = time.process_time()
    for _ in range(n):
        await app(scope, receive, send)
    return (time.process_time() - t0) / n


async def _peer_cpu_per_call(n: int, bypass_budget: bool) -> float:
    original = server_mod._ServerConnection.data_received
    if bypass_budget:  # what the server did before the budget existed
        server_mod._ServerConnection.data_received = server_mod.FramedProtocol.data_received
    try:
        async def echo(method, payload, peer_id):
            return payload
        srv = PeerServer("s", b"secret", echo, sync_methods={"get": lambda p, _id: p})
        host, port = await srv.start("127.0.0.1", 0)
        client = PeerClient("c", b"secret")
        addr = f"{host}:{port}"
        await client.call(addr, "get", b"warm", 5.0)
        t0 = time.process_time()
        done = 0
        while done < n:
            await asyncio.gather(*(client.call(addr, "get", b"v" * 100, 10.0) for _ in range(64)))
            done += 64
        cpu = (time.process_time() - t0) / done
        await client.close()
        await srv.stop()
        return cpu
    finally:
        server_mod._ServerConnection.data_received = original


async def _main(requests: int, calls: int, rounds: int) -> None:
    limited = RequestLimits(_app, max_concurrent_requests=1024, body_buffer_bytes=64 << 20,
                            max_value_bytes=1 << 20)
    for r in range(rounds):
        bare = await _http_cpu_per_request(_app, requests)
        with_limits = await _http_cpu_per_request(limited, requests)
        print(f"http  round {r + 1}: bare app {bare * 1e6:6.2f} us/request, with RequestLimits "
              f"{with_limits * 1e6:6.2f} us/request (+{(with_limits - bare) * 1e6:.2f} us)")
    for r in range(rounds):
        before = await _peer_cpu_per_call(calls, bypass_budget=True)
        after = await _peer_cpu_per_call(calls, bypass_budget=False)
        print(f"peer  round {r + 1}: without budget check {before * 1e6:6.2f} us/call, with "
              f"{after * 1e6:6.2f} us/call (client and server in one process)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--calls", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    try:
        import uvloop
        uvloop.run(_main(a.requests, a.calls, a.rounds))
    except ImportError:  # pragma: no cover
        asyncio.run(_main(a.requests, a.calls, a.rounds))


if __name__ == "__main__":
    main()
