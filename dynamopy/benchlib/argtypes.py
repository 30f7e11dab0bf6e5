"""argparse ``type=`` checks for the benchmark scripts' flags.

A bad value (``--runs 0``, ``--seconds -1``, ``--quorums 4/1``) is refused by argparse itself,
before any process starts: it prints the usage line and ``argument --runs: ...`` on stderr
and exits with status 2, as for any other malformed flag.
"""

from __future__ import annotations

import argparse
import os
from typing import Callable

REPLICAS = 3  # the scripts start 3-node clusters with N=3


def _number(kind: type, words: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    def check(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {words}, got {text!r}") from None
        if not ok(value):  # also false for NaN
            raise argparse.ArgumentTypeError(f"must be {words}, got {text}")
        return value
    return check


positive_int = _number(int, "a whole number of 1 or more", lambda v: v >= 1)
positive_float = _number(float, "a number above 0", lambda v: 0 < v < float("inf"))
nonnegative_float = _number(float, "a number of 0 or more", lambda v: 0 <= v < float("inf"))
fraction = _number(float, "a number from 0 to 1", lambda v: 0 <= v <= 1)
share = _number(float, "a number above 0 and at most 1", lambda v: 0 < v <= 1)
nonnegative_int = _number(int, "a whole number of 0 or more", lambda v: v >= 0)
whole_seconds = _number(float, "at least 1 (wrk runs whole seconds)",
                        lambda v: 1 <= v < float("inf"))


def quorum_pairs(text: str) -> list[tuple[int, int]]:
    """``"2/2,1/1"`` -> ``[(2, 2), (1, 1)]``; each R and W from 1 to ``REPLICAS``."""
    pairs = []
    for part in text.split(","):
        r, sep, w = part.strip().partition("/")
        try:
            pair = (int(r), int(w)) if sep else None
        except ValueError:
            pair = None
        if pair is None or not all(1 <= q <= REPLICAS for q in pair):
            raise argparse.ArgumentTypeError(
                f"each pair must be R/W with R and W from 1 to {REPLICAS} (N={REPLICAS}), "
                f"got {part.strip()!r}")
        pairs.append(pair)
    return pairs


def existing_dir(text: str) -> str:
    """A folder that exists (the scripts make their own data folders inside it)."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"must be an existing folder, got {text!r}")
    return text
