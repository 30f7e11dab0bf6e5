"""The membership state machine's per-op transitions: what each log entry does to a
``ClusterState`` (``core/membership.py``: the state, its rules and ``ClusterState.apply``,
which looks the entry's op up in ``_APPLY`` here). Each transition returns the new state or
raises ``InvalidEntry`` when the entry does not apply (``apply`` then makes it a no-op that
bumps the epoch; ``validate`` runs the same function before a proposal). Pure, like the
rest of ``core/``; the rules they follow are in ``core/membership.py``'s docstring."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Optional

from dynamopy.core import cluster_identity
from dynamopy.core.membership import (CONFIG_KEYS, JOINING, LEAVING, NORMAL, REUSE_AFTER_MS,
                                      RID_WINDOW, ClusterState, InvalidEntry, Member, Settings,
                                      _member_or_404, _require_bootstrapped)
from dynamopy.core.versions import MAX_MEMBER_NUMBER
from ring import Ring


def _require_no_change(s: ClusterState, what: str) -> None:
    if s.change is not None:
        op, mid = s.change
        raise InvalidEntry(409, "conflict",
                           f"cannot {what}: a {op} of {mid} is in progress; retry when it finishes")


def _bootstrap(s: ClusterState, e: Mapping[str, Any]) -> ClusterState:
    if s.bootstrapped:
        raise InvalidEntry(409, "conflict", "cluster already bootstrapped")
    seeds = list(e["members"])
    ids = [m["id"] for m in seeds]
    if not seeds or len(set(ids)) != len(ids):
        raise InvalidEntry(400, "bad_request", "bootstrap needs distinct member ids")
    # An entry from before group sizes: the group stays the seeds.
    settings = Settings(**{"metadata_group_size": len(ids),
                           **{k: e[k] for k in Settings.__slots__ if k in e}})
    if not 1 <= settings.n <= len(ids):
        raise InvalidEntry(400, "bad_request", f"n={settings.n} needs at least {settings.n} seeds")
    _check_rw(settings.n, settings.r, settings.w)
    members = {m["id"]: Member(m["id"], m["url"], m["peer"], i + 1, NORMAL,
                               zone=str(m.get("zone") or ""))
               for i, m in enumerate(seeds)}
    group = tuple(sorted(ids))
    cluster, tokens = cluster_identity.of_value(e)
    return replace(s, members=members, settings=settings, acceptors=group,
                   initial_group=group, group_schedule=((0, group),),
                   ring=Ring.build(ids), next_number=len(ids) + 1,
                   cluster=cluster, seed_tokens=dict(tokens))


def _join(s: ClusterState, e: Mapping[str, Any]) -> ClusterState:
    _require_bootstrapped(s)
    mid, url, peer = e["id"], e["url"], e["peer"]
    existing = s.members.get(mid)
    if existing is not None:
        if existing.url == url and existing.peer == peer:
            raise InvalidEntry(409, "conflict", f"{mid} is already a member ({existing.state})")
        raise InvalidEntry(409, "conflict",
                           f"{mid} is already a member at {existing.url} ({existing.peer})")
    _require_no_change(s, f"join {mid}")
    number, floor_ms = _number_for_join(s, _at_ms(e))
    member = Member(mid, url, peer, number, JOINING, floor_ms, zone=str(e.get("zone") or ""))
    free = {k: v for k, v in s.free_numbers.items() if k != number}
    return replace(s, members={**s.members, mid: member}, pending_ring=s.ring.add(mid),
                   change=("join", mid), change_epoch=s.epoch + 1,
                   next_number=max(s.next_number, number + 1), free_numbers=free)


def _number_for_join(s: ClusterState, at_ms: Optional[int]) -> tuple[int, int]:
    """(member number, clock floor) for a joiner: a new number while any is left, else the
    lowest removed member's number whose reuse time has come (see the module docstring)."""
    if s.next_number <= MAX_MEMBER_NUMBER:
        return s.next_number, 0
    if at_ms is not None:
        ready = [n for n, t in s.free_numbers.items() if t <= at_ms]
        if ready:
            number = min(ready)
            return number, s.free_numbers[number]
    waiting = sorted(s.free_numbers.values())
    when = (f"; the next becomes reusable {max(0, (waiting[0] - at_ms) / 1000):.0f} s from now"
            if waiting and at_ms is not None else "")
    raise InvalidEntry(409, "conflict",
                       f"no member number free: all {MAX_MEMBER_NUMBER} are held or were held by "
                       f"members removed less than {REUSE_AFTER_MS // 1000} s ago{when}")


def _at_ms(e: Mapping[str, Any]) -> Optional[int]:
    """The entry's ``at_ms`` when it carries a usable one (older entries carry none)."""
    at_ms = e.get("at_ms")
    return at_ms if isinstance(at_ms, int) and not isinstance(at_ms, bool) else None


def _release(s: ClusterState, number: int, e: Mapping[str, Any]) -> dict[int, int]:
    """``free_numbers`` after a member holding ``number`` left (only with a known time)."""
    at_ms = _at_ms(e)
    if at_ms is None:
        return dict(s.free_numbers)
    return {**s.free_numbers, number: at_ms + REUSE_AFTER_MS}


def _exit_ms(s: ClusterState, e: Mapping[str, Any]) -> int:
    """``last_exit_ms`` after a member left the ring by ``e`` (unchanged without a time)."""
    at_ms = _at_ms(e)
    return s.last_exit_ms if at_ms is None else max(s.last_exit_ms, at_ms)


def _require_named_change(s: ClusterState, e: Mapping[str, Any], ops: tuple[str, ...],
                          what: str) -> str:
    """The member of the change ``e`` finishes; refuse unless that change is the one in
    progress: same operation, same member, and the same ``change_epoch`` (a member can
    join, be removed and join again; only the epoch tells those changes apart)."""
    mid = e["id"]
    if s.change is None or s.change[0] not in ops or s.change[1] != mid:
        raise InvalidEntry(409, "conflict", f"{mid} is not {what}")
    named = e.get("change_epoch")
    if isinstance(named, bool) or not isinstance(named, int) or named != s.change_epoch:
        raise InvalidEntry(409, "conflict",
                           f"{e.get('op')} names the change at epoch {named!r}; the "
                           f"{s.change[0]} of {mid} in progress began at epoch {s.change_epoch}")
    return mid


def _finish_join(s: ClusterState, e: Mapping[str, Any]) -> ClusterState:
    mid = _require_named_change(s, e, ("join",), "joining")
    m = s.members[mid]
    return replace(s, members={**s.members, mid: replace(m, state=NORMAL)},
                   ring=s.pending_ring, pending_ring=None, change=None)


def _leave(s: ClusterState, e: Mapping[str, Any], op: str = "leave",
           replacing: bool = False) -> ClusterState:
    _require_bootstrapped(s)
    mid = e["id"]
    m = _member_or_404(s, mid)
    # A member of the metadata group may leave too: the metadata leader moves the group to
    # another member (core/metadata_group.py) while it streams its data away.
    # (m is normal: a member joins or leaves only while its own change is in progress)
    _require_no_change(s, f"{op} {mid}")
    if len(s.members) - 1 < s.settings.n:
        hint = (f"; add a member first, then {mid} is replaced and comes back"
                if replacing else "")
        raise InvalidEntry(409, "conflict",
                           f"cannot {op} {mid}: {len(s.members) - 1} members would be fewer "
                           f"than n={s.settings.n}{hint}")
    return replace(s, members={**s.members, mid: replace(m, state=LEAVING)},
                   pending_ring=s.ring.remove(mid), change=(op, mid), change_epoch=s.epoch + 1)


def _finish_leave(s: ClusterState, e: Mapping[str, Any]) -> ClusterState:
    """Switch the ring over; every member the change takes out (one, or several when dead
    members' removals merged) leaves the membership and its number is released."""
    _require_named_change(s, e, ("leave", "remove"), "leaving")
    gone = s.leaving()
    members = {k: v for k, v in s.members.items() if k not in gone}
    free = s
    for mid in gone:
        free = replace(free, free_numbers=_release(free, s.members[mid].number, e))
    return replace(s, members=members, ring=s.pending_ring, pending_ring=None, change=None,
                   merged=(), free_numbers=free.free_numbers, last_exit_ms=_exit_ms(s, e))


def _replace(s: ClusterState, e: Mapping[str, Any]) -> ClusterState:
    """Member ``id`` came back with an empty data directory: retire its old incarnation.

    Its data is gone, so it is removed like a dead member (survivors re-replicate its
    ranges; a join or leave of it in progress is abandoned or becomes the removal), and its
    acceptor role, if it had one, is retired: the new incarnation never votes with the
    empty state. Once removed, the node joins again and streams its ranges back."""
    mid = e["id"]
    _require_bootstrapped(s)
    _member_or_404(s, mid)
    nxt = _remove(s, e, replacing=True)
    if mid in s.acceptors and mid not in s.retired:
        voters = len(s.voters()) - 1
        if voters < len(s.acceptors) // 2 + 1:
            raise InvalidEntry(409, "conflict",
                               f"cannot replace {mid}: only {voters} of the metadata group "
                               f"{list(s.acceptors)} would still vote, fewer than a majority")
        nxt = replace(nxt, retired=s.retired + (mid,))
    return nxt


def _remove(s: ClusterState, e: Mapping[str, Any], replacing: bool = False) -> ClusterState:
    """A dead member leaves like a graceful one, but survivors stream its ranges.

    The member of the change in progress can be removed too (it died mid-change, and only
    it could finish that change): a joiner is dropped and the join abandoned (the ring never
    switched to it); a leaver's leave becomes a removal (survivors supply its ranges). So
    can a *gainer* of a leave or remove (the change waits for it for ever): a removal
    proposed by this version (``"merge": true``) of a gainer of a *removal* joins it
    (:func:`_merge_removal`); otherwise (a graceful leave, or an entry without the flag, as
    older nodes wrote them) the change is abandoned and this removal takes its place. A
    gainer of a *join* is removed the same way, the join abandoned, when the entry carries
    ``"abandons_join": true`` (refused without it, as older nodes did). Any other member is
    refused (409) while a change is in progress."""
    mid = e.get("id")
    if e.get("abandon_join") and (s.change != ("join", mid)
                                  or e.get("change_epoch") != s.change_epoch):
        # A timed-out join (node/joins.py): never remove a member whose join finished.
        raise InvalidEntry(409, "conflict", f"{mid} is no longer joining")
    if s.change == ("join", mid):
        return _drop_joiner(s, e)
    if s.change == ("leave", mid):
        return replace(s, change=("remove", mid))
    if s.change is not None and s.change[0] in ("leave", "remove") and mid in s.gainers():
        if s.change[0] == "remove" and e.get("merge") is True:
            return _merge_removal(s, mid)
        # A gainer of a leave/remove died: the change can never finish (it waits for every
        # gainer). Abandon it (the leaver is a normal member again: it was a replica all
        # along, and writes during the change met W on the current ring, see
        # core.quorum.pending_required) and remove the gainer instead; the leave is
        # re-issued afterwards.
        back = {m: replace(s.members[m], state=NORMAL) for m in s.leaving()}
        s = replace(s, members={**s.members, **back}, pending_ring=None, change=None,
                    merged=())
    if s.change is not None and s.change[0] == "join" and mid in s.gainers():
        # A join waits for every gainer too (found by the simulator, session 15: with N=5 of
        # 7 members a join has a gainer besides the joiner). A removal that says it may
        # (``"abandons_join": true``, which ``Node.propose`` adds) abandons the join as a
        # dead joiner's is abandoned (the ring never switched to the joiner, and every write
        # acknowledged during the join met W on the current ring,
        # ``core.quorum.pending_required``) and removes the gainer in the same entry; the
        # live joiner sees its join gone and joins again (``node/joins.py``,
        # ``join_again_if_abandoned``). An entry without the flag (an older node's) is
        # refused, as it always was, so an old log replays to the same state.
        joiner = s.change[1]
        if e.get("abandons_join") is not True:
            raise InvalidEntry(409, "conflict",
                               f"cannot remove {mid}: a join of {joiner} is in progress and "
                               f"{mid} gains ranges in it, so the join waits for {mid}'s "
                               f"transfer; if {mid} is gone for good, abandon the join first "
                               f"(remove {joiner} with force: the ring never switched to it), "
                               f"then remove {mid}, then restart {joiner} to join again")
        s = _drop_joiner(s, e)
    return _leave(s, e, op="remove", replacing=replacing)


def _drop_joiner(s: ClusterState, e: Mapping[str, Any]) -> ClusterState:
    """Abandon the join in progress: the joiner leaves the membership (its number is
    released like a removed member's) and the pending ring is dropped."""
    joiner = s.change[1]
    members = {k: v for k, v in s.members.items() if k != joiner}
    return replace(s, members=members, pending_ring=None, change=None,
                   free_numbers=_release(s, s.members[joiner].number, e),
                   last_exit_ms=_exit_ms(s, e))


def _merge_removal(s: ClusterState, mid: str) -> ClusterState:
    """Remove dead gainer ``mid`` together with the removal in progress, in one change (see
    "Several dead members" in the module docstring): ``mid`` is leaving too, the pending
    ring loses it as well, and the change gets a new ``change_epoch`` (transfers re-plan;
    a finish naming the old plan is refused)."""
    m = s.members[mid]  # a gainer: a normal member (no join runs beside a removal)
    gone = s.leaving()
    left = len(s.members) - len(gone) - 1
    if left < s.settings.n:
        raise InvalidEntry(409, "conflict",
                           f"cannot remove {mid}: with {', '.join(gone)} being removed too, "
                           f"{left} members would be fewer than n={s.settings.n}")
    return replace(s, members={**s.members, mid: replace(m, state=LEAVING)},
                   pending_ring=s.pending_ring.remove(mid), merged=s.merged + (mid,),
                   change_epoch=s.epoch + 1)


def _check_rw(n: int, r: int, w: int) -> None:
    for name, v in (("r", r), ("w", w)):
        if isinstance(v, bool) or not isinstance(v, int):   # ("2" is not r=2)
            raise InvalidEntry(400, "bad_request", f"{name}={v!r} must be an integer in 1..n={n}")
        if not 1 <= v <= n:
            raise InvalidEntry(400, "bad_request", f"{name}={v} outside 1..n={n}")


def _set_config(s: ClusterState, e: Mapping[str, Any]) -> ClusterState:
    _require_bootstrapped(s)
    unknown = set(e) - {"op", "rid", *CONFIG_KEYS}
    if unknown:
        raise InvalidEntry(400, "bad_request",
                           f"cannot set {sorted(unknown)}: settable are {list(CONFIG_KEYS)}")
    new = replace(s.settings, **{k: e[k] for k in CONFIG_KEYS if k in e})
    _check_rw(new.n, new.r, new.w)
    size = new.metadata_group_size
    if isinstance(size, bool) or size not in (1, 3, 5):
        raise InvalidEntry(400, "bad_request", f"metadata_group_size={size!r} must be 1, 3 or 5")
    for name, kinds, least in (("hint_window_s", (int, float), 0),
                               ("hint_max_bytes", (int,), 0),
                               ("anti_entropy_interval_s", (int, float), 0),
                               ("anti_entropy_rate", (int,), 1)):
        v = getattr(new, name)
        if isinstance(v, bool) or not isinstance(v, kinds) or v < least:
            what = "an integer" if kinds == (int,) else "a number"
            raise InvalidEntry(400, "bad_request", f"{name}={v!r} must be {what} >= {least}")
    g = new.tombstone_grace_s
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not g > 0:
        raise InvalidEntry(400, "bad_request", f"tombstone_grace_s={g!r} must be a number > 0")
    nxt = replace(s, settings=new)
    if (new.r, new.w) != (s.settings.r, s.settings.w):
        r_now, w_now = s.defaults()
        nxt = replace(nxt, rw_in_effect=(max(r_now, new.r), max(w_now, new.w)),
                      config_epoch=s.epoch + 1)
    return nxt


def _finish_config(s: ClusterState, e: Mapping[str, Any]) -> ClusterState:
    """End the transition of the R/W defaults begun by the ``set_config`` at
    ``change_epoch``; refused if none is settling or a later ``set_config`` superseded it."""
    named = e.get("change_epoch")
    if s.rw_in_effect is None:
        raise InvalidEntry(409, "conflict", "no change of the R/W defaults is settling")
    # (a bool is an int, but True == 1 never names one: config_epoch is at least 2)
    if not isinstance(named, int) or named != s.config_epoch:
        raise InvalidEntry(409, "conflict",
                           f"finish_config names the change at epoch {named!r}; the one "
                           f"settling began at epoch {s.config_epoch}")
    return replace(s, rw_in_effect=None)


def _set_group(s: ClusterState, e: Mapping[str, Any], rid: Any) -> ClusterState:
    """A change of the metadata group (``core/metadata_group.py``): applies exactly when
    the Paxos core counts it as one (``group_of``), else a no-op that bumps the epoch."""
    from dynamopy.core import metadata_group as mg
    rids = s.recent_rids if rid is None else (s.recent_rids + (rid,))[-RID_WINDOW:]
    group = mg.group_of(dict(e), s.acceptors) if s.bootstrapped else None
    if group is None:
        return replace(s, epoch=s.epoch + 1, skipped=s.skipped + 1, recent_rids=rids)
    readmitted = set(mg.readmits(dict(e)))
    retired = tuple(a for a in s.retired if a in group and a not in readmitted)
    settings = s.settings
    size = e.get("size")
    if isinstance(size, int) and not isinstance(size, bool) and size in mg.GROUP_SIZES:
        settings = replace(settings, metadata_group_size=size)
    return replace(s, epoch=s.epoch + 1, acceptors=group, retired=retired, settings=settings,
                   group_schedule=mg.schedule_after(s, group), recent_rids=rids)


def _noop(s: ClusterState, e: Mapping[str, Any]) -> ClusterState:
    """A filler slot (a new Paxos leader found it empty): changes nothing but the epoch."""
    return s


_APPLY = {
    "noop": _noop,
    "bootstrap": _bootstrap,
    "join": _join,
    "finish_join": _finish_join,
    "leave": _leave,
    "finish_leave": _finish_leave,
    "remove": _remove,
    "replace": _replace,
    "set_config": _set_config,
    "set_group": lambda s, e: _set_group(s, e, None),
    "finish_config": _finish_config,
}
