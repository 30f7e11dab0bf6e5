"""A warning when the cluster settings in force break the grace rule on this node.

The rule (``core.tombstones.grace_covers_window``): 90% of ``tombstone_grace_s`` less this
node's clock bound (``--max-clock-offset-ms``) must be at least ``hint_window_s``, or a hint
the window lets a fallback keep (and count toward W) for a member that is back within the
window can expire undelivered, and a write acknowledged by that hint alone is lost.
Start-up refuses such a pair of flags and ``POST /cluster/config`` refuses such a change,
but neither can refuse settings already in the log: a log written before the rule existed,
or a pair accepted by a node with a smaller clock bound than this one's. So after every
change of the membership state (the log loaded from disk at start-up, learned from a peer,
or a new entry) this node checks the settings in force with its own bound: when they break
the rule it logs a warning naming both settings and the least grace that would do, and
``/metrics`` shows ``dynamopy_grace_rule_broken`` 1 (0 once they are fixed, e.g. with
``dynamopy config set tombstone_grace_s=...``). It warns once per pair of settings.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from dynamopy.core.tombstones import grace_covers_window, min_grace_s, seconds_text

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.core.membership import ClusterState
    from prometheus_client import Gauge

log = logging.getLogger(__name__)


class GraceCheck:
    """Built from this node's id, its clock bound and the gauge it sets."""

    def __init__(self, *, me: str, max_clock_offset_ms: int, gauge: "Gauge") -> None:
        self.me, self.bound_ms, self.gauge = me, max(0, max_clock_offset_ms), gauge
        self.problem: Optional[str] = None  # the warning while the settings break the rule
        self._checked: Optional[tuple[float, float]] = None

    def on_state_change(self, old: "ClusterState", new: "ClusterState") -> None:
        if not new.bootstrapped:
            return
        grace, window = new.settings.tombstone_grace_s, new.settings.hint_window_s
        if (grace, window) == self._checked:
            return
        self._checked = (grace, window)
        if grace_covers_window(grace, window, self.bound_ms):
            self.problem = None
            self.gauge.set(0)
            return
        self.problem = (
            f"the cluster's settings break the grace rule on {self.me}: tombstone_grace_s="
            f"{seconds_text(grace)} is too short for hint_window_s={seconds_text(window)} with "
            f"this node's --max-clock-offset-ms={self.bound_ms} (a hint lives 90% of the grace "
            f"less the clock bound), so hints kept for a member back within the window can "
            f"expire undelivered and a write acknowledged by such a hint alone be lost; set "
            f"tombstone_grace_s >= {seconds_text(min_grace_s(window, self.bound_ms))} or a "
            f"shorter hint_window_s (dynamopy config set ...)")
        self.gauge.set(1)
        log.warning("%s", self.problem)
