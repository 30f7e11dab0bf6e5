"""Mutual cluster-secret handshake (HMAC-SHA256 with nonces). Pure: the caller supplies the
nonces (from ``os.urandom``/``secrets``) and moves the messages; nothing here does I/O.

Exchange, each message one frame (see ``framing``), before any request:

1. server -> client  ``{"hello": nonce_s}``
2. client -> server  ``{"id": client_id, "nonce": nonce_c,
                       "mac": HMAC(secret, b"client" + nonce_s + nonce_c + id_utf8)}``
3. server -> client  ``{"ok": True, "id": server_id,
                       "mac": HMAC(secret, b"server" + nonce_c + nonce_s)}``
   or, on failure,   ``{"ok": False, "error": "unauthorized"}`` and the server closes.

Rules and why:

- Each side's MAC covers the nonce the *other* side chose, so a recorded exchange cannot be
  replayed; the ``b"client"``/``b"server"`` prefixes stop a MAC from one role being reflected
  back as the other's.
- Nonces are exactly ``NONCE_BYTES`` long, which makes the concatenations unambiguous.
- MACs are compared with ``hmac.compare_digest`` (constant time).
- The server's MAC does not cover ``server_id`` (as specified); the id is informational,
  the proof is knowledge of the secret.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from .errors import AuthError

NONCE_BYTES = 16
REJECT_ERROR = "unauthorized"


def _mac(secret: bytes, data: bytes) -> bytes:
    return hmac.new(secret, data, hashlib.sha256).digest()


def _check_nonce(nonce: Any, who: str) -> bytes:
    if type(nonce) is not bytes or len(nonce) != NONCE_BYTES:
        raise AuthError(f"{who} nonce must be {NONCE_BYTES} bytes")
    return nonce


def client_mac(secret: bytes, nonce_s: bytes, nonce_c: bytes, client_id: str) -> bytes:
    return _mac(secret, b"client" + nonce_s + nonce_c + client_id.encode("utf-8"))


def server_mac(secret: bytes, nonce_c: bytes, nonce_s: bytes) -> bytes:
    return _mac(secret, b"server" + nonce_c + nonce_s)


def server_hello(nonce_s: bytes) -> dict:
    """Message 1."""
    return {"hello": _check_nonce(nonce_s, "server")}


def parse_server_hello(msg: Any) -> bytes:
    """Client side of message 1: the server's nonce, or ``AuthError``."""
    if type(msg) is not dict:
        raise AuthError("expected a handshake hello from the peer")
    return _check_nonce(msg.get("hello"), "server")


def client_answer(secret: bytes, client_id: str, nonce_s: bytes, nonce_c: bytes) -> dict:
    """Message 2."""
    _check_nonce(nonce_c, "client")
    return {
        "id": client_id,
        "nonce": nonce_c,
        "mac": client_mac(secret, nonce_s, nonce_c, client_id),
    }


def verify_client_answer(secret: bytes, nonce_s: bytes, msg: Any) -> tuple[str, bytes]:
    """Server side of message 2: ``(client_id, nonce_c)`` if the MAC proves the secret,
    else ``AuthError``."""
    if type(msg) is not dict:
        raise AuthError("malformed handshake answer")
    client_id = msg.get("id")
    mac = msg.get("mac")
    if type(client_id) is not str or type(mac) is not bytes:
        raise AuthError("malformed handshake answer")
    nonce_c = _check_nonce(msg.get("nonce"), "client")
    if not hmac.compare_digest(mac, client_mac(secret, nonce_s, nonce_c, client_id)):
        raise AuthError(f"bad handshake MAC from {client_id!r}")
    return client_id, nonce_c


def server_accept(secret: bytes, server_id: str, nonce_c: bytes, nonce_s: bytes) -> dict:
    """Message 3, success."""
    return {"ok": True, "id": server_id, "mac": server_mac(secret, nonce_c, nonce_s)}


def server_reject() -> dict:
    """Message 3, failure (the server closes right after sending it)."""
    return {"ok": False, "error": REJECT_ERROR}


def verify_server_answer(secret: bytes, nonce_s: bytes, nonce_c: bytes, msg: Any) -> str:
    """Client side of message 3: the server's id if it proved the secret, else
    ``AuthError``."""
    if type(msg) is not dict:
        raise AuthError("malformed handshake reply")
    if msg.get("ok") is not True:
        raise AuthError(f"peer rejected the handshake: {msg.get('error', 'unknown')}")
    server_id = msg.get("id")
    mac = msg.get("mac")
    if type(server_id) is not str or type(mac) is not bytes:
        raise AuthError("malformed handshake reply")
    if not hmac.compare_digest(mac, server_mac(secret, nonce_c, nonce_s)):
        raise AuthError(f"bad handshake MAC from server {server_id!r}")
    return server_id
