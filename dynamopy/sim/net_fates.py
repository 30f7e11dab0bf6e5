"""Per-message fates for the in-memory transport, drawn from one seeded rng and the current
``FaultState``, expressed as the one thing the transport asks: how long a message takes.

``NetFates`` is a ``delay_s(src, dst, method)`` function for a network that delivers a
request after that delay *inside* the caller's timeout (so a delay of ``LOST_S`` or more is
a message that never arrives: the caller sees its timeout, as when a packet is lost):

* a cut link (partition, one-way partition from ``src``'s side, a crashed or removed end) or
  a message drawn lost (``state.loss``) -> ``LOST_S``;
* otherwise ``base_s`` plus a seeded jitter of up to ``jitter_ms`` (independent delays
  reorder messages) plus ``state.extra_delay_ms``, plus, with probability
  ``state.reorder``, up to ``reorder_ms`` more (a message far behind the others).

It cannot duplicate a message or hold one for a paused node: those need the transport's
help (see ``docs/sim-system.md``). Pure apart from the rng it is given: the same seed and
the same sequence of calls give the same fates.
"""

from __future__ import annotations

import random
from typing import Callable

from .fault_state import FaultState

LOST_S = 1e9  # longer than any timeout: the message never arrives


class NetFates:
    def __init__(self, rng: random.Random, state: Callable[[], FaultState], *, base_s: float = 0.0005,
                 jitter_ms: float = 2.0, reorder_ms: float = 300.0) -> None:
        self.rng, self.state = rng, state
        self.base_s, self.jitter_ms, self.reorder_ms = base_s, jitter_ms, reorder_ms
        self.lost = self.sent = 0

    def __call__(self, src: str, dst: str, method: str) -> float:
        st, rng = self.state(), self.rng
        self.sent += 1
        if not st.can_send(src, dst) or (st.loss and rng.random() < st.loss):
            self.lost += 1
            return LOST_S
        ms = rng.uniform(0, self.jitter_ms) + st.extra_delay_ms
        if st.reorder and rng.random() < st.reorder:
            ms += rng.uniform(0, self.reorder_ms)
        return self.base_s + ms / 1000
