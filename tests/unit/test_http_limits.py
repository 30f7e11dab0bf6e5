"""RequestLimits (ASGI middleware): concurrency cap, request-body budget, body size cut-off.
Driven directly with ASGI messages; the read timeout and header limit need a real server and
are tested in tests/integration/test_security.py."""

from __future__ import annotations

import asyncio
import json

from dynamopy.api.http_limits import RequestLimits


def run(coro, timeout_s: float = 10.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


class Gate:
    """An app whose requests wait until released; it reads the whole body first."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send):
        self.entered += 1
        body, more = b"", True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise OSError("client gone")
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        self.bodies.append(body)
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def scope(method="GET", path="/kv/a", headers=()):
    return {"type": "http", "method": method, "path": path, "headers": list(headers)}


async def call(app, sc, chunks=(b"",)):
    sent: list = []
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
             for i, c in enumerate(chunks)]

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(msg):
        sent.append(msg)

    await app(sc, receive, send)
    status = sent[0]["status"]
    headers = dict(sent[0]["headers"])
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, headers, body


def limits(app, rejects, **kw):
    kw.setdefault("max_concurrent_requests", 2)
    kw.setdefault("body_buffer_bytes", 1000)
    kw.setdefault("max_value_bytes", 600)
    return RequestLimits(app, on_reject=rejects.append, **kw)


def test_concurrency_cap_answers_503_with_retry_after_and_health_is_exempt():
    async def main():
        gate, rejects = Gate(), []
        mw = limits(gate, rejects)
        held = [asyncio.ensure_future(call(mw, scope())) for _ in range(2)]
        while gate.entered < 2:
            await asyncio.sleep(0)
        status, headers, body = await call(mw, scope())
        assert status == 503 and headers[b"retry-after"] == b"1"
        assert json.loads(body)["error"] == "overloaded"
        assert gate.entered == 2 and rejects == ["overloaded"]
        health = asyncio.ensure_future(call(mw, scope(path="/health")))
        while gate.entered < 3:                  # /health went through despite the cap
            await asyncio.sleep(0)
        gate.release.set()
        assert [s for s, _, _ in await asyncio.gather(*held, health)] == [200, 200, 200]
        assert mw.active == 0 and mw.body_bytes == 0
        assert (await call(mw, scope()))[0] == 200
    run(main())


def test_body_budget_reserves_declared_sizes():
    async def main():
        gate, rejects = Gate(), []
        mw = limits(gate, rejects, max_concurrent_requests=10)

        def put(n):
            return scope("PUT", headers=[(b"content-length", str(n).encode())])

        held = [asyncio.ensure_future(call(mw, put(500), (b"x" * 500,))) for _ in range(2)]
        while gate.entered < 2:
            await asyncio.sleep(0)
        assert mw.body_bytes == 1000
        status, headers, body = await call(mw, put(1), (b"z",))
        assert status == 503 and headers[b"retry-after"] == b"1"
        assert json.loads(body)["error"] == "overloaded" and rejects == ["body_budget"]
        # Requests without a body are not held back by the budget.
        get = asyncio.ensure_future(call(mw, scope()))
        while gate.entered < 3:
            await asyncio.sleep(0)
        gate.release.set()
        await asyncio.gather(*held, get)
        assert mw.body_bytes == 0 and mw.active == 0
        # A /kv body over max_value_bytes reserves only max_value_bytes (the route 413s it).
        assert (await call(mw, put(10_000), (b"x" * 10,)))[0] == 200
    run(main())


def test_one_request_is_let_in_when_nothing_is_reserved():
    async def main():
        gate, rejects = Gate(), []
        gate.release.set()
        mw = limits(gate, rejects, body_buffer_bytes=10)
        put = scope("PUT", headers=[(b"content-length", b"500")])
        assert (await call(mw, put, (b"x" * 500,)))[0] == 200
        assert rejects == []
    run(main())


def test_oversized_bodies_on_other_routes_are_413():
    async def main():
        gate, rejects = Gate(), []
        gate.release.set()
        mw = limits(gate, rejects)
        post = scope("POST", "/cluster/config", [(b"content-length", b"601")])
        status, _, body = await call(mw, post, (b"x" * 601,))
        assert status == 413 and json.loads(body)["error"] == "too_large"
        assert gate.entered == 0
        # Chunked: cut off once past the limit; the app sees a disconnect, the client a 413.
        chunked = scope("POST", "/cluster/config", [(b"transfer-encoding", b"chunked")])
        status, _, body = await call(mw, chunked, (b"x" * 400, b"x" * 400, b"x"))
        assert status == 413 and json.loads(body)["error"] == "too_large"
        assert gate.bodies == [] and rejects == ["too_large", "too_large"]
        # Within the limit, chunked bodies pass unchanged.
        status, _, _ = await call(mw, chunked, (b"a" * 300, b"b" * 300))
        assert status == 200 and gate.bodies == [b"a" * 300 + b"b" * 300]
        assert mw.body_bytes == 0 and mw.active == 0
    run(main())


def test_a_malformed_request_gets_the_contracts_json_400():
    """Found by a user (session 13): a request line the HTTP parser cannot read (a raw space
    in the path, `GET /kv/a b HTTP/1.1`, or bytes that are no request) was answered by
    uvicorn's own text/plain "Invalid HTTP request received."; every error is JSON
    {"error", "detail"} (API.md), as the 431 for oversized headers already was."""
    import asyncio
    import json as json_mod

    from tests.unit.test_http_connection_timers import _run, _server

    async def main():
        server, port = await _server([])
        try:
            for raw in (b"GET /kv/a b HTTP/1.1\r\nhost: x\r\n\r\n", b"GARBAGE\r\n\r\n"):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(raw)
                got = await asyncio.wait_for(reader.read(), 5)   # then the server closes
                writer.close()
                head, _, body = got.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 400 "), got
                assert b"content-type: application/json" in head.lower(), got
                answer = json_mod.loads(body)
                assert answer["error"] == "bad_request" and answer["detail"], answer
        finally:
            server.close()
    _run(main())
