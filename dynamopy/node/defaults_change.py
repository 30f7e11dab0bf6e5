"""Settling a change of the R/W defaults across the cluster.

Nodes apply a ``set_config`` at different instants, and a request keeps the quorum it was
planned with until it answers. So a change of the defaults settles in two entries (see
``dynamopy.core.membership``): from the ``set_config`` on, requests without an explicit R/W
use the larger of the old and the new values; ``finish_config`` switches to the new ones.

Rules:

* Every request that takes a default quorum is tracked with the epoch of the state it took
  it from, until it answers (``track``). A node's *drained epoch* is the smallest such epoch,
  or its current epoch when none is running: every request it will still answer was
  planned at that epoch or later.
* The metadata leader proposes ``finish_config`` naming the ``set_config``'s epoch E only once
  every member (joining and leaving ones too) reports a drained epoch >= E. A member that
  does not answer (down, paused, partitioned) holds the change in its transition: a paused
  process may wake up and answer a request planned under the old defaults, so silence is
  never taken for consent. Remove a dead member to let a change of defaults settle.
* Safety argument: a request planned before E used the old values, one planned at E or later
  but before ``finish_config`` the larger ones, one planned after it the new ones. Any pair
  that can overlap in time is one of (old, larger), (larger, new), (larger, larger) or (new,
  new): each pair of R and W meets R + W > N whenever both the old and new settings do.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from dynamopy.node.clock import Wakeup, wait_set
from dynamopy.peer import PeerError

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.core.membership import ClusterState
    from dynamopy.node.clock import Clock

log = logging.getLogger(__name__)

POLL_S = 0.1
IDLE_S = 5.0   # no change settling: the loop waits for a state change (this long at most)


class DefaultsChange:
    """Built from what it uses: this node's id, the current membership state (a getter),
    the clock, a peer caller, ``is_leader()`` (of the metadata group) and ``propose``."""

    def __init__(self, *, me: str, state: Callable[[], "ClusterState"], clock: "Clock",
                 call_peer: Callable[..., Awaitable[Any]], is_leader: Callable[[], bool],
                 propose: Callable[[dict], Awaitable[int]]):
        self.me, self.state, self.clock, self.call_peer = me, state, clock, call_peer
        self.is_leader, self.propose = is_leader, propose
        self._inflight: dict[int, int] = {}  # planning epoch -> requests still running
        self._settling = Wakeup()  # set when a state with a change of the defaults arrives

    def on_state_change(self, old, new) -> None:
        """A ``set_config`` applied (or a state that has one installed): start polling."""
        if new.rw_in_effect is not None:
            self._settling.set()

    def track(self, epoch: int) -> "_Tracked":
        """``with track(epoch):`` counts one request planned with the defaults of ``epoch``
        while it runs (a plain object, not a generator context manager: it runs for every
        client request)."""
        return _Tracked(self._inflight, epoch)

    def drained_epoch(self) -> int:
        """No request planned before this epoch is still running here."""
        epoch = self.state().epoch
        return min(epoch, min(self._inflight)) if self._inflight else epoch

    def rpc_status(self, payload: Any, peer_id: str) -> Any:
        return self.drained_epoch()

    async def run(self) -> None:
        """The leader's loop: finish a settling change of the defaults once every member is
        past it. With no change settling (nearly always) it sleeps until a state change
        brings one, instead of polling."""
        while True:
            if self.state().rw_in_effect is None:
                await wait_set(self._settling, IDLE_S)
                self._settling.clear()
                continue
            await self.clock.sleep(POLL_S)
            state = self.state()
            if state.rw_in_effect is None or not self.is_leader():
                continue
            epoch = state.config_epoch
            drained = await asyncio.gather(*(self._drained(m, epoch) for m in state.members))
            if not all(drained) or self.state().config_epoch != epoch:
                continue
            try:
                await self.propose({"op": "finish_config", "change_epoch": epoch})
                log.info("change of the R/W defaults at epoch %d settled", epoch)
            except Exception as e:  # superseded, lost leadership, no majority: look again
                log.info("finish_config for epoch %d: %r", epoch, e)

    async def _drained(self, member: str, epoch: int) -> bool:
        if member == self.me:
            return self.drained_epoch() >= epoch
        try:
            got = await self.call_peer(member, "defaults_drained", [], timeout_s=1.0)
        except (PeerError, asyncio.TimeoutError):
            return False
        return isinstance(got, int) and got >= epoch


class _Tracked:
    __slots__ = ("inflight", "epoch")

    def __init__(self, inflight: dict, epoch: int) -> None:
        self.inflight, self.epoch = inflight, epoch

    def __enter__(self) -> None:
        self.inflight[self.epoch] = self.inflight.get(self.epoch, 0) + 1

    def __exit__(self, *exc) -> bool:
        left = self.inflight[self.epoch] - 1
        if left:
            self.inflight[self.epoch] = left
        else:
            del self.inflight[self.epoch]
        return False
