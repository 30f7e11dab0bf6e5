"""dynamopy/launch.py: readiness is the launched process's own /ready with its own id; exits
and time-outs name the node with its log; stop works on a paused process. Stand-in processes
(small Python programs), not `dynamopy serve`: these are the launcher's rules alone."""

import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from dynamopy.launch import PEER_OFFSET, NodeExited, Nodes, NotReady, ephemeral_range, find_base_port
from tests.integration.cluster import allocate_ports

# A stand-in node: answers GET /ready with {"id": <argv[2]>} on 127.0.0.1:<argv[1]>.
READY_SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "ready", "id": sys.argv[2]}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture
def nodes(tmp_path):
    launch = Nodes(str(tmp_path), find_base_port(allocate_ports(2), 2))
    yield launch
    launch.stop()


def stand_in(nodes: Nodes, i: int, node_id: str) -> list[str]:
    return [sys.executable, "-c", READY_SERVER, str(nodes.port(i)), node_id]


def test_a_node_answering_ready_with_its_own_id_is_ready(nodes):
    nodes.start(0, command=stand_in(nodes, 0, "n1"))
    assert nodes.wait_ready([0], timeout_s=30)


def test_a_node_answering_with_another_id_is_not_ready(nodes):
    nodes.start(0, command=stand_in(nodes, 0, "n7"))
    with pytest.raises(NotReady, match="n1 not ready after 1s"):
        nodes.wait_ready([0], timeout_s=1)


def test_a_stranger_answering_on_the_port_does_not_make_the_node_ready(nodes):
    class Ready(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"status": "ready", "id": "n1"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    stranger = HTTPServer(("127.0.0.1", nodes.port(0)), Ready)  # this test, not the node
    threading.Thread(target=stranger.serve_forever, daemon=True).start()
    try:
        nodes.start(0, command=[sys.executable, "-c", "import time; time.sleep(60)"])
        with pytest.raises(NotReady):
            nodes.wait_ready([0], timeout_s=1)
    finally:
        stranger.shutdown()
        stranger.server_close()


def test_a_node_that_exits_while_awaited_is_named_with_its_log_tail(nodes):
    nodes.start(1, command=[sys.executable, "-c", "print('cannot open the store'); exit(3)"])
    with pytest.raises(NodeExited) as e:
        nodes.wait_ready([1], timeout_s=30)
    assert e.value.returncode == 3
    assert str(e.value).startswith(f"n2 ({nodes.url(1)}) exited with 3; last lines of ")
    assert "  | cannot open the store" in str(e.value)


def test_stop_ends_a_paused_node_by_its_pid(nodes):
    p = nodes.start(0, command=[sys.executable, "-c", "import time; time.sleep(60)"])
    nodes.signal(0, signal.SIGSTOP)
    nodes.stop(timeout_s=10)
    assert p.returncode == -signal.SIGTERM  # SIGCONT first, so SIGTERM was handled
    assert not nodes.running(0)


def test_test_ports_lie_below_the_ephemeral_range():
    """A killed node's port inside the ephemeral range can become the source port of an outgoing
    connection, and its restart fails to bind (CI, 2026-12-01): the harness never hands one out."""
    low, _ = ephemeral_range()
    for _ in range(3000):   # wraps around the harness's range several times
        base = allocate_ports(7)
        assert base + 6 + PEER_OFFSET < low, base


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_test_workers_never_share_a_port(workers):
    """Under pytest-xdist each worker hands out ports from windows of its own: no HTTP or peer
    port of one worker's windows is a port of another's, and all lie below the ephemeral range
    (else a node one worker killed and will restart could lose its port to the other)."""
    from tests.integration.cluster import WINDOW, _windows
    low, _ = ephemeral_range()
    owner: dict[int, int] = {}
    for k in range(workers):
        windows = _windows(f"gw{k}", workers)
        assert len(windows) * WINDOW >= 1000   # room for a few hundred 3-node clusters
        for start in windows:
            for port in [*range(start, start + WINDOW),
                         *range(start + PEER_OFFSET, start + PEER_OFFSET + WINDOW)]:
                assert owner.setdefault(port, k) == k, (port, owner[port], k)
                assert port < low


NOT_READY_SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"error": "not_ready", "id": sys.argv[2],
                           "detail": "this node's clock is not confirmed by a majority of "
                                     "the members yet"}).encode()
        self.send_response(503); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_a_node_not_ready_in_time_is_named_with_what_its_ready_says(nodes):
    """Found by a user (session 13): `cluster up --nodes 2` on the data dir of a 4-node
    cluster waited a minute and said "n1, n2 not ready" with log lines that do not say why;
    the reason was in their /ready answers (a majority of the members must vouch for a
    node's clock). The time-out quotes each pending node's last /ready detail."""
    nodes.start(0, command=[sys.executable, "-c", NOT_READY_SERVER, str(nodes.port(0)), "n1"])
    with pytest.raises(NotReady) as e:
        nodes.wait_ready([0], timeout_s=3)
    assert ("n1's /ready: 503 this node's clock is not confirmed by a majority of the "
            "members yet") in str(e.value), e.value
