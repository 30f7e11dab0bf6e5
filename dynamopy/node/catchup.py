"""Whether this node has learned the metadata log up to what its peers report.

A node that plans requests on an old ring sends them to the wrong replicas and may count its
own copy of a key it no longer replicates; a replica behind the coordinator may not know a
change the coordinator planned with. So a node coordinates requests and answers data RPCs
(as a replica or a fallback) only while it is *caught up*:

1. Since this process started, every other member in its state has reported its epoch (a
   ping reply, or any request it sent: every data, hint and transfer RPC names its sender's
   epoch) or is seen down by the failure detector, and those that reported (with this node)
   include a majority of the metadata group (the acceptors), one of which accepted every
   committed entry. This is the start-up round: right after a restart the log on disk says
   nothing about what was decided meanwhile, and a node that can reach no majority cannot
   tell what it missed. It happens once per process; the detector pings every member every
   0.25 s, so it takes a ping round (up to ~1.5 s when a member is paused: two ping
   timeouts mark it down).
2. Its epoch is at least the highest epoch any peer reported since start, and at least the
   commit index the metadata log's peers announced (the Paxos learner has no known gap).

A request's epoch counts as a report, so a replica that is behind the coordinator is not
caught up until it applied that epoch. Not caught up, a coordinator waits (bounded) for the
log and answers 503 ``not_ready`` if it cannot catch up in time; a replica waits briefly on
an async call and otherwise refuses with ``not_caught_up`` (the coordinator treats that as a
failed target, keeping a hint for a home replica that missed a write). ``GET /ready`` is 503
while not caught up. Whether a Paxos leader is reachable right now does not matter: reads
and writes need no metadata majority.

``caught_up`` is asked several times per request, so a True answer is remembered until
something that can make it False happens: a peer reports a higher epoch (``note``), the
metadata log was stepped (its peers' commit index may have risen: the log calls
``invalidate``), or the state was replaced (``on_state_change``). A False answer is never
remembered: it turns True only when the state's epoch rises, which is checked each time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.core.membership import ClusterState
    from dynamopy.node.clock import Clock

POLL_S = 0.02


class CatchUp:
    """Built from what it uses: this node's id, the current membership state (a getter),
    ``is_up(member)`` (the failure detector), the clock, ``known_chosen_below()`` (the commit
    index the metadata log's peers announced; 0 before the log runs) and ``poke()`` (wake
    the metadata log to ask for what is missing)."""

    def __init__(self, *, me: str, state: Callable[[], "ClusterState"],
                 is_up: Callable[[str], bool], clock: "Clock",
                 known_chosen_below: Callable[[], int], poke: Callable[[], None]):
        self.me, self.state, self.is_up, self.clock = me, state, is_up, clock
        self.known_chosen_below, self.poke = known_chosen_below, poke
        self.peer_epoch = 0                 # highest epoch a peer reported since start
        self._reported: set[str] = set()    # peers that reported their epoch since start
        self._round_done = False            # the start-up round (rule 1), latched
        self._ok = False                    # caught_up was True and nothing changed since

    def note(self, epoch: int, peer_id: str) -> bool:
        """``peer_id`` reported ``epoch`` (it holds at least that much of the log); True if
        the report is taken. Only a member of this node's current state is heard, and only
        with an epoch that is a non-negative integer: a malformed claim from any
        authenticated connection (found by the peer-port fuzz test: a ``get`` naming epoch
        207 from a client id that is no member) would otherwise raise the target for good
        and keep this node unready forever."""
        if (type(epoch) is not int or epoch < 0
                or self.state().member(peer_id) is None):
            return False
        self._reported.add(peer_id)
        if epoch > self.peer_epoch:
            self.peer_epoch = epoch
            self._ok = False
        return True

    def invalidate(self, *_args) -> None:
        """Forget a remembered True (the metadata log was stepped, or the state changed)."""
        self._ok = False

    def target_epoch(self) -> int:
        """The epoch this node must have applied to be caught up."""
        return max(self.peer_epoch, self.known_chosen_below())

    def start_round_done(self) -> bool:
        if not self._round_done:
            state, me = self.state(), self.me
            heard = {me} | self._reported
            self._round_done = (
                state.bootstrapped
                and all(m in heard or not self.is_up(m) for m in state.members)
                and sum(1 for a in state.acceptors if a in heard) > len(state.acceptors) // 2)
        return self._round_done

    @property
    def caught_up(self) -> bool:
        if self._ok:
            return True
        ok = self._ok = (self.start_round_done()
                         and self.state().epoch >= self.target_epoch())
        return ok

    def lag(self) -> str:
        """Why this node is not caught up, for error details and logs."""
        if not self.start_round_done():
            state, me = self.state(), self.me
            waiting = sorted(m for m in state.members if m != me and m not in self._reported
                             and self.is_up(m))
            if waiting:
                return f"waiting for the epochs of {', '.join(waiting)}"
            return (f"no majority of the metadata group {list(state.acceptors)} reported "
                    "its epoch")
        return (f"at epoch {self.state().epoch}, its peers report epoch "
                f"{self.target_epoch()}")

    async def wait(self, timeout_s: float) -> bool:
        """Wait until caught up; False on timeout."""
        if self.caught_up:
            return True
        deadline = self.clock.monotonic() + timeout_s
        self.poke()
        while not self.caught_up:
            if self.clock.monotonic() >= deadline:
                return False
            await self.clock.sleep(POLL_S)
        return True
