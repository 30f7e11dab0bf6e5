"""The membership state machine: ``state.apply(entry) -> new state``.

The cluster's membership and settings are the result of applying the metadata log's entries
in order, starting from the empty state. Every node applies the same entries in the same
order (the log is agreed with Paxos), and ``apply`` is a pure, deterministic function, so
every node holds the same state at the same epoch.

Rules:

* Entry at log slot ``s`` produces epoch ``s + 1``; an entry that is invalid against the
  state it is applied to is a deterministic no-op that still bumps the epoch (callers
  validate with :func:`validate` before proposing, so this happens only on races).
* Member numbers go into the low bits of versions (10 bits: 1..1023), so no two holders of
  one number may ever issue the same version. A number is new (``next_number``) or the number
  of a removed member, reused under the rule below; a join that finds neither is refused
  with 409 before it is proposed (``validate``), never after.

Reusing a member number (issue 19 item 3). The entry that removes a member (``finish_leave``,
or the ``remove`` that abandons a join) and every ``join`` carry ``at_ms``: the proposer's
hybrid time, the larger of its wall clock and the newest version it has seen. The removed
number becomes reusable at ``at_ms + REUSE_AFTER_MS`` (``free_numbers``); a join takes the
lowest reusable number whose time has come by its own ``at_ms`` (else a new one), and the
new holder's clock starts above that time (``Member.floor_ms``). A duplicate version needs
the old and the new holder to issue the same physical millisecond, so:

* the new holder's versions are all above ``floor_ms`` = removal time + 60 s;
* the old holder's versions are at its own hybrid time, which is within the clock-offset
  bound (``--max-clock-offset-ms``, 500 ms by default; a node beyond it stops issuing) of the
  proposer's, plus the versions it observed (which the proposer's ``at_ms`` covers when it
  saw them too);
* so reuse is safe unless the old holder kept issuing versions for about a minute after its
  removal committed. A removed member is dead (a ``remove``) or has handed its data away and
  stops coordinating when it learns it left (a ``leave``); a process that is cut off from the
  metadata log and still takes writes a minute after its removal is the one case left, and
  numbers are reused lowest first and only when no new number is left (``next_number`` is
  used up first), so that case needs more than 1,022 membership changes as well.

Entries without ``at_ms`` (older logs) free no number: they are never reused.
* At most one ring change (join, leave or remove) is in progress at a time. While one is,
  ``ring`` is the placement reads use, and ``pending_ring`` the placement after the change:
  writes also go to the members the change adds to a key's replicas, and their acks count,
  each one raising the acks a write needs by one (``core.quorum.pending_required``), so W
  copies sit on the replica set after the change whichever way it ends and nothing written
  during the transfer is missed; the ``finish_*`` entry switches ``ring`` over. Who
  replicates a token now and after the change: ``core/placement.py``.
* A ``finish_*`` entry names the change it finishes (``change_epoch``, the epoch at which
  that change began) and is refused for any other: a stale finish from a node that was down
  across an abandoned change and a new one must not finish the new one.
* Several dead members (issue 14). With vnodes every member gains from a removal, so a
  second dead member is a gainer of the first one's removal, which waits for it for ever.
  Abandoning that removal for the second one's (the rule for a graceful leave, below) just
  swaps the roles: the new removal waits for the first dead member. So a ``remove`` of a
  gainer of a *removal* in progress merges into it (:func:`_merge_removal`): the gainer is
  ``leaving`` too (``merged``), ``pending_ring`` loses it as well, and ``change_epoch``
  moves on, so transfers re-plan under the new epoch, replicas refuse writes routed by the
  old plan (``core.placement.check_epoch``), and a ``finish_leave`` naming the old plan is
  refused. ``finish_leave`` then removes every leaving member and releases each one's
  number. A merge that would leave fewer than N members is refused (409). A graceful
  ``leave`` whose gainer dies keeps the older rule: the leave is abandoned, the gainer
  removed, and the (live) leaver leaves again afterwards.
  Only entries that carry ``"merge": true`` merge (``Node.propose`` adds it); a ``remove``
  written by an older node applies as it always did (abandon), so an old log replays to
  the same state. An older node applying a flagged entry would abandon instead: every
  node must run this version before a flagged entry is proposed.
  Why an acknowledged write survives whichever way a merged change ends (W = the write's
  quorum; "holds" = has the write or a newer version):

  - Abandoned (the removals are re-issued later): the ring never switched, and every write
    acknowledged during the change had W acks on the current replica set
    (``core.quorum.pending_required``: W + P acks among the N current replicas and the P
    gainers, so at least W current ones), which is the set reads still use.
  - Finished: take key k with current set C, final set F (the last stage ring), gainers
    G = F \\ C, and D = C \\ F (the members that stop replicating k: removed ones, and
    in a ring re-dealt because it became small, others); |D| = |G| (both sets have N
    members). A write acknowledged before the change or at any stage of it is held by at
    least W members of C (same rule at every stage). At most |D| of those are outside F,
    so at least W - |D| members of F ∩ C hold it and keep it. Every gainer pulls k's
    range from every member that replicated it in C or in any stage ring
    (``stage_rings``, ``core.placement.pull_sources``) and merges newest-wins; the
    driver finishes only after every gainer has pulled, and a source answers a pull only
    after it knows the change's epoch and has synced every write it accepted before (it
    refuses writes routed by an older plan from then on); a stage member that stops
    replicating k keeps its copy until it has handed it to every replica of the state
    (``AntiEntropy.hand_off``), so it still answers the pull. So each gainer holds the
    write as soon as one member it pulls from holds it and answers (a source down longer
    than the transfer's grace is skipped, as for a single removal): then F holds it
    W - |D| + |G| = W times.
  - One live holder is needed: if every member holding the write is being removed, it is
    lost whatever the protocol does (e.g. N = 3, W = 2 and both holders died). A write
    acknowledged at a stage also sits on W members of that stage's set, of which at most
    the later-merged members are removed, so with W >= 2 and one merge a stage write keeps
    a live holder even when both its current holders died; that is why the pull covers the
    stage rings, not only C and F.
* A member that came back with an empty data directory (``replace``) is not the member the
  log knows: its old incarnation is retired like a dead member (``remove``: survivors
  re-replicate its ranges), and if it was in the metadata group its acceptor role is retired
  too (``retired``: listed, never voting again under this id until the group is changed).
  The node then joins again as a new member and streams its ranges back.
* The metadata group (``acceptors``) changes by ``set_group`` entries (``core/metadata_group.py``):
  one applies exactly when the Paxos core counts it as a group change (a function of the
  entry and the latest group alone, compare-and-set on ``from_group``), so the state and
  the protocol agree on every node; ``group_schedule`` carries what a node installing a
  snapshot needs to know which group decides the slots after it. Any member may leave or
  be removed, seeds included: the metadata leader moves the group to other members.
* N and the hash layout are fixed at bootstrap; R, W, hint, anti-entropy, tombstone and
  metadata-group-size settings change by ``set_config`` (the bootstrap entry carries the
  seeds' flags).
* A change of the R/W defaults is not seen by every node at the same instant, so it settles
  in two steps: from the ``set_config`` on, the defaults in effect (:meth:`ClusterState.defaults`)
  are the larger of the old and the new R and W; the ``finish_config`` entry naming that
  ``set_config``'s epoch (proposed once every member has applied it and finished every request
  planned before it) switches to the new values. Any read and write then overlap whenever both
  the old and the new settings have R + W > N.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional

from dynamopy.core import cluster_identity
from dynamopy.core.versions import MAX_MEMBER_NUMBER
from ring import Ring

JOINING, NORMAL, LEAVING = "joining", "normal", "leaving"
CONFIG_KEYS = ("r", "w", "hint_window_s", "hint_max_bytes", "anti_entropy_interval_s",
               "anti_entropy_rate", "tombstone_grace_s", "metadata_group_size")
RID_WINDOW = 1024
REUSE_AFTER_MS = 60_000  # a removed member's number is reusable this long after its removal


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    url: str
    peer: str
    number: int
    state: str = NORMAL
    floor_ms: int = 0  # a reused number: this holder's versions start above this time
    zone: str = ""     # failure-domain label (--zone): the metadata group spreads over zones

    def to_dict(self) -> dict:
        d = {"id": self.id, "url": self.url, "peer": self.peer,
             "number": self.number, "state": self.state}
        if self.floor_ms:
            d["floor_ms"] = self.floor_ms
        if self.zone:
            d["zone"] = self.zone
        return d


@dataclass(frozen=True, slots=True)
class Settings:
    """The cluster's settings, the same on every node at an epoch. The anti-entropy and
    tombstone settings are here, not per node, because the tombstone grace must be one
    number: the first replica purges a tombstone older than *its* grace, and a hint holder
    drops hints older than *its* grace (``core.tombstones``); a holder with a longer grace
    than the purger would deliver a hint the purged tombstone shadowed, and the operator
    rule (back within the grace, or removed) needs one grace to be kept."""
    n: int = 3
    r: int = 2
    w: int = 2
    hint_window_s: float = 3 * 3600.0
    hint_max_bytes: int = 256 * 1024 * 1024
    anti_entropy_interval_s: float = 180.0   # 0: off
    anti_entropy_rate: int = 1000            # keys listed or repaired per second
    tombstone_grace_s: float = 10 * 86400.0
    metadata_group_size: int = 3  # the target size of the metadata group (1, 3 or 5)

    def to_dict(self) -> dict:
        return {"n": self.n, "r": self.r, "w": self.w,
                "hint_window_s": self.hint_window_s, "hint_max_bytes": self.hint_max_bytes,
                "anti_entropy_interval_s": self.anti_entropy_interval_s,
                "anti_entropy_rate": self.anti_entropy_rate,
                "tombstone_grace_s": self.tombstone_grace_s,
                "metadata_group_size": self.metadata_group_size}


class InvalidEntry(ValueError):
    """An entry that cannot apply to this state. ``status``/``code`` follow the REST contract."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass(frozen=True)
class ClusterState:
    epoch: int = 0
    members: Mapping[str, Member] = field(default_factory=dict)
    settings: Settings = Settings()
    # The latest metadata group (core/metadata_group.py): it decides the slots from
    # ``group_schedule``'s last entry on.
    acceptors: tuple[str, ...] = ()
    # Acceptors whose incarnation was retired by a ``replace`` (its disk was wiped): listed
    # in ``acceptors`` but not voting, until a group change drops or re-admits them.
    retired: tuple[str, ...] = ()
    # The group of slot 0 (the seeds, sorted) and the (from_slot, group) changes in effect.
    initial_group: tuple[str, ...] = ()
    group_schedule: tuple = ()
    ring: Optional[Ring] = None
    pending_ring: Optional[Ring] = None
    change: Optional[tuple[str, str]] = None  # (op, member id) in progress
    change_epoch: int = 0  # the epoch at which the change in progress began (its id)
    # Dead gainers whose removal merged into the removal in progress (in merge order): they
    # leave with ``change[1]`` in one change (see "Several dead members" above).
    merged: tuple[str, ...] = ()
    # R/W defaults while a change of them settles (None when settled), and the epoch of the
    # set_config that started the transition (what its finish_config must name).
    rw_in_effect: Optional[tuple[int, int]] = None
    config_epoch: int = 0
    next_number: int = 1
    free_numbers: Mapping[int, int] = field(default_factory=dict)  # number -> reusable at ms
    skipped: int = 0  # entries that applied as no-ops (invalid on arrival)
    recent_rids: tuple[str, ...] = ()  # request ids of the last entries, to drop re-commits
    # The cluster identity slot 0 named, and the seeds' store tokens (core/cluster_identity.py);
    # None / {} for a log bootstrapped before identities.
    cluster: Optional[str] = None
    seed_tokens: Mapping[str, str] = field(default_factory=dict)

    # ---- queries -------------------------------------------------------------------
    @property
    def bootstrapped(self) -> bool:
        return self.ring is not None

    def member(self, member_id: str) -> Optional[Member]:
        return self.members.get(member_id)

    def voters(self) -> tuple[str, ...]:
        """The acceptors that still vote (not retired)."""
        return tuple(a for a in self.acceptors if a not in self.retired)

    def schedule_pairs(self) -> list:
        """The (from_slot, group) changes in effect, the first from slot 0."""
        if self.group_schedule:
            return [(f, tuple(g)) for f, g in self.group_schedule]
        return [(0, tuple(sorted(self.acceptors)))]

    def peers(self) -> dict[str, str]:
        """member id -> peer address."""
        return {m.id: m.peer for m in self.members.values()}

    def defaults(self) -> tuple[int, int]:
        """The (R, W) a request without an explicit quorum uses at this epoch."""
        if self.rw_in_effect is not None:
            return self.rw_in_effect
        return self.settings.r, self.settings.w

    def transfers(self) -> list:
        """The ring.RangeMove list of the change in progress (empty when none)."""
        if self.pending_ring is None:
            return []
        return self.ring.moves(self.pending_ring, self.settings.n)

    def leaving(self) -> tuple[str, ...]:
        """The members the change in progress takes out of the ring: the leaver (or removed
        member) and every removal merged into it; empty for a join or no change."""
        if self.change is None or self.change[0] not in ("leave", "remove"):
            return ()
        return (self.change[1],) + self.merged

    def change_view(self) -> Optional[list]:
        """The change in progress as ``GET /cluster`` shows it: ``[op, member]``, and every
        member of a merged removal after the first (``["remove", "n4", "n5"]``); None."""
        if self.change is None:
            return None
        return [self.change[0], self.change[1], *self.merged]

    def is_removing(self, member_id: str) -> bool:
        """``member_id`` is being removed (dead) in the change in progress."""
        return (self.change is not None and self.change[0] == "remove"
                and member_id in self.leaving())

    def stage_rings(self) -> list:
        """The pending rings the change in progress has had, oldest first, ending with
        ``pending_ring``: one for a plain change; a merged removal adds one per merge (the
        ring without each removed member in turn). Writes acknowledged at any stage sit on
        W members of that stage's replica set, so a gainer also pulls from them."""
        if self.pending_ring is None:
            return []
        if not self.merged:
            return [self.pending_ring]
        out = [self.ring.remove(self.change[1])]
        for mid in self.merged:
            out.append(out[-1].remove(mid))
        return out

    def gainers(self) -> tuple[str, ...]:
        """Members that must receive data before the change in progress can finish."""
        out: set[str] = set()
        for move in self.transfers():
            out.update(move.gained)
        return tuple(sorted(out))

    # ---- transitions ---------------------------------------------------------------
    def apply(self, entry: Mapping[str, Any]) -> "ClusterState":
        """The state after ``entry``; an invalid entry is a no-op that bumps the epoch.

        An entry whose request id (``rid``) was applied recently is a retried proposal that
        committed twice: it is a no-op too (else an old ``set_config`` committing again
        could undo a newer one).
        """
        rid = entry.get("rid")
        if entry.get("op") == "set_group":
            # Decided by (entry, latest group) alone, as the Paxos core decides it: a
            # duplicate of a change is refused by its compare-and-set, not by its rid.
            return _set_group(self, entry, rid)
        if rid is not None and rid in self.recent_rids:
            return replace(self, epoch=self.epoch + 1)
        rids = self.recent_rids if rid is None else (self.recent_rids + (rid,))[-RID_WINDOW:]
        try:
            nxt = _APPLY[entry.get("op")](self, entry)
        except (InvalidEntry, KeyError, TypeError, ValueError):
            return replace(self, epoch=self.epoch + 1, skipped=self.skipped + 1,
                           recent_rids=rids)
        return replace(nxt, epoch=self.epoch + 1, recent_rids=rids)

    # ---- snapshots -----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "members": [m.to_dict() for m in sorted(self.members.values(), key=lambda m: m.number)],
            "settings": self.settings.to_dict(),
            "acceptors": list(self.acceptors),
            "retired": list(self.retired),
            "initial_group": list(self.initial_group),
            "group_schedule": [[f, list(g)] for f, g in self.group_schedule],
            "ring": self.ring.to_dict() if self.ring else None,
            "pending_ring": self.pending_ring.to_dict() if self.pending_ring else None,
            "change": list(self.change) if self.change else None,
            "change_epoch": self.change_epoch,
            **({"merged": list(self.merged)} if self.merged else {}),
            "rw_in_effect": list(self.rw_in_effect) if self.rw_in_effect else None,
            "config_epoch": self.config_epoch,
            "next_number": self.next_number,
            "free_numbers": sorted(self.free_numbers.items()),
            "skipped": self.skipped,
            "recent_rids": list(self.recent_rids),
            **({"cluster": self.cluster, "seed_tokens": dict(self.seed_tokens)}
               if self.cluster else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ClusterState":
        return cls(
            epoch=d["epoch"],
            members={m["id"]: Member(**m) for m in d["members"]},
            settings=Settings(**{"metadata_group_size": len(d["acceptors"]) or 3,
                                 **d["settings"]}),
            acceptors=tuple(d["acceptors"]),
            retired=tuple(d.get("retired", ())),
            initial_group=tuple(d.get("initial_group") or sorted(d["acceptors"])),
            group_schedule=tuple((int(f), tuple(g)) for f, g in d.get("group_schedule", ())),
            ring=Ring.from_dict(d["ring"]) if d["ring"] else None,
            pending_ring=Ring.from_dict(d["pending_ring"]) if d["pending_ring"] else None,
            change=tuple(d["change"]) if d["change"] else None,
            change_epoch=d.get("change_epoch", 0),
            merged=tuple(d.get("merged", ())),
            rw_in_effect=tuple(d["rw_in_effect"]) if d.get("rw_in_effect") else None,
            config_epoch=d.get("config_epoch", 0),
            next_number=d["next_number"],
            free_numbers={int(n): int(t) for n, t in d.get("free_numbers", ())},
            skipped=d.get("skipped", 0),
            recent_rids=tuple(d.get("recent_rids", ())),
            cluster=d.get("cluster"),
            seed_tokens=dict(d.get("seed_tokens") or {}),
        )


def validate(state: ClusterState, entry: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidEntry` if ``entry`` would not apply to ``state``."""
    op = entry.get("op")
    if op not in _APPLY:
        raise InvalidEntry(400, "bad_request", f"unknown operation {op!r}")
    if op == "set_group":
        _validate_set_group(state, entry)
        return
    _APPLY[op](state, entry)


def _validate_set_group(s: ClusterState, e: Mapping[str, Any]) -> None:
    """Before proposing a group change: a group of current ``normal`` members, replacing
    the latest group (apply itself only checks what the Paxos core checks)."""
    from dynamopy.core import metadata_group as mg
    _require_bootstrapped(s)
    group = mg._group_in(dict(e))
    if group is None:
        raise InvalidEntry(400, "bad_request", "metadata_group must be a non-empty list of "
                           "distinct member ids")
    for g in group:
        m = _member_or_404(s, g)
        if m.state != NORMAL and g not in s.acceptors:
            raise InvalidEntry(409, "conflict", f"{g} is {m.state}: only a normal member "
                               "can enter the metadata group")
    if mg.group_of(dict(e), s.acceptors) is None:
        raise InvalidEntry(409, "conflict", f"the metadata group changed meanwhile (it is "
                           f"{list(s.acceptors)}); retry")


def bootstrap_entry(members: list[dict], settings: Settings) -> dict:
    """The slot-0 entry built from the seeds, identical whoever builds it. With every
    seed's store token it names the cluster (``core/cluster_identity.py``)."""
    entry = {"op": "bootstrap", "members": [
        {"id": m["id"], "url": m["url"], "peer": m["peer"],
         **({"zone": m["zone"]} if m.get("zone") else {}),
         **({"token": m["token"]} if m.get("token") else {})} for m in members
    ], **settings.to_dict()}
    tokens = cluster_identity.seed_tokens(members)
    if tokens is not None:
        entry["cluster"] = cluster_identity.cluster_id(tokens)
    return entry


# ---- per-op transitions (raise InvalidEntry when the entry does not apply) ------------

def _require_bootstrapped(s: ClusterState) -> None:
    if not s.bootstrapped:
        raise InvalidEntry(503, "not_ready", "cluster is not bootstrapped")


def _require_no_change(s: ClusterState, what: str) -> None:
    if s.change is not None:
        op, mid = s.change
        raise InvalidEntry(409, "conflict",
                           f"cannot {what}: a {op} of {mid} is in progress; retry when it finishes")


def _member_or_404(s: ClusterState, mid: str) -> Member:
    m = s.members.get(mid)
    if m is None:
        raise InvalidEntry(404, "unknown_member", f"no member {mid!r}")
    return m


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
    number, floor_ms = _number_for_join(s, e.get("at_ms"))
    member = Member(mid, url, peer, number, JOINING, floor_ms, zone=str(e.get("zone") or ""))
    free = {k: v for k, v in s.free_numbers.items() if k != number}
    return replace(s, members={**s.members, mid: member}, pending_ring=s.ring.add(mid),
                   change=("join", mid), change_epoch=s.epoch + 1,
                   next_number=max(s.next_number, number + 1), free_numbers=free)


def _number_for_join(s: ClusterState, at_ms: Any) -> tuple[int, int]:
    """(member number, clock floor) for a joiner: a new number while any is left, else the
    lowest removed member's number whose reuse time has come (see the module docstring)."""
    if s.next_number <= MAX_MEMBER_NUMBER:
        return s.next_number, 0
    if isinstance(at_ms, int) and not isinstance(at_ms, bool):
        ready = [n for n, t in s.free_numbers.items() if t <= at_ms]
        if ready:
            number = min(ready)
            return number, s.free_numbers[number]
    waiting = sorted(s.free_numbers.values())
    when = (f"; the next becomes reusable {max(0, (waiting[0] - at_ms) / 1000):.0f} s from now"
            if waiting and isinstance(at_ms, int) else "")
    raise InvalidEntry(409, "conflict",
                       f"no member number free: all {MAX_MEMBER_NUMBER} are held or were held by "
                       f"members removed less than {REUSE_AFTER_MS // 1000} s ago{when}")


def _release(s: ClusterState, number: int, e: Mapping[str, Any]) -> dict[int, int]:
    """``free_numbers`` after a member holding ``number`` left (only with a known time)."""
    at_ms = e.get("at_ms")
    if not isinstance(at_ms, int) or isinstance(at_ms, bool):
        return dict(s.free_numbers)
    return {**s.free_numbers, number: at_ms + REUSE_AFTER_MS}


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
                   merged=(), free_numbers=free.free_numbers)


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
    older nodes wrote them) the change is abandoned and this removal takes its place. Any
    other member is refused (409) while a change is in progress."""
    mid = e.get("id")
    if e.get("abandon_join") and (s.change != ("join", mid)
                                  or e.get("change_epoch") != s.change_epoch):
        # A timed-out join (node/joins.py): never remove a member whose join finished.
        raise InvalidEntry(409, "conflict", f"{mid} is no longer joining")
    if s.change == ("join", mid):
        members = {k: v for k, v in s.members.items() if k != mid}
        return replace(s, members=members, pending_ring=None, change=None,
                       free_numbers=_release(s, s.members[mid].number, e))
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
    return _leave(s, e, op="remove", replacing=replacing)


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


def left_by_own_leave(before: ClusterState, after: ClusterState, me: str) -> bool:
    """``me`` was a member taken out by its own graceful leave (``members leave``) in
    ``before`` and is no member in ``after``: it left, as an operator asked. A removal (even
    one a leave was abandoned for, or merged into) is not a leave: a removed node that
    comes back joins again (node/bootstrap.py)."""
    return (before.change == ("leave", me) and before.member(me) is not None
            and after.member(me) is None)


def _check_rw(n: int, r: int, w: int) -> None:
    for name, v in (("r", r), ("w", w)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= n:
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
