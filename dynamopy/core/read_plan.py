"""Which nodes a read asks, in what order, and whose answers count toward R.

Rules (part of the data path's rules; each has a test):

* A read asks every reachable home replica (the key's preference list, as the failure
  detector sees it) before any fallback. The coordinator comes first when it is a home
  replica: a local read is free.
* A fallback is asked only in the place of a home replica the detector sees down, and it
  stands in for that one member (``Target.hint_for``): it answers from the hints it holds
  for it (a sloppy read). Fallbacks are paired with down home replicas in preference order,
  the same pairing the write plan (:func:`dynamopy.core.quorum.plan_targets`) uses, so the
  fallback asked is the one a write would have left the hint on.
* Home replicas the detector sees down come last: the detector may lag a restart, and a
  home replica's answer is worth more than a fallback's.
* R counts *slots* (home members), not nodes: a home replica's answer fills its own slot,
  whatever it says (holding no record is an answer: the key is absent there). A fallback's
  answer fills the slot of the member it stands in for only when it holds a record; its
  empty lookup is "unknown", never a stand-in for a home replica's record. A slot counts
  once, however many nodes answered for it. (See :class:`dynamopy.core.quorum.ReadRound`.)
* ``sloppy=False`` (``?strict=true``) asks home replicas only.
"""

from __future__ import annotations

from itertools import islice
from typing import Callable, Iterable

from dynamopy.core.quorum import Target


def plan_read(walk: Iterable[str], n: int, is_up: Callable[[str], bool], *,
              coordinator: str, sloppy: bool = True) -> list[Target]:
    """The ordered targets of a read of one key.

    ``walk`` is the key's ring walk (preference list first, then fallbacks; consumed
    lazily: past the first ``n`` only when a home replica is down); ``is_up`` is the
    failure detector's view. The caller asks the first R targets and keeps the rest as
    backups, in this order.
    """
    it = iter(walk)
    home = list(islice(it, n))
    up = [m for m in home if is_up(m)]
    down = [m for m in home if not is_up(m)]
    up.sort(key=lambda m: m != coordinator)  # stable: otherwise preference order
    targets = [Target(m) for m in up]
    if down and sloppy:
        fallbacks = (m for m in it if is_up(m))
        stand_ins = [Target(fb, hint_for=m) for m, fb in zip(down, fallbacks)]
        stand_ins.sort(key=lambda t: t.node != coordinator)
        targets += stand_ins
    targets += [Target(m) for m in down]
    return targets

