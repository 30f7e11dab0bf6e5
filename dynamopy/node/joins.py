"""Admitting joiners, and abandoning joins whose joiner never shows up.

A join blocks every other ring change until it finishes, and only the joiner can finish it
(it pulls its ranges and proposes ``finish_join``). So:

* A join is proposed only for a node that is there: before proposing, the node handling
  ``POST /cluster/members`` opens a peer connection to the joiner's peer address and the
  joiner must prove the cluster secret as the id it asks to join with. A node that does not
  answer is refused with 409 ``conflict`` (start it, then retry: a node started with
  ``--join`` retries by itself); one that fails the handshake or answers as another id is
  refused with 400 ``bad_request`` (a configuration error a retry does not fix). A refused
  join leaves the log as it was.
* A join whose joiner has not started streaming ``--join-timeout-s`` after this node learned
  of the join is abandoned. "Started" is the joiner's own word (peer RPC ``join_started``:
  it applied the join entry and began its transfer); a joiner that is down, unreachable, or
  alive but not following this cluster's log has not. One watcher (the lowest-numbered live
  ``normal`` member, as for a removal's driver) asks, and if not, proposes
  ``{"op": "remove", "id": J, "abandon_join": true, "reason": ...}``. The state machine
  applies it only while that join is still in progress, so it can never remove a member
  whose join finished meanwhile. ``GET /cluster/log`` lists the entry with its reason.
  Abandoning is what ``DELETE /cluster/members/J`` does for a dead joiner: the ring never
  switched to it, so no acknowledged write depends on it.
* A join is abandoned too when a member that gains ranges in it is removed (it died: the
  join would wait for its transfer for ever; ``core/membership_changes.py``). The joiner
  may be alive then, or it may have been only slow to start. A joiner that sees its join
  gone while it runs joins again (``join_again_if_abandoned``), as it would on a restart:
  it was started to be a member. Its pulled data of the abandoned change is dropped like
  any range it no longer replicates (``node/transfer.py``), and the new join pulls again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

from dynamopy.core.membership import JOINING, InvalidEntry, validate
from dynamopy.node.clock import Wakeup, wait_set
from dynamopy.node.errors import MembershipError
from dynamopy.peer import AuthError, PeerError

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.core.membership import ClusterState
    from dynamopy.node.clock import Clock
    from dynamopy.node.runtime import Node

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.5
REJOIN_CHECK_S = 30.0   # the watch wakes on every state change; this is a safety net


async def check_joiner(node: "Node", entry: dict) -> None:
    """Refuse (``MembershipError``) a join that would not apply, or whose joiner does not
    prove the cluster secret as ``entry["id"]`` at ``entry["peer"]``."""
    try:
        validate(node.state, entry)
    except InvalidEntry as e:
        raise MembershipError(e.status, e.code, e.detail) from None
    mid, peer = entry["id"], entry["peer"]
    try:
        server_id = await node.transport.identify(peer, node.config.request_timeout_s)
    except AuthError as e:
        raise MembershipError(400, "bad_request",
                              f"the node at {peer} failed the cluster-secret handshake ({e}); "
                              "is it started with this cluster's --cluster-secret?") from None
    except (PeerError, OSError, asyncio.TimeoutError, ValueError) as e:
        # ValueError: a host name the resolver cannot even encode (UnicodeError), or an
        # address that does not parse; either way nothing answers there.
        raise MembershipError(409, "conflict",
                              f"{mid} does not answer at its peer address {peer} ({e}); start "
                              "it first (a node started with --join joins by itself)") from None
    if server_id != mid:
        raise MembershipError(400, "bad_request",
                              f"the node at {peer} is {server_id!r}, not {mid!r}")


async def admit_join(node: "Node", entry: dict) -> int:
    """What ``POST /cluster/members`` does once its body parses: refuse a joiner that is not
    there (``check_joiner``), else propose the join; returns the epoch it committed at. The
    system simulator admits its joiners through this too."""
    await check_joiner(node, entry)   # is it there, with the cluster secret?
    return await node.propose(entry)


class JoinWatcher:
    """Abandons a join whose joiner has not started its transfer within ``join_timeout_s``
    (see the module doc)."""

    def __init__(self, *, me: str, state: Callable[[], "ClusterState"], clock: "Clock",
                 is_up: Callable[[str], bool], call_peer: Callable[..., Awaitable[Any]],
                 propose: Callable[[dict], Awaitable[int]], join_timeout_s: float,
                 transfer_epoch: Callable[[], int], stopping: Callable[[], bool]):
        """Built from what it uses: this node's id, the current membership state (a
        getter), the clock, ``is_up`` (failure detector), a peer caller, ``propose``, the
        join timeout, ``transfer_epoch()`` (the change this node's transfer belongs to)
        and whether the node is stopping."""
        self.me, self.state, self.clock, self.is_up = me, state, clock, is_up
        self.call_peer, self.propose, self.join_timeout_s = call_peer, propose, join_timeout_s
        self.transfer_epoch, self.stopping = transfer_epoch, stopping
        self._change_epoch = 0
        self._since = 0.0        # monotonic time this node learned of the join in progress
        self._started = False    # the joiner said it started this join's transfer

    def rpc_started(self, payload: list, peer_id: str) -> bool:
        """Joiner side: has this node started the transfer of the change at this epoch?"""
        (change_epoch,) = payload
        return self.transfer_epoch() == change_epoch

    def _is_watcher(self, joiner: str) -> bool:
        state = self.state()
        live = sorted((m.number, m.id) for m in state.members.values()
                      if m.id != joiner and m.state == "normal" and self.is_up(m.id))
        return bool(live) and live[0][1] == self.me

    async def _joiner_started(self, joiner: str, change_epoch: int) -> bool:
        try:
            return bool(await self.call_peer(joiner, "join_started", [change_epoch],
                                             timeout_s=1.0))
        except (PeerError, asyncio.TimeoutError):
            return False

    async def run(self) -> None:
        while not self.stopping():
            await self.clock.sleep(WATCH_INTERVAL_S)
            state = self.state()
            if state.change is None or state.change[0] != "join":
                continue
            joiner, change_epoch = state.change[1], state.change_epoch
            if change_epoch != self._change_epoch:
                self._change_epoch, self._since = change_epoch, self.clock.monotonic()
                self._started = False
            timeout_s = self.join_timeout_s
            if self._started or self.clock.monotonic() - self._since < timeout_s \
                    or not self._is_watcher(joiner):
                continue
            if await self._joiner_started(joiner, change_epoch):
                self._started = True
                continue
            reason = (f"join abandoned: {joiner} did not start streaming within {timeout_s:g}s "
                      f"(--join-timeout-s) of the join at epoch {change_epoch}")
            log.warning("%s", reason)
            try:
                await self.propose({"op": "remove", "id": joiner, "abandon_join": True,
                                    "change_epoch": change_epoch, "reason": reason})
            except MembershipError as e:  # the join finished, or no majority: look again
                log.info("abandoning the join of %s: %s", joiner, e.detail)


async def join_again_if_abandoned(node: "Node", join_again: Callable[[], Awaitable[None]]
                                  ) -> None:
    """Until this node's join has finished: whenever the log drops its join (abandoned
    while the node runs: see the module doc), log why and ``join_again()`` (the node's own
    way of asking a member to add it; it returns once a join is accepted). The join is
    dropped when the log no longer lists this node after it saw itself joining, or once it
    has applied the epoch its join request committed at (``node.join_accepted_epoch``: it
    may learn the join and its end at once, from a snapshot). It looks whenever the state
    changes (``node.observers``), with no timer of its own beyond a slow safety net.
    Returns once the node is a member past its join, or has left by its own leave
    (``metalog.left``), or stops."""
    changed = Wakeup()

    def observe(_old: "ClusterState", _new: "ClusterState") -> None:
        changed.set()

    node.observers.append(observe)
    try:
        seen: Optional[int] = None    # change_epoch of the join this node last saw itself in
        while not node.stopping:
            changed.clear()
            state = node.state
            me = state.member(node.id)
            if me is not None:
                if me.state != JOINING:
                    return
                seen = state.change_epoch
            elif node.metalog.left is not None:
                return
            else:
                asked = node.join_accepted_epoch
                if seen is not None or (asked is not None and state.epoch >= asked):
                    log.warning("%s: its join (begun at epoch %s) was abandoned by epoch %d "
                                "while it ran (GET /cluster/log says why): joining again",
                                node.id, seen if seen is not None else asked, state.epoch)
                    seen = node.join_accepted_epoch = None
                    await join_again()
                    continue
            await wait_set(changed, REJOIN_CHECK_S)
    finally:
        node.observers.remove(observe)
