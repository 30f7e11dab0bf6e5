"""HTTP resource limits: what one client (or many) can make a node hold.

Rules:

- At most ``max_concurrent_requests`` requests are served at once; one more is answered at once
  with 503 ``{"error": "overloaded", ...}`` and ``Retry-After: 1``, without reading its body.
  ``GET /health`` is exempt (a liveness probe must not fail because the node is busy).
- Request bodies held at once are bounded by ``body_buffer_bytes``: a request with a body
  reserves its size up front (``Content-Length``, capped at ``max_value_bytes``; a chunked
  body reserves ``max_value_bytes``) and keeps the reservation until it is answered; a request
  that does not fit gets the same 503 (one request is always let in when nothing is reserved,
  so a budget smaller than one value never blocks everything). A body longer than
  ``max_value_bytes`` is 413 ``too_large``: ``/kv`` routes answer it themselves, other routes are
  cut off here.
- Slow clients (slowloris): a request's headers and body must arrive within
  ``read_timeout_s`` of its first byte (for a new connection, of the connection opening); past
  it the connection is closed, with 408 ``{"error": "timeout", ...}`` if the headers were not
  complete yet. A request cut off mid-body reaches the handler as a disconnect and stores
  nothing. The deadline stops while the server itself does not read (uvicorn's flow control
  pauses reading behind an earlier pipelined request that is still being answered, or a
  body the handler has not taken yet) and goes on with what was left when reading resumes:
  a client that pipelines and reads its answers slowly is not cut off for bytes it sent
  long ago. Answers the client does not read: when writing has stayed paused (the socket
  buffers full, nothing taken by the client) for ``WRITE_STALL_FACTOR * read_timeout_s`` in
  a row, the connection is dropped (reset), so the request being answered ends and frees its
  slot (else a client that pipelines requests for large values and never reads would hold a
  connection, its request slot and the answer's buffers forever). Headers (request line
  included) are limited to ``MAX_HEADER_BYTES``; beyond, 431 and the connection is closed. Idle keep-alive connections are closed by uvicorn's own
  keep-alive timeout. Both deadlines are kept with one timer per connection each, not one
  per request or answer: a request or answer notes its deadline, and the timer, when it
  fires, sets itself again for what is left of a later deadline.
- An answer sent before the request body has arrived (413, 400, 401, 503 ...) still reaches
  the client: closing a socket with unread bytes makes the kernel send a TCP reset, which can
  destroy the answer before the client reads it (a client still sending its body sees
  "connection reset" instead of the 413). So, as nginx does: when the rest of the body is at
  most ``drain_bytes`` it is read and discarded and the connection stays open; otherwise the
  answer carries ``Connection: close`` and the connection is closed *lingering*: the answer is
  flushed, the write side shut (FIN), and incoming bytes are read and dropped until the client
  closes, for at most ``LINGER_S`` seconds, ``LINGER_IDLE_S`` without data, or ``drain_bytes``
  bytes. Any close of a connection in the middle of a request body lingers the same way.

The first two are an ASGI middleware (``RequestLimits``); the last needs the HTTP parser's
events, so it is a subclass of uvicorn's httptools protocol (``limited_protocol``).
"""

from __future__ import annotations

import json
from typing import Callable, Optional

MAX_HEADER_BYTES = 64 * 1024
LINGER_S = 5.0          # the longest a closing connection keeps reading (nginx: lingering_time)
LINGER_IDLE_S = 1.0     # ... or without any data from the client (nginx: lingering_timeout)
# An answer the client does not read: the connection is dropped once writing has been paused
# (the socket buffers full) this many read timeouts in a row (nginx: send_timeout).
WRITE_STALL_FACTOR = 4
RETRY_AFTER_S = 1
EXEMPT_PATHS = ("/health",)
_BODY_METHODS = frozenset(("PUT", "POST", "PATCH"))

OnReject = Optional[Callable[[str], None]]
"""``on_reject(reason)``: ``overloaded``, ``body_budget``, ``too_large``, ``read_timeout``,
``header_too_large``, ``write_timeout``."""


def _json(error: str, detail: str) -> bytes:
    return json.dumps({"error": error, "detail": detail}).encode()


async def _reply(send, status: int, body: bytes, extra: tuple = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware: the concurrency cap and the request-body budget (module docstring)."""

    def __init__(self, app, *, max_concurrent_requests: int, body_buffer_bytes: int,
                 max_value_bytes: int, on_reject: OnReject = None) -> None:
        self.app = app
        self.max_concurrent = max_concurrent_requests
        self.body_limit = body_buffer_bytes
        self.max_value_bytes = max_value_bytes
        self.on_reject = on_reject
        self.active = 0
        self.body_bytes = 0

    def _reject(self, reason: str) -> None:
        if self.on_reject is not None:
            self.on_reject(reason)

    def reservation(self, method: str, headers) -> tuple[int, bool, Optional[int]]:
        """``(reserve, chunked, declared)`` of a request: the body bytes it must reserve,
        whether its body is chunked, and its declared ``Content-Length`` (None if absent)."""
        reserve, chunked, declared = 0, False, None
        if method in _BODY_METHODS:
            length = None
            for name, value in headers:
                if name == b"content-length":
                    length = value
                elif name == b"transfer-encoding":
                    chunked = True
            limit = self.max_value_bytes
            if length is not None:
                try:
                    declared = int(length)
                except ValueError:  # the HTTP parser already refused these; be safe anyway
                    declared = limit
                reserve = min(declared, limit)
            elif chunked:
                reserve = limit
        return reserve, chunked, declared

    def admits(self, reserve: int) -> bool:
        """Whether a request reserving ``reserve`` body bytes may start now (no counting)."""
        return self.active < self.max_concurrent and not (
            reserve and self.body_bytes and self.body_bytes + reserve > self.body_limit)

    def refusal(self, reserve: int) -> Optional[bytes]:
        """For a ``/kv`` request served without ASGI: None if it may start now, else the
        JSON body of its 503 (counted as a rejection), as ``__call__`` would answer."""
        if self.active >= self.max_concurrent:
            self._reject("overloaded")
            return self._overloaded_body(f"this node is serving its limit of "
                                         f"{self.max_concurrent} concurrent requests")
        if reserve and self.body_bytes and self.body_bytes + reserve > self.body_limit:
            self._reject("body_budget")
            return self._overloaded_body(f"this node holds its limit of "
                                         f"{self.body_limit} bytes of request bodies")
        return None

    @staticmethod
    def _overloaded_body(detail: str) -> bytes:
        return _json("overloaded", f"{detail}; retry after {RETRY_AFTER_S} s")

    def enter(self, reserve: int) -> None:
        self.active += 1
        self.body_bytes += reserve

    def leave(self, reserve: int) -> None:
        self.active -= 1
        self.body_bytes -= reserve

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            return await self.app(scope, receive, send)
        if self.active >= self.max_concurrent:
            self._reject("overloaded")
            return await self._overloaded(send, f"this node is serving its limit of "
                                                f"{self.max_concurrent} concurrent requests")
        reserve, chunked, declared = self.reservation(scope["method"], scope["headers"])
        if (declared is not None and declared > self.max_value_bytes
                and not scope["path"].startswith("/kv/")):
            self._reject("too_large")
            return await _reply(send, 413, _json(
                "too_large", f"the request body is over the limit of {self.max_value_bytes} "
                             "bytes"))
        if not self.admits(reserve):
            self._reject("body_budget")
            return await self._overloaded(send, f"this node holds its limit of "
                                                f"{self.body_limit} bytes of request bodies")
        self.enter(reserve)
        try:
            if chunked and not scope["path"].startswith("/kv/"):
                await self._capped_body(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            self.leave(reserve)

    async def _overloaded(self, send, detail: str) -> None:
        await _reply(send, 503, self._overloaded_body(detail),
                     ((b"retry-after", str(RETRY_AFTER_S).encode()),))

    async def _capped_body(self, scope, receive, send) -> None:
        """A chunked body on a route that does not check its size itself: past
        ``max_value_bytes`` the app sees a disconnect and the client gets 413."""
        limit = self.max_value_bytes
        seen = 0
        cut = False
        started = False

        async def capped_receive():
            nonlocal seen, cut
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    cut = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if cut:
                return  # the app's answer to the cut-off body is replaced by the 413 below
            started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, guarded_send)
        except Exception:
            if not cut:
                raise
        if cut and not started:
            self._reject("too_large")
            await _reply(send, 413, _json(
                "too_large", f"the request body is over the limit of {limit} bytes"),
                ((b"connection", b"close"),))


class _HeaderTooLarge(Exception):
    pass


class _LingeringTransport:
    """The transport uvicorn's protocol and request cycles write to: the real one, except that

    - writes made in one event-loop step go out as one ``write`` (uvicorn writes a response's
      head and body separately: two syscalls per answer otherwise), flushed by a callback
      scheduled for the same loop iteration and before any close or half-close;
    - ``close()`` asks the protocol first (it may linger instead, module docstring);
    - ``pause_reading()``/``resume_reading()`` (uvicorn's flow control) tell the protocol,
      whose read deadline stops while reading is paused."""

    __slots__ = ("_real", "_protocol", "_loop", "_out")

    def __init__(self, real, protocol, loop) -> None:
        self._real = real
        self._protocol = protocol
        self._loop = loop
        self._out: list = []

    def write(self, data) -> None:
        out = self._out
        out.append(data)
        if len(out) == 1:
            self._loop.call_soon(self.flush)

    def write_now(self, data) -> None:
        """A whole answer written in one piece: straight to the socket (no flush callback)
        unless earlier writes of this step are pending, which it then follows."""
        if self._out:
            self.write(data)
        elif not self._real.is_closing():
            self._real.write(data)

    def flush(self) -> None:
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if not self._real.is_closing():
            self._real.write(data)

    def is_closing(self) -> bool:
        return self._protocol._lingering or self._real.is_closing()

    def close(self) -> None:
        self.flush()
        self._protocol._close()

    def pause_reading(self) -> None:
        self._real.pause_reading()
        self._protocol._reading_paused()

    def resume_reading(self) -> None:
        self._real.resume_reading()
        self._protocol._reading_resumed()

    def __getattr__(self, name):
        return getattr(self._real, name)


def limited_protocol(read_timeout_s: float, on_reject: OnReject = None,
                     max_header_bytes: int = MAX_HEADER_BYTES,
                     drain_bytes: int = 2 * 1024 * 1024):
    """A uvicorn httptools protocol class with the read timeout, the header size limit and
    the drained or lingering close of early answers (module docstring)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    def reject(reason: str) -> None:
        if on_reject is not None:
            on_reject(reason)

    class LimitedHttpProtocol(HttpToolsProtocol):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._read_timer = None      # at most one per connection (``_arm``)
            self._read_deadline: Optional[float] = None   # None: nothing is being read
            self._read_paused = False    # uvicorn's flow control paused reading
            self._read_left: Optional[float] = None   # while paused: the deadline's rest
            self._header_bytes = 0
            self._in_headers = True      # until a request's headers are complete
            self._header_overflow = False
            self._in_body = False        # the parser is inside a request body
            self._body_left: Optional[int] = None   # its unread bytes; None: unknown (chunked)
            self._lingering = False
            self._linger_bytes = 0
            self._linger_timer = None
            self._linger_deadline = 0.0
            self._keep_alive: Optional[bool] = None  # the cycle's, while held off (below)
            self._idle_timer = None      # the keep-alive timeout's, at most one per connection
            self._idle_deadline: Optional[float] = None   # None: not idle
            self._write_timer = None     # while writing is paused: the stall's deadline

        # ---- the read deadline ------------------------------------------------------------
        def connection_made(self, transport) -> None:
            self._real_transport = transport
            super().connection_made(_LingeringTransport(transport, self, self.loop))
            self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None
            self._idle_deadline = None
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            self._lingering = False
            if self._linger_timer is not None:
                self._linger_timer.cancel()
                self._linger_timer = None
            if self._write_timer is not None:
                self._write_timer.cancel()
                self._write_timer = None
            super().connection_lost(exc)

        # ---- answers the client does not read ---------------------------------------------
        def pause_writing(self) -> None:
            """The transport's buffer is full: the answer waits for the client to read. A
            client that reads nothing for ``WRITE_STALL_FACTOR * read_timeout_s`` is
            dropped (module docstring)."""
            super().pause_writing()
            if self._write_timer is None:
                self._write_timer = self.loop.call_later(WRITE_STALL_FACTOR * read_timeout_s,
                                                         self._on_write_stalled)

        def resume_writing(self) -> None:
            if self._write_timer is not None:
                self._write_timer.cancel()
                self._write_timer = None
            super().resume_writing()

        def _on_write_stalled(self) -> None:
            self._write_timer = None
            reject("write_timeout")
            # abort, not close: close would wait for the buffered answer to be flushed
            self._real_transport.abort()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_bytes = 0
            self._in_headers = True
            if self._read_deadline is None:
                self._arm()

        def _headers_done(self) -> None:
            """The headers are in: from here the read deadline counts the body, whose
            length (``_body_left``) is known unless it is chunked or malformed (None)."""
            self._in_headers = False
            self._in_body = True
            self._body_left = 0
            for name, value in self.headers:
                if name == b"content-length":
                    self._body_left = int(value) if value.isdigit() else None
                elif name == b"transfer-encoding":
                    self._body_left = None   # chunked: the length is unknown

        def on_headers_complete(self) -> None:
            self._headers_done()
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is not None and cycle.scope is self.scope and (
                    self._body_left is None or self._body_left > drain_bytes):
                # Too long to drain should the app answer before the body is in: until it is
                # in, the answer would carry Connection: close (uvicorn adds it when
                # keep_alive is off) and the close lingers. on_message_complete restores it.
                self._keep_alive = cycle.keep_alive
                cycle.keep_alive = False

        def on_body(self, body: bytes) -> None:
            if self._body_left is not None:
                self._body_left -= len(body)
            super().on_body(body)

        def on_message_complete(self) -> None:
            self._in_body = False
            self._disarm()
            cycle = self.cycle
            if self._keep_alive is not None and cycle is not None:
                if not cycle.response_started:
                    cycle.keep_alive = self._keep_alive
                self._keep_alive = None
            super().on_message_complete()

        def _arm(self, seconds: float = read_timeout_s) -> None:
            """Start the read deadline: ``seconds`` (``read_timeout_s``) from now, or from
            when reading resumes if it is paused. One timer per connection, not one per
            request (a timer made and cancelled per request was about 1.4% of the loop
            thread's CPU under load): a live timer set for an earlier deadline fires first
            and sets itself again for what is left."""
            if self._read_paused:
                self._read_left = seconds
                return
            self._read_deadline = self.loop.time() + seconds
            if self._read_timer is None:
                self._read_timer = self.loop.call_later(seconds, self._on_read_timer)

        def _disarm(self) -> None:
            self._read_deadline = None   # a live timer finds nothing to watch and ends
            self._read_left = None

        def _reading_paused(self) -> None:
            """Flow control stopped reading: the bytes the client sent wait in the socket
            buffer, so the deadline stops too, keeping what is left of it. (The live timer
            then finds nothing to watch; a deadline set again on resuming is no earlier
            than the one it was set for.)"""
            self._read_paused = True
            deadline = self._read_deadline
            if deadline is not None:
                self._read_deadline = None
                self._read_left = max(0.0, deadline - self.loop.time())

        def _reading_resumed(self) -> None:
            self._read_paused = False
            left = self._read_left
            if left is not None:
                self._read_left = None
                self._arm(left)

        def _on_read_timer(self) -> None:
            self._read_timer = None
            deadline = self._read_deadline
            if deadline is None:
                return
            left = deadline - self.loop.time()
            if left > 0:   # armed again since this timer was set: wait for the rest
                self._read_timer = self.loop.call_later(left, self._on_read_timer)
                return
            self._read_deadline = None
            self._on_read_timeout()

        def _on_read_timeout(self) -> None:
            if self.transport is None or self.transport.is_closing():
                return
            reject("read_timeout")
            if self._in_headers and (self.cycle is None or self.cycle.response_complete):
                self._reply_and_close(408, "Request Timeout", _json(
                    "timeout", f"the request did not arrive within {read_timeout_s:g} s"))
            else:
                # Headers were complete, the body is late: the handler sees a disconnect.
                self._real_transport.close()

        # ---- the keep-alive timeout, one timer per connection ---------------------------
        def on_response_complete(self) -> None:
            """uvicorn 0.54's (count the request, resume reading, start the next pipelined
            request, else start the keep-alive timeout), with the timeout kept like the read
            deadline: the answer notes when the idle connection closes, and the connection's
            one timer checks it (uvicorn makes a timer per answer and cancels it when the
            next request's data arrives)."""
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self._idle_deadline = None
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
                return
            self._idle_deadline = self.loop.time() + self.timeout_keep_alive
            if self._idle_timer is None:
                self._idle_timer = self.loop.call_later(self.timeout_keep_alive,
                                                        self._on_idle_timer)

        def _unset_keepalive_if_required(self) -> None:
            """uvicorn calls this when data arrives (and on close): not idle any more."""
            self._idle_deadline = None

        def _on_idle_timer(self) -> None:
            self._idle_timer = None
            deadline = self._idle_deadline
            if deadline is None:
                return
            left = deadline - self.loop.time()
            if left > 0:   # another answer since this timer was set: wait for the rest
                self._idle_timer = self.loop.call_later(left, self._on_idle_timer)
                return
            self._idle_deadline = None
            self.timeout_keep_alive_handler()

        # ---- closing without a reset ------------------------------------------------------
        def _close(self) -> None:
            """Close, lingering if the client may still be sending (module docstring)."""
            real = self._real_transport
            if self._lingering or real.is_closing():
                return
            if not self._in_body or self.parser is None:
                real.close()
                return
            self._disarm()
            self._unset_keepalive_if_required()
            self._lingering = True
            if real.can_write_eof():   # FIN after the answer; TLS cannot half-close
                real.write_eof()
            if not real.is_reading():
                real.resume_reading()
            self._linger_deadline = self.loop.time() + LINGER_S
            self._linger_timer = self.loop.call_later(LINGER_IDLE_S, self._linger_check)

        def _linger_check(self) -> None:
            self._linger_timer = None
            if not self._lingering:
                return
            self._lingering = False
            self._real_transport.close()

        def data_received(self, data: bytes) -> None:
            if not self._lingering:
                if self._idle_deadline is not None and self._read_deadline is None:
                    # Data on an idle connection ends its keep-alive timeout, so it starts
                    # the read deadline (the request's first byte): bytes that begin no
                    # request (a bare CRLF, which the parser skips) must not hold it open.
                    self._arm()
                return super().data_received(data)
            self._linger_bytes += len(data)
            now = self.loop.time()
            if self._linger_bytes > drain_bytes or now >= self._linger_deadline:
                self._linger_check()
                return
            if self._linger_timer is not None:
                self._linger_timer.cancel()
            self._linger_timer = self.loop.call_later(
                min(LINGER_IDLE_S, self._linger_deadline - now), self._linger_check)

        def eof_received(self):
            if self._lingering:   # the client is done sending: nothing left to reset
                self._linger_check()
            return super().eof_received()

        # ---- the header size limit ------------------------------------------------------
        def on_url(self, url: bytes) -> None:
            self._count_header(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_header(len(name) + len(value) + 4)
            super().on_header(name, value)

        def _count_header(self, nbytes: int) -> None:
            self._header_bytes += nbytes
            if self._header_bytes > max_header_bytes:
                self._header_overflow = True
                raise _HeaderTooLarge()  # stops the parser; uvicorn answers via send_400

        def send_400_response(self, msg: str) -> None:
            if self._header_overflow:
                reject("header_too_large")
                self._reply_and_close(431, "Request Header Fields Too Large", _json(
                    "bad_request", f"request headers are over the limit of "
                                   f"{max_header_bytes} bytes"))
                return
            # uvicorn's own answer is text/plain; every error of the contract is JSON
            self._reply_and_close(400, "Bad Request", _json(
                "bad_request", "not a well-formed HTTP/1.1 request (a path must be "
                               "percent-encoded: no raw spaces or control characters)"))

        def _reply_and_close(self, status: int, reason: str, body: bytes) -> None:
            self.transport.write(
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
            self.transport.close()

    return LimitedHttpProtocol
