"""benchlib.request_timeline: the per-request log wrk writes (paired answers on the wall clock)
and the analysis that groups slow requests into episodes."""

from __future__ import annotations

import glob
import http.server
import os
import shutil
import subprocess
import threading
import time

import pytest

from dynamopy.benchlib.request_timeline import (
    Req,
    client_gaps,
    describe_run,
    episodes,
    lua_logged,
    parse_lines,
    percentile,
)
from dynamopy.benchlib.vs_etcd import lua_dynamopy
from dynamopy.benchlib.vs_etcd_report import requests_over


def test_parse_lines_reads_the_lua_format_and_skips_junk():
    reqs = parse_lines(["1764600000123456 2500 P 200\n", "garbage\n", "1 2 G\n"], conn=7)
    assert reqs == [Req(1764600000.123456, 2.5, "P", 200, 7)]
    assert reqs[0].end == pytest.approx(1764600000.126)


def test_overlapping_slow_requests_form_one_episode_and_apart_two():
    a = Req(10.0, 300, "P", 200, 1)     # 10.0 - 10.3
    b = Req(10.2, 150, "P", 200, 2)     # 10.2 - 10.35, overlaps a
    c = Req(11.0, 120, "G", 200, 3)     # alone
    groups = episodes([c, b, a])
    assert [[r.conn for r in g] for g in groups] == [[1, 2], [3]]


def test_client_gaps_are_the_time_a_connection_had_nothing_in_flight():
    reqs = [Req(0.0, 100, "G", 200, 1), Req(0.3, 100, "G", 200, 1),    # idle 0.1-0.3
            Req(0.0, 400, "P", 200, 2)]
    assert client_gaps(reqs, 0.0, 0.4) == [0.0, pytest.approx(200.0)]


def test_percentile_and_the_server_histogram_reader():
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert percentile([], 99) == 0.0
    text = (
        'dynamopy_request_seconds_bucket{le="0.2",outcome="ok",route="kv_get"} 90.0\n'
        'dynamopy_request_seconds_bucket{le="+Inf",outcome="ok",route="kv_get"} 100.0\n'
        'dynamopy_request_seconds_bucket{le="0.2",outcome="ok",route="kv_put"} 5.0\n'
        'dynamopy_request_seconds_bucket{le="+Inf",outcome="ok",route="kv_put"} 7.0\n')
    assert requests_over(text, 0.2) == (107.0, 12.0)


def test_describe_run_names_the_episode_its_coordinator_and_the_slow_batches():
    reqs = [Req(100.0 + i / 100, 5, "G", 200, i % 63 + 1) for i in range(500)]
    reqs += [Req(101.0, 250, "P", 200, 3), Req(101.05, 200, "P", 200, 6)]
    text = "\n".join(describe_run(reqs, 100, [(101.24, "n2", 40, 230.0)], 5,
                                  [(101.1, "n3", "Compacting 4@0 + 1@1 files")]))
    assert "at or above 100 ms: 2 (2 puts)" in text
    assert "episodes (slow requests overlapping in time): 1; slow requests per episode: 2" in text
    assert "by coordinator n3 2" in text           # threads 3 and 6 both go to the third node
    assert "n2 230 ms at" in text
    assert "leveldb n3" in text and "Compacting" in text


# Far above what a GET takes even on a loaded machine (a GET once took 60 ms when the put
# delay was 60 ms and another test worker kept both cores busy).
PUT_DELAY_S = 0.3


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, delay: float) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        time.sleep(delay)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self):  # noqa: N802
        self._answer(0.0)

    def do_PUT(self):  # noqa: N802
        self._answer(PUT_DELAY_S)

    def log_message(self, *args):
        pass


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_real_wrk_pairs_each_answer_with_its_request(tmp_path):
    """Against a server that answers GETs at once and PUTs after 300 ms, every logged PUT
    took at least that and the GETs far less: the log pairs each answer with its own
    request, on the wall clock."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        script = tmp_path / "drive.lua"
        script.write_text(lua_logged(lua_dynamopy([port], False, 2, 2, 20, 16, "k"),
                                     str(tmp_path)))
        before = time.time()
        proc = subprocess.run(["wrk", "-t2", "-c2", "-d2s", "--timeout", "5s", "-s",
                               str(script), f"http://127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=30)
        assert "RESULT" in proc.stdout, proc.stdout + proc.stderr
    finally:
        server.shutdown()
        server.server_close()
    reqs = []
    for path in glob.glob(os.path.join(tmp_path, "req-*.log")):
        with open(path) as f:
            reqs += parse_lines(f)
    puts = [r for r in reqs if r.kind == "P"]
    gets = [r for r in reqs if r.kind == "G"]
    assert puts and gets and all(r.status == 200 for r in reqs)
    assert min(r.ms for r in puts) >= PUT_DELAY_S * 1000 - 1
    assert max(r.ms for r in gets) < PUT_DELAY_S * 1000 - 1
    assert all(before - 1 <= r.start <= time.time() + 1 for r in reqs)
