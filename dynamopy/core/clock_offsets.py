"""Clock offsets between members, estimated from ping exchanges, and the clock fence: whether
this node's clock may stamp versions (pure: times are passed in).

A ping carries no clock reading out; its reply carries the peer's wall clock ``peer_ms`` (and
whether the peer trusts its own clock, see below). With ``sent_ms``/``received_ms`` read on
this node's wall clock around the exchange, the peer's offset (its clock minus ours) is
estimated NTP-style as::

    offset = peer_ms - (sent_ms + received_ms) / 2      with uncertainty  rtt / 2

When the node also gives the exchange's start on its monotonic clock (``sent_s``; the
failure detector does), the round trip is timed on the monotonic clock and the midpoint taken
back from the reply's arrival: ``offset = peer_ms - (received_ms - rtt / 2)``. The same
figure when the wall clock did not step; when it stepped while the ping was in flight, the
wall-clock version is wrong by half the step, and a step back makes its round trip negative
(read as 0: the "best" sample, kept for ``max_age_s``), so a node whose clock is right again
stayed fenced for 10 s, and one stepped 900 ms back read 450 ms off and was vouched for
(system simulator, session 13). Taken from the arrival, the sample is on the clock its
``wall - monotonic`` correction is recorded for.

Estimates:

* Each peer keeps its last ``window`` samples; the estimate is the fresh sample with the
  smallest round trip, the newest of equals (NTP's clock filter: queueing delay only ever
  adds error).
* A sample remembers this node's ``wall - monotonic`` when it was taken; read later, it is
  corrected by how much that moved since: when this node's own wall clock steps, every sample
  it holds moves with it at once (else the filter would keep the pre-step samples for seconds
  and a node that just jumped would still look near its peers).
* Samples older than ``max_age_s`` (on the monotonic clock) are stale and ignored: a peer
  not heard from recently says nothing about our clock.
* A peer is *far* when its offset certainly exceeds the bound (``|offset| - rtt/2 > max``)
  and *near* when it is measured and not far: uncertainty never fences.

The fence (:class:`ClockFence`), judged once per ping round, in this order:

1. *Confirmed*: this node is near a majority of all members, itself included (3 members:
   one near peer; 5: two). Its clock is vouched for; it records an **anchor**: its offset
   from the near peers and its own ``wall - monotonic`` at that instant.
2. *Far from a majority of its measured peers* (at least two measured): skewed.
   CockroachDB's max-offset rule, over the peers it can measure, not all peers: on 5
   members with 2 down, far from both measured peers is decisive.
3. *Stepped since its anchor*: its offset carried forward on its own monotonic clock
   (``anchor offset + change of wall - monotonic``) is beyond the bound: skewed. A wall clock
   that jumps does not move the monotonic clock, so the node that jumped knows it was the one,
   however many peers it can reach (none, or one whose clock is right); the peer it can still
   reach sees no step of its own and does not fence itself.
4. *Never anchored and far from a peer that trusts its own clock*: skewed (a node restarted
   with a wrong clock while a majority is unreachable defers to a peer with an anchor).
5. *No peer up* and never anchored: it trusts its own clock (nobody to ask) and anchors on it,
   so a later jump is caught by rule 3.

A node *may stamp* (``checked``) once it has an anchor and is not skewed; it *trusts its
clock* (told to peers in ping replies) exactly then. What this cannot tell: two nodes that
only see each other and whose clocks drifted apart slowly (no step) both keep their anchors;
a second measured peer decides (rule 2). A wall clock that moves against the monotonic clock
without being wrong (a host suspended and resumed) reads as a step until a majority confirms
the node again.
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
    drift_ms: float = 0.0   # our wall_ms minus monotonic ms when it was taken


@dataclass(frozen=True, slots=True)
class SkewVerdict:
    skewed: bool
    offset_ms: float    # this node's clock minus its peers' (the median of the measured ones,
                        # or, when stepped, its anchor offset carried forward)
    far: int            # peers certainly more than max_offset_ms away
    measured: int       # peers with a fresh estimate
    peers: int          # all peers
    checked: bool = True   # this node may stamp: it has an anchor and is not skewed
    reason: str = ""       # why skewed: "majority", "stepped" or "trusted_peer"


@dataclass(frozen=True, slots=True)
class Anchor:
    """This node's clock as last vouched for: its offset from its peers then (and that
    estimate's uncertainty), and its own ``wall_ms - monotonic ms`` at that instant."""
    offset_ms: float
    uncertainty_ms: float
    wall_minus_mono_ms: float


@dataclass
class PeerOffsets:
    window: int = 8
    max_age_s: float = 10.0
    _samples: dict[str, deque] = field(default_factory=dict)

    _trusted: dict[str, tuple[bool, float]] = field(default_factory=dict)

    def sample(self, peer: str, sent_ms: int, peer_ms: int, received_ms: int,
               now_s: float, trusted: bool = False, sent_s: Optional[float] = None) -> None:
        """One exchange; ``trusted``: the peer said it trusts its own clock (an old peer
        that says nothing counts as not trusting it); ``sent_s``: the monotonic clock when
        the ping was sent (``now_s`` is when the reply arrived): the round trip is then
        timed on it, whatever this node's wall clock did meanwhile (module docstring)."""
        if sent_s is None:
            rtt = max(0, received_ms - sent_ms)
            offset = peer_ms - (sent_ms + received_ms) / 2
        else:
            rtt = max(0.0, (now_s - sent_s) * 1000.0)
            offset = peer_ms - (received_ms - rtt / 2)
        q = self._samples.get(peer)
        if q is None:
            q = self._samples[peer] = deque(maxlen=self.window)
        q.append(OffsetSample(offset, rtt, now_s, received_ms - now_s * 1000.0))
        self._trusted[peer] = (trusted, now_s)

    def trusts_itself(self, peer: str, now_s: float) -> bool:
        """The peer's last fresh word on its own clock."""
        said = self._trusted.get(peer)
        return said is not None and said[0] and now_s - said[1] <= self.max_age_s

    def estimate(self, peer: str, now_s: float,
                 wall_ms: Optional[int] = None) -> Optional[OffsetSample]:
        """The best fresh sample; given this node's ``wall_ms`` now, its offset is corrected
        for any step of this node's own wall clock since it was taken."""
        fresh = [s for s in self._samples.get(peer, ()) if now_s - s.at_s <= self.max_age_s]
        if not fresh:
            return None
        best = min(reversed(fresh), key=lambda s: s.rtt_ms)
        if wall_ms is None:
            return best
        drift = wall_ms - now_s * 1000.0
        return OffsetSample(best.offset_ms - (drift - best.drift_ms), best.rtt_ms, best.at_s,
                            drift)

    def forget(self, keep: Iterable[str]) -> None:
        keep = set(keep)
        for peer in [p for p in self._samples if p not in keep]:
            del self._samples[peer]
            self._trusted.pop(peer, None)


def _far(e: OffsetSample, max_offset_ms: float) -> bool:
    return abs(e.offset_ms) - e.rtt_ms / 2 > max_offset_ms


@dataclass
class ClockFence:
    """The rules in the module docstring, over ``offsets``; ``anchor`` is kept between rounds
    (a new process starts without one)."""
    offsets: PeerOffsets = field(default_factory=PeerOffsets)
    anchor: Optional[Anchor] = None
    last: Optional[SkewVerdict] = None

    @property
    def trusted(self) -> bool:
        """What this node tells its peers: it has an anchor and is not skewed."""
        return self.last is not None and self.last.checked

    def _carried(self, drift_ms: float) -> float:
        """The anchor's offset carried forward to a moment whose ``wall - monotonic ms`` is
        ``drift_ms`` (rule 3)."""
        return self.anchor.offset_ms + drift_ms - self.anchor.wall_minus_mono_ms

    def stepped(self, now_s: float, wall_ms: int, max_offset_ms: float) -> bool:
        """Rule 3 read at this moment rather than at the last round: this node's clock
        certainly stepped beyond the bound since its anchor. A verdict is up to a round old;
        work that trusts the clock (stamping a version, the tombstone purge's "older than
        the grace") asks this too, so a step since the last round does not slip through."""
        return self.step_offset(now_s, wall_ms, max_offset_ms) is not None

    def step_offset(self, now_s: float, wall_ms: int, max_offset_ms: float) -> Optional[float]:
        """The anchor's offset carried to this moment if it is beyond the bound (``stepped``),
        else None."""
        if max_offset_ms <= 0 or self.anchor is None:
            return None
        carried = self._carried(wall_ms - now_s * 1000.0)
        return carried if abs(carried) - self.anchor.uncertainty_ms > max_offset_ms else None

    def judge(self, peers: Iterable[str], up: int, now_s: float, wall_ms: int,
              max_offset_ms: float) -> SkewVerdict:
        """One round's verdict. ``peers``: every other member; ``up``: how many of them the
        failure detector sees up; ``now_s`` the monotonic clock, ``wall_ms`` the wall clock,
        read together. ``max_offset_ms`` 0 turns the fence off (never skewed, checked)."""
        peers = list(peers)
        measured = {p: e for p in peers
                    if (e := self.offsets.estimate(p, now_s, wall_ms)) is not None}
        far = [p for p, e in measured.items() if _far(e, max_offset_ms)]
        near = [e for p, e in measured.items() if p not in far]
        median_ms = -median(e.offset_ms for e in measured.values()) if measured else 0.0
        drift = wall_ms - now_s * 1000.0

        def verdict(skewed: bool, reason: str = "", offset_ms: float = median_ms) -> SkewVerdict:
            checked = not skewed and self.anchor is not None
            self.last = SkewVerdict(skewed, offset_ms, len(far), len(measured), len(peers),
                                    checked, reason)
            return self.last

        if max_offset_ms <= 0:
            self.anchor = self.anchor or Anchor(0.0, 0.0, drift)
            return verdict(False)
        if (len(near) + 1) * 2 > len(peers) + 1:                       # rule 1: confirmed
            offset = -median(e.offset_ms for e in near) if near else 0.0
            # The best near peer's uncertainty, but never so small that the anchor itself
            # reads beyond the bound: the median of the near peers can be, by up to their
            # largest uncertainty, and rule 3 read at this moment (``stepped``, at every
            # stamp) then fenced a node this verdict vouched for (found in review, session
            # 15). +1 ms: the wall clock is read in whole milliseconds.
            uncertainty = max(min((e.rtt_ms / 2 for e in near), default=0.0),
                              abs(offset) - max_offset_ms + 1.0)
            self.anchor = Anchor(offset, uncertainty, drift)
            return verdict(False)
        if len(measured) >= 2 and len(far) * 2 > len(measured):          # rule 2: majority
            return verdict(True, "majority")
        if self.anchor is not None:                                      # rule 3: stepped
            carried = self._carried(drift)
            if abs(carried) - self.anchor.uncertainty_ms > max_offset_ms:
                return verdict(True, "stepped", carried)
            return verdict(False)
        if any(self.offsets.trusts_itself(p, now_s) for p in far):      # rule 4
            return verdict(True, "trusted_peer")
        if up == 0:                                                      # rule 5: alone
            self.anchor = Anchor(0.0, 0.0, drift)
        return verdict(False)
