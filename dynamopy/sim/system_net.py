"""The network of a system-simulation run: ``MemoryNetwork`` plus the two message fates its
``delay_s`` hook cannot express (an adapter of the run loop's, not a change to the seams):

* duplication: with the ``FaultState``'s ``duplicate`` probability a request is delivered
  twice, the copy after its own delay, its answer thrown away (the handler runs twice, as
  when a sender retransmits after a lost ack);
* a lost reply: with the ``loss`` probability the request runs but its answer never comes
  back; the caller sees ``PeerTimeout`` at its timeout (a write may have been applied by a
  replica whose ack the coordinator never hears).

Both draw from the network's own seeded rng, in call order, so a run stays a pure function
of its seed. Lost and delayed requests and cut links stay with ``NetFates`` (``delay_s``).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Callable

from dynamopy.peer.errors import PeerTimeout

from .fault_state import FaultState
from .net_fates import LOST_S
from .transport import MemoryNetwork, MemoryTransport, _wire


class FaultyNetwork(MemoryNetwork):
    def __init__(self, delay_s, rng: random.Random, state: Callable[[], FaultState]) -> None:
        super().__init__(delay_s)
        self.rng, self.state = rng, state
        self.duplicated = self.replies_lost = 0
        self._copies: set[asyncio.Task] = set()

    def transport(self, node_id: str) -> "FaultyTransport":
        return FaultyTransport(self, node_id)


class FaultyTransport(MemoryTransport):
    network: FaultyNetwork

    async def _call(self, addr: str, method: str, payload: Any, timeout_s: float) -> Any:
        net = self.network
        loop = asyncio.get_running_loop()
        started = loop.time()
        st = net.state()
        if st.duplicate and net.rng.random() < st.duplicate:
            net.duplicated += 1
            task = loop.create_task(self._copy(addr, method, payload))
            net._copies.add(task)
            task.add_done_callback(net._copies.discard)
        result = await super()._call(addr, method, payload, timeout_s)
        st = net.state()
        if st.loss and net.rng.random() < st.loss:
            net.replies_lost += 1
            await asyncio.sleep(max(0.0, timeout_s - (loop.time() - started)))
            raise PeerTimeout(f"{addr}: no reply to {method} within {timeout_s:.3f}s (reply lost)")
        return result

    async def identify(self, addr: str, timeout_s: float) -> str:
        """The cluster-secret handshake ``check_joiner`` asks for, over the faulty network:
        with the link cut either way (or an end crashed) it times out."""
        st = self.network.state()
        if not (st.can_send(self.addr, addr) and st.can_send(addr, self.addr)):
            await asyncio.sleep(timeout_s)
            raise PeerTimeout(f"{addr}: no handshake within {timeout_s:.3f}s")
        return await super().identify(addr, timeout_s)

    async def _copy(self, addr: str, method: str, payload: Any) -> None:
        net = self.network
        delay = net.delay_s(self.addr, addr, method)
        if delay >= LOST_S:
            return
        await asyncio.sleep(delay)
        server = net.serving(addr)
        if server is None or not net.connected(self.addr, addr):
            return
        try:
            await server._answer(method, _wire(payload), self.node_id)
        except Exception:  # noqa: BLE001 - nobody waits for a duplicate's answer
            pass
