"""Wire framing for node-to-node RPC. Pure: no sockets, no clock.

A frame is a 4-byte big-endian unsigned body length followed by one msgpack object
(``use_bin_type=True`` on encode, ``raw=False`` on decode, so ``str`` and ``bytes`` survive
the round trip as themselves).

Messages carried in frames (after the handshake, see ``auth``):

- request       ``[0, req_id: int, method: str, payload]``
- response      ``[1, req_id: int, ok: bool, result_or_error]``; an error is
                ``{"code": str, "detail": str}``

The server and the client check these shapes inline on their hot paths (one call less per
message); anything else ends the connection.

Invariants:

- ``FrameDecoder.feed`` returns frames in arrival order, however the byte stream is split.
- A length header above ``max_frame_bytes`` raises ``FrameTooLarge`` as soon as the four
  header bytes are seen, never after buffering the body, so a hostile or buggy peer cannot
  make us allocate an arbitrary amount of memory.
- After ``FrameError`` (or its subclass ``FrameTooLarge``) the stream position is lost; the
  decoder refuses further input and the owner must close the connection.
- ``max_frame_bytes`` may be raised while decoding (a connection raises it once the peer has
  authenticated); it applies to every header seen after the change.
- After each ``feed``, ``pending_frame_bytes`` is the size (header + body) of the frame that is
  still incomplete at the head of the buffer, so the owner can account for the memory it will
  take before reading on.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

MAX_FRAME_BYTES = 32 * 1024 * 1024

MSG_REQUEST = 0
MSG_RESPONSE = 1

_HEADER = struct.Struct(">I")
_HEADER_BYTES = _HEADER.size
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
_packb = msgpack.packb
_unpackb = msgpack.unpackb


class FrameError(ValueError):
    """The byte stream is not a valid sequence of frames (malformed msgpack or bad shape)."""


class FrameTooLarge(FrameError):
    """A frame's declared body length exceeds the limit."""


def encode_frame(obj: Any, max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """Header + msgpack body of ``obj``.

    Raises ``TypeError`` if ``obj`` is not msgpack-serialisable and ``FrameTooLarge`` if the
    body exceeds ``max_frame_bytes`` (the receiver would drop the connection for it).
    """
    body = _packb(obj, use_bin_type=True)
    n = len(body)
    if n > max_frame_bytes:
        raise FrameTooLarge(f"frame body of {n} bytes exceeds limit {max_frame_bytes}")
    return _pack_header(n) + body


class FrameDecoder:
    """Incremental decoder: feed it byte chunks, get back whole decoded messages."""

    __slots__ = ("_buf", "_max", "_failed", "pending_frame_bytes")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if max_frame_bytes <= 0:
            raise ValueError("max_frame_bytes must be positive")
        self._buf = bytearray()
        self._max = max_frame_bytes
        self._failed = False
        self.pending_frame_bytes = 0

    @property
    def max_frame_bytes(self) -> int:
        return self._max

    @max_frame_bytes.setter
    def max_frame_bytes(self, value: int) -> None:
        if value <= 0:
            raise ValueError("max_frame_bytes must be positive")
        self._max = value

    def feed(self, data: bytes) -> list[Any]:
        """Append ``data`` and return every message completed by it (possibly none)."""
        if self._failed:
            raise FrameError("decoder already failed; the connection must be closed")
        buf = self._buf
        buf += data
        n = len(buf)
        pos = 0
        pending = 0
        out: list[Any] = []
        try:
            # A memoryview slices bodies without copying; it must be released before the
            # bytearray is resized below, hence the ``with``.
            with memoryview(buf) as view:
                while n - pos >= _HEADER_BYTES:
                    (size,) = _unpack_header(buf, pos)
                    if size > self._max:
                        raise FrameTooLarge(
                            f"frame length {size} exceeds limit {self._max}"
                        )
                    end = pos + _HEADER_BYTES + size
                    if end > n:
                        pending = _HEADER_BYTES + size
                        break
                    try:
                        out.append(
                            _unpackb(
                                view[pos + _HEADER_BYTES : end],
                                raw=False,
                                # Peers send maps keyed by ints/bytes too; key types are the
                                # application's business, not the framing's.
                                strict_map_key=False,
                            )
                        )
                    except Exception as exc:  # msgpack raises several unrelated types
                        raise FrameError(f"malformed msgpack frame: {exc!r}") from exc
                    pos = end
        except FrameError:
            self._failed = True
            self.pending_frame_bytes = 0
            buf.clear()
            raise
        self.pending_frame_bytes = pending
        if pos:
            del buf[:pos]
        return out
