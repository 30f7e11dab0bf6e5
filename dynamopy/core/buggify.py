"""BUGGIFY (after FoundationDB): seeded knobs that widen internal windows of production code
paths, on only in the simulator.

A code path asks ``if buggify.on and buggify.fires("knob"): <do the unusual but legal
thing>`` (or ``buggify.delay_s("knob", max_s)``): a reply delayed after the sync, a hint
delivery that pauses between records, a transfer chunk of one record, an anti-entropy
exchange cut short, a group-commit batch split, a tombstone purge that pauses after its
confirmations (writes land in between). Every such thing must be something the
real world can do too (a slow scheduler, a peer vanishing mid-exchange), so the node has
to stay correct under it; the knob only makes the rare case common. A knob may only
widen a window that exists (at an ``await`` production has anyway, or a choice it may
make), never open one between two synchronous steps: seed 9085 of the system simulator
caught a late-ack knob that waited between a commit and reading its outcome.

* ``OFF`` is the production value: ``on`` is False and nothing else is read, so a site costs
  one attribute check. ``dynamopy serve`` never builds anything else.
* ``Buggify(rng)`` is one run's: the first time a knob is asked, it is enabled for the whole
  run with probability ``enable_p``; an enabled knob then fires at each site visit with
  probability ``fire_p``. Everything is drawn from ``rng``, so the run's seed fixes it.
* Setting ``on = False`` turns a run's knobs off for good (the simulator does at healing:
  the liveness phase runs the plain code, as FoundationDB's quiet phase does).
* ``fired`` counts the firings per knob (the run's report shows them; a test can tell that
  a knob was reached).

Pure: no I/O, no clock, no module-level ``random`` (the rng is passed in).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Optional

# The knobs placed in production code (name -> where), for docs and the run's report.
KNOBS = {
    "replica_ack_delay": "replica: the answer to a put waits after its batch is synced",
    "hint_pause": "hinted handoff: delivery pauses between records",
    "transfer_chunk_one": "range transfer: a pull asks for a chunk of one record",
    "ae_interrupt": "anti-entropy: an exchange stops after its tree comparison",
    "commit_split_batch": "group commit: a batch is cut after its first submission",
    "purge_pause": "tombstone purge: a batch pauses between the replicas' confirmations and the drops",
}


class Buggify:
    """One run's knobs (``rng`` given) or the production ``OFF`` (no rng)."""

    def __init__(self, rng: Optional[random.Random] = None, *, enable_p: float = 0.5,
                 fire_p: float = 0.25) -> None:
        self.on = rng is not None
        self._rng = rng
        self.enable_p = enable_p
        self.fire_p = fire_p
        self.enabled: dict[str, bool] = {}
        self.fired: Counter[str] = Counter()

    def fires(self, knob: str) -> bool:
        """Whether ``knob`` fires at this visit (never when off)."""
        if not self.on:
            return False
        if knob not in KNOBS:
            raise KeyError(f"unknown buggify knob {knob!r}")
        rng = self._rng
        enabled = self.enabled.get(knob)
        if enabled is None:
            enabled = self.enabled[knob] = rng.random() < self.enable_p
        if enabled and rng.random() < self.fire_p:
            self.fired[knob] += 1
            return True
        return False

    def delay_s(self, knob: str, max_s: float) -> float:
        """Seconds to wait at this site: 0 unless ``knob`` fires, then up to ``max_s``."""
        if not self.fires(knob):
            return 0.0
        return self._rng.uniform(0.0, max_s)


OFF = Buggify()
BUGGIFY_OFF = OFF  # the same, for modules with an OFF of their own
