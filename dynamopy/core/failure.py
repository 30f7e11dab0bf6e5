"""Failure detection decisions (pure): phi accrual over heartbeat arrivals plus hard evidence.

A peer is *down* when either

* ``phi`` (Hayashibara et al., as in Cassandra and Akka) exceeds the threshold: the time
  since the last successful contact is improbably long given the recent inter-arrival times
  (modelled as exponential with the observed mean, floored at ``min_interval_s``), or
* the last ``fail_after`` contacts in a row failed (refused connection, timeout): a
  SIGKILLed or paused process is seen at once, not after the statistics catch up.

A single success makes the peer *alive* again. Times are passed in by the caller.

``is_up`` runs several times per client request (planning every quorum round), so the
verdict is kept as one number, ``up_until``, recomputed only when a contact is reported:
``phi(now) <= threshold`` is ``now - last_ok <= threshold * mean * ln 10``, i.e.
``now <= last_ok + threshold * mean * ln 10`` (``-inf`` once ``fail_after`` contacts in a row
failed, ``+inf`` before the first success).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

_LN10 = math.log(10)


@dataclass
class PeerHealth:
    threshold: float = 8.0
    fail_after: int = 2
    min_interval_s: float = 0.2
    last_ok: Optional[float] = None
    consecutive_failures: int = 0
    down_since: Optional[float] = None
    intervals: deque = field(default_factory=lambda: deque(maxlen=100))

    interval_sum: float = 0.0  # running sum of ``intervals`` (is_up runs per request)
    up_until: float = math.inf  # is_up(now) is ``now <= up_until`` (module docstring)

    def _recompute(self) -> None:
        if self.consecutive_failures >= self.fail_after:
            self.up_until = -math.inf
        elif self.last_ok is None:
            self.up_until = math.inf
        else:
            self.up_until = self.last_ok + self.threshold * self._mean() * _LN10

    def _mean(self) -> float:
        return max(self.min_interval_s,
                   self.interval_sum / len(self.intervals) if self.intervals else 0.0)

    def success(self, now: float) -> None:
        if self.last_ok is not None and now > self.last_ok:
            if len(self.intervals) == self.intervals.maxlen:
                self.interval_sum -= self.intervals[0]
            self.intervals.append(now - self.last_ok)
            self.interval_sum += now - self.last_ok
        self.last_ok = now
        self.consecutive_failures = 0
        self.down_since = None
        self._recompute()

    def failure(self, now: float) -> None:
        self.consecutive_failures += 1
        if self.down_since is None and self.consecutive_failures >= self.fail_after:
            self.down_since = now
        self._recompute()

    def phi(self, now: float) -> float:
        if self.last_ok is None:
            return 0.0
        mean = self._mean()
        elapsed = max(0.0, now - self.last_ok)
        return elapsed / (mean * math.log(10))

    def is_up(self, now: float) -> bool:
        """``phi(now) <= threshold`` and fewer than ``fail_after`` failures in a row."""
        return now <= self.up_until

    def down_for(self, now: float) -> float:
        """Seconds this peer has been down (0 while up)."""
        if self.is_up(now):
            return 0.0
        if self.down_since is None:
            # Down by phi alone: count from the last success.
            return now - (self.last_ok or now)
        return now - self.down_since
