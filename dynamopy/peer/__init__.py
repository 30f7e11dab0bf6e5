"""Node-to-node RPC: framing, cluster-secret auth, pipelined client, server.

``Transport`` is the seam the node runtime depends on: ``PeerClient`` implements it over TCP,
the simulator provides an in-memory implementation. Every failure to get a useful answer
from a peer raises a ``PeerError`` subclass.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .client import PeerClient
from .errors import (
    CODE_INTERNAL,
    CODE_UNKNOWN_METHOD,
    AuthError,
    MessageTooLarge,
    PeerError,
    PeerTimeout,
    PeerUnavailable,
    RemoteError,
    UnknownMethod,
)
from .framing import MAX_FRAME_BYTES, FrameError, FrameTooLarge
from .server import Handler, PeerServer, route


@runtime_checkable
class Transport(Protocol):
    """Send one request to the peer at ``addr`` (``"host:port"`` or a simulator node name)
    and return its result.

    Raises ``PeerUnavailable`` (no connection / lost before the reply / in back-off),
    ``PeerTimeout`` (no reply within ``timeout_s``), ``RemoteError`` (the peer answered with
    an error code) or ``AuthError`` (handshake failed).
    """

    async def call(self, addr: str, method: str, payload: Any, timeout_s: float) -> Any: ...


__all__ = [
    "AuthError",
    "CODE_INTERNAL",
    "CODE_UNKNOWN_METHOD",
    "FrameError",
    "FrameTooLarge",
    "MessageTooLarge",
    "Handler",
    "MAX_FRAME_BYTES",
    "PeerClient",
    "PeerError",
    "PeerServer",
    "PeerTimeout",
    "PeerUnavailable",
    "RemoteError",
    "Transport",
    "UnknownMethod",
    "route",
]
