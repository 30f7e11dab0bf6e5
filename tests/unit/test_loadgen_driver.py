"""The driver's client behaviour (loadgen.driver.Driver.request) against small real HTTP
servers on 127.0.0.1: what is retried on another node and what is an error."""

import asyncio
import socket

import aiohttp
from aiohttp import web

from loadgen.driver import Driver


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _server(status: int, body: bytes, hits: list, etag: str = None):
    async def handle(request):
        hits.append((request.method, request.path_qs, request.headers.get("Authorization")))
        headers = {"ETag": etag} if etag else {}
        return web.Response(status=status, body=body, headers=headers,
                            content_type="application/json")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


def _driver(urls, token=None) -> Driver:
    return Driver({"urls": urls, "part": 0, "parts": 1, "keys": 10, "distribution": "uniform",
                   "value_bytes": 8, "seed": 1, "timeout_s": 2.0, "token": token})


def _run(coro):
    return asyncio.run(coro)


def test_refused_and_not_ready_are_retried_on_another_node():
    async def go():
        good_hits, busy_hits = [], []
        good, good_url = await _server(200, b"v", good_hits, etag='"42"')
        busy, busy_url = await _server(503, b'{"error":"not_ready","detail":"x"}', busy_hits)
        d = _driver([f"http://127.0.0.1:{_closed_port()}", busy_url, good_url], token="t0k")
        async with aiohttp.ClientSession() as s:
            d.session = s
            got = await d.request("GET", "/kv/a?r=1")
            # The two bad nodes are now skipped for a while: the next request goes straight
            # to the good one.
            again = await d.request("GET", "/kv/b?r=1")
        await good.cleanup()
        await busy.cleanup()
        return got, again, good_hits, busy_hits
    got, again, good_hits, busy_hits = _run(go())
    assert got == (200, 42, "") and again == (200, 42, "")
    assert [h[1] for h in good_hits] == ["/kv/a?r=1", "/kv/b?r=1"]
    assert len(busy_hits) == 1 and good_hits[0][2] == "Bearer t0k"


def test_a_quorum_failure_is_an_answer_not_retried():
    async def go():
        hits, other = [], []
        bad, bad_url = await _server(
            503, b'{"error":"quorum_unavailable","detail":"x","acks":1,"required":3}', hits)
        good, good_url = await _server(200, b"{}", other, etag='"7"')
        d = _driver([bad_url, good_url])
        async with aiohttp.ClientSession() as s:
            d.session = s
            got = await d.request("PUT", "/kv/a?w=3")
        await bad.cleanup()
        await good.cleanup()
        return got, hits, other
    got, hits, other = _run(go())
    assert got == (503, 0, "quorum_unavailable")
    assert len(hits) == 1 and other == []


def test_every_node_unreachable():
    d = _driver([f"http://127.0.0.1:{_closed_port()}", f"http://127.0.0.1:{_closed_port()}"])

    async def go():
        async with aiohttp.ClientSession() as s:
            d.session = s
            return await d.request("GET", "/kv/a?r=1")
    assert _run(go()) == (-1, 0, "refused")
