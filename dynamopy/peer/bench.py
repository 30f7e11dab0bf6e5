"""Throughput benchmark: ``python -m dynamopy.peer.bench [--seconds S] [--no-uvloop] [--tls]``.

Runs a ``PeerServer`` (echo handler) and a ``PeerClient`` in one process over 127.0.0.1 and
prints completed calls/s with 64 and 256 calls in flight, for a ~100-byte payload and a
1 KiB payload. Client and server share one core's event loop, so a figure here is roughly
half of what one node could serve to remote peers. ``--tls`` runs the same over mutual TLS
(a throwaway self-signed certificate made with the ``openssl`` command, naming both ends), to
show what TLS costs on the peer hot path. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from typing import Any, Optional

from .client import PeerClient
from .server import PeerServer

SECRET = b"bench-secret"


async def _echo(method: str, payload: Any, peer_id: str) -> Any:
    return payload


def _payload(value_bytes: int) -> dict:
    # Shaped like a replica write: key, versioned record, no hint.
    return {"k": b"user:0000012345", "r": [1_700_000_000_123_456, False, "b", b"v" * value_bytes]}


async def _run(client: PeerClient, addr: str, payload: dict, inflight: int, seconds: float) -> float:
    count = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal count
        loop = asyncio.get_running_loop()
        while loop.time() < stop_at:
            await client.call(addr, "echo", payload, 5.0)
            count += 1

    loop = asyncio.get_running_loop()
    stop_at = loop.time() + 0.3  # warm-up
    await asyncio.gather(*(worker() for _ in range(inflight)))
    count = 0
    t0 = time.perf_counter()
    stop_at = loop.time() + seconds
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return count / (time.perf_counter() - t0)


def _tls_contexts(directory: str):
    from dynamopy.tls import peer_client_context, peer_server_context, self_signed

    files = self_signed(directory, ["bench-server", "bench-client"])
    return peer_server_context(files), peer_client_context(files)


async def main(seconds: float, tls_dir: Optional[str] = None) -> None:
    server_ssl, client_ssl = _tls_contexts(tls_dir) if tls_dir else (None, None)
    server = PeerServer("bench-server", SECRET, _echo, ssl=server_ssl)
    host, port = await server.start("127.0.0.1", 0)
    client = PeerClient("bench-client", SECRET, ssl=client_ssl)
    addr = f"{host}:{port}"
    try:
        for label, value_bytes in (("~100 B", 64), ("1 KiB", 1000)):
            payload = _payload(value_bytes)
            from msgpack import packb

            size = len(packb(payload, use_bin_type=True))
            for inflight in (64, 256):
                rate = await _run(client, addr, payload, inflight, seconds)
                print(f"payload {label:>6} ({size:4d} B msgpack)  in flight {inflight:3d}: {rate:9,.0f} calls/s")
    finally:
        await client.close()
        await server.stop()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--tls", action="store_true", help="mutual TLS between the two ends")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tls_dir = tmp if args.tls else None
        print("transport:", "mutual TLS" if args.tls else "plain TCP")
        if args.no_uvloop:
            asyncio.run(main(args.seconds, tls_dir))
        else:
            import uvloop

            print("event loop: uvloop")
            uvloop.run(main(args.seconds, tls_dir))


if __name__ == "__main__":
    cli()
