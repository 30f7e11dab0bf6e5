"""HTTP method rules shared by every route (RFC 9110 sections 9.3.2, 9.3.7, 15.5.6).

- HEAD works wherever GET does: the same status and headers (Content-Length included), no body.
- OPTIONS answers 204 with ``Allow`` listing the path's methods.
- A method the path does not serve answers 405 with ``Allow`` listing *every* method of the
  path (FastAPI registers one route per method and would name only the first route's).

``/kv/`` requests get these rules in the fast path (``fastpath.py``, with ``KV_METHODS``);
``MethodRules`` gives them to the FastAPI routes.
"""

from __future__ import annotations

import json
from typing import Iterable

from starlette.routing import Match

_ORDER = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS")
_PROBED = ("GET", "PUT", "POST", "PATCH", "DELETE")
KV_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def allow_value(methods: Iterable[str]) -> str:
    ms = set(methods)
    return ", ".join([m for m in _ORDER if m in ms] + sorted(ms - set(_ORDER)))


def not_allowed_body(method: str, allow: str) -> bytes:
    return json.dumps({"error": "method_not_allowed",
                       "detail": f"{method} is not served here; this path allows {allow}"}).encode()


async def send_simple(send, status: int, body: bytes, headers: list) -> None:
    if status != 204:  # a 204 carries no Content-Length (RFC 9110 8.6)
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def without_body(send):
    """Wrap ``send`` so a GET answer goes out as a HEAD answer: headers kept, body dropped."""
    async def head_send(message):
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)
    return head_send


class MethodRules:
    """ASGI middleware in front of the FastAPI app applying the rules above."""

    def __init__(self, app):
        self.app = app

    def _methods(self, scope) -> set[str]:
        # Probe each method against the routes (FastAPI nests included routers, so a route's
        # method set is not a plain attribute to read).
        methods: set[str] = set()
        routes = self.app.router.routes
        for method in _PROBED:
            probe = {**scope, "method": method}
            if any(route.matches(probe)[0] is Match.FULL for route in routes):
                methods.add(method)
        if methods:
            methods.add("OPTIONS")
            if "GET" in methods:
                methods.add("HEAD")
        return methods

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method = scope["method"]
        if method != "HEAD" and method != "OPTIONS" and any(
                route.matches(scope)[0] is Match.FULL for route in self.app.router.routes):
            return await self.app(scope, receive, send)   # the common case: one scan
        methods = self._methods(scope)
        if not methods:  # no such path: the app's 404
            return await self.app(scope, receive, send)
        allow = allow_value(methods).encode()
        if method == "OPTIONS":
            return await send_simple(send, 204, b"", [(b"allow", allow)])
        if method not in methods:
            return await send_simple(send, 405, not_allowed_body(method, allow.decode()),
                                     [(b"allow", allow)])
        if method == "HEAD":
            scope = {**scope, "method": "GET"}
            send = without_body(send)
        return await self.app(scope, receive, send)
