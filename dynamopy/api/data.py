"""The data routes: ``PUT|GET|DELETE /kv/{key}``. Kept lean: they are the hot path.

The handlers take the raw ``Request`` and parse it by hand (no pydantic models), which keeps
FastAPI's per-request cost low and lets every bad input get the contract's JSON error.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from dynamopy.api.schema import DATA_ERRORS, NOT_FOUND, TOO_LARGE, responses
from dynamopy.core.records import DEFAULT_CONTENT_TYPE
from dynamopy.node.errors import BadRequest, NodeError, NotFound, TooLarge

MAX_KEY_BYTES = 1024
_TRUE = {"true", "1", "yes"}
_BOOL_VALUES = _TRUE | {"false", "0", "no"}


def _param(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


_QUORUM_SCHEMA = {"type": "integer", "minimum": 1}
_STRICT = _param("strict", "only preference-list members count toward the quorum (no hints)",
                 {"type": "boolean"})
_KEY_DOC = "UTF-8 key of 1..1024 bytes, percent-encoded; '/' allowed"


def parse_key(request: Request) -> bytes:
    key = request.path_params.get("key", "")
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


def parse_params(request: Request, quorum_name: str, default: int, n: int) -> tuple[int, bool]:
    """Return (quorum, strict). Unknown parameters and bad values are 400s, never ignored."""
    q = request.query_params
    for name in q.keys():
        if name == "consistency":
            raise BadRequest("consistency=... is not supported yet by this cluster")
        if name not in (quorum_name, "strict"):
            raise BadRequest(f"unknown parameter {name!r}; this route takes "
                             f"{quorum_name!r} and 'strict'")
    quorum = default
    text = q.get(quorum_name)
    if text is not None:
        try:
            quorum = int(text)
        except ValueError:
            raise BadRequest(f"{quorum_name}={text!r} is not an integer") from None
        if not 1 <= quorum <= n:
            raise BadRequest(f"{quorum_name}={quorum} is outside 1..N={n}")
    strict_text = q.get("strict", "false").lower()
    if strict_text not in _BOOL_VALUES:
        raise BadRequest(f"strict={strict_text!r} is not a boolean")
    if "if-match" in request.headers:
        raise BadRequest("If-Match is not supported yet by this cluster")
    return quorum, strict_text in _TRUE


def build_router(node) -> APIRouter:
    router = APIRouter()
    metrics = node.metrics

    def observe(route: str, outcome: str, started: float) -> None:
        metrics.requests.labels(route, outcome).inc()
        metrics.request_seconds.labels(route, outcome).observe(time.perf_counter() - started)

    @router.put("/kv/{key:anypath}", summary="Store a value",
                openapi_extra={"parameters": [_param("w", "write quorum (1..N)", _QUORUM_SCHEMA), _STRICT],
                               "requestBody": {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}},
                responses=responses({"description": "stored on W replicas"}, DATA_ERRORS, TOO_LARGE))
    async def put_value(request: Request, key: str):
        """Store the request body under ``key`` on N replicas; answer after W durable acks."""
        started = time.perf_counter()
        try:
            raw_key = parse_key(request)
            settings = node.require_ready().settings
            w, strict = parse_params(request, "w", settings.w, settings.n)
            limit = node.config.max_value_bytes
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise TooLarge(f"the value is {declared} bytes; the limit is {limit}")
            body = await request.body()
            if len(body) > limit:
                raise TooLarge(f"the value is {len(body)} bytes; the limit is {limit}")
            ctype = request.headers.get("content-type") or DEFAULT_CONTENT_TYPE
            version, acks = await node.coordinator.write(
                raw_key, value=body, content_type=ctype, deleted=False, w=w, sloppy=not strict)
        except NodeError as e:
            observe("put", e.code, started)
            raise
        observe("put", "ok", started)
        return JSONResponse({"key": key, "version": version, "acks": acks},
                            headers={"ETag": f'"{version}"'})

    @router.get("/kv/{key:anypath}", summary="Read a value",
                openapi_extra={"parameters": [_param("r", "read quorum (1..N)", _QUORUM_SCHEMA), _STRICT]},
                responses=responses({"description": "the newest value of R replies",
                                     "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                                    DATA_ERRORS, NOT_FOUND))
    async def get_value(request: Request, key: str):
        """The newest of R replicas' values; stale replicas are repaired in the background."""
        started = time.perf_counter()
        try:
            raw_key = parse_key(request)
            settings = node.require_ready().settings
            r, strict = parse_params(request, "r", settings.r, settings.n)
            rec = await node.coordinator.read(raw_key, r=r, sloppy=not strict)
            if rec is None:
                raise NotFound(f"key {key!r} was never written")
            if rec.deleted:
                raise NotFound(f"key {key!r} was deleted", version=rec.version)
        except NodeError as e:
            observe("get", e.code, started)
            raise
        observe("get", "ok", started)
        return Response(rec.value, media_type=rec.content_type,
                        headers={"ETag": f'"{rec.version}"'})

    @router.delete("/kv/{key:anypath}", summary="Delete a value",
                   openapi_extra={"parameters": [_param("w", "write quorum (1..N)", _QUORUM_SCHEMA), _STRICT]},
                   responses=responses({"description": "tombstone stored on W replicas"}, DATA_ERRORS))
    async def delete_value(request: Request, key: str):
        """Write a tombstone for ``key`` (a delete is a write with a new version)."""
        started = time.perf_counter()
        try:
            raw_key = parse_key(request)
            settings = node.require_ready().settings
            w, strict = parse_params(request, "w", settings.w, settings.n)
            version, acks = await node.coordinator.write(
                raw_key, value=b"", content_type=DEFAULT_CONTENT_TYPE, deleted=True, w=w,
                sloppy=not strict)
        except NodeError as e:
            observe("delete", e.code, started)
            raise
        observe("delete", "ok", started)
        return JSONResponse({"key": key, "version": version, "acks": acks},
                            headers={"ETag": f'"{version}"'})

    return router
