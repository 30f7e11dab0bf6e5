"""Failure detection decisions (pure): phi accrual over heartbeat arrivals plus hard evidence.

A peer is *down* when either

* ``phi`` (Hayashibara et al., as in Cassandra and Akka) exceeds the threshold: the time
  since the last successful contact is improbably long given the recent inter-arrival times
  (modelled as exponential with the observed mean, floored at ``min_interval_s``), or
* the last ``fail_after`` contacts in a row failed (refused connection, timeout): a
  SIGKILLed or paused process is seen at once, not after the statistics catch up.

A single success makes the peer *alive* again. Times are passed in by the caller.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Optional


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

    def success(self, now: float) -> None:
        if self.last_ok is not None and now > self.last_ok:
            if len(self.intervals) == self.intervals.maxlen:
                self.interval_sum -= self.intervals[0]
            self.intervals.append(now - self.last_ok)
            self.interval_sum += now - self.last_ok
        self.last_ok = now
        self.consecutive_failures = 0
        self.down_since = None

    def failure(self, now: float) -> None:
        self.consecutive_failures += 1
        if self.down_since is None and self.consecutive_failures >= self.fail_after:
            self.down_since = now

    def phi(self, now: float) -> float:
        if self.last_ok is None:
            return 0.0
        mean = max(self.min_interval_s,
                   self.interval_sum / len(self.intervals) if self.intervals else 0.0)
        elapsed = max(0.0, now - self.last_ok)
        return elapsed / (mean * math.log(10))

    def is_up(self, now: float) -> bool:
        if self.consecutive_failures >= self.fail_after:
            return False
        return self.phi(now) <= self.threshold

    def down_for(self, now: float) -> float:
        """Seconds this peer has been down (0 while up)."""
        if self.is_up(now):
            return 0.0
        if self.down_since is None:
            # Down by phi alone: count from the last success.
            return now - (self.last_ok or now)
        return now - self.down_since
