"""A node that came back with an empty data directory under an id the cluster knows.

Its acceptor state and its data are gone, so it must neither vote (an empty acceptor state
could let Paxos choose two values for one slot) nor answer as a replica (its empty store
would hide acknowledged writes). The rules, in order:

1. It adopts the metadata group from a member as a non-voter, recording durably, in the
   same batch, that it is a replacement and the epoch at which the cluster listed it
   (``node/metalog.py``: ``paxos/no_vote`` and ``replacing``). While that marker is on disk
   it is not ready, coordinates nothing and refuses data RPCs, across restarts too.
2. Once it has learned the log up to that epoch, it proposes ``replace`` of its own id until
   the log no longer lists it: the old incarnation is removed like a dead member (survivors
   re-replicate its ranges) and its acceptor role is retired (``core/membership.py``). While
   another member's change is in progress it waits for it instead (it takes part as a
   gainer): a ``replace`` then would abandon that change if the old incarnation gains from
   it, and two nodes replaced at once would abandon each other's removal for ever.
3. Then it clears the marker and joins as a new member, which streams its ranges back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dynamopy.node.errors import MembershipError

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.node.runtime import Node

log = logging.getLogger(__name__)

RETRY_S = 0.3
MAX_RETRY_S = 3.0


async def retire_old_incarnation(node: "Node") -> None:
    """Rules 2-3 up to the join: return once the old incarnation is out of the log (or the
    node stops)."""
    since = node.metalog.replacing
    failures = 0
    last_detail = None
    while not node.stopping and node.metalog.replacing:
        state = node.state
        delay = RETRY_S
        if state.epoch < since:
            node.metalog.poke()  # still learning the log up to where the cluster listed it
        elif state.member(node.id) is None:
            log.info("%s: the old incarnation is out of the cluster at epoch %d; "
                     "joining again", node.id, state.epoch)
            await node.metalog.replaced()
            return
        elif state.is_removing(node.id):
            pass  # its removal is in progress (alone or merged into another's)
        elif state.change is not None and state.change[1] != node.id:
            # Another member's change is in progress: wait for it. This node takes part as
            # a gainer (it pulls the ranges its old incarnation gains), so it finishes.
            # Proposing now would abandon a leave whenever the old incarnation gains from
            # it (the dead-gainer rule); two nodes replaced at once then abandoned each
            # other's removal for ever, a `replace` entry every second (found in review).
            if last_detail != state.change:
                log.info("%s: waiting for the %s of %s before its replacement", node.id,
                         *state.change[:2])
                last_detail = state.change
        else:
            try:
                epoch = await node.propose({"op": "replace", "id": node.id})
                log.info("%s: replacement committed at epoch %d", node.id, epoch)
                node.metalog.replacement_blocked = None
            except MembershipError as e:
                node.metalog.replacement_blocked = e.detail  # shown by GET /ready
                failures += 1
                delay = min(MAX_RETRY_S, RETRY_S * failures)
                if e.detail != last_detail:  # e.g. the cluster is too small to remove it
                    log.warning("%s: replacement not possible yet: %s", node.id, e.detail)
                    last_detail = e.detail
        await node.clock.sleep(delay)
