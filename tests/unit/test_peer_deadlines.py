"""A peer call's deadline with one timer per connection (``peer/client.py``): each call still
fails at its own deadline, whatever order the calls were sent in, and a lost connection fails
every call in flight at once. Real sockets on 127.0.0.1, on asyncio's loop and on uvloop (the
one ``dynamopy serve`` runs)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from dynamopy.peer import PeerClient, PeerServer, PeerTimeout, PeerUnavailable

SECRET = b"test-cluster-secret"
LATE_S = 0.5   # how late past its deadline a timeout may arrive on this busy machine
LOOPS = ["asyncio", "uvloop"]


def run(kind: str, coro, timeout_s: float = 15.0):
    """Run one test coroutine on the named loop, with a hard bound on its running time."""
    wrapped = asyncio.wait_for(coro, timeout_s)
    if kind == "uvloop":
        return uvloop.run(wrapped)
    return asyncio.run(wrapped)


async def _handler(method, payload, peer_id):
    if method == "sleep":
        await asyncio.sleep(payload)
        return payload
    return payload


async def _serve():
    server = PeerServer("server-1", SECRET, _handler)
    host, port = await server.start("127.0.0.1", 0)
    return server, f"{host}:{port}"


async def _failed_at(fut: asyncio.Future, start: float) -> tuple[type, float]:
    """When (seconds after ``start``) ``fut`` failed, and with what."""
    try:
        await fut
    except Exception as exc:  # noqa: BLE001 - the test looks at the type
        return type(exc), asyncio.get_running_loop().time() - start
    raise AssertionError(f"the call succeeded: {fut.result()!r}")


def _assert_on_time(outcome: tuple[type, float], deadline_s: float, what: str) -> None:
    kind, at = outcome
    assert kind is PeerTimeout, f"{what}: failed with {kind.__name__}, not PeerTimeout"
    assert deadline_s - 0.002 <= at < deadline_s + LATE_S, (
        f"{what}: timed out {at:.3f} s after it was sent; its deadline was {deadline_s} s")


@pytest.mark.parametrize("kind", LOOPS)
def test_each_call_times_out_at_its_own_deadline_in_any_order(kind):
    """Calls sent on one connection with deadlines in order, out of order (a shorter timeout
    behind a longer one), and after the queue emptied: every one fails with PeerTimeout at its
    own deadline, not at another call's (the bugs this catches would make them 4-8 s late)."""

    async def main():
        server, addr = await _serve()
        client = PeerClient("client-1", SECRET)
        try:
            assert await client.call(addr, "echo", 1, 1.0) == 1  # connected and ready
            loop = asyncio.get_running_loop()
            # The queue has emptied, its timer still armed for this answered call's deadline
            # (9 s from now): a shorter call after it must not wait for that timer.
            assert await client.start(addr, "echo", 2, 9.0) == 2
            start = loop.time()
            first = client.start(addr, "sleep", 30, 0.3)
            answered = client.start(addr, "sleep", 0.05, 0.4)  # settles before its deadline
            later = client.start(addr, "sleep", 30, 0.6)
            longest = client.start(addr, "sleep", 30, 8.0)
            shorter = client.start(addr, "sleep", 30, 0.45)  # sent after an 8 s deadline
            via_call = asyncio.ensure_future(client.call(addr, "sleep", 30, 0.7))
            assert await answered == 0.05
            outcomes = await asyncio.gather(
                _failed_at(first, start), _failed_at(later, start),
                _failed_at(shorter, start), _failed_at(via_call, start))
            _assert_on_time(outcomes[0], 0.3, "the first call")
            _assert_on_time(outcomes[1], 0.6, "a call behind an answered one")
            _assert_on_time(outcomes[2], 0.45, "a shorter call behind a longer one")
            _assert_on_time(outcomes[3], 0.7, "a call through call()")
            assert not longest.done()  # 8 s: still waiting, the connection still open
            assert await client.call(addr, "echo", 3, 1.0) == 3
            assert server.connection_count == 1
        finally:
            await client.close()
            await server.stop()

    run(kind, main())


@pytest.mark.parametrize("kind", LOOPS)
def test_a_lost_connection_fails_every_call_in_flight_at_once(kind):
    """Calls with long deadlines (queued on the connection's timer, and one with its own
    timer) fail with PeerUnavailable as soon as the connection breaks, not at their deadline;
    the next call connects again and is answered."""

    async def main():
        server, addr = await _serve()
        client = PeerClient("client-1", SECRET, backoff_initial_s=0.01)
        try:
            assert await client.call(addr, "echo", 1, 1.0) == 1
            loop = asyncio.get_running_loop()
            calls = [client.start(addr, "sleep", 30, 10.0 + i) for i in range(3)]
            calls.append(client.start(addr, "sleep", 30, 5.0))  # its own timer
            await asyncio.sleep(0.05)
            assert not any(c.done() for c in calls)
            conn = client._endpoints[addr].conn
            start = loop.time()
            conn._transport.abort()  # the connection breaks under the calls
            done, _ = await asyncio.wait(calls, timeout=1.0)
            assert len(done) == len(calls), "calls in flight were not failed by the break"
            assert loop.time() - start < 1.0
            for c in calls:
                with pytest.raises(PeerUnavailable):
                    c.result()
            assert len(conn._deadlines) == 0 and conn._deadlines._timer is None  # nothing armed
            await asyncio.sleep(0.05)  # past the reconnect back-off
            assert await client.call(addr, "echo", 2, 1.0) == 2
        finally:
            await client.close()
            await server.stop()

    run(kind, main())
