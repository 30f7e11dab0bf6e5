"""The metadata log at runtime: drives the pure Multi-Paxos ``MetaLogNode`` with real time,
the peer transport and LevelDB, and applies committed entries to the membership state.

Handling of each Ready (the safety contract of ``dynamopy.core.paxos.node``): the snapshot,
the acceptor update and the applied log entries go to disk in ONE synced batch; then
``finish_ready`` (shared with the simulator and the tests) installs, applies, sends and
advances, in that order. Durable layout (metadata
keys of the store):

    paxos/acceptors          the group of slot 0 (the seeds, sorted), fixed at bootstrap;
                             the group of later slots follows from the log's ``set_group``
                             entries (core/metadata_group.py); written before any vote:
                             without it the node has no acceptor state
    paxos/no_vote            this store never held this node's acceptor state (it came
                             from a member, not from bootstrapping): never vote from it,
                             until a group change names ``paxos/incarnation``
    paxos/incarnation        the token a group change must name to let this store vote
                             (made up by this store, so no change chose it before a wipe)
    paxos/votes_from         a re-admitted state votes only on slots from this one on
    paxos/token              this store's token, made up the first time it is opened (before
                             GET /node reports it): a bootstrap entry names its seeds' tokens,
                             and only a store named there votes in that cluster
                             (core/paxos/identity.py, rule 5)
    paxos/seed_tokens        before the bootstrap: the seeds' store tokens this seed adopted
                             (GET /node reports them: node/bootstrap.py)
    paxos/alone              this node bootstrapped a one-seed cluster from an empty
                             directory: it yields to a cluster that lists it (bootstrap.py)
    replacing                this node started with an empty data directory under an id
                             the cluster knows: not a replica until it has joined again
    left                     this node left the cluster by its own graceful leave
                             (``{"epoch": E}``), written in the batch that commits the
                             ``finish_leave``: a restart does not join again
                             (node/bootstrap.py) unless the operator asks
    paxos/promised           the promised ballot            (acceptors only)
    paxos/acc/<slot>         (ballot, value) accepted       (acceptors only)
    paxos/compacted          slots below it are chosen and forgotten
    snap                     Snapshot(slot, ClusterState dict): the state after slots < slot
    log/<epoch>              the entry of slot epoch-1, for epochs after the snapshot

Entries carry a request id (``rid``) so a proposer can recognise its own entry in the
committed stream; a change that turns out invalid when applied (it lost a race with another
change) is a deterministic no-op on every node, and its proposer reports a conflict.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
from typing import TYPE_CHECKING, Any, Callable, Optional

import msgpack

from dynamopy.core import cluster_identity, metadata_group
from dynamopy.core.membership import ClusterState, InvalidEntry, left_by_own_leave, validate
from dynamopy.core.paxos import (AcceptorState, Ballot, MetaLogNode, Role, Snapshot, decode,
                                 encode, finish_ready)
from dynamopy.node.clock import Wakeup, wait_set
from dynamopy.node.errors import MembershipError
from dynamopy.peer import PeerCaller, PeerError

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.node.clock import Clock
    from dynamopy.storage import GroupCommitter, Storage

log = logging.getLogger(__name__)

TICK_S = 0.05
ELECTION_TICKS = 10         # 0.5-1 s without a leader starts an election
HEARTBEAT_TICKS = 2
# One seed bootstrapping a cluster (``first_candidate``) campaigns at its first tick: nobody
# leads a group that has never committed anything, so there is no leader to wait for; the
# other seeds keep the random timeout and take over if it does not win.
FIRST_SEED_ELECTION_TICKS = 1
COMPACT_EVERY = 64          # entries between snapshots
PROPOSE_RETRY_S = 1.0
PROPOSE_TIMEOUT_S = 6.0

K_ACCEPTORS, K_PROMISED, K_ACC, K_COMPACTED, K_SNAP, K_LOG = (
    "paxos/acceptors", "paxos/promised", "paxos/acc/", "paxos/compacted", "snap", "log/")
K_NO_VOTE, K_REPLACING = "paxos/no_vote", "replacing"
K_INCARNATION, K_VOTES_FROM = "paxos/incarnation", "paxos/votes_from"
K_TOKEN, K_SEED_TOKENS, K_ALONE = "paxos/token", "paxos/seed_tokens", "paxos/alone"
K_LEFT = "left"
SEED_BALLOT_BASE = 1024  # ballot ids: a seed's index before bootstrap, then this + number


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


def first_candidate(seeds: tuple[str, ...], seed_tokens: dict[str, str]) -> str:
    """The seed that campaigns at its first tick when the seeds bootstrap: the lowest hash of
    id and store token. Every seed adopted the same ids and tokens, so all agree on it; the
    tokens are random, so it is another seed from one cluster to the next, as the seed whose
    random election timeout ran out first used to be (no seed is always the first leader)."""
    return min(seeds, key=lambda i: hashlib.sha256(
        f"{i}/{seed_tokens.get(i, '')}".encode()).digest())


def strip_rid(value: Any) -> Any:
    if isinstance(value, dict) and "rid" in value:
        return {k: v for k, v in value.items() if k != "rid"}
    return value


class MetaLog:
    """The metadata log of one node, built from what it uses: its id and peer address, the
    current membership state (a getter) and the two ways to change it (``install_state`` a
    snapshot, ``apply_entry`` one committed entry: the node owns the state and tells its
    observers), the store and group committer, the clock, the node's rng, a peer caller
    (``PeerCaller.call`` by address), a spawn function for its sends, and ``on_reply(member,
    address)``, told when a peer answered one of them (proof of life for the failure
    detector)."""

    def __init__(self, *, me: str, address: str, state: Callable[[], ClusterState],
                 install_state: Callable[[ClusterState], None],
                 apply_entry: Callable[[Optional[dict]], None], store: "Storage",
                 committer: "GroupCommitter", clock: "Clock", rng: random.Random,
                 peers: PeerCaller, spawn: Callable[[Any], Any], url: Optional[str] = None,
                 on_reply: Callable[[str, str], None] = lambda member, address: None):
        self.me, self.address, self.state = me, address, state
        self.url = url  # this node's HTTP URL: sent with tagged messages (bootstrap.py)
        self.install_state, self.apply_entry = install_state, apply_entry
        self.store, self.committer, self.clock, self.rng = store, committer, clock, rng
        self.peers, self.spawn, self.on_reply = peers, spawn, on_reply
        self.paxos: Optional[MetaLogNode] = None
        # Set whenever this node's Paxos role changes (follower, candidate, leader): whoever
        # waits to act as leader (node/bootstrap.py) waits on it instead of polling.
        self.role_changed = Wakeup()
        self._role: Optional[Role] = None
        # Called after the Paxos node is built or stepped: the commit index its peers
        # announced (``paxos.known_chosen_below``) may have risen (``CatchUp.invalidate``).
        self.on_stepped: Callable[[], None] = lambda: None
        self.acceptors: tuple[str, ...] = ()
        self.addresses: dict[str, str] = {}       # member id -> peer address
        self._inbox: list[tuple[str, Any]] = []
        self._wake = Wakeup()
        self._waiting: dict[str, asyncio.Future] = {}
        self._entries: list[tuple[int, dict]] = []   # (epoch, entry) since the snapshot
        self._snapshot_epoch = 0
        self._since_compact = 0
        self.voter = False        # holds durable acceptor state of its own: may vote
        self.incarnation: Optional[str] = None  # without it: the token that re-admits it
        # > 0: came back with an empty disk, known to the cluster at this epoch (see
        # node/replacement.py); 0 otherwise.
        self.replacing = 0
        self.replacement_blocked: Optional[str] = None  # why the replacement waits, if it does
        self.token: Optional[str] = None  # this store's token (ensure_token)
        self.seed_tokens: dict[str, str] = {}  # adopted before the bootstrap
        self.alone = False  # bootstrapped a one-seed cluster from an empty directory
        # The latest message from another cluster ({id, url, cluster}): a cluster that
        # lists this node (node/bootstrap.py listens for it).
        self.foreign: Optional[dict] = None
        self._forget: Optional[asyncio.Future] = None
        # {"epoch": E}: this node left by its own graceful leave, finished at epoch E (the
        # durable ``left`` marker); None otherwise.
        self.left: Optional[dict] = None

    # ---- start-up ---------------------------------------------------------------------
    def load(self) -> None:
        """Rebuild the membership state and the Paxos node from disk (if bootstrapped)."""
        store = self.store
        raw = store.meta_get(K_TOKEN)
        self.token = _unpack(raw) if raw is not None else None
        raw = store.meta_get(K_SEED_TOKENS)
        self.seed_tokens = dict(_unpack(raw)) if raw is not None else {}
        self.alone = store.meta_get(K_ALONE) is not None
        raw = store.meta_get(K_ACCEPTORS)
        if raw is None:
            return
        self.acceptors = tuple(sorted(_unpack(raw)))
        snapshot = None
        raw = store.meta_get(K_SNAP)
        if raw is not None:
            slot, data = _unpack(raw)
            snapshot = Snapshot(slot, data)
            self.install_state(ClusterState.from_dict(data))
            self._snapshot_epoch = slot
        entries = []
        for name, raw in store.meta_scan(K_LOG):
            epoch = int(name[len(K_LOG):])
            if epoch > self._snapshot_epoch:
                entries.append((epoch - 1, _unpack(raw)))
        entries.sort()
        for slot, value in entries:
            self._apply(slot, value)
        raw = store.meta_get(K_REPLACING)
        self.replacing = _unpack(raw) if raw is not None else 0
        raw = store.meta_get(K_LEFT)
        self.left = _unpack(raw) if raw is not None else None
        # A store that held acceptor state from its first start (a bootstrapping seed) or
        # since a group change re-admitted it votes; any other does not.
        self.voter = store.meta_get(K_NO_VOTE) is None
        raw = store.meta_get(K_INCARNATION)
        self.incarnation = _unpack(raw) if raw is not None else None
        self._make_node(self._load_acceptor() if self.voter else None, snapshot, entries)

    def _load_acceptor(self) -> AcceptorState:
        store = self.store
        raw = store.meta_get(K_PROMISED)
        promised = Ballot(*_unpack(raw)) if raw else AcceptorState().promised
        raw = store.meta_get(K_COMPACTED)
        compacted = _unpack(raw) if raw else 0
        accepted = {}
        for name, raw in store.meta_scan(K_ACC):
            r, m, value = _unpack(raw)
            accepted[int(name[len(K_ACC):])] = (Ballot(r, m), value)
        raw = store.meta_get(K_VOTES_FROM)
        votes_from = _unpack(raw) if raw else 0
        return AcceptorState(promised, accepted, compacted, votes_from)

    def _make_node(self, persisted, snapshot, entries, first_election_ticks=None) -> None:
        # The Paxos node's own generator, seeded from the node's: its draws (election
        # back-off) do not shift with how many request ids this node drew.
        rng = random.Random(self.rng.getrandbits(64))
        self.paxos = MetaLogNode(self.me, self.acceptors, rng,
                                 persisted=persisted, snapshot=snapshot, log=entries,
                                 election_ticks=ELECTION_TICKS, heartbeat_ticks=HEARTBEAT_TICKS,
                                 reconfig=metadata_group.reconfig(), ballot_id=self._ballot_id(),
                                 incarnation=self.incarnation,
                                 identity=cluster_identity.identity(), token=self.token,
                                 first_election_ticks=first_election_ticks)
        self.on_stepped()
        self._refresh_learners()

    def _ballot_id(self) -> int:
        """Unique per node and per incarnation: before the bootstrap a seed's index in the
        (sorted) seeds; after it, ``SEED_BALLOT_BASE`` + this member's number (a node that
        came back with an empty disk joins again under a new number); -1 (never
        campaign) while this node is not a member."""
        state = self.state()
        if not state.bootstrapped:
            return self.acceptors.index(self.me) if self.me in self.acceptors else -1
        m = state.member(self.me)
        return SEED_BALLOT_BASE + m.number if m is not None else -1

    async def ensure_token(self) -> str:
        """This store's token, made up and made durable the first time (before GET /node
        reports it: a restart must report the same one)."""
        if self.token is None:
            # From the generator's state, without a draw: the simulator's schedules (seeded
            # from the same generator) stay what they were before store tokens.
            token = hashlib.sha256(f"{self.me}/{self.rng.getstate()!r}".encode()).hexdigest()[:16]
            await self.committer.submit(meta_put={K_TOKEN: _pack(token)})
            self.token = token
        return self.token

    async def adopt_acceptors(self, acceptors: list[str], addresses: dict[str, str], *,
                              bootstrapping: bool = False, replacing: int = 0,
                              seed_tokens: Optional[dict[str, str]] = None,
                              alone: bool = False) -> None:
        """First start: the metadata group is known (from --seeds or the member we join).

        Only ``bootstrapping`` (a seed of a cluster that no seed reports bootstrapped yet)
        makes this node a voter with an empty acceptor state: anywhere else an empty state
        may be a lost one, and voting from it could choose two values for one slot.
        ``replacing``: the epoch at which the cluster listed this id: this node lost its
        data (recorded in the same synced batch, before anything else can happen)."""
        self.addresses.update(addresses)
        if self.paxos is not None:
            return
        self.acceptors = tuple(sorted(acceptors))
        meta = {K_ACCEPTORS: _pack(list(self.acceptors))}
        if not bootstrapping:
            meta[K_NO_VOTE] = _pack(True)
            self.incarnation = f"{self.rng.getrandbits(64):016x}"
            meta[K_INCARNATION] = _pack(self.incarnation)
        if replacing:
            meta[K_REPLACING] = _pack(int(replacing))
        if seed_tokens:
            meta[K_SEED_TOKENS] = _pack(dict(seed_tokens))
        if alone:
            meta[K_ALONE] = _pack(True)
        await self.committer.submit(meta_put=meta)
        self.seed_tokens, self.alone = dict(seed_tokens or {}), alone
        self.voter = bootstrapping and self.me in self.acceptors
        if bootstrapping and not self.voter:
            self.incarnation = None
        self.replacing = replacing
        first = self.voter and first_candidate(self.acceptors, self.seed_tokens) == self.me
        self._make_node(AcceptorState() if self.voter else None, None, [],
                        FIRST_SEED_ELECTION_TICKS if first else None)

    async def forget(self) -> None:
        """Drop this node's metadata log and acceptor state (durably; its data and store
        token stay): the one-node cluster it bootstrapped alone yields to the cluster that
        lists it (node/bootstrap.py). Done by the pump between two Readies."""
        fut = asyncio.get_running_loop().create_future()
        self._forget = fut
        self._wake.set()
        await fut

    async def _forget_now(self) -> None:
        store = self.store
        names = [K_ACCEPTORS, K_PROMISED, K_COMPACTED, K_SNAP, K_NO_VOTE, K_INCARNATION,
                 K_VOTES_FROM, K_REPLACING, K_SEED_TOKENS, K_ALONE]
        names += [n for n, _ in store.meta_scan(K_ACC)] + [n for n, _ in store.meta_scan(K_LOG)]
        await self.committer.submit(meta_delete=names)
        self.paxos = None
        self.acceptors, self._inbox, self._entries = (), [], []
        self._snapshot_epoch = self._since_compact = 0
        self.voter, self.incarnation, self.replacing = False, None, 0
        self.seed_tokens, self.alone, self.foreign = {}, False, None
        self.install_state(ClusterState())
        fut, self._forget = self._forget, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def replaced(self) -> None:
        """The old incarnation is out of the cluster: this node may join as a new member."""
        await self.committer.submit(meta_delete=[K_REPLACING])
        self.replacing = 0

    async def mark_left(self, epoch: int) -> None:
        """Record (synced) that this node left by its own graceful leave (a restart that
        learns it from the log rather than from the batch that committed it)."""
        self.left = {"epoch": int(epoch)}
        await self.committer.submit(meta_put={K_LEFT: _pack(self.left)})

    async def forget_left(self) -> None:
        """The operator asked this node to join again: drop the ``left`` marker."""
        await self.committer.submit(meta_delete=[K_LEFT])
        self.left = None

    def _left_in(self, rd) -> Optional[dict]:
        """The ``left`` marker to write with this Ready, if what it installs and applies
        ends this node's own graceful leave (``core.membership.left_by_own_leave``). Worked
        out on a copy of the state, so the marker goes to disk in the same synced batch as
        the ``finish_leave`` (a crash never keeps one without the other)."""
        before = self.state()
        if before.change != ("leave", self.me) or (rd.snapshot is None and not rd.committed):
            return None
        after = ClusterState.from_dict(rd.snapshot.data) if rd.snapshot is not None else before
        for slot, value in rd.committed:
            if slot + 1 > after.epoch:
                after = after.apply(value if isinstance(value, dict) else {"op": "noop"})
        return {"epoch": after.epoch} if left_by_own_leave(before, after, self.me) else None

    async def group_token(self) -> Optional[str]:
        """The incarnation token a group change must name to let this node vote (None if
        it votes from its own state already). Made durable before it is handed out."""
        if self.paxos is None or self.voter or self.replacing:
            return None
        if self.incarnation is None:  # a store from before tokens
            token = f"{self.rng.getrandbits(64):016x}"
            await self.committer.submit(meta_put={K_INCARNATION: _pack(token)})
            self.incarnation = token
        self.paxos.incarnation = self.incarnation
        return self.incarnation

    @property
    def disowned(self) -> bool:
        """It learned a cluster whose slot 0 does not name this store (a wiped seed that
        bootstrapped as a voter, then heard the cluster it was a seed of): no vote
        (core/paxos/identity.py, rule 5), no data served; node/bootstrap.py brings it
        back as a replacement."""
        return self.paxos is not None and self.paxos.disowned

    @property
    def started(self) -> bool:
        return self.paxos is not None

    @property
    def is_leader(self) -> bool:
        return self.paxos is not None and self.paxos.role is Role.LEADER

    @property
    def leader(self) -> Optional[str]:
        return self.paxos.leader if self.paxos is not None else None

    def poke(self) -> None:
        """Wake the pump (e.g. a peer showed a newer epoch: tick soon, catch up)."""
        self._wake.set()

    # ---- the pump ---------------------------------------------------------------------
    async def run(self) -> None:
        """The pump. An error here leaves the Paxos node between ready() and advance(),
        which must not be retried: the process exits (every acked write is on disk) and
        its supervisor restarts it from the durable state."""
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except BaseException:
            log.critical("metadata log pump failed; exiting", exc_info=True)
            logging.shutdown()
            os._exit(70)

    async def _run(self) -> None:
        clock = self.clock
        next_tick = clock.monotonic()
        while True:
            timeout = max(0.0, next_tick - clock.monotonic())
            await wait_set(self._wake, timeout)
            self._wake.clear()
            if self._forget is not None:
                await self._forget_now()
            if self.paxos is None:
                next_tick = clock.monotonic() + TICK_S
                continue
            inbox, self._inbox = self._inbox, []
            for sender, msg, cluster in inbox:
                if sender == "__propose__":
                    self.paxos.propose(msg)
                else:
                    self.paxos.step(sender, msg, cluster)
            if clock.monotonic() >= next_tick:
                self.paxos.tick()
                next_tick = clock.monotonic() + TICK_S
            self.on_stepped()
            if self.paxos.role is not self._role:
                self._role = self.paxos.role
                self.role_changed.set()
            while self.paxos.has_ready():
                await self._handle_ready(self.paxos.ready())

    async def _handle_ready(self, rd) -> None:
        meta_put: dict[str, bytes] = {}
        meta_delete: list[str] = []
        if rd.snapshot is not None:
            meta_put[K_SNAP] = _pack([rd.snapshot.slot, rd.snapshot.data])
            meta_delete += [name for name, _ in self.store.meta_scan(K_LOG)
                            if int(name[len(K_LOG):]) <= rd.snapshot.slot]
        if rd.persist is not None:
            u = rd.persist
            if u.promised is not None:
                meta_put[K_PROMISED] = _pack([u.promised.round, u.promised.member])
            for slot, ballot, value in u.accepted:
                meta_put[f"{K_ACC}{slot:012d}"] = _pack([ballot.round, ballot.member, value])
            if u.votes_from is not None:  # re-admitted: from now on this store votes
                meta_put[K_VOTES_FROM] = _pack(u.votes_from)
                meta_delete += [K_NO_VOTE, K_INCARNATION]
            if u.compacted_below is not None:
                meta_put[K_COMPACTED] = _pack(u.compacted_below)
                meta_delete += [name for name, _ in self.store.meta_scan(K_ACC)
                                if int(name[len(K_ACC):]) < u.compacted_below]
        for slot, value in rd.committed:
            meta_put[f"{K_LOG}{slot + 1:012d}"] = _pack(value)
        left = self._left_in(rd)
        if left is not None:
            meta_put[K_LEFT] = _pack(left)
        if meta_put or meta_delete:
            meta_delete = [n for n in meta_delete if n not in meta_put]
            await self.committer.submit(meta_put=meta_put, meta_delete=meta_delete)
        if left is not None:
            self.left = left
            log.warning("%s left the cluster (its graceful leave finished at epoch %d): it "
                        "will not join again when restarted on this data directory unless "
                        "started with --rejoin-after-leave", self.me, left["epoch"])
        if rd.persist is not None and rd.persist.votes_from is not None:
            self.voter = True
            log.info("%s re-admitted to the metadata group: votes from slot %d on", self.me,
                     rd.persist.votes_from)
        finish_ready(self.paxos, rd, install=self._install, apply=self._apply, send=self._send)
        if self.left is not None and left is None and self.state().member(self.me) is not None:
            # A member again (an operator added it back by hand): the marker no longer holds.
            await self.forget_left()
        self._refresh_learners()
        self.paxos.set_ballot_id(self._ballot_id())
        if self._since_compact >= COMPACT_EVERY and self.paxos.applied_slot == self.state().epoch:
            await self._compact()

    def _install(self, snapshot: Snapshot) -> None:
        self.install_state(ClusterState.from_dict(snapshot.data))
        self._entries = []
        self._snapshot_epoch = snapshot.slot

    def _apply(self, slot: int, value: Any) -> None:
        if slot + 1 <= self.state().epoch:
            return  # already in the state (a snapshot covered it)
        entry = value if isinstance(value, dict) else None
        rid = entry.get("rid") if entry is not None else None
        duplicate = rid is not None and rid in self.state().recent_rids
        skipped_before = self.state().skipped
        self.apply_entry(entry)
        applied = entry is not None and not duplicate and self.state().skipped == skipped_before
        if applied:
            # The log view lists the changes; a slot that changed nothing (a filler, a
            # re-commit, a change that lost a race and was refused) keeps its epoch only.
            self._entries.append((slot + 1, strip_rid(entry)))
        self._since_compact += 1
        fut = self._waiting.pop(rid, None) if rid else None
        if fut is not None and not fut.done():
            fut.set_result((slot + 1, applied))

    async def _compact(self) -> None:
        state = self.state()
        epoch = state.epoch
        snap = Snapshot(epoch, state.to_dict())
        stale = [name for name, _ in self.store.meta_scan(K_LOG) if int(name[len(K_LOG):]) <= epoch]
        await self.committer.submit(meta_put={K_SNAP: _pack([snap.slot, snap.data])},
                                    meta_delete=stale)
        self.paxos.compact(epoch, snap)
        self._snapshot_epoch = epoch
        self._entries = [(e, x) for e, x in self._entries if e > epoch - 256]  # keep a window
        self._since_compact = 0

    def on_state_change(self, old: ClusterState, new: ClusterState) -> None:
        """Every member is a learner, and its address is known."""
        self._refresh_learners()

    def _refresh_learners(self) -> None:
        state = self.state()
        for m in state.members.values():
            self.addresses[m.id] = m.peer
        if self.paxos is not None:
            # Every member learns; before this node knows the members (a joiner), every
            # node whose address it was given.
            self.paxos.set_learners(list(state.members) or list(self.addresses))

    # ---- transport ----------------------------------------------------------------------
    def _send(self, messages) -> None:
        by_dest: dict[str, list] = {}
        for to, msg in messages:
            by_dest.setdefault(to, []).append(encode(msg))
        me = [self.me, self.address]
        # The sender's cluster (core/paxos/identity.py, rule 2) and its URL, so that a node
        # of another cluster that this one lists can find it (node/bootstrap.py). An
        # untagged (legacy or not yet bootstrapped) node sends the older two-part form.
        cluster = self.paxos.cluster if self.paxos is not None else None
        tail = [cluster, self.url] if cluster is not None else []
        for to, msgs in by_dest.items():
            addr = self.addresses.get(to)
            if addr is None:
                continue  # unknown address: Paxos tolerates loss; it will retry
            self.spawn(self._deliver(to, addr, [me, msgs, *tail]))

    async def _deliver(self, to: str, addr: str, payload: list) -> None:
        try:
            await self.peers.call(addr, "paxos", payload, 1.0)
        except (PeerError, asyncio.TimeoutError):
            return  # message loss is part of the protocol
        self.on_reply(to, addr)

    async def rpc_receive(self, payload: list, peer_id: str) -> Any:
        (sender, addr), msgs = payload[0], payload[1]
        cluster = payload[2] if len(payload) > 2 and isinstance(payload[2], str) else None
        if sender != peer_id:
            return None  # the transport authenticated peer_id; never trust a claimed id
        self.addresses.setdefault(sender, addr)
        paxos = self.paxos
        if cluster is not None and (paxos is None or not paxos.cluster_known
                                    or paxos.cluster != cluster):
            url = payload[3] if len(payload) > 3 and isinstance(payload[3], str) else None
            if self.foreign is None or self.foreign.get("cluster") != cluster:
                log.info("%s: paxos traffic from %s of cluster %s (this node's: %s)", self.me,
                         sender, cluster, paxos.cluster if paxos is not None else None)
            self.foreign = {"id": sender, "url": url, "cluster": cluster}
        for w in msgs:
            try:
                self._inbox.append((sender, decode(w), cluster))
            except ValueError:
                log.warning("dropping malformed paxos message from %s", sender)
        self._wake.set()
        return None

    # ---- proposals ------------------------------------------------------------------------
    async def propose(self, entry: dict, timeout_s: float = PROPOSE_TIMEOUT_S,
                      rid: Optional[str] = None) -> int:
        """Append ``entry``; return its epoch. Raises MembershipError: the contract's
        404/409 if it does not apply, 503 ``no_majority`` if it cannot commit in time."""
        try:
            validate(self.state(), entry)
        except InvalidEntry as e:
            raise MembershipError(e.status, e.code, e.detail) from None
        if self.paxos is None:
            raise MembershipError(503, "not_ready", "this node has not joined a cluster yet")
        rid = rid or f"{self.rng.getrandbits(64):016x}"
        value = {**entry, "rid": rid}
        fut = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        clock = self.clock
        deadline = clock.monotonic() + timeout_s
        try:
            while clock.monotonic() < deadline:
                self._inbox.append(("__propose__", value, None))
                self._wake.set()
                try:
                    epoch, applied = await asyncio.wait_for(
                        asyncio.shield(fut), min(PROPOSE_RETRY_S, deadline - clock.monotonic()))
                except asyncio.TimeoutError:
                    continue
                if not applied:
                    raise MembershipError(409, "conflict",
                                          f"{entry.get('op')} {entry.get('id', '')} lost a race "
                                          "with a concurrent change; retry")
                return epoch
        finally:
            self._waiting.pop(rid, None)
        raise MembershipError(503, "no_majority",
                              f"the metadata group {list(self.state().acceptors)} did not "
                              "commit the "
                              f"change within {timeout_s:.0f}s (no majority reachable?); it "
                              "may still commit later: check GET /cluster/log before retrying")

    def entries(self, since: int) -> list[dict]:
        return [{"epoch": e, **x} for e, x in self._entries if e > since]
