"""PeerServer + PeerClient over real sockets on 127.0.0.1 (ephemeral ports)."""

from __future__ import annotations

import asyncio
import random
import struct
from contextlib import asynccontextmanager

import msgpack
import pytest

from dynamopy.peer import (
    AuthError,
    MessageTooLarge,
    PeerClient,
    PeerError,
    PeerServer,
    PeerTimeout,
    PeerUnavailable,
    RemoteError,
    PeerCaller,
    UnknownMethod,
    route,
)
from dynamopy.peer import auth
from dynamopy.peer import client as peer_client_module
from dynamopy.peer.framing import encode_frame

SECRET = b"test-cluster-secret"


def run(coro, timeout_s: float = 10.0):
    """Run one test coroutine with a hard bound on its running time."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


class CodedError(Exception):
    """Not a RemoteError, but carries a code: the server must use it."""

    code = "conflict"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object, str]] = []
        self.slept = asyncio.Event()  # a "sleep" call finished (its reply is being sent)

    async def __call__(self, method, payload, peer_id):
        self.calls.append((method, payload, peer_id))
        if method == "echo":
            return payload
        if method == "whoami":
            return peer_id
        if method == "sleep":
            await asyncio.sleep(payload["s"])
            self.slept.set()
            return payload.get("v")
        if method == "not_found":
            raise RemoteError("not_found", "no such key")
        if method == "coded":
            raise CodedError("stale write")
        if method == "crash":
            raise ValueError("bug in handler")
        if method == "unsendable":
            return object()
        raise UnknownMethod(method)


@asynccontextmanager
async def cluster(*, client_secret=SECRET, server_kwargs=None, **client_kwargs):
    handler = Recorder()
    server = PeerServer("server-1", SECRET, handler, **(server_kwargs or {}))
    host, port = await server.start("127.0.0.1", 0)
    client = PeerClient("client-1", client_secret, **client_kwargs)
    try:
        yield server, client, f"{host}:{port}", handler
    finally:
        await client.close()
        await server.stop()


async def read_frame(reader: asyncio.StreamReader):
    (n,) = struct.unpack(">I", await reader.readexactly(4))
    return msgpack.unpackb(await reader.readexactly(n), raw=False)


async def raw_authenticated(addr: str):
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    nonce_s = auth.parse_server_hello(await read_frame(reader))
    nonce_c = b"n" * auth.NONCE_BYTES
    writer.write(encode_frame(auth.client_answer(SECRET, "raw", nonce_s, nonce_c)))
    assert auth.verify_server_answer(SECRET, nonce_s, nonce_c, await read_frame(reader)) == "server-1"
    return reader, writer


async def assert_closed_by_server(reader: asyncio.StreamReader) -> None:
    try:
        data = await asyncio.wait_for(reader.read(1 << 20), 2.0)
    except ConnectionResetError:
        return
    assert data == b""


def test_round_trip_and_peer_identity():
    async def main():
        async with cluster() as (server, client, addr, handler):
            payload = {"k": b"\x00key", "n": [1, 2**40, -3], "s": "ü", "none": None, 7: True}
            assert await client.call(addr, "echo", payload, 1.0) == payload
            assert await client.call(addr, "whoami", None, 1.0) == "client-1"
            assert isinstance(client, PeerCaller)
            assert server.connection_count == 1

    run(main())


def test_thousand_concurrent_pipelined_calls():
    async def main():
        async with cluster() as (server, client, addr, handler):
            # Varying handler latency makes responses leave out of order.
            results = await asyncio.gather(
                *(client.call(addr, "sleep", {"s": (i % 7) / 1000, "v": i}, 5.0) for i in range(1000))
            )
            assert results == list(range(1000))
            assert server.connection_count == 1  # all pipelined on one connection

    run(main())


def test_handler_errors_become_remote_errors():
    async def main():
        async with cluster() as (server, client, addr, handler):
            with pytest.raises(RemoteError) as ei:
                await client.call(addr, "not_found", None, 1.0)
            assert (ei.value.code, ei.value.detail) == ("not_found", "no such key")
            with pytest.raises(RemoteError) as ei:
                await client.call(addr, "coded", None, 1.0)
            assert (ei.value.code, ei.value.detail) == ("conflict", "stale write")
            with pytest.raises(RemoteError) as ei:
                await client.call(addr, "crash", None, 1.0)
            assert ei.value.code == "internal" and "bug in handler" in ei.value.detail
            with pytest.raises(RemoteError) as ei:
                await client.call(addr, "unsendable", None, 1.0)
            assert ei.value.code == "internal"
            # None of that disturbed the connection.
            assert await client.call(addr, "echo", 1, 1.0) == 1
            assert server.connection_count == 1

    run(main())


def test_unknown_method():
    async def main():
        async with cluster() as (server, client, addr, handler):
            with pytest.raises(RemoteError) as ei:
                await client.call(addr, "no_such_method", None, 1.0)
            assert ei.value.code == "unknown_method"

    run(main())


def test_route_helper():
    async def main():
        async def get(payload, peer_id):
            return ["got", payload, peer_id]

        server = PeerServer("s", SECRET, route({"get": get}))
        host, port = await server.start("127.0.0.1", 0)
        client = PeerClient("c", SECRET)
        try:
            assert await client.call(f"{host}:{port}", "get", 5, 1.0) == ["got", 5, "c"]
            with pytest.raises(RemoteError) as ei:
                await client.call(f"{host}:{port}", "put", 5, 1.0)
            assert ei.value.code == "unknown_method"
        finally:
            await client.close()
            await server.stop()

    run(main())


def test_timeout_keeps_connection_and_drops_late_reply():
    async def main():
        async with cluster() as (server, client, addr, handler):
            with pytest.raises(PeerTimeout):
                await client.call(addr, "sleep", {"s": 0.3, "v": "late"}, 0.05)
            assert not handler.slept.is_set()  # timed out before the reply existed
            assert await client.call(addr, "echo", "next", 1.0) == "next"
            await handler.slept.wait()  # the late reply is sent now and must be ignored
            assert await client.call(addr, "echo", "after", 1.0) == "after"
            assert server.connection_count == 1

    run(main())


def test_bad_secret_raises_auth_error_and_handler_never_runs():
    async def main():
        async with cluster(client_secret=b"wrong-secret") as (server, client, addr, handler):
            with pytest.raises(AuthError):
                await client.call(addr, "echo", 1, 1.0)
            # In back-off after an auth failure: fails without connecting, still as AuthError.
            with pytest.raises(AuthError, match="back-off"):
                await client.call(addr, "echo", 1, 1.0)
            assert handler.calls == []

    run(main())


def test_server_stopped_fails_pending_and_new_calls_quickly():
    async def main():
        async with cluster() as (server, client, addr, handler):
            assert await client.call(addr, "echo", 1, 1.0) == 1
            # Timeouts far beyond the test's own bound (run()): failing by PeerUnavailable, not
            # PeerTimeout, is what shows the calls failed on the stop, not on their timeout.
            pending = asyncio.ensure_future(client.call(addr, "sleep", {"s": 60}, 60.0))
            while not any(m == "sleep" for m, _, _ in handler.calls):
                await asyncio.sleep(0.01)  # the call reached the server
            await server.stop()
            with pytest.raises(PeerUnavailable):
                await pending
            with pytest.raises(PeerUnavailable):
                await client.call(addr, "echo", 1, 60.0)

    run(main())


def test_reconnects_after_backoff_when_server_restarts_on_same_port():
    async def main():
        outcomes = []
        async with cluster(
            backoff_initial_s=0.1, on_call=lambda m, a, s, o: outcomes.append(o)
        ) as (server, client, addr, handler):
            assert await client.call(addr, "echo", 1, 1.0) == 1
            await server.stop()
            await asyncio.sleep(0.02)
            with pytest.raises(PeerUnavailable):
                await client.call(addr, "echo", 2, 1.0)  # connection refused, back-off starts
            with pytest.raises(PeerUnavailable, match="back-off"):
                await client.call(addr, "echo", 3, 1.0)  # refused without connecting
            host, port = addr.rsplit(":", 1)
            restarted = PeerServer("server-1", SECRET, handler)
            await restarted.start(host, int(port))
            try:
                while True:  # calls fail fast until the back-off ends, then one connects
                    try:
                        assert await client.call(addr, "echo", 4, 1.0) == 4
                        break
                    except PeerUnavailable as e:
                        assert "back-off" in str(e)
                        await asyncio.sleep(0.01)
                assert restarted.connection_count == 1
            finally:
                await restarted.stop()
            assert outcomes[:3] == ["ok", "unavailable", "unavailable"] and outcomes[-1] == "ok"
            assert set(outcomes[3:-1]) <= {"unavailable"}

    run(main())


def test_oversized_frame_closes_only_that_connection():
    async def main():
        async with cluster(server_kwargs={"max_frame_bytes": 1024}) as (server, client, addr, handler):
            assert await client.call(addr, "echo", "before", 1.0) == "before"
            reader, writer = await raw_authenticated(addr)
            writer.write(struct.pack(">I", 1 << 20))  # header only: 1 MiB announced
            await assert_closed_by_server(reader)
            writer.close()
            assert await client.call(addr, "echo", "after", 1.0) == "after"

            # Malformed msgpack, and a well-formed frame of the wrong shape, likewise.
            for bad in (struct.pack(">I", 1) + b"\xc1", encode_frame({"not": "a request"})):
                reader, writer = await raw_authenticated(addr)
                writer.write(bad)
                await assert_closed_by_server(reader)
                writer.close()
            assert await client.call(addr, "echo", "still", 1.0) == "still"
            assert handler.calls == [("echo", "before", "client-1"), ("echo", "after", "client-1"),
                                     ("echo", "still", "client-1")]

    run(main())


def test_unauthenticated_requests_and_silent_peers_are_dropped():
    async def main():
        async with cluster(server_kwargs={"handshake_timeout_s": 0.1}) as (server, client, addr, handler):
            host, port = addr.rsplit(":", 1)
            # A request instead of the handshake answer: rejected, never dispatched.
            reader, writer = await asyncio.open_connection(host, int(port))
            await read_frame(reader)
            writer.write(encode_frame([0, 1, "echo", "sneaky"]))
            assert await read_frame(reader) == {"ok": False, "error": "unauthorized"}
            await assert_closed_by_server(reader)
            writer.close()
            # Says nothing: closed after the handshake timeout.
            reader, writer = await asyncio.open_connection(host, int(port))
            await read_frame(reader)
            await assert_closed_by_server(reader)
            writer.close()
            assert handler.calls == []

    run(main())


class RecordingAsyncio:
    """``asyncio`` for the peer client module, recording the delays it sleeps (a spy inside
    this module's unit test: the delay is checked by what was asked, not by a clock)."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def __getattr__(self, name):
        return getattr(asyncio, name)

    async def sleep(self, seconds, *args):
        self.slept.append(seconds)
        await asyncio.sleep(seconds, *args)


def test_delay_uses_injected_rng(monkeypatch):
    spy = RecordingAsyncio()
    monkeypatch.setattr(peer_client_module, "asyncio", spy)

    class CountingRandom(random.Random):
        def __init__(self):
            super().__init__(42)
            self.draws = []

        def uniform(self, a, b):
            x = super().uniform(a, b)
            self.draws.append((a, b, x))
            return x

    async def main():
        rng = CountingRandom()
        async with cluster(delay_ms=(20.0, 40.0), rng=rng) as (server, client, addr, handler):
            await client.call(addr, "echo", 1, 1.0)
            await client.call(addr, "echo", 2, 1.0)
            assert len(rng.draws) == 2 and all(a == 20.0 and b == 40.0 for a, b, _ in rng.draws)
            assert spy.slept == [x / 1000 for _, _, x in rng.draws]  # each call waits its draw
        spy.slept.clear()
        async with cluster(delay_ms=(30.0, 30.0)) as (server, client, addr, handler):
            await client.call(addr, "echo", 1, 1.0)
            assert spy.slept == [0.03]
            # The delay counts against the call's timeout.
            with pytest.raises(PeerTimeout):
                await client.call(addr, "echo", 1, 0.01)

    run(main())


def test_on_call_outcomes():
    async def main():
        seen = []
        async with cluster(on_call=lambda *a: seen.append(a)) as (server, client, addr, handler):
            await client.call(addr, "echo", 1, 1.0)
            with pytest.raises(RemoteError):
                await client.call(addr, "not_found", 1, 1.0)
            with pytest.raises(PeerTimeout):
                await client.call(addr, "sleep", {"s": 0.2}, 0.02)
            await server.stop()
            with pytest.raises(PeerUnavailable):
                await client.call(addr, "echo", 1, 1.0)
        assert [(m, o) for m, _, _, o in seen] == [
            ("echo", "ok"), ("not_found", "error"), ("sleep", "timeout"), ("echo", "unavailable")
        ]
        assert all(a == addr and s >= 0 for _, a, s, _ in seen)

    run(main())


def test_close_fails_pending_calls_and_local_misuse_is_not_a_peer_error_but_too_large_is():
    async def main():
        async with cluster(max_frame_bytes=1024) as (server, client, addr, handler):
            # A request over the frame limit cannot succeed at any peer: a PeerError (so a
            # coordinator counts a failed replica call), never sent.
            with pytest.raises(MessageTooLarge):
                await client.call(addr, "echo", b"x" * 2048, 1.0)
            with pytest.raises(TypeError):
                await client.call(addr, "echo", object(), 1.0)
            with pytest.raises(ValueError):
                await client.call("no-port", "echo", 1, 1.0)
            assert await client.call(addr, "echo", 1, 1.0) == 1
            pending = asyncio.ensure_future(client.call(addr, "sleep", {"s": 5}, 5.0))
            await asyncio.sleep(0.02)
            await client.close()
            with pytest.raises(PeerUnavailable):
                await pending
            with pytest.raises(PeerError):
                await client.call(addr, "echo", 1, 1.0)

    run(main())


def test_concurrent_first_calls_share_one_connection():
    async def main():
        async with cluster() as (server, client, addr, handler):
            results = await asyncio.gather(*(client.call(addr, "echo", i, 2.0) for i in range(50)))
            assert results == list(range(50))
            assert server.connection_count == 1

    run(main())


def test_start_answers_like_call_without_a_task_on_a_ready_connection():
    """``PeerClient.start``: the same results, errors and ``on_call`` reports as ``call``;
    it never raises itself; on a ready connection it creates no task."""
    async def main():
        seen = []
        async with cluster(on_call=lambda *a: seen.append(a), max_frame_bytes=4096) as (
                server, client, addr, handler):
            first = client.start(addr, "echo", "first", 1.0)   # no connection yet: a task
            assert await first == "first"
            tasks = len(asyncio.all_tasks())
            calls = [client.start(addr, "echo", {"k": b"v"}, 1.0),
                     client.start(addr, "not_found", None, 1.0),
                     client.start(addr, "sleep", {"s": 0.3}, 0.05),
                     client.start(addr, "echo", b"x" * 8192, 1.0),
                     client.start(addr, "echo", object(), 1.0)]
            assert len(asyncio.all_tasks()) == tasks
            await asyncio.wait(calls)
            assert calls[0].result() == {"k": b"v"}
            assert isinstance(calls[1].exception(), RemoteError)
            assert calls[1].exception().code == "not_found"
            assert isinstance(calls[2].exception(), PeerTimeout)
            assert isinstance(calls[3].exception(), MessageTooLarge)
            assert isinstance(calls[4].exception(), TypeError)
            # A cancelled call is forgotten; the connection keeps serving.
            gone = client.start(addr, "sleep", {"s": 0.05, "v": 1}, 1.0)
            gone.cancel()
            assert await client.start(addr, "echo", "next", 1.0) == "next"
            assert server.connection_count == 1
        assert sorted((m, o) for m, _, _, o in seen) == sorted([
            ("echo", "ok"), ("echo", "ok"), ("not_found", "error"), ("sleep", "timeout"),
            ("echo", "error"), ("echo", "error"), ("echo", "ok")])   # none for the cancelled

    run(main())


def test_future_methods_are_answered_by_a_callback_or_run_as_a_coroutine():
    """A server method that returns a future is answered when it resolves (no task); one
    that returns a coroutine runs like a handler's; errors map as the handler's do."""
    async def main():
        loop = asyncio.get_running_loop()
        pending: dict = {}

        def started(payload, peer_id):
            if payload == "raise":
                raise RemoteError("stale_epoch", "behind")
            if payload == "coroutine":
                async def later():
                    await asyncio.sleep(0.01)
                    return [peer_id, "from a coroutine"]
                return later()
            fut = pending[payload] = loop.create_future()
            return fut

        async with cluster(server_kwargs={"future_methods": {"put": started}}) as (
                server, client, addr, handler):
            ok = asyncio.ensure_future(client.call(addr, "put", "a", 2.0))
            failed = asyncio.ensure_future(client.call(addr, "put", "b", 2.0))
            await asyncio.sleep(0.05)
            assert not ok.done() and set(pending) == {"a", "b"}
            pending["a"].set_result(41)
            pending["b"].set_exception(CodedError("stale write"))
            assert await ok == 41
            with pytest.raises(RemoteError) as ei:
                await failed
            assert ei.value.code == "conflict"
            with pytest.raises(RemoteError) as ei:
                await client.call(addr, "put", "raise", 2.0)
            assert ei.value.code == "stale_epoch"
            assert await client.call(addr, "put", "coroutine", 2.0) == ["client-1",
                                                                        "from a coroutine"]
            assert handler.calls == []                    # the handler never saw them
            # A lost connection cancels the futures of its running requests.
            asyncio.ensure_future(client.call(addr, "put", "c", 2.0))
            await asyncio.sleep(0.05)
            await client.close()
            await asyncio.sleep(0.05)
            assert pending["c"].cancelled()

    run(main())


def test_a_malformed_error_reply_fails_its_own_call_not_only_the_others():
    """A peer that proved the secret, then answers a call with an error reply of the wrong
    shape, is a protocol violation: the connection closes and EVERY pending call fails at
    once, the malformed reply's own call included. Before, that call had already been taken
    out of the pending table, so neither the close nor its timer settled it: it hung."""

    async def main():
        calls_seen = asyncio.Event()

        async def fake_server(reader, writer):
            nonce_s = b"s" * auth.NONCE_BYTES
            writer.write(encode_frame(auth.server_hello(nonce_s)))
            client_id, nonce_c = auth.verify_client_answer(SECRET, nonce_s, await read_frame(reader))
            writer.write(encode_frame(auth.server_accept(SECRET, "server-1", nonce_c, nonce_s)))
            first = await read_frame(reader)
            await read_frame(reader)  # a second call, still pending when the bad reply comes
            calls_seen.set()
            writer.write(encode_frame([1, first[1], False, "not a dict"]))
            await writer.drain()
            await reader.read()  # until the client closes

        server = await asyncio.start_server(fake_server, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        client = PeerClient("client-1", SECRET)
        try:
            addr = f"{host}:{port}"
            first = asyncio.ensure_future(client.call(addr, "echo", 1, timeout_s=3.0))
            second = asyncio.ensure_future(client.call(addr, "echo", 2, timeout_s=3.0))
            await asyncio.wait_for(calls_seen.wait(), 3.0)
            done, _ = await asyncio.wait([first, second], timeout=1.0)
            assert first in done, "the call answered by the malformed reply hangs"
            assert second in done
            for fut in (first, second):
                with pytest.raises(PeerUnavailable):
                    fut.result()
        finally:
            await client.close()
            server.close()

    run(main())
