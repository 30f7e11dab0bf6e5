"""benchlib/idle_cpu.py: the peer calls it counts come from a node's real metrics page."""

from dynamopy.benchlib.idle_cpu import parse_peer_calls
from dynamopy.node.metrics import Metrics


def test_peer_calls_are_counted_by_method_over_all_outcomes():
    m = Metrics()
    for _ in range(3):
        m.on_peer_call("ping", "p2", 0.001, "ok")
    m.on_peer_call("ping", "p3", 0.5, "timeout")
    m.on_peer_call("paxos", "p2", 0.001, "ok")
    assert parse_peer_calls(m.render().decode()) == {"ping": 4.0, "paxos": 1.0}
