"""The failure detector loop: pings every member over peer RPC and folds in the outcome of
real requests. Decisions live in :mod:`dynamopy.core.failure`; this module does the I/O.

Pings also measure clock offsets (:mod:`dynamopy.core.clock_offsets`): each reply carries the
peer's wall clock and whether the peer trusts its own. After every round the node judges its
own clock by the fence's rules (far from a majority of its measured peers, or stepped since a
majority last vouched for it, ...): while skewed it logs an error, is not ready, and refuses to
stamp writes (503 ``clock_skew``), until the clock is back within ``--max-clock-offset-ms``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

from dynamopy.core.clock_offsets import ClockFence, SkewVerdict
from dynamopy.core.failure import PeerHealth
from dynamopy.node.clock import Wakeup, wait_set
from dynamopy.node.errors import ClockSkew, NotReady

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.core.membership import ClusterState
    from dynamopy.node.clock import Clock
    from dynamopy.node.metrics import Metrics

log = logging.getLogger(__name__)

_REASONS = {"majority": "far from a majority of the measured peers",
            "stepped": "its wall clock stepped since a majority last vouched for it",
            "trusted_peer": "far from a peer that trusts its clock, never vouched for itself"}

PING_INTERVAL_S = 0.25
PING_TIMEOUT_S = 0.5
# A peer that answered some other call (a request, a metadata-log message) within the last
# PING_INTERVAL_S is alive: its ping is skipped. It is still pinged at least this often, for
# its clock offset (the samples the fence judges by stay fresh: ``ClockOffsets.max_age_s``)
# and its epoch.
SAMPLE_INTERVAL_S = 1.0


class FailureDetector:
    """Built from what it uses: this node's id, the current membership state (a getter), the
    clock, metrics, a peer caller (``call_peer(member, method, payload, timeout_s)``), where
    peers' epochs go (``note_epoch``), the clock-offset bound, and ``on_alive(member)``, told
    when a member comes back (hint delivery wakes on it)."""

    def __init__(self, *, me: str, state: Callable[[], "ClusterState"], clock: "Clock",
                 metrics: "Metrics", call_peer: Callable[..., Awaitable[Any]],
                 note_epoch: Callable[[int, str], None], max_clock_offset_ms: int,
                 on_alive: Callable[[str], None]):
        self.me, self.state, self.clock, self.metrics = me, state, clock, metrics
        self.call_peer, self.note_epoch, self.on_alive = call_peer, note_epoch, on_alive
        self.max_clock_offset_ms = max_clock_offset_ms
        self.health: dict[str, PeerHealth] = {}
        self.fence = ClockFence()
        self.offsets = self.fence.offsets
        self.skew: Optional[SkewVerdict] = None   # None until the first round is judged
        # Set when members are added: the next round starts at once, so a new member (and a
        # seed that just applied the bootstrap) hears its peers' epochs and has its clock
        # measured without waiting out the interval.
        self._new_members = Wakeup()
        self._sampled: dict[str, float] = {}  # member -> monotonic time of its last ping reply

    def _get(self, member_id: str) -> PeerHealth:
        h = self.health.get(member_id)
        if h is None:
            h = self.health[member_id] = PeerHealth()
        return h

    def on_state_change(self, old, new) -> None:
        """Forget the health and clock samples of members that are gone; ping added members
        at once."""
        if any(m not in old.members for m in new.members):
            self._new_members.set()
        for mid in list(self.health):
            if new.member(mid) is None:
                del self.health[mid]
        for mid in list(self._sampled):
            if new.member(mid) is None:
                del self._sampled[mid]
        self.offsets.forget(new.members)

    def is_up(self, member_id: str) -> bool:
        """Per request (planning), so one dict lookup and one comparison with the peer's
        precomputed ``up_until`` (``core.failure``)."""
        h = self.health.get(member_id)
        if h is None or member_id == self.me:
            return True
        return self.clock.monotonic() <= h.up_until

    def down_for(self, member_id: str) -> float:
        h = self.health.get(member_id)
        return 0.0 if h is None else h.down_for(self.clock.monotonic())

    def report_success(self, member_id: str) -> None:
        """Every peer reply (per request): one clock read, one deadline comparison."""
        now = self.clock.monotonic()
        h = self.health.get(member_id)
        if h is None:
            h = self.health[member_id] = PeerHealth()
        was_up = member_id == self.me or now <= h.up_until
        h.success(now)
        if not was_up:
            log.info("peer %s is alive", member_id)
            self.metrics.peer_alive.labels(member_id).set(1)
            self.on_alive(member_id)

    def report_failure(self, member_id: str) -> None:
        was_up = self.is_up(member_id)
        self._get(member_id).failure(self.clock.monotonic())
        if was_up and not self.is_up(member_id):
            log.info("peer %s is down", member_id)
            self.metrics.peer_alive.labels(member_id).set(0)

    def view(self) -> dict[str, bool]:
        return {mid: self.is_up(mid) for mid in self.state().members}

    async def run(self) -> None:
        while True:
            await wait_set(self._new_members, PING_INTERVAL_S)
            self._new_members.clear()
            others = [m for m in self.state().members if m != self.me]
            now = self.clock.monotonic()
            due = [m for m in others if self._ping_due(m, now)]
            if due:
                await asyncio.gather(*(self._ping(m) for m in due), return_exceptions=True)
            for mid in others:
                self.metrics.peer_alive.labels(mid).set(1 if self.is_up(mid) else 0)
            self._judge_clock(others)

    def _ping_due(self, member_id: str, now: float) -> bool:
        """Whether this round pings ``member_id``: yes unless a reply to another call (a
        request, a metadata-log message) came from it after its last ping reply and within
        the last ``PING_INTERVAL_S`` (proof of life, as a ping reply would be), and that ping
        reply is younger than ``SAMPLE_INTERVAL_S``. A peer that stops answering is pinged
        again within one interval of its last reply, so it is seen down as soon as before
        (two contacts in a row failing)."""
        sampled = self._sampled.get(member_id)
        if sampled is None or now - sampled >= SAMPLE_INTERVAL_S:
            return True
        h = self.health.get(member_id)
        last_ok = h.last_ok if h is not None else None
        return last_ok is None or last_ok <= sampled or now - last_ok >= PING_INTERVAL_S

    async def _ping(self, member_id: str) -> None:
        clock = self.clock
        sent_ms, sent_s = clock.wall_ms(), clock.monotonic()
        try:
            reply = await self.call_peer(member_id, "ping", {"epoch": self.state().epoch},
                                         timeout_s=PING_TIMEOUT_S)
        except Exception:
            return  # call_peer already reported the failure
        received_ms = clock.wall_ms()
        self._sampled[member_id] = clock.monotonic()
        self.note_epoch(reply.get("epoch", 0), member_id)
        peer_ms = reply.get("wall_ms")
        if isinstance(peer_ms, int):
            # the round trip on the monotonic clock: this node's wall clock may step
            # while the ping is in flight (``core.clock_offsets``)
            self.offsets.sample(member_id, sent_ms, peer_ms, received_ms, clock.monotonic(),
                                trusted=reply.get("clock_trusted") is True, sent_s=sent_s)

    @property
    def clock_trusted(self) -> bool:
        """Told to peers in ping replies: this node has an anchor and is not skewed."""
        return self.fence.trusted

    # ---- clock offsets ------------------------------------------------------------------
    def offset_ms(self, member_id: str) -> Optional[float]:
        """The estimated offset of ``member_id``'s clock from ours (None: not measured)."""
        if member_id == self.me:
            return 0.0
        e = self.offsets.estimate(member_id, self.clock.monotonic(), self.clock.wall_ms())
        return None if e is None else round(e.offset_ms, 1)

    def _judge_clock(self, others: list[str]) -> None:
        max_ms = self.max_clock_offset_ms
        up = sum(1 for m in others if self.is_up(m))
        verdict = self.fence.judge(others, up, self.clock.monotonic(), self.clock.wall_ms(),
                                   max_ms)
        was = self.skew.skewed if self.skew is not None else False
        self.skew = verdict
        self.metrics.clock_offset.set(verdict.offset_ms)
        self.metrics.clock_skewed.set(1 if verdict.skewed else 0)
        for mid in others:
            off = self.offset_ms(mid)
            if off is not None:
                self.metrics.peer_clock_offset.labels(mid).set(off)
        if verdict.skewed and not was:
            log.error("CLOCK SKEW (%s): this node's clock is %.0f ms off its peers (%d of %d "
                      "measured peers beyond --max-clock-offset-ms=%d): refusing writes and "
                      "not ready until the clock is back", _REASONS[verdict.reason],
                      verdict.offset_ms, verdict.far, verdict.measured, max_ms)
        elif was and not verdict.skewed:
            log.warning("clock back within %d ms of the peers (offset %.0f ms): serving writes",
                        max_ms, verdict.offset_ms)

    @property
    def clock_checked(self) -> bool:
        """A round was judged and this node has an anchor (its clock was vouched for)."""
        return self.skew is not None and self.skew.checked

    @property
    def clock_confirmed(self) -> bool:
        """The last verdict vouched for this node's clock with a majority of all current
        members (counting itself) measured within the bound, or the check is off. Only then
        does the durable version mark lead the wall clock (``node/version_clock.py``). A
        verdict judged before this node knew its peers (a seed before the bootstrap is
        alone) or with none measured may let a node stamp, but must not carry its mark as
        far ahead as its clock may be (found in review: a seed started 10 minutes ahead led
        its mark there in the moment after the bootstrap, and after a crash stamped 597 s
        ahead)."""
        v = self.skew
        if v is None or v.skewed or not v.checked:
            return False
        if v.peers + 1 < len(self.state().members):
            return False   # judged on fewer peers than the members now known
        return self.max_clock_offset_ms <= 0 or (v.measured - v.far + 1) * 2 > v.peers + 1

    @property
    def clock_ok(self) -> bool:
        return self.clock_checked and not self.skew.skewed

    @property
    def clock_ok_now(self) -> bool:
        """``clock_ok``, and no step of the wall clock beyond the bound since that verdict
        (which is up to a ping interval old): read at this very moment."""
        return self.clock_ok and not self.fence.stepped(
            self.clock.monotonic(), self.clock.wall_ms(), self.max_clock_offset_ms)

    def check_clock(self) -> int:
        """Raise unless this node's clock may stamp versions (see the module docstring);
        else return the wall clock (ms) it judged, which the version is stamped from
        (``VersionClock.next(wall_ms=)``): a step landing after this reading is not
        stamped (read again, it was, an hour ahead: found in review, session 15).
        Rule 3 (a step since the anchor) is read at this moment too: the last verdict is up
        to a ping round old, and a version stamped ahead in that window would outrank every
        later write of its key made on a right clock."""
        mono, wall = self.clock.monotonic(), self.clock.wall_ms()
        v = self.skew
        if v is not None and v.skewed:
            reason, offset_ms = v.reason, v.offset_ms
        elif v is not None and (offset_ms := self.fence.step_offset(
                mono, wall, self.max_clock_offset_ms)) is not None:
            reason = "stepped"
        else:
            reason = None
        if reason is not None:
            raise ClockSkew(
                f"this node's clock is {offset_ms:.0f} ms off its peers "
                f"({_REASONS.get(reason, reason)}; bound {self.max_clock_offset_ms} ms); "
                "it stamps no versions until its clock is back: use another node",
                offset_ms=round(offset_ms), max_clock_offset_ms=self.max_clock_offset_ms)
        if not self.clock_checked and len(self.state().members) > 1:
            raise NotReady("this node has not had its clock confirmed by its peers yet "
                           "(it needs a majority of the members within "
                           f"{self.max_clock_offset_ms} ms of it); retry shortly")
        return wall
