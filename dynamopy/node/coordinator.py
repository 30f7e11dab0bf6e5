"""The coordinator side of the data path: quorum writes and reads for any key.

Any node coordinates any request. A write stamps a fresh version, sends the record to the
key's targets and answers after W distinct durable acks; a read asks the replicas and answers
after R replies with the newest record. Either way the coordinator answers as soon as the
quorum is met (or can no longer be) and lets the remaining calls finish in the background;
a read then repairs the replicas that answered stale or missing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Awaitable, Callable, Optional

from dynamopy.core.placement import replicas
from dynamopy.core.quorum import (Outcome, ReadRound, Target, WriteRound, pending_required,
                                  plan_targets)
from dynamopy.core.read_plan import plan_read
from dynamopy.core.records import Record
from dynamopy.core.versions import physical_ms
from dynamopy.deadlines import Deadlines
from dynamopy.node.errors import (BadRequest, ClockSkew, QuorumUnavailable, StaleEpochError,
                                  StaleSession, stale_epoch_of)
from dynamopy.node.fanout import FanOut
from dynamopy.node.replica import NOT_CAUGHT_UP, STALE_EPOCH
from dynamopy.peer import PeerError, RemoteError

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.config import NodeConfig
    from dynamopy.core.membership import ClusterState
    from dynamopy.node.clock import Clock
    from dynamopy.node.detector import FailureDetector
    from dynamopy.node.hints import HintManager
    from dynamopy.node.metrics import Metrics
    from dynamopy.node.replica import Replica
    from dynamopy.node.version_clock import VersionClock

log = logging.getLogger(__name__)

SPECULATE_S = 0.1  # a read still undecided after this also asks its backup replicas
GET_RETRIES, GET_RETRY_S = 3, 0.05  # a replica catching up with the log is asked again
# A write whose replicas keep answering with newer versions (other writers keep writing the
# key) is re-stamped until the request timeout is spent, at most MAX_RESTAMPS times (503).
MAX_RESTAMPS = 32
TOKEN_SLACK_MS = 2_000  # how far beyond the clock-offset bound a session token may be ahead
DEFAULT_MAX_CLOCK_OFFSET_MS = 500  # the token bound when --max-clock-offset-ms is 0


class Coordinator:
    """Quorum reads and writes, built from what they use: this node's id and config, the
    current membership state (a getter), the clock, metrics, the failure detector (who is up,
    is this node's clock fit to stamp), the local replica and hint store, a peer caller
    (``call_peer(member, method, payload)``, and ``start_peer``: the same call started as a
    future), the version source (``versions.next``) and
    ``observe_version``, and the node's readiness gates (``serving_state``,
    ``require_ready``, ``wait_for_epoch``)."""

    def __init__(self, *, me: str, config: "NodeConfig", state: Callable[[], "ClusterState"],
                 clock: "Clock", metrics: "Metrics", detector: "FailureDetector",
                 replica: "Replica", hints: "HintManager", call_peer: Callable[..., Awaitable],
                 versions: "VersionClock", observe_version: Callable[[int], None],
                 serving_state: Callable[[], Awaitable["ClusterState"]],
                 require_ready: Callable[[], "ClusterState"],
                 wait_for_epoch: Callable[[int], Awaitable[bool]],
                 start_peer: Optional[Callable[..., asyncio.Future]] = None):
        self.id, self.config, self.state, self.clock = me, config, state, clock
        self.metrics, self.detector, self.replica, self.hints = metrics, detector, replica, hints
        self.call_peer, self.versions, self.observe_version = call_peer, versions, observe_version
        self.serving_state, self.require_ready = serving_state, require_ready
        self.wait_for_epoch = wait_for_epoch
        # ``start_peer(member, method, payload, then=None)``: ``call_peer`` started now, as
        # a future, ``then(fut)`` run once it settled (the node sends on a ready connection
        # without a task); a task by default.
        self.start_peer = start_peer if start_peer is not None else self._call_in_task
        self._background: set[asyncio.Future] = set()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        # The rounds' timers (speculations, budgets): one loop timer per queue, not per round.
        self._deadlines: Optional[tuple[Deadlines, Deadlines]] = None
        # What planning a request can take from the ring view alone, per partition; valid
        # for the state it was built from (states are immutable: a ring change is a new one).
        self._plan_state: Optional["ClusterState"] = None
        self._plans: dict[int, _Plan] = {}
        self._plan_targets: dict[str, Target] = {}  # one Target per member, shared by plans

    # ---- public ---------------------------------------------------------------------
    async def write(self, key: bytes, *, value: bytes, content_type: str, deleted: bool,
                    w: int, sloppy: bool = True, after: int = 0,
                    caught_up: bool = False) -> tuple[int, int]:
        """Store a new version on W replicas; return (version, counting acks so far).

        The version is above ``after`` (a client's session token) and above everything this
        node has seen. Only acks of the final version count: a replica holding a newer
        version answers with it, and the write is re-stamped above it and sent again (at
        most ``MAX_RESTAMPS`` times and while the request timeout lasts; no extra round trip
        while versions arrive in order).
        If a replica answers that this node's ring is out of date (``stale_epoch``), the
        coordinator catches up with the metadata log and retries once with the new ring.
        ``caught_up``: the caller has just awaited ``node.serving_state()`` itself.
        """
        node = self
        if not caught_up:
            await node.serving_state()  # never plan on a ring older than the peers' (or
            # count this node's copy of a key it no longer replicates): catch up first
        wall_ms = node.detector.check_clock()   # (the stamp uses the reading it judged)
        if after:
            self._check_token(after)
        version = await node.versions.next(after, wall_ms)
        restamps, epoch_retried = 0, False
        restamp_until = node.clock.monotonic() + node.config.request_timeout_s
        while True:
            record = Record(version, deleted, content_type, value)
            state = node.require_ready()
            token = state.ring.token(key)
            targets = self._targets(state, token, sloppy)
            required = w if state.change is None else pending_required(
                w, targets, self._plan(state, token).home)
            rnd = WriteRound(tuple(targets), required)
            wire = record.to_wire()
            stale: list[int] = []

            def call(t: Target, state=state, record=record, wire=wire) -> asyncio.Future:
                return self._start_put(t, state.epoch, token, key, record, wire, stale)

            def on_ok(t: Target, stored: int, rnd=rnd, version=version) -> Outcome:
                return rnd.ack(t.node) if stored <= version else rnd.newer(t.node, stored)

            pending = await self._fan_out(targets, call, on_ok=on_ok,
                                          on_fail=lambda t, rnd=rnd: rnd.fail(t.node),
                                          outcome=lambda rnd=rnd: rnd.outcome)
            if rnd.outcome is Outcome.SUCCEEDED:
                return version, len(rnd.acked)
            if not rnd.newest_heard:
                # The write may still land on the replicas that are up: let those calls
                # finish (each is bounded by the request timeout) so the error reports true
                # acks (or a late newer version is heard).
                await asyncio.wait(pending, timeout=node.config.request_timeout_s + 0.5)
                if rnd.outcome is Outcome.SUCCEEDED:
                    return version, len(rnd.acked)
            if (rnd.newest_heard and restamps < MAX_RESTAMPS
                    and node.clock.monotonic() < restamp_until):
                restamps += 1
                node.metrics.restamps.inc()
                try:   # (a step may have come since the first stamp)
                    wall_ms = node.detector.check_clock()
                except ClockSkew as e:
                    raise ClockSkew(f"{e.detail}; an earlier stamp of this write may still be "
                                    "stored on some replicas", **e.extra) from None
                version = await node.versions.next(rnd.newest_heard, wall_ms)
                continue
            if stale and not epoch_retried and await node.wait_for_epoch(max(stale)):
                epoch_retried = True
                continue
            break
        node.metrics.quorum_failures.labels("write").inc()
        during = (f" (W={w} plus {required - w} for the ring change in progress)"
                  if required > w else "")
        newer = (f"; replicas kept answering with newer versions after {restamps} re-stamps "
                 "(other writers kept writing this key)" if rnd.newest_heard else "")
        raise QuorumUnavailable(
            f"only {len(rnd.acked)} of the required {required} replicas{during} acknowledged "
            f"the write within {node.config.request_timeout_s}s{newer}; it may still be stored "
            "on some replicas", acks=len(rnd.acked), required=required)

    async def read(self, key: bytes, *, r: int, sloppy: bool = True,
                   caught_up: bool = False) -> Optional[Record]:
        """The newest record among R replies (``None`` if none of them has the key).
        ``caught_up``: the caller has just awaited ``node.serving_state()`` itself."""
        node = self
        for attempt in (0, 1):
            state = (node.require_ready() if caught_up and attempt == 0
                     else await node.serving_state())
            token = state.ring.token(key)
            # Every reachable home replica before any fallback (this node first when it is
            # one: a local read is free); the first R are asked, the rest are backups.
            targets = self._read_targets(state, token, sloppy)
            rnd = ReadRound(tuple(targets), r)
            stale: list[int] = []

            def call(t: Target, state=state) -> asyncio.Future:
                return self._start_get(t, state.epoch, token, key, stale)

            def on_ok(t: Target, rec: Optional[Record], rnd=rnd) -> Outcome:
                if rec is not None:
                    node.observe_version(rec.version)
                return rnd.reply(t.node, rec)

            def local(t: Target, state=state, stale=stale) -> Optional[Record]:
                try:
                    if t.hint_for is None:
                        node.replica.check_epoch(state.epoch, token)
                    else:
                        node.replica.require_caught_up()
                except StaleEpochError as e:
                    stale.append(e.epoch)
                    raise
                return node.replica.get(token, key, t.hint_for)

            pending = await self._fan_out(targets, call, on_ok=on_ok,
                                          on_fail=lambda t, rnd=rnd: rnd.fail(t.node),
                                          outcome=lambda rnd=rnd: rnd.outcome, initial=r,
                                          local_sync=local,
                                          fruitless=lambda t, rec: t.hint_for is not None
                                          and rec is None)
            if rnd.outcome is Outcome.SUCCEEDED:
                home = {t.node for t in targets if t.hint_for is None}
                # Usually every call has answered and none was stale: nothing to repair,
                # so no background task for it.
                if (any(not task.done() for task in pending)
                        or any(n in home for n in rnd.stale())):
                    self._spawn(self._repair_after(rnd, pending, home, state.epoch, token, key))
                return rnd.newest()
            await asyncio.wait(pending, timeout=node.config.request_timeout_s + 0.5)
            if rnd.outcome is Outcome.SUCCEEDED:
                return rnd.newest()
            if stale and attempt == 0 and await node.wait_for_epoch(max(stale)):
                continue
            break
        node.metrics.quorum_failures.labels("read").inc()
        raise QuorumUnavailable(
            f"only {rnd.counted} of the required {r} replicas answered the read "
            f"within {node.config.request_timeout_s}s", replies=rnd.counted, required=r)

    def _check_token(self, after: int) -> None:
        """A session token is a version some node issued, so it is not far ahead of this
        node's WALL clock; one that is (forged or corrupt) must not drag this node's clock
        into the future for good: 400 instead. Measured against the wall clock, not the
        hybrid one: a token accepted earlier has moved the hybrid clock, and comparing with it
        would let a chain of tokens ratchet every version ahead without bound. The bound
        holds with the skew check turned off too (its default offset is used then)."""
        limit_ms = self.config.max_clock_offset_ms or DEFAULT_MAX_CLOCK_OFFSET_MS
        ahead_ms = physical_ms(after) - self.clock.wall_ms()
        if ahead_ms > limit_ms + TOKEN_SLACK_MS:
            raise BadRequest(f"X-Dynamopy-After={after} is {ahead_ms / 1000:.1f} s ahead of this "
                             "node's clock: not a version this cluster issued")

    async def read_after(self, key: bytes, *, r: int, sloppy: bool = True,
                         after: int = 0) -> Optional[Record]:
        """A read for a client session that has seen version ``after`` of this key: the
        answer is at least that new. When the first R replies are older, ask more replicas
        (R+1 .. N, from all of them down); if none of those reads finds it, 503
        ``stale_session`` (never an older value)."""
        rec = await self.read(key, r=r, sloppy=sloppy)
        if after <= 0 or (rec is not None and rec.version >= after):
            return rec
        n = self.state().settings.n
        newest = rec.version if rec is not None else 0
        for wider in range(n, r, -1):
            try:
                rec = await self.read(key, r=wider, sloppy=sloppy)
            except QuorumUnavailable:
                continue
            if rec is not None and rec.version >= after:
                return rec
            newest = max(newest, rec.version if rec is not None else 0)
            break  # this many replicas answered; fewer cannot know more
        raise StaleSession(
            f"no replica reachable now holds version {after} of this key or a newer one (the "
            f"newest found is {newest or 'none'}); retry, or drop X-Dynamopy-After to accept "
            "an older value", after=after, newest=newest)

    def _plan(self, state: "ClusterState", token: int) -> "_Plan":
        """The plan of ``token``'s partition at ``state`` (built once per partition and ring
        view: a new state, i.e. any ring or membership change, starts a new cache)."""
        if state is not self._plan_state:
            self._plan_state, self._plans, self._plan_targets = state, {}, {}
        part = state.ring.partition(token)
        plan = self._plans.get(part)
        if plan is None:
            plan = self._plans[part] = _Plan(state, token, self.id, self._plan_targets)
        return plan

    def _targets(self, state, token: int, sloppy: bool) -> tuple[Target, ...] | list[Target]:
        """A write's targets: home replicas when all are up (the common, cheap case: the
        partition's plan); else the sloppy plan over the ring walk. Plus the members gaining
        the key in a change in progress. (Reads: ``_read_targets``.)"""
        plan = self._plan(state, token)
        is_up = self.detector.is_up
        if not sloppy or all(is_up(m) for m in plan.home):
            return plan.write
        return plan_targets(list(state.ring.walk_token(token)), state.settings.n, is_up,
                            extra=plan.gaining)

    def _read_targets(self, state, token: int, sloppy: bool) -> tuple[Target, ...] | list[Target]:
        """A read's targets (``core.read_plan``): with every home replica up, the partition's
        plan; else planned now over the ring walk with the detector's view."""
        plan = self._plan(state, token)
        is_up = self.detector.is_up
        if all(is_up(m) for m in plan.home):
            return plan.read
        return plan_read(state.ring.walk_token(token), state.settings.n, is_up,
                         coordinator=self.id, sloppy=sloppy)

    # ---- fan-out machinery ------------------------------------------------------------
    async def _fan_out(self, targets: list[Target], call: Callable[[Target], Awaitable],
                       *, on_ok, on_fail, outcome, initial: Optional[int] = None,
                       local_sync: Optional[Callable[[Target], object]] = None,
                       fruitless: Optional[Callable[[Target, object], bool]] = None
                       ) -> list[asyncio.Task]:
        """Start calls to ``targets``; return once ``outcome()`` is decided.

        With ``initial``, only the first ``initial`` targets are called at once; each
        failure starts the next one, and after ``SPECULATE_S`` without a decision all the
        rest start (a speculative retry, as Cassandra's). Calls still running are left to
        finish in the background (their results keep feeding the round, which read repair
        looks at later). Each call is bounded by the request timeout, so every task ends.
        An answer that ``fruitless(target, value)`` says did not advance the round (a
        fallback's empty hint lookup) starts the next target too.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            # Once: asyncio.get_running_loop() costs a getpid() system call on Python 3.11.
            loop = self._loop = asyncio.get_running_loop()
            self._deadlines = (Deadlines(loop), Deadlines(loop))
        fan = FanOut(targets, call, on_ok=on_ok, on_fail=on_fail, outcome=outcome,
                     local_id=self.id, background=self._background,
                     local_sync=local_sync, fruitless=fruitless, loop=loop,
                     deadlines=self._deadlines)
        return await fan.run(initial, SPECULATE_S, self.config.request_timeout_s + 0.5)

    def _start_put(self, t: Target, epoch: int, token: int, key: bytes, record: Record,
                   wire: list, stale: list) -> asyncio.Future:
        """A write's call to one target, without a task where it can: the local replica's
        write is the replica's group-commit future (same durability: it resolves after the
        synced batch; same epoch check as a remote replica makes), a remote one the peer
        call's future with ``_PutReply`` after it; only this node's own hint (a fallback for
        itself) runs ``_put_one`` in a task."""
        if t.hint_for is not None and t.node == self.id:
            return asyncio.ensure_future(self._put_one(t, epoch, token, key, record, wire))
        if t.node == self.id:
            replica = self.replica
            if not replica.catchup.caught_up and not replica.replacing():
                # A commit or two behind what its peers announced (it is still applying
                # them): wait to catch up and write, as a peer's put does
                # (``Replica.rpc_put_nowait``), rather than skip this node's own copy.
                return asyncio.ensure_future(
                    self._local_put_when_caught_up(epoch, token, key, wire, stale))
            try:
                replica.check_epoch(epoch, token)
            except StaleEpochError as e:
                stale.append(e.epoch)
                return _failed(e)
            return replica.put_nowait(token, key, record)
        return self.start_peer(t.node, "put", [epoch, token, key, wire, t.hint_for],
                               then=_PutReply(self, t, token, key, record, stale))

    async def _local_put_when_caught_up(self, epoch: int, token: int, key: bytes, wire: list,
                                        stale: list) -> int:
        """This node's own copy of a write it coordinates while it is still applying commits
        its peers announced: what a peer's put does then (``Replica._put_when_caught_up``:
        wait, check the ring, write). Found by the real-process two-dead-members test: the
        local write was refused as not caught up and no hint kept, so this node missed
        writes it replicates (read repair or anti-entropy fixed them only later)."""
        try:
            return await self.replica._put_when_caught_up(epoch, token, key, wire, None)
        except StaleEpochError as e:
            stale.append(e.epoch)
            raise

    def _start_get(self, t: Target, epoch: int, token: int, key: bytes,
                   stale: list) -> asyncio.Future:
        """A replica's get as a future: the peer call's, converted by ``_GetReply`` (no task
        unless the replica asks to be asked again, then ``_get_one``). A read's local target
        never comes here: ``_fan_out`` answers it with the read's ``local_sync``."""
        payload = [epoch, token, key] if t.hint_for is None else [epoch, token, key, t.hint_for]
        out = self._loop.create_future()  # type: ignore[union-attr]  (set by _fan_out)
        self.start_peer(t.node, "get", payload,
                        then=_GetReply(self, t, epoch, token, key, stale, out))
        return out

    async def _put_one(self, t: Target, epoch: int, token: int, key: bytes,
                       record: Record, wire: list) -> int:
        """A put in a task: this node's hint for a home replica (``_start_put``) or a read
        repair (local or remote; its failure is the caller's to ignore)."""
        node = self
        if t.node == node.id:
            if t.hint_for is None:
                # A repair of the local replica: the same check a remote replica makes (this
                # node may have learned of a ring change since the read was planned).
                node.replica.check_epoch(epoch, token)
            return await node.replica.put(token, key, record, t.hint_for)
        stored = await node.call_peer(t.node, "put", [epoch, token, key, wire, t.hint_for])
        node.observe_version(stored)
        return stored

    async def _keep_hint(self, member: str, token: int, key: bytes, record: Record) -> None:
        try:
            await self.hints.store(member, token, key, record)
        except PeerError:
            pass  # refused by the hint window or cap: counted as dropped there

    async def _get_one(self, t: Target, epoch: int, token: int, key: bytes,
                       stale: Optional[list] = None, first: int = 0) -> Optional[Record]:
        """A remote replica's record (a local target is answered by the read's
        ``local_sync``, in the same step, never through this). ``first``: how many tries were
        made already (then it waits before the next)."""
        node = self
        payload = [epoch, token, key] if t.hint_for is None else [epoch, token, key, t.hint_for]
        if first:
            await node.clock.sleep(GET_RETRY_S)
        for retry in range(first, GET_RETRIES + 1):
            try:
                return Record.from_wire(await node.call_peer(t.node, "get", payload))
            except RemoteError as e:
                _note_stale(stale, e)
                if e.code != NOT_CAUGHT_UP or retry == GET_RETRIES:
                    raise
            # The replica is still applying the epoch this read was planned in (a get is
            # answered inline, it cannot wait): ask again shortly; backups run meanwhile.
            await node.clock.sleep(GET_RETRY_S)

    # ---- read repair ------------------------------------------------------------------
    async def _repair_after(self, rnd: ReadRound, pending: list[asyncio.Task], home: set[str],
                            epoch: int, token: int, key: bytes) -> None:
        """Once every replica answered (or failed), send the newest record to the home
        replicas that answered stale or missing (fallbacks are not repaired: they only
        hold hints, which hinted handoff delivers)."""
        await asyncio.gather(*pending, return_exceptions=True)
        best = rnd.newest()
        if best is None:
            return
        wire = best.to_wire()
        for node_id in [n for n in rnd.stale() if n in home]:
            try:
                await self._put_one(Target(node_id), epoch, token, key, best, wire)
                self.metrics.read_repairs.inc()
            except (PeerError, asyncio.TimeoutError):
                pass

    def _call_in_task(self, member: str, method: str, payload, then=None) -> asyncio.Future:
        fut = asyncio.ensure_future(self.call_peer(member, method, payload))
        if then is not None:
            fut.add_done_callback(then)
        return fut

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background calls (used at shutdown)."""
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)


def _note_stale(stale: Optional[list], exc: BaseException) -> None:
    """Add the epoch a ``stale_epoch`` refusal names to ``stale`` (if collecting)."""
    epoch = stale_epoch_of(exc)
    if stale is not None and epoch is not None:
        stale.append(epoch)


def _failed(exc: BaseException) -> asyncio.Future:
    fut = asyncio.get_running_loop().create_future()
    fut.set_exception(exc)
    return fut


class _Plan:
    """What planning a request takes from the ring view alone, for one partition: the home
    replicas (``placement.replicas``), the members gaining it in a change in progress, and
    the targets of a write and of a read when every home replica is up (planned by the same
    functions as always, with everyone up)."""

    __slots__ = ("home", "gaining", "write", "read")

    def __init__(self, state: "ClusterState", token: int, me: str,
                 shared: dict[str, Target]) -> None:
        placed = replicas(state, token)
        self.home, self.gaining = placed.current, placed.gaining
        # ``shared``: the home-replica Target of each member, one object for all the plans
        # (a full cache is Q plans: ~1 MB instead of ~3 at Q=4096).
        self.write = tuple(shared.setdefault(m, Target(m)) for m in
                           self.home + tuple(m for m in self.gaining if m not in self.home))
        # With everyone up a read asks home replicas only: their shared Targets, in
        # ``plan_read``'s order.
        self.read = tuple(shared[t.node] for t in plan_read(
            state.ring.walk_token(token), state.settings.n, _everyone_up, coordinator=me))


def _everyone_up(member: str) -> bool:
    return True


class _PutReply:
    """A remote put's done callback (it runs before the round hears the result): absorb the
    version the replica stored; on failure note a ``stale_epoch`` refusal and keep a hint
    for a home replica that missed the write."""

    __slots__ = ("coord", "target", "token", "key", "record", "stale")

    def __init__(self, coord: Coordinator, target: Target, token: int, key: bytes,
                 record: Record, stale: list) -> None:
        self.coord, self.target, self.token, self.key = coord, target, token, key
        self.record, self.stale = record, stale

    def __call__(self, fut: asyncio.Future) -> None:
        if fut.cancelled():
            return
        exc, coord, t = fut.exception(), self.coord, self.target
        if exc is None:
            coord.observe_version(fut.result())
            return
        if not isinstance(exc, (PeerError, asyncio.TimeoutError)):
            return
        _note_stale(self.stale, exc)
        if t.hint_for is None and (
                not isinstance(exc, RemoteError) or exc.code in (STALE_EPOCH, NOT_CAUGHT_UP)):
            # A home replica missed the write (down, slow, or it refused a ring it knows is
            # stale): keep a hint for it here (never counted) so it converges even when the
            # write succeeds without it. Delivery re-homes the hint if that member no longer
            # replicates the key by then.
            coord._spawn(coord._keep_hint(t.node, self.token, self.key, self.record))


class _GetReply:
    """A remote get's done callback: the reply as a ``Record`` into ``out``; a replica still
    catching up with the epoch the read was planned in is asked again shortly (in a task,
    as ``_get_one`` does; rare)."""

    __slots__ = ("coord", "target", "epoch", "token", "key", "stale", "out")

    def __init__(self, coord: Coordinator, target: Target, epoch: int, token: int, key: bytes,
                 stale: list, out: asyncio.Future) -> None:
        self.coord, self.target, self.epoch, self.token = coord, target, epoch, token
        self.key, self.stale, self.out = key, stale, out

    def __call__(self, fut: asyncio.Future) -> None:
        out = self.out
        if out.done():
            return
        if fut.cancelled():
            out.cancel()
            return
        exc = fut.exception()
        if exc is None:
            try:
                out.set_result(Record.from_wire(fut.result()))
            except Exception as e:  # noqa: BLE001 - a malformed reply fails this call only
                out.set_exception(e)
            return
        _note_stale(self.stale, exc)
        if isinstance(exc, RemoteError) and exc.code == NOT_CAUGHT_UP:
            again = asyncio.ensure_future(self.coord._get_one(
                self.target, self.epoch, self.token, self.key, self.stale, first=1))
            again.add_done_callback(self._chain)
            return
        out.set_exception(exc)

    def _chain(self, again: asyncio.Future) -> None:
        out = self.out
        if out.done():
            return
        if again.cancelled():
            out.cancel()
        elif again.exception() is not None:
            out.set_exception(again.exception())
        else:
            out.set_result(again.result())
