"""Session tokens (issue 16): ``X-Dynamopy-After`` gives read-your-writes across nodes."""

import httpx
import pytest

from dynamopy.client import DynamoError, Session
from dynamopy.core.versions import compose

pytestmark = pytest.mark.integration


def _key_on(c, writer: str, reader: str) -> str:
    """A key both nodes replicate: the write is acked by the writer's own copy (W=1) and the
    read answered by the reader's own copy (R=1), the case most likely to read stale."""
    with c.client(0) as cl:
        for i in range(500):
            key = f"session-{i}"
            pref = cl.preference_list(key)
            if pref[0] == writer and reader in pref:
                return key
    raise AssertionError("no such key")


def test_read_your_writes_across_nodes_at_w1_r1(make_cluster):
    """200 times: write through n1 at W=1, read through n2 at R=1 right after, sharing one
    session. Every read returns that write, or fails clearly with 503 stale_session; never
    an older value."""
    c = make_cluster(4, n=3, r=1, w=1)
    key = _key_on(c, "n1", "n2")
    session = Session()
    stale_errors = 0
    with c.client(0, session=session) as a, c.client(1, session=session) as b:
        for i in range(200):
            value = f"v{i}".encode()
            put = a.put(key, value, w=1)
            try:
                item = b.get(key, r=1)
            except DynamoError as e:
                assert e.status == 503 and e.code == "stale_session", e
                assert e.body["after"] == put["version"]
                stale_errors += 1
                continue
            assert (item.value, item.version) == (value, put["version"]), i
    print(f"stale_session errors: {stale_errors} of 200")
    assert stale_errors < 200


def test_session_header_contract(shared_cluster):
    c = shared_cluster
    url = c.url(0)
    put = httpx.put(url + "/kv/sess-contract", content=b"a", timeout=5.0).json()
    # A write is stamped above the token; a read answers only with a version that new.
    token = put["version"] + 1000
    after = httpx.put(url + "/kv/sess-contract", content=b"b", timeout=5.0,
                      headers={"X-Dynamopy-After": str(token)}).json()
    assert after["version"] > token
    r = httpx.get(url + "/kv/sess-contract", timeout=5.0,
                  headers={"X-Dynamopy-After": str(after["version"] + 1)})
    assert r.status_code == 503 and r.json()["error"] == "stale_session"
    assert r.json()["after"] == after["version"] + 1
    r = httpx.get(url + "/kv/sess-contract", timeout=5.0,
                  headers={"X-Dynamopy-After": str(after["version"])})
    assert r.status_code == 200 and r.content == b"b"
    # Bad tokens are 400s; a token far in the future would drag the clock: refused too.
    for bad in ("abc", "-1", "1.5", str(1 << 63)):
        r = httpx.put(url + "/kv/sess-contract", content=b"c", timeout=5.0,
                      headers={"X-Dynamopy-After": bad})
        assert r.status_code == 400 and r.json()["error"] == "bad_request", bad
    future = compose(int(after["version"] >> 22) + 3_600_000, 0, 1)
    r = httpx.put(url + "/kv/sess-contract", content=b"c", timeout=5.0,
                  headers={"X-Dynamopy-After": str(future)})
    assert r.status_code == 400 and "ahead of this node's clock" in r.json()["detail"]
    assert httpx.get(url + "/kv/sess-contract", timeout=5.0).content == b"b"


def test_cli_session_file_carries_the_token(shared_cluster, tmp_path):
    """`--session FILE` remembers the version per key and sends it: a GET for a version the
    cluster does not have yet answers stale_session instead of an older value."""
    import json
    import subprocess
    import sys

    session = tmp_path / "session.json"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "dynamopy", *args, "--url",
                               shared_cluster.url(2), "--session", str(session)],
                              capture_output=True, timeout=60)

    out = cli("put", "sess-cli", "one")
    assert out.returncode == 0, out.stderr
    version = json.loads(out.stdout)["version"]
    assert json.loads(session.read_text()) == {"sess-cli": version}
    assert cli("get", "sess-cli").stdout == b"one"
    session.write_text(json.dumps({"sess-cli": version + 1}))   # a version not written yet
    stale = cli("get", "sess-cli")
    assert stale.returncode == 1 and b"503 stale_session" in stale.stderr
