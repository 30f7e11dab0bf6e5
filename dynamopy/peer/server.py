"""``PeerServer``: accepts peer connections, authenticates them, serves pipelined requests.

Per connection:

1. The server sends the handshake hello and waits at most ``handshake_timeout_s`` for a valid
   answer (see ``auth``). Until the peer has proved the cluster secret, nothing reaches the
   handler; a bad answer gets ``{"ok": False, "error": "unauthorized"}`` and the connection
   is closed.
2. After that every request ``[0, req_id, method, payload]`` runs the handler concurrently
   with the others on the connection; responses go out as they complete (possibly out of
   order), matched by ``req_id``.

Error rules: a handler exception with a string ``code`` attribute (``RemoteError`` and
friends) becomes an error response with that code and its ``detail``; any other exception
becomes code ``"internal"`` (and is logged, it is a bug); an unserialisable or oversized
result becomes ``"internal"`` too, so the caller is never left waiting. An oversized or
malformed frame, or a message of the wrong shape, closes that connection only (logged);
the server keeps serving everyone else.

Back-pressure: when the transport's write buffer is over its high-water mark, or a
connection has ``max_inflight`` requests running, or a large incoming frame waits for room in
the node's peer buffer budget, the server stops reading from that connection until it drains,
so a fast sender cannot make the server buffer without bound.

Limits before the handshake (see ``limits``): frames of at most ``PREAUTH_MAX_FRAME_BYTES``,
at most ``max_unauthenticated`` connections waiting for their handshake (the oldest is dropped
for a new one), and log lines about unauthenticated misbehaviour throttled.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl as ssl_mod
from typing import Any, Awaitable, Callable, Mapping, Optional

from . import auth
from .connection import FramedProtocol
from .errors import CODE_INTERNAL, AuthError, UnknownMethod
from .framing import (
    MAX_FRAME_BYTES,
    MSG_REQUEST,
    FrameError,
    encode_frame,
)
from .limits import (
    DEFAULT_BUFFER_BYTES,
    DEFAULT_MAX_UNAUTHENTICATED,
    FREE_FRAME_BYTES,
    PREAUTH_MAX_FRAME_BYTES,
    BufferBudget,
    OnReject,
    ThrottledLog,
    UnauthenticatedSet,
)

log = logging.getLogger(__name__)

Handler = Callable[[str, Any, str], Awaitable[Any]]
"""``async def handler(method: str, payload, peer_id: str) -> result``."""

HANDSHAKE_TIMEOUT_S = 5.0
MAX_INFLIGHT_PER_CONNECTION = 4096


def route(methods: Mapping[str, Callable[[Any, str], Awaitable[Any]]]) -> Handler:
    """A handler that dispatches on method name to ``async fn(payload, peer_id)`` and raises
    ``UnknownMethod`` (code ``"unknown_method"``) for names not in ``methods``."""
    table = dict(methods)

    async def handler(method: str, payload: Any, peer_id: str) -> Any:
        fn = table.get(method)
        if fn is None:
            raise UnknownMethod(method)
        return await fn(payload, peer_id)

    return handler


def _error_fields(exc: BaseException) -> tuple[str, str, bool]:
    """(code, detail, is_bug) for a handler exception."""
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        detail = getattr(exc, "detail", None)
        return code, detail if isinstance(detail, str) else str(exc), False
    return CODE_INTERNAL, f"{type(exc).__name__}: {exc}", True


def _error_frame(req_id: int, code: str, detail: str) -> bytes:
    try:
        return encode_frame([1, req_id, False, {"code": code, "detail": detail[:4096]}])
    except (TypeError, ValueError):  # e.g. a surrogate in detail: send the code alone
        return encode_frame([1, req_id, False, {"code": code, "detail": ""}])


class _ServerConnection(FramedProtocol):
    def __init__(self, server: "PeerServer") -> None:
        super().__init__(asyncio.get_running_loop(), server.max_frame_bytes,
                         PREAUTH_MAX_FRAME_BYTES)
        self._server = server
        self._nonce_s = b""
        self._peer_id: Optional[str] = None
        self._handshake_timer: Optional[asyncio.TimerHandle] = None
        self._tasks: set[asyncio.Task] = set()
        self._reading_paused = False
        self._reserved = 0          # bytes this connection holds in the server's buffer budget
        self._wanted = 0            # bytes it is waiting for (0: not waiting)

    # ---- lifecycle --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        server = self._server
        server._connections.add(self)
        for old in server._unauthenticated.add(self):
            server._reject(old, "unauthenticated_cap",
                           "peer %s: dropped, over the cap of %d unauthenticated connections",
                           old.peername, server._unauthenticated.limit)
            old.abort()
        self._nonce_s = secrets.token_bytes(auth.NONCE_BYTES)
        self.send_frame(encode_frame(auth.server_hello(self._nonce_s)))
        self._handshake_timer = self._loop.call_later(
            self._server.handshake_timeout_s, self._on_handshake_timeout
        )

    def on_connection_lost(self, exc: Optional[BaseException]) -> None:
        server = self._server
        server._connections.discard(self)
        server._unauthenticated.discard(self)
        if self._wanted:
            self._wanted = 0
            server.buffer_budget.cancel(self)
        if self._reserved:
            reserved, self._reserved = self._reserved, 0
            server.buffer_budget.release(reserved)
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        # Nobody can receive these responses any more.
        for task in self._tasks:
            task.cancel()

    def _on_handshake_timeout(self) -> None:
        if self._peer_id is None and not self.closing:
            self._server._reject(self, "handshake_timeout", "peer %s: handshake timed out",
                                 self.peername)
            self.abort()

    def on_frame_error(self, exc: FrameError) -> None:
        if self._peer_id is None:
            self._server._reject(self, "preauth_bad_frame",
                                 "peer %s: closing unauthenticated connection on bad frame: %s",
                                 self.peername, exc)
            return
        log.warning(
            "peer %s (%s): closing connection on bad frame: %s",
            self._peer_id, self.peername, exc,
        )

    # ---- messages ---------------------------------------------------------------------
    def on_message(self, msg: Any) -> None:
        if self._peer_id is None:
            self._on_handshake(msg)
            return
        # Hot path: the request shape (framing docstring) checked inline, no call per request.
        if (
            type(msg) is list
            and len(msg) == 4
            and msg[0] == MSG_REQUEST
            and type(msg[1]) is int
            and type(msg[2]) is str
        ):
            server = self._server
            sync = server.sync_methods.get(msg[2])
            if sync is not None:
                self._serve_sync(sync, msg[1], msg[2], msg[3])
                return
            started = server.future_methods.get(msg[2])
            if started is not None:
                self._serve_started(started, msg[1], msg[2], msg[3])
                return
            task = self._loop.create_task(
                self._serve(msg[1], msg[2], server.handler(msg[2], msg[3], self._peer_id)))
            self._track(task)
            return
        log.warning(
            "peer %s (%s): closing connection on unexpected message %.100r",
            self._peer_id, self.peername, msg,
        )
        self.abort()

    def _track(self, task: asyncio.Future) -> None:
        """Count a running request (a task, or a future answered by callback) for
        back-pressure, and cancel it if the connection is lost."""
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)
        if len(self._tasks) >= self._server.max_inflight and not self._reading_paused:
            self._update_reading()

    def _on_handshake(self, msg: Any) -> None:
        server = self._server
        try:
            peer_id, nonce_c = auth.verify_client_answer(server.secret, self._nonce_s, msg)
            if server.ssl is not None:
                from dynamopy.tls import check_peer  # TLS: the certificate names peer_id
                check_peer(self._transport, peer_id)
        except AuthError as exc:
            server._reject(self, "handshake_failed", "peer %s: handshake failed: %s",
                           self.peername, exc)
            self.send_frame(encode_frame(auth.server_reject()))
            self.close()
            return
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self._peer_id = peer_id
        server._unauthenticated.discard(self)
        self.set_authenticated()
        self.send_frame(
            encode_frame(auth.server_accept(server.secret, server.node_id, nonce_c, self._nonce_s))
        )

    def _serve_sync(self, fn, req_id: int, method: str, payload: Any) -> None:
        try:
            result = fn(payload, self._peer_id)
        except Exception as exc:
            self.send_frame(self._error_reply(req_id, method, exc))
            return
        self.send_frame(self._result_reply(req_id, method, result))

    def _serve_started(self, fn, req_id: int, method: str, payload: Any) -> None:
        """A method that returns a future (answered by a callback, no task) or, when it
        cannot, a coroutine (run in a task like any other)."""
        try:
            started = fn(payload, self._peer_id)
        except Exception as exc:
            self.send_frame(self._error_reply(req_id, method, exc))
            return
        if asyncio.isfuture(started):
            self._tasks.add(started)
            started.add_done_callback(_Reply(self, req_id, method))  # and _on_task_done
            if len(self._tasks) >= self._server.max_inflight and not self._reading_paused:
                self._update_reading()
        else:
            self._track(self._loop.create_task(self._serve(req_id, method, started)))

    async def _serve(self, req_id: int, method: str, handling: Awaitable[Any]) -> None:
        try:
            result = await handling
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.send_frame(self._error_reply(req_id, method, exc))
            return
        self.send_frame(self._result_reply(req_id, method, result))

    def _error_reply(self, req_id: int, method: str, exc: Exception) -> bytes:
        code, detail, is_bug = _error_fields(exc)
        if is_bug:
            log.error("peer %s: handler for %s raised", self._peer_id, method, exc_info=exc)
        return _error_frame(req_id, code, detail)

    def _result_reply(self, req_id: int, method: str, result: Any) -> bytes:
        try:
            return encode_frame([1, req_id, True, result], self._max_frame_bytes)
        except (TypeError, ValueError, OverflowError) as exc:  # FrameTooLarge is a ValueError
            log.error("peer %s: result of %s not sendable: %r", self._peer_id, method, exc)
            return _error_frame(req_id, CODE_INTERNAL, f"result not sendable: {exc!r}")

    def _on_task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if self._reading_paused:
            self._update_reading()

    # ---- back-pressure ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Hot path: small frames never touch the budget.
        need = self._decoder.pending_frame_bytes
        if need > FREE_FRAME_BYTES or self._reserved:
            self._account(need)

    def _account(self, need: int) -> None:
        """Hold exactly one reservation, for the large frame still arriving (if any)."""
        if self.closing or self._wanted or need == self._reserved:
            return
        budget = self._server.buffer_budget
        if self._reserved:
            reserved, self._reserved = self._reserved, 0
            budget.release(reserved)
        if need > FREE_FRAME_BYTES:
            if budget.reserve(self, need):
                self._reserved = need
            else:
                self._wanted = need
                self._update_reading()

    def on_budget_granted(self) -> None:
        self._reserved, self._wanted = self._wanted, 0
        self._update_reading()

    def on_write_paused(self, paused: bool) -> None:
        self._update_reading()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self.closing:
            return
        should_pause = (self._write_paused or self._wanted > 0
                        or len(self._tasks) >= self._server.max_inflight)
        if should_pause and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()
        elif not should_pause and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def shutdown(self) -> list[asyncio.Task]:
        """Abort the connection and cancel its running handlers; returns them to await."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        self.abort()
        return tasks


class _Reply:
    """The done callback of a future-returning method: sends its result (or error) back.
    A cancelled future (the connection was lost) sends nothing."""

    __slots__ = ("conn", "req_id", "method")

    def __init__(self, conn: _ServerConnection, req_id: int, method: str) -> None:
        self.conn, self.req_id, self.method = conn, req_id, method

    def __call__(self, fut: asyncio.Future) -> None:
        self.conn._on_task_done(fut)  # one callback, not two: each costs a loop handle
        if fut.cancelled():
            return
        conn, exc = self.conn, fut.exception()
        if exc is None:
            conn.send_frame(conn._result_reply(self.req_id, self.method, fut.result()))
        elif isinstance(exc, Exception):
            conn.send_frame(conn._error_reply(self.req_id, self.method, exc))


class PeerServer:
    """Serves ``handler`` to authenticated peers. See the module docstring for the rules."""

    def __init__(
        self,
        node_id: str,
        secret: bytes,
        handler: Handler,
        *,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
        max_inflight: int = MAX_INFLIGHT_PER_CONNECTION,
        sync_methods: Optional[Mapping[str, Callable[[Any, str], Any]]] = None,
        future_methods: Optional[Mapping[str, Callable[[Any, str], Awaitable[Any]]]] = None,
        max_unauthenticated: int = DEFAULT_MAX_UNAUTHENTICATED,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        on_reject: OnReject = None,
        ssl: Optional[ssl_mod.SSLContext] = None,
    ) -> None:
        if not secret:
            raise ValueError("the cluster secret must not be empty")
        # Methods answered inline, without a task: plain functions (payload, peer_id) ->
        # result, for cheap local reads on the hot path. They must not block.
        self.sync_methods = dict(sync_methods or {})
        # Methods that return a future answered by a callback (no task per request), or a
        # coroutine when they cannot (run in a task); ``handler`` is never asked for them.
        self.future_methods = dict(future_methods or {})
        self.node_id = node_id
        self.secret = bytes(secret)
        self.handler = handler
        self.max_frame_bytes = max_frame_bytes
        self.handshake_timeout_s = handshake_timeout_s
        self.max_inflight = max_inflight
        # Mutual TLS (dynamopy.tls): the handshake above then also checks the certificate.
        self.ssl = ssl
        self._server: Optional[asyncio.AbstractServer] = None
        self._connections: set[_ServerConnection] = set()
        self._unauthenticated = UnauthenticatedSet(max_unauthenticated)
        self.buffer_budget = BufferBudget(buffer_bytes)
        self._on_reject = on_reject
        self._reject_log = ThrottledLog(log)

    def _reject(self, conn: _ServerConnection, reason: str, msg: str, *args) -> None:
        """Count and (throttled) log a connection closed by the pre-handshake limits."""
        self._reject_log.warning(msg, *args)
        if self._on_reject is not None:
            self._on_reject(reason)

    @property
    def unauthenticated_count(self) -> int:
        """Connections waiting for their handshake."""
        return len(self._unauthenticated)

    @property
    def connection_count(self) -> int:
        """Open connections, authenticated or not."""
        return len(self._connections)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host:port`` (``port=0`` picks a free port); returns the bound address."""
        if self._server is not None:
            raise RuntimeError("PeerServer already started")
        loop = asyncio.get_running_loop()
        # With TLS, a connection reaches the protocol only after the TLS handshake: bound
        # that handshake by the same timeout as ours, not asyncio's 60 s default.
        tls_kw = {"ssl": self.ssl, "ssl_handshake_timeout": self.handshake_timeout_s} if self.ssl else {}
        self._server = await loop.create_server(
            lambda: _ServerConnection(self), host, port, backlog=1024, **tls_kw
        )
        bound = self._server.sockets[0].getsockname()
        return bound[0], bound[1]

    async def stop(self) -> None:
        """Stop listening, close every connection and cancel running handlers."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks: list[asyncio.Task] = []
        for conn in list(self._connections):
            tasks.extend(conn.shutdown())
        self._connections.clear()
        await server.wait_closed()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
