"""``FramedProtocol``: the asyncio.Protocol shared by both ends of a peer connection.

It owns the frame decoder and the outgoing write batch; subclasses implement
``on_message`` (one decoded message), ``on_frame_error`` and ``on_connection_lost``.

Rules:

- Writes are batched: ``send_frame`` appends to a list and schedules one flush per event-loop
  iteration, so N responses (or N pipelined requests) completed in the same iteration cost
  one ``transport.write`` (one syscall) instead of N.
- ``close()`` flushes the batch first, so a final frame (e.g. a handshake rejection) is sent.
- After ``closing`` is true no message is delivered to ``on_message`` and no frame is
  queued; a frame error closes the connection (``abort``) after ``on_frame_error`` has run.
- With ``preauth_max_frame_bytes`` set, frames are limited to it until ``set_authenticated``
  (the handshake needs a few hundred bytes; see ``limits``), so an unauthenticated peer cannot
  make us buffer a large frame.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Optional

from .framing import FrameDecoder, FrameError


class FramedProtocol(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, max_frame_bytes: int,
                 preauth_max_frame_bytes: Optional[int] = None) -> None:
        self._loop = loop
        self._max_frame_bytes = max_frame_bytes
        self._decoder = FrameDecoder(min(max_frame_bytes, preauth_max_frame_bytes or max_frame_bytes))
        self._transport: Optional[asyncio.Transport] = None
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._write_paused = False
        self.closing = False

    # ---- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                # Request/response traffic: never let Nagle hold a small frame back.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            msgs = self._decoder.feed(data)
        except FrameError as exc:
            self.on_frame_error(exc)
            self.abort()
            return
        for msg in msgs:
            if self.closing:
                return
            self.on_message(msg)

    def eof_received(self) -> bool:
        return False  # half-closed peers are useless for request/response: close fully

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.closing = True
        self._out.clear()
        self.on_connection_lost(exc)

    def pause_writing(self) -> None:
        self._write_paused = True
        self.on_write_paused(True)

    def resume_writing(self) -> None:
        self._write_paused = False
        self.on_write_paused(False)

    def set_authenticated(self) -> None:
        """The peer proved the secret: lift the pre-handshake frame limit."""
        self._decoder.max_frame_bytes = self._max_frame_bytes

    # ---- subclass hooks ---------------------------------------------------------------
    def on_message(self, msg: Any) -> None:
        raise NotImplementedError

    def on_frame_error(self, exc: FrameError) -> None:
        pass

    def on_connection_lost(self, exc: Optional[BaseException]) -> None:
        pass

    def on_write_paused(self, paused: bool) -> None:
        pass

    # ---- writing and closing ----------------------------------------------------------
    def send_frame(self, frame: bytes) -> None:
        if self.closing:
            return
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out or self._transport is None or self._transport.is_closing():
            out.clear()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._transport.write(data)

    def close(self) -> None:
        """Flush queued frames, then close gracefully."""
        if self.closing:
            return
        self._flush()
        self.closing = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close now, dropping anything not yet written."""
        self.closing = True
        self._out.clear()
        if self._transport is not None:
            self._transport.abort()

    @property
    def peername(self) -> Any:
        return None if self._transport is None else self._transport.get_extra_info("peername")
