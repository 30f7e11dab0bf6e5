"""Clock skew through real processes (issue 16): one node's clock runs ahead under libfaketime.

The node under test is started with libfaketime preloaded (Debian's ``faketime`` package,
installed here with apt-get if missing; the tests skip with the reason if that fails). The
library is preloaded directly (what the ``faketime`` command does) so that the PID the
harness stops is the node itself, not a wrapper that forks it.
"""

import glob
import os
import shutil
import subprocess
import time

import httpx
import pytest

from dynamopy.client import DynamoError
from tests.integration.cluster import LocalCluster

pytestmark = pytest.mark.integration

KEYS = 24


def _libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
                   + glob.glob("/usr/lib/faketime/libfaketimeMT.so.1"))
    return found[0] if found else ""


@pytest.fixture(scope="module")
def libfaketime() -> str:
    """The path of libfaketime, installing Debian's ``faketime`` if it is missing."""
    lib = _libfaketime()
    if not lib and shutil.which("apt-get"):
        for _ in range(10):  # another process may hold the dpkg lock for a while
            r = subprocess.run(["apt-get", "install", "-y", "faketime"], capture_output=True,
                               timeout=300, env={**os.environ,
                                                 "DEBIAN_FRONTEND": "noninteractive"})
            lib = _libfaketime()
            if lib or b"lock" not in r.stderr:
                break
            time.sleep(3)
    if not lib:
        pytest.skip("libfaketime is not installed and `apt-get install -y faketime` failed "
                    "(needs root and the Debian package registry)")
    return lib


def _skewed(lib: str, offset: str) -> dict:
    return {"LD_PRELOAD": lib, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@pytest.fixture
def five_nodes(tmp_path):
    made = []

    def start(n1_env: dict, n1_extra: list) -> LocalCluster:
        c = LocalCluster(str(tmp_path / f"c{len(made)}"), 5)
        made.append(c)
        os.makedirs(c.root, exist_ok=True)
        c.start_node(0, n1_extra, env=n1_env)
        for i in range(1, 5):
            c.start_node(i)
        c.wait_ready(range(5), timeout_s=60)
        return c

    yield start
    for c in made:
        c.stop()


def _keys_outside(c: LocalCluster, count: int) -> list[tuple[str, int]]:
    """Keys n1 does not replicate, each with a second coordinator that does not either."""
    out = []
    with c.client(1) as cl:
        for i in range(2000):
            key = f"skew-{i}"
            pref = cl.preference_list(key)
            if "n1" in pref:
                continue
            other = next(j for j in range(1, 5) if c.node_id(j) not in pref)
            out.append((key, other))
            if len(out) == count:
                return out
    raise AssertionError("not enough keys")


def _later_write_wins(c: LocalCluster, keys) -> list[str]:
    """The issue's scenario: PUT first through n1 (clock ahead), then second through another
    non-replica; a read at R=3 must return second. Session tokens are off (session=False):
    this is the replicas' and coordinators' job alone."""
    lost = []
    clients = {i: c.client(i, session=False) for i in range(5)}
    try:
        for key, other in keys:
            clients[0].put(key, b"first")
            second = clients[other].put(key, b"second")
            item = clients[(other % 4) + 1].get(key, r=3)
            if item.value != b"second":
                lost.append(f"{key}: read {item.value!r} v{item.version}, second was "
                            f"v{second['version']}")
    finally:
        for cl in clients.values():
            cl.close()
    return lost


def test_a_node_200ms_ahead_loses_no_later_write(libfaketime, five_nodes):
    """Before re-stamping, 33 of 60 keys returned "first" for good."""
    c = five_nodes(_skewed(libfaketime, "+0.2s"), [])
    lost = _later_write_wins(c, _keys_outside(c, KEYS))
    assert lost == []
    with c.client(2) as cl:
        info = cl.cluster()
    # n1's offset is measured (about +200 ms) and below the bound: nobody is fenced.
    assert info["clock"]["peer_offsets_ms"]["n1"] > 50
    assert info["clock"]["skewed"] is False


def test_a_node_an_hour_ahead_loses_no_later_write_then_is_fenced(libfaketime, five_nodes):
    """+1 h with n1's own check off (so it stamps versions an hour ahead): no later write
    lost. Then n1 restarted +1 h with the check on answers 503 clock_skew and is not ready;
    restarted with a correct clock it serves writes again."""
    c = five_nodes(_skewed(libfaketime, "+1h"), ["--max-clock-offset-ms", "0"])
    lost = _later_write_wins(c, _keys_outside(c, KEYS))
    assert lost == []

    c.kill(0, 15)
    c.start_node(0, env=_skewed(libfaketime, "+1h"))

    def fenced() -> bool:
        r = httpx.put(c.url(0) + "/kv/fenced", content=b"x", timeout=5.0)
        # Not even before its first measurement does it stamp a write (503 not_ready then).
        assert r.status_code == 503, (r.status_code, r.text)
        return r.json()["error"] == "clock_skew"
    c.wait_until(fenced, timeout_s=40, what="n1 answering 503 clock_skew")
    body = httpx.put(c.url(0) + "/kv/fenced", content=b"x", timeout=5.0).json()
    assert body["offset_ms"] > 3_000_000 and body["max_clock_offset_ms"] == 500
    ready = httpx.get(c.url(0) + "/ready", timeout=5.0)
    assert ready.status_code == 503 and ready.json()["clock"]["skewed"] is True
    metrics = httpx.get(c.url(0) + "/metrics", timeout=5.0).text
    assert "dynamopy_clock_skewed 1.0" in metrics
    with c.client(1) as cl:   # the others keep serving, and see n1's offset
        assert cl.put("fenced", b"y")["acks"] >= 2
        assert cl.cluster()["clock"]["peer_offsets_ms"]["n1"] > 3_000_000

    c.kill(0, 15)
    c.start_node(0)
    c.wait_ready([0], timeout_s=60)
    with c.client(0) as cl:
        assert cl.put("fenced", b"z")["acks"] >= 2
        assert cl.get("fenced", r=3).value == b"z"
