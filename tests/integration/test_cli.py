"""The command line as a user runs it: cluster up, put/get/delete, ring, status, members."""

import concurrent.futures as cf
import contextlib
import json
import shutil
import os
import signal
import subprocess
import sys
import time

import pytest

from dynamopy.client import Client
from tests.integration.cluster import allocate_ports

pytestmark = pytest.mark.integration


def dynamopy_cmd() -> list[str]:
    """The installed `dynamopy` script next to this interpreter (as a user runs it)."""
    script = os.path.join(os.path.dirname(sys.executable), "dynamopy")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "dynamopy"]


def cli(*args, url=None, input=None, check=True, timeout_s=60):
    """Run the CLI; on a timeout, SIGTERM it (`cluster up` then stops the nodes it started)."""
    cmd = [*dynamopy_cmd(), *args] + (["--url", url] if url else [])
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else None,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = p.communicate(input, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        p.terminate()
        p.communicate(timeout=30)
        raise
    out = subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr)
    if check:
        assert out.returncode == 0, out.stderr.decode()
    return out


def test_put_get_delete_ring_status(shared_cluster, tmp_path):
    """Each command is a process of its own that spends most of its time starting Python:
    the independent chains below run a few at a time; within a chain, in order."""
    url = shared_cluster.url(1)
    blob = bytes(range(256)) * 10
    (tmp_path / "blob").write_bytes(blob)

    def put_get_delete():
        assert json.loads(cli("put", "cli/key", "hello", url=url).stdout)["acks"] >= 2
        assert cli("get", "cli/key", url=url).stdout == b"hello"
        cli("delete", "cli/key", url=url)
        missing = cli("get", "cli/key", url=url, check=False)
        assert missing.returncode != 0 and b"404 not_found" in missing.stderr
        assert len(missing.stderr.decode().strip().splitlines()) == 1

    def file_value():
        cli("put", "cli/blob", f"@{tmp_path / 'blob'}", "--w", "3", url=url)
        assert cli("get", "cli/blob", "--r", "3", url=url).stdout == blob

    def stdin_value():
        cli("put", "cli/stdin", "-", url=url, input=b"from stdin")
        assert cli("get", "cli/stdin", url=url).stdout == b"from stdin"

    def ring():
        out = cli("ring", url=url).stdout.decode()
        assert "n1" in out and "n3" in out and "33.3" in out
        assert "metadata group: n1 n2 n3" in out and out.count(" metadata ") == 3

    def status():
        out = json.loads(cli("status", url=url).stdout)
        assert "epoch" in json.dumps(out) and out["cluster"]["metadata_group"] == ["n1", "n2", "n3"]

    def errors():
        bad = cli("get", "x", "--r", "9", url=url, check=False)
        assert bad.returncode != 0 and b"400 bad_request" in bad.stderr
        down = cli("get", "x", url="http://127.0.0.1:1", check=False)
        assert down.returncode != 0 and down.stderr.startswith(b"dynamopy: error: unreachable: ")
        refused = cli("members", "leave", "n7", url=url, check=False)
        assert refused.returncode != 0 and b"404 unknown_member" in refused.stderr

    with cf.ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(f) for f in (put_get_delete, errors, file_value, stdin_value,
                                              ring, status)]:
            done.result()


def test_config_shows_and_sets_the_cluster_settings(shared_cluster):
    """`dynamopy config` prints the settings in force; `config set` changes them on every
    node; the server's refusal (a grace too short for the hint window) is a one-line error,
    exit 1, and nothing changes. The shared cluster's settings are put back."""
    url, other = shared_cluster.url(0), shared_cluster.url(2)
    with Client(url) as c:
        before = c.cluster()
    try:
        out = json.loads(cli("config", "set", "anti_entropy_rate=777", "hint_window_s=5400",
                             url=url).stdout)
        assert out["epoch"] > before["epoch"]
        refused = cli("config", "set", "tombstone_grace_s=60", url=url, check=False)
        err = refused.stderr.decode()
        assert refused.returncode == 1 and err.count("\n") == 1, err
        assert err.startswith("dynamopy: error: 409 conflict: tombstone_grace_s=60 is too "
                              "short for hint_window_s=5400"), err
        shared_cluster.wait_until(lambda: shared_cluster.cluster_info(2)["epoch"] >= out["epoch"],
                                  10, "the change applied on n3")
        shown = cli("config", url=other).stdout.decode()  # another node: the log carried it
        rows = {line.split()[0]: line.split()[1] for line in shown.splitlines()[1:]}
        assert rows["anti_entropy_rate"] == "777" and rows["hint_window_s"] == "5400", shown
        assert rows["tombstone_grace_s"] == "%g" % before["tombstone_grace_s"]
        assert rows["n"] == "3" and rows["metadata_group"] == "n1,n2,n3", shown
    finally:
        with Client(url) as c:
            c.set_config(anti_entropy_rate=before["anti_entropy_rate"],
                         hint_window_s=before["hint_window_s"])


def _cluster_up(cmd: list, timeout_s: float, env=None) -> tuple[subprocess.Popen, str]:
    """Start ``dynamopy cluster up`` (its own session) and read its output until the table's
    last line: (the process, what it printed). Not ready in time: stop it, fail."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True, env=env)
    deadline = time.monotonic() + timeout_s
    lines = []
    while time.monotonic() < deadline:
        line = p.stdout.readline().decode()
        lines.append(line)
        if "Ctrl-C" in line:
            return p, "".join(lines)
        if p.poll() is not None:
            break
    with contextlib.suppress(ProcessLookupError):   # it may have given up already
        os.killpg(p.pid, signal.SIGTERM)
    p.wait(timeout=30)
    raise AssertionError("cluster up did not get ready:\n" + "".join(lines)
                         + p.stderr.read().decode())

def test_cluster_up_starts_stops_and_restarts_with_its_data(tmp_path):
    base = allocate_ports(3)
    data = str(tmp_path / "data")
    cmd = [*dynamopy_cmd(), "cluster", "up", "--base-port", str(base), "--data-dir", data]

    def up(env=None) -> tuple[subprocess.Popen, str]:
        return _cluster_up(cmd, 60, env)

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
        # the example commands it prints run as printed
        tries = [line.strip() for line in table.splitlines() if line.startswith("  curl")]
        assert len(tries) == 4
        outs = [subprocess.run(["bash", "-c", t], capture_output=True, timeout=30) for t in tries]
        assert all(o.returncode == 0 for o in outs), outs
        assert outs[2].stdout == b"hello" and b"text/plain" in outs[1].stdout
        with Client(f"http://127.0.0.1:{base}") as c:
            version = c.put("survives", "restart")["version"]
        # a second cluster on the same ports fails fast, naming the port, and starts nothing
        other = str(tmp_path / "other")
        busy = cli("cluster", "up", "--base-port", str(base), "--data-dir", other, check=False)
        assert busy.returncode == 1
        assert busy.stderr.decode().strip() == (
            f"dynamopy: error: HTTP port {base} of n1 is already in use; stop what uses it "
            "or pick another --base-port")
        assert not os.path.exists(os.path.join(other, "n1.log"))
        # and a second one on the same data dir (other ports) is refused by its lock
        locked = cli("cluster", "up", "--base-port", str(allocate_ports(3)), "--data-dir", data,
                     check=False)
        assert locked.returncode == 1
        assert f"data dir {data} is locked" in locked.stderr.decode()
        assert f"(pid {p.pid})" in locked.stderr.decode()
    finally:
        down(p)
    # Restarted with DYNAMOPY_API_TOKEN set (the nodes inherit it): it still prints its table
    # (it used to die on a 401 from its own cluster), and the examples it prints carry the
    # token by the variable's name, never the secret itself.
    env = {**os.environ, "DYNAMOPY_API_TOKEN": "restart-secret"}
    p, table = up(env)
    try:
        tries = [line.strip() for line in table.splitlines() if line.startswith("  curl")]
        assert len(tries) == 4 and "restart-secret" not in table
        assert all('Bearer $DYNAMOPY_API_TOKEN' in t for t in tries)
        read = subprocess.run(["bash", "-c", tries[2]], capture_output=True, timeout=30, env=env)
        assert read.stdout == b"hello"
        with Client(f"http://127.0.0.1:{base + 2}", token="restart-secret") as c:
            item = c.get("survives", r=3)
            assert item.value == b"restart" and item.version == version
    finally:
        down(p)


def test_cluster_up_restarts_a_cluster_one_of_whose_nodes_left(tmp_path):
    """Found in session 15's operator walk-through: after `dynamopy members leave` of one
    of its nodes, re-running `cluster up` on the data dir waited 60 s for that node, whose
    /ready says it left (503, for good: its data dir records the leave), then printed
    "n4 not ready after 60s" and stopped every node: the cluster could no longer be
    restarted as the README says. Now the node that left is not waited for: the rest
    starts, the table lists the members, and a line says which node left and how to add
    it back."""
    base = allocate_ports(4)
    data = str(tmp_path / "data")
    cmd = [*dynamopy_cmd(), "cluster", "up", "--nodes", "4", "--base-port", str(base),
           "--data-dir", data]

    def up() -> tuple[subprocess.Popen, str]:
        return _cluster_up(cmd, 45)

    def down(p: subprocess.Popen) -> None:
        os.killpg(p.pid, signal.SIGTERM)
        assert p.wait(timeout=30) == 0

    p, _ = up()
    try:
        with Client(f"http://127.0.0.1:{base}") as c:
            version = c.put("kept", "across the leave", w=3)["version"]
            c.leave("n4")
        with Client(f"http://127.0.0.1:{base + 3}") as c4:
            deadline = time.monotonic() + 30
            while c4.node()["state"] != "left":
                assert time.monotonic() < deadline, c4.node()
                time.sleep(0.2)
    finally:
        down(p)
    p, table = up()
    try:
        assert "n4 left the cluster" in table and f"{data}/n4" in table, table
        members = [line.split()[0] for line in table.splitlines()
                   if line.startswith("n") and "http://" in line]
        assert members == ["n1", "n2", "n3"], table
        with Client(f"http://127.0.0.1:{base + 1}") as c:
            item = c.get("kept", r=3)
            assert item.value == b"across the leave" and item.version == version
    finally:
        down(p)


def test_cluster_up_stops_everything_when_a_node_cannot_start(tmp_path):
    """A node that exits while starting (here: its LevelDB is locked by another process)
    stops the start-up: non-zero exit, the node's log tail, and no node left running."""
    import plyvel

    base = allocate_ports(3)
    data = str(tmp_path / "data")
    os.makedirs(os.path.join(data, "n2"))
    db = plyvel.DB(os.path.join(data, "n2", "db"), create_if_missing=True)  # holds n2's LOCK
    try:
        out = cli("cluster", "up", "--base-port", str(base), "--data-dir", data, check=False)
    finally:
        db.close()
    err = out.stderr.decode()
    assert out.returncode == 1, err
    assert err.startswith(f"dynamopy: error: n2 (http://127.0.0.1:{base + 1}) exited with ")
    assert f"last lines of {data}/n2.log:" in err and "lock" in err.lower()
    assert "Traceback" not in err.split("last lines of")[0]
    ps = subprocess.run(["pgrep", "-f", f"--data-dir {data}/n"], capture_output=True)
    assert ps.stdout.strip() == b""


def test_one_line_errors_instead_of_tracebacks(tmp_path):
    def one_line(out, text):
        err = out.stderr.decode()
        assert out.returncode != 0 and "Traceback" not in err, err
        assert err.count("\n") == 1 and err.startswith("dynamopy: error: ") and text in err, err

    one_line(cli("put", "x", f"@{tmp_path / 'nonexistent'}", url="http://127.0.0.1:1",
                 check=False), "No such file or directory")
    regular = tmp_path / "file"
    regular.write_text("not a directory")
    one_line(cli("cluster", "up", "--data-dir", str(regular / "d"), check=False),
             f"data dir {regular / 'd'}: Not a directory")


def test_serve_on_a_port_in_use_is_a_one_line_error_naming_the_flag(tmp_path):
    """Found in session 15's operator walk-through: `dynamopy serve` on an HTTP port in use
    printed uvicorn's `ERROR:    [Errno 98] error while attempting to bind on address ...`
    and exited 3, while a peer port in use was `dynamopy: error: error while attempting to
    bind ...` (exit 2) without saying which of the two ports it was. Both are now one
    `dynamopy: error:` line naming the flag and the port, exit 2."""
    import socket

    base = allocate_ports(1)
    peer = base + 1000
    for busy, flag in ((base, "--port"), (peer, "--peer-port")):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", busy))
            s.listen()
            out = cli("serve", "--node-id", "n1", "--port", str(base), "--peer-port", str(peer),
                      "--data-dir", str(tmp_path / flag.strip("-")), check=False, timeout_s=60)
        err = out.stderr.decode()
        said = [line for line in err.splitlines() if not line[:4].isdigit()]  # not log lines
        assert out.returncode == 2 and "Traceback" not in err, err
        assert len(said) == 1 and said[0].startswith("dynamopy: error: "), err
        assert f"{flag} {busy}" in said[0] and "already in use" in said[0], err


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to run the CLI as an unprivileged user")
def test_unwritable_data_dir_is_a_one_line_error():
    import tempfile

    root = tempfile.mkdtemp(prefix="dynamopy-ro-")  # under /tmp: reachable by nobody
    try:
        os.chmod(root, 0o755)  # owned by root: not writable for nobody
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              *dynamopy_cmd(), "cluster", "up", "--data-dir", root + "/d"],
                             capture_output=True, timeout=60)
        err = out.stderr.decode()
        assert out.returncode == 1 and "Traceback" not in err, err
        assert err == f"dynamopy: error: data dir {root}/d: Permission denied\n"
    finally:
        shutil.rmtree(root)


def test_get_adds_a_newline_on_a_terminal_only(shared_cluster):
    import pty

    url = shared_cluster.url(0)
    cli("put", "cli/tty", "no newline here", url=url)
    assert cli("get", "cli/tty", url=url).stdout == b"no newline here"  # piped: raw bytes
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([*dynamopy_cmd(), "get", "cli/tty", "--url", url], stdout=slave,
                             stderr=subprocess.PIPE)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        assert p.wait(timeout=30) == 0, p.stderr.read()
    finally:
        os.close(master)
    assert out == b"no newline here\r\n"  # the terminal shows "\n" as CR LF


def test_version_and_members_list(shared_cluster):
    from importlib.metadata import version

    assert cli("--version").stdout.decode() == f"dynamopy {version('dynamopy')}\n"
    url = shared_cluster.url(2)
    listed = cli("members", url=url).stdout.decode().splitlines()
    assert listed == cli("members", "list", url=url).stdout.decode().splitlines()
    assert listed[0].split() == ["id", "state", "alive", "role", "zone", "ownership", "url",
                                 "peer"]
    rows = [line.split() for line in listed[1:]]
    assert [r[0] for r in rows] == ["n1", "n2", "n3"]
    # three seeds: every one is in the metadata group; no --zone given: no zone
    assert all(r[1] == "normal" and r[2] == "true" and r[3] == "metadata" and r[4] == "-"
               for r in rows)
    assert [r[6] for r in rows] == [shared_cluster.url(i) for i in range(3)]


def test_readme_quick_start_examples_run_as_pasted(shared_cluster, tmp_path):
    """The README's "With the cluster up" block, run by bash line by line; only the ports
    and the path of the script are adapted to this test's cluster."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    block = readme.split("With the cluster up, in another shell:")[1].split("```sh\n")[1]
    block = block.split("```")[0]
    for i in range(3):
        block = block.replace(f"localhost:800{i + 1}", f"127.0.0.1:{shared_cluster.base + i}")
    block = block.replace(".venv/bin/dynamopy", dynamopy_cmd()[0])
    env = {**os.environ, "DYNAMOPY_URL": shared_cluster.url(0)}
    script = "set -euo pipefail\n" + block
    out = subprocess.run(["bash", "-c", script], capture_output=True, timeout=120, cwd=tmp_path,
                         env=env)
    text = out.stdout.decode()
    assert out.returncode == 0, text + out.stderr.decode()
    assert "Hello, Dynamo!" in text and "etag:" in text.lower() and "same bytes" in text
    assert "hello" in text and "n1 " in text
    # what a plain `curl --data-binary` stores: curl's default form content type
    url = shared_cluster.url(1) + "/kv/curl-default"
    subprocess.run(["curl", "-sf", "-X", "PUT", "--data-binary", "a=b&c", url], check=True,
                   capture_output=True, timeout=30)
    with Client(shared_cluster.url(2)) as c:
        item = c.get("curl-default")
    assert item.value == b"a=b&c" and item.content_type == "application/x-www-form-urlencoded"
