"""The bench's per-second node timeline (dynamopy/benchlib/timeline.py): what one line says."""

from dynamopy.benchlib.timeline import counters, line

METRICS = """# HELP dynamopy_requests_total HTTP requests by route and outcome
# TYPE dynamopy_requests_total counter
dynamopy_requests_total{route="get",outcome="ok"} 120.0
dynamopy_requests_total{route="put",outcome="ok"} 80.0
dynamopy_read_repairs_total 3.0
dynamopy_peer_calls_total{method="put",outcome="ok"} 160.0
dynamopy_request_seconds_bucket{route="get",outcome="ok",le="0.005"} 7.0
dynamopy_keys 2000.0
dynamopy_anti_entropy_exchanges_total 0.0
"""


def test_counters_keeps_the_watched_counters_with_their_labels_only():
    got = counters(METRICS)
    assert got == {
        'dynamopy_requests_total{route="get",outcome="ok"}': 120.0,
        'dynamopy_requests_total{route="put",outcome="ok"}': 80.0,
        "dynamopy_read_repairs_total": 3.0,
        'dynamopy_peer_calls_total{method="put",outcome="ok"}': 160.0,
        "dynamopy_anti_entropy_exchanges_total": 0.0,
    }


def test_a_line_gives_rates_cpu_per_request_and_the_counters_that_moved():
    before = counters(METRICS)
    after = dict(before)
    after['dynamopy_requests_total{route="get",outcome="ok"}'] += 300
    after['dynamopy_requests_total{route="put",outcome="ok"}'] += 100
    after["dynamopy_read_repairs_total"] += 4
    after["dynamopy_anti_entropy_exchanges_total"] += 1
    # over 2 s: 400 requests; loop thread 0.1 s, whole process 0.14 s of CPU
    text = line(12.0, "round 1 all dynamopy R=2,W=2", 2, 2.0, before, after,
                (5.0, 6.0), (5.1, 6.14))
    assert text.startswith("   12.0s round 1 all dynamopy R=2,W=2")
    assert " n2    200 req/s" in text
    assert "loop   50 ms/s other   20 ms/s loop/req 0.250 ms" in text
    assert text.endswith("anti_entropy_exchanges 1; read_repairs 4")
    assert "peer_calls" not in text   # did not move


def test_a_line_without_cpu_or_requests_still_prints():
    text = line(1.0, "hold", 1, 1.0, {}, {"dynamopy_read_repairs_total": 2.0}, None, None)
    assert "n1      0 req/s" in text and "loop" not in text
    assert text.endswith("read_repairs 2")
