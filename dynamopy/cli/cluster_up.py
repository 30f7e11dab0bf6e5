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

import fcntl
import os
import re
import secrets
import signal
import sys
import time
from typing import Optional, Sequence
from urllib.parse import urlsplit

from dynamopy.client import Client
from dynamopy.launch import PEER_OFFSET, NodeExited, Nodes, NotReady, port_problem


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
        for port, what in ((base_port + i, "HTTP"), (base_port + PEER_OFFSET + i, "peer")):
            if not 0 < port < 65536:
                raise StartError(f"{what} port {port} of n{i + 1} is outside 1..65535")
            busy = port_problem(port)
            if busy:
                raise StartError(f"{what} port {port} of n{i + 1} {busy}; stop what uses "
                                 "it or pick another --base-port")


def check_replication(nodes: int, n: int, extra: list[str]) -> None:
    """N, and the R and W among ``extra`` (``["--r", "3", ...]``), that the nodes can run
    with; else StartError (a node would exit with it, or, for N above the node count, wait
    for ever for seeds that do not exist: "n=5 needs at least 5 seeds")."""
    if n < 1:
        raise StartError(f"--n must be at least 1, got {n}")
    if n > nodes:
        raise StartError(f"--n {n} is more than the {nodes} nodes: each key needs n distinct "
                         f"nodes (start at least {n} with --nodes {n}, or lower --n)")
    for flag in ("--r", "--w"):
        if flag in extra:
            value = extra[extra.index(flag) + 1]
            if not 1 <= int(value) <= n:
                raise StartError(f"{flag} {value} is outside 1..n={n}")


_STARTED = re.compile(rb" dynamopy: node (\S+): http (\S+) peer ")  # cli/serve.py's first line


LOG_BLOCK = 64 * 1024


def last_address(log_path: str, node_id: str) -> Optional[str]:
    """The HTTP URL ``node_id`` advertised at its last start, from its log (None if none).
    The log is read backwards from its end, a block at a time, up to that start's line:
    what the node wrote since, not the whole file (a log grows with every run)."""
    try:
        with open(log_path, "rb") as f:
            pos = f.seek(0, os.SEEK_END)
            partial = b""   # the start of the line cut by the block read before
            while pos > 0:
                step = min(LOG_BLOCK, pos)
                pos -= step
                f.seek(pos)
                lines = (f.read(step) + partial).split(b"\n")
                partial = lines.pop(0) if pos > 0 else b""
                for line in reversed(lines):
                    m = _STARTED.search(line)
                    if m and m.group(1).decode(errors="replace") == node_id:
                        return m.group(2).decode(errors="replace")
    except OSError:
        return None
    return None


def check_addresses(data_dir: str, nodes: int, base_port: int) -> None:
    """StartError if a node of this data dir last served at another address than this run
    would give it: the members know each other by their addresses, so nodes restarted on
    other ports cannot reach one another and are never ready."""
    launch = Nodes(data_dir, base_port)
    for i in range(nodes):
        was = last_address(launch.log_path(i), launch.node_id(i))
        if was is None or was == launch.url(i):
            continue
        port = urlsplit(was).port
        hint = (f"re-run with --base-port {port - i}" if port and port > i
                else "re-run with the ports it was started with")
        raise StartError(f"{launch.node_id(i)} of this data dir served at {was}, not "
                         f"{launch.url(i)}: its cluster knows its members by the addresses "
                         f"they started with; {hint}, or use another --data-dir for a new "
                         "cluster")


def up(nodes: int, base_port: int, data_dir: str, n: Optional[int], extra: list[str],
       ready_timeout_s: float = 60.0) -> int:
    data_dir = os.path.abspath(data_dir)
    if nodes < 1:
        print("dynamopy: error: --nodes must be at least 1", file=sys.stderr)
        return 2
    n = n if n is not None else min(3, nodes)
    try:
        check_replication(nodes, n, extra)
    except StartError as e:
        print(f"dynamopy: error: {e}", file=sys.stderr)
        return 2
    try:
        lock_fd = prepare_data_dir(data_dir)
        check_addresses(data_dir, nodes, base_port)
        check_ports(nodes, base_port)
        secret = os.environ.get("DYNAMOPY_CLUSTER_SECRET") or _secret(data_dir)
    except StartError as e:
        print(f"dynamopy: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"dynamopy: error: data dir {data_dir}: {e.strerror}", file=sys.stderr)
        return 1
    for flag in ("--r", "--w"):
        if flag not in extra:  # keep the default quorums valid when n < 3
            extra = [flag, str(min(2, n)), *extra]
    launch = Nodes(data_dir, base_port, env={"DYNAMOPY_CLUSTER_SECRET": secret})
    seeds = ",".join(launch.url(i) for i in range(nodes))
    stopping = False

    def stop(*_a) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    try:
        for i in range(nodes):
            launch.start(i, ["--seeds", seeds, "--n", str(n), *extra])
        try:
            if not launch.wait_ready(range(nodes), ready_timeout_s,
                                     interrupted=lambda: stopping, left_ok=True):
                return 130
        except (NodeExited, NotReady) as e:
            print(f"dynamopy: error: {e}", file=sys.stderr)
            return 1
        # A node that left by a graceful leave stays out (its data dir records it): it is
        # not waited for, and the table says so rather than failing the restart.
        left = [(launch.node_id(i), epoch, os.path.join(data_dir, launch.node_id(i)))
                for i, epoch in sorted(launch.left.items())]
        print_table(launch.url(min(set(range(nodes)) - set(launch.left), default=0)),
                    data_dir, left)
        reported: set[int] = set()
        while not stopping:
            for i in range(nodes):
                if not launch.running(i) and i not in reported and not stopping:
                    reported.add(i)
                    print(f"dynamopy: {NodeExited(launch, i)}\nthe other nodes keep running; "
                          "Ctrl-C stops them", file=sys.stderr, flush=True)
            time.sleep(0.5)
        return 1 if reported else 0
    finally:
        launch.stop()
        os.close(lock_fd)
        if launch.procs:
            print("cluster stopped", file=sys.stderr)


def print_table(url: str, data_dir: str, left: Sequence[tuple] = ()) -> None:
    """The members as the cluster lists them, example commands, and a line per node of
    this data dir that left the cluster by a graceful leave (``left``: id, epoch, its data
    dir): it runs but serves nothing and is not a member, as the README says."""
    # The nodes inherit DYNAMOPY_API_TOKEN from this process: ask and print with it (the
    # examples name the variable, never the secret).
    token = os.environ.get("DYNAMOPY_API_TOKEN") or None
    auth = ' -H "Authorization: Bearer $DYNAMOPY_API_TOKEN"' if token else ""
    with Client(url, token=token) as c:
        info = c.cluster()
    print(f"dynamopy cluster up: {len(info['members'])} nodes, N={info['n']} R={info['r']} "
          f"W={info['w']}, epoch {info['epoch']}, data in {data_dir}")
    print(f"{'id':<6} {'http':<24} {'peer':<18} {'state':<8}")
    for m in info["members"]:
        print(f"{m['id']:<6} {m['url']:<24} {m['peer']:<18} {m['state']:<8}")
    for node_id, epoch, path in left:
        print(f"{node_id} left the cluster (its graceful leave finished at epoch {epoch}) and "
              f"stays out: it runs but serves nothing; to add it again as a new node, stop "
              f"this, delete {path} and re-run")
    print("\ntry:")
    print(f"  curl{auth} -X PUT -H 'Content-Type: text/plain' --data-binary 'hello' "
          f"{url}/kv/greeting")
    print(f"  curl{auth} -i {url}/kv/greeting")
    print(f"  curl{auth} '{url}/kv/greeting?r=3'")
    print(f"  curl{auth} {url}/cluster")
    print("Ctrl-C stops every node.", flush=True)
