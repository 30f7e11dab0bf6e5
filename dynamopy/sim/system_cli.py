"""``dynamopy sim --system``: seeded whole-node simulations (``sim/system_run.py``).

    dynamopy sim --system --seed 17 [-v]        # one run; -v adds schedule, workload, traces
    dynamopy sim --system --seeds 0:200 [...]   # a range: failing runs' reports, then a summary

Every failing run prints ``SEED=<n> FAILED`` and the command that replays it; the output of
a run is a pure function of its flags (no wall-clock figure in it, except the range
summary's elapsed time). Exit status 1 if any run failed, 2 on bad flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from typing import Sequence

from .system_run import SystemParams, run_system


HELP = {
    "nodes": "nodes in the cluster (all bootstrap seeds)",
    "n": "replicas per key (N)",
    "r": "the cluster's default read quorum (R)",
    "w": "the cluster's default write quorum (W)",
    "duration_ms": "virtual ms of the safety phase; every fault is healed then",
    "faults": "fault windows the nemesis tries to place",
    "kinds": "fault kinds, comma-separated",
    "spares": "spare nodes that may join (needs join in --kinds and --changes)",
    "changes": "membership changes (join, leave, remove) the nemesis tries to place",
    "max_clock_jump_ms": "largest clock jump of one node, either way",
    "max_slow_disk_ms": "slowest sync of a slow disk (the slow_disk fault draws 50 ms up to this)",
    "wipes": "most disks wiped per run (with wipe in --kinds): the node restarts empty as a replacement",
    "crash_in_set_group": "an adversary crashes the metadata leader or a group member while a group change "
                          "is in flight (when the down budget allows), restarting it before the next fault",
    "buggify": "share of the nodes' BUGGIFY knobs enabled per run, each then firing at 25%% of its "
               "visits until healing (0: off)",
    "unavailable": "let faults take down more than N-W nodes at once",
    "clients": "clients, each with one operation in flight",
    "ops_per_client": "operations per client (in the safety phase)",
    "keys": "keys the clients share (k0 is hot)",
    "strict": "share of operations with strict=true",
    "bound_ms": "liveness bound: operations from heal + this on must succeed",
    "client_timeout_ms": "a client gives up on an operation after this (outcome unknown)",
    "request_timeout_ms": "the nodes' request timeout (--request-timeout-s)",
    "anti_entropy_interval_ms": "the nodes' anti-entropy interval (--anti-entropy-interval-s; 0: off)",
    "tombstone_grace_ms": "the cluster's tombstone grace in virtual ms, short enough for purges to run "
                          "(after anti-entropy rounds, at most every grace), with the longest hint window "
                          "it covers (0: the default 10 days, no purge)",
    "delete": "share of client operations that are deletes",
}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dynamopy sim --system",
                                 description="Seeded simulation of whole nodes (data path, hints, "
                                             "read repair, metadata log) under a fault schedule.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--system", action="store_true", required=True, help="simulate whole nodes")
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run one seed and print its report")
    which.add_argument("--seeds", help="run a range START:STOP (STOP excluded)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print the schedule, the workload and the trace of every key a violation names")
    defaults = SystemParams()
    for f in dataclasses.fields(SystemParams):
        if f.name == "seed":
            continue
        flag, default = "--" + f.name.replace("_", "-"), getattr(defaults, f.name)
        if isinstance(default, bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=HELP[f.name])
        else:
            ap.add_argument(flag, type=type(default), default=default, help=HELP[f.name])
    return ap


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(SystemParams) if f.name != "seed"}
    logging.disable(logging.CRITICAL)  # the nodes' own log lines are noise next to the report
    try:
        SystemParams(**fields)
    except ValueError as e:
        print(f"dynamopy sim --system: {e}", file=sys.stderr)
        return 2
    if args.seed is not None:
        result = run_system(SystemParams(seed=args.seed, **fields))
        print(result.report(verbose=args.verbose))
        return 0 if result.ok else 1
    try:
        start, stop = (int(x) for x in args.seeds.split(":"))
    except ValueError:
        print(f"--seeds wants START:STOP, got {args.seeds!r}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    failed: list[int] = []
    for seed in range(start, stop):
        result = run_system(SystemParams(seed=seed, **fields))
        if not result.ok:
            failed.append(seed)
        if not result.ok or args.verbose:
            print(result.report(verbose=args.verbose), flush=True)
    n = max(stop - start, 0)
    elapsed = time.perf_counter() - t0
    print(f"system seeds {start}:{stop}: {n} runs, {len(failed)} failed, {elapsed:.1f}s "
          f"({1000 * elapsed / max(n, 1):.0f} ms/run)")
    if failed:
        print("failed seeds: " + " ".join(map(str, failed[:50])))
    return 1 if failed else 0
