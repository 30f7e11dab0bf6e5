"""The failure detector loop: pings every member over peer RPC and folds in the outcome of
real requests. Decisions live in :mod:`dynamopy.core.failure`; this module does the I/O."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from dynamopy.core.failure import PeerHealth

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.node.runtime import Node

log = logging.getLogger(__name__)

PING_INTERVAL_S = 0.25
PING_TIMEOUT_S = 0.5


class FailureDetector:
    def __init__(self, node: "Node"):
        self.node = node
        self.health: dict[str, PeerHealth] = {}

    def _get(self, member_id: str) -> PeerHealth:
        h = self.health.get(member_id)
        if h is None:
            h = self.health[member_id] = PeerHealth()
        return h

    def members_changed(self) -> None:
        for mid in list(self.health):
            if self.node.state.member(mid) is None:
                del self.health[mid]

    def is_up(self, member_id: str) -> bool:
        if member_id == self.node.id:
            return True
        h = self.health.get(member_id)
        return True if h is None else h.is_up(self.node.clock.monotonic())

    def down_for(self, member_id: str) -> float:
        h = self.health.get(member_id)
        return 0.0 if h is None else h.down_for(self.node.clock.monotonic())

    def report_success(self, member_id: str) -> None:
        was_up = self.is_up(member_id)
        self._get(member_id).success(self.node.clock.monotonic())
        if not was_up:
            log.info("peer %s is alive", member_id)
            self.node.metrics.peer_alive.labels(member_id).set(1)
            self.node.hints.wake()

    def report_failure(self, member_id: str) -> None:
        was_up = self.is_up(member_id)
        self._get(member_id).failure(self.node.clock.monotonic())
        if was_up and not self.is_up(member_id):
            log.info("peer %s is down", member_id)
            self.node.metrics.peer_alive.labels(member_id).set(0)

    def view(self) -> dict[str, bool]:
        return {mid: self.is_up(mid) for mid in self.node.state.members}

    async def run(self) -> None:
        while True:
            await self.node.clock.sleep(PING_INTERVAL_S)
            others = [m for m in self.node.state.members if m != self.node.id]
            if others:
                await asyncio.gather(*(self._ping(m) for m in others), return_exceptions=True)
            for mid in others:
                self.node.metrics.peer_alive.labels(mid).set(1 if self.is_up(mid) else 0)

    async def _ping(self, member_id: str) -> None:
        try:
            reply = await self.node.call_peer(member_id, "ping", {"epoch": self.node.state.epoch},
                                              timeout_s=PING_TIMEOUT_S)
        except Exception:
            return  # call_peer already reported the failure
        self.node.note_epoch(reply.get("epoch", 0), member_id)
