"""`cluster up` start-up checks that need no cluster: port ownership, busy ports, the lock."""

import os
import socket
import subprocess
import sys

import pytest

from dynamopy.cli.cluster_up import StartError, check_ports, prepare_data_dir
from dynamopy.launch import owns_port


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc")
def test_owns_port_tells_its_own_listener_from_another_process():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert owns_port(os.getpid(), port)
            assert not owns_port(other.pid, port)  # alive, but not the one answering
        finally:
            other.kill()
            other.wait()


def test_check_ports_names_the_busy_port_and_its_node():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(StartError, match=f"HTTP port {port} of n1 is already in use"):
            check_ports(1, port)


def test_the_data_dir_lock_is_exclusive(tmp_path):
    fd = prepare_data_dir(str(tmp_path))
    try:
        # flock is per open file: a second open in this process conflicts like another process
        with pytest.raises(StartError, match=f"is locked.*pid {os.getpid()}"):
            prepare_data_dir(str(tmp_path))
    finally:
        os.close(fd)
    os.close(prepare_data_dir(str(tmp_path)))  # free again once released


def test_replication_settings_the_nodes_cannot_meet_are_refused_before_anything_starts():
    """Found by a user's bad input (session 13): `cluster up --n 5` on 3 nodes started them,
    waited the whole minute for a bootstrap that can never happen ("n=5 needs at least 5
    seeds"), then said they were not ready; a quorum outside 1..n started nodes that each
    exited with the error. Each is now one line before any node starts."""
    from dynamopy.cli.cluster_up import check_replication
    with pytest.raises(StartError, match=r"--n 5 is more than the 3 nodes"):
        check_replication(3, 5, [])
    with pytest.raises(StartError, match=r"--n must be at least 1"):
        check_replication(3, 0, [])
    with pytest.raises(StartError, match=r"--r 3 is outside 1..n=2"):
        check_replication(3, 2, ["--r", "3"])
    with pytest.raises(StartError, match=r"--w 0 is outside 1..n=3"):
        check_replication(3, 3, ["--w", "0", "--r", "2"])
    check_replication(3, 3, ["--r", "3", "--w", "1"])
    check_replication(1, 1, ["--r", "1", "--w", "1"])


def test_cluster_up_refuses_n_above_the_node_count_without_starting_a_node(tmp_path):
    from dynamopy.cli import main
    assert main(["cluster", "up", "--nodes", "2", "--n", "3", "--base-port", "1",
                 "--data-dir", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d" / "n1.log").exists()


def test_a_data_dir_whose_nodes_served_at_other_ports_is_refused(tmp_path):
    """Found by a user's bad input (session 13): `cluster up --base-port 19700` on the data
    dir of a cluster started with --base-port 19600 started every node at the new ports,
    where none could reach the others (the members know each other by their old
    addresses): a minute of "not a member yet or catching up", then "not ready". The nodes'
    logs say where each served; another base port is refused before anything starts."""
    from dynamopy.cli.cluster_up import check_addresses
    d = tmp_path / "d"
    d.mkdir()
    check_addresses(str(d), 3, 19700)          # a new data dir: nothing to compare
    (d / "n1.log").write_text(
        "2026-12-02 09:01:47,783 n1 INFO dynamopy: node n1: http http://127.0.0.1:19600 "
        "peer 127.0.0.1:20600 data /x/n1\nsome later line\n")
    (d / "n2.log").write_text(
        "2026-12-02 09:01:47,783 n2 INFO dynamopy: node n2: http http://127.0.0.1:19601 "
        "peer 127.0.0.1:20601 data /x/n2\n")
    check_addresses(str(d), 3, 19600)          # the same ports: a restart (n3 is new)
    check_addresses(str(d), 1, 19600)
    with pytest.raises(StartError, match=r"n1 of this data dir served at http://127.0.0.1:19600"
                                         r".*--base-port 19600"):
        check_addresses(str(d), 3, 19700)
    # the last start counts
    with open(d / "n1.log", "a") as f:
        f.write("2026-12-02 10:00:00,000 n1 INFO dynamopy: node n1: http "
                "http://127.0.0.1:19800 peer 127.0.0.1:20800 data /x/n1\n")
    with pytest.raises(StartError, match=r"--base-port 19800"):
        check_addresses(str(d), 1, 19600)


def test_the_address_check_reads_only_the_tail_of_a_node_log(tmp_path, monkeypatch):
    """Found by a user (session 13): `cluster up` read each node's whole log at start (the
    address check above), a log that grows with every run. It reads backwards from the end
    up to the last start's line: what the node wrote since that start."""
    from dynamopy.cli import cluster_up
    start = ("2026-12-02 09:01:47,783 n1 INFO dynamopy: node n1: http http://127.0.0.1:{} "
             "peer 127.0.0.1:20600 data /x/n1\n")
    log = tmp_path / "n1.log"
    with open(log, "w") as f:
        f.write(start.format(19500))
        f.write("an older run's line\n" * 500_000)        # ~10 MB
        f.write(start.format(19600))
        f.write("since the last start\n" * 1000)
    read = []

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def __getattr__(self, name):
            return getattr(self.f, name)

        def read(self, *a):
            data = self.f.read(*a)
            read.append(len(data))
            return data

        def __iter__(self):
            for line in self.f:
                read.append(len(line))
                yield line

    monkeypatch.setattr(cluster_up, "open", lambda *a, **k: Counting(open(*a, **k)),
                        raising=False)
    assert cluster_up.last_address(str(log), "n1") == "http://127.0.0.1:19600"
    assert sum(read) <= 2 * cluster_up.LOG_BLOCK, sum(read)
    # a start line cut by a block boundary is still found, and the last start wins
    block = cluster_up.LOG_BLOCK
    for tail in range(block - 150, block + 10, 7):   # the first block read cuts the line
        small = tmp_path / f"s{tail}.log"
        small.write_text(start.format(19500) + "x" * 100 + "\n" + start.format(19600)
                         + "y" * (tail - 1) + "\n")
        assert cluster_up.last_address(str(small), "n1") == "http://127.0.0.1:19600", tail
    assert cluster_up.last_address(str(tmp_path / "none.log"), "n1") is None
    (tmp_path / "empty.log").write_text("")
    assert cluster_up.last_address(str(tmp_path / "empty.log"), "n1") is None
