"""Issue 15 item 5: a join is admitted only for a node that is there, and a join whose joiner
never starts streaming is abandoned after --join-timeout-s instead of blocking every other
ring change."""

import signal
import subprocess
import sys

import httpx
import pytest

from dynamopy.launch import Nodes
from tests.integration.cluster import allocate_ports

pytestmark = pytest.mark.integration


class LoneNode:
    """A `dynamopy serve` of its own (no --seeds/--join), started with the shared launcher: it
    answers the peer handshake with ``secret`` as ``node_id`` but follows no other cluster's
    log."""

    def __init__(self, root, node_id: str, secret: str):
        self.port = allocate_ports(1)
        self.node_id = node_id
        k = int(node_id[1:]) - 1   # the launcher names node k "n{k+1}" and puts it on base + k
        self.launch = Nodes(root, self.port - k, env={"DYNAMOPY_CLUSTER_SECRET": secret})
        self.launch.start(k)
        self.launch.wait_ready([k], timeout_s=30)

    def identity(self) -> dict:
        return {"id": self.node_id, "url": f"http://127.0.0.1:{self.port}",
                "peer": f"127.0.0.1:{self.port + 1000}"}

    def kill(self) -> None:
        for k in self.launch.procs:
            self.launch.signal(k, signal.SIGKILL)


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
    # raise_for_status: a 503 (not ready) is "not yet", not a KeyError on its error body
    c.wait_until(lambda: http.get("/cluster").raise_for_status().json()["change"] is None,
                 timeout_s=30,
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


def _exits(c, i: int, timeout_s: float = 30.0) -> tuple[int, str]:
    """Wait for node ``i`` to exit: (its exit code, its log)."""
    rc = c.procs[i].wait(timeout=timeout_s)
    with open(c.launch.log_path(i)) as f:
        return rc, f.read()


def test_a_join_refused_for_good_exits_with_the_reason(make_cluster):
    """Found by a user (session 13): a node started with --join whose join the cluster
    refused for good (a wrong cluster secret or API token, its id a live member at another
    address) stayed up and never ready, logging the refusal or retrying it for ever. It
    exits 1 with one line saying why, as etcd does; a join refused for now is retried."""
    token = "join-token"
    c = make_cluster(1, n=1, r=1, w=1, extra=["--api-token", token])
    cases = [("a wrong cluster secret", {"secret": "wrong-secret"}, [],
              "failed the cluster-secret handshake"),
             ("a wrong API token", {}, ["--api-token", "wrong-token"],
              "answered 401: this node's --api-token is not the one that member expects: "
              "start this node with the cluster's --api-token"),
             ("n1's id at another address", {}, ["--node-id", "n1"],
              "n1 is already a member at " + c.url(0))]
    for what, attrs, extra, words in cases:
        c.secret = attrs.get("secret", "test-secret")
        i = c.add_node(extra=extra)
        rc, log = _exits(c, i)
        lines = [line for line in log.splitlines() if " ERROR " in line]
        assert rc == 1, (what, rc, log[-3000:])
        assert len(lines) == 1 and "cannot become a member" in lines[0] \
            and words in lines[0], (what, log[-3000:])
    c.secret = "test-secret"
    with c.client(0, token=token) as cl:
        assert [m["id"] for m in cl.cluster()["members"]] == ["n1"]
    # Refused for now: nothing answers at --join yet. The node keeps trying, up and unready.
    free = allocate_ports(1)
    i = max(c.procs) + 1
    c.launch.start(i, ["--join", f"http://127.0.0.1:{free}", "--api-token", token],
                   {"DYNAMOPY_CLUSTER_SECRET": c.secret})
    with pytest.raises(subprocess.TimeoutExpired):
        c.procs[i].wait(timeout=3)
    resp = httpx.get(c.url(i) + "/ready", timeout=5)
    assert resp.status_code == 503, resp.text


def test_a_one_node_cluster_restarted_with_join_of_another_cluster_exits_with_the_reason(
        make_cluster, lone_nodes):
    """Found by an operator (session 15): a node whose data directory holds a one-node
    cluster of its own (started once without --seeds or --join), restarted with --join of a
    member of another cluster, ignored --join silently and served its own cluster, ready.
    It exits 1 with one line saying what the directory holds and how to add the node; its
    data stays (restarted without --join it serves it again)."""
    c = make_cluster(1, n=1, r=1, w=1)
    lone = lone_nodes("n8", c.secret)
    k = 7
    httpx.put(f"{lone.launch.url(k)}/kv/kept", content=b"mine", timeout=10).raise_for_status()
    lone.launch.signal(k, signal.SIGTERM)
    lone.launch.procs[k].wait(timeout=30)
    lone.launch.start(k, ["--join", c.url(0)])
    rc = lone.launch.procs[k].wait(timeout=40)
    with open(lone.launch.log_path(k)) as f:
        log = f.read()
    lines = [line for line in log.splitlines() if " ERROR " in line]
    assert rc == 1, (rc, log[-3000:])
    assert len(lines) == 1 and "--join" in lines[0] and "one-node cluster" in lines[0] \
        and c.url(0) in lines[0], log[-3000:]
    with c.client(0) as cl:
        assert [m["id"] for m in cl.cluster()["members"]] == ["n1"]
    lone.launch.start(k)
    lone.launch.wait_ready([k], timeout_s=30)
    assert httpx.get(f"{lone.launch.url(k)}/kv/kept", timeout=10).content == b"mine"
    # What the line says to do: add it there by hand. It joins with the data it holds.
    advice = lines[0].split("(`", 1)[1].split("`)", 1)[0].split()
    assert advice[:2] == ["dynamopy", "members"], lines[0]
    done = subprocess.run([sys.executable, "-m", *advice], text=True, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    c.wait_until(lambda: any(m["id"] == "n8" and m["state"] == "normal"
                             for m in c.cluster_info(0)["members"])
                 and c.cluster_info(0)["change"] is None, timeout_s=60, what="n8 a member")
    c.wait_until(lambda: httpx.get(f"{c.url(0)}/kv/kept", timeout=10).content == b"mine",
                 timeout_s=30, what="n8's key read through n1")
