"""The in-memory Transport: several in-process nodes connected by one ``MemoryNetwork``.

Each node gets its own ``MemoryTransport`` (``network.transport(node_id)``; its address is
the node id). A call behaves like the TCP one as far as a caller can tell:

* the payload and the result cross the "wire" as msgpack (so what cannot be framed fails
  here too, and the receiver never shares objects with the sender);
* the receiver sees the caller's node id as the authenticated ``peer_id``;
* "sync" methods are answered inline, everything else by the handler in a task of the
  receiver's, which ``close()`` (a stop or a crash) cancels: the caller then gets
  ``PeerUnavailable``, as when a connection is lost;
* an error with a string ``code`` becomes ``RemoteError(code, detail)``, anything else
  ``RemoteError("internal")``; no reply within ``timeout_s`` is ``PeerTimeout``; no node
  serving at the address, or a cut link, is ``PeerUnavailable``.

Delivery is deterministic: messages take ``delay_s(src, dst, method)`` of (virtual) time,
``DEFAULT_DELAY_S`` unless set (not 0: a loop that calls a peer over and over must let time
pass, so that a livelock ends in a timeout instead of spinning at one instant), and same-time events run in the order they were scheduled. Hooks for faults:
``partition``/``heal`` (checked when a request is sent and again when it arrives), and
``delay_s`` for slow links or to arrange which replica answers first.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional

import msgpack

from dynamopy.peer.errors import (CODE_INTERNAL, MessageTooLarge, PeerTimeout, PeerUnavailable,
                                  RemoteError, UnknownMethod)
from dynamopy.peer.framing import MAX_FRAME_BYTES
from dynamopy.sim.network import Partitions

log = logging.getLogger(__name__)

DelayFn = Callable[[str, str, str], float]
DEFAULT_DELAY_S = 0.0005  # a loopback hop; never 0, so a retry loop over the network moves time


def _wire(obj: Any) -> Any:
    raw = msgpack.packb(obj, use_bin_type=True)
    if len(raw) > MAX_FRAME_BYTES:
        raise MessageTooLarge(f"{len(raw)} bytes exceed the {MAX_FRAME_BYTES}-byte frame")
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


class MemoryNetwork:
    """The wires between in-process nodes, addressed by node id."""

    def __init__(self, delay_s: Optional[DelayFn] = None) -> None:
        self.delay_s: DelayFn = delay_s or (lambda src, dst, method: DEFAULT_DELAY_S)
        self._serving: dict[str, "MemoryTransport"] = {}
        self.partitions = Partitions()  # the same fault model as the metadata-log simulator
        self.partition = self.partitions.partition
        self.isolate = self.partitions.isolate
        self.heal = self.partitions.heal
        self.connected = self.partitions.connected
        self.calls = 0

    def transport(self, node_id: str) -> "MemoryTransport":
        return MemoryTransport(self, node_id)

    def serving(self, addr: str) -> Optional["MemoryTransport"]:
        return self._serving.get(addr)


class MemoryTransport:
    """One node's end of a ``MemoryNetwork`` (the ``dynamopy.peer.Transport`` protocol)."""

    def __init__(self, network: MemoryNetwork, node_id: str) -> None:
        self.network = network
        self.node_id = self.addr = node_id
        self._handler = None
        self._sync: dict = {}
        self._started: dict = {}
        self._tasks: set[asyncio.Task] = set()
        self._on_call = None

    def observe(self, on_call=None, on_reject=None) -> None:
        self._on_call = on_call

    async def serve(self, handler, sync_methods, future_methods=None) -> None:
        if self.network._serving.get(self.addr) not in (None, self):
            raise RuntimeError(f"another node serves {self.addr} already")
        self._handler, self._sync = handler, dict(sync_methods)
        self._started = dict(future_methods or {})
        self.network._serving[self.addr] = self

    async def close(self) -> None:
        if self.network._serving.get(self.addr) is self:
            del self.network._serving[self.addr]
        tasks, self._tasks = list(self._tasks), set()
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def identify(self, addr: str, timeout_s: float) -> str:
        if self.network.serving(addr) is None or not self.network.connected(self.addr, addr):
            raise PeerUnavailable(f"{addr}: cannot connect")
        return addr

    def start(self, addr: str, method: str, payload: Any, timeout_s: float) -> asyncio.Future:
        """``call`` in a task (the in-memory network has no connection to send on)."""
        return asyncio.ensure_future(self.call(addr, method, payload, timeout_s))

    async def call(self, addr: str, method: str, payload: Any, timeout_s: float) -> Any:
        loop = asyncio.get_running_loop()
        started, outcome = loop.time(), "error"
        try:
            result = await self._call(addr, method, payload, timeout_s)
            outcome = "ok"
            return result
        except PeerTimeout:
            outcome = "timeout"
            raise
        except PeerUnavailable:
            outcome = "unavailable"
            raise
        finally:
            if self._on_call is not None:
                self._on_call(method, addr, loop.time() - started, outcome)

    async def _call(self, addr: str, method: str, payload: Any, timeout_s: float) -> Any:
        net = self.network
        net.calls += 1
        if net.serving(addr) is None or not net.connected(self.addr, addr):
            raise PeerUnavailable(f"{addr}: cannot connect")
        wire = _wire(payload)
        try:
            async with asyncio.timeout(timeout_s):
                delay = net.delay_s(self.addr, addr, method)
                if delay > 0:
                    await asyncio.sleep(delay)
                server = net.serving(addr)
                if server is None or not net.connected(self.addr, addr):
                    raise PeerUnavailable(f"{addr}: connection lost")
                return await server._answer(method, wire, self.node_id)
        except TimeoutError:
            raise PeerTimeout(f"{addr}: no reply to {method} within {timeout_s:.3f}s") from None

    async def _answer(self, method: str, payload: Any, peer_id: str) -> Any:
        """Run one request as the receiving node; its reply crosses the wire too."""
        fn = self._sync.get(method)
        if fn is not None:
            return _wire(_remote(lambda: fn(payload, peer_id)))
        started = self._started.get(method)
        if started is not None:
            handling = _remote(lambda: started(payload, peer_id))  # a future or a coroutine
        elif self._handler is None:
            raise UnknownMethod(method)
        else:
            handling = self._handler(method, payload, peer_id)
        task = asyncio.get_running_loop().create_task(_awaited(handling))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # the receiver stopped or crashed under the request
                raise PeerUnavailable(f"{self.addr}: connection lost") from None
            raise  # the caller gave up (timeout); as over TCP, the receiver carries on
        except Exception as exc:  # noqa: BLE001 - mapped like the TCP server maps it
            raise _as_remote(exc) from None
        return _wire(result)


async def _awaited(handling: Any) -> Any:
    return await handling


def _remote(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001
        raise _as_remote(exc) from None


def _as_remote(exc: Exception) -> RemoteError:
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        detail = getattr(exc, "detail", None)
        return RemoteError(code, detail if isinstance(detail, str) else str(exc))
    log.error("peer handler raised %r", exc, exc_info=exc)
    return RemoteError(CODE_INTERNAL, f"internal error: {exc!r}")
