"""Stale-read accounting, on the driver's side.

Definition (the issue's): a read is *stale* when it returns a version lower than the newest
version acknowledged (to this driver) before the read was sent. Its *k-staleness* is how many
versions behind it is: the number of versions acknowledged before the read was sent that are
newer than the one it returned (a read of a never-acknowledged or older value that missed
three acknowledged writes is 3 versions behind). A read that returns 404 returned "version 0".

Rules:

* Only acknowledgements this driver saw count; the load generator gives each driver process
  its own keys (``keys.KeyPicker``), so for those keys a process sees every acknowledgement.
* The snapshot is taken when the read is *sent*; writes acknowledged while the read is in
  flight are concurrent with it and never make it stale.
* Acks are kept per key in arrival order, so "acknowledged before the read was sent" is a
  prefix of that list whatever order the versions came back in.
"""

from __future__ import annotations


class AckBook:
    def __init__(self) -> None:
        self._acks: dict[object, list[int]] = {}
        self._newest: dict[object, int] = {}

    def acked(self, key, version: int) -> None:
        self._acks.setdefault(key, []).append(version)
        if version > self._newest.get(key, 0):
            self._newest[key] = version

    def before_read(self, key) -> tuple[int, int]:
        """The snapshot to take when a read is sent: (newest acked version, acks so far)."""
        acks = self._acks.get(key)
        return (self._newest[key], len(acks)) if acks else (0, 0)

    def versions_behind(self, key, snapshot: tuple[int, int], returned: int) -> int:
        """k: 0 for a fresh read, else how many versions acked before the read were newer."""
        newest, count = snapshot
        if returned >= newest:
            return 0
        acks = self._acks[key]
        return sum(1 for v in acks[:count] if v > returned)


class StaleStats:
    """Reads judged, stale reads and the k-staleness histogram of one phase."""

    def __init__(self) -> None:
        self.reads = 0
        self.stale = 0
        self.k_hist: dict[int, int] = {}

    def add(self, k: int) -> None:
        self.reads += 1
        if k:
            self.stale += 1
            self.k_hist[k] = self.k_hist.get(k, 0) + 1

    def to_dict(self) -> dict:
        return {"reads": self.reads, "stale": self.stale,
                "k_hist": {str(k): v for k, v in sorted(self.k_hist.items())}}


def summarize(reads: int, stale: int, k_hist: dict) -> dict:
    """The k-staleness block of a result: max, mean over stale reads, the histogram."""
    total = sum(k_hist.values())
    mean = sum(int(k) * v for k, v in k_hist.items()) / total if total else 0.0
    return {"max": max((int(k) for k in k_hist), default=0), "mean_of_stale": round(mean, 3),
            "histogram": {str(k): v for k, v in sorted(k_hist.items(), key=lambda x: int(x[0]))},
            "fraction_of_reads": round(stale / reads, 6) if reads else 0.0}
