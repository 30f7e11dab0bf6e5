"""Balance, movement and speed report for the ring: ``python -m dynamopy.benchlib.ring_bench``.

Prints numbers, asserts nothing (the tests check balance and movement; time
is machine-dependent). Every random choice comes from a seeded
``random.Random``, so two runs print the same balance and movement figures.

Columns:
- balance: max/mean of primary ownership and of replica load (appearances
  in preference lists of length N), for a fresh ring, after one add and after
  one remove. Target: at most 1.10.
- movement: on add, the share of keys whose replica set changed (sampled
  over random keys, and exactly from ``moves``), against N/(m+1) (the share
  of keys the joiner now replicates; target: exact share within 15%),
  and the share of keys whose set changed without gaining the joiner
  (target 0); on remove, the share changed against N/m and the share changed
  although the set did not include the leaver (target at most 1%).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

from ring import TOKEN_SPACE, Ring

SIZES = (3, 8, 16, 32, 64)


def balance(ring: Ring, n: int) -> tuple[float, float]:
    """(primary max/mean, replica-load max/mean) with lists of length ``n``."""
    members = len(ring.members)
    primary = max(ring.ownership().values()) * members
    replica = max(ring.replica_load(n).values()) * members / n
    return primary, replica


def changed_share(
    before: Ring, after: Ring, keys: Sequence[str], n: int, member: str, *, joined: bool
) -> tuple[float, float]:
    """(share of keys whose replica set changed, share that changed without ``member`` being involved)."""
    changed = stray = 0
    for key in keys:
        old = set(before.preference_list(key, n))
        new = set(after.preference_list(key, n))
        if old != new:
            changed += 1
            if member not in (new if joined else old):
                stray += 1
    return changed / len(keys), stray / len(keys)


def moved_share(before: Ring, after: Ring, n: int) -> float:
    """Exact share of the token space whose replica set changed (from ``moves``)."""
    return sum(move.end - move.start for move in before.moves(after, n)) / TOKEN_SPACE


def churn(rng: random.Random, start: int, steps: int, n: int, low: int, high: int) -> tuple[float, float, float]:
    """Worst primary and replica balance and worst stray share over random adds and removes."""
    ring = Ring.build([f"c{i}" for i in range(start)])
    next_id = start
    worst_primary = worst_replica = worst_stray = 0.0
    for _ in range(steps):
        size = len(ring.members)
        if size <= low or (size < high and rng.random() < 0.5):
            member = f"c{next_id}"
            next_id += 1
            after, joined = ring.add(member), True
        else:
            member = rng.choice(ring.members)
            after, joined = ring.remove(member), False
        for move in ring.moves(after, n):
            involved = move.new if joined else move.old
            if member not in involved:
                worst_stray = max(worst_stray, (move.end - move.start) / TOKEN_SPACE)
        ring = after
        primary, replica = balance(ring, n)
        worst_primary = max(worst_primary, primary)
        worst_replica = max(worst_replica, replica)
    return worst_primary, worst_replica, worst_stray


def calls_per_second(ring: Ring, keys: Sequence[str], n: int) -> float:
    ring.preference_list(keys[0], n)  # build the cached table outside the timing
    preference_list = ring.preference_list
    began = time.perf_counter()
    for key in keys:
        preference_list(key, n)
    return len(keys) / (time.perf_counter() - began)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dynamopy.benchlib.ring_bench",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=50_000, help="random keys per movement check")
    parser.add_argument("--n", type=int, default=3, help="preference-list length N")
    parser.add_argument("--seed", type=int, default=1, help="seed of the bench's random.Random")
    args = parser.parse_args(argv)
    n = args.n
    rng = random.Random(args.seed)
    keys = [f"key:{rng.getrandbits(64):016x}" for _ in range(args.keys)]

    defaults = Ring.build(["a"])
    print(f"ring defaults: partitions={defaults.partition_count} seed={defaults.seed} spread={defaults.spread}; N={n}")
    print()
    print("balance (max/mean, target <= 1.10)")
    print(f"{'members':>7} | {'primary':>7} {'replica':>7} | {'+1 prim':>7} {'+1 repl':>7} | {'-1 prim':>7} {'-1 repl':>7}")
    for size in SIZES:
        ring = Ring.build([f"n{i}" for i in range(size)])
        grown = ring.add("joiner")
        row = [*balance(ring, n), *balance(grown, n)]
        if size - 1 >= n:
            row += balance(ring.remove(rng.choice(ring.members)), n)
        cells = " ".join(f"{value:7.3f}" for value in row[:2])
        cells += " | " + " ".join(f"{value:7.3f}" for value in row[2:4])
        cells += " | " + (" ".join(f"{value:7.3f}" for value in row[4:]) if len(row) > 4 else f"{'n/a':>7} {'n/a':>7}")
        print(f"{size:>7} | {cells}")

    print()
    print(f"movement over {len(keys)} random keys (add: changed vs N/(m+1), within 15%; remove: changed vs N/m)")
    print(
        f"{'members':>7} | {'add chg':>7} {'exact':>7} {'N/(m+1)':>7} {'dev':>6} {'other':>6} | "
        f"{'rm chg':>7} {'exact':>7} {'N/m':>7} {'other':>6}"
    )
    for size in SIZES:
        ring = Ring.build([f"n{i}" for i in range(size)])
        grown = ring.add("joiner")
        add_share, add_stray = changed_share(ring, grown, keys, n, "joiner", joined=True)
        expected_add = n / (size + 1)
        add_exact = moved_share(ring, grown, n)
        line = (
            f"{size:>7} | {add_share:7.4f} {add_exact:7.4f} {expected_add:7.4f} "
            f"{add_exact / expected_add - 1:+6.1%} {add_stray:6.2%} | "
        )
        if size - 1 >= n:
            leaver = rng.choice(ring.members)
            shrunk = ring.remove(leaver)
            rm_share, rm_stray = changed_share(ring, shrunk, keys, n, leaver, joined=False)
            line += f"{rm_share:7.4f} {moved_share(ring, shrunk, n):7.4f} {n / size:7.4f} {rm_stray:6.2%}"
        else:
            line += f"{'n/a':>7} {'n/a':>7} {'n/a':>7} {'n/a':>6}"
        print(line)

    print()
    for low, high, steps in ((n, 8, 60), (n, 64, 120)):
        primary, replica, stray = churn(rng, low + 2, steps, n, low, high)
        print(
            f"churn: {steps} random adds/removes between {low} and {high} members: worst primary {primary:.3f}, "
            f"worst replica {replica:.3f}, largest range changed without the joiner/leaver {stray:.2%}"
        )

    print()
    for size in (8, 64):
        ring = Ring.build([f"n{i}" for i in range(size)])
        rate = calls_per_second(ring, keys * max(1, 200_000 // len(keys)), n)
        print(f"preference_list(key, {n}) on {size} members: {rate:,.0f} calls/s (target >= 100,000)")
    names = [f"node-{i:03d}" for i in range(256)]
    began = time.perf_counter()
    big = Ring.build(names)
    built = time.perf_counter()
    grown = big.add("node-256")
    added = time.perf_counter()
    big.remove("node-100")
    removed = time.perf_counter()
    print(
        f"256 members: build {1000 * (built - began):.1f} ms, add one {1000 * (added - built):.1f} ms, "
        f"remove one {1000 * (removed - added):.1f} ms; balance {'/'.join(f'{v:.3f}' for v in balance(big, n))}, "
        f"after add {'/'.join(f'{v:.3f}' for v in balance(grown, n))}"
    )


if __name__ == "__main__":
    main()
