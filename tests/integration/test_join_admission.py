"""Issue 15 item 5: a join is admitted only for a node that is there, and a join whose joiner
never starts streaming is abandoned after --join-timeout-s instead of blocking every other
ring change."""

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.integration.cluster import allocate_ports

pytestmark = pytest.mark.integration


class LoneNode:
    """A `dynamopy serve` of its own (no --seeds/--join): it answers the peer handshake with
    ``secret`` as ``node_id`` but follows no other cluster's log."""

    def __init__(self, root, node_id: str, secret: str):
        self.port = allocate_ports(1)
        self.node_id = node_id
        self.log = open(os.path.join(root, f"{node_id}.log"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dynamopy", "serve", "--node-id", node_id,
             "--port", str(self.port), "--peer-port", str(self.port + 1000),
             "--data-dir", os.path.join(root, node_id)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "DYNAMOPY_CLUSTER_SECRET": secret})
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, "the lone node exited"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the lone node did not become ready"
            time.sleep(0.1)

    def identity(self) -> dict:
        return {"id": self.node_id, "url": f"http://127.0.0.1:{self.port}",
                "peer": f"127.0.0.1:{self.port + 1000}"}

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)
        self.log.close()


@pytest.fixture
def lone_nodes(tmp_path):
    made = []

    def make(node_id: str, secret: str) -> LoneNode:
        made.append(LoneNode(str(tmp_path), node_id, secret))
        return made[-1]

    yield make
    for n in made:
        n.kill()


def test_an_unreachable_or_unauthenticated_joiner_is_refused(make_cluster, lone_nodes):
    c = make_cluster(3)
    http = httpx.Client(base_url=c.url(0), timeout=15)
    before = http.get("/cluster/log").json()["entries"]
    free = allocate_ports(1)
    resp = http.post("/cluster/members", json={"id": "n9", "url": f"http://127.0.0.1:{free}",
                                               "peer": f"127.0.0.1:{free + 1000}"})
    assert resp.status_code == 409 and "does not answer" in resp.json()["detail"], resp.text
    assert f"127.0.0.1:{free + 1000}" in resp.json()["detail"]
    resp = http.post("/cluster/members", json={"id": "n6", "url": "http://x",
                                               "peer": ".bad..name:54"})
    assert resp.status_code == 409 and "does not answer" in resp.json()["detail"], resp.text
    impostor = lone_nodes("n8", "another-secret")
    resp = http.post("/cluster/members", json=impostor.identity())
    assert resp.status_code == 400 and "cluster-secret" in resp.json()["detail"], resp.text
    # n2's address, given as a new id: the node there proves it is n2
    resp = http.post("/cluster/members", json={"id": "n7", "url": c.url(1),
                                               "peer": f"127.0.0.1:{c.base + 1001}"})
    assert resp.status_code == 400 and "'n2', not 'n7'" in resp.json()["detail"], resp.text
    assert http.get("/cluster/log").json()["entries"] == before
    assert http.get("/cluster").json()["change"] is None


def test_a_join_that_never_starts_streaming_is_abandoned(make_cluster, lone_nodes):
    c = make_cluster(3, extra=["--join-timeout-s", "2"])
    http = httpx.Client(base_url=c.url(1), timeout=15)
    joiner = lone_nodes("n9", c.secret)   # answers the handshake, then never streams
    resp = http.post("/cluster/members", json=joiner.identity())
    assert resp.status_code == 202, resp.text
    joiner.kill()
    c.wait_until(lambda: http.get("/cluster").json()["change"] is None, timeout_s=30,
                 what="the join abandoned")
    entries = http.get("/cluster/log").json()["entries"]
    last = entries[-1]
    assert last["op"] == "remove" and last["id"] == "n9", entries
    assert "join abandoned" in last["reason"] and "--join-timeout-s" in last["reason"]
    assert "n9" not in [m["id"] for m in http.get("/cluster").json()["members"]]
    # Nothing is blocked any more: a real node joins and finishes.
    i = c.add_node(extra=["--join-timeout-s", "2"])
    c.wait_until(lambda: any(m["id"] == c.node_id(i) and m["state"] == "normal"
                             for m in c.cluster_info(0)["members"]),
                 timeout_s=60, what="the next join finished")
