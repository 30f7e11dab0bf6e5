"""The system checkers on fabricated histories: a good run passes every checker, and each
broken variant (lost write, divergent replica, stale strict read, repeated version, ack
before sync, short quorum, phantom read, stuck cluster) yields exactly the expected
violation and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field

from dynamopy.core.membership import ClusterState, Settings, bootstrap_entry
from dynamopy.core.records import Record
from dynamopy.sim.history import History, OpKind, Outcome, operations
from dynamopy.sim.system_invariants import (
    check_ack_after_sync, check_convergence, check_liveness, check_no_lost_writes, check_reads_valid,
    check_settled, check_strict_regular, check_system_run, check_versions, check_write_order,
    check_one_value_per_slot, check_wiped_acceptors_never_vote, check_write_quorum,
    excuse_writes_lost_to_wipes, outcomes,
    recovery_ms, replica_sets,
)

PUT, DELETE, GET = OpKind.PUT, OpKind.DELETE, OpKind.GET
OK, FAILED, UNKNOWN = Outcome.OK, Outcome.FAILED, Outcome.UNKNOWN
N = 3
HEALED_MS, BOUND_MS = 1000, 200


@dataclass
class Run:
    h: History
    final_reads: dict
    contents: dict
    replica_sets: dict = field(default_factory=lambda: {k: ("n1", "n2", "n3") for k in ("k1", "k2", "k3")})

    def violations(self) -> list[str]:
        return check_system_run(self.h.events, n=N, final_reads=self.final_reads, replica_sets=self.replica_sets,
                                contents=self.contents, healed_ms=HEALED_MS, bound_ms=BOUND_MS)


def _write(h: History, kind, key, version, *, via, acks, t, w=2, strict=False, value=None, outcome=OK,
           hints=None) -> int:
    """A write stamped ``version`` by ``via``, synced and acked by ``acks``; ``outcome``
    None leaves it in flight."""
    op = h.invoke(kind, key, coordinator=via, quorum=w, strict=strict, t_ms=t, value=value)
    h.stamped(via, op, key, version, t_ms=t)
    for i, node in enumerate(acks):
        h.synced(node, [(key, version)], t_ms=t + 1 + i)
        h.acked(node, op, key, version, t_ms=t + 1 + i, hint_for=(hints or {}).get(node))
    if outcome is not None:
        h.complete(op, outcome, t_ms=t + 5, version=version if outcome is OK else 0)
    return op


def _read(h: History, key, rec, *, via="n1", r=2, strict=False, t, outcome=OK) -> int:
    op = h.invoke(GET, key, coordinator=via, quorum=r, strict=strict, t_ms=t)
    if rec is None:
        h.complete(op, outcome, t_ms=t + 3)
    else:
        h.complete(op, outcome, t_ms=t + 3, version=rec.version, deleted=rec.deleted, value=rec.value)
    return op


def good_run(during_faults=None) -> Run:
    """A run with the hard-but-legal cases: a read overlapping a newer write sees the old
    version; a failed write surfaces later; a write left in flight is the final value; a
    sloppy write counts a fallback's ack; a delete wins; liveness probes succeed.
    ``during_faults(h)`` adds events at 200-900 ms, before healing."""
    h = History()
    a1 = Record(100, value=b"a1")
    _write(h, PUT, "k1", 100, via="n1", acks=["n1", "n2"], t=0, strict=True, value=b"a1")
    _read(h, "k1", a1, strict=True, t=10)
    # A strict read overlapping the put of v200 (invoked before the put completed) sees v100.
    r = h.invoke(GET, "k1", coordinator="n3", quorum=2, strict=True, t_ms=20)
    _write(h, PUT, "k1", 200, via="n2", acks=["n2", "n3"], t=21, strict=True, value=b"a2")
    h.complete(r, OK, t_ms=30, version=100, value=b"a1")
    # k2: a failed write (stored on one replica) surfaces in a later read: indeterminate, legal.
    _write(h, PUT, "k2", 300, via="n3", acks=["n3"], t=40, value=b"b1", outcome=FAILED)
    _read(h, "k2", Record(300, value=b"b1"), r=1, t=50)
    # A sloppy write: n4 stands in for n2 and its ack counts.
    _write(h, PUT, "k3", 400, via="n1", acks=["n1", "n4"], hints={"n4": "n2"}, t=60, value=b"c1")
    h.note("crash n2", t_ms=70)
    # k1 deleted (strict), read back as a tombstone by a strict read.
    _write(h, DELETE, "k1", 500, via="n1", acks=["n1", "n3", "n2"], t=80, w=3, strict=True)
    _read(h, "k1", Record(500, deleted=True), strict=True, r=1, t=90)
    # k2: a put left in flight when the run ended (unknown) is what everyone holds at the end.
    _write(h, PUT, "k2", 600, via="n3", acks=["n3", "n1", "n2"], t=100, value=b"b2", outcome=None)
    if during_faults is not None:
        during_faults(h)
    h.note("heal all", t_ms=HEALED_MS)
    # Liveness probes after healing + bound.
    _write(h, PUT, "k3", 700, via="n2", acks=["n2", "n3", "n1"], t=1250, value=b"c2")
    _read(h, "k3", Record(700, value=b"c2"), t=1260)
    final = {"k1": Record(500, deleted=True), "k2": Record(600, value=b"b2"), "k3": Record(700, value=b"c2")}
    contents = {n: dict(final) for n in ("n1", "n2", "n3")}
    contents["n4"] = {"k3": Record(400, value=b"c1")}  # an old hint copy, not a replica of k3
    return Run(h, final, contents)


def test_a_good_history_passes_every_checker():
    run = good_run()
    assert run.violations() == []
    assert outcomes(run.h.events) == {"delete ok": 1, "get ok": 5, "put failed": 1, "put ok": 4, "put unknown": 1}
    assert recovery_ms(run.h.events, HEALED_MS) == {"write": 255, "read": 263}


def _only(run: Run, prefix: str) -> str:
    v = run.violations()
    assert len(v) == 1 and v[0].startswith(prefix), v
    return v[0]


def test_lost_write():
    run = good_run()
    run.final_reads["k1"] = Record(200, value=b"a2")  # the acknowledged delete v500 is gone
    msg = _only(run, "lost: 'k1'")
    assert "acknowledged delete v500" in msg and "v200" in msg
    assert check_no_lost_writes(run.h.events, run.final_reads) == [msg]


def test_lost_write_at_the_same_version_with_other_content():
    run = good_run()
    run.final_reads["k3"] = Record(700, value=b"other")
    v = run.violations()
    assert any(x.startswith("lost: 'k3'") for x in v) and any(x.startswith("phantom:") for x in v)


def test_a_failed_final_read_cannot_confirm():
    run = good_run()
    del run.final_reads["k3"]
    _only(run, "lost?: 'k3': the final R=N read failed")


def test_divergent_replica():
    run = good_run()
    run.contents["n3"]["k3"] = Record(400, value=b"c1")
    msg = _only(run, "diverge: 'k3'")
    assert "n3 has v400 b'c1'" in msg and "n1 has v700" in msg
    run.contents["n2"].pop("k1")  # none differs from a tombstone
    assert any(x.startswith("diverge: 'k1'") for x in check_convergence(run.replica_sets, run.contents))


def test_stale_strict_read():
    run = good_run()
    # After the strict delete v500 (W=3) completed, a strict read R=1 returns v200.
    _read(run.h, "k1", Record(200, value=b"a2"), strict=True, r=1, t=2000)
    msg = _only(run, "stale strict read")
    assert "returned v200" in msg and "acknowledged v500" in msg
    assert check_strict_regular(run.h.events, N) == [msg]


def test_stale_reads_that_regularity_allows():
    run = good_run()
    h = run.h
    _read(h, "k1", Record(200, value=b"a2"), strict=False, r=1, t=2000)  # not strict
    _write(h, PUT, "k2", 800, via="n1", acks=["n1"], w=1, strict=True, value=b"b3", t=2010)
    _read(h, "k2", Record(600, value=b"b2"), strict=True, r=2, t=2020)  # R+W = N: no overlap promised
    _write(h, PUT, "k2", 900, via="n1", acks=["n1", "n2"], strict=False, value=b"b4", t=2030)
    _read(h, "k2", Record(800, value=b"b3"), strict=True, r=2, t=2040)  # sloppy write: no promise
    assert check_strict_regular(h.events, N) == []


def test_hidden_strict_write():
    """A strict W=2 put acknowledged after the strict delete v500 (W=3) with a smaller
    version: every read would hide it behind the delete."""
    run = good_run()
    _write(run.h, PUT, "k1", 450, via="n4", acks=["n1", "n2"], strict=True, value=b"late", t=2000)
    msg = _only(run, "hidden write: #12 put 'k1' W=2 acknowledged v450")
    assert "below v500 of #7 W=3" in msg
    assert check_write_order(run.h.events, N) == [msg]


def test_write_order_promises_nothing_for_sloppy_or_non_intersecting_writes():
    run = good_run()
    _write(run.h, PUT, "k1", 450, via="n4", acks=["n1", "n2"], strict=False, value=b"late", t=2000)
    _write(run.h, PUT, "k3", 650, via="n4", acks=["n1"], w=1, strict=True, value=b"w1", t=2010)
    _write(run.h, PUT, "k3", 640, via="n5", acks=["n2"], w=1, strict=True, value=b"w2", t=2020)
    assert check_write_order(run.h.events, N) == []


def test_repeated_version_across_nodes():
    run = good_run(lambda h: _write(h, PUT, "k2", 100, via="n4", acks=["n4", "n1"], value=b"x", t=200,
                                    outcome=FAILED))
    msg = _only(run, "repeated version: v100")
    assert "#0 'k1' by n1" in msg and "'k2' by n4" in msg


def test_version_going_backwards_on_one_node():
    run = good_run(lambda h: _write(h, PUT, "k2", 450, via="n1", acks=["n1"], value=b"x", t=200, outcome=FAILED))
    msg = _only(run, "version went backwards: n1 stamped v450")
    assert check_versions(run.h.events) == [msg]


def test_one_version_with_two_contents_in_storage():
    run = good_run()
    run.contents["n4"]["k3"] = Record(700, value=b"c-other")
    v = check_versions(run.h.events, run.contents)
    assert len(v) == 1 and v[0].startswith("repeated version: v700")


def test_ack_before_sync():
    run = good_run()
    h = run.h
    op = h.invoke(PUT, "k3", coordinator="n2", quorum=2, strict=False, t_ms=2000, value=b"c3")
    h.stamped("n2", op, "k3", 800, t_ms=2000)
    h.synced("n2", [("k3", 800)], t_ms=2001)
    h.acked("n2", op, "k3", 800, t_ms=2001)
    h.acked("n3", op, "k3", 800, t_ms=2001)       # acked (another node's sync is no excuse)...
    h.synced("n3", [("k3", 800)], t_ms=2002)      # ...then synced
    h.complete(op, OK, t_ms=2003, version=800)
    run.final_reads["k3"] = Record(800, value=b"c3")
    for n in ("n1", "n2", "n3"):
        run.contents[n]["k3"] = Record(800, value=b"c3")
    msg = _only(run, "ack before sync: n3 acked 'k3' v800")
    assert check_ack_after_sync(run.h.events) == [msg]


def test_a_sync_from_before_a_wipe_does_not_cover_a_later_ack():
    """A wiped disk lost what it had synced: an ack after the wipe needs a new sync."""
    h = History()
    op = h.invoke(PUT, "k", coordinator="n1", quorum=2, strict=False, t_ms=0, value=b"v")
    h.stamped("n1", op, "k", 700, t_ms=1)
    h.synced("n2", [("k", 700)], t_ms=2)
    h.acked("n2", op, "k", 700, t_ms=3)           # fine: synced before
    h.wiped("n2", t_ms=4)
    h.acked("n2", op, "k", 700, t_ms=5)           # the duplicate's ack: its sync is gone
    assert check_ack_after_sync(h.events) == [
        "ack before sync: n2 acked 'k' v700 (#0) at 5ms before any synced batch held it"]
    h.synced("n2", [("k", 700)], t_ms=6)
    h.acked("n2", op, "k", 700, t_ms=7)           # synced again since the wipe: fine
    assert len(check_ack_after_sync(h.events)) == 1


def test_only_a_w1_write_whose_only_copy_was_wiped_is_excused():
    h = History()
    w1 = h.invoke(PUT, "k", coordinator="n1", quorum=1, strict=False, t_ms=0, value=b"a")
    h.stamped("n1", w1, "k", 700, t_ms=1)
    h.synced("n1", [("k", 700)], t_ms=1)
    h.acked("n1", w1, "k", 700, t_ms=1)
    h.complete(w1, OK, t_ms=2, version=700)
    w2 = h.invoke(PUT, "j", coordinator="n1", quorum=1, strict=False, t_ms=3, value=b"b")
    h.stamped("n1", w2, "j", 701, t_ms=3)
    h.synced("n1", [("j", 701)], t_ms=3)
    h.synced("n2", [("j", 701)], t_ms=3)        # a second copy: survives the wipe
    h.acked("n1", w2, "j", 701, t_ms=3)
    h.complete(w2, OK, t_ms=4, version=701)
    w3 = h.invoke(PUT, "i", coordinator="n1", quorum=2, strict=False, t_ms=5, value=b"c")
    h.stamped("n1", w3, "i", 702, t_ms=5)
    h.synced("n1", [("i", 702)], t_ms=5)        # (one copy only: ack-after-sync flags the acks)
    h.complete(w3, OK, t_ms=6, version=702)
    h.wiped("n1", t_ms=7)
    events, excused = excuse_writes_lost_to_wipes(h.events)
    assert excused == {w1}
    assert [o.outcome for o in operations(events)] == [UNKNOWN, OK, OK]
    assert check_no_lost_writes(events, {"k": None, "j": Record(701, value=b"b"), "i": Record(702, value=b"c")}) == []
    assert check_no_lost_writes(h.events, {"k": None, "j": Record(701, value=b"b"), "i": Record(702, value=b"c")}) == [
        "lost: 'k': acknowledged put v700 (#0 via n1 at 2ms), but the final R=N read returns none"]


def test_a_w1_write_whose_only_copy_was_on_a_node_stopped_for_good_is_excused():
    """A node crashed and removed (never started again) loses its disk as a wipe does."""
    h = History()
    w1 = h.invoke(DELETE, "k", coordinator="n4", quorum=1, strict=True, t_ms=0)
    h.stamped("n4", w1, "k", 700, t_ms=1)
    h.synced("n4", [("k", 700)], t_ms=1)
    h.acked("n4", w1, "k", 700, t_ms=1)
    h.complete(w1, OK, t_ms=2, version=700)
    h.wiped("n4", t_ms=7, gone=True)
    events, excused = excuse_writes_lost_to_wipes(h.events)
    assert excused == {w1}
    assert [o.outcome for o in operations(events)] == [UNKNOWN]
    assert "stopped for good" in h.events[-1].text


def test_two_values_for_one_slot_of_the_metadata_log():
    same = {"op": "join", "id": "n5"}
    assert check_one_value_per_slot({1: [(same, "n0")], 2: [(None, "n1")]}) == []
    bad = check_one_value_per_slot({1: [(same, "n0")], 2: [({"op": "leave", "id": "n3"}, "n1"),
                                                         ({"op": "remove", "id": "n4"}, "n2")]})
    assert len(bad) == 1 and bad[0].startswith("metalog: slot 2 holds 2 different values: n1: ")


def test_a_wiped_acceptor_votes_only_after_re_admission():
    ok = [(0, "n2", "vote"), (10, "n2", "wiped"), (20, "n2", "readmitted"), (21, "n2", "vote")]
    assert check_wiped_acceptors_never_vote(ok) == []
    bad = [(0, "n2", "vote"), (10, "n2", "wiped"), (15, "n1", "vote"), (18, "n2", "vote"), (19, "n2", "vote")]
    assert check_wiped_acceptors_never_vote(bad) == [
        "metalog: n2 voted at 18ms with the acceptor state its wipe emptied, before a group change re-admitted it"]


def test_short_quorum_coordinator_hint_counted():
    """The broken variant "a coordinator hint counts toward W": one replica acked, the
    coordinator kept a hint for the other and answered OK with W=2."""
    run = good_run(lambda h: _write(h, PUT, "k2", 800, via="n1", acks=["n2"], w=2, value=b"b3", t=200,
                                    outcome=FAILED))
    assert run.violations() == []  # failed: nothing promised
    run = good_run()
    _write(run.h, PUT, "k2", 800, via="n1", acks=["n2"], w=2, value=b"b3", t=2000)
    run.final_reads["k2"] = Record(800, value=b"b3")
    for n in ("n1", "n2", "n3"):
        run.contents[n]["k2"] = Record(800, value=b"b3")
    msg = _only(run, "short quorum: #")
    assert "with 1 counting acks ['n2']" in msg
    assert check_write_quorum(run.h.events) == [msg]


def test_a_fallback_ack_does_not_count_for_a_strict_write():
    h = History()
    _write(h, PUT, "k", 5, via="n1", acks=["n1", "n4"], hints={"n4": "n2"}, strict=True, value=b"v", t=0)
    v = check_write_quorum(h.events)
    assert len(v) == 1 and "with 1 counting acks ['n1']" in v[0]


def test_an_ack_of_a_superseded_stamp_does_not_count():
    """A re-stamped write must gather W acks of the version it answers with."""
    h = History()
    op = h.invoke(PUT, "k", coordinator="n1", quorum=2, strict=False, t_ms=0, value=b"v")
    h.stamped("n1", op, "k", 10, t_ms=0)
    h.synced("n1", [("k", 10)], t_ms=1)
    h.acked("n1", op, "k", 10, t_ms=1)
    h.stamped("n1", op, "k", 30, t_ms=2)  # n2 holds v20: re-stamp above it
    h.synced("n2", [("k", 30)], t_ms=3)
    h.acked("n2", op, "k", 30, t_ms=3)
    h.complete(op, OK, t_ms=4, version=30)
    assert len(check_write_quorum(h.events)) == 1
    h2 = History()
    h2.events = h.events[:-1]
    h2.synced("n1", [("k", 30)], t_ms=4)
    h2.acked("n1", op, "k", 30, t_ms=4)
    h2.events.append(h.events[-1])
    assert check_write_quorum(h2.events) == []


def test_phantom_read():
    run = good_run()
    _read(run.h, "k2", Record(999, value=b"never"), r=1, t=2000)
    msg = _only(run, "phantom: read #")
    assert "v999" in msg and "no write was given" in msg
    run = good_run()
    _read(run.h, "k2", Record(100, value=b"a1"), r=1, t=2000)  # k1's version under k2
    assert check_reads_valid(run.h.events)[0].endswith("the version of #0 on 'k1'")
    run = good_run()  # a read returning a write that was invoked only after it answered
    _read(run.h, "k3", Record(800, value=b"c3"), r=1, t=2000)
    _write(run.h, PUT, "k3", 800, via="n1", acks=["n1", "n2"], value=b"c3", t=2010, outcome=UNKNOWN)
    assert check_reads_valid(run.h.events) == ["phantom: read #12 of 'k3' returned v800 before #13 was invoked"]


def test_stuck_cluster():
    run = good_run()
    h = run.h
    _write(h, PUT, "k3", 800, via="n2", acks=["n2"], t=1500, value=b"c3", outcome=FAILED)
    op = h.invoke(GET, "k3", coordinator="n1", quorum=2, strict=False, t_ms=1510)  # never answers
    assert op in h.in_flight
    msg = _only(run, "liveness: 2 of 4 operations invoked after 1200ms")
    assert "put 'k3' via n2 failed" in msg and "get 'k3' via n1 unknown" in msg
    assert check_liveness(h.events, healed_ms=HEALED_MS, bound_ms=BOUND_MS) == [msg]


def test_liveness_needs_a_write_and_a_read_after_the_bound():
    run = good_run()
    v = check_liveness(run.h.events, healed_ms=HEALED_MS, bound_ms=300)  # probes at 1250/1260: too early
    assert v == ["liveness: no write was invoked after 1300ms (healed at 1000ms + bound 300ms)",
                 "liveness: no read was invoked after 1300ms (healed at 1000ms + bound 300ms)"]


def test_indeterminate_writes_are_never_required():
    """A failed or unknown write newer than the last acknowledged one need not survive."""
    def faults(h):
        _write(h, PUT, "k3", 800, via="n1", acks=["n1"], value=b"c3", t=200, outcome=FAILED)
        _write(h, PUT, "k3", 900, via="n1", acks=["n1"], value=b"c4", t=210, outcome=UNKNOWN)
    run = good_run(faults)
    assert run.violations() == []


def test_operations_pair_events_and_refuse_malformed_histories():
    h = History()
    a = h.invoke(PUT, "k", coordinator="n1", quorum=2, strict=False, t_ms=0, value=b"v")
    b = h.invoke(GET, "k", coordinator="n2", quorum=1, strict=True, t_ms=1)
    h.complete(a, OK, t_ms=2, version=7)
    c = h.invoke(GET, "k", coordinator="n2", quorum=1, strict=True, t_ms=3)
    ops = {o.op: o for o in h.operations()}
    assert ops[a].precedes(ops[c]) and not ops[a].precedes(ops[b]) and not ops[b].precedes(ops[c])
    assert ops[b].outcome is UNKNOWN and ops[b].end_index is None and ops[a].acknowledged_write
    assert h.in_flight == {b, c}
    for bad in (lambda: h.complete(a, OK, t_ms=4), lambda: h.complete(99, OK, t_ms=4),
                lambda: h.invoke(PUT, "k", coordinator="n1", quorum=1, strict=False, t_ms=5)):
        try:
            bad()
        except ValueError:
            continue
        raise AssertionError("accepted a malformed event")


def test_describe_is_a_readable_trace():
    run = good_run()
    text = run.h.describe()
    lines = text.splitlines()
    assert lines[0] == "       0ms #0 c0 invoke put 'k1' via n1 W=2 strict value=b'a1'"
    assert "       0ms #0 n1 stamps 'k1' v100" in lines
    assert "      62ms #6 n4 acks 'k3' v400 (hint for n2)" in lines
    assert "      93ms #8 get 'k1' ok -> v500 tombstone" in lines
    assert "      70ms -- crash n2" in lines
    only_k2 = run.h.describe(key="k2")
    assert "'k1'" not in only_k2 and "'k2'" in only_k2 and "-- heal all" in only_k2
    assert run.h.describe(limit=3).splitlines()[-1].startswith("... ")


def test_replica_sets_follow_the_ring_and_a_change_must_settle():
    seeds = [{"id": f"n{i}", "url": f"mem://n{i}", "peer": f"n{i}"} for i in range(5)]
    state = ClusterState().apply(bootstrap_entry(seeds, Settings(n=3, r=2, w=2)))
    sets = replica_sets(state, [f"k{i}" for i in range(20)])
    assert all(sets[k] == tuple(state.ring.preference_list(k, 3)) for k in sets)
    assert all(len(set(v)) == 3 for v in sets.values()) and len({v for v in sets.values()}) > 1
    assert check_settled(state) == []
    joining = state.apply({"op": "join", "id": "n5", "url": "mem://n5", "peer": "n5"})
    assert check_settled(joining) == [f"liveness: the join of n5 is still in progress at epoch {joining.epoch} "
                                      "after healing"]
