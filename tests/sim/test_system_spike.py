"""A first whole-node run of the system simulator's pieces (a spike, not the run loop):
three production ``Node``s on the in-memory seams, a seeded nemesis (crashes with restarts,
loss, delay, reordering, partitions) folded into a ``FaultState`` that drives the network
through ``NetFates``, a seeded workload recorded in a ``History``, then healing, probes and
final R=N strict reads.

Only the client-level checkers run here (no lost acknowledged write, strict regularity,
write order, convergence, liveness): the node-side events (stamps, syncs, acks) need the
hooks ``docs/sim-system.md`` describes, so ``check_write_quorum``, ``check_ack_after_sync``,
``check_versions`` and ``check_reads_valid`` have nothing to look at yet."""

from __future__ import annotations

import asyncio
import random

from dynamopy.node.errors import NodeError
from dynamopy.peer.errors import PeerError
from dynamopy.sim.clock import run_virtual
from dynamopy.sim.fault_state import FaultState
from dynamopy.sim.history import History, OpKind, Outcome
from dynamopy.sim.inprocess import InProcessCluster
from dynamopy.sim.nemesis import FaultKind, NemesisParams, generate as generate_schedule, parse_kinds
from dynamopy.sim.net_fates import NetFates
from dynamopy.sim.system_invariants import (
    check_convergence, check_liveness, check_no_lost_writes, check_strict_regular, check_write_order,
    replica_sets,
)
from dynamopy.sim.workload import WorkloadParams, final_reads, generate as generate_workload, probes

IDS = ["n1", "n2", "n3"]
N, HEAL_MS, BOUND_MS, CLIENT_TIMEOUT_S = 3, 8000, 6000, 3.0


def _run(seed: int, kinds: str = "crash,loss,delay,reorder,partition", faults: int = 6):
    root = random.Random(seed)
    schedule = generate_schedule(random.Random(root.getrandbits(64)), NemesisParams(
        nodes=tuple(IDS), fixed=tuple(IDS), duration_ms=HEAL_MS, faults=faults, changes=0,
        kinds=parse_kinds(kinds), max_loss=0.2, max_delay_ms=100, max_clock_jump_ms=5000))
    workload = generate_workload(random.Random(root.getrandbits(64)), WorkloadParams(
        clients=3, ops_per_client=15, keys=3, replication_n=N, max_think_ms=200))
    net_rng, probe_rng = random.Random(root.getrandbits(64)), random.Random(root.getrandbits(64))
    h = History()
    world = {"faults": FaultState()}

    async def main():
        from dynamopy.sim.transport import MemoryNetwork

        loop = asyncio.get_running_loop()
        now_ms = lambda: int(loop.time() * 1000)  # noqa: E731
        cluster = InProcessCluster(IDS, seed=seed, n=N, network=MemoryNetwork(
            delay_s=NetFates(net_rng, lambda: world["faults"])))
        await cluster.start_all()
        t0 = loop.time()
        at = lambda ms: max(t0 + ms / 1000 - loop.time(), 0)  # noqa: E731

        async def nemesis():
            for e in schedule.events:
                await asyncio.sleep(at(e.t_ms))
                before = world["faults"]
                world["faults"] = after = before.apply(e)
                h.note(e.text, t_ms=now_ms())
                for node in IDS:
                    cluster.clocks[node].offset_ms = after.clock_offset_ms(node)
                    if before.running(node) and not after.running(node):
                        await cluster.crash(node)
                    elif not before.running(node) and after.running(node):
                        await cluster.start(node)

        async def one(cop, client: int):
            up = [i for i in IDS if world["faults"].running(i)]
            coord = cop.coordinator(up)
            co = cluster.coordinator(coord)
            op = h.invoke(cop.kind, cop.key, coordinator=coord, quorum=cop.quorum, strict=cop.strict,
                          t_ms=now_ms(), value=cop.value, client=client)
            try:
                if cop.kind.is_write:
                    version, _ = await asyncio.wait_for(co.write(
                        cop.key.encode(), value=cop.value or b"", content_type="application/octet-stream",
                        deleted=cop.kind is OpKind.DELETE, w=cop.quorum, sloppy=not cop.strict), CLIENT_TIMEOUT_S)
                    h.complete(op, Outcome.OK, t_ms=now_ms(), version=version)
                else:
                    rec = await asyncio.wait_for(co.read(cop.key.encode(), r=cop.quorum, sloppy=not cop.strict),
                                                 CLIENT_TIMEOUT_S)
                    if rec is None:
                        h.complete(op, Outcome.OK, t_ms=now_ms())
                    else:
                        h.complete(op, Outcome.OK, t_ms=now_ms(), version=rec.version, deleted=rec.deleted,
                                   value=rec.value)
            except (NodeError, PeerError) as e:
                h.complete(op, Outcome.FAILED, t_ms=now_ms(), detail=type(e).__name__)
            except (asyncio.TimeoutError, asyncio.CancelledError, RuntimeError) as e:
                h.complete(op, Outcome.UNKNOWN, t_ms=now_ms(), detail=type(e).__name__)
            return op

        async def client(c: int, start_ms: int, ops):
            await asyncio.sleep(at(start_ms))
            for cop in ops:
                if now_ms() - int(t0 * 1000) >= HEAL_MS - 1000:
                    return
                await one(cop, c)
                await asyncio.sleep(cop.think_ms / 1000)

        await asyncio.gather(nemesis(), *(client(c, s, ops) for c, (s, ops) in
                                          enumerate(zip(workload.starts_ms, workload.clients))))
        await asyncio.sleep(at(HEAL_MS + BOUND_MS))
        for cop in probes(probe_rng, workload.keys, default_r=2, default_w=2):
            await one(cop, 99)
        finals = {cop.key: await one(cop, 100) for cop in final_reads(workload.keys, n=N)}
        await asyncio.sleep(2)  # read repair of the final reads lands
        state = cluster.node("n1").state
        contents = {}
        for i in IDS:
            store = cluster.node(i).store
            contents[i] = {k: rec for k in workload.keys
                           if (rec := store.get(state.ring.token(k.encode()), k.encode())) is not None}
        await cluster.stop_all()
        return finals, contents, state, int(t0 * 1000)

    finals, contents, state, t0_ms = run_virtual(main())
    ops = {o.op: o for o in h.operations()}
    from dynamopy.core.records import Record
    final = {k: (Record(o.version, o.deleted, value=o.result or b"") if o.version else None)
             for k, op in finals.items() for o in [ops[op]] if o.ok}
    violations = (check_no_lost_writes(h.events, final) + check_strict_regular(h.events, N)
                  + check_write_order(h.events, N)
                  + check_convergence(replica_sets(state, workload.keys), contents)
                  + check_liveness(h.events, healed_ms=t0_ms + HEAL_MS, bound_ms=BOUND_MS))
    return violations, h, schedule


HARSH = "crash,loss,delay,reorder,partition,one_way,clock_jump"


def test_real_nodes_under_a_seeded_nemesis_pass_the_client_level_checkers():
    # seed 0 crashes n1, n2, n3 in turn; seed 3 partitions n1 away and crashes n3; the third
    # run adds one-way partitions and clock jumps of up to 5 s (NodeClock.offset_ms).
    for seed, kinds, faults in ((0, None, 6), (3, None, 6), (5, HARSH, 10)):
        violations, h, schedule = _run(seed, kinds or "crash,loss,delay,reorder,partition", faults)
        assert violations == [], (seed, violations, schedule.describe())
        ops = h.operations()
        assert sum(o.ok for o in ops) > 40 and any(f.kind is FaultKind.CRASH for f in schedule.faults)
        assert [e.text for e in schedule.events][-1].startswith("heal all")


def test_a_whole_node_run_replays_exactly_from_its_seed():
    a, b = _run(3), _run(3)
    assert a[1].events == b[1].events and a[0] == b[0]
