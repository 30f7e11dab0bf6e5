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

Restarts (the durable *mark*). A clock forgets everything when its process stops, so the
runtime keeps one number on disk, the mark, with this invariant:

* **every version the node ever issued has** ``physical_ms <= mark``.

The runtime keeps the mark about ``lead_ms`` ahead of the wall clock (:func:`extended_mark`,
synced in the background), and a version beyond the durable mark waits for a synced extension
before it is used. On start it observes :func:`resume_floor` (so the next version is larger
than any issued before) and first waits :func:`resume_wait_ms` until its wall clock has passed
the mark. So a restart never moves the clock ahead of the wall clock, however many restarts
happen: the mark is ``max(wall + lead, versions issued)``, never ``mark + lead`` (adding a
margin to a mark that already holds one is what made versions drift without bound). A clean
stop stores the exact last physical time, so it needs no wait at all. Only a wall clock
that stepped back by more than ``2 * lead_ms`` is not waited for: the clock then runs on from
the mark (still unique, ahead of that wall clock by the step).
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


def physical_ms(version: int) -> int:
    """The wall-clock part of a version."""
    return version >> (MEMBER_BITS + COUNTER_BITS)


def resume_floor(mark_ms: int) -> int:
    """A version to observe on start: every version issued with ``physical_ms <= mark_ms``
    (any counter, any member number) is below the next one the clock issues."""
    return compose(mark_ms, _COUNTER_MASK, 0)


def resume_wait_ms(mark_ms: int, wall_ms: int, lead_ms: int) -> int:
    """How long a starting node waits before issuing, so its first version is at its own
    wall clock rather than ahead of it. 0 when the wall clock is already past the mark, and
    0 when the mark is more than ``2 * lead_ms`` ahead (the wall clock stepped back: waiting
    that out could take hours; the clock runs on from the mark instead)."""
    gap = mark_ms - wall_ms
    if gap < 0 or gap > 2 * lead_ms:
        return 0
    return gap + 1


def extended_mark(mark_ms: int, needed_ms: int, wall_ms: int, lead_ms: int) -> int:
    """The mark to store so that ``needed_ms`` may be issued: never lower than before, never
    below the versions issued (``needed_ms``), and ``lead_ms`` ahead of the wall clock so the
    write path rarely waits. It is built from the wall clock and the versions actually
    needed, never by adding ``lead_ms`` to an older mark, so restarts cannot accumulate it."""
    return max(mark_ms, needed_ms, wall_ms + lead_ms)


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
        # (physical_ms, counter) as one integer: comparing it is comparing the pair (the
        # counter fits its bits), without decomposing (this runs for every reply). A version
        # <= 0 gives a pair <= (0, 0): it never moves the clock.
        seen = version >> MEMBER_BITS
        if seen >= ((self.last_ms << COUNTER_BITS) | self.counter):
            # Equal (ms, counter) from another member: our next() must still exceed it,
            # and next() always increments past (last_ms, counter), so adopting it is enough.
            self.last_ms, self.counter = seen >> COUNTER_BITS, seen & _COUNTER_MASK
