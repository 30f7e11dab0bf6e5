"""An in-memory, seeded network: delay, loss, duplication, reordering, partitions.

Every send draws from the one injected ``random.Random``, so a seed fixes every fate.
Reordering comes from independent random delays (with an occasional slow message far
behind the others). A partition is checked when a message arrives as well as when it is
sent, so messages in flight when a partition starts are lost, as on a real network.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .clock import VirtualClock


@dataclass
class NetConfig:
    loss: float = 0.0          # probability a message is dropped
    dup: float = 0.0           # probability a message is delivered twice
    min_delay_ms: int = 1
    max_delay_ms: int = 20
    slow: float = 0.0          # probability of a much larger delay (reordering across ticks)
    slow_delay_ms: int = 300


@dataclass
class NetStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    cut: int = 0  # dropped by a partition or because the destination was down


class Partitions:
    """Which nodes can talk: nodes in the same group can, others cannot. Unlisted nodes form
    group 0 together. Shared by this network and the in-memory Transport (sim/transport.py)."""

    def __init__(self) -> None:
        self._group: dict[str, int] = {}  # node -> partition group; absent = group 0

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Split the nodes: only nodes in the same group can talk."""
        self._group = {}
        for i, group in enumerate(groups, start=1):
            for node in group:
                self._group[node] = i

    def isolate(self, node: str) -> None:
        """Cut one node off from everyone else (keeping any other partition)."""
        self._group[node] = max(self._group.values(), default=0) + 1

    def heal(self) -> None:
        self._group = {}

    def connected(self, a: str, b: str) -> bool:
        return self._group.get(a, 0) == self._group.get(b, 0)


class Network:
    def __init__(
        self,
        clock: VirtualClock,
        rng: random.Random,
        deliver: Callable[[str, str, Any], bool],
        config: NetConfig | None = None,
    ) -> None:
        """``deliver(dst, src, msg)`` hands a message to a node; it returns False if the
        destination is down (the message is then counted as cut)."""
        self.clock = clock
        self.rng = rng
        self.config = config or NetConfig()
        self.stats = NetStats()
        self._deliver = deliver
        self.partitions = Partitions()
        self.partition = self.partitions.partition
        self.heal = self.partitions.heal
        self.connected = self.partitions.connected

    # -- traffic ------------------------------------------------------------------------

    def send(self, src: str, dst: str, msg: Any) -> None:
        st, cfg, rng = self.stats, self.config, self.rng
        st.sent += 1
        if not self.connected(src, dst):
            st.cut += 1
            return
        if cfg.loss and rng.random() < cfg.loss:
            st.lost += 1
            return
        copies = 1
        if cfg.dup and rng.random() < cfg.dup:
            copies = 2
            st.duplicated += 1
        for _ in range(copies):
            delay = rng.randint(cfg.min_delay_ms, cfg.max_delay_ms)
            if cfg.slow and rng.random() < cfg.slow:
                delay += rng.randint(0, cfg.slow_delay_ms)
            self.clock.call_later(delay, self._arrive, src, dst, msg)

    def _arrive(self, src: str, dst: str, msg: Any) -> None:
        if not self.connected(src, dst) or not self._deliver(dst, src, msg):
            self.stats.cut += 1
            return
        self.stats.delivered += 1
