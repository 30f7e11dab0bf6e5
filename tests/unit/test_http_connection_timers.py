"""The HTTP connection's timers (``http_limits.limited_protocol``), one of each per connection.

A request must arrive (headers, then body) within ``--http-read-timeout-s`` of its start, and
an idle kept-alive connection closes after uvicorn's keep-alive timeout. The protocol keeps
one timer per connection for each instead of one per request or answer; a timer set for an
earlier request or answer must neither cut a later one short nor forget it. Real sockets on
127.0.0.1 (an in-process server of the protocol class over a tiny ASGI app)."""

from __future__ import annotations

import asyncio
import time

import uvicorn
from uvicorn.server import ServerState

from dynamopy.api.http_limits import limited_protocol

TIMEOUT_S = 0.6
KEEP_ALIVE_S = 0.5
# Digests of uvicorn 0.54's two methods that limited_protocol replaces (last test).
ON_RESPONSE_COMPLETE_054 = "711703bdb94f59ec"
UNSET_KEEPALIVE_054 = "8badb0af681243a5"
BIG_BODY = b"x" * (8 << 20)   # an answer the socket buffers cannot hold (/big)


async def _app(scope, receive, send):
    assert scope["type"] == "http"
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["path"] == "/slow":
        await asyncio.sleep(KEEP_ALIVE_S)
    body = BIG_BODY if scope["path"] == "/big" else b"ok"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _server(rejects: list, keep_alive_s: float = 5.0):
    cls = limited_protocol(TIMEOUT_S, rejects.append)
    config = uvicorn.Config(_app, http=cls, lifespan="off", log_level="warning",
                            timeout_keep_alive=keep_alive_s)
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: cls(config=config, server_state=state, app_state={}), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_answer(reader) -> tuple[int, float]:
    line = await asyncio.wait_for(reader.readline(), 5)
    at = time.monotonic()
    while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b""):
        pass
    return int(line.split()[1]), at


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_a_request_started_late_on_a_kept_alive_connection_gets_its_whole_deadline():
    """The connection's timer was set for the first request; the second request, started
    TIMEOUT_S/2 later and sent slowly, must not be cut off when that timer fires."""
    async def main():
        rejects: list = []
        server, port = await _server(rejects)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await _get(reader, writer) == 200
            await asyncio.sleep(TIMEOUT_S * 0.55)
            writer.write(b"GET /b HTTP/1.1\r\nhost: x\r\n")      # headers not finished
            await asyncio.sleep(TIMEOUT_S * 0.6)   # past the first timer, within this deadline
            writer.write(b"\r\n")
            status, _ = await _read_answer(reader)
            assert status == 200 and rejects == []
            writer.close()
        finally:
            server.close()
    _run(main())


def test_a_request_that_never_finishes_still_gets_408_after_its_own_deadline():
    async def main():
        rejects: list = []
        server, port = await _server(rejects)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await _get(reader, writer) == 200
            await asyncio.sleep(TIMEOUT_S * 0.55)
            started = time.monotonic()
            writer.write(b"GET /b HTTP/1.1\r\nhost: x\r\n")
            status, at = await _read_answer(reader)
            assert status == 408 and rejects == ["read_timeout"]
            assert at - started >= TIMEOUT_S * 0.95   # never before its own deadline
            writer.close()
        finally:
            server.close()
    _run(main())


def test_an_idle_kept_alive_connection_is_not_cut_by_the_read_deadline():
    """Between requests nothing is being read: no 408 for a pause longer than what is left
    of the first request's read deadline."""
    async def main():
        rejects: list = []
        server, port = await _server(rejects)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await _get(reader, writer) == 200
            await asyncio.sleep(TIMEOUT_S * 1.6)
            writer.write(b"GET /b HTTP/1.1\r\nhost: x\r\n\r\n")
            assert (await _read_answer(reader))[0] == 200 and rejects == []
            writer.close()
        finally:
            server.close()
    _run(main())


async def _get(reader, writer, path: bytes = b"/a") -> int:
    writer.write(b"GET " + path + b" HTTP/1.1\r\nhost: x\r\n\r\n")
    status, _ = await _read_answer(reader)
    await reader.readexactly(2)
    return status


def test_requests_spaced_under_the_keep_alive_timeout_keep_one_connection_open():
    """Each answer restarts the idle timeout: four requests half the timeout apart (longer
    in all than the timeout) are served on one connection."""
    async def main():
        server, port = await _server([], KEEP_ALIVE_S)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(4):
                assert await _get(reader, writer) == 200
                await asyncio.sleep(KEEP_ALIVE_S * 0.5)
            assert await _get(reader, writer) == 200
            writer.close()
        finally:
            server.close()
    _run(main())


def test_a_request_slower_than_the_keep_alive_timeout_is_answered():
    """A request that arrives on an idle connection is not idle time: its answer may take
    longer than the keep-alive timeout."""
    async def main():
        server, port = await _server([], KEEP_ALIVE_S)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await _get(reader, writer) == 200
            await asyncio.sleep(KEEP_ALIVE_S * 0.5)
            assert await _get(reader, writer, b"/slow") == 200
            writer.close()
        finally:
            server.close()
    _run(main())


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout():
    async def main():
        server, port = await _server([], KEEP_ALIVE_S)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await _get(reader, writer) == 200
            answered = time.monotonic()
            assert await asyncio.wait_for(reader.read(1), 5) == b""   # closed by the server
            assert time.monotonic() - answered >= KEEP_ALIVE_S * 0.9
            writer.close()
        finally:
            server.close()
    _run(main())


def test_bytes_that_begin_no_request_on_an_idle_connection_do_not_hold_it_open():
    """A bare CRLF on an idle kept-alive connection (the parser skips it: no request
    begins) ended the keep-alive timeout and started no read deadline, so the connection
    stayed open for good: one CRLF per connection held a node's sockets (slowloris)."""
    async def main():
        server, port = await _server([], KEEP_ALIVE_S)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await _get(reader, writer) == 200
            writer.write(b"\r\n")
            sent = time.monotonic()
            assert await asyncio.wait_for(reader.read(1), 5) == b""   # closed by the server
            assert time.monotonic() - sent <= TIMEOUT_S + KEEP_ALIVE_S + 0.5
            writer.close()
        finally:
            server.close()
    _run(main())


async def _pipelined_behind_big_answers(port: int, put: bytes):
    """A connection with a small receive buffer that pipelines two GETs of ``BIG_BODY``
    and, once the server is answering the second, ``put``: the server pauses reading (flow
    control) with ``put`` begun."""
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
    writer.write(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n" * 2)
    await asyncio.sleep(0.1)   # the first answer is out; the second waits to be read
    writer.write(put)
    return reader, writer


async def _read_big_answers(reader) -> None:
    for _ in range(2):
        status, _ = await _read_answer(reader)
        assert status == 200
        await asyncio.wait_for(reader.readexactly(len(BIG_BODY)), 5)


def test_a_pipelined_request_waiting_behind_a_slowly_read_answer_is_not_cut_off():
    """Noticed in session 6: a pipelined request's read deadline kept running while uvicorn
    paused reading (flow control: an earlier request is still being answered). A client
    that pipelines GETs of large values and a PUT, sends every byte at once, and reads the
    answers slowly (a slow link) had the PUT cut off, and the connection with it, once the
    deadline passed: the PUT's last bytes sat unread in the server's socket buffer all along.
    The deadline now counts only time the server is reading."""
    async def main():
        rejects: list = []
        server, port = await _server(rejects)
        try:
            reader, writer = await _pipelined_behind_big_answers(
                port, b"PUT /c HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nab")
            await asyncio.sleep(0.05)
            writer.write(b"cd")        # all sent; the server paused reading before this
            await writer.drain()
            await asyncio.sleep(TIMEOUT_S * 1.2)   # reading slowly: nothing yet
            await _read_big_answers(reader)
            assert (await _read_answer(reader))[0] == 200 and rejects == []
            writer.close()
        finally:
            server.close()
    _run(main())


def test_a_pipelined_request_that_never_finishes_is_cut_off_once_reading_resumes():
    """The deadline stops while reading is paused, and goes on when it resumes: a body
    that never comes is still cut off (slowloris through a pipeline)."""
    async def main():
        rejects: list = []
        server, port = await _server(rejects)
        try:
            reader, writer = await _pipelined_behind_big_answers(
                port, b"PUT /c HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nab")
            await asyncio.sleep(TIMEOUT_S * 1.2)
            await _read_big_answers(reader)
            try:   # closed by the server within the deadline (at most TIMEOUT_S from here)
                assert await asyncio.wait_for(reader.read(1), TIMEOUT_S + 3) == b""
            except ConnectionResetError:
                pass
            assert rejects == ["read_timeout"]
            writer.close()
        finally:
            server.close()
    _run(main())


def test_the_uvicorn_methods_the_protocol_replaces_are_still_the_ones_it_copied():
    """``limited_protocol`` replaces uvicorn 0.54's ``on_response_complete`` and
    ``_unset_keepalive_if_required`` with the one-timer versions (same steps otherwise).
    pyproject pins uvicorn to 0.54.x; if uvicorn's own methods change (an upgrade of the
    pin), this fails until the replacements are checked against the new ones."""
    import hashlib
    import inspect

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    def digest(fn) -> str:
        lines = [line.strip() for line in inspect.getsource(fn).splitlines()]
        return hashlib.sha256("\n".join(x for x in lines if x and not x.startswith("#"))
                              .encode()).hexdigest()[:16]

    assert {name: digest(getattr(HttpToolsProtocol, name))
            for name in ("on_response_complete", "_unset_keepalive_if_required")} == {
        "on_response_complete": ON_RESPONSE_COMPLETE_054,
        "_unset_keepalive_if_required": UNSET_KEEPALIVE_054,
    }


def test_a_client_that_never_reads_its_answers_is_dropped_and_frees_the_request():
    """Found in review 7: a client pipelining GETs of large values and reading nothing held
    its connection and the request being answered forever (the answer waited on uvicorn's
    write flow control with no deadline): a few such clients held every slot of
    ``--max-concurrent-requests`` and the node answered everyone else 503. Once writing has
    been paused ``WRITE_STALL_FACTOR`` read timeouts in a row, the connection is dropped and
    the answer's request ends."""
    from dynamopy.api.http_limits import WRITE_STALL_FACTOR

    async def main():
        rejects: list = []
        server, port = await _server(rejects)
        try:
            reader, writer = await _pipelined_behind_big_answers(port, b"")
            try:
                await asyncio.sleep(WRITE_STALL_FACTOR * TIMEOUT_S + 0.5)   # reading nothing
                assert rejects == ["write_timeout"], rejects
                try:   # dropped by the server: what was sent before ends in EOF or a reset
                    while await asyncio.wait_for(reader.read(1 << 20), 5):
                        pass
                except ConnectionResetError:
                    pass
            finally:
                writer.transport.abort()   # (without the fix: ends the stuck answer too)
        finally:
            server.close()
    _run(main())
