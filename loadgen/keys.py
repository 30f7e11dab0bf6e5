"""Key choice for the workload: ``uniform``, ``zipfian`` and ``latest`` (as in YCSB).

Rules:

* Keys are numbered ``0..keys-1`` and named ``key_name(i)``. Driver process ``part`` of
  ``parts`` only ever touches keys ``i`` with ``i % parts == part``, so each process sees every
  acknowledgement of its keys (the stale-read bookkeeping needs that, see ``staleness``).
  Within its share a process draws from the named distribution; with one process that is the
  distribution over all keys, with more it is a mix of one such distribution per share.
* ``zipfian``: rank ``k`` (0 = hottest) with probability proportional to ``1/(k+1)^theta``,
  theta 0.99 (YCSB's constant), drawn exactly from the cumulative distribution (YCSB uses
  Gray et al.'s O(1) approximation, which is exact only for the two hottest ranks).
* ``latest``: writes walk the keys in order (a moving "insert" point that wraps around), reads
  pick the key written ``k`` writes ago with ``k`` zipfian, so recently written keys are read
  most (YCSB's workload D).
* ``uniform``: every key of the share equally.
* Deterministic: all draws come from the ``random.Random`` passed in.
"""

from __future__ import annotations

import bisect
import random

DISTRIBUTIONS = ("uniform", "zipfian", "latest")
ZIPF_THETA = 0.99


def key_name(i: int) -> str:
    """URL-safe, so it goes into a request path as it is."""
    return f"lg-{i:07d}"


class Zipfian:
    """Ranks ``0..n-1``, rank 0 the most likely: P(k) = (1/(k+1)^theta) / zeta(n, theta),
    drawn exactly by bisecting the cumulative distribution (O(n) memory once, O(log n) a
    draw; 10,000 keys take 80 kB)."""

    def __init__(self, n: int, theta: float = ZIPF_THETA) -> None:
        if n < 1:
            raise ValueError("a zipfian needs at least one item")
        self.n, self.theta = n, theta
        weights = [1.0 / (k + 1) ** theta for k in range(n)]
        self.zetan = sum(weights)
        acc, cdf = 0.0, []
        for wgt in weights:
            acc += wgt
            cdf.append(acc / self.zetan)
        cdf[-1] = 1.0
        self.cdf = cdf

    def probability(self, rank: int) -> float:
        """The exact probability of ``rank`` (for tests and reports)."""
        return (1.0 / (rank + 1) ** self.theta) / self.zetan

    def draw(self, rng: random.Random) -> int:
        return min(self.n - 1, bisect.bisect_right(self.cdf, rng.random()))


class KeyPicker:
    """Which key the next read or write of one driver process goes to."""

    def __init__(self, distribution: str, keys: int, part: int, parts: int,
                 rng: random.Random) -> None:
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {distribution!r}; "
                             f"choose one of {', '.join(DISTRIBUTIONS)}")
        if not 0 <= part < parts or keys < parts:
            raise ValueError(f"need 0 <= part < parts <= keys, got {part}, {parts}, {keys}")
        self.distribution, self.part, self.parts = distribution, part, parts
        self.share = len(range(part, keys, parts))  # keys of this process
        self.rng = rng
        self.zipf = Zipfian(self.share) if distribution != "uniform" else None
        self.head = self.share - 1  # "latest": the share index written most recently

    def own(self) -> range:
        """Every key index of this process's share."""
        return range(self.part, self.part + self.parts * self.share, self.parts)

    def _index(self, j: int) -> int:
        return self.part + self.parts * j

    def pick(self, is_read: bool) -> int:
        d = self.distribution
        if d == "uniform":
            return self._index(self.rng.randrange(self.share))
        if d == "zipfian":
            return self._index(self.zipf.draw(self.rng))
        if is_read:
            return self._index((self.head - self.zipf.draw(self.rng)) % self.share)
        self.head = (self.head + 1) % self.share
        return self._index(self.head)
