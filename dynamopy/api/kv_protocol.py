"""The HTTP port without ASGI for ``GET|HEAD|PUT|DELETE /kv/<key>`` (``--http-server fast``).

Under load a node's event-loop thread spent about a seventh of its time in the layers between
the HTTP parser and the data handlers: uvicorn's request cycle (an ASGI scope, a cycle object,
an ``asyncio.Event``, ASGI messages, header checks per answer) and the ASGI middlewares
(request limits, bearer check, ``fastpath.DataFastPath``). This protocol keeps everything
that is about the *connection* — it is the same uvicorn httptools protocol with the read
deadline, header limit and drained or lingering close of ``http_limits.limited_protocol``:
TLS, keep-alive and its timeout, pipelining (requests answered in order), flow control,
``Connection: close``, HTTP/1.0 — and replaces only the per-request cycle of the data
requests with :class:`KvCycle`, a thin adapter over the same code as the ASGI path:

- the answer comes from ``fastpath.answer``: the same ``DataHandlers`` (coordinator, metrics
  per request, JSON errors per API.md), the same body reader rules (413 past
  ``--max-value-bytes``, a client gone mid-body stores nothing);
- admission uses the same ``RequestLimits`` object (the same counters, checked when the
  request starts, the same 503 answers);
- a request without a valid bearer token when the node needs one, and every other method
  or path (OPTIONS and 405s on ``/kv``, ``/cluster``, ``/metrics``, ``/docs``, ...) is
  served by the ASGI app exactly as with ``--http-server uvicorn``;
- the answer goes out in one ``write``: status line, ``content-type``, ``content-length``,
  ``etag``, ``connection: close`` when the connection closes, as uvicorn would write them
  (``server_header`` and ``date_header`` are off in both), no body for HEAD.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import urllib.parse
from typing import Optional

import httptools
from uvicorn.protocols.http.httptools_impl import HEADER_VALUE_RE, STATUS_LINE

from dynamopy.api.data import PREFIX, Reply
from dynamopy.api.fastpath import ClientGone, answer
from dynamopy.api.http_limits import (MAX_HEADER_BYTES, RETRY_AFTER_S, OnReject,
                                      limited_protocol)
from dynamopy.node.errors import TooLarge

log = logging.getLogger(__name__)

_FAST_METHODS = frozenset((b"GET", b"HEAD", b"PUT", b"DELETE"))
_PREFIX_B = PREFIX.encode()
_SERVER_ERROR = (b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; "
                 b"charset=utf-8\r\ncontent-length: 21\r\nconnection: close\r\n\r\n"
                 b"Internal Server Error")


class KvEndpoint:
    """What the raw path needs from the node: the data handlers, the request limits
    (shared with the ASGI app) and the API token (empty: none)."""

    def __init__(self, handlers, limits, api_token: str = "") -> None:
        self.handlers = handlers
        self.limits = limits
        self.token = api_token.encode()
        self.max_value_bytes = handlers.node.config.max_value_bytes

    def authorized(self, headers) -> bool:
        if not self.token:
            return True
        for name, value in headers:   # the same rule as app.BearerAuth
            if name == b"authorization":
                scheme, _, credentials = value.strip().partition(b" ")
                if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(),
                                                                       self.token):
                    return True
        return False


class _Event:
    """The part of ``asyncio.Event`` uvicorn's protocol uses on a cycle (``set``), made
    cheap: a future exists only while the body reader waits."""

    __slots__ = ("waiter",)

    def __init__(self) -> None:
        self.waiter: Optional[asyncio.Future] = None

    def set(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)


class KvCycle:
    """One ``/kv`` request on a connection: the attributes uvicorn's protocol reads and
    writes on its request cycle (``body``, ``more_body``, ``message_event``, ``keep_alive``,
    ``disconnected``, ``response_started``, ``response_complete``, ``scope``) and
    ``run_asgi``, which answers through ``fastpath.answer`` instead of an ASGI app."""

    __slots__ = ("scope", "protocol", "transport", "flow", "endpoint", "method", "key",
                 "path", "query", "headers", "reserve", "body", "more_body", "message_event",
                 "keep_alive", "disconnected", "response_started", "response_complete",
                 "waiting_for_100_continue", "on_response")

    def __init__(self, protocol, endpoint: KvEndpoint, method: str, key: str, path: str,
                 query: bytes, reserve: int, keep_alive: bool) -> None:
        self.scope = protocol.scope
        self.protocol = protocol
        self.transport = protocol.transport
        self.flow = protocol.flow
        self.endpoint = endpoint
        self.method, self.key, self.path, self.query = method, key, path, query
        self.headers = protocol.headers
        self.reserve = reserve
        self.body = bytearray()
        self.more_body = True
        self.message_event = _Event()
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.waiting_for_100_continue = protocol.expect_100_continue
        self.on_response = protocol.on_response_complete

    async def run_asgi(self, _app) -> None:
        """Named as uvicorn's cycle method: the protocol starts it as a task, in order. The
        request limits are checked here, when it starts (as the ASGI middleware does)."""
        endpoint = self.endpoint
        limits = endpoint.limits
        refused = limits.refusal(self.reserve)
        if refused is not None:
            return await self._send(Reply(503, refused), False, _RETRY_AFTER)
        limits.enter(self.reserve)
        try:
            method = self.method
            read_body = self.read_body if method == "PUT" else None
            reply = await answer(endpoint.handlers, method, self.key, self.query, self.headers,
                                 read_body, self.path)
            if reply is not None and not self.disconnected:
                await self._send(reply, method == "HEAD")
        except BaseException as e:
            if not isinstance(e, asyncio.CancelledError):
                log.exception("unhandled error answering %s %s", self.method, self.path)
            if not self.response_started and not self.disconnected:
                self.response_started = True
                self.keep_alive = False
                self.transport.write(_SERVER_ERROR)
                self._complete()
            else:
                self.transport.close()
        finally:
            limits.leave(self.reserve)
            self.on_response = _nothing

    async def read_body(self) -> bytes:
        """The whole request body, as ``DataFastPath``'s reader: ``ClientGone`` if the
        client leaves first, ``TooLarge`` past ``--max-value-bytes``."""
        limit = self.endpoint.max_value_bytes
        loop = None
        while True:
            if self.waiting_for_100_continue and not self.transport.is_closing():
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.waiting_for_100_continue = False
            if self.disconnected or self.response_complete:
                raise ClientGone()
            if len(self.body) > limit:
                raise TooLarge(f"the value is over the limit of {limit} bytes")
            if not self.more_body:
                body = bytes(self.body)
                self.body = bytearray()
                return body
            self.flow.resume_reading()
            if loop is None:
                loop = self.protocol.loop
            waiter = self.message_event.waiter = loop.create_future()
            await waiter

    async def _send(self, reply: Reply, head: bool, extra: bytes = b"") -> None:
        if self.flow.write_paused:
            await self.flow.drain()
            if self.disconnected:
                return
        self.response_started = True
        self.waiting_for_100_continue = False
        ctype = reply.content_type.encode("latin-1")
        if HEADER_VALUE_RE.search(ctype):   # uvicorn's check of every header value
            raise RuntimeError("Invalid HTTP header value.")
        parts = [STATUS_LINE[reply.status], b"content-type: ", ctype,
                 b"\r\ncontent-length: ", str(len(reply.body)).encode()]
        if reply.etag is not None:
            parts += (b'\r\netag: "', str(reply.etag).encode(), b'"')
        if extra:
            parts.append(extra)
        parts.append(b"\r\n\r\n" if self.keep_alive else b"\r\nconnection: close\r\n\r\n")
        if not head:
            parts.append(reply.body)
        self.transport.write_now(b"".join(parts))
        self._complete()

    def _complete(self) -> None:
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()


_RETRY_AFTER = f"\r\nretry-after: {RETRY_AFTER_S}".encode()


def _nothing() -> None:
    pass




def kv_protocol(endpoint: KvEndpoint, read_timeout_s: float, on_reject: OnReject = None,
                max_header_bytes: int = MAX_HEADER_BYTES, drain_bytes: int = 2 * 1024 * 1024):
    """``limited_protocol``'s class with ``/kv`` data requests answered by :class:`KvCycle`
    (module docstring); every other request goes through uvicorn's cycle to the ASGI app."""
    base = limited_protocol(read_timeout_s, on_reject, max_header_bytes, drain_bytes)
    limits = endpoint.limits

    class KvHttpProtocol(base):
        def on_message_begin(self) -> None:
            # uvicorn builds the full ASGI scope here; a data request needs none of it, so
            # it is filled in on_headers_complete only for requests that go to the app.
            self.url = b""
            self.expect_100_continue = False
            self.headers = []
            self.scope = {}
            self._header_bytes = 0
            self._in_headers = True
            if self._read_deadline is None:
                self._arm()

        def _asgi_scope(self) -> None:
            self.scope.update({
                "type": "http",
                "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
                "http_version": "1.1",
                "server": self.server,
                "client": self.client,
                "scheme": self.scheme,
                "root_path": self.root_path,
                "headers": self.headers,
                "state": self.app_state.copy(),
            })

        def on_headers_complete(self) -> None:
            parser = self.parser
            method = parser.get_method()
            url = self.url
            if (method in _FAST_METHODS and url.startswith(_PREFIX_B)
                    and not parser.should_upgrade() and not self.root_path):
                cycle = self._kv_cycle(method.decode("ascii"), url)
                if cycle is not None:
                    return self._start_kv(cycle)
            self._asgi_scope()
            super().on_headers_complete()

        def _kv_cycle(self, method: str, url: bytes) -> Optional[KvCycle]:
            """The cycle of a data request the raw path serves; None: leave it to the app."""
            parsed = httptools.parse_url(url)
            raw_path = parsed.path
            path = raw_path.decode("ascii")
            if "%" in path:
                path = urllib.parse.unquote(path)
                if not path.startswith(PREFIX):
                    return None
                unquoted = urllib.parse.unquote_to_bytes(raw_path)
            else:
                unquoted = raw_path
            headers = self.headers
            if not endpoint.authorized(headers):
                return None    # the app answers 401
            reserve, _chunked, _declared = limits.reservation(method, headers)
            # As data.path_key: the key from the raw bytes, non-UTF-8 kept as escapes.
            key = unquoted[len(_PREFIX_B):].decode("utf-8", "surrogateescape")
            version = self.parser.get_http_version()
            self.scope["path"] = path
            return KvCycle(self, endpoint, method, key, path, parsed.query or b"", reserve,
                           version != "1.0" and self.parser.should_keep_alive())

        def _start_kv(self, cycle: KvCycle) -> None:
            # What the limited protocol and uvicorn do after building a cycle.
            self._headers_done()
            existing = self.cycle
            self.cycle = cycle
            if self._body_left is None or self._body_left > drain_bytes:
                self._keep_alive = cycle.keep_alive
                cycle.keep_alive = False
            if existing is None or existing.response_complete:
                self._start_asgi_task(cycle, None)
            else:
                self.flow.pause_reading()
                self.pipeline.appendleft((cycle, None))

    return KvHttpProtocol
