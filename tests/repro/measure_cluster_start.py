"""How long the integration harness takes to start a 3-node cluster (``LocalCluster.start``:
spawn to every node ready), to stop it, and optionally to restart one node, several runs.
Prints one line per run and the medians with the load. Busy-machine numbers are noisy: say
the load next to every figure, and compare two trees interleaved (``--tree`` runs another
source tree, e.g. an export of main, for both the harness and the nodes).

    python tests/repro/measure_cluster_start.py [--runs 10] [--restarts 0] [--tree PATH]

A/B, interleaved (one run of each tree in turn)::

    for k in 1 2 3 4 5; do for t in /tmp/main /tmp/branch; do
        python tests/repro/measure_cluster_start.py --runs 1 --tree $t | tail -3; done; done
"""

import argparse
import os
import statistics
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--restarts", type=int, default=0, help="restarts of node 2 per run")
    ap.add_argument("--tree", default="")
    a = ap.parse_args()
    if a.tree:
        # The nodes the harness spawns import it too: ``python -m`` puts the working
        # directory first on their path, so run from the tree as well as through PYTHONPATH.
        os.environ["PYTHONPATH"] = a.tree
        os.chdir(a.tree)
        sys.path.insert(0, a.tree)
    else:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))))
    from tests.integration.cluster import LocalCluster

    starts, stops, restarts = [], [], []
    for k in range(a.runs):
        with tempfile.TemporaryDirectory(prefix="dynamopy-start-") as d:
            c = LocalCluster(d, 3)
            t = time.monotonic()
            c.start()
            starts.append(time.monotonic() - t)
            try:
                for _ in range(a.restarts):
                    t = time.monotonic()
                    c.restart(1)
                    restarts.append(time.monotonic() - t)
            finally:
                t = time.monotonic()
                c.stop()
                stops.append(time.monotonic() - t)
        print(f"run {k + 1}: ready after {starts[-1]:.2f} s, stopped in {stops[-1]:.2f} s"
              + (f", restarts {' '.join(f'{r:.2f}' for r in restarts[-a.restarts:])} s"
                 if a.restarts else "") + f" (load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"start: median {statistics.median(starts):.2f} s, max {max(starts):.2f} s over "
          f"{a.runs} runs, tree {a.tree or 'this one'}")
    print(f"stop: median {statistics.median(stops):.2f} s")
    if restarts:
        print(f"restart: median {statistics.median(restarts):.2f} s, max {max(restarts):.2f} s")


if __name__ == "__main__":
    main()
