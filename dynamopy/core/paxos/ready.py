"""``Ready``: the batch of effects a ``MetaLogNode`` hands its caller.

See ``node`` for the order in which a Ready must be handled (snapshot, persist + sync,
apply, send, advance): that order is the protocol's durability contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

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


def finish_ready(node, rd: Ready, *, apply: Callable[[int, object], None],
                 send: Callable[[tuple[tuple[str, Message], ...]], None],
                 install: Optional[Callable[[Snapshot], None]] = None) -> None:
    """The one Ready handler, from the sync point on; every caller (the node's metadata log,
    the simulator, the tests) runs it the same way::

        rd = node.ready()
        <store rd.snapshot, rd.persist and rd.committed durably, and sync>   # the caller's
        finish_ready(node, rd, install=..., apply=..., send=...)

    Only after the sync: ``install`` the adopted snapshot (the app's state becomes it), then
    ``apply`` each committed (slot, value) in order, then ``send`` the messages (a promise or
    an accept may only leave once it is durable), then ``advance``. The storing is the
    caller's because only it knows its storage; the order after it lives here, once.
    """
    if rd.snapshot is not None:
        if install is None:
            raise ValueError("a Ready with a snapshot needs an install callback")
        install(rd.snapshot)
    for slot, value in rd.committed:
        apply(slot, value)
    if rd.messages:
        send(rd.messages)
    node.advance(rd)
