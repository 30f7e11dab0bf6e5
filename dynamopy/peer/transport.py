"""The Transport seam: how a node calls its peers and serves their calls.

``Transport`` is everything the node runtime asks of the network; ``TcpTransport`` is the
production implementation (``PeerClient`` + ``PeerServer``: authenticated, pipelined TCP,
optional mutual TLS) and ``dynamopy.sim.transport.MemoryTransport`` the in-memory one used by
in-process tests and the simulator. The node builds neither: the entry point passes one in.

Contract of ``call``: it returns the peer's result or raises a ``PeerError`` —
``PeerUnavailable`` (no connection / lost before the reply), ``PeerTimeout`` (no reply within
``timeout_s``), ``RemoteError`` (the peer's handler raised an error with a ``code``),
``AuthError`` (handshake failed) — or ``MessageTooLarge`` (never sent).
"""

from __future__ import annotations

import asyncio
import errno
import random
from typing import Any, Awaitable, Callable, Mapping, Optional, Protocol, runtime_checkable

from .client import OnCall, PeerClient
from .limits import OnReject
from .server import Handler, PeerServer

SyncMethods = Mapping[str, Callable[[Any, str], Any]]
"""Methods answered inline (no task): ``fn(payload, peer_id) -> result``; they must not block."""

FutureMethods = Mapping[str, Callable[[Any, str], Awaitable[Any]]]
"""Methods that start their work and return a future of the result, answered by a callback
(no task per request), or a coroutine when they cannot (then run like a handler's method)."""


@runtime_checkable
class PeerCaller(Protocol):
    """Send one request to the peer at ``addr`` and return its result (see the module
    docstring for the errors). ``PeerClient`` is one."""

    async def call(self, addr: str, method: str, payload: Any, timeout_s: float) -> Any: ...


@runtime_checkable
class Transport(PeerCaller, Protocol):
    """Call a peer by address, serve this node's handlers, close."""

    async def identify(self, addr: str, timeout_s: float) -> str:
        """The member id the node at ``addr`` proves (the peer handshake)."""
        ...

    def start(self, addr: str, method: str, payload: Any, timeout_s: float) -> asyncio.Future:
        """``call`` started now, as a future with the same result or error (never raises
        itself). The production transport sends on a ready connection without a task."""
        ...

    async def serve(self, handler: Handler, sync_methods: SyncMethods,
                    future_methods: Optional[FutureMethods] = None) -> None:
        """Start answering peers: ``sync_methods`` inline, ``future_methods`` by a callback on
        the future they return, every other method by ``handler``."""
        ...

    def observe(self, on_call: Optional[OnCall] = None,
                on_reject: Optional[OnReject] = None) -> None:
        """Metric hooks: ``on_call(method, addr, seconds, outcome)`` per finished call,
        ``on_reject(reason)`` per connection refused before its handshake."""
        ...

    async def close(self) -> None:
        """Stop serving and fail pending calls."""
        ...


class TcpTransport:
    """The production Transport: ``PeerClient`` and ``PeerServer`` on ``host:port``."""

    def __init__(self, node_id: str, secret: bytes, host: str, port: int, *,
                 rng: random.Random, delay_ms: Optional[tuple[float, float]] = None,
                 max_unauthenticated: Optional[int] = None, buffer_bytes: Optional[int] = None,
                 client_ssl=None, server_ssl=None, backoff_max_s: float = 0.5) -> None:
        self.node_id, self._secret = node_id, secret
        self.host, self.port = host, port
        self._server_ssl = server_ssl
        self._server_kw: dict[str, Any] = {}
        if max_unauthenticated is not None:
            self._server_kw["max_unauthenticated"] = max_unauthenticated
        if buffer_bytes is not None:
            self._server_kw["buffer_bytes"] = buffer_bytes
        self._on_reject: Optional[OnReject] = None
        self.client = PeerClient(node_id, secret, delay_ms=delay_ms, rng=rng,
                                 backoff_max_s=backoff_max_s, ssl=client_ssl)
        self.server: Optional[PeerServer] = None

    @classmethod
    def from_config(cls, config, rng: random.Random) -> "TcpTransport":
        """The transport ``dynamopy serve`` uses: the node's peer port, secret and TLS.
        Short reconnect back-off: refused connects on a LAN are cheap, and a restarted peer
        should be usable again within half a second."""
        from dynamopy.tls import peer_client_context, peer_server_context
        tls = config.tls
        return cls(config.node_id, config.cluster_secret.encode(), config.host,
                   config.peer_port, rng=rng, delay_ms=config.peer_delay_ms,
                   max_unauthenticated=config.peer_max_unauthenticated,
                   buffer_bytes=config.peer_buffer_bytes,
                   client_ssl=peer_client_context(tls) if tls is not None else None,
                   server_ssl=peer_server_context(tls) if tls is not None else None)

    def observe(self, on_call: Optional[OnCall] = None,
                on_reject: Optional[OnReject] = None) -> None:
        self.client._on_call = on_call
        self._on_reject = on_reject

    async def call(self, addr: str, method: str, payload: Any, timeout_s: float) -> Any:
        return await self.client.call(addr, method, payload, timeout_s)

    def start(self, addr: str, method: str, payload: Any, timeout_s: float) -> asyncio.Future:
        return self.client.start(addr, method, payload, timeout_s)

    async def identify(self, addr: str, timeout_s: float) -> str:
        return await self.client.identify(addr, timeout_s)

    async def serve(self, handler: Handler, sync_methods: SyncMethods,
                    future_methods: Optional[FutureMethods] = None) -> None:
        self.server = PeerServer(self.node_id, self._secret, handler,
                                 sync_methods=sync_methods, future_methods=future_methods,
                                 on_reject=self._on_reject,
                                 ssl=self._server_ssl, **self._server_kw)
        try:
            await self.server.start(self.host, self.port)
        except OSError as e:   # `dynamopy serve` prints it as one line naming the flag
            raise bind_error("--peer-port", self.host, self.port, e) from None

    async def close(self) -> None:
        if self.server is not None:
            await self.server.stop()
        await self.client.close()


def bind_error(flag: str, host: str, port: int, e: OSError) -> OSError:
    """``e``, a failure to listen on ``host:port``, as an error naming the flag that chose
    the port (``dynamopy serve`` prints it as one line: ``dynamopy: error: ...``)."""
    if e.errno == errno.EADDRINUSE:
        text = (f"{flag} {port}: {host}:{port} is already in use; stop what uses it or "
                f"pick another {flag}")
    else:
        text = f"{flag} {port}: cannot listen on {host}:{port}: {e.strerror or e}"
    return OSError(e.errno, text)
