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
from json.encoder import encode_basestring_ascii
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, Mapping, Optional
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, Request, Response

from dynamopy.api.schema import DATA_ERRORS, NOT_FOUND, TOO_LARGE, responses
from dynamopy.core.records import DEFAULT_CONTENT_TYPE
from dynamopy.node.errors import BadRequest, NodeError, NotFound, TooLarge

MAX_KEY_BYTES = 1024
# A stored Content-Type travels with every copy of the record (peer frames, hints, transfers);
# the frame budget reserves room for it (see ``dynamopy.config.MAX_VALUE_BYTES_LIMIT``).
MAX_CONTENT_TYPE_BYTES = 1024
# Conditional requests (RFC 9110 section 13). A read honours If-None-Match (304 when an ETag
# matches); every other precondition, and any precondition on a write, is refused: a
# check-then-write across replicas is not atomic in a leaderless store, so "create only" or
# "only if unchanged" would be a promise two concurrent writers could both break.
_WRITE_PRECONDITIONS = ("if-match", "if-none-match", "if-modified-since",
                        "if-unmodified-since", "if-range")
_READ_PRECONDITIONS = ("if-match", "if-modified-since", "if-unmodified-since", "if-range")
_TRUE = {"true", "1", "yes"}
_BOOL_VALUES = _TRUE | {"false", "0", "no"}
_KEY_DOC = "UTF-8 key of 1..1024 bytes, percent-encoded; '/' allowed"
JSON = "application/json"
PREFIX = "/kv/"


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str = JSON
    etag: Optional[int] = None


def written_body(key: str, version: int, acks: int) -> bytes:
    """A write's answer, ``{"key": ..., "version": ..., "acks": ...}``: byte for byte what
    ``json.dumps`` of that dict gives (the same string escaping), without its general
    encoder (3 µs of every write's answer against 0.4)."""
    return ('{"key": %s, "version": %d, "acks": %d}'
            % (encode_basestring_ascii(key), version, acks)).encode()


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


def path_key(scope, prefix: str) -> str:
    """The key in a request path ``<prefix><percent-encoded key>``, decoded from the raw
    bytes the client sent. Bytes that are not UTF-8 are kept as surrogate escapes, so
    ``check_key`` refuses them (the server's own decoded ``path`` replaced them with U+FFFD,
    which would merge distinct bad keys into one)."""
    raw_path = scope.get("raw_path")
    if raw_path is None:  # ASGI makes raw_path optional; fall back to the decoded path
        return scope["path"][len(prefix):]
    # Decode the whole path first: the prefix itself may arrive percent-encoded.
    raw = unquote_to_bytes(raw_path)
    return raw[len(prefix.encode()):].decode("utf-8", "surrogateescape")


def parse_key(request: Request, prefix: str) -> bytes:
    return check_key(path_key(request.scope, prefix))


def parse_params(query: Iterable[tuple[str, str]], headers: Mapping[str, str],
                 quorum_name: str, default: int, n: int) -> tuple[int, bool]:
    """Return (quorum, strict). Unknown or repeated parameters, bad values and unsupported
    preconditions are 400s, never ignored (a repeated ``w`` must not weaken a write)."""
    quorum, strict = default, False
    check_repeats(query)
    for name, text in query:
        if name == quorum_name:
            # ASCII digits only: Python's int() also takes "+2", " 2", "0_2" and other
            # scripts' digits, none of which a client means as a quorum
            if not (text.isascii() and text.isdigit()):
                raise BadRequest(f"{quorum_name}={text!r} is not an integer")
            quorum = int(text) if len(text) <= 4 else n + 1  # (int() refuses 4,300+ digits)
            if not 1 <= quorum <= n:
                raise BadRequest(f"{quorum_name}={text} is outside 1..N={n}")
        elif name == "strict":
            if text.lower() not in _BOOL_VALUES:
                raise BadRequest(f"strict={text!r} is not a boolean")
            strict = text.lower() in _TRUE
        elif name == "consistency":
            raise BadRequest("consistency=... is not supported yet by this cluster")
        else:
            raise BadRequest(f"unknown parameter {name!r}; this route takes "
                             f"{quorum_name!r} and 'strict'")
    unsupported = _WRITE_PRECONDITIONS if quorum_name == "w" else _READ_PRECONDITIONS
    for name in unsupported:
        if name in headers:
            raise BadRequest(f"conditional header {name.title()} is not supported on this route"
                             " (a read honours If-None-Match only; writes take no preconditions)")
    return quorum, strict


def check_repeats(query: Iterable[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for name, _ in query:
        if name in seen:
            raise BadRequest(f"parameter {name!r} is given more than once")
        seen.add(name)


def check_query(query: Iterable[tuple[str, str]], takes: tuple[str, ...] = ()) -> None:
    """The cluster and node routes, as the data routes: a parameter given twice, or one the
    route does not take (``takes``), is a 400 ``bad_request``, never ignored (a misspelt
    ``?forse=true`` must not pass for a request without it)."""
    query = list(query)
    check_repeats(query)
    for name, _ in query:
        if name not in takes:
            what = (f"this route takes only {', '.join(repr(t) for t in takes)}" if takes
                    else "this route takes no parameters")
            raise BadRequest(f"unknown parameter {name!r}; {what}")


def _etag_matches(header: str, version: int) -> bool:
    """If-None-Match (weak comparison, RFC 9110 13.1.2): ``*`` or a list of entity tags."""
    if header.strip() == "*":
        return True
    ours = str(version)
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if len(tag) < 2 or tag[0] != '"' or tag[-1] != '"':
            raise BadRequest(f"If-None-Match: {header!r} is not '*' or a list of entity tags")
        if tag[1:-1] == ours:
            return True
    return False


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
            state = await node.serving_state()
            # Tracked from the moment it takes the defaults until it answers: a change of
            # the defaults settles only once no request planned under the old ones is
            # still running (node/defaults_change.py).
            after = parse_after(headers)
            with node.defaults_change.track(state.epoch):
                w, strict = parse_params(query, headers, "w", state.defaults()[1],
                                         state.settings.n)
                if read_body is None:
                    body, ctype = b"", DEFAULT_CONTENT_TYPE
                else:
                    ctype = headers.get("content-type") or DEFAULT_CONTENT_TYPE
                    if len(ctype) > MAX_CONTENT_TYPE_BYTES:
                        raise BadRequest(f"the Content-Type is {len(ctype)} bytes; the limit "
                                         f"is {MAX_CONTENT_TYPE_BYTES}")
                    body = await self._read_value(headers, read_body)
                version, acks = await node.coordinator.write(
                    raw_key, value=body, content_type=ctype, deleted=read_body is None, w=w,
                    sloppy=not strict, after=after, caught_up=True)
        except NodeError as e:
            self._observe(route, e.code, started)
            return error_reply(e)
        self._observe(route, "ok", started)
        return Reply(200, written_body(key, version, acks), etag=version)

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
            state = await node.serving_state()
            r, strict = parse_params(query, headers, "r", state.defaults()[0], state.settings.n)
            after = parse_after(headers)
            with node.defaults_change.track(state.epoch):
                if after:
                    rec = await node.coordinator.read_after(raw_key, r=r, sloppy=not strict,
                                                            after=after)
                else:
                    rec = await node.coordinator.read(raw_key, r=r, sloppy=not strict,
                                                      caught_up=True)
            if rec is None:
                raise NotFound(f"key {key!r} was never written")
            if rec.deleted:
                raise NotFound(f"key {key!r} was deleted", version=rec.version)
            condition = headers.get("if-none-match")
            if condition is not None and _etag_matches(condition, rec.version):
                self._observe("get", "not_modified", started)
                return Reply(304, b"", rec.content_type, etag=rec.version)
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
        return _response(await handlers.put(path_key(request.scope, PREFIX),
                                            request.query_params.multi_items(),
                                            request.headers, request.body))

    @router.get("/kv/{key:anypath}", summary="Read a value",
                openapi_extra={"parameters": [_param("r", "read quorum (1..N)", _QUORUM_SCHEMA), _STRICT]},
                responses=responses({"description": "the newest value of R replies, with the "
                                                    "Content-Type it was stored with",
                                     "content": {"*/*": {}}}, DATA_ERRORS, NOT_FOUND,
                                    {304: {"description": "If-None-Match matched the ETag"}}))
    async def get_value(request: Request, key: str):
        """The newest of R replicas' values; stale replicas are repaired in the background."""
        return _response(await handlers.get(path_key(request.scope, PREFIX),
                                            request.query_params.multi_items(),
                                            request.headers))

    @router.delete("/kv/{key:anypath}", summary="Delete a value",
                   openapi_extra={"parameters": [_param("w", "write quorum (1..N)", _QUORUM_SCHEMA), _STRICT]},
                   responses=responses({"description": "tombstone stored on W replicas"}, DATA_ERRORS))
    async def delete_value(request: Request, key: str):
        """Write a tombstone for ``key`` (a delete is a write with a new version)."""
        return _response(await handlers.delete(path_key(request.scope, PREFIX),
                                               request.query_params.multi_items(),
                                               request.headers))

    return router
