"""``python -m loadgen`` end to end against real local clusters (short durations)."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys

import pytest
from PIL import Image

pytestmark = pytest.mark.integration

QUICK = ["--warmup-s", "0.3", "--keys", "200", "--concurrency", "16", "--model-trials", "2000"]
RUN_TIMEOUT_S = 180


def _loadgen(*args: str, timeout_s: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadgen", *args], capture_output=True,
                          text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def _check_result(res: dict) -> None:
    for key in ("r", "w", "n", "ops", "reads", "writes", "errors", "errors_by_code",
                "stale_reads", "stale_fraction", "k_staleness", "throughput_ops_s", "read_ms",
                "write_ms", "t_visibility", "timeline", "fault"):
        assert key in res, key
    assert res["ops"] == res["reads"] + res["writes"] > 0
    assert res["reads"] > res["writes"] > 0          # read ratio 0.9
    assert res["throughput_ops_s"] > 0
    assert 0 <= res["stale_reads"] <= res["reads"]
    for op in ("read_ms", "write_ms"):
        lat = res[op]
        assert lat["count"] > 0
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["p999"] <= lat["max"], lat
    tv = res["t_visibility"]
    assert set(tv["measured"]) == set(tv["predicted"]) == {"0", "1", "2", "5", "10", "50"}
    for t, p in tv["measured"].items():
        assert p is None or 0.0 <= p <= 1.0
        assert 0.0 <= tv["predicted"][t] <= 1.0
    assert tv["model_inputs"]["replica_put"]["samples"] > 0
    assert sum(p["ops"] for p in res["timeline"]) > 0


def _valid_png(path: str) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
        im.verify()


def test_local_cluster_three_settings_under_a_kill(tmp_path):
    """One run covers the local mode and the kill fault (one cluster start, not two): three
    settings with full, plausible results, valid plots, and the node killed in each one:
    R=3,W=3 fails while it is down, R=1,W=1 keeps serving."""
    out = tmp_path / "out"
    proc = _loadgen("--settings", "3,3", "1,1", "2,2", "--duration-s", "3", "--fault", "kill",
                    "--out", str(out), *QUICK)
    _ok(proc)
    doc = json.loads((out / "results.json").read_text())
    assert [(r["r"], r["w"]) for r in doc["results"]] == [(3, 3), (1, 1), (2, 2)]
    for res in doc["results"]:
        _check_result(res)
        assert res["n"] == 3 and res["fault"]["kind"] == "kill" and res["fault"]["node"] == "n3"
        assert res["fault"]["at_s"] is not None and res["fault"]["restored_at_s"] > 0
        # The errors fall while the node is down, never before the fault.
        first = int(res["fault"]["at_s"])
        assert sum(p["errors"] for p in res["timeline"][:first]) == 0
    strict, loose, majority = doc["results"]
    assert strict["errors"] > 0 and strict["errors_by_code"].get("quorum_unavailable", 0) > 0
    assert loose["ops"] > 0 and loose["error_fraction"] < 0.01, loose["errors_by_code"]
    # R + W > N: never stale, and the model says so too.
    for res in (strict, majority):
        assert res["stale_reads"] == 0
        assert set(res["t_visibility"]["predicted"].values()) == {1.0}
    assert doc["driver_ceiling"]["throughput_ops_s"] > 0
    assert doc["preload"]["stored"] == 200
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["r"], r["w"], r["fault"]) for r in rows] == [
        ("3", "3", "kill"), ("1", "1", "kill"), ("2", "2", "kill")]
    for name in ("throughput.png", "latency.png", "staleness.png", "faults.png"):
        _valid_png(str(out / name))
    assert "R,W" in proc.stdout and "driver ceiling" in proc.stdout


def test_url_drives_a_running_cluster(shared_cluster, tmp_path):
    """The session's shared cluster: with --url, loadgen kills nothing, changes no setting
    (R and W go on each request) and writes only keys of its own (lg-*)."""
    cluster = shared_cluster
    urls = [cluster.url(i) for i in range(3)]
    out = tmp_path / "out"
    # Open loop this time: an offered 150 ops/s over 2 s never starts more than 300 requests.
    proc = _loadgen("--url", *urls, "--settings", "2,2", "--duration-s", "2", "--rate", "150",
                    "--no-plots", "--out", str(out), *QUICK)
    _ok(proc)
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["url"] == urls and doc["config"]["nodes"] == 3
    res = doc["results"][0]
    _check_result(res)
    assert 0 < res["ops"] + res["errors"] <= 150 * 2 + 1
    # The data went to the cluster we named.
    with cluster.client(0) as c:
        assert c.get("lg-0000000", r=2).value
    # Faults need nodes we started.
    bad = _loadgen("--url", urls[0], "--fault", "kill", timeout_s=60)
    assert bad.returncode != 0 and "not available with --url" in bad.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args,needle", [
    (["--settings", "4,1"], "between 1 and N=3"),
    (["--settings", "2,2", "1,9"], "between 1 and N=3"),
    (["--distribution", "gaussian"], "unknown distribution"),
    (["--settings", "two"], "not R,W"),
    (["--url", "http://127.0.0.1:{port}"], "cannot reach"),
])
def test_bad_arguments_exit_with_one_line(args, needle):
    args = [a.replace("{port}", str(_free_port())) for a in args]
    proc = _loadgen(*args, timeout_s=60)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("loadgen: error:") and needle in err, err
