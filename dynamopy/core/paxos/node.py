"""``MetaLogNode``: one node's Multi-Paxos metadata log as a pure state machine.

No I/O, no clock, no global random: the caller feeds logical ticks (``tick``), messages
(``step``) and proposals (``propose``), then collects the effects with ``ready`` and
acknowledges them with ``advance`` (the etcd-raft style).

Handling a Ready (in this order; the order is the safety contract):

1. ``rd.snapshot`` (if not None): replace the app state with it and store it durably
   (it stands for every slot ``< rd.snapshot.slot``; drop the app's older log entries).
2. ``rd.persist`` (if not None): apply this ``AcceptorUpdate`` to the durable acceptor
   state and **sync** it. Nothing in steps 3-4 may happen before this sync returns:
   messages may carry promises/accepts that a crash must not forget, and a committed
   entry may have been counted as chosen using this node's own unsynced vote.
3. ``rd.committed``: apply each (slot, value) in order (value ``NOOP``/None fills a slot
   without changing anything; an entry that is invalid for the current state must be a
   deterministic no-op on every node). Record the applied entries durably (the app's log).
4. ``rd.messages``: send each (to, msg). Delivery is best effort (drop, reorder,
   duplicate are all tolerated).
5. ``node.advance(rd)``.

Steps 1-3 may be one atomic synced write batch (snapshot + acceptor update + log
entries); what matters is that the snapshot is durable no later than ``persist`` (which
may carry the acceptor's compaction below it) and that nothing is sent or applied in
memory before the sync. ``has_ready()`` says whether a Ready has anything in it;
``ready()`` on an idle node returns an empty Ready (still ``advance`` it).

Do not call ``tick``/``step``/``propose``/``compact`` between ``ready()`` and
``advance()`` (buffer inputs meanwhile); doing so raises ``RuntimeError``.

Each committed slot is delivered once per process lifetime, strictly in slot order.
Restart: rebuild with ``persisted`` = the durable ``AcceptorState`` (acceptors only),
``snapshot`` = the app's durable snapshot and ``log`` = the app's durable entries after
it (contiguous from ``snapshot.slot``, or from 0 without a snapshot). Delivery resumes at
``snapshot.slot + len(log)``; anything the app had not made durable is learned again.
Non-acceptors pass ``persisted=None``. Call ``set_learners`` after (re)building and
whenever the membership changes.

Never vote with an empty state. ``persisted`` is what makes a listed acceptor a *voter*:
a node listed in ``acceptors`` but built with ``persisted=None`` is a non-voting member of
the group (it learns, never answers Prepare/Accept, never campaigns). Pass
``AcceptorState()`` only where the caller knows this node never voted before (the first
start of a bootstrapping seed, recorded durably before any vote); a node whose durable
state was lost (a wiped data directory) must come back with ``persisted=None``. An
acceptor that forgot its promises and accepts can let two values be chosen for one slot.

Group changes (optional: ``reconfig``, see ``groups``): the metadata group is then part of
the log; each node needs a unique ``ballot_id``, and a node built without acceptor state
passes its ``incarnation`` token so that a change naming it can re-admit it. Its first
Ready after a re-admission carries ``persist.votes_from``: store it like the rest.

Proposals are fire-and-forget: ``propose`` may be dropped (no leader, queue full, lost
messages, leader change). The caller puts a unique request id in the value, watches the
committed stream for it and retries; a retry can commit the value twice, so apply must
ignore a request id it has already applied (deterministically, on every node). The
leader does skip a value equal to one already queued or in flight, but across leader
changes duplicates remain possible. Validate a change against the current state before
proposing, and again at apply time. Values must be msgpack-able and should survive a
round trip unchanged except tuples -> lists (peers hold the decoded copy).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Iterable

from .acceptor import Acceptor, AcceptorState
from .groups import GroupSchedule, Reconfig, majority
from .identity import Identity
from .learner import Learner
from .messages import (
    ZERO_BALLOT, Accept, Accepted, Ballot, CatchupReply, CatchupRequest, Commit, Entry,
    Heartbeat, HeartbeatAck, Message, Nack, Prepare, Promise, Propose, Snapshot,
)
from .proposer import Proposer, Role
from .ready import Ready

if TYPE_CHECKING:  # the rng is injected; core never touches the global random
    import random

MAX_FORWARD_HOPS = 2  # learner -> acceptor -> leader; never further, so nothing circulates
_NEVER = -(10**9)


class MetaLogNode:
    """One member's view of the metadata log: acceptor (if listed in ``acceptors`` and
    given its durable ``persisted`` state), proposer (voting acceptors only), learner
    (everyone).

    ``election_ticks``: a follower that hears no leader for a random
    ``[election_ticks, 2*election_ticks)`` ticks starts phase 1; an acceptor that heard a
    leader within ``election_ticks`` ignores other candidates (leader lease); a leader that
    heard from fewer than a majority of acceptors within ``election_ticks`` steps down.
    ``heartbeat_ticks``: leader heartbeat and phase-2/phase-1 retransmission period.
    ``catchup_ticks``: minimum ticks between two catch-up requests.
    ``leader_lease``: the lease rule above (fewer disruptive elections). Safety never
    depends on it; tests turn it off to let candidates duel freely.
    ``first_election_ticks``: this node's first election starts after that many ticks
    instead of the random timeout (still drawn: the generator advances as before); every
    later one after the randomized back-off. For one node of a group that nobody leads yet
    (the first seed of a bootstrap): the others keep the random timeout, so they do not
    duel with it, and take over if it is down. Timing only: safety never depends on it.
    """

    def __init__(
        self,
        node_id: str,
        acceptors: Iterable[str],
        rng: random.Random,
        *,
        persisted: AcceptorState | None = None,
        snapshot: Snapshot | None = None,
        log: Iterable[Entry] = (),
        election_ticks: int = 10,
        heartbeat_ticks: int = 2,
        catchup_ticks: int = 3,
        max_inflight: int = 32,
        max_queue: int = 1024,
        max_catchup_entries: int = 256,
        leader_lease: bool = True,
        reconfig: Reconfig | None = None,
        ballot_id: int | None = None,
        incarnation: str | None = None,
        identity: Identity | None = None,
        token: str | None = None,
        first_election_ticks: int | None = None,
    ) -> None:
        acceptors = tuple(acceptors)
        if not acceptors or len(set(acceptors)) != len(acceptors):
            raise ValueError("acceptors must be a non-empty tuple of distinct ids")
        if not 0 < heartbeat_ticks < election_ticks:
            raise ValueError("need 0 < heartbeat_ticks < election_ticks")
        self.id = node_id
        if persisted is not None and node_id not in acceptors and reconfig is None:
            raise ValueError("only acceptors have persisted acceptor state")
        if reconfig is not None and (ballot_id is None or reconfig.alpha < 1):
            raise ValueError("a reconfigurable log needs alpha >= 1 and a unique ballot_id per node")
        self._reconfig = reconfig
        self.incarnation = incarnation  # without state: the token a re-admission must name
        self.max_inflight = max_inflight
        self.election_ticks = election_ticks
        self.heartbeat_ticks = heartbeat_ticks
        self.catchup_ticks = catchup_ticks
        self.max_catchup_entries = max_catchup_entries
        self.leader_lease = leader_lease
        self._rng = rng
        if ballot_id is not None:
            self._index = ballot_id
        else:
            self._index = acceptors.index(node_id) if node_id in acceptors else -1
        # Without durable state it lost it (or never had it): it must not vote (until a
        # group change re-admits it: ``groups``).
        self._acceptor = Acceptor(persisted) if persisted is not None else None
        self._max_queue = max_queue
        self._proposer = Proposer(max_inflight, max_queue) if persisted is not None else None
        self._learner = Learner(snapshot, log)
        self._sched = GroupSchedule.initial(acceptors, reconfig.alpha if reconfig else 1)
        self._scanned = self._learner.base
        if reconfig is not None and snapshot is not None:
            self._sched = GroupSchedule.from_pairs(reconfig.schedule_of(snapshot.data), reconfig.alpha)
        self._learners: tuple[str, ...] = ()
        self._peers: tuple[str, ...] = ()
        self._scan_groups()
        self._refresh_peers()  # the group's other members, before any set_learners
        if self._acceptor is not None:
            # The acceptor forgot slots below compacted_below only because they were chosen.
            self._learner.note_hint(self._acceptor.compacted_below, None)
        self._max_round = self._acceptor.promised.round if self._acceptor else 0
        self._now = 0
        self.leader: str | None = None
        self.leader_ballot: Ballot = ZERO_BALLOT
        self._heard_leader_at = _NEVER
        self._election_at = self._random_timeout()
        if first_election_ticks is not None:
            self._election_at = first_election_ticks
        self._candidate_since = 0
        self._leader_since = 0
        self._hb_due = 0
        self._last_ack: dict[str, int] = {}
        self._catchup_at = 0
        self._poll_at = 0
        self._outbox: list[tuple[str, Message]] = []
        self._loopback: deque[Message] = deque()
        self._in_ready = False
        self._ready_applied_to = 0
        # Cluster identity (``identity``): off without ``identity`` (every message untagged).
        self._identity = identity
        self.token = token  # this store's token, named by slot 0 if it was a seed then
        self.cluster: str | None = None  # the id slot 0 names (None: not learned, or legacy)
        self.cluster_known = False
        self.disowned = False  # rule 5 dropped its acceptor state: it learns only
        self._learn_identity()

    # -- status -------------------------------------------------------------------------

    @property
    def acceptors(self) -> tuple[str, ...]:
        """The metadata group deciding the next slot to learn."""
        return self._sched.at(self._learner.chosen_below)

    @property
    def is_acceptor(self) -> bool:
        """Holds acceptor state of its own: it may vote (where its group counts it)."""
        return self._acceptor is not None

    @property
    def in_group(self) -> bool:
        return self.id in self.acceptors

    def group_of_slot(self, slot: int) -> tuple[str, ...]:
        """The group deciding ``slot`` as far as the learned changes say (exact below
        ``chosen_below + alpha``)."""
        return self._sched.at(slot)

    def schedule(self) -> list[list]:
        """The group changes in effect: [[from_slot, [ids]], ...] (for app snapshots)."""
        return self._sched.to_pairs()

    @property
    def role(self) -> Role:
        return self._proposer.role if self._proposer else Role.FOLLOWER

    @property
    def ballot(self) -> Ballot:
        """This node's current leadership ballot (ZERO_BALLOT if it never ran)."""
        return self._proposer.ballot if self._proposer else ZERO_BALLOT

    @property
    def chosen_below(self) -> int:
        """Every slot below this is known chosen here (the commit index)."""
        return self._learner.chosen_below

    @property
    def known_chosen_below(self) -> int:
        """The highest commit index anyone reported (``>= chosen_below``; above it, slots
        are chosen that this node has not learned yet: a gap it is catching up on)."""
        return self._learner.hint

    @property
    def applied_slot(self) -> int:
        """Slots below this were delivered to the app (after ``advance``)."""
        return self._learner.applied

    @property
    def snapshot_slot(self) -> int:
        return self._learner.base

    def acceptor_state(self) -> AcceptorState | None:
        """In-memory acceptor state (tests and debugging; persist from Ready instead)."""
        return self._acceptor.state() if self._acceptor else None

    # -- inputs -------------------------------------------------------------------------

    def tick(self) -> None:
        self._check_idle()
        self._now += 1
        p = self._proposer
        if p is not None:
            if p.role is Role.LEADER:
                if self._now >= self._hb_due:
                    self._heartbeat()
                    for to, entries in p.resend(self._group_at).items():
                        self._send(to, Accept(p.ballot, tuple(entries)))
                    self._prepare_unpromised()
                if self._lost_quorum():
                    self._step_down()
            else:
                if p.role is Role.CANDIDATE and (self._now - self._candidate_since) % self.heartbeat_ticks == 0:
                    self._prepare_unpromised()
                if self._now >= self._election_at and self.id in self.acceptors \
                        and self._index >= 0:
                    self._start_election()
        if self.leader not in (None, self.id) and self._now - self._heard_leader_at >= self.election_ticks:
            self.leader = None  # silent too long: stop forwarding there, let candidates in
        self._maybe_catch_up()
        self._run_loopback()

    def step(self, sender: str, msg: Message, cluster: str | None = None) -> None:
        """A message from ``sender`` (the transport vouches for the sender's id), sent in
        ``cluster`` (the sender's cluster id when it sent it; ``identity`` rules 3-4)."""
        self._check_idle()
        if sender == self.id:
            return  # our own messages never travel through the transport
        if not self._admits(sender, msg, cluster):
            return
        self._dispatch(sender, msg)
        self._run_loopback()

    def _admits(self, sender: str, msg: Message, cluster: str | None) -> bool:
        """``identity`` rules 3 and 4: whether to take in ``msg`` tagged ``cluster``."""
        if self._identity is None or type(msg) is CatchupRequest:
            return True
        if self.cluster_known:
            return cluster == self.cluster
        if cluster is None:
            return True  # seeds before the bootstrap
        if type(msg) is Heartbeat:
            self._learner.note_hint(msg.chosen_below, sender)  # catch up to it; no leader
            return False
        return type(msg) in (Commit, CatchupReply)  # learn a cluster's log, never vote in it

    def propose(self, value: Any) -> None:
        """Ask to append ``value`` (not None). Best effort: see the module docstring."""
        self._check_idle()
        if value is None:
            raise ValueError("None is reserved for NOOP")
        self._handle_propose(value, 0)
        self._run_loopback()

    def set_ballot_id(self, ballot_id: int) -> None:
        """This node's ballot id from now on (``-1``: none known, never campaign). The
        caller keeps ids unique per node (two proposers sharing a ballot could choose two
        values for one slot); a node may change its id, its rounds keep increasing."""
        self._index = ballot_id

    def set_learners(self, ids: Iterable[str]) -> None:
        """The current members (beyond the acceptors) that chosen values are pushed to."""
        self._learners = tuple(sorted(set(ids) - {self.id}))
        self._refresh_peers()

    def _refresh_peers(self) -> None:
        self._peers = tuple(sorted((set(self._window_acceptors()) | set(self._learners)) - {self.id}))

    # -- internals: groups -------------------------------------------------------------

    def _limit(self) -> int:
        """Slots below this have a known group; a leader opens nothing at or above it."""
        if self._reconfig is None:
            return 1 << 62
        return self._learner.chosen_below + self._reconfig.alpha

    def _group_at(self, slot: int) -> tuple[str, ...]:
        return self._sched.at(slot)

    def _window_acceptors(self) -> list[str]:
        """Every member of a group deciding a slot in the leader's window."""
        out: list[str] = []  # (without group changes the schedule holds one group)
        for g in self._sched.groups_between(self._learner.chosen_below, self._limit()):
            out += [a for a in g if a not in out]
        return out

    def _scan_groups(self) -> None:
        """Record the group changes among newly learned slots (in slot order), and
        re-admit this node if one of them takes it back into the group."""
        rc = self._reconfig
        lr = self._learner
        if rc is None:
            return
        changed = False
        while self._scanned < lr.chosen_below:
            slot = self._scanned
            self._scanned += 1
            latest = self._sched.changes[-1][1]
            group = rc.group_of(lr.log[slot], latest)  # learned: below chosen_below
            if group is None:
                continue
            token = rc.readmits(lr.log[slot]).get(self.id)
            if self._acceptor is None and self.id in group and self.incarnation is not None \
                    and token == self.incarnation:
                # Re-admitted: a new state that votes only where its old one never could.
                self._acceptor = Acceptor.readmitted(slot + rc.alpha)
                self._proposer = Proposer(self.max_inflight, self._max_queue)
            self._sched = self._sched.with_change(slot, group)
            changed = True
        if changed:
            self._sched = self._sched.pruned(lr.chosen_below)
            self._refresh_peers()
            p = self._proposer
            if p is not None and p.role is not Role.FOLLOWER and self.id not in self.acceptors:
                self._step_down()  # no longer in the group: let its members lead

    def _reset_schedule(self, snapshot: Snapshot) -> None:
        if self._reconfig is None:
            return
        self._sched = GroupSchedule.from_pairs(self._reconfig.schedule_of(snapshot.data),
                                               self._reconfig.alpha)
        self._scanned = snapshot.slot
        self._scan_groups()
        self._refresh_peers()

    def compact(self, upto_slot: int, snapshot: Snapshot) -> None:
        """The app's durable ``snapshot`` of its state after applying every slot
        ``< upto_slot`` (``upto_slot <= applied_slot``). The node serves it to lagging
        peers and drops log entries (and accepted values) below it."""
        self._check_idle()
        if self._learner.compact(upto_slot, snapshot) and self._acceptor is not None:
            self._acceptor.compact(upto_slot)

    # -- outputs ------------------------------------------------------------------------

    def has_ready(self) -> bool:
        return bool(
            self._outbox
            or self._learner.pending_snapshot is not None
            or self._learner.applied < self._learner.chosen_below
            or (self._acceptor is not None and self._acceptor.dirty)
        )

    def ready(self) -> Ready:
        if self._in_ready:
            raise RuntimeError("ready() called again before advance()")
        lr = self._learner
        snap = lr.pending_snapshot
        lr.pending_snapshot = None
        start = snap.slot if snap is not None else lr.applied
        committed = tuple((s, lr.log[s]) for s in range(start, lr.chosen_below))
        self._ready_applied_to = max(lr.applied, lr.chosen_below)  # what this Ready delivers
        persist = self._acceptor.take_update() if self._acceptor else None
        msgs = tuple(self._outbox)
        self._outbox = []
        self._in_ready = True
        return Ready(snap, persist, committed, msgs)

    def advance(self, rd: Ready) -> None:
        if not self._in_ready:
            raise RuntimeError("advance() without ready()")
        self._in_ready = False
        self._learner.applied = self._ready_applied_to

    # -- internals: plumbing -----------------------------------------------------------

    def _check_idle(self) -> None:
        if self._in_ready:
            raise RuntimeError("call advance() before feeding the node more input")

    def _send(self, to: str, msg: Message) -> None:
        if to == self.id:
            self._loopback.append(msg)  # our own acceptor/proposer: handled in this call
        else:
            self._outbox.append((to, msg))

    def _run_loopback(self) -> None:
        while self._loopback:
            self._dispatch(self.id, self._loopback.popleft())

    def _random_timeout(self) -> int:
        return self._rng.randint(self.election_ticks, 2 * self.election_ticks - 1)

    def _note_round(self, ballot: Ballot) -> None:
        if ballot.round > self._max_round:
            self._max_round = ballot.round

    def _dispatch(self, sender: str, msg: Message) -> None:
        handler = _HANDLERS.get(type(msg))
        if handler is not None:  # unknown message kinds are remote misbehaviour: ignore
            handler(self, sender, msg)

    # -- internals: leadership ---------------------------------------------------------

    def _start_election(self) -> None:
        p, a = self._proposer, self._acceptor
        assert p is not None and a is not None
        self._max_round = max(self._max_round, a.promised.round) + 1
        ballot = Ballot(self._max_round, self._index)
        p.start_candidacy(ballot, self._learner.chosen_below)
        self._candidate_since = self._now
        self._election_at = self._now + self._random_timeout()  # randomized back-off
        if self.leader == self.id:
            self.leader = None
        for acc in self._window_acceptors():
            self._send(acc, Prepare(ballot, p.from_slot))

    def _prepare_unpromised(self) -> None:
        """Phase 1 (again) to every member of a group in the window that has not promised
        the current ballot: retransmission, and the new members of a changed group."""
        p = self._proposer
        for acc in self._window_acceptors():
            if acc not in p.promises:
                self._send(acc, Prepare(p.ballot, p.from_slot))

    def _become_leader(self) -> None:
        p = self._proposer
        assert p is not None
        lr = self._learner  # (each promise's compacted_below was noted as it came in)
        self._last_ack = {a: self._now for a in p.promises}
        min_next = max([lr.chosen_below, *(s + 1 for s in lr.log)])
        p.become_leader(min_next)
        self.leader = self.id
        self.leader_ballot = p.ballot
        self._leader_since = self._now
        self._send_accepts(p.open_slots(self._group_at, self._limit(), lr.knows))
        self._heartbeat()

    def _step_down(self) -> None:
        """Stop leading or campaigning (every caller checks that it does one or the other)."""
        p = self._proposer
        assert p is not None  # only informs mypy
        p.step_down()
        self._election_at = self._now + self._random_timeout()
        if self.leader == self.id:
            self.leader = None

    def _lost_quorum(self) -> bool:
        if self._now - self._leader_since < self.election_ticks:
            return False
        group = self.acceptors
        if self.id not in group:
            return True
        fresh = 1 + sum(
            1 for a in group
            if a != self.id and self._now - self._last_ack.get(a, _NEVER) <= self.election_ticks
        )
        return fresh < majority(group)

    def _heartbeat(self) -> None:
        p = self._proposer
        assert p is not None
        self._hb_due = self._now + self.heartbeat_ticks
        hb = Heartbeat(p.ballot, self._learner.chosen_below)
        for to in self._peers:
            self._send(to, hb)

    def _send_accepts(self, entries: list[Entry]) -> None:
        """Each entry to the members of its slot's group (one Accept per member)."""
        if not entries:
            return
        by_dest: dict[str, list[Entry]] = {}
        for slot, value in entries:
            for a in self._group_at(slot):
                by_dest.setdefault(a, []).append((slot, value))
        for a, es in by_dest.items():
            self._send(a, Accept(self._proposer.ballot, tuple(es)))

    def _heard_from_leader(self, sender: str, ballot: Ballot) -> None:
        """A live leader ``sender`` under ``ballot`` (from a heartbeat or an accept)."""
        if ballot < self.leader_ballot and self.leader is not None:
            return  # an older leader than the one we follow
        p = self._proposer
        if p is not None and p.role is not Role.FOLLOWER:
            # (its ballot is above ours: our acceptor promised our ballot and nacks lower ones)
            self._step_down()  # a live leader exists: stop campaigning
        self.leader = sender
        self.leader_ballot = max(ballot, self.leader_ballot)
        self._heard_leader_at = self._now
        if p is not None:
            self._election_at = self._now + self._random_timeout()
            for value in p.take_queue():  # values that waited for a leader
                self._send(sender, Propose(value, 1))

    def _handle_propose(self, value: Any, hops: int) -> None:
        p = self._proposer
        if p is not None and p.role is Role.LEADER:
            if p.submit(value):
                self._send_accepts(p.open_slots(self._group_at, self._limit(), self._learner.knows))
        elif self.leader not in (None, self.id) and hops < MAX_FORWARD_HOPS:
            self._send(self.leader, Propose(value, hops + 1))
        elif p is not None:
            p.submit(value)  # queued until we lead or learn who leads
        elif hops == 0:
            self._send(self._rng.choice(self.acceptors), Propose(value, 1))

    # -- internals: learning -----------------------------------------------------------

    def _learn_identity(self) -> None:
        """``identity`` rules 1, 2 and 5, once slot 0 (or a snapshot) is known."""
        if self._identity is None or self.cluster_known:
            return
        lr = self._learner
        if 0 in lr.log and lr.chosen_below > 0:
            cluster, tokens = self._identity.of_value(lr.log[0])
        elif lr.snapshot is not None and lr.base > 0:
            cluster, tokens = self._identity.of_snapshot(lr.snapshot.data)
        else:
            return
        self.cluster, self.cluster_known = cluster, True
        self._outbox = [(to, m) for to, m in self._outbox if type(m) in _KEPT_ON_IDENTITY]
        a = self._acceptor
        if cluster is not None and a is not None and a.votes_from == 0 \
                and (self.token is None or tokens.get(self.id) != self.token):
            # Rule 5: this state did not exist when slot 0 was built: it must not vote here.
            self._acceptor = self._proposer = None
            self.disowned = True
            if self.leader == self.id:
                self.leader = None

    def _after_learning(self) -> None:
        """New chosen slots known: record group changes; a leader stops proposing them and
        refills its window."""
        self._learn_identity()
        self._scan_groups()
        p = self._proposer
        if p is not None and p.role is Role.LEADER:
            p.forget_chosen(self._learner.knows)
            self._send_accepts(p.open_slots(self._group_at, self._limit(), self._learner.knows))

    def _maybe_catch_up(self) -> None:
        lr = self._learner
        silent = self.leader is None
        if not (lr.has_gap or (silent and self._now >= self._poll_at)) or self._now < self._catchup_at:
            return
        if silent:
            self._poll_at = self._now + self.election_ticks
        self._request_catchup(lr.hint_from if lr.has_gap and self._rng.random() < 0.5 else None)

    def _request_catchup(self, target: str | None) -> None:
        if target is None or target == self.id:
            others = [x for x in self._peers if x != self.id]
            if self.leader not in (None, self.id):
                others.append(self.leader)  # twice as likely: it knows the most
            if not others:
                return
            target = self._rng.choice(others)
        self._catchup_at = self._now + self.catchup_ticks
        self._send(target, CatchupRequest(self._learner.chosen_below))

    # -- message handlers --------------------------------------------------------------

    def _on_prepare(self, sender: str, msg: Prepare) -> None:
        a = self._acceptor
        if a is None:
            return
        self._note_round(msg.ballot)
        if (
            self.leader_lease
            and sender != self.id
            and self.leader not in (None, sender)
        ):
            # Leader lease: a live leader exists (we lead, or heard ours within
            # election_ticks: tick forgets a silent one), don't let a candidate depose it.
            return
        reply = a.on_prepare(msg.ballot, msg.from_slot)
        p = self._proposer
        if isinstance(reply, Promise) and p.role is not Role.FOLLOWER and msg.ballot > p.ballot:
            self._step_down()
        self._send(sender, reply)

    def _on_promise(self, sender: str, msg: Promise) -> None:
        p = self._proposer
        if p is None or p.role is Role.FOLLOWER:
            return
        p.on_promise(sender, msg)
        self._learner.note_hint(msg.compacted_below, sender)  # chosen below: learn it
        if p.role is Role.CANDIDATE and p.covered(p.from_slot, self._group_at(p.from_slot)):
            self._become_leader()
        elif p.role is Role.LEADER:
            self._send_accepts(p.open_slots(self._group_at, self._limit(), self._learner.knows))

    def _on_nack(self, sender: str, msg: Nack) -> None:
        self._note_round(msg.promised)
        p = self._proposer
        if p is not None and p.role is not Role.FOLLOWER and msg.ballot == p.ballot and msg.promised > p.ballot:
            self._step_down()

    def _on_accept(self, sender: str, msg: Accept) -> None:
        a = self._acceptor
        if a is None:
            return
        self._note_round(msg.ballot)
        reply = a.on_accept(msg.ballot, msg.entries, self._learner.chosen_below)
        if isinstance(reply, Accepted) and sender != self.id:
            self._heard_from_leader(sender, msg.ballot)
        self._send(sender, reply)

    def _on_accepted(self, sender: str, msg: Accepted) -> None:
        p = self._proposer
        if p is None or p.role is not Role.LEADER or msg.ballot != p.ballot:
            return
        self._last_ack[sender] = self._now
        self._learner.note_hint(msg.chosen_below, sender)
        chosen = p.on_accepted(sender, msg, self._group_at)
        if chosen:
            for slot, value in chosen:
                self._learner.learn(slot, value)
            commit = Commit(tuple(chosen), self._learner.chosen_below)
            for to in self._peers:
                self._send(to, commit)
            self._after_learning()

    def _on_heartbeat(self, sender: str, msg: Heartbeat) -> None:
        self._note_round(msg.ballot)
        a = self._acceptor
        if a is not None:
            if msg.ballot < a.promised:
                self._send(sender, Nack(msg.ballot, a.promised))  # a newer ballot exists
                return
            self._send(sender, HeartbeatAck(msg.ballot))
        self._heard_from_leader(sender, msg.ballot)
        self._learner.note_hint(msg.chosen_below, sender)

    def _on_heartbeat_ack(self, sender: str, msg: HeartbeatAck) -> None:
        p = self._proposer
        if p is not None and p.role is Role.LEADER and msg.ballot == p.ballot:
            self._last_ack[sender] = self._now

    def _on_commit(self, sender: str, msg: Commit) -> None:
        learned = False
        for slot, value in msg.entries:
            learned |= self._learner.learn(slot, value)
        self._learner.note_hint(msg.chosen_below, sender)
        if learned:
            self._after_learning()

    def _on_propose(self, sender: str, msg: Propose) -> None:
        if msg.value is not None:
            self._handle_propose(msg.value, msg.hops)

    def _on_catchup_request(self, sender: str, msg: CatchupRequest) -> None:
        self._send(sender, self._learner.serve(msg.from_slot, self.max_catchup_entries))

    def _on_catchup_reply(self, sender: str, msg: CatchupReply) -> None:
        lr = self._learner
        progressed = lr.absorb(msg, sender)
        if lr.pending_snapshot is not None:
            self._reset_schedule(lr.pending_snapshot)
        if lr.pending_snapshot is not None and self._acceptor is not None:
            # Slots below the installed snapshot are chosen: the acceptor may forget them.
            # (The caller stores the snapshot before syncing this compaction: Ready order.)
            self._acceptor.compact(lr.base)
        if progressed:
            if lr.has_gap:
                self._request_catchup(sender)  # keep pulling from whoever just helped
            self._after_learning()


# What a node may still send under the identity it learns (rule 2): chosen values and
# requests; votes and leadership claims made without an identity are dropped.
_KEPT_ON_IDENTITY = (Commit, CatchupRequest, CatchupReply, Propose)

_HANDLERS = {
    Prepare: MetaLogNode._on_prepare,
    Promise: MetaLogNode._on_promise,
    Nack: MetaLogNode._on_nack,
    Accept: MetaLogNode._on_accept,
    Accepted: MetaLogNode._on_accepted,
    Heartbeat: MetaLogNode._on_heartbeat,
    HeartbeatAck: MetaLogNode._on_heartbeat_ack,
    Commit: MetaLogNode._on_commit,
    Propose: MetaLogNode._on_propose,
    CatchupRequest: MetaLogNode._on_catchup_request,
    CatchupReply: MetaLogNode._on_catchup_reply,
}
