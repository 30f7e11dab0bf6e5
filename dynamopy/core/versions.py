"""Versions from a hybrid logical clock (HLC).

A version is a positive integer laid out as::

    version = ((physical_ms << COUNTER_BITS) | counter) << MEMBER_BITS | member_number

Rules (each one is tested):

* unique per write across the cluster: two members never share a member number, and one
  member never issues the same (physical_ms, counter) twice;
* monotonic per member: every version a clock issues is larger than every version it has
  issued or observed before, even when the wall clock steps backwards;
* close to real time: while the wall clock moves forward, ``physical_ms`` is the wall clock.

The clock never reads time itself: the caller passes ``wall_ms``. That keeps it pure and lets
tests and the simulator step time backwards at will.
"""

from __future__ import annotations

from dataclasses import dataclass

MEMBER_BITS = 10
COUNTER_BITS = 12
MAX_MEMBER_NUMBER = (1 << MEMBER_BITS) - 1
_COUNTER_MASK = (1 << COUNTER_BITS) - 1
_MEMBER_MASK = (1 << MEMBER_BITS) - 1


def compose(physical_ms: int, counter: int, member_number: int) -> int:
    """Pack the three fields into one version integer."""
    return ((physical_ms << COUNTER_BITS) | counter) << MEMBER_BITS | member_number


def decompose(version: int) -> tuple[int, int, int]:
    """Inverse of :func:`compose`: (physical_ms, counter, member_number)."""
    member = version & _MEMBER_MASK
    rest = version >> MEMBER_BITS
    return rest >> COUNTER_BITS, rest & _COUNTER_MASK, member


@dataclass
class HybridClock:
    """Issues versions for one member. Not thread-safe; one per node runtime."""

    member_number: int
    last_ms: int = 0
    counter: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.member_number <= MAX_MEMBER_NUMBER:
            raise ValueError(
                f"member number {self.member_number} outside 1..{MAX_MEMBER_NUMBER}"
            )

    def next(self, wall_ms: int) -> int:
        """A new version, larger than anything issued or observed so far."""
        if wall_ms > self.last_ms:
            self.last_ms, self.counter = wall_ms, 0
        elif self.counter < _COUNTER_MASK:
            self.counter += 1
        else:
            # The counter is exhausted within one millisecond: borrow from the future.
            # Physical time catches up as soon as the wall clock passes last_ms.
            self.last_ms, self.counter = self.last_ms + 1, 0
        return compose(self.last_ms, self.counter, self.member_number)

    def observe(self, version: int) -> None:
        """Remember a version seen elsewhere so the next one issued is larger."""
        if version <= 0:
            return
        ms, counter, _ = decompose(version)
        if (ms, counter) >= (self.last_ms, self.counter):
            # Equal (ms, counter) from another member: our next() must still exceed it,
            # and next() always increments past (last_ms, counter), so adopting it is enough.
            self.last_ms, self.counter = ms, counter
