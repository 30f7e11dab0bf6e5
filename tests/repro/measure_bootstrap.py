"""How long a fresh cluster takes to be ready: ``dynamopy cluster up`` (the Quick start) on
an empty data directory, from start to the printed table (every node ready), several runs.
Prints one line per run and the median. A seed on an empty directory listens 0.5 s for a
cluster that lists it before it bootstraps (node/bootstrap.py ``LISTEN_S``): this shows what
that costs. Busy-machine numbers are noisy: say the load next to every figure.

    python tests/repro/measure_bootstrap.py [--runs 5] [--nodes 3] [--tree PATH]

``--tree``: run another source tree (e.g. an export of main) through PYTHONPATH."""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from dynamopy.launch import find_base_port


def one(nodes: int, tree: str) -> float:
    env = dict(os.environ, DYNAMOPY_CLUSTER_SECRET="measure-bootstrap")
    if tree:
        env["PYTHONPATH"] = tree
    base = find_base_port(15000 + (os.getpid() % 200) * 10, nodes)
    with tempfile.TemporaryDirectory(prefix="dynamopy-boot-") as d:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "dynamopy", "cluster", "up", "--nodes",
                                 str(nodes), "--base-port", str(base), "--data-dir", d],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        try:
            for line in proc.stdout:  # the table is printed once every node is ready
                if line.strip():
                    took = time.monotonic() - started
                    break
            else:
                raise RuntimeError("cluster up exited before it was ready")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--tree", default="")
    a = ap.parse_args()
    times = []
    for i in range(a.runs):
        times.append(one(a.nodes, a.tree))
        print(f"run {i + 1}: ready after {times[-1]:.2f} s (load {os.getloadavg()[0]:.1f})",
              flush=True)
    print(f"median {statistics.median(times):.2f} s over {a.runs} runs, {a.nodes} nodes, "
          f"tree {a.tree or 'this one'}")


if __name__ == "__main__":
    main()
