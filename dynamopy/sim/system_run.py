"""One system-simulation run: real ``Node`` runtimes in one process, on virtual time, under a
seeded nemesis and a seeded client workload, then the checkers (issue 11).

``run_system(params)`` is a pure function of ``params`` (the seed included): one
``random.Random(seed)`` hands a child rng, in a fixed order, to the nemesis schedule, the
workload, the network fates and the probes; every node is built by ``InProcessCluster`` on
the in-memory seams (``MemoryNetwork``, a ``MemoryDisk`` that loses unsynced writes on a
crash, a ``NodeClock`` on the ``VirtualTimeLoop``) and seeds its own rng from the run's
seed; nothing reads the wall clock.

Phases:

1. boot: the seed nodes bootstrap one cluster and become ready (time 0 of the history is
   when they are);
2. safety phase, until ``duration_ms``: clients run their operations one at a time against
   a coordinator the workload picks among the running nodes, while the nemesis events are
   folded into a ``FaultState`` and carried out: crash (``InProcessCluster.crash``: unsynced
   writes lost, in-flight client operations on that coordinator end ``UNKNOWN``) and restart
   on the same disk; partitions, one-way too, message loss, delay and reordering (through
   ``NetFates`` as the network's per-message delay), duplicated requests and lost replies
   (``FaultyNetwork``); a pause (every message to or from the node is held until it
   resumes; its own timers still run); a clock jump (the node's ``NodeClock.offset_ms``);
   a slow disk (its ``MemoryDisk.sync_delay_ms``: each group-commit sync waits); and the
   run's ``Buggify`` knobs fire in the nodes' code paths;
3. heal: every fault undone, crashed nodes restarted, BUGGIFY knobs off; the run waits up to ``bound_ms`` for
   the hint queues to drain and the ring change in progress to finish, then (in a run that purges) an R=N strict
   read of every key, then runs a put and a get per key (liveness probes), then an
   R=N strict read of every key (the no-lost-write check), then waits for read repair;
4. check: ``check_system_run`` over the history, the final reads, every live node's store
   and the settled ring, plus ``check_settled``, hint queues empty, and every scheduled
   join, leave and removal carried out.

The node writes every batch with ``sync=True`` today, so ``lost_unsynced_ops`` is 0 and a
crash loses only what sat in the group committer's queue (whose callers fail, never ack).

Client operations go to the coordinator component (``node.coordinator``) directly, not over
HTTP: the REST layer is covered by real-process tests, and the coordinator shows tombstone
versions, which the checkers need. Duplicated requests and lost replies come from
``FaultyNetwork`` (``sim/system_net.py``). Membership changes are opt-in (``--spares``,
``--changes`` and join/leave/remove in ``--kinds``; give them a longer ``--bound-ms``: a
transfer pull that lost its reply is retried after its 10 s timeout): a join starts a spare
node that adopts the metadata group and has a member admit it as ``POST /cluster/members``
does (``admit_join``: the joiner must identify itself over the faulty network, then the join is
proposed); a leave is proposed through any member and the node is
stopped once the log says it left; a removal crashes the node for good and proposes
``remove``, unless it would leave fewer than a majority of the metadata group able to vote
ever again (``_group_seats_lost``): then it is skipped, noted in the history and counted as
``skipped_removals`` (no quorum survives that; a real cluster's log stops, as documented).
The nodes run anti-entropy every ``anti_entropy_interval_ms``. A slow disk makes each sync of one
node's group committer wait (virtual time) before it lands; BUGGIFY knobs
(``dynamopy.core.buggify``, ``--buggify``) widen internal windows until healing.

Tombstones: with the default grace (10 days) none is purged during a run. ``tombstone_grace_ms``
(``--tombstone-grace-ms``) gives the cluster that grace and the longest hint window it covers
(``core.tombstones.hint_ttl_ms``: 90% of the grace less the nodes' 500 ms clock bound; a node
refuses a longer one), so each node's anti-entropy loop runs its purge passes as in production
(after a round, at most every grace); ``system_probes`` records each ``Purged`` tombstone and the
stats count ``purge_passes`` and ``tombstones_purged``; the checkers get ``purge=True``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from dataclasses import dataclass
from typing import Optional

from dynamopy.core.buggify import BUGGIFY_OFF, Buggify
from dynamopy.core.paxos.groups import majority
from dynamopy.core.records import Record
from dynamopy.core.tombstones import grace_covers_window, hint_ttl_ms
from dynamopy.node.errors import NodeError
from dynamopy.node.bootstrap import ensure_member
from dynamopy.node.joins import admit_join, join_again_if_abandoned
from dynamopy.node.runtime import Node
from dynamopy.peer import PeerError

from .clock import run_virtual
from .fault_state import FaultState
from .history import History, OpKind, Outcome
from .clock import NodeClock
from .inprocess import InProcessCluster, memory_config
from .nemesis import DOWN_FAULTS, Action, Fault, FaultKind, NemesisEvent, NemesisParams, Schedule, generate as generate_schedule, parse_kinds
from .net_fates import LOST_S, NetFates
from .system_invariants import (check_one_value_per_slot, check_restored, check_settled, check_system_run,
                                check_wiped_acceptors_never_vote, excuse_writes_lost_to_wipes, replica_sets)
from .system_probes import CURRENT_OP, Recorder, RecordingDisk, instrument
from .system_contact import MemoryContact
from .system_wipes import check_replacements, rejoined_after_wipe, rejoined_ms, replaced_ids
from .system_report import run_report
from .system_net import FaultyNetwork
from .workload import ClientOp, Workload, WorkloadParams, final_reads, generate as generate_workload, probes

MAX_CLOCK_OFFSET_MS = 500    # the nodes' --max-clock-offset-ms (the flag's default)

# What the in-memory seams carry out today (see the module docstring for the rest).
DEFAULT_KINDS = "crash,pause,partition,one_way,loss,delay,duplicate,reorder,clock_jump,slow_disk"
SUPPORTED = parse_kinds(DEFAULT_KINDS + ",join,leave,remove,wipe")


@dataclass(frozen=True)
class SystemParams:
    """One run. Every field but ``seed`` is a ``dynamopy sim --system`` flag."""

    seed: int = 0
    nodes: int = 5
    n: int = 3
    r: int = 2
    w: int = 2
    duration_ms: int = 6000        # the safety phase; the nemesis heals everything then
    faults: int = 8                # fault windows the nemesis tries to place
    kinds: str = DEFAULT_KINDS
    spares: int = 0                # nodes that may join (with join in --kinds and --changes > 0)
    changes: int = 0               # membership changes the nemesis tries to place
    max_clock_jump_ms: int = 5000
    max_slow_disk_ms: int = 2000   # a slow disk's syncs take 50 ms up to this (virtual)
    wipes: int = 1                 # most disks wiped per run (with wipe in --kinds)
    buggify: float = 0.5           # share of the nodes' BUGGIFY knobs enabled per run (0: off)
    unavailable: bool = False      # faults may take down more than N-W nodes at once
    clients: int = 4
    ops_per_client: int = 25
    keys: int = 4
    strict: float = 0.3            # share of client operations with strict=true
    bound_ms: int = 4000           # liveness: operations from heal + bound on must succeed
    client_timeout_ms: int = 5000  # a client gives up (UNKNOWN) after this
    request_timeout_ms: int = 1000  # the nodes' --request-timeout-s
    anti_entropy_interval_ms: int = 5000  # the nodes' --anti-entropy-interval-s (0: off)
    tombstone_grace_ms: int = 0    # the cluster's tombstone grace (0: the default, 10 days: no purge)
    delete: float = 0.1            # share of client operations that are deletes
    crash_in_set_group: bool = False  # crash the leader or a group member mid group change

    def __post_init__(self) -> None:
        unsupported = parse_kinds(self.kinds) - SUPPORTED
        if unsupported:
            raise ValueError("the system simulator does not model "
                             + ", ".join(sorted(k.value for k in unsupported)) + " yet")
        if not 0 <= self.buggify <= 1:
            raise ValueError(f"--buggify is a share of knobs between 0 and 1, got {self.buggify}")
        if not 0 <= self.delete <= 1:
            raise ValueError(f"--delete is a share of operations between 0 and 1, got {self.delete}")
        if self.tombstone_grace_ms < 0:
            raise ValueError(f"--tombstone-grace-ms must be >= 0 (0: no purge), got {self.tombstone_grace_ms}")
        if self.tombstone_grace_ms and self.hint_window_s <= 0:
            raise ValueError(f"--tombstone-grace-ms {self.tombstone_grace_ms} leaves no hint window: 90% of it "
                             f"must exceed the nodes' --max-clock-offset-ms ({MAX_CLOCK_OFFSET_MS})")

    @property
    def purge(self) -> bool:
        """Tombstones may be purged during the run (a short grace was given)."""
        return self.tombstone_grace_ms > 0

    @property
    def hint_window_s(self) -> float:
        """The cluster's hint window with a short grace: the longest the grace rule allows
        (``core.tombstones``: 90% of the grace less the nodes' clock bound; a node refuses
        to start with a longer one). 0 without ``tombstone_grace_ms`` (the run keeps the
        settings it always had)."""
        if not self.purge:
            return 0.0
        return hint_ttl_ms(self.tombstone_grace_ms / 1000, MAX_CLOCK_OFFSET_MS) / 1000

    def cli_args(self) -> str:
        """The non-default flags after ``--seed <n>`` that reproduce this run."""
        default = SystemParams()
        flags = []
        for f in dataclasses.fields(self):
            v, flag = getattr(self, f.name), "--" + f.name.replace("_", "-")
            if f.name != "seed" and v != getattr(default, f.name):
                flags.append((flag if v else f"--no-{flag[2:]}") if isinstance(v, bool) else f"{flag} {v}")
        return " ".join(flags)


@dataclass
class SystemResult:
    params: SystemParams
    violations: list[str]
    history: History
    schedule: Schedule
    workload: Workload
    stats: dict

    @property
    def ok(self) -> bool:
        return not self.violations

    def report(self, verbose: bool = False) -> str:
        return run_report(self.params.seed, self.params.cli_args(), self.violations, self.history.events,
                          stats=self.stats, schedule=self.schedule, workload=self.workload, verbose=verbose)


class SimCluster(InProcessCluster):
    """``InProcessCluster`` whose disks record syncs and whose nodes are instrumented, with
    spare nodes that join a running cluster through a member's ``admit_join`` (what the
    ``POST /cluster/members`` route runs once its body parses: ``check_joiner`` asks the
    joiner to identify itself over the faulty network, then the join is proposed), and
    nodes whose disk is wiped (``empty_disk``): they boot as ``dynamopy serve`` boots on an
    empty data directory (``ensure_member`` with an in-process contact,
    ``sim/system_contact.py``), so they come back as replacements. ``reachable(a, b)``: does a
    request from ``a`` reach ``b`` now (the fault state's answer; the contact asks it)."""

    def __init__(self, ids: list[str], recorder: Recorder, spares: tuple[str, ...] = (),
                 buggify: Buggify = BUGGIFY_OFF, reachable=lambda a, b: True, **kw) -> None:
        super().__init__(ids, **kw)
        self.recorder = recorder
        self.buggify = buggify
        self.reachable = reachable
        self.wiped: set[str] = set()
        for i in spares:
            self.configs[i] = memory_config(i, ids, n=self.settings.n, r=self.settings.r, w=self.settings.w,
                                            **{k: v for k, v in kw.items() if k not in ("seed", "n", "r", "w", "network")})
            self.clocks[i] = NodeClock()
        # --seeds as URLs (what ensure_member asks, through the contact)
        self.configs = {i: dataclasses.replace(c, seeds=tuple(f"mem://{s}" for s in ids))
                        for i, c in self.configs.items()}
        self.disks = {i: self._new_disk(i) for i in self.configs}

    def _new_disk(self, node_id: str) -> RecordingDisk:
        return RecordingDisk(lambda items: self.recorder.synced(node_id, items))

    def empty_disk(self, node_id: str) -> None:
        """The crashed node's disk is replaced by an empty one: its data, acceptor state,
        hints and durable marks are gone; its next ``start`` boots it as a replacement."""
        self.disks[node_id] = self._new_disk(node_id)
        self.wiped.add(node_id)
        self.recorder.wiped(node_id)

    async def _become_member(self, node: Node) -> None:
        if node.id in self.wiped:
            # what `dynamopy serve` runs, on whatever the node's disk holds
            return await ensure_member(node, MemoryContact(node.id, lambda: self.nodes, self.reachable))
        if node.id in self.ids:
            return await super()._become_member(node)
        await self._admit(node)
        # as `dynamopy serve` does: a join abandoned while the spare runs is asked again
        await join_again_if_abandoned(node, lambda: self._admit(node))

    async def _admit(self, node: Node) -> None:
        """A spare asks a ready member to add it, until its log lists it."""
        while node.state.member(node.id) is None and not node.stopping:
            try:
                via = self.nodes[next(i for i in sorted(self.nodes) if i != node.id
                                      and not self.nodes[i].stopping and self.nodes[i].is_ready)]
                st = via.state
                await node.metalog.adopt_acceptors(list(st.initial_group or st.acceptors), {m: v.peer for m, v in st.members.items()})
                # the route's path: the joiner must answer as itself, then the join is proposed
                node.join_accepted_epoch = await admit_join(
                    via, {"op": "join", "id": node.id, "url": f"mem://{node.id}", "peer": node.id})
            except Exception:  # noqa: BLE001 - not ready, refused, a change in progress: retry
                pass
            await asyncio.sleep(0.5)

    async def propose_via_any(self, entry: dict, stopping) -> int:
        """Propose ``entry`` (a leave or a removal) through any ready member, retrying until
        it commits (an epoch it took effect by) or ``stopping()`` (0). A proposal that timed
        out may still have committed: once a member's log shows it took effect, that is a
        commit too (a retry would be refused: "no member"). Gone means gone from the log of a
        node that listed it before (a log only moves forward; a node that never joined, or
        one a lagging node has not heard of yet, is never taken for gone). A removal of a
        node that no log ever listed (a spare stopped for good before its join committed)
        ends with the run as -1, not 0: an operator is told 404 and has nothing to remove
        (if its join commits later, the run's final check finds it still a member)."""
        listed: set[str] = set()  # nodes whose log listed the member
        while not stopping():
            for i in sorted(self.nodes):
                node = self.nodes[i]
                if node.stopping or not node.is_ready:
                    continue
                member = node.state.member(entry["id"])
                if member is None and i in listed:
                    return node.state.epoch
                if member is not None:
                    listed.add(i)
                    if entry["op"] == "leave" and member.state == "leaving":
                        return node.state.epoch
                try:
                    return await node.propose(entry)
                except Exception:  # noqa: BLE001 - refused or not ready: try again
                    pass
            await asyncio.sleep(0.5)
        return -1 if entry["op"] == "remove" and not listed else 0

    async def start(self, node_id: str) -> Node:
        node = Node(self.configs[node_id], transport=self.network.transport(node_id),
                    storage=self.disks[node_id], clock=self.clocks[node_id],
                    rng=random.Random(f"{self.seed}/{node_id}/{len(self._boots)}"), buggify=self.buggify)
        instrument(node, self.recorder)
        self.nodes[node_id] = node
        await node.start()
        self._boots.append(node.spawn(self._become_member(node)))
        return node


class SystemRun:
    def __init__(self, params: SystemParams) -> None:
        p = self.p = params
        root = random.Random(p.seed)
        self.ids = [f"n{i}" for i in range(p.nodes)]
        self.spares = tuple(f"n{i}" for i in range(p.nodes, p.nodes + p.spares))
        self.all_ids = self.ids + list(self.spares)
        self.schedule = generate_schedule(random.Random(root.getrandbits(64)), NemesisParams(
            nodes=tuple(self.ids), spares=self.spares, fixed=(self.ids[0],), duration_ms=p.duration_ms,
            kinds=parse_kinds(p.kinds), faults=p.faults, changes=p.changes, replication_n=p.n, write_quorum=p.w,
            max_clock_jump_ms=p.max_clock_jump_ms, max_slow_disk_ms=p.max_slow_disk_ms,
            unavailable=p.unavailable, max_wipes=p.wipes,
            never_wiped=(self.ids[0],)))  # the run reads the cluster's state from ids[0]
        self.workload = generate_workload(random.Random(root.getrandbits(64)), WorkloadParams(
            clients=p.clients, ops_per_client=p.ops_per_client, keys=p.keys, strict=p.strict, replication_n=p.n,
            default_r=p.r, default_w=p.w, delete=p.delete, put=min(WorkloadParams.put, 1 - p.delete)))
        self.fates = NetFates(random.Random(root.getrandbits(64)), lambda: self.faults)
        self.probe_rng = random.Random(root.getrandbits(64))
        net_rng = random.Random(root.getrandbits(64))
        self.buggify = (Buggify(random.Random(root.getrandbits(64)), enable_p=p.buggify) if p.buggify
                        else BUGGIFY_OFF)
        self.adversary_rng = random.Random(root.getrandbits(64))  # last: shifts no other stream
        self.history = History()
        self.recorder = Recorder(self.history, self.now_ms)
        if p.crash_in_set_group:
            self.recorder.on_set_group = self._crash_in_set_group
        self.faults = FaultState()
        self.pause_end_ms: dict[str, int] = {}
        self.inflight: dict[str, set[asyncio.Task]] = {}
        self.errors: list[str] = []
        self.lost_unsynced = 0
        self.max_offset_ms = 0  # the largest clock jump applied to a NodeClock
        self.held_messages = 0  # messages to or from a paused node, held until it resumes
        self.t0 = 0.0
        self.changes: list[asyncio.Task] = []  # leaves and removals being carried out
        self.skipped_removals: list[str] = []  # removals that would have killed the group's majority
        self.skipped_wipes: list[str] = []     # wipes that would have killed the group's majority
        self.reconfig_hits: list[str] = []     # faults that hit a group change in flight
        self.finished = False
        self.cluster = SimCluster(self.ids, self.recorder, spares=self.spares, buggify=self.buggify,
                                  reachable=self._reachable, seed=p.seed, n=p.n, r=p.r, w=p.w,
                                  network=FaultyNetwork(self._delay_s, net_rng, lambda: self.faults),
                                  request_timeout_s=p.request_timeout_ms / 1000,
                                  anti_entropy_interval_s=p.anti_entropy_interval_ms / 1000,
                                  **self._grace_config())
        if p.purge:
            self.cluster.settings = dataclasses.replace(self.cluster.settings, hint_window_s=p.hint_window_s)

    def _grace_config(self) -> dict:
        """The nodes' tombstone flags: with ``tombstone_grace_ms``, that grace and the hint
        window it covers (checked as a node checks its flags at start-up)."""
        p = self.p
        if not p.purge:
            return {}
        grace_s = p.tombstone_grace_ms / 1000
        assert grace_covers_window(grace_s, p.hint_window_s, MAX_CLOCK_OFFSET_MS)
        return {"tombstone_grace_s": grace_s, "hint_window_s": p.hint_window_s,
                "max_clock_offset_ms": MAX_CLOCK_OFFSET_MS}

    # ---- time and the network --------------------------------------------------------
    def now_ms(self) -> int:
        return int((asyncio.get_running_loop().time() - self.t0) * 1000)

    async def sleep_until(self, t_ms: int) -> None:
        delay = t_ms - self.now_ms()
        if delay > 0:
            await asyncio.sleep(delay / 1000)

    def _reachable(self, src: str, dst: str) -> bool:
        """A request from ``src`` gets to ``dst`` now (neither end paused, the link not cut)."""
        f = self.faults
        return f.can_send(src, dst) and src not in f.paused and dst not in f.paused

    def _delay_s(self, src: str, dst: str, method: str) -> float:
        delay = self.fates(src, dst, method)
        if delay >= LOST_S:
            return delay
        held = [self.pause_end_ms[x] - self.now_ms() for x in (src, dst)
                if x in self.faults.paused and x in self.pause_end_ms]
        if held:
            self.held_messages += 1
        return delay + max([0] + held) / 1000

    # ---- the nemesis --------------------------------------------------------------------
    async def nemesis(self) -> None:
        skipped: set[Fault] = set()  # wipes skipped at their start: their restart is skipped too
        for event in self.schedule.events:
            await self.sleep_until(event.t_ms)
            if event.fault in skipped:
                continue
            gone = self._group_seats_lost(event)
            if gone:
                # Skipped, not applied: nothing later targets a node after its removal.
                f = event.fault
                (self.skipped_wipes if f.kind is FaultKind.WIPE else self.skipped_removals).append(
                    f"{f.node}@{self.now_ms()}")
                skipped.add(f)
                self.history.note(f"{event.text}: skipped, the metadata group would lose a majority "
                                  f"for good ({', '.join(gone)} gone already)", t_ms=self.now_ms())
                continue
            await self.apply(event)

    def _group_seats_lost(self, event: NemesisEvent) -> list[str]:
        """The group members already gone for good if ``event`` stops another member of the
        metadata group for good and so leaves fewer than a majority of it that can ever vote
        again (else []). The schedule gives a removal ``settle_ms`` to finish, but its own
        faults can slow the log past that (seed 5 of ``--kinds ...,wipe --spares 2 --changes
        2``, with or without purges: n2 was stopped for good; a slow disk and a crash of n1,
        the other live group member, held back its removal or the group change after it,
        and then n1 was stopped for good too: two of [n0, n1, n2] gone, which no quorum
        survives). An operator cannot keep a second machine from dying either, but
        a run that kills a majority of the group for good tests nothing: the log stops, as
        documented, and the API refuses the second removal (503 ``no_majority``). Judged on
        the most advanced state among the running nodes; gone: stopped for good, or wiped
        and not back as a member yet. A wipe counts too: a wiped group member votes again
        only once its replacement commits, which needs a majority, so two of a group of three
        wiped before either is back stop the log for good, as the README says ("When a
        majority of the metadata group loses its disks at once"; seed 30005 of ``--kinds
        <defaults>,wipe --wipes 2 --unavailable --bound-ms 30000``): the run skips that wipe
        (and its restart), counted as ``skipped_wipes``."""
        f = event.fault
        if f is None or event.action is not Action.START or f.kind not in (FaultKind.REMOVE, FaultKind.WIPE):
            return []
        states = [n.state for n in self.cluster.nodes.values() if not n.stopping and n.state.bootstrapped]
        if not states:
            return []
        state = max(states, key=lambda st: st.epoch)
        group = tuple(state.acceptors)
        if f.node not in group:
            return []
        gone = sorted(g for g in group if g != f.node and (
            g in self.faults.removed or g in state.retired
            or g in self.faults.wiped and rejoined_after_wipe(self.recorder, g) is None))
        return gone if len(group) - len(gone) - 1 < majority(group) else []

    async def apply(self, event: NemesisEvent) -> None:
        old, new = self.faults, self.faults.apply(event)
        self.faults = new
        if event.action is Action.HEAL_ALL:
            # The liveness phase runs the plain code (FoundationDB too turns BUGGIFY off to
            # check that the database goes quiet): a late ack is a fault like any other.
            self.buggify.on = False
        self.history.note(event.text, t_ms=self.now_ms())
        f = event.fault
        if f is not None and event.action is Action.START and f.kind in DOWN_FAULTS:
            self._note_reconfiguration_hit(f.node, f.kind.value)
        if f is not None and f.kind is FaultKind.PAUSE and f.node in new.paused:
            self.pause_end_ms[f.node] = f.end_ms or self.schedule.heal_ms
        for i in self.all_ids:
            self.cluster.clocks[i].offset_ms = new.clock_offset_ms(i)
            self.cluster.disks[i].sync_delay_ms = new.sync_delay_ms(i)
            if i in self.cluster.nodes:
                self.max_offset_ms = max(self.max_offset_ms, abs(self.cluster.node(i).clock.offset_ms))
        for i in self.all_ids:
            if i in new.removed and i not in old.removed:
                # Stopped for good (crashed, unsynced writes lost), then removed by an operator.
                if i not in old.crashed:
                    await self._crash(i)
                # Never started again: what only its disk held is lost, as in a wipe (a
                # write acked at W=1 by it alone may be gone: excuse_writes_lost_to_wipes).
                self.history.wiped(i, t_ms=self.now_ms(), gone=True)
                self._background(self._propose({"op": "remove", "id": i}))
            elif i in new.crashed and i not in old.crashed:
                await self._crash(i)
                if f is not None and f.kind is FaultKind.WIPE and f.node == i:
                    self.cluster.empty_disk(i)
            elif i in old.crashed and i not in new.crashed:
                await self.cluster.start(i)
            elif i in new.joined and i not in old.joined:
                await self.cluster.start(i)
            elif i in new.left and i not in old.left:
                self._background(self._leave(i))

    def _crash_in_set_group(self, leader: str, entry: dict) -> None:
        """The adversary (``--crash-in-set-group``): as the metadata leader's keeper starts
        proposing a group change, crash the leader or a member of the old or new group (in
        a task of its own, which runs while the change is in flight), and restart it before the schedule's
        next fault that takes a node down, so the nemesis budget (rule 2) still holds."""
        now, rng = self.now_ms(), self.adversary_rng
        if now >= self.schedule.heal_ms or len(self.schedule.down_at(now) | self.faults.crashed
                                               | self.faults.paused) >= self.schedule.params.max_down:
            return
        nxt = min([e.t_ms for e in self.schedule.events if e.t_ms > now and e.action is Action.START
                   and e.fault.kind in DOWN_FAULTS | {FaultKind.PARTITION, FaultKind.ONE_WAY, FaultKind.REMOVE}]
                  + [self.schedule.heal_ms])
        victims = sorted({leader} | set(entry.get("group", ())) | set(entry.get("from_group", ())))
        victim = rng.choice(victims)
        end_ms = min(now + rng.randint(100, 2000), nxt - 1)
        if victim not in self.cluster.nodes or not self.faults.running(victim) or end_ms - now < 50:
            return
        crash = Fault(FaultKind.CRASH, now, end_ms, node=victim)  # at once: the change is in flight

        async def carry_out() -> None:
            await self.sleep_until(crash.start_ms)
            await self.apply(NemesisEvent(crash.start_ms, Action.START, crash))
            await self.sleep_until(crash.end_ms)
            await self.apply(NemesisEvent(crash.end_ms, Action.END, crash))
        self._background(carry_out())

    def _contents(self, state) -> dict[str, dict[str, Record]]:
        """What each live node's store holds of the workload's keys."""
        contents = {}
        for node in self.live_nodes():
            store = node.store
            held = {k: store.get(state.ring.token(k.encode()), k.encode()) for k in self.workload.keys}
            contents[node.id] = {k: rec for k, rec in held.items() if rec is not None}
        return contents

    def _replacements_pending(self) -> bool:
        """A wiped node (still meant to be a member) has not rejoined since its wipe."""
        f = self.faults
        return any(rejoined_after_wipe(self.recorder, i) is None for i in f.wiped - f.left - f.removed)

    def _note_reconfiguration_hit(self, node_id: str, kind: str) -> None:
        """A fault takes down the metadata leader or a group member while the leader's
        group change is in flight: noted in the history and counted in the stats."""
        for leader, entry in list(self.recorder.set_group_in_flight.values()):
            members = set(entry.get("from_group", ())) | set(entry.get("group", ()))
            if node_id == leader or node_id in members:
                role = "the metadata leader" if node_id == leader else "a group member"
                self.reconfig_hits.append(f"{kind} {node_id}@{self.now_ms()}")
                self.history.note(f"{kind} of {node_id}, {role}, while the set_group "
                                  f"{entry.get('from_group')} -> {entry.get('group')} proposed by "
                                  f"{leader} is in flight", t_ms=self.now_ms())

    async def _crash(self, node_id: str) -> None:
        for task in list(self.inflight.get(node_id, ())):
            task.cancel()  # the coordinator's process is gone: its clients hear nothing
        self.lost_unsynced += await self.cluster.crash(node_id)

    async def _leave(self, node_id: str) -> None:
        """Decommission: propose the leave, and stop the node once the log says it left. A
        leave abandoned on the way (the removal of a dead gainer took its place) is proposed
        again once that change is over, as the README tells an operator to."""
        def seed_state():    # n0 as it runs now (a restart makes a new Node), once ready
            node = self.cluster.node(self.ids[0])
            return node.state if node.is_ready and not node.stopping else None

        while not self._done():
            began = await self._propose({"op": "leave", "id": node_id})
            if not began:
                return

            def waiting() -> bool:   # for its leave, or the change that replaced it
                st = seed_state()
                return st is None or st.member(node_id) is not None and (
                    st.epoch < began or st.change is not None)
            while waiting() and not self._done():
                await asyncio.sleep(0.1)
            st = seed_state()
            if st is not None and st.member(node_id) is None:
                break
        node = self.cluster.node(node_id)
        # The README's operator rule: keep a node that left running until it has handed its
        # old copies to the new owners (its store then holds no record: GET /node "keys": 0).
        while not node.stopping and node.store.key_count() and not self._done():
            await asyncio.sleep(0.1)
        if not node.stopping:
            await self.cluster.stop(node_id)

    async def _propose(self, entry: dict) -> int:
        epoch = await self.cluster.propose_via_any(entry, self._done)
        if not epoch:
            self.errors.append(f"liveness: the {entry['op']} of {entry['id']} was never accepted by the end of the run")
        return epoch

    def _background(self, coro) -> None:
        self.changes.append(asyncio.get_running_loop().create_task(coro))

    def _done(self) -> bool:
        return self.finished

    def coordinators(self) -> list[str]:
        """Nodes a client may send to: started, not stopped or crashed, a member (or joining)."""
        out = []
        for i in self.all_ids:
            node = self.cluster.nodes.get(i)
            if node is not None and not node.stopping and self.faults.running(i) and \
                    node.state.member(i) is not None:
                out.append(i)
        return out

    # ---- clients ------------------------------------------------------------------------
    async def client(self, c: int) -> None:
        await self.sleep_until(self.workload.starts_ms[c])
        for cop in self.workload.clients[c]:
            if self.now_ms() >= self.schedule.heal_ms:
                return
            await self.operation(cop, c)
            await asyncio.sleep(cop.think_ms / 1000)

    async def operation(self, cop: ClientOp, client: int = -1) -> tuple[int, Outcome]:
        coord = cop.coordinator(self.coordinators())
        op = self.history.invoke(cop.kind, cop.key, coordinator=coord, quorum=cop.quorum, strict=cop.strict,
                                 t_ms=self.now_ms(), value=cop.value, client=client)
        task = asyncio.get_running_loop().create_task(self._call(cop, coord, op))
        running = self.inflight.setdefault(coord, set())
        running.add(task)
        task.add_done_callback(running.discard)
        done, _ = await asyncio.wait({task}, timeout=self.p.client_timeout_ms / 1000)
        if task in done and not task.cancelled():
            outcome, fields = task.result()
        else:
            outcome, fields = Outcome.UNKNOWN, {"detail": "no answer" if task not in done else "coordinator crashed"}
        self.history.complete(op, outcome, t_ms=self.now_ms(), **fields)
        return op, outcome

    async def _call(self, cop: ClientOp, coord: str, op: int) -> tuple[Outcome, dict]:
        CURRENT_OP.set((op, cop.key, coord))
        co = self.cluster.coordinator(coord)
        key = cop.key.encode()
        try:
            if cop.kind.is_write:
                version, _acks = await co.write(key, value=cop.value or b"", content_type="application/octet-stream",
                                                deleted=cop.kind is OpKind.DELETE, w=cop.quorum,
                                                sloppy=not cop.strict)
                return Outcome.OK, {"version": version}
            rec: Optional[Record] = await co.read(key, r=cop.quorum, sloppy=not cop.strict)
            if rec is None:
                return Outcome.OK, {}
            return Outcome.OK, {"version": rec.version, "deleted": rec.deleted, "value": rec.value}
        except NodeError as e:
            return Outcome.FAILED, {"detail": e.code}
        except PeerError as e:
            return Outcome.FAILED, {"detail": type(e).__name__}
        except Exception as e:  # noqa: BLE001 - a coordinator must not raise anything else
            self.errors.append(f"error: #{op} {cop.kind.value} {cop.key!r} via {coord} raised {e!r}")
            return Outcome.FAILED, {"detail": repr(e)}

    # ---- after healing --------------------------------------------------------------------
    def hints_left(self) -> int:
        return sum(1 for node in self.live_nodes() for count, _bytes in node.store.hint_stats().values() if count)

    def live_nodes(self) -> list[Node]:
        return [self.cluster.nodes[i] for i in self.all_ids
                if i in self.cluster.nodes and not self.cluster.nodes[i].stopping]

    async def settle(self, until_ms: int) -> None:
        """Wait (up to ``until_ms``) for the hint queues to drain, the ring change in
        progress, if any, to finish, and every wiped node to have joined again."""
        seed = self.cluster.node(self.ids[0])
        while (self.hints_left() or seed.state.change is not None or self._replacements_pending()) \
                and self.now_ms() < until_ms:
            await asyncio.sleep(0.1)

    async def main(self) -> SystemResult:
        p, cluster = self.p, self.cluster
        await cluster.start_all()
        self.t0 = asyncio.get_running_loop().time()
        self.history.note("cluster ready: workload and nemesis start", t_ms=0)
        tasks = [asyncio.get_running_loop().create_task(self.client(c)) for c in range(p.clients)]
        await self.nemesis()  # ends with HEAL_ALL at duration_ms
        healed = self.schedule.heal_ms
        await self.settle(healed + p.bound_ms)
        # Before any probe or final read repairs it: what the replacements hold now came back
        # through the ring change's streams (or hints, or anti-entropy).
        settled_state = cluster.node(self.ids[0]).state
        late = sorted(i for i in self.faults.wiped - self.faults.left - self.faults.removed
                      if rejoined_after_wipe(self.recorder, i) is None and (
                          not cluster.node(i).metalog.started or cluster.node(i).metalog.replacing
                          or settled_state.member(i) is None
                          or settled_state.member(i).state != "normal"))  # still on its way back
        restored = [f"liveness: {i} was wiped and had not joined again by heal + bound ({healed + p.bound_ms}ms), "
                    "so what it holds was not checked" for i in late]
        contents = {i: held for i, held in self._contents(settled_state).items() if i not in late}
        restored += check_restored(sorted(self.cluster.wiped), replica_sets(settled_state, self.workload.keys),
                                   contents, purge=p.purge)
        await self.sleep_until(healed + p.bound_ms)
        if p.purge:
            # A read of every key before the probes' puts overwrite it: a purged delete
            # that came back shows here (check_no_resurrection, check_strict_regular).
            for cop in final_reads(self.workload.keys, n=p.n):
                await self.operation(cop)
        for cop in probes(self.probe_rng, self.workload.keys, default_r=p.r, default_w=p.w):
            await self.operation(cop)
        finals: dict[str, Optional[Record]] = {}
        for cop in final_reads(self.workload.keys, n=p.n):
            op, outcome = await self.operation(cop)
            if outcome is Outcome.OK:
                o = self.history.operations()[op]
                finals[cop.key] = (Record(o.version, o.deleted, value=o.result or b"") if o.version else None)
        await asyncio.sleep(1.0)  # read repair of the final reads
        await self.settle(self.now_ms() + p.bound_ms)
        await asyncio.gather(*tasks, return_exceptions=True)
        self.finished = True
        await asyncio.gather(*self.changes, return_exceptions=True)
        state = cluster.node(self.ids[0]).state
        keys = self.workload.keys
        contents = self._contents(state)
        violations = list(self.errors) + restored
        events, excused = excuse_writes_lost_to_wipes(self.history.events)
        violations += check_system_run(events, n=p.n, final_reads=finals,
                                       replica_sets=replica_sets(state, keys), contents=contents,
                                       healed_ms=healed, bound_ms=p.bound_ms, purge=p.purge)
        violations += check_settled(state)
        f = self.faults
        for i in sorted(f.joined - f.left - f.removed):
            if state.member(i) is None or state.member(i).state != "normal":
                violations.append(f"liveness: {i} was to join, but after healing it is not a normal member")
        for i in sorted(f.left | f.removed):
            if state.member(i) is not None:
                violations.append(f"liveness: {i} was to leave or be removed, but is still a member after healing")
        violations += check_replacements(self.recorder, state, cluster.nodes, f.wiped - f.left - f.removed)
        violations += check_one_value_per_slot(self.recorder.chosen)
        violations += check_wiped_acceptors_never_vote(self.recorder.acceptor_log)
        if self.hints_left():
            violations.append(f"liveness: {self.hints_left()} hint queues still hold hints after healing")
        stats = {"faults": len(self.schedule.faults), "lost_unsynced_ops": self.lost_unsynced,
                 "messages": cluster.network.calls, "lost_messages": self.fates.lost,
                 "held_messages": self.held_messages,
                 "duplicated": cluster.network.duplicated, "replies_lost": cluster.network.replies_lost, "boots": len(cluster._boots),
                 "max_clock_offset_ms": self.max_offset_ms, "wipes": sum(w == "wiped" for _t, _n, w in self.recorder.acceptor_log), "w1_writes_lost_to_wipes": len(excused),
                 "faults_during_set_group": ",".join(self.reconfig_hits) or "-",
                 **({"skipped_removals": ",".join(self.skipped_removals)} if self.skipped_removals else {}),
                 **({"skipped_wipes": ",".join(self.skipped_wipes)} if self.skipped_wipes else {}),
                 "rejoined_ms": rejoined_ms(self.recorder, cluster.wiped),
                 # ids whose old incarnation a committed `replace` retired
                 "replaced": ",".join(sorted(replaced_ids(self.recorder))) or "-",
                 "hints_stored": self.recorder.hints_stored,
                 **({"purge_passes": self.recorder.purge_passes,
                     "tombstones_purged": self.recorder.tombstones_purged} if p.purge else {}),
                 "slow_syncs": sum(d.slow_syncs for d in cluster.disks.values()),
                 "buggify": ",".join(f"{k}={v}" for k, v in sorted(self.buggify.fired.items())) or "-",
                 "epoch": state.epoch, "members": ",".join(sorted(state.members)),
                 "virtual_ms": self.now_ms()}
        await cluster.stop_all()
        return SystemResult(p, violations, self.history, self.schedule, self.workload, stats)


def run_system(params: SystemParams) -> SystemResult:
    """Run one seed on a fresh virtual-time loop and check it."""
    return run_virtual(SystemRun(params).main())
