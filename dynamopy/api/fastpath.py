"""A raw ASGI fast path for ``/kv/{key}``: the same handlers as the FastAPI routes, without
FastAPI's routing, request objects and dependency solving (measured: about a fifth of a node's
CPU under load went there). Every request under ``/kv/`` is answered here, with the method
rules of ``methods.py`` (HEAD, OPTIONS, 405 with the full ``Allow``); anything else goes on to
FastAPI unchanged. The key is decoded from the raw path bytes (``data.path_key``).

``answer`` (request parts in, :class:`Reply` out) is shared with the raw HTTP protocol
(``kv_protocol.py``), which serves the same requests without ASGI."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from dynamopy.api.data import PREFIX, DataHandlers, Reply, path_key
from dynamopy.api.methods import KV_METHODS, allow_value, not_allowed_body, send_simple
from dynamopy.node.errors import TooLarge


class ClientGone(Exception):
    """The client disconnected before sending its whole body."""

log = logging.getLogger(__name__)

_ALLOW = allow_value(KV_METHODS)


def parse_query(query_string: bytes) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True)`` of the query's latin-1 text, with a fast
    path for the common query with nothing to unquote (no ``%``, no ``+``)."""
    if not query_string:
        return []
    text = query_string.decode("latin-1")
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True)
    out = []
    for piece in text.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            out.append((name, value))
    return out


class DataFastPath:
    def __init__(self, app, handlers: DataHandlers):
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            return await self.app(scope, receive, send)
        method = scope["method"]
        if method not in KV_METHODS or method == "OPTIONS":
            allow = [(b"allow", _ALLOW.encode())]
            if method == "OPTIONS":
                return await send_simple(send, 204, b"", allow)
            return await send_simple(send, 405, not_allowed_body(method, _ALLOW), allow)
        limit = self.handlers.node.config.max_value_bytes

        async def read_body() -> bytes:
            chunks, size, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    # Never store a truncated value under a new version.
                    raise ClientGone()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the value is over the limit of {limit} bytes")
                chunks.append(chunk)
                more = message.get("more_body", False)
            return b"".join(chunks)
        reply = await answer(self.handlers, method, path_key(scope, PREFIX),
                             scope["query_string"], scope["headers"], read_body, scope["path"])
        if reply is not None:
            await _send(send, reply, head=method == "HEAD")


async def answer(handlers: DataHandlers, method: str, key: str, query_string: bytes,
                 raw_headers, read_body, path: str) -> "Reply | None":
    """The answer to ``method`` (GET, HEAD, PUT or DELETE) on ``/kv/<key>``; None when the
    client left before its body was in (nothing stored, nobody to answer). Headers become a
    dict of lower-case names to latin-1 text (the last one wins, like Starlette's view)."""
    query = parse_query(query_string)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
    try:
        if method == "GET" or method == "HEAD":
            return await handlers.get(key, query, headers)
        if method == "PUT":
            return await handlers.put(key, query, headers, read_body)
        return await handlers.delete(key, query, headers)
    except ClientGone:
        return None
    except Exception:  # a bug must still answer JSON, and be logged
        log.exception("unhandled error in %s %s", method, path)
        return Reply(500, b'{"error":"internal","detail":"internal error; see the node log"}')


async def _send(send, reply: Reply, head: bool = False) -> None:
    """Send ``reply``; for HEAD the same headers (Content-Length of the GET body) and no body."""
    headers = [(b"content-type", reply.content_type.encode("latin-1")),
               (b"content-length", str(len(reply.body)).encode())]
    if reply.etag is not None:
        headers.append((b"etag", f'"{reply.etag}"'.encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else reply.body})
