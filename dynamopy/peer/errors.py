"""Errors raised by the peer RPC layer.

Rule: every failure of ``PeerClient.call`` that is the peer's or the network's doing is a
``PeerError`` subclass, so a coordinator can treat "this replica did not answer usefully"
with one ``except PeerError``. Local misuse (an unserialisable payload, a malformed address)
raises ordinary ``TypeError``/``ValueError`` instead, as in h11, because retrying another
replica would not help. A request larger than the frame limit is ``MessageTooLarge``, a
``PeerError``, so a coordinator counts it as a failed replica call rather than crashing.
"""

from __future__ import annotations

CODE_INTERNAL = "internal"
CODE_UNKNOWN_METHOD = "unknown_method"


class PeerError(Exception):
    """Base class: the call did not produce a result from the peer."""


class PeerUnavailable(PeerError):
    """No usable connection: connect failed, connection lost before the reply, the client is
    closed, or the address is in reconnect back-off (fail fast)."""


class PeerTimeout(PeerError):
    """No reply within the call's ``timeout_s``. The connection stays open; a late reply is
    dropped."""


class AuthError(PeerError):
    """The cluster-secret handshake failed (either side could not prove the secret)."""


class MessageTooLarge(PeerError):
    """A request does not fit in one peer frame. It cannot succeed at any peer and says
    nothing about this one's health; the node's settings keep every record within a frame
    (``config.MAX_VALUE_BYTES_LIMIT``), so this is a last line, not a path taken."""


class RemoteError(PeerError):
    """The peer answered with an error ``{"code": str, "detail": str}``.

    Handlers raise this (or any exception with a string ``code`` attribute) to send a coded
    error; the client re-raises it with the same ``code`` and ``detail``.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail

    def to_wire(self) -> dict:
        return {"code": self.code, "detail": self.detail}


class UnknownMethod(RemoteError):
    """A handler raises this for a method it does not serve."""

    def __init__(self, method: str) -> None:
        super().__init__(CODE_UNKNOWN_METHOD, f"unknown method {method!r}")
