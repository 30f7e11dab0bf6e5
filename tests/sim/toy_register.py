"""A toy quorum register, for testing the system simulator's pure parts end to end: NOT the
node and not a model of it. It exists so the checkers see realistic, concurrent, faulty
histories (built with the same nemesis, workload, fault state and history recorder the
system simulator will use) before the real ``Node`` is wired in: a correct toy must pass
every checker for many seeds (no false alarms), and each deliberately broken variant must
be caught (the checkers bite on real interleavings, not only on fabricated ones).

The toy: N home replicas per key (a fixed rotation), no sloppy quorum, versions from the real
``core.versions.HybridClock`` over each node's (jumpable) wall clock, a write re-stamped
above a newer version a replica reports, reads that wait for R replies and repair stale
replicas, storage synced on every write (so a crash loses nothing), messages over
``sim.network.Network`` with the fates the ``FaultState`` sets.
"""

from __future__ import annotations

import random
from typing import Optional

from dynamopy.core.records import Record
from dynamopy.core.versions import HybridClock
from dynamopy.sim.clock import VirtualClock
from dynamopy.sim.fault_state import FaultState
from dynamopy.sim.history import History, OpKind, Outcome
from dynamopy.sim.nemesis import NemesisParams, generate as generate_schedule, parse_kinds
from dynamopy.sim.network import NetConfig, Network
from dynamopy.sim.system_invariants import check_system_run
from dynamopy.sim.workload import WorkloadParams, final_reads, generate as generate_workload, probes

BUGS = ("ack_before_sync", "short_quorum", "no_restamp", "repair_overwrites")
TIMEOUT_MS, HEAL_MS, BOUND_MS = 600, 6000, 800


class ToyRegister:
    def __init__(self, seed: int, *, bug: Optional[str] = None, n: int = 3, nodes: int = 5) -> None:
        assert bug is None or bug in BUGS
        root = random.Random(seed)
        self.bug, self.n = bug, n
        self.ids = [f"n{i}" for i in range(nodes)]
        self.clock = VirtualClock()
        self.net = Network(self.clock, random.Random(root.getrandbits(64)), self._deliver)
        self.h = History()
        self.faults = FaultState()
        self.store: dict[str, dict[str, Record]] = {i: {} for i in self.ids}
        self.hlc = {i: HybridClock(k + 1) for k, i in enumerate(self.ids)}
        self.calls: dict[int, dict] = {}  # in-flight coordinator rounds by op id
        self.schedule = generate_schedule(random.Random(root.getrandbits(64)), NemesisParams(
            nodes=tuple(self.ids), duration_ms=HEAL_MS, faults=10, changes=0, replication_n=n, write_quorum=2,
            kinds=parse_kinds("crash,pause,partition,one_way,loss,delay,duplicate,reorder,clock_jump"),
            max_clock_jump_ms=5000))
        self.workload = generate_workload(random.Random(root.getrandbits(64)), WorkloadParams(
            clients=4, ops_per_client=30, keys=4, replication_n=n, max_think_ms=150))
        self.rng = random.Random(root.getrandbits(64))

    # -- plumbing -------------------------------------------------------------------------

    def replicas(self, key: str) -> tuple[str, ...]:
        i = int(key[1:])
        return tuple(self.ids[(i + j) % len(self.ids)] for j in range(self.n))

    def _send(self, src: str, dst: str, msg: tuple) -> None:
        if self.faults.can_send(src, dst):
            self.net.send(src, dst, msg)

    def _deliver(self, dst: str, src: str, msg: tuple) -> bool:
        if not self.faults.can_send(src, dst):
            return False
        if dst in self.faults.paused:  # held until resume (or lost, if the pause outlives it)
            self.clock.call_later(50, self._deliver, dst, src, msg)
            return True
        getattr(self, "_on_" + msg[0])(dst, src, *msg[1:])
        return True

    def _nemesis(self, event) -> None:
        self.faults = self.faults.apply(event)
        f = self.faults
        self.net.config = NetConfig(loss=f.loss, dup=f.duplicate, slow=f.reorder, max_delay_ms=20 + f.extra_delay_ms)
        self.h.note(event.text, t_ms=self.clock.now_ms)

    # -- replica --------------------------------------------------------------------------

    def _on_put(self, node: str, coord: str, op: int, key: str, wire: list, repair: bool) -> None:
        rec = Record.from_wire(wire)
        cur = self.store[node].get(key)
        if repair and self.bug == "repair_overwrites":
            cur = None
        if cur is None or rec.version > cur.version:
            if self.bug == "ack_before_sync" and not repair:
                self.h.acked(node, op, key, rec.version, t_ms=self.clock.now_ms)
                self._send(node, coord, ("put_reply", op, rec.version))
            self.store[node][key] = rec
            self.h.synced(node, [(key, rec.version)], t_ms=self.clock.now_ms)
            if self.bug == "ack_before_sync" and not repair:
                return
            cur = rec
        if not repair:
            if cur.version == rec.version:
                self.h.acked(node, op, key, rec.version, t_ms=self.clock.now_ms)
            self._send(node, coord, ("put_reply", op, cur.version))

    def _on_get(self, node: str, coord: str, op: int, key: str) -> None:
        rec = self.store[node].get(key)
        self._send(node, coord, ("get_reply", op, rec.to_wire() if rec else None))

    # -- coordinator ------------------------------------------------------------------------

    def _wall(self, node: str) -> int:
        return 1_000_000 + self.clock.now_ms + self.faults.clock_offset_ms(node)

    def _stamp(self, call: dict) -> None:
        node = call["coord"]
        call["version"] = self.hlc[node].next(self._wall(node))
        call["acks"] = set()
        self.h.stamped(node, call["op"], call["key"], call["version"], t_ms=self.clock.now_ms)
        rec = Record(call["version"], call["deleted"], value=call["value"] or b"")
        for r in self.replicas(call["key"]):
            self._send(node, r, ("put", call["op"], call["key"], rec.to_wire(), False))

    def _on_put_reply(self, node: str, replica: str, op: int, stored: int) -> None:
        call = self.calls.get(op)
        if call is None or call["coord"] != node:
            return
        if stored > call["version"] and self.bug != "no_restamp":
            self.hlc[node].observe(stored)
            self._stamp(call)
            return
        if stored == call["version"] or self.bug == "no_restamp":
            call["acks"].add(replica)
        need = call["quorum"] - (1 if self.bug == "short_quorum" else 0)
        if len(call["acks"]) >= max(need, 1):
            self._finish(op, Outcome.OK, version=call["version"])

    def _on_get_reply(self, node: str, replica: str, op: int, wire: Optional[list]) -> None:
        call = self.calls.get(op)
        if call is None or call["coord"] != node or replica in call["replies"]:
            return
        call["replies"][replica] = Record.from_wire(wire)
        if len(call["replies"]) >= call["quorum"]:
            best = max((r for r in call["replies"].values() if r), key=lambda r: r.version, default=None)
            for r, rec in call["replies"].items():
                stale = rec is None or best is None or rec.version < best.version
                if best is not None and (stale or self.bug == "repair_overwrites"):
                    self._send(node, r, ("put", op, call["key"], best.to_wire(), True))
            if best is None:
                self._finish(op, Outcome.OK)
            else:
                self._finish(op, Outcome.OK, version=best.version, deleted=best.deleted, value=best.value)

    def _finish(self, op: int, outcome: Outcome, **result) -> None:
        call = self.calls.pop(op, None)
        if call is None:
            return
        self.h.complete(op, outcome, t_ms=self.clock.now_ms, **result)
        if call["then"] is not None:
            call["then"]()

    # -- clients ----------------------------------------------------------------------------

    def _start(self, cop, then=None, client: int = 0) -> int:
        up = [i for i in self.ids if self.faults.running(i)]
        coord = cop.coordinator(up)
        op = self.h.invoke(cop.kind, cop.key, coordinator=coord, quorum=cop.quorum, strict=cop.strict,
                           t_ms=self.clock.now_ms, value=cop.value, client=client)
        call = {"op": op, "coord": coord, "key": cop.key, "quorum": cop.quorum, "then": then,
                "deleted": cop.kind is OpKind.DELETE, "value": cop.value, "replies": {}}
        self.calls[op] = call
        self.clock.call_later(TIMEOUT_MS, self._finish, op, Outcome.UNKNOWN)
        if cop.kind.is_write:
            self._stamp(call)
        else:
            for r in self.replicas(cop.key):
                self._send(coord, r, ("get", op, cop.key))
        return op

    def _client(self, c: int, ops, i: int) -> None:
        if i < len(ops) and self.clock.now_ms < HEAL_MS:
            self._start(ops[i], lambda: self.clock.call_later(ops[i].think_ms, self._client, c, ops, i + 1), c)

    # -- a run ------------------------------------------------------------------------------

    def run(self) -> list[str]:
        for e in self.schedule.events:
            self.clock.call_at(e.t_ms, self._nemesis, e)
        for c, (start, ops) in enumerate(zip(self.workload.starts_ms, self.workload.clients)):
            self.clock.call_at(start, self._client, c, ops, 0)
        keys = self.workload.keys
        for k, cop in enumerate(probes(self.rng, keys, default_r=2, default_w=2)):
            self.clock.call_at(HEAL_MS + BOUND_MS + 100 * k, self._start, cop)
        t_final = HEAL_MS + BOUND_MS + 100 * 2 * len(keys) + TIMEOUT_MS
        finals: dict[str, int] = {}
        for cop in final_reads(keys, n=self.n):
            self.clock.call_at(t_final, self._final_read, cop, finals)
        self.clock.run_until(t_final + 2 * TIMEOUT_MS)
        ops = {o.op: o for o in self.h.operations()}
        final = {k: (Record(o.version, o.deleted, value=o.result or b"") if o.version else None)
                 for k, op in finals.items() for o in [ops[op]] if o.ok}
        return check_system_run(self.h.events, n=self.n, final_reads=final,
                                replica_sets={k: self.replicas(k) for k in keys}, contents=self.store,
                                healed_ms=HEAL_MS, bound_ms=BOUND_MS)

    def _final_read(self, cop, finals: dict) -> None:
        finals[cop.key] = self._start(cop)
