"""Bad input gets the contract's status and JSON error and changes nothing; the OpenAPI
document holds against generated input (schemathesis)."""

import os
import subprocess
import sys

import httpx
import pytest

from tests.integration.conftest import API_TOKEN

pytestmark = pytest.mark.integration


def _json_error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["error"] == code and body["detail"]
    return body


@pytest.fixture(scope="module")
def url(shared_cluster):
    return shared_cluster.url(0)


def test_bad_inputs_answer_their_error_and_change_nothing(url, shared_cluster):
    http = httpx.Client(base_url=url, timeout=5)
    assert http.put("/kv/keep", content=b"original").status_code == 200
    before = http.get("/kv/keep", params={"r": 3})
    cases = [
        ("PUT", "/kv/keep?w=0", 400, "bad_request"),
        ("PUT", "/kv/keep?w=4", 400, "bad_request"),
        ("PUT", "/kv/keep?w=two", 400, "bad_request"),
        ("PUT", "/kv/keep?strict=maybe", 400, "bad_request"),
        ("PUT", "/kv/keep?W=3", 400, "bad_request"),
        ("PUT", "/kv/keep?consistency=linearizable", 400, "bad_request"),
        ("DELETE", "/kv/keep?w=9", 400, "bad_request"),
        ("GET", "/kv/keep?r=0", 400, "bad_request"),
        ("PUT", "/kv/", 400, "bad_request"),
        ("PUT", "/kv/" + "k" * 1025, 400, "bad_request"),
        ("DELETE", "/kv/", 400, "bad_request"),
    ]
    for method, path, status, code in cases:
        _json_error(http.request(method, path, content=b"changed"), status, code)
    _json_error(http.put("/kv/keep", content=b"x" * (1024 * 1024 + 1)), 413, "too_large")
    _json_error(http.put("/kv/keep", content=b"x", headers={"If-Match": '"1"'}), 400, "bad_request")
    _json_error(http.get("/kv/never-written"), 404, "not_found")
    _json_error(http.get("/no/such/route"), 404, "not_found")
    _json_error(http.get("/cluster/log", params={"since": "x"}), 400, "bad_request")
    after = http.get("/kv/keep", params={"r": 3})
    assert after.content == b"original" and after.headers["etag"] == before.headers["etag"]
    for i in range(3):
        assert shared_cluster.local_record(i, "keep")["version"] == int(before.headers["etag"].strip('"'))


def test_a_value_at_the_limit_is_accepted(url):
    http = httpx.Client(base_url=url, timeout=10)
    body = bytes(range(256)) * 4096  # exactly 1 MiB
    assert http.put("/kv/big", content=body).status_code == 200
    assert http.get("/kv/big").content == body
    assert http.put("/kv/empty", content=b"").status_code == 200
    assert http.get("/kv/empty").content == b""


def test_api_token_guards_data_and_cluster_routes(token_node):
    http = httpx.Client(base_url=token_node.url(0), timeout=5)
    for method, path in [("PUT", "/kv/a"), ("GET", "/kv/a"), ("DELETE", "/kv/a"),
                         ("GET", "/cluster"), ("GET", "/node"), ("GET", "/cluster/log")]:
        _json_error(http.request(method, path, content=b"v"), 401, "unauthorized")
        bad = http.request(method, path, headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401
    assert http.get("/health").status_code == 200
    assert http.get("/ready").status_code == 200
    ok = {"Authorization": f"Bearer {API_TOKEN}"}
    assert http.put("/kv/a", content=b"v", headers=ok).status_code == 200
    assert http.get("/kv/a", headers=ok).content == b"v"
    assert http.get("/node/kv/a").status_code == 401
    assert http.get("/node/kv/a", headers=ok).json()["value_bytes"] == 1


def test_wrong_cluster_secret_is_refused_by_peers(make_cluster, tmp_path):
    """A node with another secret cannot act as a replica: writes through it find no quorum."""
    c = make_cluster(3)
    with c.client(0) as cl:
        original = cl.put("guarded", "v", w=3)["version"]
    # replace n3 by an impostor with the right address but the wrong secret
    c.kill(2)
    c.secret = "wrong-secret"
    c.start_node(2)
    c.wait_until(lambda: httpx.get(c.url(2) + "/health", timeout=1).status_code == 200,
                 what="impostor up")
    with c.client(0, timeout_s=10) as cl:
        from dynamopy.client import DynamoError
        with pytest.raises(DynamoError) as e:
            cl.put("guarded", "evil", w=3)
        assert e.value.status == 503
    assert c.local_record(2, "guarded")["version"] == original  # the impostor got nothing


def test_openapi_holds_against_generated_input(make_cluster):
    """Its own cluster: the fuzzer also drives membership changes (fake joins, config)."""
    c = make_cluster(3)
    st = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    hooks = os.path.join(os.path.dirname(__file__), "schemathesis_hooks.py")  # peers on 127.0.0.1
    out = subprocess.run(
        [st, "run", f"{c.url(0)}/openapi.json", "--max-examples", "40", "--seed", "1",
         "--checks", "all"],
        capture_output=True, text=True, timeout=240,
        env={**os.environ, "SCHEMATHESIS_HOOKS": hooks})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
