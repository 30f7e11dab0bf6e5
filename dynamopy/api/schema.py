"""OpenAPI documentation of the contract's responses (errors, content types).

The routes parse requests by hand (for speed and for the contract's JSON errors), so the
responses they can give are declared here and attached to every route.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict


class ErrorBody(BaseModel):
    """``{"error": CODE, "detail": TEXT, ...}``; extra fields (acks, required, ...) allowed."""

    model_config = ConfigDict(extra="allow")
    error: str
    detail: str


def _err(description: str) -> dict:
    return {"model": ErrorBody, "description": description}


BAD_REQUEST = {400: _err("bad input: key, quorum or parameter")}
UNAUTHORIZED = {401: _err("an API token is configured and the request lacks it")}
NOT_FOUND = {404: _err("never written, deleted, or no such member")}
UNAVAILABLE = {503: _err("quorum unavailable, or this node is not ready")}
TOO_LARGE = {413: _err("the value is larger than max_value_bytes")}
CONFLICT = {409: _err("the change conflicts with the membership")}

DATA_ERRORS = {**BAD_REQUEST, **UNAUTHORIZED, **UNAVAILABLE}


def responses(ok: Optional[dict] = None, *errors: dict) -> dict:
    out: dict = {}
    if ok is not None:
        out[200] = ok
    for e in errors:
        out.update(e)
    return out


def finish_openapi(app, max_quorum) -> None:
    """Adjust the generated schema: FastAPI documents 422 for every route with parameters
    (ours answer 400 instead), and R/W are bounded by the cluster's N (``max_quorum()``)."""
    original = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        for path in schema.get("paths", {}).values():
            for op in path.values():
                if isinstance(op, dict):
                    op.get("responses", {}).pop("422", None)
                    for param in op.get("parameters", []):
                        if param.get("name") in ("r", "w"):
                            param["schema"]["maximum"] = max_quorum()
                    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
                    for name, prop in body.get("schema", {}).get("properties", {}).items():
                        if name in ("r", "w"):
                            prop["maximum"] = max_quorum()
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema

    app.openapi = openapi


class AnyPathConvertor:
    """Like Starlette's ``path`` convertor, but also matches newlines (keys may hold any
    UTF-8 character)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def register_convertors() -> None:
    from starlette.convertors import CONVERTOR_TYPES, register_url_convertor

    if "anypath" not in CONVERTOR_TYPES:
        register_url_convertor("anypath", AnyPathConvertor())
