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


def test_the_timeline_thread_writes_a_line_per_node_per_interval(tmp_path):
    """Real sampling: a /metrics server on 127.0.0.1 and this process's own CPU."""
    import http.server
    import os
    import threading
    import time

    from dynamopy.benchlib.timeline import Timeline

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = METRICS.encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path / "timeline.txt"
    try:
        tl = Timeline(str(path), [f"http://127.0.0.1:{server.server_port}"], [os.getpid()],
                      every_s=0.05)
        tl.phase = "round 1"
        tl.start()
        # at least two intervals' lines; polled, not a fixed sleep (a loaded machine once
        # gave the thread time for one line in 0.4 s)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (
                not path.exists() or len(path.read_text().splitlines()) < 2):
            time.sleep(0.05)
        tl.stop()
    finally:
        server.shutdown()
    lines = path.read_text().splitlines()
    assert len(lines) >= 2
    assert all(" round 1 " in x and " n1 " in x and "loop/req - ms" in x for x in lines)
