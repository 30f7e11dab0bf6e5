"""The metadata group (the Paxos acceptors) as part of the membership state: how it changes.

The running node uses the reconfiguration protocol of ``core/paxos/groups.py`` (Lamport's
alpha rule, compare-and-set changes, incarnation tokens); this module is its application
side for the membership state machine. Rules:

* A group change is the log entry ``{"op": "set_group", "group": [ids], "from_group":
  [ids], "readmit": {id: token}, "size": n, "reason": text}``. It applies if and only if
  ``from_group`` is the latest group (compare-and-set: a retried change committed twice,
  or one that lost a race, changes nothing) and ``group`` is a non-empty list of distinct
  ids. That decision is a function of (entry, latest group) alone (``group_of``), so the
  Paxos core (which counts votes by it) and the membership state (which shows it) agree
  on every node: no other validation happens at apply time.
* A change chosen at slot ``s`` decides slots from ``s + ALPHA`` on. ``ALPHA`` is 1: the
  leader then fills one slot at a time (the membership log is low volume), and a change
  takes effect at the very next slot, so a group that lost members is never left to
  decide a tail of slots it can no longer reach.
* ``readmit`` names the incarnation token of each new member that holds no acceptor state
  of its own (every node that did not bootstrap the cluster): only such a change lets it
  vote, and then only from ``s + ALPHA`` on (``groups``: a wiped node never votes with an
  empty state).
* Groups are kept sorted, so "the latest group" compares equal on every node.

Choosing a group (``plan_group``, run by the metadata leader): drop members that left, are
leaving, were removed, were retired (lost their disk) or have been down longer than the
replacement delay; shrink to the target size keeping live members first, then members of
zones not covered yet, then lower member numbers; fill up to the target size with live
``normal`` members, preferring zones the group does not cover yet, then lower member
numbers (the choice depends on the state and the liveness view only: ``_pick``); a
retired member whose new incarnation is back as a ``normal`` member is re-admitted in place
when nobody else is available. The group it chooses is always odd-sized (1, 3 or 5): with too few members for
the target it takes the largest odd size it can fill (2 members give a group of 1, 4 a
group of 3), since an even group of 2k tolerates no more failures than 2k - 1 and needs one
more member up. An operator's explicit group is 1, 3 or 5 members too (the API refuses
others). ``change_problem`` is the 409/503 rule for a change of the group or of its
members, judged on a liveness view given by the caller (pure).
"""

from __future__ import annotations

from typing import (TYPE_CHECKING, Any, Callable, Collection, Iterable, Mapping, Optional,
                    Sequence)

from dynamopy.core.paxos.groups import GroupSchedule, Reconfig, majority

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.core.membership import ClusterState

ALPHA = 1
GROUP_SIZES = (1, 3, 5)


def _group_in(value: Any) -> Optional[tuple[str, ...]]:
    g = value.get("group")
    if not isinstance(g, (list, tuple)) or not g or not all(isinstance(x, str) for x in g):
        return None
    if len(set(g)) != len(g):
        return None
    return tuple(sorted(g))


def group_of(value: Any, latest: Sequence[str]) -> Optional[tuple[str, ...]]:
    """The new group if ``value`` is a ``set_group`` entry that applies after ``latest``."""
    if not isinstance(value, dict) or value.get("op") != "set_group":
        return None
    frm = value.get("from_group")
    if not isinstance(frm, (list, tuple)) or tuple(sorted(map(str, frm))) != tuple(sorted(latest)):
        return None
    return _group_in(value)


def readmits(value: Any) -> Mapping[str, str]:
    r = value.get("readmit") if isinstance(value, dict) else None
    if not isinstance(r, dict):
        return {}
    return {k: v for k, v in r.items() if isinstance(k, str) and isinstance(v, str)}


def schedule_of(data: Any) -> list[tuple[int, tuple[str, ...]]]:
    """The (from_slot, group) changes in effect in a membership snapshot (a state dict)."""
    pairs = data.get("group_schedule") if isinstance(data, dict) else None
    if pairs:
        return [(int(f), tuple(g)) for f, g in pairs]
    # A snapshot from before group changes: the group never changed.
    return [(0, tuple(sorted(data.get("acceptors", ()))))]


def reconfig() -> Reconfig:
    """The ``Reconfig`` the running node gives its ``MetaLogNode``."""
    return Reconfig(ALPHA, group_of, schedule_of, readmits)


def schedule_after(state: "ClusterState", group: Iterable[str]) -> tuple:
    """``state.group_schedule`` after a change chosen at slot ``state.epoch`` (the slot the
    entry being applied occupies), pruned to what slots from there on need."""
    sched = GroupSchedule.from_pairs(state.schedule_pairs(), ALPHA)
    sched = sched.with_change(state.epoch, tuple(group)).pruned(state.epoch + 1)
    return tuple((f, tuple(g)) for f, g in sched.changes)


# ---- choosing a group ------------------------------------------------------------------

def _zone(state: "ClusterState", mid: str) -> str:
    """The zone of member ``mid`` (plan_group asks only about members)."""
    return state.members[mid].zone


def _pick(state: "ClusterState", pool: Iterable[str], count: int, zones: Iterable[str],
          later: Callable[[str], bool] = lambda g: False) -> list[str]:
    """Up to ``count`` members of ``pool``, chosen one at a time: those ``later`` says no to
    first, then one of a zone that neither ``zones`` nor an earlier pick covers, then the
    lowest member number (the order members joined in the log). A function of the state
    alone, never of the order the leader heard from members in: a five-seed bootstrap
    trimmed to three always keeps the same three."""
    pool, zones, out = list(pool), set(zones), []
    while len(out) < count and pool:
        pool.sort(key=lambda g: (later(g), _zone(state, g) in zones, state.members[g].number))
        g = pool.pop(0)
        out.append(g)
        zones.add(_zone(state, g))
    return out


def unfit(state: "ClusterState", down_too_long: Collection[str]) -> list[str]:
    """Group members that must be replaced: not a member any more, leaving, retired (lost
    its disk) or down longer than the replacement delay."""
    out = []
    for g in state.acceptors:
        m = state.members.get(g)
        if m is None or m.state != "normal" or g in state.retired or g in down_too_long:
            out.append(g)
    return out


def plan_group(state: "ClusterState", live: Collection[str], down_too_long: Collection[str],
               target: Optional[int] = None) -> Optional[tuple[str, ...]]:
    """The group the cluster should move to, or None if the current one is right (or no
    better one can be formed). ``live``: members this node sees up."""
    target = target or state.settings.metadata_group_size
    current = tuple(state.acceptors)
    bad = set(unfit(state, down_too_long))
    keep = [g for g in current if g not in bad]
    if len(keep) > target:  # shrink: keep live members, spread over zones, lower numbers
        keep = _pick(state, keep, target, (), lambda g: g not in live)
    candidates = [m.id for m in state.members.values()
                  if m.state == "normal" and m.id in live and m.id not in current]
    keep += _pick(state, candidates, target - len(keep), {_zone(state, g) for g in keep})
    # No live replacement for a leaving member yet: it stays (it still runs and votes until
    # its leave finishes) rather than shrink the group, e.g. from 3 to 2, where one more
    # failure stops the log (system simulator seed 9233).
    for g in current:
        m = state.members.get(g)
        if len(keep) < target and g not in keep and m is not None and m.state == "leaving" \
                and g in live and g not in state.retired and g not in down_too_long:
            keep.append(g)
    # A retired member whose new incarnation is back and normal: re-admit it in place.
    for g in current:
        if len(keep) >= target:
            break
        m = state.members.get(g)
        if g in state.retired and m is not None and m.state == "normal" and g in live \
                and g not in down_too_long:
            keep.append(g)
    if len(keep) % 2 == 0 and keep:
        # Odd sizes only: a group of 2k stops on any k failures, as the group of 2k - 1
        # does, and needs one more member up (a group of 2 stops if either member fails;
        # 1 stops only if that one does). Drop the member the group can best spare: a
        # newcomer before a current member (it holds no acceptor state yet), then one seen
        # down, leaving or retired, then the highest number.
        def spare_last(g):
            m = state.members.get(g)
            return (g not in current, g not in live, m is None or m.state != "normal",
                    g in state.retired, m.number if m is not None else -1)
        keep.sort(key=spare_last)
        keep = keep[:-1]
    new = tuple(sorted(keep))
    if not new or (new == tuple(sorted(current)) and not (set(new) & set(state.retired))):
        return None
    if sum(1 for g in new if g in live) < majority(new):
        return None  # a group without a live majority would stop the log
    return new


def change_problem(state: "ClusterState", live: Collection[str], *,
                   leaving: Optional[str] = None,
                   new_group: Optional[Sequence[str]] = None) -> Optional[tuple[int, str, str]]:
    """(status, code, detail) if a change must be refused, per the contract: 503
    ``no_majority`` if the current group has no live majority (nothing can commit); 409
    ``conflict`` if the change would leave the group without a live majority: ``leaving``
    (a member that leaves or is removed; a live ``normal`` non-member can take its place)
    or an explicit ``new_group``."""
    group = tuple(state.acceptors)
    voting_live = [g for g in group if g in live and g not in state.retired]
    if len(voting_live) < majority(group):
        return (503, "no_majority",
                f"the metadata group {list(group)} has {len(voting_live)} live voting "
                f"members, fewer than a majority ({majority(group)}): nothing can commit "
                "until enough of them are back")
    if leaving is not None and leaving in group:
        rest = [g for g in voting_live if g != leaving]
        spare = [m.id for m in state.members.values() if m.state == "normal"
                 and m.id in live and m.id not in group]
        if len(rest) + (1 if spare else 0) < majority(group):
            return (409, "conflict",
                    f"{leaving} is in the metadata group {list(group)}: without it only "
                    f"{len(rest)} live voting members remain and no live member can take its "
                    f"place, fewer than a majority ({majority(group)}); bring members back "
                    "or add one first")
    if new_group is not None:
        new = tuple(new_group)
        live_new = [g for g in new if g in live and g in state.members
                    and state.members[g].state == "normal"]
        if len(live_new) < majority(new):
            return (409, "conflict",
                    f"the metadata group {sorted(new)} would have {len(live_new)} live "
                    f"members, fewer than a majority ({majority(new)})")
    return None


def leaver_seat_problem(state: "ClusterState", leaver: str,
                        answers: Mapping[str, Mapping[str, Any]]) -> Optional[str]:
    """Why the graceful leave of ``leaver`` must not finish yet (None: it may finish).

    Its ``finish_leave`` is the last thing before the node may be stopped for good (an
    operator decommissions it; the simulator stops it), so a member of the metadata group
    hands its seat over first, as a leaver hands off its hints: finishing while it still
    holds a seat takes a vote away from the group until the metadata leader replaces it,
    and if the group then lacks a voting majority (another member lost its disk and waits
    to be replaced, which needs that very log) nothing commits again, ever (system
    simulator seed 7: group {n1, n2, n3}, n1 wiped, n2 finished its leave and stopped).
    ``answers``: member -> ``{"caught_up", "voting"}`` (``Node.group_token``) of the
    members that answered the leaver just now. The rules:

    * not in the group (the latest group of the state): it may finish;
    * a member outside the group answers as a caught-up ``normal`` member: wait, the
      metadata leader moves the group to such a member (``plan_group`` replaces a
      leaving member by a live one), then it finishes;
    * nobody can take its seat: it finishes only if the other group members that answer
      as voting are a majority of the group (the leader then shrinks the group), as etcd
      refuses a removal that loses the quorum of the members left; otherwise it waits,
      still voting (bring a member back, or add one, and the leader moves the group).
      A member running a version from before ``voting`` (a rolling upgrade) answers
      without it: its ``caught_up`` stands in (a caught-up ``normal`` member that is not
      being replaced); counting it as silent kept every leave of a group member with no
      taker waiting until the rest of the group was upgraded (review 11).
    """
    group = tuple(state.acceptors)
    if leaver not in group:
        return None
    takers = sorted(m for m, a in answers.items() if m not in group and m != leaver
                    and a.get("caught_up") and state.member(m) is not None
                    and state.members[m].state == "normal")
    if takers:
        return (f"{leaver} still holds a seat in the metadata group {list(group)}: waiting for "
                f"the metadata leader to hand it to a live member ({', '.join(takers)})")
    voting = [g for g in group if g != leaver and g not in state.retired
              and _votes(answers.get(g) or {})]
    if len(voting) < majority(group):
        return (f"{leaver} still holds a seat in the metadata group {list(group)} and no live "
                f"member can take it: without it only {len(voting)} members vote, fewer than a "
                f"majority ({majority(group)}); bring a member back or add one")
    return None


def _votes(answer: Mapping[str, Any]) -> bool:
    """Whether a ``group_token`` answer says the member votes; an answer from a version
    before ``voting`` (only ``token`` and ``caught_up``) is judged by ``caught_up``."""
    if "voting" in answer:
        return bool(answer["voting"])
    return bool(answer.get("caught_up"))
