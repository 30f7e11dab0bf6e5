"""The FastAPI data routes (served when the ASGI fast path is not in front) apply the same
rules as the fast path: they share the handlers and the raw-path key decoding."""

import asyncio
import contextlib
import json
import types

import pytest

from dynamopy.api.app import create_app
from dynamopy.node.metrics import Metrics


def _stub_node():
    """Enough of a node for requests that must be refused before any replica is asked (it
    has no coordinator: reaching one fails the test)."""
    settings = types.SimpleNamespace(n=3, r=2, w=2)
    state = types.SimpleNamespace(settings=settings, epoch=1, defaults=lambda: (2, 2))

    async def serving_state():
        return state

    return types.SimpleNamespace(metrics=Metrics(),
                                 require_ready=lambda: state, serving_state=serving_state,
                                 defaults_change=types.SimpleNamespace(
                                     track=lambda epoch: contextlib.nullcontext()),
                                 config=types.SimpleNamespace(max_value_bytes=1024, n=3, host="127.0.0.1"),
                                 state=types.SimpleNamespace(bootstrapped=False))


def _asgi(app, method: str, raw_path: bytes, query: bytes = b"", body: bytes = b"",
          headers: tuple = ()) -> tuple[int, bytes]:
    """One ASGI request with the raw path bytes a client sent (decoded ``path`` as uvicorn
    makes it: bad UTF-8 replaced by U+FFFD); returns the status and the body bytes."""
    from urllib.parse import unquote
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": unquote(raw_path.decode()),
             "raw_path": raw_path, "query_string": query, "root_path": "",
             "headers": [(b"host", b"test"), *headers], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent
                                       if m["type"] == "http.response.body")


def _call(app, method: str, raw_path: bytes, query: bytes = b"") -> tuple[int, dict]:
    status, body = _asgi(app, method, raw_path, query, body=b"v")
    return status, json.loads(body)


def test_fastapi_kv_routes_refuse_non_utf8_keys_and_repeated_parameters():
    app = create_app(_stub_node())
    for method in ("PUT", "GET", "DELETE"):
        status, body = _call(app, method, b"/kv/%ff%fe")
        assert (status, body["error"]) == (400, "bad_request") and "UTF-8" in body["detail"]
        status, body = _call(app, method, b"/kv/ok", b"w=3&w=1&r=1&r=2")
        assert (status, body["error"]) == (400, "bad_request"), body
        assert "more than once" in body["detail"]


def _proposing_node():
    """A stub node whose proposals are recorded (each answers epoch 9)."""
    node, proposed = _stub_node(), []

    async def propose(entry):
        proposed.append(entry)
        return 9

    node.propose = propose
    return node, proposed


def test_cluster_config_takes_the_anti_entropy_and_tombstone_settings():
    """POST /cluster/config proposes the new cluster settings (a rate sent as 500.0 is the
    integer 500, as r/w are); the state machine validates them (test_membership)."""
    node, proposed = _proposing_node()
    app = create_app(node)
    payload = json.dumps({"anti_entropy_interval_s": 30, "anti_entropy_rate": 500.0,
                          "tombstone_grace_s": 86400}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/cluster/config",
             "raw_path": b"/cluster/config", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"test"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(payload)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    body = json.loads(b"".join(m.get("body", b"") for m in sent
                               if m["type"] == "http.response.body"))
    assert (sent[0]["status"], body) == (202, {"epoch": 9}), body
    assert proposed == [{"op": "set_config", "anti_entropy_interval_s": 30,
                         "anti_entropy_rate": 500, "tombstone_grace_s": 86400}]
    assert type(proposed[0]["anti_entropy_rate"]) is int


def _post_config(app, payload) -> tuple[int, dict]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, body = _asgi(app, "POST", b"/cluster/config", body=raw,
                         headers=((b"content-type", b"application/json"),
                                  (b"content-length", str(len(raw)).encode())))
    return status, json.loads(body)


def test_cluster_config_names_every_settable_key_when_refusing_one():
    """{"n": 4} is a 400 naming what can be set, metadata_group included (the API takes it,
    the state machine never sees it); nothing is proposed."""
    node, proposed = _proposing_node()
    status, body = _post_config(create_app(node), {"n": 4, "w": 2})
    assert (status, body["error"]) == (400, "bad_request"), body
    assert body["detail"].startswith("cannot set ['n']: settable are ['r', 'w', "), body
    assert "'metadata_group_size', 'metadata_group']" in body["detail"], body
    assert proposed == []


def test_cluster_config_refuses_a_grace_too_short_for_the_hint_window():
    """A grace whose hints expire (90% of it less this node's --max-clock-offset-ms) before
    the hint window ends is a 409 conflict naming both settings (each value is valid alone),
    whether the request sets one of them (against the value in force) or both; nothing is
    proposed, the group is not touched. A huge grace is no 500 (schemathesis found one)."""
    from dynamopy.core.membership import Settings

    node = _stub_node()
    node.state = types.SimpleNamespace(bootstrapped=False,   # (no group rule to check)
                                       settings=Settings(hint_window_s=3600.0,
                                                         tombstone_grace_s=864000.0))
    node.config.max_clock_offset_ms = 500
    proposed = []

    async def propose(entry):
        proposed.append(entry)
        return 9

    def no_group_change():
        raise AssertionError("a refused request must not reach the group change")

    node.propose, node.require_ready = propose, no_group_change
    app = create_app(node)
    for payload, grace, window in (({"tombstone_grace_s": 60}, 60, 3600.0),
                                   ({"hint_window_s": 900000}, 864000.0, 900000),
                                   ({"tombstone_grace_s": 3600, "hint_window_s": 3600}, 3600,
                                    3600),
                                   ({"tombstone_grace_s": 100, "metadata_group": ["a"]}, 100,
                                    3600.0)):
        status, body = _post_config(app, payload)
        assert (status, body["error"]) == (409, "conflict"), (payload, body)
        assert "tombstone_grace_s" in body["detail"] and "hint_window_s" in body["detail"]
        assert (body["tombstone_grace_s"], body["hint_window_s"]) == (grace, window), body
        assert body["min_tombstone_grace_s"] == pytest.approx((window + 0.5) / 0.9, abs=0.002)
    assert proposed == []
    status, body = _post_config(app, {"tombstone_grace_s": 4001, "hint_window_s": 3600})
    assert (status, body) == (202, {"epoch": 9}), body
    assert proposed == [{"op": "set_config", "tombstone_grace_s": 4001, "hint_window_s": 3600}]
    status, body = _post_config(app, {"tombstone_grace_s": 4.4746555093139315e+307,
                                      "hint_window_s": 84678503.36})
    assert (status, body) == (202, {"epoch": 9}), body


def test_cluster_config_refuses_numbers_that_are_not_finite():
    """Found by a user's bad input (session 13): `{"anti_entropy_interval_s": NaN}` was
    committed to the metadata log, and from then on every node's GET /cluster (and
    /cluster/log) answered 500, since NaN is not JSON; `Infinity` for the grace likewise,
    and NaN for the hint window was a 500 with a traceback. NaN and Infinity are not JSON
    (RFC 8259), and a number too large for a float (1e400) is not a setting either: each is
    a 400 and nothing is proposed."""
    node, proposed = _proposing_node()
    app = create_app(node)
    for raw in (b'{"anti_entropy_interval_s": NaN}', b'{"tombstone_grace_s": Infinity}',
                b'{"hint_window_s": NaN}', b'{"anti_entropy_interval_s": -Infinity}',
                b'{"anti_entropy_interval_s": 1e400}', b'{"tombstone_grace_s": 1e999}',
                b'{"r": NaN}'):
        status, body = _post_config(app, raw)
        assert (status, body["error"]) == (400, "bad_request"), (raw, body)
        assert "finite" in body["detail"] or "not valid JSON" in body["detail"], (raw, body)
    assert proposed == []


def test_a_setting_named_twice_in_the_body_is_a_400_not_the_last_one_taken():
    """Found in session 15's operator walk-through: POST /cluster/config with
    `{"r": 1, "r": 2}` answered 202 and committed r=2 (Python's decoder keeps the last of
    a repeated name; another JSON library may keep the first). A repeated query parameter
    is refused on every route so that a typo never silently weakens a quorum, and
    `dynamopy config set r=1 r=2` is refused before sending: the body refuses it too,
    nested objects included, and nothing is proposed."""
    node, proposed = _proposing_node()
    app = create_app(node)
    for raw in (b'{"r": 1, "r": 2}', b'{"w": 2, "tombstone_grace_s": 86400, "w": 1}',
                b'{"metadata_group": ["n1"], "x": {"a": 1, "a": 2}}'):
        status, body = _post_config(app, raw)
        assert (status, body["error"]) == (400, "bad_request"), (raw, body)
        assert "more than once" in body["detail"], (raw, body)
    assert proposed == []
    raw = (b'{"id": "n4", "id": "n5", "url": "http://127.0.0.1:9004", '
           b'"peer": "127.0.0.1:10004"}')
    status, body = _asgi(app, "POST", b"/cluster/members", body=raw,
                         headers=((b"content-type", b"application/json"),
                                  (b"content-length", str(len(raw)).encode())))
    assert status == 400 and b"more than once" in body, body


def test_deeply_nested_json_is_a_400_not_a_500():
    """Found by a user's bad input (session 13): a body of 100,000 nested brackets to
    POST /cluster/config or /cluster/members was a 500 with a traceback (RecursionError
    from the JSON decoder); it is a body that is not valid JSON for these routes."""
    node, proposed = _proposing_node()
    app = create_app(node)
    for raw in (b"[" * 100000 + b"]" * 100000,
                b'{"r": ' + b"[" * 100000 + b"]" * 100000 + b"}"):
        status, body = _post_config(app, raw)
        assert (status, body["error"]) == (400, "bad_request"), body
        assert "JSON" in body["detail"], body
    assert proposed == []


def test_a_config_request_that_sets_nothing_is_a_400():
    """Found by a user's bad input (session 13): POST /cluster/config with `{}` answered 202
    and committed an entry that changed nothing but the epoch (`dynamopy config set` with
    no KEY=VALUE is refused by its parser)."""
    node, proposed = _proposing_node()
    status, body = _post_config(create_app(node), {})
    assert (status, body["error"]) == (400, "bad_request"), body
    assert "settable are" in body["detail"], body
    assert proposed == []


def _get(app, path: str) -> tuple[int, bytes]:
    return _asgi(app, "GET", path.encode())


def test_a_log_that_holds_a_setting_that_is_not_finite_is_still_served():
    """Found by a user's bad input (session 13): a cluster that committed
    {"anti_entropy_interval_s": NaN} before POST /cluster/config refused it answers GET
    /cluster/log with a 500 for good (NaN is not JSON: the entry stays in the log). Such a
    number is shown as the string it was ("nan", "inf"), the rest as it is."""
    node = _stub_node()
    node.state.epoch = 3
    node.log_entries = lambda since: [
        {"epoch": 2, "op": "set_config", "anti_entropy_interval_s": float("nan")},
        {"epoch": 3, "op": "set_config", "tombstone_grace_s": float("inf"), "r": 2,
         "nested": [{"x": float("-inf")}, 1.5]}]
    status, raw = _get(create_app(node), "/cluster/log")
    assert status == 200, raw
    assert json.loads(raw)["entries"] == [
        {"epoch": 2, "op": "set_config", "anti_entropy_interval_s": "nan"},
        {"epoch": 3, "op": "set_config", "tombstone_grace_s": "inf", "r": 2,
         "nested": [{"x": "-inf"}, 1.5]}]


@pytest.mark.parametrize("text", ["+2", " 2", "2 ", "0_2", "\u0662", "2.0", ""])
def test_a_quorum_parameter_is_plain_ascii_digits(text):
    """Found by a user's bad input (session 13): ``?r=+2`` and ``?r=1_0`` were taken as 2 and
    10, as Python's int() reads them (so were " 2" and an Arabic-Indic two). A quorum is
    ASCII digits or a 400 naming what was sent."""
    from dynamopy.api.data import parse_params
    from dynamopy.node.errors import BadRequest
    with pytest.raises(BadRequest, match="is not an integer"):
        parse_params([("r", text)], {}, "r", 2, 3)
    assert parse_params([("r", "3")], {}, "r", 2, 3) == (3, False)
    assert parse_params([("r", "03")], {}, "r", 2, 3) == (3, False)
    for big in ("4", "99999", "9" * 5000):
        with pytest.raises(BadRequest, match=r"is outside 1\.\.N=3"):
            parse_params([("r", big)], {}, "r", 2, 3)


@pytest.mark.parametrize("method,path,takes", [
    ("GET", b"/cluster", None), ("GET", b"/cluster/preference-list/k", None),
    ("GET", b"/cluster/log", b"since=0"), ("GET", b"/node", None), ("GET", b"/node/kv/k", None),
    ("POST", b"/cluster/members", None), ("POST", b"/cluster/members/n2/leave", None),
    ("DELETE", b"/cluster/members/n2", b"force=true"), ("POST", b"/cluster/config", None),
])
def test_cluster_and_node_routes_refuse_unknown_and_repeated_parameters(method, path, takes):
    """Found by a user (session 13): `DELETE /cluster/members/n2?forse=true` (a typo) was
    answered as if no parameter had been given; the data routes answer 400 for an unknown
    or repeated parameter (API.md), and so do the cluster and node routes, in the same JSON
    shape, before anything else is looked at (the stub node could answer nothing else)."""
    app = create_app(_stub_node())
    queries = [b"forse=true", b"x=1"]
    if takes:
        name = takes.split(b"=")[0]
        queries += [takes + b"&" + takes, takes + b"&forse=1"]
    for query in queries:
        status, body = _asgi(app, method, path, query, body=b"{}")
        body = json.loads(body)
        assert (status, body["error"]) == (400, "bad_request"), (query, status, body)
        word = "more than once" if query.count(b"=") == 2 and b"forse" not in query \
            else "unknown parameter"
        assert word in body["detail"], (query, body)
        if takes and word == "unknown parameter":
            assert repr(name.decode()) in body["detail"], body   # names what it takes
