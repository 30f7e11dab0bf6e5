"""One node: storage, peer server and client, membership state, coordinator, replica.

Lifecycle: ``start()`` opens storage, replays the local metadata log and starts serving
peers; ``ensure_member()`` bootstraps or joins in the background; ``stop()`` closes everything
after flushing pending writes. The runtime reaches the world only through the seams it is
built from: the Transport, the Disk (storage), the Clock and a seeded ``random.Random``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Callable, Optional

from dynamopy.config import NodeConfig
from dynamopy.core.buggify import BUGGIFY_OFF, Buggify
from dynamopy.core.membership import ClusterState
from dynamopy.core.versions import HybridClock
from dynamopy.node.anti_entropy import AntiEntropy
from dynamopy.node.catchup import CatchUp
from dynamopy.node.clock import Clock, Wakeup
from dynamopy.node.coordinator import Coordinator
from dynamopy.node.defaults_change import DefaultsChange
from dynamopy.node.detector import FailureDetector
from dynamopy.node.errors import NotReady
from dynamopy.node.hints import HintManager
from dynamopy.node.joins import JoinWatcher
from dynamopy.node.grace_check import GraceCheck
from dynamopy.node.group_keeper import GroupKeeper
from dynamopy.node.metalog import MetaLog
from dynamopy.node.metrics import Metrics
from dynamopy.node.offload import settle
from dynamopy.node.replica import Replica
from dynamopy.node.transfer import TransferManager
from dynamopy.node.version_clock import VersionClock
from dynamopy.peer import MessageTooLarge, PeerError, RemoteError, Transport, route
from dynamopy.storage import Disk, GroupCommitter, Storage

log = logging.getLogger(__name__)


class Node:
    """One node, built from its seams (``dynamopy serve`` passes the real ones, in-process
    tests and the simulator in-memory ones, see ``dynamopy.sim``):

    - ``transport``: calls peers and serves their calls (``dynamopy.peer.Transport``);
    - ``storage``: the disk its store is opened on when the node is built
      (``dynamopy.storage.Disk``);
    - ``clock``: the only source of time and sleeps (``dynamopy.node.clock.Clock``);
    - ``rng``: the only source of randomness (Paxos back-off, request ids);
    - ``buggify``: knobs that widen internal windows (``dynamopy.core.buggify``): ``OFF``
      unless the simulator passes its own.

    Components hear about every membership change through ``observers``, a list of
    ``on_state_change(old, new)`` callables registered here, in order, once.
    """

    def __init__(self, config: NodeConfig, *, transport: Transport, storage: Disk,
                 clock: Clock, rng: random.Random, buggify: Buggify = BUGGIFY_OFF):
        self.config = config
        self.id = config.node_id
        self.transport = transport
        self.clock = clock
        self.rng = rng
        self.buggify = buggify
        self.metrics = Metrics()
        transport.observe(on_call=self.metrics.on_peer_call,
                          on_reject=self.metrics.on_peer_rejected)
        self.state = ClusterState()
        self.hlc: Optional[HybridClock] = None  # created by self.versions once a member
        # Each component gets the narrow parts it uses; ``state`` is a getter, never a copy.
        state = self._current_state
        self.store: Storage = storage.open()
        self.committer = GroupCommitter(self.store, on_batch=self.metrics.on_batch,
                                        inline=storage.inline,
                                        sync_wait=getattr(storage, "sync_wait", None),
                                        buggify=buggify)
        self.versions = VersionClock(me=self.id, state=state, store=self.store,
                                     committer=self.committer, clock=clock,
                                     may_lead=lambda: self.detector.clock_confirmed)
        self.detector = FailureDetector(
            me=self.id, state=state, clock=clock, metrics=self.metrics,
            call_peer=self.call_peer, note_epoch=self.note_epoch,
            max_clock_offset_ms=config.max_clock_offset_ms,
            on_alive=lambda member: self.hints.wake())
        self.catchup = CatchUp(
            me=self.id, state=state, is_up=self.detector.is_up, clock=clock,
            known_chosen_below=self._known_chosen_below, poke=lambda: self.metalog.poke())
        self.hints = HintManager(
            me=self.id, state=state, store=self.store, committer=self.committer,
            clock=clock, metrics=self.metrics, detector=self.detector,
            call_peer=self.call_peer, note_epoch=self.note_epoch,
            stopping=lambda: self.stopping, observe_version=self.observe_version,
            tombstone_grace_s=lambda: self.state.settings.tombstone_grace_s,
            max_clock_offset_ms=config.max_clock_offset_ms, buggify=buggify,
            inline=storage.inline, clock_ok=lambda: self.detector.clock_ok_now)
        self.replica = Replica(
            me=self.id, state=state, store=self.store, committer=self.committer, clock=clock,
            metrics=self.metrics, catchup=self.catchup, poke_metalog=lambda: self.metalog.poke(),
            note_epoch=self.note_epoch, observe_version=self.observe_version, hints=self.hints,
            replacing=lambda: bool(self.metalog.replacing or self.metalog.disowned),
            buggify=buggify)
        self.hints.replica = self.replica
        self.coordinator = Coordinator(
            me=self.id, config=config, state=state, clock=clock, metrics=self.metrics,
            detector=self.detector, replica=self.replica, hints=self.hints,
            call_peer=self.call_peer, start_peer=self.start_peer, versions=self.versions,
            observe_version=self.observe_version, serving_state=self.serving_state,
            require_ready=self.require_ready, wait_for_epoch=self.wait_for_epoch)
        self.anti_entropy = AntiEntropy(
            node_id=self.id, interval_s=config.anti_entropy_interval_s,
            rate_keys_s=config.anti_entropy_rate, call_peer=self.call_peer, get_state=state,
            is_up=self.detector.is_up, apply_repairs=self.replica.apply_repairs,
            note_epoch=self.note_epoch, clock=clock, rng=rng, metrics=self.metrics,
            tombstone_grace_s=config.tombstone_grace_s, buggify=buggify,
            clock_ok=lambda: self.detector.clock_ok_now)
        self.transfers = TransferManager(
            me=self.id, state=state, store=self.store, committer=self.committer, clock=clock,
            detector=self.detector, call_peer=self.call_peer, note_epoch=self.note_epoch,
            observe_version=self.observe_version, propose=self.propose, hints=self.hints,
            spawn=self.spawn, max_bytes_s=config.transfer_max_bytes_s,
            stopping=lambda: self.stopping, handoff=self.anti_entropy, buggify=buggify,
            inline=storage.inline)
        self.metalog = MetaLog(
            me=self.id, address=config.advertise_peer, state=state,
            install_state=self.install_state, apply_entry=self.apply_entry, store=self.store,
            committer=self.committer, clock=clock, rng=rng, peers=transport, spawn=self.spawn,
            url=config.advertise_url, on_reply=self._metalog_reply)
        self.defaults_change = DefaultsChange(
            me=self.id, state=state, clock=clock, call_peer=self.call_peer,
            is_leader=lambda: self.metalog.is_leader, propose=self.propose)
        self.join_watcher = JoinWatcher(
            me=self.id, state=state, clock=clock, is_up=self.detector.is_up,
            call_peer=self.call_peer, propose=self.propose,
            join_timeout_s=config.join_timeout_s,
            transfer_epoch=lambda: self.transfers.progress.change_epoch,
            stopping=lambda: self.stopping)
        self.group_keeper = GroupKeeper(
            me=self.id, state=state, clock=clock, is_up=self.detector.is_up,
            down_for=self.detector.down_for, call_peer=self.call_peer, propose=self.propose,
            is_leader=lambda: self.metalog.is_leader, own_token=self.group_token,
            replace_after_s=config.metadata_group_replace_after_s,
            stopping=lambda: self.stopping)
        self.grace_check = GraceCheck(me=self.id, max_clock_offset_ms=config.max_clock_offset_ms,
                                      gauge=self.metrics.grace_rule_broken)
        # Where "react to a membership change" goes: one entry here, called in this order
        # after every applied entry and every installed snapshot.
        self.observers: list[Callable[[ClusterState, ClusterState], None]] = [
            self._track_membership,
            self.detector.on_state_change,
            self.metalog.on_state_change,
            self.transfers.on_state_change,
            self.anti_entropy.on_state_change,
            self.catchup.invalidate,
            self.grace_check.on_state_change,
            self.defaults_change.on_state_change,
        ]
        self.metalog.on_stepped = self.catchup.invalidate
        self._tasks: set[asyncio.Task] = set()
        self.stopping = False
        # Set when someone asks this node for its identity (``GET /node``): a seed that just
        # came up asks every seed, so a seed waiting to ask the seeds again asks now
        # (node/bootstrap.py ``_identities``).
        self.identity_asked = Wakeup()
        # The seeds that answered this node's last round of asking: their asks do not wake it.
        self.identity_answered: frozenset[str] = frozenset()
        # What this node waits for before it can be a member, when that is worth saying
        # (``GET /ready``'s detail; node/bootstrap.py sets it), else None.
        self.waiting_for: Optional[str] = None
        # The epoch at which this node's last join request committed (node/bootstrap.py and
        # the simulator set it): a log past it without this node means the join was dropped
        # (node/joins.py ``join_again_if_abandoned``).
        self.join_accepted_epoch: Optional[int] = None

    # ---- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        await self.committer.start()
        await self.versions.load()
        self.metalog.load()
        await self.metalog.ensure_token()  # before GET /node can report it
        # The hash tree is built before peers are served (an in-memory store: on the loop).
        await self.anti_entropy.attach(self.store, inline=self.committer.inline)
        # Cheap synchronous methods are answered inline (no task), a replica's put by a
        # callback on its group-commit future (no task); the rest each in a task (those
        # that read the store in bulk read it off the event loop: node/offload.py).
        await self.transport.serve(route({
            "hints": self.hints.rpc_receive,
            "paxos": self.metalog.rpc_receive,
            "xfer_pull": self.transfers.rpc_pull,
            "xfer_status": self.transfers.rpc_status,
            "ae_push": self.anti_entropy.rpc_push,
            "ae_keys": self.anti_entropy.rpc_keys,
            "ae_get": self.anti_entropy.rpc_get,
            "ae_versions": self.anti_entropy.purge.rpc_versions,
            "ae_purge": self.anti_entropy.purge.rpc_purge,
            "group_token": self.rpc_group_token,
        }), {
            "get": self.replica.rpc_get,
            "ping": self._on_ping,
            "defaults_drained": self.defaults_change.rpc_status,
            "join_started": self.join_watcher.rpc_started,
            "ae_tree": self.anti_entropy.rpc_tree,
        }, {"put": self.replica.rpc_put_nowait})
        self.spawn(self.metalog.run())
        self.spawn(self.anti_entropy.run())
        self.spawn(self.detector.run())
        self.spawn(self.hints.run())
        self.spawn(self.defaults_change.run())
        self.spawn(self.versions.run())
        self.spawn(self.join_watcher.run())
        self.spawn(self.group_keeper.run())
        self.transfers.resume()

    async def stop(self) -> None:
        self.stopping = True
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.coordinator.drain()
        if self.committer.running:
            await self.versions.close()
        await self.transport.close()
        await self.committer.stop()
        self.anti_entropy.detach()
        await settle()   # no read off the loop may run on a closed store (node/offload.py)
        self.store.close()

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- membership state -------------------------------------------------------------
    def _current_state(self) -> ClusterState:
        """The getter components are given: the state as of now, never a stale copy."""
        return self.state

    def _known_chosen_below(self) -> int:
        paxos = self.metalog.paxos
        return paxos.known_chosen_below if paxos is not None else 0

    def observe_version(self, version: int) -> None:
        """A version seen in a request or reply: the hybrid clock moves past it."""
        if self.hlc is not None:
            self.hlc.observe(version)

    def install_state(self, state: ClusterState) -> None:
        """Replace the membership state wholesale (a snapshot from disk or a peer)."""
        old, self.state = self.state, state
        self._after_state_change(old)

    def apply_entry(self, entry: Optional[dict]) -> None:
        """Apply one committed metadata-log entry (``None`` is a no-op filler slot)."""
        old = self.state
        self.state = old.apply(entry if entry is not None else {"op": "noop"})
        if entry is not None and entry.get("op") != "bootstrap":
            log.info("epoch %d: %s %s%s", self.state.epoch, entry.get("op"), entry.get("id", ""),
                     " (no-op)" if self.state.skipped > old.skipped else "")
        self._after_state_change(old)

    def _after_state_change(self, old: ClusterState) -> None:
        for observer in self.observers:
            observer(old, self.state)

    def _track_membership(self, old: ClusterState, new: ClusterState) -> None:
        me = new.member(self.id)
        if me is not None and (self.hlc is None or self.hlc.member_number != me.number):
            # First membership, or removed and joined again under a new number: the old
            # number may be reused by another member now (the clock carries its time over).
            self.hlc = self.versions.start(me.number, me.floor_ms)
        self.metrics.epoch.set(new.epoch)

    async def propose(self, entry: dict) -> int:
        """Commit one entry to the metadata log (validated first); return its epoch.

        Entries that take or free a member number carry this node's hybrid time ``at_ms``
        (see core.membership: when a removed member's number may be reused); a ``remove`` or
        ``replace`` carries ``"merge": true`` (it may merge into a removal in progress) and
        ``"abandons_join": true`` (it may abandon a join that waits for the member)."""
        if entry.get("op") in ("join", "finish_leave", "remove", "replace") and "at_ms" not in entry:
            entry = {**entry, "at_ms": self.hybrid_ms()}
        if entry.get("op") in ("remove", "replace") and "merge" not in entry:
            # A dead gainer of a removal in progress is removed with it (core.membership,
            # "Several dead members"); entries without the flag keep the older meaning.
            entry = {**entry, "merge": True}
        if entry.get("op") in ("remove", "replace") and "abandons_join" not in entry:
            # A dead gainer of a join in progress is removed and the join abandoned; the
            # live joiner joins again (node/joins.py, join_again_if_abandoned).
            entry = {**entry, "abandons_join": True}
        return await self.metalog.propose(entry)

    def hybrid_ms(self) -> int:
        """The larger of the wall clock and the newest version this node has seen."""
        wall = self.clock.wall_ms()
        return wall if self.hlc is None else max(wall, self.hlc.last_ms)

    def log_entries(self, since: int = 0) -> list[dict]:
        return self.metalog.entries(since)

    @property
    def is_ready(self) -> bool:
        me = self.state.member(self.id)
        return (me is not None and me.state in ("joining", "normal") and self.hlc is not None
                and not self.metalog.replacing and not self.metalog.disowned
                and self.catchup.caught_up and self.detector.clock_ok)

    def require_ready(self) -> ClusterState:
        if not self.state.bootstrapped or self.hlc is None:
            raise NotReady("this node has not joined a cluster yet; retry shortly")
        if self.metalog.replacing or self.metalog.disowned:
            raise NotReady("this node lost its data directory and is coming back as a "
                           "replacement (it joins again and streams its ranges back); use "
                           "another node")
        if self.state.member(self.id) is None:
            # It left or was removed: its ring is no longer kept up to date for it.
            raise NotReady("this node is not a member of the cluster (it left or was "
                           "removed); use another node")
        return self.state

    async def serving_state(self) -> ClusterState:
        """The state to plan a client request with, once this node has learned the metadata
        log up to what its peers report (``node/catchup.py``); waits for that at most the
        request timeout, then answers 503 ``not_ready``."""
        self.require_ready()
        if not self.catchup.caught_up and not await self.catchup.wait(
                self.config.request_timeout_s):
            raise NotReady(f"this node is catching up with the metadata log "
                           f"({self.catchup.lag()}); retry shortly")
        return self.state

    def note_epoch(self, epoch: int, peer_id: str) -> None:
        """Requests carry the sender's epoch. A newer one means this node lags: it is not
        caught up until it applied it, and the learner asks for the missing slots (the Paxos
        node also does on its own when it sees a gap)."""
        if not self.catchup.note(epoch, peer_id):
            return
        if epoch > self.state.epoch and self.metalog.paxos is not None:
            self.metalog.poke()

    def _on_ping(self, payload: Any, peer_id: str) -> dict:
        if isinstance(payload, dict) and isinstance(payload.get("epoch"), int):
            self.note_epoch(payload["epoch"], peer_id)
        return {"epoch": self.state.epoch, "id": self.id, "wall_ms": self.clock.wall_ms(),
                "clock_trusted": self.detector.clock_trusted}

    async def wait_for_epoch(self, epoch: int, timeout_s: float = 2.0) -> bool:
        """Wait until this node applied ``epoch``; False on timeout."""
        deadline = self.clock.monotonic() + timeout_s
        self.metalog.poke()
        while self.state.epoch < epoch:
            if self.clock.monotonic() > deadline:
                return False
            await self.clock.sleep(0.02)
        return True

    # ---- peers ------------------------------------------------------------------------
    async def call_peer(self, member_id: str, method: str, payload: Any,
                        timeout_s: Optional[float] = None) -> Any:
        member = self.state.member(member_id)
        if member is None:
            raise RemoteError("unknown_member", f"{member_id} is not a member")
        try:
            result = await self.transport.call(
                member.peer, method, payload, timeout_s or self.config.request_timeout_s)
        except BaseException as exc:
            self._report_peer(member_id, exc)
            raise
        self.detector.report_success(member_id)
        return result

    def start_peer(self, member_id: str, method: str, payload: Any,
                   timeout_s: Optional[float] = None,
                   then: Optional[Callable[[asyncio.Future], None]] = None) -> asyncio.Future:
        """``call_peer`` started now, as a future with the same result or error and the same
        failure-detector reports (``Transport.start``: no task on a ready connection).
        ``then(fut)`` runs once it settled, right after the report (one callback)."""
        member = self.state.member(member_id)
        if member is None:
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(RemoteError("unknown_member", f"{member_id} is not a member"))
            if then is not None:
                fut.add_done_callback(then)
            return fut
        fut = self.transport.start(member.peer, method, payload,
                                   timeout_s or self.config.request_timeout_s)
        fut.add_done_callback(_PeerReport(self, member_id, then))
        return fut

    def _metalog_reply(self, member_id: str, address: str) -> None:
        """A member answered a metadata-log message: alive, as if it answered a ping (the
        detector skips pings to peers that answer other calls). Only a member at the address
        the state gives it (a joiner's or an old address says nothing about a member)."""
        member = self.state.member(member_id)
        if member is not None and member.peer == address:
            self.detector.report_success(member_id)

    def _report_peer(self, member_id: str, exc: Optional[BaseException]) -> None:
        """What a call's outcome says about the peer's health."""
        if exc is None or isinstance(exc, RemoteError):
            self.detector.report_success(member_id)  # it answered (maybe refused): alive
        elif isinstance(exc, MessageTooLarge):
            pass  # never sent: says nothing about the peer's health
        elif isinstance(exc, (PeerError, asyncio.TimeoutError)):
            self.detector.report_failure(member_id)
        # Anything else (an unencodable payload, a cancelled call) is a local matter that
        # says nothing about the peer's health.

    async def group_token(self) -> dict:
        """What the metadata leader needs to add this node to the metadata group: its
        incarnation token (None if it votes from its own state) and whether it is a caught-up
        ``normal`` member; and whether it votes (a leaver in the group asks before it
        finishes: ``core.metadata_group.leaver_seat_problem``)."""
        me = self.state.member(self.id)
        return {"token": await self.metalog.group_token(),
                "caught_up": bool(me is not None and me.state == "normal"
                                  and self.catchup.caught_up and not self.metalog.replacing),
                "voting": bool(self.metalog.voter and not self.metalog.replacing
                               and not self.metalog.disowned)}

    async def rpc_group_token(self, payload: Any, peer_id: str) -> dict:
        return await self.group_token()

    # ---- views ------------------------------------------------------------------------
    def identity(self) -> dict:
        ident = {"id": self.id, "url": self.config.advertise_url,
                 "peer": self.config.advertise_peer}
        if self.config.zone:
            ident["zone"] = self.config.zone
        return ident

    def node_view(self) -> dict:
        me = self.state.member(self.id)
        paxos = self.metalog.paxos
        foreign = self.metalog.foreign
        if paxos is not None and not (paxos.cluster_known and foreign is not None
                                      and foreign["cluster"] != paxos.cluster):
            foreign = None  # (a joiner hears its cluster before it learned slot 0)
        return {
            **self.identity(),
            # This store's token (a bootstrap entry names its seeds'), and before the
            # bootstrap the seeds' tokens this node adopted (node/bootstrap.py).
            "store_token": self.metalog.token,
            **({"seed_tokens": self.metalog.seed_tokens}
               if self.metalog.seed_tokens and not self.state.bootstrapped else {}),
            "epoch": self.state.epoch,
            "state": me.state if me else ("left" if self.metalog.left else "none"),
            # this node's graceful leave finished ({"epoch"}): it does not join again unless
            # restarted with --rejoin-after-leave (node/bootstrap.py)
            "left": self.metalog.left,
            "ready": self.is_ready,
            "keys": self.store.key_count() if self.store else 0,
            "hints": self.hints.pending_by_target(),
            "transfer": self.transfers.progress.to_dict() if self.state.change else None,
            "anti_entropy": self.anti_entropy.view(),
            "metadata": {"acceptors": list(self.state.acceptors),
                         # whether this node votes in the metadata log (a node that came
                         # back with an empty disk never does) and is being replaced
                         "voting": bool(self.metalog.paxos and self.metalog.paxos.is_acceptor),
                         "replacing": bool(self.metalog.replacing),
                         "leader": self.metalog.leader,
                         "caught_up": self.catchup.caught_up,
                         # the cluster identity slot 0 named (None: legacy or not learned)
                         "cluster": paxos.cluster if paxos is not None else None,
                         # a cluster that lists this node but is not its own (a wiped seed
                         # that bootstrapped alone hears its real cluster: it yields)
                         "other_cluster": foreign,
                         "peer_epoch": self.catchup.target_epoch()},
        }


class _PeerReport:
    """``start_peer``'s done callback: the call's outcome to the failure detector."""

    __slots__ = ("node", "member_id", "then")

    def __init__(self, node: Node, member_id: str,
                 then: Optional[Callable[[asyncio.Future], None]]) -> None:
        self.node, self.member_id, self.then = node, member_id, then

    def __call__(self, fut: asyncio.Future) -> None:
        if not fut.cancelled():
            self.node._report_peer(self.member_id, fut.exception())
        if self.then is not None:
            self.then(fut)
