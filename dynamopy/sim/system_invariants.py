"""Invariant checkers over a finished system-simulation run (the data path). Like
``sim/invariants.py`` each returns a list of violation strings (empty = holds), so a run
reports every broken rule at once and tests can feed fabricated histories.

Inputs:

* ``events``: the run's history (``sim/history.py``), in the order things happened;
* ``final_reads``: key -> the record an R=N read returned after healing (``None``: no
  record); a key missing from the mapping is a final read that failed;
* ``contents``: node -> key -> the record its storage holds at the end (missing: none);
* ``replica_sets``: key -> the nodes that replicate it in the final ring (e.g. from
  ``dynamopy.core.placement.replicas(state, token).current``).

Indeterminacy, as in Jepsen: a write whose outcome is ``FAILED`` or ``UNKNOWN`` may or may
not have taken effect, so it is never *required* to be visible, but a read may return it.
Only acknowledged (``OK``) writes create obligations. Real-time order is the history's
order: a write *precedes* a read when its completion comes before the read's invocation;
writes overlapping a read may or may not be seen by it.

Tombstones are records: an acknowledged delete is a version like any other, and a newer
tombstone satisfies an older acknowledged put. A run with the default grace ends before any
tombstone may be purged, so no record where a delete was acknowledged is a lost delete. A
run with a short grace (``tombstone_grace_ms``) purges tombstones, each recorded as a
``Purged`` event (the purge found every current replica holding it or newer): no record
then satisfies an acknowledged write only where a tombstone at least as new was purged, so
not where a newer put was acknowledged (:func:`purged_since`); with ``purge=True`` a
tombstone and no record count as the same content across replicas. What a purge must never
do is bring an older live value back (a resurrection, a lost delete): a final read, a
strict read or a replica holding a live record older than an acknowledged delete still
fails (:func:`check_no_lost_writes`, :func:`check_strict_regular`,
:func:`check_convergence`), and :func:`check_no_resurrection` fails any read invoked after
a purge, strict or not, and any node holding at the end, that has a live record of that
key older than the purged tombstone.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping, Optional, Sequence

from dynamopy.core.membership import ClusterState
from dynamopy.core.placement import replicas
from dynamopy.core.records import Record

from .history import (Acked, Complete, Event, Invoke, Operation, OpKind, Outcome, Purged, Stamped, Synced, Wiped,
                      operations)

Contents = Mapping[str, Mapping[str, Record]]


def _show(rec: Optional[Record]) -> str:
    if rec is None:
        return "none"
    if rec.deleted:
        return f"v{rec.version} tombstone"
    v = rec.value if len(rec.value) <= 24 else rec.value[:21] + b"..."
    return f"v{rec.version} {v!r}"


def _matches(op: Operation, rec: Record) -> bool:
    """``rec`` holds what write ``op`` wrote."""
    if op.kind is OpKind.DELETE:
        return rec.deleted
    return not rec.deleted and rec.value == op.value


def _writes_by_version(ops: Sequence[Operation], events: Sequence[Event]) -> dict[int, Operation]:
    """Every version any write was given -> that write (stamps, and acknowledged versions)."""
    by_op = {o.op: o for o in ops}
    out: dict[int, Operation] = {}
    for ev in events:
        if isinstance(ev, Stamped) and ev.op in by_op:
            out.setdefault(ev.version, by_op[ev.op])
    for o in ops:
        if o.acknowledged_write:
            out.setdefault(o.version, o)
    return out


def excuse_writes_lost_to_wipes(events: Sequence[Event]) -> tuple[list[Event], set[int]]:
    """A write acknowledged with W=1 is promised to survive no disk loss: when a wipe
    empties the only disk that had synced it (no other node held it durably then, as data
    or as a hint), its outcome becomes ``UNKNOWN`` (it may or may not be seen) for every
    checker. A node stopped for good and removed (``Wiped.gone``) loses its disk the same
    way: nothing reads it again (seed 2029 of the purge runs with changes: a W=1 delete
    acked by n4 alone while cut off, then n4 removed before anything copied it, anti-entropy
    pausing for a join meanwhile). Returns the events to check and the excused operations.
    A write acked with W of 2 or more is never excused: W nodes synced it before acking,
    and one wipe leaves one."""
    holders: dict[tuple[str, int], set[str]] = {}
    stamped: dict[int, tuple[str, int]] = {}
    quorum: dict[int, int] = {}
    excused: set[int] = set()
    for ev in events:
        if isinstance(ev, Invoke) and ev.kind.is_write:
            quorum[ev.op] = ev.quorum
        elif isinstance(ev, Stamped):
            stamped[ev.op] = (ev.key, ev.version)
        elif isinstance(ev, Synced):
            for item in ev.items:
                holders.setdefault(item, set()).add(ev.node)
        elif isinstance(ev, Wiped):
            for nodes in holders.values():
                nodes.discard(ev.node)
            excused |= {op for op, item in stamped.items() if quorum.get(op) == 1 and not holders.get(item)}
    if not excused:
        return list(events), excused
    out = [dataclasses.replace(ev, outcome=Outcome.UNKNOWN,
                               detail="acked at W=1; its only durable copy was wiped or removed")
           if isinstance(ev, Complete) and ev.op in excused and ev.outcome is Outcome.OK else ev
           for ev in events]
    return out, excused


# -- (a) no acknowledged write is lost ---------------------------------------------------


def purged_since(events: Sequence[Event], key: str, *, before: Optional[int] = None) -> int:
    """The newest tombstone version of ``key`` a purge dropped (among ``events[:before]``),
    0 for none: no record of ``key`` then stands for that tombstone."""
    return max((ev.version for ev in events[:before] if isinstance(ev, Purged) and ev.key == key), default=0)



def check_no_lost_writes(events: Sequence[Event], final_reads: Mapping[str, Optional[Record]]) -> list[str]:
    """After healing, an R=N read of every key returns a version at least the highest
    acknowledged one, and at that version the content that write wrote. No record
    satisfies it only once a tombstone at least as new was purged (a ``Purged`` event:
    nothing newer than that delete was acknowledged); an older live record never does."""
    best: dict[str, Operation] = {}
    for o in operations(events):
        if o.acknowledged_write and (o.key not in best or o.version > best[o.key].version):
            best[o.key] = o
    out = []
    for key in sorted(best):
        w = best[key]
        what = f"acknowledged {w.kind.value} v{w.version} (#{w.op} via {w.coordinator} at {w.end_ms}ms)"
        if key not in final_reads:
            out.append(f"lost?: {key!r}: the final R=N read failed, cannot confirm {what}")
            continue
        rec = final_reads[key]
        if rec is None and purged_since(events, key) >= w.version:
            continue
        if rec is None or rec.version < w.version:
            out.append(f"lost: {key!r}: {what}, but the final R=N read returns {_show(rec)}")
        elif rec.version == w.version and not _matches(w, rec):
            out.append(f"lost: {key!r}: {what}, but v{w.version} now holds {_show(rec)}")
    return out


# -- reads return what some write wrote -------------------------------------------------


def check_reads_valid(events: Sequence[Event],
                      final_reads: Optional[Mapping[str, Optional[Record]]] = None) -> list[str]:
    """Every successful read (and every final read) returns nothing or a record that a
    write on that key, invoked before the read completed, wrote: no value out of thin air,
    no record of another key, no content under another write's version."""
    ops = operations(events)
    by_version = _writes_by_version(ops, events)
    out = []

    def check(label: str, key: str, rec: Record, end_index: float) -> None:
        w = by_version.get(rec.version)
        if w is None:
            out.append(f"phantom: {label} of {key!r} returned {_show(rec)}, which no write was given")
        elif w.key != key:
            out.append(f"phantom: {label} of {key!r} returned {_show(rec)}, the version of #{w.op} on {w.key!r}")
        elif not _matches(w, rec):
            out.append(f"phantom: {label} of {key!r} returned {_show(rec)}, but v{rec.version} is "
                       f"#{w.op}'s {w.kind.value} of {_show(_as_record(w, rec.version))}")
        elif w.start_index > end_index:
            out.append(f"phantom: {label} of {key!r} returned v{rec.version} before #{w.op} was invoked")

    for o in ops:
        if o.ok and o.kind is OpKind.GET and o.version:
            check(f"read #{o.op}", o.key, Record(o.version, o.deleted, value=o.result or b""), o.end_index)
    for key in sorted(final_reads or {}):
        rec = final_reads[key]
        if rec is not None:
            check("the final read", key, rec, float("inf"))
    return out


def _as_record(w: Operation, version: int) -> Record:
    return Record(version, deleted=w.kind is OpKind.DELETE, value=w.value or b"")


# -- (b) replicas converge ---------------------------------------------------------------


def check_convergence(replica_sets: Mapping[str, Sequence[str]], contents: Contents,
                      *, purge: bool = False) -> list[str]:
    """After healing, every current replica of every key holds the same record (same
    version, tombstone flag and value; holding none differs from holding a tombstone,
    unless ``purge``: then some replicas may hold none where the others hold one tombstone,
    whose purge reached only some of them; never none beside a live record)."""
    out = []
    for key in sorted(replica_sets):
        nodes = list(replica_sets[key])
        held = {n: contents.get(n, {}).get(key) for n in nodes}
        records = set(held.values())
        if purge and None in records and len(records) == 2 and all(r is None or r.deleted for r in records):
            continue
        if len(records) > 1:
            shown = ", ".join(f"{n} has {_show(held[n])}" for n in nodes)
            out.append(f"diverge: {key!r}: {shown}")
    return out


def replica_sets(state: ClusterState, keys: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each key's current replicas in ``state`` (its preference list in ``state.ring``),
    the ``replica_sets`` input of :func:`check_convergence`. Asked once no ring change is in
    progress (:func:`check_settled`); a change still pending is not looked at."""
    return {key: replicas(state, state.ring.token(key)).current for key in keys}


def check_settled(state: ClusterState) -> list[str]:
    """After healing, the ring change started during the run (if any) has finished."""
    if state.change is None:
        return []
    op, member = state.change
    return [f"liveness: the {op} of {member} is still in progress at epoch {state.epoch} after healing"]


# -- (c) strict quorums are regular ------------------------------------------------------


def check_strict_regular(events: Sequence[Event], n: int) -> list[str]:
    """A successful ``strict`` read with R returns a version at least that of every
    successful ``strict`` write with W on its key, R + W > N, whose completion precedes
    the read's invocation. Writes overlapping the read may or may not be seen. No record
    satisfies it only when a tombstone at least as new as that write was purged before the
    read completed (an older live record never does)."""
    ops = operations(events)
    writes: dict[str, list[Operation]] = {}
    for o in ops:
        if o.acknowledged_write and o.strict:
            writes.setdefault(o.key, []).append(o)
    out = []
    for r in ops:
        if not (r.ok and r.kind is OpKind.GET and r.strict):
            continue
        due = [w for w in writes.get(r.key, ()) if w.precedes(r) and w.quorum + r.quorum > n]
        if not due:
            continue
        w = max(due, key=lambda o: o.version)
        if r.version == 0 and purged_since(events, r.key, before=r.end_index) >= w.version:
            continue
        if r.version < w.version:
            got = "none" if r.version == 0 else f"v{r.version}" + (" tombstone" if r.deleted else "")
            out.append(
                f"stale strict read: #{r.op} get {r.key!r} R={r.quorum} via {r.coordinator} at {r.start_ms}ms "
                f"returned {got}, but #{w.op} {w.kind.value} W={w.quorum} acknowledged v{w.version} "
                f"at {w.end_ms}ms before it started (N={n})")
    return out


def check_write_order(events: Sequence[Event], n: int) -> list[str]:
    """An acknowledged ``strict`` write is never hidden by an earlier one: if strict write A
    was acknowledged before strict write B on the same key was invoked, and their quorums
    intersect (W_A + W_B > N), B's version is larger than A's (a replica holding A answers
    B with A's version and the coordinator re-stamps above it, whatever the clocks say).
    Sloppy writes promise no such thing (their acks may come from fallbacks)."""
    by_key: dict[str, list[Operation]] = {}
    for o in operations(events):
        if o.acknowledged_write and o.strict:
            by_key.setdefault(o.key, []).append(o)
    out = []
    for key in sorted(by_key):
        ws = by_key[key]
        for b in ws:
            for a in ws:
                if a.precedes(b) and a.quorum + b.quorum > n and b.version <= a.version:
                    out.append(f"hidden write: #{b.op} {b.kind.value} {key!r} W={b.quorum} acknowledged v{b.version} "
                               f"at {b.end_ms}ms, below v{a.version} of #{a.op} W={a.quorum} acknowledged before it "
                               f"started (N={n})")
    return out


# -- (c') a purged delete stays deleted --------------------------------------------------


def check_no_resurrection(events: Sequence[Event], contents: Optional[Contents] = None) -> list[str]:
    """Once a purge dropped a tombstone (a ``Purged`` event: every current replica held it
    or newer), no older live record of that key comes back: every successful read invoked
    after it (strict or not, the final reads included) returns none, a tombstone, or a
    record at least as new as the purged tombstone, and at the end no node (``contents``)
    holds a live record older than it. A live record older than the tombstone is the
    value the delete removed, spread back by a replica, hint or stream that missed it."""
    purged: dict[str, Purged] = {}   # key -> the newest purge so far
    out = []
    ops = operations(events)
    reads_at = {o.start_index: o for o in ops if o.kind is OpKind.GET and o.ok}
    for i, ev in enumerate(events):
        if isinstance(ev, Purged):
            if ev.key not in purged or ev.version > purged[ev.key].version:
                purged[ev.key] = ev
            continue
        r = reads_at.get(i)
        if r is None or r.version == 0 or r.deleted or r.key not in purged:
            continue
        p = purged[r.key]
        if r.version < p.version:
            out.append(f"resurrected: read #{r.op} {r.key!r} R={r.quorum}{' strict' if r.strict else ''} via "
                       f"{r.coordinator} at {r.start_ms}ms returned live v{r.version}, older than the "
                       f"tombstone v{p.version} {p.node} purged at {p.t_ms}ms")
    for node in sorted(contents or {}):
        for key in sorted(contents[node]):
            rec, p = contents[node][key], purged.get(key)
            if p is not None and not rec.deleted and rec.version < p.version:
                out.append(f"resurrected: {node} holds {key!r} {_show(rec)} at the end, older than the "
                           f"tombstone v{p.version} {p.node} purged at {p.t_ms}ms")
    return out


# -- (d) versions never repeat, never go backwards on one node ---------------------------


def check_versions(events: Sequence[Event], contents: Optional[Contents] = None) -> list[str]:
    """Every stamp is a new version (across all writes, keys and nodes); each node's stamps
    increase in the order it made them (across restarts and clock jumps); and wherever a
    version is stored it is one key's one content."""
    out = []
    first: dict[int, Stamped] = {}
    last_by_node: dict[str, Stamped] = {}
    for ev in events:
        if not isinstance(ev, Stamped):
            continue
        prev = first.get(ev.version)
        if prev is not None:
            out.append(f"repeated version: v{ev.version} stamped for #{prev.op} {prev.key!r} by {prev.node} "
                       f"at {prev.t_ms}ms and for #{ev.op} {ev.key!r} by {ev.node} at {ev.t_ms}ms")
        else:
            first[ev.version] = ev
        last = last_by_node.get(ev.node)
        if last is not None and ev.version <= last.version:
            out.append(f"version went backwards: {ev.node} stamped v{ev.version} (#{ev.op}) at {ev.t_ms}ms "
                       f"after v{last.version} (#{last.op}) at {last.t_ms}ms")
        last_by_node[ev.node] = ev
    stored: dict[int, tuple[str, str, Record]] = {}
    contents = contents or {}
    for node in sorted(contents):
        for key in sorted(contents[node]):
            rec = contents[node][key]
            seen = stored.setdefault(rec.version, (node, key, rec))
            if seen[1] != key or seen[2] != rec:
                out.append(f"repeated version: v{rec.version} is {seen[1]!r} {_show(seen[2])} on {seen[0]} "
                           f"but {key!r} {_show(rec)} on {node}")
    return out


# -- (e) a replica acks only what is synced ----------------------------------------------


def check_ack_after_sync(events: Sequence[Event]) -> list[str]:
    """Every ack of (key, version) by a node comes after a synced batch of that node that
    held (key, version). Synced data survives crashes, so any earlier batch will do, unless
    the node's disk was wiped since."""
    synced: dict[str, set[tuple[str, int]]] = {}
    out = []
    for ev in events:
        if isinstance(ev, Wiped):
            synced.pop(ev.node, None)
        elif isinstance(ev, Synced):
            synced.setdefault(ev.node, set()).update(ev.items)
        elif isinstance(ev, Acked) and (ev.key, ev.version) not in synced.get(ev.node, ()):
            out.append(f"ack before sync: {ev.node} acked {ev.key!r} v{ev.version} (#{ev.op}) at {ev.t_ms}ms "
                       f"before any synced batch held it")
    return out


def check_write_quorum(events: Sequence[Event]) -> list[str]:
    """An acknowledged write had W acks of its acknowledged version from distinct nodes
    before it answered; for a ``strict`` write only home replicas' acks count (an ack with
    ``hint_for`` is a fallback's). A coordinator that is itself a replica records an
    ``Acked`` for its own synced write; a coordinator's hint kept for a replica that did not
    answer is no ack at all (it records none)."""
    acks: dict[tuple[int, int], dict[str, Acked]] = {}
    out = []
    by_index = {o.end_index: o for o in operations(events) if o.acknowledged_write}
    for i, ev in enumerate(events):
        if isinstance(ev, Acked):
            acks.setdefault((ev.op, ev.version), {}).setdefault(ev.node, ev)
        elif i in by_index:
            w = by_index[i]
            got = acks.get((w.op, w.version), {})
            counted = sorted(n for n, a in got.items() if not (w.strict and a.hint_for is not None))
            if len(counted) < w.quorum:
                out.append(f"short quorum: #{w.op} {w.kind.value} {w.key!r} W={w.quorum}"
                           f"{' strict' if w.strict else ''} acknowledged v{w.version} at {w.end_ms}ms "
                           f"with {len(counted)} counting acks {counted}")
    return out


# -- (f) liveness after healing ----------------------------------------------------------


def recovery_ms(events: Sequence[Event], healed_ms: int) -> dict[str, Optional[int]]:
    """How long after ``healed_ms`` the first write and the first read invoked after it
    succeeded (None: none did). A figure for reports, not a check."""
    first: dict[str, Optional[int]] = {"write": None, "read": None}
    for o in operations(events):
        kind = "write" if o.kind.is_write else "read"
        if o.ok and o.start_ms >= healed_ms and (first[kind] is None or o.end_ms - healed_ms < first[kind]):
            first[kind] = o.end_ms - healed_ms
    return first


def check_liveness(events: Sequence[Event], *, healed_ms: int, bound_ms: int) -> list[str]:
    """Once every fault is healed (``healed_ms``), the cluster serves again within
    ``bound_ms``: every operation invoked from ``healed_ms + bound_ms`` on succeeds, and
    at least one write and one read were invoked then (otherwise nothing was shown)."""
    since = healed_ms + bound_ms
    late = [o for o in operations(events) if o.start_ms >= since]
    out = []
    for kind, label in ((True, "write"), (False, "read")):
        if not any(o.kind.is_write is kind for o in late):
            out.append(f"liveness: no {label} was invoked after {since}ms (healed at {healed_ms}ms + bound {bound_ms}ms)")
    bad = [o for o in late if not o.ok]
    if bad:
        eg = ", ".join(f"#{o.op} {o.kind.value} {o.key!r} via {o.coordinator} {o.outcome.value}" for o in bad[:3])
        out.append(f"liveness: {len(bad)} of {len(late)} operations invoked after {since}ms "
                   f"(healed at {healed_ms}ms + bound {bound_ms}ms) did not succeed, e.g. {eg}")
    return out


def check_system_run(events: Sequence[Event], *, n: int, final_reads: Mapping[str, Optional[Record]],
                     replica_sets: Mapping[str, Sequence[str]], contents: Contents,
                     healed_ms: int, bound_ms: int, purge: bool = False) -> list[str]:
    """Every checker above, safety first (a run that lost data says so before it says it
    was slow). ``purge``: tombstones may have been purged during the run."""
    v: list[str] = []
    v += check_versions(events, contents)
    v += check_ack_after_sync(events)
    v += check_write_quorum(events)
    v += check_reads_valid(events, final_reads)
    v += check_strict_regular(events, n)
    v += check_write_order(events, n)
    v += check_no_lost_writes(events, final_reads)
    v += check_no_resurrection(events, contents)
    v += check_convergence(replica_sets, contents, purge=purge)
    v += check_liveness(events, healed_ms=healed_ms, bound_ms=bound_ms)
    return v


def check_restored(wiped: Sequence[str], replica_sets: Mapping[str, Sequence[str]],
                   contents: Contents, *, purge: bool = False) -> list[str]:
    """A node that came back from a wiped disk holds its ranges again once the ring change
    settled (before any final read repairs them): for each key it replicates, its record is
    at least as new as the oldest one among the key's other replicas that were never wiped
    (no record counts as the oldest). A replacement that skipped streaming its ranges back
    holds nothing where they hold something. With ``purge`` a tombstone counts as no record
    (its purge may have reached the replacement and not the others)."""
    out = []
    for node in wiped:
        for key in sorted(replica_sets):
            replicas_ = replica_sets[key]
            others = [o for o in replicas_ if o != node and o not in wiped]
            if node not in replicas_ or node not in contents or not others:
                continue
            def version(rec: Optional[Record]) -> int:
                return 0 if rec is None or (purge and rec.deleted) else rec.version
            floor = min(version(contents.get(o, {}).get(key)) for o in others)
            mine = contents[node].get(key)
            if version(mine) < floor:
                out.append(f"restore: {node} came back from a wiped disk but holds {_show(mine)} of {key!r} "
                           f"after the ring settled, older than every other replica ({', '.join(others)}: "
                           f"v{floor} or newer): its ranges were not streamed back")
    return out


# -- the metadata log -------------------------------------------------------------------


def check_one_value_per_slot(chosen: Mapping[int, Sequence[tuple[object, str]]]) -> list[str]:
    """Every node that applied a slot of the metadata log applied the same value: ``chosen``
    maps a slot to its distinct values, each with the first node that applied it."""
    out = []
    for slot in sorted(chosen):
        values = chosen[slot]
        if len(values) > 1:
            shown = "; ".join(f"{node}: {value!r}" for value, node in values[:3])
            out.append(f"metalog: slot {slot} holds {len(values)} different values: {shown}")
    return out


def check_wiped_acceptors_never_vote(log: Sequence[tuple[int, str, str]]) -> list[str]:
    """A node whose disk was wiped votes in the metadata log (promises or accepts) only once a
    group change has re-admitted it (its acceptor state was lost: voting from an empty one
    could choose two values for one slot). ``log``: (t_ms, node, "wiped" | "readmitted" |
    "vote"), in time order."""
    empty: set[str] = set()
    out = []
    for t_ms, node, what in log:
        if what == "wiped":
            empty.add(node)
        elif what == "readmitted":
            empty.discard(node)
        elif what == "vote" and node in empty:
            out.append(f"metalog: {node} voted at {t_ms}ms with the acceptor state its wipe emptied, "
                       "before a group change re-admitted it")
            empty.discard(node)  # once per wipe is enough
    return out


def outcomes(events: Iterable[Event]) -> dict[str, int]:
    """Counts of operation outcomes by kind, e.g. ``{"put ok": 12, "get unknown": 1}``."""
    counts: dict[str, int] = {}
    for o in operations(list(events)):
        k = f"{o.kind.value} {o.outcome.value}"
        counts[k] = counts.get(k, 0) + 1
    return dict(sorted(counts.items()))
