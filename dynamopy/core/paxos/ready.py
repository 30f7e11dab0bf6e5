"""``Ready``: the batch of effects a ``MetaLogNode`` hands its caller.

See ``node`` for the order in which a Ready must be handled (snapshot, persist + sync,
apply, send, advance): that order is the protocol's durability contract.
"""

from __future__ import annotations

from dataclasses import dataclass

from .acceptor import AcceptorUpdate
from .messages import Entry, Message, Snapshot


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the caller must do, in field order (``node`` module docstring):

    - ``snapshot``: a peer's snapshot this node adopted; the app replaces its state with
      it and stores it durably. ``committed`` then continues from ``snapshot.slot``.
    - ``persist``: the acceptor changes to apply and sync before anything below.
    - ``committed``: (slot, value) pairs to apply, consecutive, strictly increasing.
    - ``messages``: (destination id, message) pairs to send after the sync.
    """

    snapshot: Snapshot | None
    persist: AcceptorUpdate | None
    committed: tuple[Entry, ...]
    messages: tuple[tuple[str, Message], ...]

    @property
    def empty(self) -> bool:
        return self.snapshot is None and self.persist is None and not self.committed and not self.messages
