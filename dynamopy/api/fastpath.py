"""A raw ASGI fast path for ``/kv/{key}``: the same handlers as the FastAPI routes, without
FastAPI's routing, request objects and dependency solving (measured: about a fifth of a node's
CPU under load went there). Anything that is not PUT/GET/DELETE under ``/kv/`` goes on to
FastAPI unchanged."""

from __future__ import annotations

from urllib.parse import parse_qsl

from dynamopy.api.data import DataHandlers, Reply

PREFIX = "/kv/"
_METHODS = {"PUT", "GET", "DELETE"}


class _Headers(dict):
    """Lower-case header names -> latin-1 text (last one wins), like Starlette's view."""


class DataFastPath:
    def __init__(self, app, handlers: DataHandlers):
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in _METHODS \
                or not scope["path"].startswith(PREFIX):
            return await self.app(scope, receive, send)
        key = scope["path"][len(PREFIX):]
        query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        headers = _Headers((k.decode("latin-1").lower(), v.decode("latin-1"))
                           for k, v in scope["headers"])
        method = scope["method"]
        if method == "GET":
            reply = await self.handlers.get(key, query, headers)
        elif method == "PUT":
            async def read_body() -> bytes:
                chunks = []
                more = True
                while more:
                    message = await receive()
                    chunks.append(message.get("body", b""))
                    more = message.get("more_body", False)
                return b"".join(chunks)
            reply = await self.handlers.put(key, query, headers, read_body)
        else:
            reply = await self.handlers.delete(key, query, headers)
        await _send(send, reply)


async def _send(send, reply: Reply) -> None:
    headers = [(b"content-type", reply.content_type.encode("latin-1")),
               (b"content-length", str(len(reply.body)).encode())]
    if reply.etag is not None:
        headers.append((b"etag", f'"{reply.etag}"'.encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
