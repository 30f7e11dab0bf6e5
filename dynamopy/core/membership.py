"""The membership state machine: ``state.apply(entry) -> new state``. This module holds the
state (``ClusterState``, ``Member``, ``Settings``), ``validate`` and ``bootstrap_entry``;
what each op does is in ``core/membership_changes.py`` (the per-op transitions).

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
  gainer of a *removal* in progress merges into it (``membership_changes._merge_removal``):
  the gainer is ``leaving`` too (``merged``), ``pending_ring`` loses it as well, and
  ``change_epoch``
  moves on, so transfers re-plan under the new epoch, replicas refuse writes routed by the
  old plan (``core.placement.check_epoch``), and a ``finish_leave`` naming the old plan is
  refused. ``finish_leave`` then removes every leaving member and releases each one's
  number. A merge that would leave fewer than N members is refused (409). A graceful
  ``leave`` whose gainer dies keeps the older rule: the leave is abandoned, the gainer
  removed, and the (live) leaver leaves again afterwards. A join has gainers besides the
  joiner when N is close to the member count (N=5 of 7): a ``remove`` of one that carries
  ``"abandons_join": true`` (``Node.propose`` adds it) abandons the join, as a dead
  joiner's is abandoned, and begins the gainer's removal in the same entry; the live
  joiner joins again once it sees its join gone. Without the flag it is refused (409).
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
    # When a member last left the ring (the ``at_ms`` of the newest ``finish_leave``, or of a
    # ``remove`` that abandons a join; 0 for none known): it may still hand off old copies
    # for up to the grace after, so no tombstone is purged meanwhile (core/tombstones.py).
    last_exit_ms: int = 0
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
        from dynamopy.core.membership_changes import _APPLY, _set_group
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
            **({"last_exit_ms": self.last_exit_ms} if self.last_exit_ms else {}),
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
            last_exit_ms=int(d.get("last_exit_ms", 0)),
            skipped=d.get("skipped", 0),
            recent_rids=tuple(d.get("recent_rids", ())),
            cluster=d.get("cluster"),
            seed_tokens=dict(d.get("seed_tokens") or {}),
        )


def validate(state: ClusterState, entry: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidEntry` if ``entry`` would not apply to ``state``."""
    from dynamopy.core.membership_changes import _APPLY
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


# ---- shared by validate and the per-op transitions (membership_changes.py) -------------

def _require_bootstrapped(s: ClusterState) -> None:
    if not s.bootstrapped:
        raise InvalidEntry(503, "not_ready", "cluster is not bootstrapped")


def _member_or_404(s: ClusterState, mid: str) -> Member:
    m = s.members.get(mid)
    if m is None:
        raise InvalidEntry(404, "unknown_member", f"no member {mid!r}")
    return m


def left_by_own_leave(before: ClusterState, after: ClusterState, me: str) -> bool:
    """``me`` was a member taken out by its own graceful leave (``members leave``) in
    ``before`` and is no member in ``after``: it left, as an operator asked. A removal (even
    one a leave was abandoned for, or merged into) is not a leave: a removed node that
    comes back joins again (node/bootstrap.py)."""
    return (before.change == ("leave", me) and before.member(me) is not None
            and after.member(me) is None)
