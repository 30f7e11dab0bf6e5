"""Peer-port limits: the pure pieces (budget, unauthenticated set, throttled log) and the
PeerServer enforcing them over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest

from dynamopy.peer import PeerClient, PeerError, PeerServer, auth
from dynamopy.peer.framing import FrameDecoder, FrameTooLarge, encode_frame
from dynamopy.peer.limits import (
    FREE_FRAME_BYTES,
    PREAUTH_MAX_FRAME_BYTES,
    BufferBudget,
    ThrottledLog,
    UnauthenticatedSet,
)
from tests.unit.test_peer import (
    SECRET,
    assert_closed_by_server,
    cluster,
    raw_authenticated,
    read_frame,
    run,
)


class Waiter:
    def __init__(self, budget: BufferBudget, name: str, log: list) -> None:
        self.budget, self.name, self.log = budget, name, log

    def on_budget_granted(self) -> None:
        self.log.append(self.name)


# ---- pure pieces ---------------------------------------------------------------------------
def test_budget_grants_first_come_first_served_and_never_deadlocks():
    b = BufferBudget(100)
    granted: list = []
    a, c, d, big = (Waiter(b, n, granted) for n in ("a", "c", "d", "big"))
    assert b.reserve(a, 60)
    assert not b.reserve(c, 50)          # 110 > 100: waits
    assert not b.reserve(d, 10)          # would fit, but c is first in line
    b.release(60)                        # c then d fit together
    assert granted == ["c", "d"] and b.used_bytes == 60
    assert not b.reserve(big, 500)       # larger than the whole budget: waits for empty
    b.release(50)
    assert granted == ["c", "d"]
    b.release(10)
    assert granted == ["c", "d", "big"] and b.used_bytes == 500
    b.release(500)
    assert b.used_bytes == 0 and b.waiting == 0
    assert b.peak_bytes == 500 and b.queued_total == 3


def test_budget_cancel_lets_the_next_waiter_in():
    b = BufferBudget(100)
    granted: list = []
    a, c, d = (Waiter(b, n, granted) for n in ("a", "c", "d"))
    assert b.reserve(a, 90)
    assert not b.reserve(c, 50)
    assert not b.reserve(d, 5)
    b.cancel(c)                          # c's connection closed while waiting
    assert granted == ["d"] and b.used_bytes == 95 and b.waiting == 0


def test_unauthenticated_set_drops_the_oldest():
    s = UnauthenticatedSet(2)
    assert s.add("a") == [] and s.add("b") == []
    assert s.add("c") == ["a"]
    s.discard("b")                       # b authenticated
    assert s.add("d") == [] and len(s) == 2
    assert s.add("e") == ["c"]
    with pytest.raises(ValueError):
        UnauthenticatedSet(0)


def test_throttled_log_counts_what_it_suppresses(caplog):
    now = [0.0]
    tl = ThrottledLog(logging.getLogger("t"), 1.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "t"):
        for _ in range(5):
            tl.warning("bad %s", "x")
        now[0] = 1.5
        tl.warning("bad %s", "y")
    assert [r.getMessage() for r in caplog.records] == [
        "bad x", "bad y (and 4 similar events not logged)"]


def test_decoder_reports_the_pending_frame_and_its_limit_can_be_raised():
    d = FrameDecoder(100)
    frame = encode_frame(b"x" * 80)
    assert d.feed(frame[:10]) == [] and d.pending_frame_bytes == len(frame)
    assert d.feed(frame[10:]) == [b"x" * 80] and d.pending_frame_bytes == 0
    d.max_frame_bytes = 10_000
    big = encode_frame(b"y" * 5000)
    assert d.feed(big) == [b"y" * 5000]
    d.max_frame_bytes = 10
    with pytest.raises(FrameTooLarge):
        d.feed(big)


# ---- enforced by the server over sockets ------------------------------------------------------
def test_preauth_frames_are_limited_to_the_handshake_size():
    async def main():
        async with cluster() as (server, client, addr, handler):
            host, port = addr.rsplit(":", 1)
            for announced in (PREAUTH_MAX_FRAME_BYTES + 1, 32 * 1024 * 1024 - 1):
                reader, writer = await asyncio.open_connection(host, int(port))
                await read_frame(reader)
                writer.write(struct.pack(">I", announced) + b"\0" * 1000)
                await assert_closed_by_server(reader)   # before any body was awaited
                writer.close()
            # After the handshake the full frame size is allowed again.
            big = b"v" * (PREAUTH_MAX_FRAME_BYTES * 20)
            assert await client.call(addr, "echo", big, 5.0) == big
            assert [c[0] for c in handler.calls] == ["echo"]
    run(main())


def test_unauthenticated_connections_are_capped_oldest_first():
    rejects: list = []

    async def main():
        kwargs = {"max_unauthenticated": 3, "handshake_timeout_s": 60.0,
                  "on_reject": rejects.append}
        async with cluster(server_kwargs=kwargs) as (server, client, addr, handler):
            host, port = addr.rsplit(":", 1)
            conns = []
            for _ in range(5):
                reader, writer = await asyncio.open_connection(host, int(port))
                await read_frame(reader)      # the server has registered this connection
                conns.append((reader, writer))
            # The two oldest were dropped long before the (60 s) handshake timeout.
            for reader, _ in conns[:2]:
                await assert_closed_by_server(reader)
            assert rejects == ["unauthenticated_cap", "unauthenticated_cap"]
            assert server.unauthenticated_count == 3
            # A real peer still gets in (its handshake evicts one more idle connection) and an
            # authenticated connection no longer counts against the cap.
            assert await client.call(addr, "echo", 1, 5.0) == 1
            assert server.unauthenticated_count == 2
            for _, writer in conns:
                writer.close()
    run(main())


def test_replayed_handshake_answer_is_rejected():
    async def main():
        async with cluster() as (server, client, addr, handler):
            host, port = addr.rsplit(":", 1)
            r1, w1 = await asyncio.open_connection(host, int(port))
            nonce1 = auth.parse_server_hello(await read_frame(r1))
            answer = encode_frame(auth.client_answer(SECRET, "raw", nonce1, b"c" * 16))
            w1.write(answer)
            assert (await read_frame(r1))["ok"] is True
            # The same answer again on the authenticated connection: not a request, closed.
            w1.write(answer)
            await assert_closed_by_server(r1)
            # Replayed on a new connection (new server nonce): refused.
            r2, w2 = await asyncio.open_connection(host, int(port))
            await read_frame(r2)
            w2.write(answer)
            assert await read_frame(r2) == {"ok": False, "error": "unauthorized"}
            await assert_closed_by_server(r2)
            w1.close()
            w2.close()
            assert handler.calls == []
    run(main())


def test_large_frames_wait_for_the_node_buffer_budget():
    frame_bytes = 3 * 1024 * 1024

    async def main():
        # Room for one 3 MiB frame at a time: the others wait with their sockets unread.
        kwargs = {"buffer_bytes": 4 * 1024 * 1024}
        async with cluster(server_kwargs=kwargs) as (server, client, addr, handler):
            conns = [await raw_authenticated(addr) for _ in range(4)]
            payloads = [bytes([i]) * frame_bytes for i in range(4)]
            for i, (reader, writer) in enumerate(conns):
                writer.write(encode_frame([0, 7, "echo", payloads[i]]))
            for i, (reader, writer) in enumerate(conns):
                reply = await asyncio.wait_for(read_frame(reader), 20.0)
                assert reply == [1, 7, True, payloads[i]]
                writer.close()
            budget = server.buffer_budget
            assert budget.queued_total >= 1                      # back-pressure happened
            assert frame_bytes <= budget.peak_bytes <= frame_bytes + 64   # one at a time
            assert budget.used_bytes == 0 and budget.waiting == 0
            # Small frames never touch the budget.
            before = budget.queued_total
            await asyncio.gather(*(client.call(addr, "echo", b"s" * 1000, 5.0) for _ in range(200)))
            assert budget.queued_total == before and budget.used_bytes == 0
    run(main(), 60.0)


def test_a_connection_that_dies_mid_frame_returns_its_reservation():
    async def main():
        kwargs = {"buffer_bytes": 1024 * 1024}
        async with cluster(server_kwargs=kwargs) as (server, client, addr, handler):
            reader, writer = await raw_authenticated(addr)
            size = 8 * FREE_FRAME_BYTES
            writer.write(struct.pack(">I", size) + b"\0" * FREE_FRAME_BYTES)
            await writer.drain()
            budget = server.buffer_budget
            for _ in range(200):
                if budget.used_bytes:
                    break
                await asyncio.sleep(0.01)
            assert budget.used_bytes == size + 4
            writer.close()
            for _ in range(200):
                if not budget.used_bytes:
                    break
                await asyncio.sleep(0.01)
            assert budget.used_bytes == 0
            big = b"b" * (2 * 1024 * 1024)   # larger than the budget: granted when alone
            assert await client.call(addr, "echo", big, 10.0) == big
    run(main(), 30.0)


def test_server_rejects_bad_limit_settings():
    with pytest.raises(ValueError):
        PeerServer("s", SECRET, lambda *a: None, buffer_bytes=0)


def test_client_refuses_a_large_frame_from_an_unauthenticated_server():
    async def main():
        sent = asyncio.Event()

        async def fake_server(reader, writer):
            # A "hello" announcing far more than a handshake needs, then some of it: without
            # the limit the client would wait for the rest (up to its 60 s connect timeout).
            writer.write(struct.pack(">I", 1 << 20) + b"\0" * 10_000)
            await writer.drain()
            sent.set()
            await reader.read()        # the client hangs up
            writer.close()

        srv = await asyncio.start_server(fake_server, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        client = PeerClient("c", SECRET, connect_timeout_s=60.0)
        try:
            with pytest.raises(PeerError):
                await client.call(f"127.0.0.1:{port}", "echo", 1, 60.0)
            assert sent.is_set()
        finally:
            await client.close()
            srv.close()
            await srv.wait_closed()
        # With a real server, frames far larger than the pre-handshake limit flow both ways.
        async with cluster() as (server, client, addr, handler):
            big = b"r" * (PREAUTH_MAX_FRAME_BYTES * 50)
            assert await client.call(addr, "echo", big, 5.0) == big
    run(main(), 15.0)
