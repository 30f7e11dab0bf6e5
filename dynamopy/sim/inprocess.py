"""Whole nodes in one process over the in-memory seams: the production ``Node`` built with
a ``MemoryTransport`` (one shared ``MemoryNetwork``), a ``MemoryDisk`` each, a ``NodeClock``
and a seeded ``random.Random``. Run it on a ``VirtualTimeLoop`` (``run_virtual``) and a test
of seconds of cluster time takes milliseconds, with no sockets and no threads.

    async def main():
        async with InProcessCluster(["n1", "n2", "n3"], seed=7) as c:
            await c.coordinator("n1").write(b"k", b"v", w=2)

``crash(id)`` kills a node the hard way (its unsynced writes are lost, nothing is flushed);
``stop(id)`` is a clean shutdown; ``start(id)`` brings a node back on the same disk.
"""

from __future__ import annotations

import asyncio
import random
from typing import Iterable, Optional

from dynamopy.config import NodeConfig
from dynamopy.core.membership import Settings
from dynamopy.node.bootstrap import bootstrap_seeds
from dynamopy.node.runtime import Node
from dynamopy.sim.clock import NodeClock
from dynamopy.sim.storage import MemoryDisk
from dynamopy.sim.transport import MemoryNetwork


def memory_config(node_id: str, seeds: Iterable[str], *, n: int = 3, r: int = 2, w: int = 2,
                  request_timeout_s: float = 2.0, **overrides) -> NodeConfig:
    """A NodeConfig for an in-process node: its address is its id."""
    fields = dict(
        node_id=node_id, host="127.0.0.1", port=0, peer_port=0, data_dir=f"<memory:{node_id}>",
        seeds=tuple(seeds), join="", n=n, r=r, w=w, cluster_secret="in-process",
        api_token="", insecure=True, advertise_url=f"mem://{node_id}", advertise_peer=node_id,
        request_timeout_s=request_timeout_s, max_value_bytes=1 << 20, hint_window_s=3600.0,
        hint_max_bytes=1 << 30, transfer_max_bytes_s=1 << 30, peer_delay_ms=None)
    fields.update(overrides)
    return NodeConfig(**fields)


class InProcessCluster:
    """Seed nodes ``ids`` bootstrapped into one cluster (every one a Paxos acceptor)."""

    def __init__(self, ids: list[str], *, seed: int = 0, n: int = 3, r: int = 2, w: int = 2,
                 network: Optional[MemoryNetwork] = None, group_size: int = 3,
                 joiners: Iterable[str] = (), **config) -> None:
        """``joiners``: nodes that are not seeds; ``start(id)`` makes one join through a
        ready member (what ``--join`` does, without the HTTP hop)."""
        self.ids = list(ids)
        self.seed = seed
        self.network = network or MemoryNetwork()
        self.configs = {i: memory_config(i, ids, n=n, r=r, w=w, **config)
                        for i in [*ids, *joiners]}
        # The bootstrap entry's settings: n/r/w, the target metadata-group size, and the
        # anti-entropy and tombstone settings of the (shared) config; tests may replace it
        # before start_all.
        cfg = self.configs[self.ids[0]]
        self.settings = Settings(n=n, r=r, w=w, metadata_group_size=group_size,
                                 anti_entropy_interval_s=cfg.anti_entropy_interval_s,
                                 anti_entropy_rate=cfg.anti_entropy_rate,
                                 tombstone_grace_s=cfg.tombstone_grace_s)
        self.disks = {i: MemoryDisk() for i in self.configs}
        self.clocks = {i: NodeClock() for i in self.configs}
        self.nodes: dict[str, Node] = {}
        self._boots: list[asyncio.Task] = []
        # Nodes whose next start runs the production ``ensure_member`` (what ``dynamopy
        # serve`` runs on a restart or on an empty data directory), asking the others over
        # ``MemoryContact`` instead of HTTP; the rest bootstrap or join directly.
        self.production_start: set[str] = set()

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def coordinator(self, node_id: str):
        return self.nodes[node_id].coordinator

    def identities(self) -> list[dict]:
        """The seeds as ``GET /node`` reports them, with the store token of each seed
        started so far (a bootstrap entry names its seeds' tokens)."""
        return [{"id": i, "url": self.configs[i].advertise_url, "peer": i,
                 **({"token": self.nodes[i].metalog.token}
                    if i in self.nodes and self.nodes[i].metalog.token else {})}
                for i in self.ids]

    # ---- lifecycle --------------------------------------------------------------------
    async def start(self, node_id: str) -> Node:
        """Start (or restart, on the same disk) one node."""
        node = Node(self.configs[node_id], transport=self.network.transport(node_id),
                    storage=self.disks[node_id], clock=self.clocks[node_id],
                    rng=random.Random(f"{self.seed}/{node_id}/{len(self._boots)}"))
        self.nodes[node_id] = node
        await node.start()
        self._boots.append(node.spawn(self._become_member(node)))
        return node

    async def _become_member(self, node: Node) -> None:
        if node.id in self.production_start:
            from dynamopy.node.bootstrap import ensure_member
            from dynamopy.sim.system_contact import MemoryContact
            contact = MemoryContact(node.id, lambda: self.nodes,
                                    lambda a, b: self.network.connected(a, b))
            return await ensure_member(node, contact)
        if node.id not in self.ids:
            return await self._join(node)
        if node.state.member(node.id) is None:
            # Every seed's store token (start_all starts them; a node's token is set during
            # its start): a bootstrap entry that misses one names no cluster id, and the
            # cluster would run untagged (as ``GET /node`` reports a token only once set).
            while any(i not in self.nodes or self.nodes[i].metalog.token is None
                      for i in self.ids) and not node.stopping:
                await asyncio.sleep(0.01)
            await bootstrap_seeds(node, self.identities(), self.settings)

    async def _join(self, node: Node) -> None:
        while node.state.member(node.id) is None and not node.stopping:
            try:
                via = self.nodes[next(i for i in sorted(self.nodes) if i != node.id
                                      and not self.nodes[i].stopping and self.nodes[i].is_ready)]
                st = via.state
                await node.metalog.adopt_acceptors(
                    list(st.initial_group), {m: v.peer for m, v in st.members.items()})
                await via.propose({"op": "join", "id": node.id, "url": f"mem://{node.id}",
                                   "peer": node.id})
            except Exception:  # noqa: BLE001 - not ready, refused, a change in progress: retry
                pass
            await asyncio.sleep(0.5)

    async def start_all(self, timeout_s: float = 30.0) -> None:
        for i in self.ids:
            await self.start(i)
        await self.wait_ready(self.ids, timeout_s)

    async def wait_ready(self, ids: Iterable[str], timeout_s: float = 30.0) -> None:
        """Every node of ``ids`` is ready (a member, caught up, clock measured)."""
        async with asyncio.timeout(timeout_s):
            for i in ids:
                while not self.nodes[i].is_ready:
                    await asyncio.sleep(0.05)

    async def crash(self, node_id: str) -> int:
        """Kill the node: its unsynced writes are lost, in-flight calls to it fail, nothing
        is flushed. Returns how many unsynced operations were lost."""
        node = self.nodes[node_id]
        lost = self.disks[node_id].crash()
        node.stopping = True
        await node.transport.close()
        tasks = list(node._tasks) + list(node.coordinator._background)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await node.committer.stop()  # queued batches fail: the store is gone
        return lost

    async def stop(self, node_id: str) -> None:
        await self.nodes[node_id].stop()

    async def stop_all(self) -> None:
        for node in self.nodes.values():
            if not node.stopping:
                await node.stop()

    async def __aenter__(self) -> "InProcessCluster":
        await self.start_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_all()


async def until(predicate, timeout_s: float, what: str) -> None:
    """Wait (in loop time) until ``predicate()`` is true; ``AssertionError`` naming ``what``
    after ``timeout_s``. An error raised by the predicate propagates at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() >= deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.05)
