"""The command line as a user runs it: cluster up, put/get/delete, ring, status, members."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dynamopy.client import Client
from tests.integration.cluster import allocate_ports

pytestmark = pytest.mark.integration


def cli(*args, url=None, input=None, check=True):
    cmd = [sys.executable, "-m", "dynamopy", *args] + (["--url", url] if url else [])
    out = subprocess.run(cmd, capture_output=True, timeout=60, input=input)
    if check:
        assert out.returncode == 0, out.stderr.decode()
    return out


def test_put_get_delete_ring_status(shared_cluster, tmp_path):
    url = shared_cluster.url(1)
    assert json.loads(cli("put", "cli/key", "hello", url=url).stdout)["acks"] >= 2
    assert cli("get", "cli/key", url=url).stdout == b"hello"
    blob = bytes(range(256)) * 10
    (tmp_path / "blob").write_bytes(blob)
    cli("put", "cli/blob", f"@{tmp_path / 'blob'}", "--w", "3", url=url)
    assert cli("get", "cli/blob", "--r", "3", url=url).stdout == blob
    cli("put", "cli/stdin", "-", url=url, input=b"from stdin")
    assert cli("get", "cli/stdin", url=url).stdout == b"from stdin"
    cli("delete", "cli/key", url=url)
    missing = cli("get", "cli/key", url=url, check=False)
    assert missing.returncode != 0 and b"404 not_found" in missing.stderr
    assert len(missing.stderr.decode().strip().splitlines()) == 1
    ring = cli("ring", url=url).stdout.decode()
    assert "n1" in ring and "n3" in ring and "33.3" in ring
    assert '"epoch"' in cli("status", url=url).stdout.decode()
    bad = cli("get", "x", "--r", "9", url=url, check=False)
    assert bad.returncode != 0 and b"400 bad_request" in bad.stderr
    down = cli("get", "x", url="http://127.0.0.1:1", check=False)
    assert down.returncode != 0 and b"unreachable" in down.stderr
    refused = cli("members", "leave", "n7", url=url, check=False)
    assert refused.returncode != 0 and b"404 unknown_member" in refused.stderr


def test_cluster_up_starts_stops_and_restarts_with_its_data(tmp_path):
    base = allocate_ports(3)
    data = str(tmp_path / "data")
    cmd = [sys.executable, "-m", "dynamopy", "cluster", "up", "--base-port", str(base),
           "--data-dir", data]

    def up() -> subprocess.Popen:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = p.stdout.readline().decode()
            lines.append(line)
            if "Ctrl-C" in line:
                return p, "".join(lines)
            if p.poll() is not None:
                break
        p.kill()
        raise AssertionError("cluster up did not get ready:\n" + "".join(lines)
                             + p.stderr.read().decode())

    def down(p: subprocess.Popen) -> None:
        os.killpg(p.pid, signal.SIGTERM)
        assert p.wait(timeout=30) == 0
        # every node it started is gone
        ps = subprocess.run(["pgrep", "-f", f"--data-dir {data}/n"], capture_output=True)
        assert ps.stdout.strip() == b""

    p, table = up()
    try:
        for i in (1, 2, 3):
            assert f"n{i}" in table and f"127.0.0.1:{base + i - 1}" in table
        assert "curl" in table
        with Client(f"http://127.0.0.1:{base}") as c:
            version = c.put("survives", "restart")["version"]
    finally:
        down(p)
    p, _ = up()
    try:
        with Client(f"http://127.0.0.1:{base + 2}") as c:
            item = c.get("survives", r=3)
            assert item.value == b"restart" and item.version == version
    finally:
        down(p)
