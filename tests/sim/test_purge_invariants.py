"""The checkers on fabricated histories of runs that purge tombstones (``Purged`` events): a
purged delete reads as no record and passes; an older live value coming back after the purge
fails, in a read (strict or not), a final read and a node's contents; no record where a put
newer than the purged tombstone was acknowledged fails; a partly purged tombstone is not a
divergence, a live record beside none is."""

from __future__ import annotations

from dynamopy.core.records import Record
from dynamopy.sim.history import History, OpKind, Outcome
from dynamopy.sim.system_invariants import (check_convergence, check_no_lost_writes, check_no_resurrection,
                                            check_restored, check_strict_regular, check_system_run,
                                            purged_since)

PUT, DELETE, GET = OpKind.PUT, OpKind.DELETE, OpKind.GET
OK, UNKNOWN = Outcome.OK, Outcome.UNKNOWN
N = 3
REPLICAS = ("n1", "n2", "n3")
OLD = Record(100, value=b"old")


def _write(h: History, kind, key, version, *, t, acks=("n1", "n2"), strict=True, value=None, outcome=OK) -> int:
    op = h.invoke(kind, key, coordinator=acks[0], quorum=len(acks), strict=strict, t_ms=t, value=value)
    h.stamped(acks[0], op, key, version, t_ms=t)
    for node in acks:
        h.synced(node, [(key, version)], t_ms=t + 1)
        h.acked(node, op, key, version, t_ms=t + 1)
    h.complete(op, outcome, t_ms=t + 5, version=version if outcome is OK else 0)
    return op


def _read(h: History, key, rec, *, t, r=2, strict=True) -> int:
    op = h.invoke(GET, key, coordinator="n1", quorum=r, strict=strict, t_ms=t)
    if rec is None:
        h.complete(op, OK, t_ms=t + 3)
    else:
        h.complete(op, OK, t_ms=t + 3, version=rec.version, deleted=rec.deleted, value=rec.value)
    return op


def _purge(h: History, key, version, *, t, nodes=REPLICAS) -> None:
    for node in nodes:
        h.purged(node, key, version, t_ms=t)


def _deleted_then_purged(purge: bool = True) -> History:
    """k1: a put (v100), a delete (v200) both acknowledged by strict W=2, the delete's
    tombstone purged on every replica at 3000 ms (``purge``)."""
    h = History()
    _write(h, PUT, "k1", 100, t=0, value=b"old")
    _write(h, DELETE, "k1", 200, t=100)
    _read(h, "k1", Record(200, deleted=True), t=200)
    if purge:
        _purge(h, "k1", 200, t=3000)
    return h


def _safety(h: History, final_reads: dict, contents: dict, *, purge: bool = True) -> list[str]:
    """Every checker of a run but liveness (these histories have no probes)."""
    v = check_system_run(h.events, n=N, final_reads=final_reads, replica_sets={"k1": REPLICAS},
                         contents=contents, healed_ms=4000, bound_ms=100, purge=purge)
    return [x for x in v if not x.startswith("liveness:")]


def test_a_purged_delete_reads_as_no_record_and_passes():
    h = _deleted_then_purged()
    _read(h, "k1", None, t=3100)                    # strict R=2 after the purge: none
    _read(h, "k1", None, t=3200, r=1, strict=False)
    assert _safety(h, {"k1": None}, {}) == []


def test_without_a_purge_no_record_is_still_a_lost_delete():
    """The default grace: nothing was purged, so none where a delete was acknowledged is a
    lost delete (the rule the checkers had before), whatever ``purge`` says."""
    h = _deleted_then_purged(purge=False)
    _read(h, "k1", None, t=3100)
    v = _safety(h, {"k1": None}, {})
    assert len(v) == 2 and v[0].startswith("stale strict read: #3 get 'k1'") and "returned none" in v[0]
    assert v[1].startswith("lost: 'k1': acknowledged delete v200") and v[1].endswith("returns none")
    assert purged_since(h.events, "k1") == 0


def test_a_resurrected_older_value_fails_in_reads_final_reads_and_contents():
    h = _deleted_then_purged()
    _read(h, "k1", OLD, t=3100, r=1, strict=False)   # a sloppy read after the purge: still a resurrection
    _read(h, "k1", OLD, t=3200)                      # and a strict one
    v = _safety(h, {"k1": OLD}, {"n1": {}, "n2": {}, "n3": {"k1": OLD}})
    assert [x.split(":")[0] for x in v] == ["stale strict read", "lost", "resurrected", "resurrected",
                                             "resurrected", "diverge"], v
    assert "read #3 'k1' R=1 via n1 at 3100ms returned live v100, older than the tombstone v200 n1 purged" in v[2]
    assert v[4].startswith("resurrected: n3 holds 'k1' v100 b'old' at the end, older than the tombstone v200")
    assert "n1 has none, n2 has none, n3 has v100 b'old'" in v[5]


def test_a_stale_read_before_the_purge_is_no_resurrection():
    """A sloppy R=1 read may return the older value while a replica still lacks the delete
    (legal without purges too); only reads invoked after the purge are held to it."""
    h = History()
    _write(h, PUT, "k1", 100, t=0, value=b"old")
    _write(h, DELETE, "k1", 200, t=100)
    _read(h, "k1", OLD, t=200, r=1, strict=False)
    read = h.invoke(GET, "k1", coordinator="n3", quorum=1, strict=False, t_ms=2990)
    _purge(h, "k1", 200, t=3000)                     # the purge lands while that read is in flight
    h.complete(read, OK, t_ms=3001, version=100, value=b"old")
    assert check_no_resurrection(h.events) == []
    _read(h, "k1", OLD, t=3100, r=1, strict=False)
    assert len(check_no_resurrection(h.events)) == 1


def test_no_record_where_a_newer_put_was_acknowledged_fails():
    h = _deleted_then_purged()
    _write(h, PUT, "k1", 300, t=3500, value=b"new")
    _read(h, "k1", None, t=3600)
    v = _safety(h, {"k1": None}, {})
    assert len(v) == 2, v
    assert v[0].startswith("stale strict read: #4 get 'k1' R=2 via n1 at 3600ms returned none, but #3 put W=2 "
                           "acknowledged v300")
    assert v[1].startswith("lost: 'k1': acknowledged put v300") and v[1].endswith("returns none")


def test_a_purge_after_the_read_does_not_excuse_its_no_record():
    """None satisfies a strict read only if the tombstone was purged before the read
    completed (until then some replica must have held it)."""
    h = _deleted_then_purged(purge=False)
    _read(h, "k1", None, t=2000)
    _purge(h, "k1", 200, t=3000)
    assert len(check_strict_regular(h.events, N)) == 1


def test_a_purged_unacknowledged_delete_covers_an_older_acknowledged_put():
    """A delete whose client heard nothing (UNKNOWN) may have taken effect; once its
    tombstone was purged, none is what an R=N read returns."""
    h = History()
    _write(h, PUT, "k1", 100, t=0, value=b"old")
    _write(h, DELETE, "k1", 200, t=100, outcome=UNKNOWN)
    _purge(h, "k1", 200, t=3000)
    _read(h, "k1", None, t=3100, r=3)
    assert check_no_lost_writes(h.events, {"k1": None}) == []
    assert check_strict_regular(h.events, N) == []
    # a purge of an older tombstone does not: the put is newer
    h2 = History()
    _write(h2, DELETE, "k1", 50, t=0)
    _write(h2, PUT, "k1", 100, t=10, value=b"old")
    _purge(h2, "k1", 50, t=3000)
    assert len(check_no_lost_writes(h2.events, {"k1": None})) == 1


def test_a_partly_purged_tombstone_is_not_a_divergence_but_a_live_record_beside_none_is():
    tomb = Record(200, deleted=True)
    partly = {"n1": {}, "n2": {"k1": tomb}, "n3": {}}
    assert check_convergence({"k1": REPLICAS}, partly, purge=True) == []
    assert len(check_convergence({"k1": REPLICAS}, partly)) == 1          # the default grace: none != tombstone
    two_tombs = {"n1": {}, "n2": {"k1": tomb}, "n3": {"k1": Record(300, deleted=True)}}
    assert len(check_convergence({"k1": REPLICAS}, two_tombs, purge=True)) == 1
    live = {"n1": {}, "n2": {"k1": tomb}, "n3": {"k1": OLD}}
    assert len(check_convergence({"k1": REPLICAS}, live, purge=True)) == 1


def test_a_replacement_whose_copy_of_a_tombstone_was_purged_is_restored():
    tomb = Record(200, deleted=True)
    contents = {"n1": {}, "n2": {"k1": tomb}, "n3": {"k1": tomb}}
    assert check_restored(["n1"], {"k1": REPLICAS}, contents, purge=True) == []
    assert len(check_restored(["n1"], {"k1": REPLICAS}, contents)) == 1
    live = {"n1": {}, "n2": {"k1": OLD}, "n3": {"k1": OLD}}
    assert len(check_restored(["n1"], {"k1": REPLICAS}, live, purge=True)) == 1
