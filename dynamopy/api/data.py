"""The data routes: ``PUT|GET|DELETE /kv/{key}``. They are the hot path, so they are kept lean.

The handlers work on plain values (key text, query pairs, headers, a body reader) and return a
small :class:`Reply`. Two thin adapters serve them: a raw ASGI fast path (``fastpath.py``)
that answers ``/kv/`` requests before FastAPI's routing and dependency machinery, and FastAPI
routes that document the same operations in the OpenAPI schema (and serve them if the fast
path is off). Every bad input gets the contract's JSON error; nothing is ignored.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, Mapping, Optional

from fastapi import APIRouter, Request, Response

from dynamopy.api.schema import DATA_ERRORS, NOT_FOUND, TOO_LARGE, responses
from dynamopy.core.records import DEFAULT_CONTENT_TYPE
from dynamopy.node.errors import BadRequest, NodeError, NotFound, TooLarge

MAX_KEY_BYTES = 1024
_TRUE = {"true", "1", "yes"}
_BOOL_VALUES = _TRUE | {"false", "0", "no"}
_KEY_DOC = "UTF-8 key of 1..1024 bytes, percent-encoded; '/' allowed"
JSON = "application/json"


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str = JSON
    etag: Optional[int] = None


def error_reply(e: NodeError) -> Reply:
    return Reply(e.status, json.dumps({"error": e.code, "detail": e.detail, **e.extra}).encode())


def check_key(key: str) -> bytes:
    raw = key.encode("utf-8", "surrogateescape")
    if not raw:
        raise BadRequest("the key is empty; keys are 1..1024 bytes of UTF-8")
    if len(raw) > MAX_KEY_BYTES:
        raise BadRequest(f"the key is {len(raw)} bytes; the limit is {MAX_KEY_BYTES}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the key is not valid UTF-8") from None
    return raw


def parse_key(request: Request) -> bytes:
    return check_key(request.path_params.get("key", ""))


def parse_params(query: Iterable[tuple[str, str]], headers: Mapping[str, str],
                 quorum_name: str, default: int, n: int) -> tuple[int, bool]:
    """Return (quorum, strict). Unknown parameters and bad values are 400s, never ignored."""
    quorum, strict = default, False
    for name, text in query:
        if name == quorum_name:
            try:
                quorum = int(text)
            except ValueError:
                raise BadRequest(f"{quorum_name}={text!r} is not an integer") from None
            if not 1 <= quorum <= n:
                raise BadRequest(f"{quorum_name}={quorum} is outside 1..N={n}")
        elif name == "strict":
            if text.lower() not in _BOOL_VALUES:
                raise BadRequest(f"strict={text!r} is not a boolean")
            strict = text.lower() in _TRUE
        elif name == "consistency":
            raise BadRequest("consistency=... is not supported yet by this cluster")
        else:
            raise BadRequest(f"unknown parameter {name!r}; this route takes "
                             f"{quorum_name!r} and 'strict'")
    if "if-match" in headers:
        raise BadRequest("If-Match is not supported yet by this cluster")
    return quorum, strict


SESSION_HEADER = "x-dynamopy-after"


def parse_after(headers: Mapping[str, str]) -> int:
    """The session token ``X-Dynamopy-After: <version>`` (0 when absent): a write is stamped
    above it and a read answers only with a version at least that new."""
    text = headers.get(SESSION_HEADER)
    if text is None:
        return 0
    text = text.strip().strip('"')
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) >= 1 << 63:
        raise BadRequest(f"X-Dynamopy-After={text!r} is not a version (an integer in 0..2^63-1)")
    return int(text)


class DataHandlers:
    """PUT/GET/DELETE of one key, independent of the web framework."""

    def __init__(self, node):
        self.node = node
        m = node.metrics
        self._requests = m.requests
        self._seconds = m.request_seconds
        self._children: dict = {}

    def _observe(self, route: str, outcome: str, started: float) -> None:
        pair = self._children.get((route, outcome))
        if pair is None:  # label lookups are not free; cache the children
            pair = self._children[(route, outcome)] = (
                self._requests.labels(route, outcome), self._seconds.labels(route, outcome))
        pair[0].inc()
        pair[1].observe(time.perf_counter() - started)

    async def put(self, key: str, query, headers: Mapping[str, str],
                  read_body: Callable[[], Awaitable[bytes]]) -> Reply:
        return await self._write("put", key, query, headers, read_body)

    async def delete(self, key: str, query, headers: Mapping[str, str]) -> Reply:
        """A delete is a write of a tombstone with a new version."""
        return await self._write("delete", key, query, headers, None)

    async def _write(self, route: str, key: str, query, headers: Mapping[str, str],
                     read_body: Optional[Callable[[], Awaitable[bytes]]]) -> Reply:
        started = time.perf_counter()
        node = self.node
        try:
            raw_key = check_key(key)
            settings = node.require_ready().settings
            w, strict = parse_params(query, headers, "w", settings.w, settings.n)
            after = parse_after(headers)
            if read_body is None:
                body, ctype = b"", DEFAULT_CONTENT_TYPE
            else:
                body = await self._read_value(headers, read_body)
                ctype = headers.get("content-type") or DEFAULT_CONTENT_TYPE
            version, acks = await node.coordinator.write(
                raw_key, value=body, content_type=ctype, deleted=read_body is None, w=w,
                sloppy=not strict, after=after)
        except NodeError as e:
            self._observe(route, e.code, started)
            return error_reply(e)
        self._observe(route, "ok", started)
        return Reply(200, json.dumps({"key": key, "version": version, "acks": acks}).encode(),
                     etag=version)

    async def _read_value(self, headers: Mapping[str, str],
                          read_body: Callable[[], Awaitable[bytes]]) -> bytes:
        limit = self.node.config.max_value_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise TooLarge(f"the value is {declared} bytes; the limit is {limit}")
        body = await read_body()
        if len(body) > limit:
            raise TooLarge(f"the value is {len(body)} bytes; the limit is {limit}")
        if declared is not None and declared.isdigit() and int(declared) != len(body):
            raise BadRequest(f"the body has {len(body)} bytes, Content-Length says {declared}")
        return body

    async def get(self, key: str, query, headers: Mapping[str, str]) -> Reply:
        started = time.perf_counter()
        node = self.node
        try:
            raw_key = check_key(key)
            settings = node.require_ready().settings
            r, strict = parse_params(query, headers, "r", settings.r, settings.n)
            after = parse_after(headers)
            if after:
                rec = await node.coordinator.read_after(raw_key, r=r, sloppy=not strict,
                                                        after=after)
            else:
                rec = await node.coordinator.read(raw_key, r=r, sloppy=not strict)
            if rec is None:
                raise NotFound(f"key {key!r} was never written")
            if rec.deleted:
                raise NotFound(f"key {key!r} was deleted", version=rec.version)
        except NodeError as e:
            self._observe("get", e.code, started)
            return error_reply(e)
        self._observe("get", "ok", started)
        return Reply(200, rec.value, rec.content_type, etag=rec.version)


# ---- the FastAPI adapter (documents the routes; serves them if the fast path is off) --

def _param(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


_QUORUM_SCHEMA = {"type": "integer", "minimum": 1}
_STRICT = _param("strict", "only preference-list members count toward the quorum (no hints)",
                 {"type": "boolean"})
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _response(reply: Reply) -> Response:
    headers = {"ETag": f'"{reply.etag}"'} if reply.etag is not None else None
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type,
                    headers=headers)


def build_router(handlers: DataHandlers) -> APIRouter:
    router = APIRouter()

    @router.put("/kv/{key:anypath}", summary="Store a value",
                openapi_extra={"parameters": [_param("w", "write quorum (1..N)", _QUORUM_SCHEMA), _STRICT],
                               "requestBody": {"content": {"*/*": _BINARY}}},
                responses=responses({"description": "stored on W replicas"}, DATA_ERRORS, TOO_LARGE))
    async def put_value(request: Request, key: str):
        """Store the request body under ``key`` on N replicas; answer after W durable acks."""
        return _response(await handlers.put(key, request.query_params.multi_items(),
                                            request.headers, request.body))

    @router.get("/kv/{key:anypath}", summary="Read a value",
                openapi_extra={"parameters": [_param("r", "read quorum (1..N)", _QUORUM_SCHEMA), _STRICT]},
                responses=responses({"description": "the newest value of R replies, with the "
                                                    "Content-Type it was stored with",
                                     "content": {"*/*": {}}}, DATA_ERRORS, NOT_FOUND))
    async def get_value(request: Request, key: str):
        """The newest of R replicas' values; stale replicas are repaired in the background."""
        return _response(await handlers.get(key, request.query_params.multi_items(),
                                            request.headers))

    @router.delete("/kv/{key:anypath}", summary="Delete a value",
                   openapi_extra={"parameters": [_param("w", "write quorum (1..N)", _QUORUM_SCHEMA), _STRICT]},
                   responses=responses({"description": "tombstone stored on W replicas"}, DATA_ERRORS))
    async def delete_value(request: Request, key: str):
        """Write a tombstone for ``key`` (a delete is a write with a new version)."""
        return _response(await handlers.delete(key, request.query_params.multi_items(),
                                               request.headers))

    return router
