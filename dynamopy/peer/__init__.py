"""Node-to-node RPC: framing, cluster-secret auth, pipelined client, server.

``Transport`` (``transport.py``) is the seam the node runtime depends on: ``TcpTransport``
implements it over TCP, ``dynamopy.sim.transport`` in memory. Every failure to get a useful answer
from a peer raises a ``PeerError`` subclass.
"""

from __future__ import annotations

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
from .transport import PeerCaller, SyncMethods, TcpTransport, Transport


__all__ = [
    "AuthError",
    "CODE_INTERNAL",
    "CODE_UNKNOWN_METHOD",
    "FrameError",
    "FrameTooLarge",
    "MessageTooLarge",
    "Handler",
    "MAX_FRAME_BYTES",
    "PeerCaller",
    "PeerClient",
    "PeerError",
    "PeerServer",
    "PeerTimeout",
    "PeerUnavailable",
    "RemoteError",
    "SyncMethods",
    "TcpTransport",
    "Transport",
    "UnknownMethod",
    "route",
]
