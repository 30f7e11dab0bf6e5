"""Clock offsets between members, estimated from ping exchanges (pure: times are passed in).

A ping carries no clock reading out; its reply carries the peer's wall clock ``peer_ms``. With
``sent_ms``/``received_ms`` read on this node's wall clock around the exchange, the peer's
offset (its clock minus ours) is estimated NTP-style as::

    offset = peer_ms - (sent_ms + received_ms) / 2      with uncertainty  rtt / 2

Rules:

* Each peer keeps its last ``window`` samples; the estimate is the fresh sample with the
  smallest round trip (NTP's clock filter: queueing delay only ever adds error).
* Samples older than ``max_age_s`` (on the monotonic clock) are stale and ignored: a peer
  not heard from recently says nothing about our clock.
* This node is *skewed* when its offset from a majority of its peers (all other members,
  heard from or not) certainly exceeds ``max_offset_ms``: ``|offset| - rtt/2 > max``. A
  minority of far peers never fences this node (they are the ones off), and uncertainty
  never does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from statistics import median
from typing import Iterable, Optional


@dataclass(frozen=True, slots=True)
class OffsetSample:
    offset_ms: float    # the peer's clock minus ours
    rtt_ms: float
    at_s: float         # when it was taken (monotonic seconds)


@dataclass(frozen=True, slots=True)
class SkewVerdict:
    skewed: bool
    offset_ms: float    # this node's clock minus the median of its measured peers' clocks
    far: int            # peers certainly more than max_offset_ms away
    measured: int       # peers with a fresh estimate
    peers: int          # all peers


@dataclass
class PeerOffsets:
    window: int = 8
    max_age_s: float = 10.0
    _samples: dict[str, deque] = field(default_factory=dict)

    def sample(self, peer: str, sent_ms: int, peer_ms: int, received_ms: int,
               now_s: float) -> None:
        rtt = max(0, received_ms - sent_ms)
        offset = peer_ms - (sent_ms + received_ms) / 2
        q = self._samples.get(peer)
        if q is None:
            q = self._samples[peer] = deque(maxlen=self.window)
        q.append(OffsetSample(offset, rtt, now_s))

    def estimate(self, peer: str, now_s: float) -> Optional[OffsetSample]:
        fresh = [s for s in self._samples.get(peer, ()) if now_s - s.at_s <= self.max_age_s]
        return min(fresh, key=lambda s: s.rtt_ms) if fresh else None

    def forget(self, keep: Iterable[str]) -> None:
        keep = set(keep)
        for peer in [p for p in self._samples if p not in keep]:
            del self._samples[peer]

    def verdict(self, peers: Iterable[str], now_s: float, max_offset_ms: float) -> SkewVerdict:
        peers = list(peers)
        estimates = [e for e in (self.estimate(p, now_s) for p in peers) if e is not None]
        far = sum(1 for e in estimates if abs(e.offset_ms) - e.rtt_ms / 2 > max_offset_ms)
        mine = -median(e.offset_ms for e in estimates) if estimates else 0.0
        skewed = max_offset_ms > 0 and bool(peers) and far * 2 > len(peers)
        return SkewVerdict(skewed, mine, far, len(estimates), len(peers))
