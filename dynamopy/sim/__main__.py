"""``python -m dynamopy.sim``: run seeded metadata-log simulations.

    python -m dynamopy.sim --seed 17 [--nodes 5 --acceptors 3 ...]   # one run, full report
    python -m dynamopy.sim --seeds 0:1000 [...]                      # a range, with a summary
    python -m dynamopy.sim --system --seed 17 [-v] | --seeds 0:200  # whole nodes (system_cli.py)

Every failing run prints ``SEED=<n>`` with the flags that replay it. Exit status 1 if
any run failed. ``main(argv)`` is what the project CLI exposes as ``dynamopy sim``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Sequence

from .metalog_run import SimParams, run_metalog


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dynamopy sim", description="Seeded metadata-log (Multi-Paxos) simulation.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run one seed and print its report")
    which.add_argument("--seeds", help="run a range START:STOP (STOP excluded)")
    ap.add_argument("--system", action="store_true",
                    help="simulate whole nodes instead (dynamopy sim --system -h for its flags)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every run's report")
    defaults = SimParams(seed=0)
    for f in dataclasses.fields(SimParams):
        if f.name == "seed":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                            help=f"fault schedule: {f.name.replace('_', ' ')}")
        else:
            ap.add_argument(flag, type=type(default), default=default,
                            help=f"fault schedule: {f.name.replace('_', ' ')}")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--system" in argv:
        from .system_cli import main as system_main
        return system_main(argv)
    args = _parser().parse_args(argv)
    params = {f.name: getattr(args, f.name) for f in dataclasses.fields(SimParams) if f.name != "seed"}
    if args.seed is not None:
        result = run_metalog(args.seed, **params)
        print(result.report())
        return 0 if result.ok else 1
    try:
        start_s, stop_s = (int(x) for x in args.seeds.split(":"))
    except ValueError:
        print(f"--seeds wants START:STOP, got {args.seeds!r}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    failed: list[int] = []
    slots = converge = 0
    worst_converge = 0
    for seed in range(start_s, stop_s):
        result = run_metalog(seed, **params)
        if not result.ok:
            failed.append(seed)
            print(result.report(), flush=True)
        elif args.verbose:
            print(result.report(), flush=True)
        slots += result.stats.get("slots", 0)
        c = result.stats.get("converge_ticks") or 0
        converge += c
        worst_converge = max(worst_converge, c)
    n = max(stop_s - start_s, 0)
    elapsed = time.perf_counter() - t0
    print(
        f"seeds {start_s}:{stop_s}: {n} runs, {len(failed)} failed, {elapsed:.1f}s "
        f"({1000 * elapsed / max(n, 1):.1f} ms/run); avg slots {slots / max(n, 1):.1f}; "
        f"liveness: converged after avg {converge / max(n, 1):.1f} / max {worst_converge} ticks"
    )
    if failed:
        print("failed seeds: " + " ".join(map(str, failed[:50])))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
