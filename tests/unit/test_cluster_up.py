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
