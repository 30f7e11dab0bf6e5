"""Build the FastAPI app of one node."""

from __future__ import annotations

import hmac

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from dynamopy import __version__
from dynamopy.api import cluster, data, errors, members, schema
from dynamopy.api.fastpath import DataFastPath
from dynamopy.api.http_limits import RequestLimits
from dynamopy.api.kv_protocol import KvEndpoint
from dynamopy.api.methods import MethodRules

OPEN_PATHS = ("/health", "/ready", "/metrics", "/docs", "/openapi.json")
DOCS_ASSETS = "/docs/assets"


class BearerAuth:
    """Pure ASGI middleware: with an API token set, every route but the open ones needs
    ``Authorization: Bearer <token>`` (cheaper than BaseHTTPMiddleware on the hot path).

    The scheme name is case-insensitive (RFC 9110 11.1: ``bearer``, ``BEARER`` work); the
    token is compared in constant time (``hmac.compare_digest``)."""

    def __init__(self, app, token: str):
        self.app = app
        self.expected = token.encode()

    def _authorized(self, value: bytes) -> bool:
        scheme, _, credentials = value.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(),
                                                                   self.expected)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PATHS):
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"authorization" and self._authorized(value):
                return await self.app(scope, receive, send)
        body = (b'{"error":"unauthorized","detail":"this cluster needs '
                b'Authorization: Bearer <token>"}')
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})


def create_app(node) -> FastAPI:
    schema.register_convertors()
    # /docs is Swagger UI served from files that ship with the package (fastapi-offline),
    # never from a CDN, so it works without network access. The assets live under /docs/
    # (open like /docs itself), and the online validator badge is off (it calls out).
    app = FastAPIOffline(title="dynamopy node", version=__version__,
                         description="A Dynamo-style leaderless quorum key-value store",
                         static_url=DOCS_ASSETS, swagger_ui_parameters={"validatorUrl": None})
    errors.install(app)
    handlers = data.DataHandlers(node)
    app.include_router(data.build_router(handlers))
    app.include_router(cluster.build_router(node))
    app.include_router(members.build_router(node))
    schema.finish_openapi(app, lambda: node.state.settings.n if node.state.bootstrapped
                          else node.config.n)
    app.state.handlers = handlers
    return app


def create_asgi(node):
    """The ASGI application a node serves: the ``/kv`` fast path in front of FastAPI (so the
    hot routes skip FastAPI's and Starlette's middleware stack), behind the bearer check,
    behind the request limits (``http_limits``); the FastAPI routes get the HEAD/OPTIONS/405
    rules of ``methods.MethodRules``. Its ``kv_endpoint`` is what ``kv_protocol`` needs to
    serve ``/kv`` without ASGI."""
    app = create_app(node)
    asgi = DataFastPath(MethodRules(app), app.state.handlers)
    if node.config.api_token:
        asgi = BearerAuth(asgi, node.config.api_token)
    cfg = node.config
    limits = RequestLimits(asgi, max_concurrent_requests=cfg.max_concurrent_requests,
                           body_buffer_bytes=cfg.http_body_buffer_bytes,
                           max_value_bytes=cfg.max_value_bytes,
                           on_reject=node.metrics.on_http_rejected)
    # What --http-server fast serves without ASGI (kv_protocol.py): the same handlers,
    # the same limits object, the same token.
    limits.kv_endpoint = KvEndpoint(app.state.handlers, limits, cfg.api_token)
    return limits
