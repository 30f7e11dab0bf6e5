"""`dynamopy cluster up`: start K local nodes on 127.0.0.1, wait until ready, stay in the
foreground; Ctrl-C or SIGTERM stops every node cleanly. Re-running it on the same data dir
restarts the same cluster with its data (the cluster secret is kept in the data dir)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from typing import Optional

from dynamopy.client import Client


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


def up(nodes: int, base_port: int, data_dir: str, n: Optional[int], extra: list[str],
       ready_timeout_s: float = 60.0) -> int:
    data_dir = os.path.abspath(data_dir)
    os.makedirs(data_dir, exist_ok=True)
    n = n if n is not None else min(3, nodes)
    env = {**os.environ, "DYNAMOPY_CLUSTER_SECRET": os.environ.get(
        "DYNAMOPY_CLUSTER_SECRET") or _secret(data_dir)}
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
    try:
        for i in range(nodes):
            log_path = os.path.join(data_dir, f"n{i + 1}.log")
            procs.append(subprocess.Popen(node_command(i, nodes, base_port, data_dir, n, extra),
                                          env=env, stdout=open(log_path, "ab"),
                                          stderr=subprocess.STDOUT, start_new_session=True))
        urls = [f"http://127.0.0.1:{base_port + i}" for i in range(nodes)]
        deadline = time.monotonic() + ready_timeout_s
        pending = set(urls)
        while pending and not stopping:
            for p, url in zip(procs, urls):
                if p.poll() is not None:
                    print(f"node at {url} exited with {p.returncode}; see {data_dir}/*.log",
                          file=sys.stderr)
                    return 1
            for url in list(pending):
                with Client(url, timeout_s=1.0) as c:
                    if c.ready():
                        pending.discard(url)
            if time.monotonic() > deadline:
                print(f"nodes not ready after {ready_timeout_s:.0f}s: {sorted(pending)}; "
                      f"see {data_dir}/*.log", file=sys.stderr)
                return 1
            time.sleep(0.2)
        if stopping:
            return 130
        print_table(urls[0], data_dir)
        while not stopping:
            for p in procs:
                if p.poll() is not None and not stopping:
                    print(f"a node exited with {p.returncode}; see {data_dir}/*.log",
                          file=sys.stderr)
            time.sleep(0.5)
        return 0
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
    print(f"  curl -X PUT --data-binary 'hello' {url}/kv/greeting")
    print(f"  curl {url}/kv/greeting")
    print(f"  curl '{url}/kv/greeting?r=3'")
    print(f"  curl {url}/cluster")
    print("Ctrl-C stops every node.", flush=True)
