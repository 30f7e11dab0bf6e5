"""A seeded simulation of the metadata log: real ``MetaLogNode`` logic on many nodes in
one process, under a virtual clock and an in-memory network.

One seed drives everything (network fates, fault schedule, node randomness, client
timing). A run has two phases:

1. Safety phase (``steps`` ticks): message loss, duplication, delay and reordering;
   partitions that come and go; node crashes (some striking between "persist synced"
   and "messages sent"); one long outage of a node while the others compact (so it needs
   a snapshot); a learner that joins late; acceptors whose disk is wiped (``wipes``):
   each dies right after syncing a vote, loses its whole durable store and comes back
   empty. The real rule is that it comes back without voting (``MetaLogNode`` with
   ``persisted=None``); ``unsafe_wipe`` makes it vote with an empty acceptor state
   instead, the bug the invariants must catch. Changes of the metadata group
   (``reconfigs``): ``set_group`` entries naming a random group of 1, 3 or 5 of the nodes,
   each deciding slots from ``alpha`` slots after its own on; the faults above strike while
   they are in flight, and the oracle counts votes only from each slot's group. Clients propose values with unique request
   ids and retry until they see them committed.
2. Liveness phase: partitions healed, loss/duplication off, every node up. All nodes
   must reach the same last slot with every request committed within
   ``liveness_ticks``.

A crash loses everything the node did not persist: the simulated storage keeps only
what the node handed out in ``Ready.persist`` / what the app stored, and the Ready
handler syncs ``persist`` before it sends anything (the contract under test).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import msgpack

from dynamopy.core.paxos import (AcceptorState, MetaLogNode, PaxosSafetyError, decode, encode,
                                 finish_ready)

from .clock import VirtualClock
from .invariants import (
    check_agreement, check_at_most_once, check_chosen_unique, check_liveness, check_no_loss, check_prefix,
)
from .metalog_app import DurableStore, LogApp, group_rule
from dynamopy.core.paxos.groups import GroupSchedule
from .network import NetConfig, Network


@dataclass(frozen=True)
class SimParams:
    """Everything a run depends on; ``seed`` plus these replay it exactly."""

    seed: int
    nodes: int = 5
    acceptors: int = 3
    steps: int = 200            # ticks of the safety phase
    proposals: int = 20         # client requests during the safety phase
    loss: float = 0.05
    dup: float = 0.03
    slow: float = 0.05          # share of messages delayed far behind (reordering)
    slow_delay_ms: int = 1000
    max_delay_ms: int = 30
    crashes: int = 4
    partitions: int = 3
    bursts: int = 3             # bursts of 3-12 simultaneous client requests
    long_outage: bool = True
    late_join: bool = True
    compact_every: int = 8      # an app snapshots after this many new entries (0 = never)
    crash_in_flush: float = 0.3 # share of crashes that hit after persist, before send/apply
    liveness_ticks: int = 400
    tick_ms: int = 50
    election_ticks: int = 10
    heartbeat_ticks: int = 2
    wire: bool = True           # every message goes through encode -> msgpack -> decode
    wipes: int = 0              # acceptors whose disk is wiped (at most a minority)
    unsafe_wipe: bool = False   # the bug: a wiped acceptor votes again with an empty state
    reconfigs: int = 0          # changes of the metadata group during the safety phase
    alpha: int = 8              # a group change decides slots from this many slots later

    def cli_args(self) -> str:
        """Command-line flags that reproduce this run (only non-defaults)."""
        default = SimParams(seed=0)
        parts = [f"--seed {self.seed}"]
        for f in dataclasses.fields(self):
            if f.name == "seed":
                continue
            v = getattr(self, f.name)
            if v != getattr(default, f.name):
                flag = "--" + f.name.replace("_", "-")
                parts.append(flag if v is True else f"--no-{f.name.replace('_', '-')}" if v is False else f"{flag} {v}")
        return " ".join(parts)


@dataclass
class SimResult:
    params: SimParams
    violations: list[str]
    stats: dict[str, Any] = field(default_factory=dict)
    final_logs: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def raise_if_failed(self) -> None:
        """Raise ``SimFailure`` whose message starts with ``SEED=<n>`` and the replay flags."""
        if not self.ok:
            raise SimFailure(self.report())

    def report(self) -> str:
        head = f"SEED={self.params.seed} {'OK' if self.ok else 'FAILED'} params: {self.params.cli_args()}"
        lines = [head, f"  replay: python -m dynamopy.sim {self.params.cli_args()}", f"  stats: {self.stats}"]
        lines += [f"  {v}" for v in self.violations[:20]]
        return "\n".join(lines)


class SimFailure(AssertionError):
    """A run broke an invariant; the message is the run's report (``SEED=...``)."""


class _SimNode:
    """One simulated machine: durable store (survives crashes) + volatile node and app."""

    def __init__(self, node_id: str) -> None:
        self.id = node_id
        self.store = DurableStore()
        self.node: MetaLogNode | None = None
        self.app: LogApp | None = None
        self.up = False
        self.incarnation = 0
        self.down_epoch = 0
        self.flush_pending = False
        self.crash_after_persist = False
        self.wipe_after_persist = 0  # > 0: wipe at the next synced vote, down this long (ms)
        self.members: frozenset[str] = frozenset()


class MetalogSim:
    def __init__(self, params: SimParams) -> None:
        p = self.p = params
        if not 1 <= p.acceptors <= p.nodes:
            raise ValueError("need 1 <= acceptors <= nodes")
        if not 0 <= p.wipes <= (p.acceptors - 1) // 2 and not p.unsafe_wipe:
            raise ValueError("wipes must leave a majority of voting acceptors: "
                             "0 <= wipes <= (acceptors - 1) // 2 (or --unsafe-wipe)")
        root = random.Random(p.seed)
        self.rng = random.Random(root.getrandbits(64))        # schedule, faults, clients
        self.node_rng = random.Random(root.getrandbits(64))   # seeds of node instances
        self.clock = VirtualClock()
        cfg = NetConfig(loss=p.loss, dup=p.dup, max_delay_ms=p.max_delay_ms, slow=p.slow, slow_delay_ms=p.slow_delay_ms)
        self.net = Network(self.clock, random.Random(root.getrandbits(64)), self._deliver, cfg)
        self.ids = [f"n{i}" for i in range(p.nodes)]
        self.acceptors = tuple(self.ids[: p.acceptors])
        self.joiner = self.ids[-1] if p.late_join and p.nodes > p.acceptors else None
        self.initial_members = tuple(i for i in self.ids if i != self.joiner)
        self.sims = {i: _SimNode(i) for i in self.ids}
        if p.reconfigs and p.wipes and (p.wipes > 1 or p.nodes < 3) and not p.unsafe_wipe:
            raise ValueError("with reconfigs, at most one wipe (groups of 3 or 5 then keep a "
                             "voting majority)")
        self.reconfig = group_rule(self.acceptors, p.alpha) if p.reconfigs else None
        self.applied: list[tuple[str, int, Any]] = []
        self.accepts: list[tuple[str, int, Any, Any]] = []  # every durable accept, for the Paxos oracle
        self.requests: dict[str, dict] = {}
        self.committed: set[str] = set()
        self.violations: list[str] = []
        self.safety_end_ms = p.steps * p.tick_ms
        self.stats: dict[str, Any] = {"crashes": 0, "snapshots_installed": 0, "compactions": 0,
                                      "wipes": 0}

    # -- node lifecycle -------------------------------------------------------------------

    def _boot(self, nid: str) -> None:
        s = self.sims[nid]
        s.incarnation += 1
        s.app = LogApp.restore(self.initial_members, s.store)
        # A wiped store has no acceptor state: the node comes back without a vote (safe),
        # unless the run plays the bug of voting again from an empty state.
        persisted = s.store.acceptor if nid in self.acceptors or self.reconfig else None
        if persisted is None and nid in self.acceptors and self.p.unsafe_wipe:
            persisted = AcceptorState()
        readmit = None
        if persisted is None and self.reconfig is not None:
            if s.store.incarnation is None:  # a new incarnation token, kept on its disk
                s.store.incarnation = f"{nid}.{s.incarnation}"
                readmit = s.store.incarnation
        s.node = MetaLogNode(
            nid, self.acceptors, random.Random(self.node_rng.getrandbits(64)),
            persisted=persisted, snapshot=s.store.snapshot, log=s.store.entries(),
            election_ticks=self.p.election_ticks, heartbeat_ticks=self.p.heartbeat_ticks,
            reconfig=self.reconfig, ballot_id=self.ids.index(nid) if self.reconfig else None,
            incarnation=s.store.incarnation,
        )
        s.members = frozenset(s.app.members)
        s.node.set_learners(s.members)
        s.up, s.flush_pending, s.crash_after_persist = True, False, False
        self.clock.call_later(self.rng.randint(0, self.p.tick_ms - 1), self._tick, nid, s.incarnation)
        if readmit is not None:
            # What the cluster does for a replacement: a group change naming its new token.
            self.clock.call_later(self.rng.randint(1, 3 * self.p.election_ticks) * self.p.tick_ms,
                                  self._request_readmit, nid, readmit)

    def _crash(self, nid: str) -> None:
        s = self.sims[nid]
        if not s.up or self.clock.now_ms >= self.safety_end_ms:
            return
        if s.flush_pending and self.rng.random() < self.p.crash_in_flush:
            s.crash_after_persist = True  # dies inside its next Ready, right after the sync
            return
        self._kill(s)

    def _kill(self, s: _SimNode) -> None:
        self.stats["crashes"] += 1
        s.up, s.node, s.app = False, None, None  # all volatile state is gone
        s.flush_pending = s.crash_after_persist = False
        s.wipe_after_persist = 0
        s.down_epoch += 1

    def _decisive(self, nid: str, persist) -> bool:
        """The adversary's pick for a wipe: this sync holds a vote that, with the votes
        already durable elsewhere, completes a majority, while some other acceptor has
        not voted for that value yet (its vote is the one a wipe makes it forget)."""
        if persist is None:
            return False
        quorum = len(self.acceptors) // 2 + 1
        for slot, ballot, value in persist.accepted:
            others = {a for a, s2, b, v in self.accepts
                      if s2 == slot and b == ballot and v == value and a != nid}
            if len(others) + 1 >= quorum and len(others) + 1 < len(self.acceptors):
                return True
        return False

    def _wipe_store(self, s: _SimNode) -> None:
        self.stats["wipes"] += 1
        s.store = DurableStore()  # a new empty volume: no acceptor state, no log, no snapshot

    def _wipe(self, nid: str, down_ms: int) -> None:
        """Wipe ``nid``'s disk at its next Ready that persists a vote, right after the
        sync (the worst moment: its vote counted), then restart it ``down_ms`` later."""
        s = self.sims[nid]
        if not s.up:
            self._wipe_store(s)  # wiped while down: its pending restart finds an empty disk
            return
        s.wipe_after_persist = max(down_ms, 1)

    def _restart(self, nid: str, epoch: int) -> None:
        s = self.sims[nid]
        if not s.up and s.down_epoch == epoch:
            self._boot(nid)

    # -- events ---------------------------------------------------------------------------

    def _tick(self, nid: str, inc: int) -> None:
        s = self.sims[nid]
        if not s.up or s.incarnation != inc:
            return
        s.node.tick()
        self._schedule_flush(s)
        self.clock.call_later(self.p.tick_ms, self._tick, nid, inc)

    def _deliver(self, dst: str, src: str, msg: Any) -> bool:
        s = self.sims.get(dst)
        if s is None or not s.up:
            return False
        s.node.step(src, msg)
        self._schedule_flush(s)
        return True

    def _schedule_flush(self, s: _SimNode) -> None:
        # Inputs arriving before the flush share one Ready (and one sync): group commit.
        if not s.flush_pending:
            s.flush_pending = True
            self.clock.call_later(self.rng.randint(0, 2), self._flush, s.id, s.incarnation)

    def _flush(self, nid: str, inc: int) -> None:
        """The Ready handler, in contract order: snapshot, persist+sync, apply, send, advance."""
        s = self.sims[nid]
        if not s.up or s.incarnation != inc:
            return
        s.flush_pending = False
        node, app, store = s.node, s.app, s.store
        if not node.has_ready():
            return
        rd = node.ready()
        # Durable first ("fsync"): the snapshot and the acceptor update. (The app's log of
        # committed values is stored as they are applied: a crash right after this sync
        # loses them, which the learner re-learns, and so tests that path too.)
        if rd.snapshot is not None:
            store.snapshot, store.log = rd.snapshot, []
        if rd.persist is not None:
            if rd.persist.votes_from is not None:
                self.stats["readmitted"] = self.stats.get("readmitted", 0) + 1
            store.acceptor = (store.acceptor or AcceptorState()).apply(rd.persist)
            self.accepts.extend((nid, slot, b, v) for slot, b, v in rd.persist.accepted)
        if s.wipe_after_persist and self._decisive(nid, rd.persist):
            down_ms = s.wipe_after_persist
            self._kill(s)  # it voted (synced), then its disk is lost
            self._wipe_store(s)
            self.clock.call_later(down_ms, self._restart, nid, s.down_epoch)
            # The worst moment for the others too: the leader that counted that vote dies
            # with it, so the next leader must rebuild the slot from a new majority.
            # Its accepts still in flight are lost with it (cut off, then crashed).
            leaders = self._leaders()
            if leaders:
                self.net.partition([leaders])
                self.clock.call_later(self.p.election_ticks * self.p.tick_ms, self.net.heal)
            for leader in leaders:
                self._crash_for(leader, self.rng.randint(1, 3 * self.p.election_ticks) * self.p.tick_ms)
            return
        if s.crash_after_persist:
            self._kill(s)  # synced, but nothing sent and nothing applied
            return

        def install(snapshot) -> None:
            app.install(snapshot)
            self.stats["snapshots_installed"] += 1
            self.applied.extend((nid, slot, v) for slot, v in enumerate(snapshot.data))

        def apply(slot, value) -> None:
            app.apply(slot, value)
            store.log.append(value)
            self.applied.append((nid, slot, value))
            if value is not None:
                self.committed.add(value["rid"])

        def send(messages) -> None:
            for to, msg in messages:
                if self.p.wire:  # what a real transport does to a message (tuples -> lists)
                    msg = decode(msgpack.unpackb(msgpack.packb(encode(msg), use_bin_type=True),
                                                 raw=False))
                self.net.send(nid, to, msg)

        finish_ready(node, rd, install=install, apply=apply, send=send)
        if s.members != app.members:
            s.members = frozenset(app.members)
            node.set_learners(s.members)
        self._maybe_compact(s)

    def _maybe_compact(self, s: _SimNode) -> None:
        every = self.p.compact_every
        if not every or s.app.applied - s.store.base < every:
            return
        upto = s.app.applied - every // 2  # keep a short tail for peers that lag a little
        if upto <= s.store.base:
            return
        snap = type(s.app.snapshot())(upto, tuple(s.app.values[:upto]))
        s.store.log = s.app.values[upto:]  # the app stores the snapshot durably first...
        s.store.snapshot = snap
        s.node.compact(upto, snap)         # ...then lets the node (and acceptor) drop below it
        self.stats["compactions"] += 1
        self._schedule_flush(s)

    def _submit(self, rid: str) -> None:
        if rid in self.committed:
            return
        up = [i for i in self.ids if self.sims[i].up]
        if up:
            s = self.sims[self.rng.choice(up)]
            s.node.propose(self.requests[rid])
            self._schedule_flush(s)
        self.clock.call_later(self.p.election_ticks * self.p.tick_ms, self._submit, rid)

    def _request(self, rid: str, value: dict) -> None:
        self.requests[rid] = value
        self._submit(rid)

    def _request_group(self, rid: str, group: list[str], compare: bool) -> None:
        """A group change; with ``compare``, one that names the group it replaces (as the
        most advanced live node knows it) and changes nothing if another came first."""
        value = {"rid": rid, "op": "set_group", "group": group}
        up = [self.sims[i].node for i in self.ids if self.sims[i].up]
        if compare and up:
            ahead = max(up, key=lambda n: n.chosen_below)
            value["from_group"] = list(ahead.schedule()[-1][1])
        self._request(rid, value)

    def _request_readmit(self, nid: str, token: str) -> None:
        up = [self.sims[i].node for i in self.ids if self.sims[i].up]
        group = list(self.acceptors)
        if up:
            group = list(max(up, key=lambda n: n.chosen_below).schedule()[-1][1])
        if nid not in group:
            group.append(nid)
        rid = f"readmit-{token}"
        self._request(rid, {"rid": rid, "op": "set_group", "group": sorted(group),
                            "readmit": {nid: token}})

    def _join(self) -> None:
        self._boot(self.joiner)  # a fresh machine: no state at all, learns everything
        self._request(f"join-{self.joiner}", {"rid": f"join-{self.joiner}", "op": "join", "id": self.joiner})

    # -- schedule -------------------------------------------------------------------------

    def _plan(self) -> None:
        p, rng, end = self.p, self.rng, self.safety_end_ms
        for i in range(p.proposals):
            rid = f"r{i}"
            self.clock.call_at(rng.randint(0, end - 1), self._request, rid, {"rid": rid, "op": "put", "n": i})
        if self.joiner is not None:
            self.clock.call_at(rng.randint(end // 10, end // 2), self._join)
        if p.long_outage:
            victim = rng.choice([i for i in self.ids if i != self.joiner])
            t0 = rng.randint(0, end // 5)
            self.clock.call_at(t0, self._outage, victim, rng.randint(end * 3 // 5, end))
        for _ in range(p.crashes):
            t = rng.randint(0, end - 1)
            self.clock.call_at(t, self._crash_some, rng.randint(1, 3 * p.election_ticks) * p.tick_ms)
        victims = [a for a in self.acceptors if a != self.joiner]
        rng.shuffle(victims)
        for nid in victims[: p.wipes]:
            t = rng.randint(0, end * 3 // 4)
            self.clock.call_at(t, self._wipe, nid, rng.randint(1, 3 * p.election_ticks) * p.tick_ms)
        for i in range(p.reconfigs):
            sizes = (3, 3, 5) if p.wipes else (1, 3, 3, 3, 5)
            size = rng.choice([s for s in sizes if s <= p.nodes])
            group = sorted(rng.sample(self.ids, size))
            self.clock.call_at(rng.randint(0, end - 1), self._request_group, f"g{i}", group,
                               rng.random() < 0.5)
        for _ in range(p.partitions):
            t = rng.randint(0, end - 1)
            self.clock.call_at(t, self._partition_some)
            self.clock.call_at(t + rng.randint(5, 6 * p.election_ticks) * p.tick_ms, self.net.heal)
        for _ in range(p.bursts):
            # Many requests at once: a deep phase-2 pipeline for the next fault to cut.
            t = rng.randint(0, end - 1)
            for j in range(rng.randint(3, 12)):
                rid = f"b{t}-{j}"
                self.clock.call_at(t, self._request, rid, {"rid": rid, "op": "put", "n": j})

    def _leaders(self) -> list[str]:
        return [i for i in self.ids if self.sims[i].up and self.sims[i].node.role.value == "leader"]

    def _crash_some(self, down_ms: int) -> None:
        # Half the crashes hit a leader: leader changes with values in flight are where
        # Multi-Paxos bugs live.
        leaders = self._leaders()
        pool = leaders if leaders and self.rng.random() < 0.5 else self.ids
        self._crash_for(self.rng.choice(pool), down_ms)

    def _partition_some(self) -> None:
        leaders = self._leaders()
        if leaders and self.rng.random() < 0.5:
            side = [self.rng.choice(leaders)] + [i for i in self.ids if self.rng.random() < 0.25]
        else:
            side = [i for i in self.ids if self.rng.random() < 0.5]
        self.net.partition([side])

    def _outage(self, nid: str, until_ms: int) -> None:
        self._crash_for(nid, until_ms - self.clock.now_ms)

    def _crash_for(self, nid: str, down_ms: int) -> None:
        s = self.sims[nid]
        if not s.up:
            return
        self._crash(nid)
        epoch = s.down_epoch + (0 if not s.up else 1)  # a deferred crash bumps it later
        self.clock.call_later(max(down_ms, 1), self._restart, nid, epoch)

    def _heal_all(self) -> None:
        self.net.heal()
        self.net.config = NetConfig(max_delay_ms=self.p.max_delay_ms)
        for nid in self.ids:
            s = self.sims[nid]
            if s.crash_after_persist or s.wipe_after_persist:
                s.crash_after_persist, s.wipe_after_persist = False, 0  # faults are over
            if not s.up:
                self._boot(nid)

    # -- run ------------------------------------------------------------------------------

    def _converged(self) -> bool:
        apps = [self.sims[i].app for i in self.ids]
        if any(a is None for a in apps):
            return False
        n = apps[0].applied
        if any(a.applied != n for a in apps):
            return False
        return all(rid in a.seen for a in apps for rid in self.requests)

    def run(self) -> SimResult:
        p = self.p
        converged, converge_ticks = False, None
        try:
            for nid in (self.ids if self.reconfig else self.acceptors):
                # The bootstrap's durable marker: a seed's first start records its (empty)
                # acceptor state before any vote; only that makes it a voter.
                self.sims[nid].store.acceptor = AcceptorState()
            for nid in self.initial_members:
                self._boot(nid)
            self._plan()
            self.clock.run_until(self.safety_end_ms)
            self._heal_all()
            for t in range(1, p.liveness_ticks + 1):
                self.clock.run_until(self.safety_end_ms + t * p.tick_ms)
                if self._converged():
                    converged, converge_ticks = True, t
                    break
        except (PaxosSafetyError, AssertionError) as e:
            self.violations.append(f"exception at t={self.clock.now_ms}ms: {type(e).__name__}: {e}")
        final = {i: list(self.sims[i].app.values) for i in self.ids if self.sims[i].app is not None}
        effective = {i: list(self.sims[i].app.effective) for i in self.ids if self.sims[i].app is not None}
        v = self.violations
        if self.reconfig is not None and final:
            longest = max(final.values(), key=len)
            sched = GroupSchedule.from_pairs(self.reconfig.schedule_of(longest), self.p.alpha)
            v += check_chosen_unique(self.accepts, sched.at)
            self.stats["group_changes"] = len(sched.changes) - 1
        else:
            v += check_chosen_unique(self.accepts, len(self.acceptors))
        v += check_agreement(self.applied)
        v += check_prefix(final)
        v += check_at_most_once(final, effective)
        if not v:
            v += check_liveness(final, self.requests, converged)
        if not v:
            v += check_no_loss(self.applied, final)
        ns = self.net.stats
        self.stats.update(
            slots=max((len(x) for x in final.values()), default=0),
            duplicates=sum(self.sims[i].app.duplicates for i in final),
            converge_ticks=converge_ticks, sent=ns.sent, lost=ns.lost, cut=ns.cut,
        )
        return SimResult(p, v, self.stats, final)


def run_metalog(seed: int, **params: Any) -> SimResult:
    """Run one seeded schedule; ``params`` are ``SimParams`` fields."""
    return MetalogSim(SimParams(seed=seed, **params)).run()
