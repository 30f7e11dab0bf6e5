"""Keeping the metadata group at its target size, with live members (issue 14).

The metadata leader (and only it: one proposer, no duel) looks every ``interval_s`` at the
group in the membership state and, when ``core.metadata_group.plan_group`` says it should
change, proposes a ``set_group`` entry through the log:

* a group member that left, is leaving, was removed, lost its disk (``retired``) or has been
  down longer than ``--metadata-group-replace-after-s`` (this node's failure detector) is
  replaced by a live ``normal`` member, preferring zones the group does not cover yet;
* the group grows or shrinks to ``metadata_group_size`` (``--metadata-group-size``, or
  ``POST /cluster/config``) as members allow;
* every new member that holds no acceptor state of its own is asked (peer RPC
  ``group_token``) for its incarnation token, which the change names: only that lets it
  vote (``core/paxos/groups.py``). A candidate that does not answer, or is not caught up
  with the log, is waited for a few looks (it may be a moment behind), then passed over;
  so is a current member that is kept (a seed still learning the bootstrap, or a node
  that lost its disk and has no vote). Which members it keeps or adds is the pure
  planner's choice (live first, then zones, then member numbers); a member leaves that
  choice only after ``PATIENCE`` looks without answering as caught up since it last did
  (its count restarts when it answers caught up), not because another seed caught up first.

Every ``SILENT_CHECK_EVERY`` looks it also asks the group's members whether they vote: one
that does not (it learned the change naming its token from a snapshot, which is not
replayed) is named again, with its current token, in a change to the same group.

The change names the group it replaces (compare-and-set), so a change that raced another
one, or a retry committed twice, changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

from dynamopy.core.metadata_group import plan_group, unfit
from dynamopy.node.errors import MembershipError
from dynamopy.peer import PeerError

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.core.membership import ClusterState
    from dynamopy.node.clock import Clock

log = logging.getLogger(__name__)

INTERVAL_S = 0.5
SILENT_CHECK_EVERY = 20  # looks between checks that every group member votes
PATIENCE = 4  # looks a preferred candidate may be unreachable or behind before another is picked


class GroupKeeper:
    """Built from what it uses: this node's id, the membership state (a getter), the clock,
    the failure detector's ``is_up``/``down_for``, a peer caller, ``propose``, whether this
    node leads the metadata log, this node's own token getter, the replacement delay and
    whether the node is stopping."""

    def __init__(self, *, me: str, state: Callable[[], "ClusterState"], clock: "Clock",
                 is_up: Callable[[str], bool], down_for: Callable[[str], float],
                 call_peer: Callable[..., Awaitable[Any]],
                 propose: Callable[[dict], Awaitable[int]], is_leader: Callable[[], bool],
                 own_token: Callable[[], Awaitable[dict]], replace_after_s: float,
                 stopping: Callable[[], bool], interval_s: float = INTERVAL_S):
        self.me, self.state, self.clock = me, state, clock
        self.is_up, self.down_for, self.call_peer = is_up, down_for, call_peer
        self.propose, self.is_leader, self.own_token = propose, is_leader, own_token
        self.replace_after_s, self.stopping, self.interval_s = replace_after_s, stopping, interval_s
        self.last_problem: Optional[str] = None
        # candidate -> looks it was unreachable or behind since it last answered caught up
        self._behind: dict[str, int] = {}
        self._looks = 0

    async def run(self) -> None:
        while not self.stopping():
            await self.clock.sleep(self.interval_s)
            if self.is_leader():
                await self.step()

    def down_too_long(self, state: "ClusterState") -> set[str]:
        return {g for g in state.acceptors
                if not self.is_up(g) and self.down_for(g) >= self.replace_after_s}

    async def token_of(self, member_id: str) -> Optional[dict]:
        """{"token", "caught_up"} from the member, or None if it does not answer."""
        if member_id == self.me:
            return await self.own_token()
        try:
            reply = await self.call_peer(member_id, "group_token", [], timeout_s=1.0)
        except (PeerError, asyncio.TimeoutError, MembershipError):
            return None
        return reply if isinstance(reply, dict) else None

    async def step(self) -> Optional[int]:
        """One look: propose a group change if one is due; its epoch, or None."""
        state = self.state()
        if not state.bootstrapped:
            return None
        live = {m for m in state.members if self.is_up(m)}
        down_long = self.down_too_long(state)
        self._looks += 1
        while True:
            new = plan_group(state, live, down_long)
            if new is None:
                if self._looks % SILENT_CHECK_EVERY == 0:
                    return await self._readmit_silent(state, live)
                return None
            dropped = await self._drop_non_voters(state, new, live)
            if dropped is None:
                return None  # a kept member may catch up by the next look
            if dropped:
                continue  # re-plan without them (each pass drops one from ``live`` at least)
            readmit = await self._tokens(state, new, live)
            if readmit is None:
                return None  # the preferred candidate may catch up by the next look
            if readmit is not False:
                self._behind.clear()
                return await self._propose(state, new, readmit, down_long)
            # a candidate has not answered or caught up for a while: dropped; re-plan

    async def _drop_non_voters(self, state, new, live: set) -> Optional[bool]:
        """Drop from ``live`` the current group members of ``new`` that do not answer as
        caught-up members for ``PATIENCE`` looks: a node that lost its disk and waits to be
        replaced is alive and still listed, but has no vote (found in review: trimming the
        group to the target size kept such a node, the lowest-numbered, and the log never
        committed again). A member a moment behind is waited for, as a new candidate is
        (``_tokens``): dropping it at the first look made a five-seed bootstrap's group
        whichever seeds had caught up first. True if any was dropped; None to look again
        next time."""
        dropped = False
        for g in new:
            if g in state.acceptors and g not in state.retired and g in live:
                info = await self.token_of(g)
                if info is not None and info.get("caught_up"):
                    self._behind.pop(g, None)  # caught up: judged afresh if it falls behind
                    continue
                self._behind[g] = self._behind.get(g, 0) + 1
                if self._behind[g] < PATIENCE:
                    return None
                live.discard(g)
                dropped = True
        return dropped

    async def _readmit_silent(self, state, live: set) -> Optional[int]:
        """A group member that holds no acceptor state although it is in the group (it
        learned the change naming its token from a snapshot, which does not replay it, or
        the change named an older token) never votes: name its current token again in a
        change to the same group."""
        readmit: dict[str, str] = {}
        for g in state.acceptors:
            if g == self.me or g in state.retired or g not in live:
                continue
            info = await self.token_of(g)
            if info is not None and info.get("caught_up") and isinstance(info.get("token"), str):
                readmit[g] = info["token"]
        if not readmit:
            return None
        return await self._propose(state, tuple(state.acceptors), readmit, set())

    async def _tokens(self, state, new, live: set):
        """The tokens of the new members that need one; None if one of them does not
        answer or is not caught up (it may be a moment behind: look again next time);
        False once that lasted ``PATIENCE`` looks (it is dropped from ``live``)."""
        readmit: dict[str, str] = {}
        for g in new:
            if g in state.acceptors and g not in state.retired:
                continue
            info = await self.token_of(g)
            if info is None or not info.get("caught_up"):
                self._behind[g] = self._behind.get(g, 0) + 1
                if self._behind[g] < PATIENCE:
                    return None
                live.discard(g)
                return False
            self._behind.pop(g, None)  # caught up: judged afresh if it falls behind
            if isinstance(info.get("token"), str):
                readmit[g] = info["token"]
        return readmit

    async def _propose(self, state, new, readmit, down_long) -> Optional[int]:
        out = sorted(set(state.acceptors) - set(new))
        why = {g: ("down too long" if g in down_long else "retired (lost its disk)"
                   if g in state.retired else "not a normal member") for g in unfit(state, down_long)}
        gone = ", ".join(f"{g} ({why.get(g, 'size')})" for g in out)
        reason = (f"metadata group {list(state.acceptors)} -> {list(new)}"
                  + (f"; out: {gone}" if out else "")
                  + (f"; readmit: {', '.join(sorted(readmit))}" if readmit else "")
                  + f"; target size {state.settings.metadata_group_size}")
        entry = {"op": "set_group", "group": list(new), "from_group": list(state.acceptors),
                 "readmit": readmit, "reason": reason}
        try:
            epoch = await self.propose(entry)
        except MembershipError as e:
            if e.detail != self.last_problem:
                log.info("group change not committed: %s", e.detail)
                self.last_problem = e.detail
            return None
        log.info("%s (epoch %d)", reason, epoch)
        self.last_problem = None
        return epoch
