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
    """Everything the caller must do, in field order (see the module docstring)."""

    snapshot: Snapshot | None
    persist: AcceptorUpdate | None
    committed: tuple[Entry, ...]
    messages: tuple[tuple[str, Message], ...]

    @property
    def empty(self) -> bool:
        return self.snapshot is None and self.persist is None and not self.committed and not self.messages
