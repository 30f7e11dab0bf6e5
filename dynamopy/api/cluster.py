"""Cluster and node routes: membership views, preference lists, the metadata log,
this node's own view, health, readiness and metrics."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from dynamopy.api.data import _KEY_DOC, check_query, parse_key
from dynamopy.api.schema import (BAD_REQUEST, NOT_FOUND, UNAUTHORIZED, UNAVAILABLE,
                                 responses)
from dynamopy.exposure import assess
from dynamopy.node.bootstrap import ASKER_HEADER, identity_asked_by
from dynamopy.node.errors import BadRequest, NotFound


def clock_view(node) -> dict:
    """This node's judgement of its own clock, and each peer's clock minus this node's as
    this node measures it (``None`` until measured): each node's own opinion, like
    ``alive``, so kept apart from the agreed member list."""
    v = node.detector.skew
    return {"max_offset_ms": node.config.max_clock_offset_ms,
            "offset_ms": None if v is None else round(v.offset_ms, 1),
            "skewed": bool(v is not None and v.skewed),
            # why it is fenced: "majority", "stepped" or "trusted_peer" (core.clock_offsets)
            "reason": v.reason if v is not None and v.skewed else None,
            "peers_measured": 0 if v is None else v.measured,
            "peer_offsets_ms": {mid: node.detector.offset_ms(mid)
                                for mid in node.state.members if mid != node.id}}


def member_role(state, member_id: str) -> str:
    """``acceptor`` (votes in the metadata log), ``retired_acceptor`` (listed in the group,
    but its old incarnation lost its disk: it never votes again) or ``learner``."""
    if member_id in state.acceptors:
        return "retired_acceptor" if member_id in state.retired else "acceptor"
    return "learner"


def cluster_view(node, warnings: list) -> dict:
    """What ``GET /cluster`` answers (``NotReady`` until this node is ready); the system
    simulator's in-process contact answers a joining node with it too."""
    state = node.require_ready()
    ownership = state.ring.ownership()
    alive = node.detector.view()
    s = state.settings
    return {
        "epoch": state.epoch, "n": s.n, "r": s.r, "w": s.w,
        "hint_window_s": s.hint_window_s, "hint_max_bytes": s.hint_max_bytes,
        "anti_entropy_interval_s": s.anti_entropy_interval_s,
        "anti_entropy_rate": s.anti_entropy_rate, "tombstone_grace_s": s.tombstone_grace_s,
        "change": state.change_view(),
        # While a change of the R/W defaults settles, requests without an explicit
        # quorum use these (the larger of old and new); null once settled.
        "settling": ({"r": state.rw_in_effect[0], "w": state.rw_in_effect[1],
                      "since_epoch": state.config_epoch} if state.rw_in_effect else None),
        # The metadata group (Paxos acceptors). "acceptors" is the older name of the
        # same list, kept for nodes of an older version that join through this one.
        "metadata_group": list(state.acceptors),
        "acceptors": list(state.acceptors),
        "metadata_group_size": s.metadata_group_size,
        # The group of the log's first slot: where a joiner starts following the
        # group changes (core/metadata_group.py).
        "metadata_group_initial": list(state.initial_group),
        "warnings": warnings,
        "members": [
            {"id": m.id, "url": m.url, "peer": m.peer, "number": m.number,
             "state": m.state, "role": member_role(state, m.id), "zone": m.zone or None,
             "alive": alive.get(m.id, False),
             "ownership": round(ownership.get(m.id, 0.0), 6)}
            for m in sorted(state.members.values(), key=lambda m: m.number)
        ],
        "clock": clock_view(node),
    }


def _json_safe(value):
    """``value`` with every float that is not finite as its string ("nan", "inf"): a log
    entry committed before POST /cluster/config refused them (NaN is not JSON) must not
    make the log unreadable for good."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def build_router(node) -> APIRouter:
    router = APIRouter()
    # Insecure settings this node runs with (see dynamopy.exposure), shown to operators.
    warnings = assess(node.config).warnings

    @router.get("/cluster", summary="Membership, settings and epoch",
                responses=responses(None, BAD_REQUEST, UNAUTHORIZED, UNAVAILABLE))
    async def cluster(request: Request):
        check_query(request.query_params.multi_items())
        return cluster_view(node, warnings)

    @router.get("/cluster/preference-list/{key:anypath}", summary="The N replicas of a key",
                responses=responses(None, BAD_REQUEST, UNAUTHORIZED, UNAVAILABLE))
    async def preference_list(request: Request, key: str):
        check_query(request.query_params.multi_items())
        raw = parse_key(request, "/cluster/preference-list/")
        state = node.require_ready()
        return {"key": key, "nodes": state.ring.preference_list(raw, state.settings.n)}

    @router.get("/cluster/log", summary="Committed metadata-log entries",
                openapi_extra={"parameters": [{"name": "since", "in": "query", "required": False,
                                               "schema": {"type": "integer", "minimum": 0}}]},
                responses=responses(None, BAD_REQUEST, UNAUTHORIZED))
    async def cluster_log(request: Request):
        check_query(request.query_params.multi_items(), ("since",))
        text = request.query_params.get("since", "0")
        try:
            since = int(text)
        except ValueError:
            raise BadRequest(f"since={text!r} is not an integer") from None
        if since < 0:
            raise BadRequest("since must be >= 0")
        return {"epoch": node.state.epoch, "entries": _json_safe(node.log_entries(since))}

    @router.get("/node", summary="This node's own view",
                responses=responses(None, BAD_REQUEST, UNAUTHORIZED))
    async def node_view(request: Request):
        check_query(request.query_params.multi_items())
        # Wakes a seed waiting to ask the seeds again, unless it asks itself or the asker
        # answered its last round (node/bootstrap.py).
        identity_asked_by(node, request.headers.get(ASKER_HEADER))
        return node.node_view()

    @router.get("/node/kv/{key:anypath}", summary="This node's local record of a key (no quorum)",
                description=_KEY_DOC,
                responses=responses(None, BAD_REQUEST, UNAUTHORIZED, NOT_FOUND, UNAVAILABLE))
    async def node_kv(request: Request, key: str):
        check_query(request.query_params.multi_items())
        raw = parse_key(request, "/node/kv/")
        state = node.require_ready()
        rec = node.replica.get(state.ring.token(raw), raw)
        if rec is None:
            raise NotFound(f"this node holds no record of {key!r}")
        return {"key": key, "version": rec.version, "deleted": rec.deleted,
                "value_bytes": len(rec.value), "content_type": rec.content_type}

    @router.get("/health", summary="200 while the process serves HTTP")
    async def health():
        return {"status": "ok", "id": node.id}

    @router.get("/ready", summary="200 when this node is a member and caught up",
                responses=responses(None, UNAVAILABLE))
    async def ready():
        if node.is_ready:
            return {"status": "ready", "id": node.id, "epoch": node.state.epoch}
        detail = getattr(node, "waiting_for", None) or "not a member yet or catching up"
        left = None
        if node.metalog.left is not None and node.state.member(node.id) is None:
            left = {"epoch": node.metalog.left["epoch"]}   # as GET /node says it
            detail = (f"this node left the cluster (its graceful leave finished at epoch "
                      f"{left['epoch']}); restart it with --rejoin-after-leave "
                      "to join again")
        elif node.metalog.replacing:
            blocked = node.metalog.replacement_blocked
            detail = ("this node lost its data directory and is coming back as a replacement"
                      + (f"; not possible yet: {blocked}" if blocked else ""))
        elif not node.detector.clock_ok:
            detail = ("this node's clock is too far from its peers'" if node.detector.skew and
                      node.detector.skew.skewed else "this node's clock is not confirmed by a "
                      "majority of the members yet")
        return JSONResponse({"error": "not_ready", "detail": detail, "clock": clock_view(node),
                             "id": node.id, "epoch": node.state.epoch,
                             **({"left": left} if left else {})}, status_code=503)

    @router.get("/metrics", summary="Prometheus metrics",
                response_class=PlainTextResponse)
    async def metrics():
        if node.store is not None:
            node.metrics.keys.set(node.store.key_count())
        return Response(node.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router
