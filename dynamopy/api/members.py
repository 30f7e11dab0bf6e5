"""Membership changes: join, leave, remove, settings. Each is one metadata-log entry agreed
by the seeds (Paxos); a refused change leaves the log as it was."""

from __future__ import annotations

import json
import math
import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dynamopy.api.data import check_query
from dynamopy.api.schema import BAD_REQUEST, CONFLICT, NOT_FOUND, UNAUTHORIZED, UNAVAILABLE, responses
from dynamopy.node.errors import BadRequest, MembershipError
from dynamopy.core.membership import CONFIG_KEYS, InvalidEntry, validate
from dynamopy.core.metadata_group import GROUP_SIZES, change_problem
from dynamopy.core.tombstones import grace_covers_window, min_grace_s, seconds_text
from dynamopy.core.paxos.groups import majority
from dynamopy.node.joins import admit_join

from dynamopy.config import ID_PATTERN  # shared with serve's flag checks
URL_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$"   # host names and IPv4
PEER_PATTERN = r"^[A-Za-z0-9.-]+:[0-9]{1,5}$"
MAX_HINT_BYTES = 2**50
MAX_HINT_WINDOW_S = 10**8

ACCEPTED = {"description": "committed to the metadata log", "content": {"application/json": {}}}


def _refuse_constant(name: str):
    # Python's json takes NaN, Infinity and -Infinity; JSON (RFC 8259) has none of them, and
    # a setting holding one could never be answered as JSON again (GET /cluster would fail).
    raise ValueError(name)


class _Repeated(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _refuse_repeated(pairs: list) -> dict:
    # Python's json keeps the last of a repeated name, other decoders the first: a body
    # such as {"r": 1, "r": 2} is ambiguous, refused as a repeated query parameter is.
    out = {}
    for name, value in pairs:
        if name in out:
            raise _Repeated(name)
        out[name] = value
    return out


async def _json_body(request: Request) -> dict:
    raw = await request.body()
    if not raw:
        raise BadRequest("a JSON object body is required")
    try:
        body = json.loads(raw, parse_constant=_refuse_constant,
                          object_pairs_hook=_refuse_repeated)
    except _Repeated as e:
        raise BadRequest(f"the body names {e.name!r} more than once") from None
    except RecursionError:   # thousands of nested brackets
        raise BadRequest("the body is not valid JSON for this route: nested too deeply") \
            from None
    except ValueError:
        raise BadRequest("the body is not valid JSON (NaN and Infinity are not JSON "
                         "numbers)" if b"NaN" in raw or b"Infinity" in raw
                         else "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def build_router(node) -> APIRouter:
    router = APIRouter()

    @router.post("/cluster/members", status_code=202,
                 summary="Add a member (it joins as 'joining'); it must answer at its peer "
                         "address with the cluster secret (else 409 / 400)",
                 responses=responses(None, BAD_REQUEST, UNAUTHORIZED, CONFLICT, UNAVAILABLE),
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["id", "url", "peer"],
                     "additionalProperties": False,
                     "properties": {"id": {"type": "string", "pattern": ID_PATTERN},
                                    "url": {"type": "string", "pattern": URL_PATTERN},
                                    "peer": {"type": "string", "pattern": PEER_PATTERN},
                                    "zone": {"type": "string", "pattern": ID_PATTERN}}}}}}})
    async def join(request: Request):
        check_query(request.query_params.multi_items())
        body = await _json_body(request)
        extra = set(body) - {"id", "url", "peer", "zone"}
        if extra:
            raise BadRequest(f"unknown fields {sorted(extra)}; a join takes id, url, peer "
                             "and optionally zone")
        for field, pattern in (("id", ID_PATTERN), ("url", URL_PATTERN), ("peer", PEER_PATTERN)):
            if not isinstance(body.get(field), str) or not re.search(pattern, body[field]):
                raise BadRequest(f"'{field}' must be a string matching {pattern}")
        if "zone" in body and (not isinstance(body["zone"], str)
                               or not re.search(ID_PATTERN, body["zone"])):
            raise BadRequest(f"'zone' must be a string matching {ID_PATTERN}")
        entry = {"op": "join", "id": body["id"], "url": body["url"], "peer": body["peer"]}
        if body.get("zone"):
            entry["zone"] = body["zone"]
        check_group_rule(node)   # 503 at once if no live majority of the metadata group
        epoch = await admit_join(node, entry)   # is it there, with the cluster secret? then propose
        return JSONResponse({"epoch": epoch}, status_code=202)

    @router.post("/cluster/members/{member_id}/leave", status_code=202,
                 summary="Decommission a member: it streams its data away, then leaves",
                 responses=responses(None, BAD_REQUEST, UNAUTHORIZED, NOT_FOUND, CONFLICT,
                                     UNAVAILABLE))
    async def leave(request: Request, member_id: str):
        check_query(request.query_params.multi_items())
        check_group_rule(node, leaving=member_id)
        epoch = await node.propose({"op": "leave", "id": member_id})
        return JSONResponse({"epoch": epoch}, status_code=202)

    @router.delete("/cluster/members/{member_id}", status_code=202,
                   summary="Remove a dead member; survivors re-replicate its ranges",
                   openapi_extra={"parameters": [{"name": "force", "in": "query", "required": False,
                                                  "schema": {"type": "boolean"}}]},
                   responses=responses(None, BAD_REQUEST, UNAUTHORIZED, NOT_FOUND, CONFLICT, UNAVAILABLE))
    async def remove(request: Request, member_id: str):
        check_query(request.query_params.multi_items(), ("force",))
        force_text = request.query_params.get("force", "false").lower()
        if force_text not in ("true", "false", "1", "0"):
            raise BadRequest(f"force={force_text!r} is not a boolean")
        force = force_text in ("true", "1")
        if node.state.member(member_id) is None:
            raise MembershipError(404, "unknown_member", f"no member {member_id!r}")
        if not force and (member_id == node.id or node.detector.is_up(member_id)):
            raise MembershipError(409, "conflict",
                                  f"{member_id} is alive; use leave, or remove with force=true")
        check_group_rule(node, leaving=member_id)
        epoch = await node.propose({"op": "remove", "id": member_id})
        return JSONResponse({"epoch": epoch}, status_code=202)

    @router.post("/cluster/config", status_code=202,
                 summary="Change R/W defaults, hint, anti-entropy, tombstone or metadata-group settings",
                 responses=responses(None, BAD_REQUEST, UNAUTHORIZED, NOT_FOUND, CONFLICT, UNAVAILABLE),
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "additionalProperties": False, "minProperties": 1,
                     "properties": {"r": {"type": "integer", "minimum": 1},
                                    "w": {"type": "integer", "minimum": 1},
                                    "hint_window_s": {"type": "number", "minimum": 0,
                                                      "maximum": MAX_HINT_WINDOW_S},
                                    "hint_max_bytes": {"type": "integer", "minimum": 0,
                                                       "maximum": MAX_HINT_BYTES},
                                    "anti_entropy_interval_s": {"type": "number", "minimum": 0},
                                    "anti_entropy_rate": {"type": "integer", "minimum": 1},
                                    "tombstone_grace_s": {"type": "number",
                                                          "exclusiveMinimum": 0},
                                    "metadata_group_size": {"type": "integer",
                                                            "enum": [1, 3, 5]},
                                    "metadata_group": {
                                        "type": "array", "uniqueItems": True,
                                        "items": {"type": "string"},
                                        "anyOf": [{"minItems": n, "maxItems": n}
                                                  for n in (1, 3, 5)]}}}}}}})
    async def set_config(request: Request):
        check_query(request.query_params.multi_items())
        body = await _json_body(request)
        if not body:   # (it would commit an entry that changes nothing but the epoch)
            raise BadRequest(f"no setting given; settable are "
                             f"{[*CONFIG_KEYS, 'metadata_group']}")
        has_group = "metadata_group" in body    # null too: set_group refuses it
        group = body.pop("metadata_group", None)
        unknown = sorted(set(body) - set(CONFIG_KEYS))
        if unknown:  # named here: the state machine's message does not know metadata_group
            raise BadRequest(f"cannot set {unknown}: settable are "
                             f"{[*CONFIG_KEYS, 'metadata_group']}")
        for name, value in body.items():  # 1e400 parses as inf: no setting can hold it
            if isinstance(value, float) and not math.isfinite(value):
                raise BadRequest(f"{name}={value!r} is not a finite number")
        for name in ("r", "w", "hint_max_bytes", "anti_entropy_rate"):  # may come as 3.0
            if isinstance(body.get(name), float) and body[name].is_integer():
                body[name] = int(body[name])
        if body.get("hint_max_bytes", 0) > MAX_HINT_BYTES if isinstance(
                body.get("hint_max_bytes"), int) else False:
            raise BadRequest(f"hint_max_bytes must be at most {MAX_HINT_BYTES}")
        if isinstance(body.get("hint_window_s"), (int, float)) and \
                body["hint_window_s"] > MAX_HINT_WINDOW_S:
            raise BadRequest(f"hint_window_s must be at most {MAX_HINT_WINDOW_S}")
        check_grace_covers_window(node, body)
        entry = {"op": "set_config", **body}
        if has_group and body:
            # Two log entries: refuse bad settings before the group changes, so a refused
            # request changes nothing.
            try:
                validate(node.state, entry)
            except InvalidEntry as e:
                raise MembershipError(e.status, e.code, e.detail) from None
        epoch = None
        if has_group:
            epoch = await set_group(node, group)
            if not body:
                return JSONResponse({"epoch": epoch}, status_code=202)
        check_group_rule(node)
        epoch = await node.propose(entry)
        return JSONResponse({"epoch": epoch}, status_code=202)

    return router


def check_grace_covers_window(node, body: dict) -> None:
    """409 ``conflict`` naming both settings (each value is valid alone: it is the pair that
    conflicts, with each other or with the one in force) if the tombstone grace and the hint window a config request
    would put in force (its values over the ones in force) let a hint expire before the hint
    window ends, by this node's clock bound (``core.tombstones.grace_covers_window``).
    Checked here, before anything is proposed, rather than when the entry applies: the clock
    bound is a per-node flag, and log entries committed by earlier versions replay as they
    were. Values of the wrong type or sign are left to the state machine's own 400."""
    settings = getattr(node.state, "settings", None)
    if settings is None or not ({"tombstone_grace_s", "hint_window_s"} & set(body)):
        return
    grace = body.get("tombstone_grace_s", settings.tombstone_grace_s)
    window = body.get("hint_window_s", settings.hint_window_s)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (grace, window)) \
            or not grace > 0 or window < 0:
        return
    bound_ms = max(0, node.config.max_clock_offset_ms)
    if grace_covers_window(grace, window, bound_ms):
        return
    least = min_grace_s(window, bound_ms)
    raise MembershipError(
        409, "conflict",
        f"tombstone_grace_s={seconds_text(grace)} is too short for hint_window_s="
        f"{seconds_text(window)}: a hint lives 90% of the grace less the clock bound "
        f"({bound_ms} ms), so hints kept for a member back within the window would expire "
        f"undelivered; want tombstone_grace_s >= {seconds_text(least)} or a shorter "
        f"hint_window_s; nothing was changed",
        tombstone_grace_s=grace, hint_window_s=window, min_tombstone_grace_s=least)


def check_group_rule(node, *, leaving=None, new_group=None) -> None:
    """The contract's 503 ``no_majority`` (at once, rather than after the proposal's
    timeout, when this node's failure detector sees no live majority of the metadata group)
    and 409 ``conflict`` for a change that would leave the group without one
    (core/metadata_group.py)."""
    state = node.state
    if not state.bootstrapped:
        return  # the proposal says why
    live = {m for m in state.members if node.detector.is_up(m)}
    problem = change_problem(state, live, leaving=leaving, new_group=new_group)
    if problem is not None:
        raise MembershipError(*problem)


async def set_group(node, group) -> int:
    """An operator sets the metadata group explicitly: 1, 3 or 5 current members."""
    if not isinstance(group, list) or not all(isinstance(g, str) for g in group) \
            or len(set(group)) != len(group) or len(group) not in GROUP_SIZES:
        raise BadRequest("metadata_group must be a list of 1, 3 or 5 distinct member ids")
    state = node.require_ready()
    for g in group:
        if state.member(g) is None:
            raise MembershipError(404, "unknown_member", f"no member {g!r}")
    check_group_rule(node, new_group=group)
    readmit = {}
    voting = []   # members of the new group that answer as caught-up members that can vote
    for g in group:
        info = await node.group_keeper.token_of(g)
        if g in state.acceptors and g not in state.retired:
            # A current member votes from its own state, unless it lost its disk and is
            # being replaced (alive, still listed, no vote: it answers not caught up).
            if info is not None and info.get("caught_up"):
                voting.append(g)
            continue
        if info is None or not info.get("caught_up"):
            raise MembershipError(409, "conflict", f"{g} does not answer or has not caught up "
                                  "with the metadata log; it cannot enter the metadata group now")
        if isinstance(info.get("token"), str):
            readmit[g] = info["token"]
        voting.append(g)
    if len(voting) < majority(group):
        raise MembershipError(409, "conflict",
                              f"the metadata group {sorted(group)} would have {len(voting)} "
                              f"members that vote ({sorted(voting)}), fewer than a majority "
                              f"({majority(group)}): a member that lost its disk and is being "
                              "replaced, or one not caught up, does not vote")
    return await node.propose({"op": "set_group", "group": sorted(group),
                               "from_group": list(state.acceptors), "readmit": readmit,
                               "size": len(group), "reason": "set by an operator"})
