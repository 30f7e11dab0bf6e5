"""`dynamopy cluster up`: start K local nodes on 127.0.0.1, wait until ready, stay in the
foreground; Ctrl-C or SIGTERM stops every node cleanly. Re-running it on the same data dir
restarts the same cluster with its data (the cluster secret is kept in the data dir).

Rules:

* Fail fast, before starting anything, when a port it needs is taken (naming the port and
  the node) or when the data dir is unusable or held by another ``cluster up`` (a lock file).
* Only its own nodes count: a node is ready when the process it started is alive, listens
  on the node's HTTP port itself (checked in /proc where there is one) and answers /ready
  with the node id it was given. A node that exits while starting stops the whole start-up:
  every node it started is stopped and the exit is non-zero, with the tail of that node's log.
* A node that exits later is reported once, with its log's tail; the others keep running
  until Ctrl-C, and the exit code is then 1.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

from dynamopy.client import Client, DynamoError

LOG_TAIL_LINES = 15


class StartError(Exception):
    """Why the cluster cannot start; printed as one line (plus a log tail) by ``up``."""


def _secret(data_dir: str) -> str:
    path = os.path.join(data_dir, "cluster-secret")
    if os.path.exists(path):
        with open(path) as f:
            return f.read().strip()
    value = secrets.token_hex(16)
    with open(path, "w") as f:
        f.write(value)
    os.chmod(path, 0o600)
    return value


def node_command(i: int, nodes: int, base_port: int, data_dir: str, n: int,
                 extra: list[str]) -> list[str]:
    seeds = ",".join(f"http://127.0.0.1:{base_port + j}" for j in range(nodes))
    return [sys.executable, "-m", "dynamopy", "serve", "--node-id", f"n{i + 1}",
            "--host", "127.0.0.1", "--port", str(base_port + i),
            "--peer-port", str(base_port + 1000 + i),
            "--data-dir", os.path.join(data_dir, f"n{i + 1}"), "--seeds", seeds,
            "--n", str(n), *extra]


def prepare_data_dir(data_dir: str) -> int:
    """Create the data dir and take its lock; return the lock's file descriptor (held for
    the life of this process). Raises StartError with a one-line reason."""
    try:
        os.makedirs(data_dir, exist_ok=True)
        fd = os.open(os.path.join(data_dir, "cluster-up.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StartError(f"data dir {data_dir}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StartError(f"data dir {data_dir} is locked: another `dynamopy cluster up` "
                         f"(pid {holder}) is using it") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    if not os.access(data_dir, os.W_OK):
        raise StartError(f"data dir {data_dir}: not writable")
    return fd


def check_ports(nodes: int, base_port: int) -> None:
    for i in range(nodes):
        for port, what in ((base_port + i, "HTTP"), (base_port + 1000 + i, "peer")):
            if not 0 < port < 65536:
                raise StartError(f"{what} port {port} of n{i + 1} is outside 1..65535")
            with socket.socket() as s:
                # As the servers do: a port held only by closed connections (TIME_WAIT,
                # e.g. right after a restart) is free; one with a listener is not.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError as e:
                    busy = "is already in use" if e.errno == errno.EADDRINUSE else e.strerror
                    raise StartError(f"{what} port {port} of n{i + 1} {busy}; stop what uses "
                                     "it or pick another --base-port") from None


def _listening_inodes(port: int) -> Optional[set[str]]:
    """Socket inodes listening on 127.0.0.1/any:port per /proc/net/tcp (None without /proc)."""
    try:
        with open("/proc/net/tcp") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return None
    out = set()
    for row in rows:
        cols = row.split()
        local, state, inode = cols[1], cols[3], cols[9]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
            out.add(inode)
    return out


def owns_port(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port`` (True if unknowable)."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return True
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            tail = f.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join("  | " + line for line in tail)


def _is_ready(url: str, node_id: str) -> bool:
    with Client(url, timeout_s=1.0) as c:
        if not c.ready():
            return False
        try:
            return c.node().get("id") == node_id
        except DynamoError:
            return False


def up(nodes: int, base_port: int, data_dir: str, n: Optional[int], extra: list[str],
       ready_timeout_s: float = 60.0) -> int:
    data_dir = os.path.abspath(data_dir)
    if nodes < 1:
        print("dynamopy: error: --nodes must be at least 1", file=sys.stderr)
        return 2
    try:
        lock_fd = prepare_data_dir(data_dir)
        check_ports(nodes, base_port)
        secret = os.environ.get("DYNAMOPY_CLUSTER_SECRET") or _secret(data_dir)
    except StartError as e:
        print(f"dynamopy: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"dynamopy: error: data dir {data_dir}: {e.strerror}", file=sys.stderr)
        return 1
    n = n if n is not None else min(3, nodes)
    env = {**os.environ, "DYNAMOPY_CLUSTER_SECRET": secret}
    for flag in ("--r", "--w"):
        if flag not in extra:  # keep the default quorums valid when n < 3
            extra = [flag, str(min(2, n)), *extra]
    procs: list[subprocess.Popen] = []
    stopping = False

    def stop(*_a) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    ids = [f"n{i + 1}" for i in range(nodes)]
    logs = [os.path.join(data_dir, f"{node_id}.log") for node_id in ids]
    urls = [f"http://127.0.0.1:{base_port + i}" for i in range(nodes)]

    def exited(i: int, p: subprocess.Popen) -> str:
        return (f"{ids[i]} ({urls[i]}) exited with {p.returncode}; last lines of {logs[i]}:\n"
                + log_tail(logs[i]))

    try:
        for i in range(nodes):
            with open(logs[i], "ab") as log:
                procs.append(subprocess.Popen(
                    node_command(i, nodes, base_port, data_dir, n, extra), env=env,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + ready_timeout_s
        pending = set(range(nodes))
        while pending and not stopping:
            for i, p in enumerate(procs):
                if p.poll() is not None:
                    print(f"dynamopy: error: {exited(i, p)}", file=sys.stderr)
                    return 1
            for i in sorted(pending):
                if owns_port(procs[i].pid, base_port + i) and _is_ready(urls[i], ids[i]):
                    pending.discard(i)
            if pending and time.monotonic() > deadline:
                names = ", ".join(ids[i] for i in sorted(pending))
                print(f"dynamopy: error: {names} not ready after {ready_timeout_s:.0f}s; "
                      f"last lines of {logs[min(pending)]}:\n{log_tail(logs[min(pending)])}",
                      file=sys.stderr)
                return 1
            time.sleep(0.2)
        if stopping:
            return 130
        print_table(urls[0], data_dir)
        reported: set[int] = set()
        while not stopping:
            for i, p in enumerate(procs):
                if p.poll() is not None and i not in reported and not stopping:
                    reported.add(i)
                    print(f"dynamopy: {exited(i, p)}\nthe other nodes keep running; "
                          "Ctrl-C stops them", file=sys.stderr, flush=True)
            time.sleep(0.5)
        return 1 if reported else 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        os.close(lock_fd)
        if procs:
            print("cluster stopped", file=sys.stderr)


def print_table(url: str, data_dir: str) -> None:
    with Client(url) as c:
        info = c.cluster()
    print(f"dynamopy cluster up: {len(info['members'])} nodes, N={info['n']} R={info['r']} "
          f"W={info['w']}, epoch {info['epoch']}, data in {data_dir}")
    print(f"{'id':<6} {'http':<24} {'peer':<18} {'state':<8}")
    for m in info["members"]:
        print(f"{m['id']:<6} {m['url']:<24} {m['peer']:<18} {m['state']:<8}")
    print("\ntry:")
    print(f"  curl -X PUT -H 'Content-Type: text/plain' --data-binary 'hello' {url}/kv/greeting")
    print(f"  curl -i {url}/kv/greeting")
    print(f"  curl '{url}/kv/greeting?r=3'")
    print(f"  curl {url}/cluster")
    print("Ctrl-C stops every node.", flush=True)
