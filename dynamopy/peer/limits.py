"""Resource limits of the peer port: what an unauthenticated or greedy connection may hold.

Threat: anyone who can reach the peer port can open connections and send bytes before proving
the cluster secret. Without limits, a connection that announces a 32 MiB frame makes the server
buffer 32 MiB for it, and a few hundred such connections exhaust the host.

Rules (enforced by ``PeerServer`` with the pieces below):

- Before the handshake completes, a frame may be at most ``PREAUTH_MAX_FRAME_BYTES`` (the
  handshake answer is ~100 bytes); a larger length header closes the connection at once,
  before its body is read.
- At most ``max_unauthenticated`` connections may be waiting for their handshake; a new one
  beyond that drops the *oldest* waiting connection (``UnauthenticatedSet``), as sshd's
  MaxStartups does: a real peer finishes its handshake in one round trip, an attacker's
  connections are the ones that linger.
- Bytes buffered for incomplete incoming frames are bounded per node (``BufferBudget``). A
  connection may hold up to ``FREE_FRAME_BYTES`` of an incomplete frame on its own (every small
  request, so the hot path never waits); a larger frame must first reserve its whole size from
  the node's budget, and until the reservation is granted the connection stops reading its
  socket (TCP back-pressure reaches the sender). Reservations are granted first come, first
  served; a frame larger than the whole budget is granted when nothing else is reserved, so
  every frame can make progress and the budget never deadlocks.

Bound: the bytes held for incoming peer frames are at most ``budget + connections x
(FREE_FRAME_BYTES + one socket read)``, with the unauthenticated connections capped as above.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Callable, Optional, Protocol

PREAUTH_MAX_FRAME_BYTES = 4096
FREE_FRAME_BYTES = 256 * 1024
DEFAULT_MAX_UNAUTHENTICATED = 64
DEFAULT_BUFFER_BYTES = 64 * 1024 * 1024


class _Waiter(Protocol):
    def on_budget_granted(self) -> None: ...


class BufferBudget:
    """A node-wide count of reserved bytes with a FIFO queue of connections waiting for room."""

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes <= 0:
            raise ValueError("the peer buffer budget must be positive")
        self.limit_bytes = limit_bytes
        self.used_bytes = 0
        self.peak_bytes = 0
        self.queued_total = 0       # reservations that had to wait (back-pressure applied)
        self._waiting: "collections.OrderedDict[_Waiter, int]" = collections.OrderedDict()

    def reserve(self, who: _Waiter, nbytes: int) -> bool:
        """Reserve ``nbytes`` for ``who`` now (True) or queue it (False; ``who.on_budget_granted``
        runs once the reservation is made). A connection waits for at most one reservation."""
        if not self._waiting and self._fits(nbytes):
            self._take(nbytes)
            return True
        self._waiting[who] = nbytes
        self.queued_total += 1
        return False

    def release(self, nbytes: int) -> None:
        self.used_bytes -= nbytes
        self._grant()

    def cancel(self, who: _Waiter) -> None:
        """Forget a queued reservation (the connection closed)."""
        if self._waiting.pop(who, None) is not None:
            self._grant()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _fits(self, nbytes: int) -> bool:
        return self.used_bytes == 0 or self.used_bytes + nbytes <= self.limit_bytes

    def _take(self, nbytes: int) -> None:
        self.used_bytes += nbytes
        if self.used_bytes > self.peak_bytes:
            self.peak_bytes = self.used_bytes

    def _grant(self) -> None:
        while self._waiting:
            who, nbytes = next(iter(self._waiting.items()))
            if not self._fits(nbytes):
                return
            del self._waiting[who]
            self._take(nbytes)
            who.on_budget_granted()


class UnauthenticatedSet:
    """Connections still in their handshake, oldest first, capped."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the cap on unauthenticated peer connections must be at least 1")
        self.limit = limit
        self._conns: "collections.OrderedDict[object, None]" = collections.OrderedDict()

    def add(self, conn) -> list:
        """Track ``conn``; returns the oldest connections that must be dropped to stay within
        the cap (never ``conn`` itself)."""
        self._conns[conn] = None
        evicted = []
        while len(self._conns) > self.limit:
            oldest = next(iter(self._conns))
            del self._conns[oldest]
            evicted.append(oldest)
        return evicted

    def discard(self, conn) -> None:
        self._conns.pop(conn, None)

    def __len__(self) -> int:
        return len(self._conns)


class ThrottledLog:
    """At most one log line per ``interval_s`` for events an unauthenticated sender can cause
    at will (so an attacker cannot fill the disk through our log); the lines in between are
    counted and the count is reported with the next line."""

    def __init__(self, logger: logging.Logger, interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._clock = clock
        self._next_at = 0.0
        self._suppressed = 0

    def warning(self, msg: str, *args) -> None:
        now = self._clock()
        if now < self._next_at:
            self._suppressed += 1
            return
        self._next_at = now + self._interval_s
        if self._suppressed:
            msg += " (and %d similar events not logged)"
            args = (*args, self._suppressed)
            self._suppressed = 0
        self._log.warning(msg, *args)


OnReject = Optional[Callable[[str], None]]
"""``on_reject(reason)`` is called once per connection the limits close; reasons:
``unauthenticated_cap``, ``handshake_timeout``, ``handshake_failed``, ``preauth_bad_frame``."""
