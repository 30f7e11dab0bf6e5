"""``PeerClient``: the production ``Transport``: pipelined RPC over one persistent,
authenticated connection per peer address.

Rules and invariants:

- One connection per ``"host:port"``, opened lazily by the first call and shared by every
  concurrent call (pipelined; replies matched by request id). At most one connection attempt
  per address is in flight; concurrent callers wait on it.
- A call never waits longer than its ``timeout_s`` (this includes the optional injected delay
  and waiting for a connection). Past it the call raises ``PeerTimeout``; the connection
  stays open and a late reply is dropped. A connection keeps one timer for its calls'
  deadlines, not one per call (``dynamopy.deadlines``: calls with deadlines in order, the
  data path's, queue on it; each still fails at its own deadline, no sweep period added).
- Connect failures (refused, ``connect_timeout_s`` exceeded, handshake failure) start an
  exponential back-off, ``backoff_initial_s`` doubling up to ``backoff_max_s``; while it
  runs, calls to that address fail fast without touching the network (``PeerUnavailable``,
  or ``AuthError`` if the last attempt failed authentication: a wrong secret is a
  configuration error, not an outage, and should be reported as such). A successful
  handshake resets the back-off.
- A lost connection fails all of its pending calls with ``PeerUnavailable``; the next call
  reconnects (subject to back-off).
- ``on_call(method, addr, seconds, outcome)`` runs once per finished call with outcome in
  ``ok | error | timeout | unavailable`` (``error``: the peer answered with an error, or
  authentication failed). A call cancelled by its caller reports nothing.
- Outgoing memory is bounded by the callers: every call has a timeout and callers bound
  their fan-out, so the client does not add its own write back-pressure.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import ssl as ssl_mod
from typing import Any, Callable, Optional

from dynamopy.deadlines import Deadlines

from . import auth
from .connection import FramedProtocol
from .errors import AuthError, MessageTooLarge, PeerTimeout, PeerUnavailable, RemoteError
from .framing import MAX_FRAME_BYTES, MSG_RESPONSE, FrameError, FrameTooLarge, encode_frame
from .limits import PREAUTH_MAX_FRAME_BYTES

log = logging.getLogger(__name__)

OnCall = Callable[[str, str, float, str], None]


def parse_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` (or ``"[v6]:port"``) -> ``(host, port)``; ``ValueError`` if malformed."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"peer address must be 'host:port', got {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _ClientConnection(FramedProtocol):
    """One authenticated connection; ``handshake_done`` resolves to the server's id."""

    def __init__(self, client: "PeerClient", endpoint: "_Endpoint") -> None:
        loop = asyncio.get_running_loop()
        # Until the server proves the secret, it may send frames of handshake size only.
        super().__init__(loop, client._max_frame_bytes, PREAUTH_MAX_FRAME_BYTES)
        self._client = client
        self._endpoint = endpoint
        self._pending: dict[int, asyncio.Future] = {}
        # Unbounded int: at 10^5 calls/s it stays within msgpack's 64 bits for ~10^6 years.
        self._next_id = 1
        self._nonce_s: Optional[bytes] = None
        self._nonce_c = b""
        self.ready = False
        self.server_id: Optional[str] = None
        self.handshake_done: asyncio.Future = loop.create_future()
        self._deadlines = Deadlines(loop)  # the calls' timeouts, on one timer

    # ---- handshake --------------------------------------------------------------------
    def on_message(self, msg: Any) -> None:
        if self.ready:
            # Hot path: the response shape (framing docstring) checked inline.
            if type(msg) is list and len(msg) == 4 and msg[0] == MSG_RESPONSE and type(msg[1]) is int:
                fut = self._pending.pop(msg[1], None)
                if fut is None or fut.done():
                    return  # late reply to a call that timed out or was cancelled
                if msg[2] is True:
                    fut.set_result(msg[3])
                    return
                err = msg[3]
                if msg[2] is False and type(err) is dict and type(err.get("code")) is str:
                    detail = err.get("detail")
                    fut.set_exception(RemoteError(err["code"], detail if type(detail) is str else ""))
                    return
                # A malformed reply's own call is out of the table: put it back so it fails
                # with the rest (its timer looks only in the table).
                self._pending[msg[1]] = fut
            self._fail(PeerUnavailable(f"{self._endpoint.addr}: protocol violation by peer"))
            log.warning("peer %s: unexpected message %.100r; closing", self._endpoint.addr, msg)
            self.abort()
            return
        try:
            if self._nonce_s is None:
                self._nonce_s = auth.parse_server_hello(msg)
                self._nonce_c = secrets.token_bytes(auth.NONCE_BYTES)
                client = self._client
                self.send_frame(
                    encode_frame(auth.client_answer(client._secret, client.node_id, self._nonce_s, self._nonce_c))
                )
                return
            self.server_id = auth.verify_server_answer(
                self._client._secret, self._nonce_s, self._nonce_c, msg
            )
            if self._client._ssl is not None:
                from dynamopy.tls import check_peer  # TLS: the certificate names server_id
                check_peer(self._transport, self.server_id)
        except AuthError as exc:
            if not self.handshake_done.done():
                self.handshake_done.set_exception(exc)
            self.abort()
            return
        self.set_authenticated()
        self.ready = True
        if not self.handshake_done.done():
            self.handshake_done.set_result(self.server_id)

    # ---- calls ------------------------------------------------------------------------
    async def request(self, method: str, payload: Any, timeout_s: float) -> Any:
        return await self.start_request(method, payload, timeout_s)

    def start_request(self, method: str, payload: Any, timeout_s: float,
                      done: Optional[Callable[[asyncio.Future], None]] = None) -> asyncio.Future:
        """Send one request now; return the future of its reply (``PeerTimeout`` after
        ``timeout_s``; cancelling it forgets the call). ``done(fut)`` runs when it settles,
        after the call's own clean-up (a callback, not a task: the data path's calls)."""
        fut = self._loop.create_future()
        if timeout_s <= 0:
            return _failed(fut, PeerTimeout(f"{self._endpoint.addr}: {method} timed out "
                                            "before sending"), done)
        # Encode first: an unsendable payload is the caller's error and must not register.
        req_id = self._next_id
        try:
            frame = encode_frame([0, req_id, method, payload], self._max_frame_bytes)
        except FrameTooLarge as exc:
            return _failed(fut, MessageTooLarge(f"{self._endpoint.addr}: {method}: {exc}"), done)
        except Exception as exc:  # unencodable payload: the caller's error, in the future
            return _failed(fut, exc, done)
        self._next_id = req_id + 1
        self._pending[req_id] = fut
        self.send_frame(frame)
        # A queued deadline per call instead of asyncio.wait_for (no extra future or task)
        # or a loop timer made and cancelled per call.
        deadline = self._deadlines.at(self._loop.time() + timeout_s,
                                      self._expire, req_id, method, timeout_s)
        fut.add_done_callback(_Settled(self._pending, req_id, deadline, done))
        return fut

    def _expire(self, req_id: int, method: str, timeout_s: float) -> None:
        fut = self._pending.pop(req_id, None)
        if fut is not None and not fut.done():
            fut.set_exception(
                PeerTimeout(f"{self._endpoint.addr}: no reply to {method} within {timeout_s:.3f}s")
            )

    def _fail(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        self._deadlines.clear()
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)

    # ---- teardown ---------------------------------------------------------------------
    def on_frame_error(self, exc: FrameError) -> None:
        log.warning("peer %s: closing connection on bad frame: %s", self._endpoint.addr, exc)

    def on_connection_lost(self, exc: Optional[BaseException]) -> None:
        self.ready = False
        err = PeerUnavailable(f"{self._endpoint.addr}: connection lost" + (f" ({exc!r})" if exc else ""))
        if not self.handshake_done.done():
            self.handshake_done.set_exception(err)
        self._fail(err)
        if self._endpoint.conn is self:
            self._endpoint.conn = None


def _failed(fut: asyncio.Future, exc: Exception,
            done: Optional[Callable[[asyncio.Future], None]]) -> asyncio.Future:
    """A call that failed before it was sent (the caller's ``done`` still runs)."""
    fut.set_exception(exc)
    if done is not None:
        fut.add_done_callback(done)
    return fut


class _Settled:
    """A request future's first done callback: cancel its deadline, forget its id, then run
    the caller's ``done`` (one callback instead of two: each costs an event-loop handle)."""

    __slots__ = ("pending", "req_id", "deadline", "done")

    def __init__(self, pending: dict, req_id: int, deadline,
                 done: Optional[Callable[[asyncio.Future], None]]) -> None:
        self.pending, self.req_id, self.deadline, self.done = pending, req_id, deadline, done

    def __call__(self, fut: asyncio.Future) -> None:
        self.deadline.cancel()
        self.pending.pop(self.req_id, None)
        if self.done is not None:
            self.done(fut)


class _CallDone:
    """``PeerClient.start``'s metrics callback: ``on_call(method, addr, seconds, outcome)``
    once the call settles, as ``call`` reports it (nothing for a cancelled call)."""

    __slots__ = ("client", "method", "addr", "start")

    def __init__(self, client: "PeerClient", method: str, addr: str, start: float) -> None:
        self.client, self.method, self.addr, self.start = client, method, addr, start

    def __call__(self, fut: asyncio.Future) -> None:
        on_call = self.client._on_call
        if on_call is None or fut.cancelled():
            return
        exc = fut.exception()
        outcome = ("ok" if exc is None else "timeout" if isinstance(exc, PeerTimeout)
                   else "unavailable" if isinstance(exc, PeerUnavailable) else "error")
        try:
            on_call(self.method, self.addr, fut.get_loop().time() - self.start, outcome)
        except Exception:  # metrics must never break an RPC
            log.exception("on_call callback raised")


class _Endpoint:
    """Connection state for one address."""

    __slots__ = ("addr", "host", "port", "conn", "connecting", "backoff_s", "retry_at", "last_error")

    def __init__(self, addr: str, backoff_s: float) -> None:
        self.addr = addr
        self.host, self.port = parse_addr(addr)
        self.conn: Optional[_ClientConnection] = None
        self.connecting: Optional[asyncio.Task] = None
        self.backoff_s = backoff_s
        self.retry_at = 0.0  # loop time before which no new attempt is made
        self.last_error: Optional[Exception] = None


class PeerClient:
    """Pipelined RPC client to peers. See the module docstring for the rules."""

    def __init__(
        self,
        node_id: str,
        secret: bytes,
        *,
        connect_timeout_s: float = 2.0,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        delay_ms: Optional[tuple[float, float]] = None,
        rng: Optional[random.Random] = None,
        on_call: Optional[OnCall] = None,
        ssl: Optional[ssl_mod.SSLContext] = None,
    ) -> None:
        if not secret:
            raise ValueError("the cluster secret must not be empty")
        if delay_ms is not None and not (0 <= delay_ms[0] <= delay_ms[1]):
            raise ValueError(f"delay_ms must be (lo, hi) with 0 <= lo <= hi, got {delay_ms!r}")
        self.node_id = node_id
        self._secret = bytes(secret)
        self._connect_timeout_s = connect_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._max_frame_bytes = max_frame_bytes
        self._delay_ms = delay_ms
        # Private instance when none is injected: never the module-level random.
        self._rng = rng if rng is not None else random.Random()
        self._on_call = on_call
        self._ssl = ssl  # mutual TLS (dynamopy.tls)
        self._endpoints: dict[str, _Endpoint] = {}
        self._closed = False

    async def call(self, addr: str, method: str, payload: Any, timeout_s: float) -> Any:
        """Call ``method`` on the peer at ``addr``; returns its result or raises a
        ``PeerError`` (``PeerUnavailable``, ``PeerTimeout``, ``RemoteError``, ``AuthError``)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        outcome: Optional[str] = "error"
        try:
            if self._delay_ms is not None:
                await asyncio.sleep(self._delay_s())
            ep = self._endpoints.get(addr)
            conn = ep.conn if ep is not None else None
            if conn is None or conn.closing:
                conn = await self._connection(addr, start + timeout_s)
            result = await conn.request(method, payload, start + timeout_s - loop.time())
            outcome = "ok"
            return result
        except PeerTimeout:
            outcome = "timeout"
            raise
        except PeerUnavailable:
            outcome = "unavailable"
            raise
        except asyncio.CancelledError:
            outcome = None
            raise
        finally:
            if self._on_call is not None and outcome is not None:
                try:
                    self._on_call(method, addr, loop.time() - start, outcome)
                except Exception:  # metrics must never break an RPC
                    log.exception("on_call callback raised")

    def start(self, addr: str, method: str, payload: Any, timeout_s: float) -> asyncio.Future:
        """``call`` started now, as a future with the same result or error and the same
        ``on_call`` report. On a ready connection (the common case) the request is sent
        at once and answered by callbacks, without a task; otherwise (no connection yet,
        back-off, injected delay) ``call`` runs in a task."""
        ep = self._endpoints.get(addr)
        conn = ep.conn if ep is not None else None
        if conn is None or conn.closing or not conn.ready or self._delay_ms is not None:
            return asyncio.ensure_future(self.call(addr, method, payload, timeout_s))
        loop = conn._loop
        return conn.start_request(method, payload, timeout_s,
                                  _CallDone(self, method, addr, loop.time()))

    async def identify(self, addr: str, timeout_s: float) -> str:
        """The member id the node at ``addr`` proves with the cluster secret (the handshake
        of a pooled connection); ``PeerUnavailable``/``PeerTimeout``/``AuthError`` if none."""
        loop = asyncio.get_running_loop()
        conn = await self._connection(addr, loop.time() + timeout_s)
        return conn.server_id  # type: ignore[return-value]

    def _delay_s(self) -> float:
        lo, hi = self._delay_ms  # type: ignore[misc]
        return (lo if lo == hi else self._rng.uniform(lo, hi)) / 1000.0

    async def _connection(self, addr: str, deadline: float) -> _ClientConnection:
        """Slow path: wait for (or start) the connection attempt for ``addr``."""
        if self._closed:
            raise PeerUnavailable("client is closed")
        loop = asyncio.get_running_loop()
        ep = self._endpoints.get(addr)
        if ep is None:
            ep = self._endpoints[addr] = _Endpoint(addr, self._backoff_initial_s)
        if ep.conn is not None and not ep.conn.closing:
            return ep.conn
        if ep.connecting is None:
            now = loop.time()
            if now < ep.retry_at:
                cls = AuthError if isinstance(ep.last_error, AuthError) else PeerUnavailable
                raise cls(f"{addr}: in reconnect back-off ({ep.retry_at - now:.3f}s left); last error: {ep.last_error}")
            ep.connecting = loop.create_task(self._connect(ep))
            ep.connecting.add_done_callback(_retrieve_exception)
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise PeerTimeout(f"{addr}: timed out waiting for a connection")
        try:
            # shield: one caller's timeout must not cancel the attempt others wait on.
            return await asyncio.wait_for(asyncio.shield(ep.connecting), remaining)
        except TimeoutError:
            raise PeerTimeout(f"{addr}: timed out waiting for a connection") from None

    async def _connect(self, ep: _Endpoint) -> _ClientConnection:
        loop = asyncio.get_running_loop()
        conn = _ClientConnection(self, ep)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await loop.create_connection(lambda: conn, ep.host, ep.port, ssl=self._ssl)
                await conn.handshake_done
        except BaseException as exc:
            conn.abort()
            if isinstance(exc, asyncio.CancelledError):
                raise
            if isinstance(exc, (AuthError, PeerUnavailable)):
                err: Exception = exc
            elif isinstance(exc, TimeoutError):
                err = PeerUnavailable(f"{ep.addr}: connect timed out after {self._connect_timeout_s}s")
            elif isinstance(exc, OSError):
                err = PeerUnavailable(f"{ep.addr}: cannot connect: {exc}")
            else:
                raise
            ep.last_error = err
            ep.retry_at = loop.time() + ep.backoff_s
            ep.backoff_s = min(ep.backoff_s * 2, self._backoff_max_s)
            raise err from None
        finally:
            ep.connecting = None
        if self._closed:
            conn.abort()
            raise PeerUnavailable("client is closed")
        ep.conn = conn
        ep.backoff_s = self._backoff_initial_s
        ep.retry_at = 0.0
        ep.last_error = None
        return conn

    async def close(self) -> None:
        """Close every connection; pending calls fail with ``PeerUnavailable``."""
        self._closed = True
        tasks = []
        for ep in self._endpoints.values():
            if ep.connecting is not None:
                ep.connecting.cancel()
                tasks.append(ep.connecting)
            if ep.conn is not None:
                conn, ep.conn = ep.conn, None
                conn._fail(PeerUnavailable(f"{ep.addr}: client closed"))
                conn.close()
        self._endpoints.clear()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _retrieve_exception(task: asyncio.Task) -> None:
    # Waiters may all have timed out; mark the exception retrieved so asyncio doesn't log it.
    if not task.cancelled():
        task.exception()
