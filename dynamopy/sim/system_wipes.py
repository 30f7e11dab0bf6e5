"""What the run knows about its wiped nodes (the nemesis ``wipe``), read from the
``Recorder``: the time of each wipe (``acceptor_log``) and every metadata-log entry any node
applied, with when it was first applied (``chosen``, ``chosen_ms``).

``check_replacements`` is the run's check that each wiped node came back: a normal member
again, no longer marked ``replacing``, a ``finish_join`` of it applied after its wipe, and,
if it was a member when wiped, a ``replace`` of it applied after the wipe (its old
incarnation retired). A node wiped before any node applied its join held nothing: it may
carry on with that join instead (``ensure_member`` does, when the member it asks does not
list it yet; seed 9013 of the changes runs).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

from .system_probes import Recorder


def wiped_at(rec: Recorder, node_id: str) -> Optional[int]:
    """When ``node_id`` was last wiped (None: never)."""
    times = [t for t, n, what in rec.acceptor_log if n == node_id and what == "wiped"]
    return times[-1] if times else None


def _applied(rec: Recorder, after_ms: int = -1) -> Iterator[tuple[int, dict]]:
    """(first-applied time, entry) of every applied entry, first applied after ``after_ms``."""
    for slot, values in rec.chosen.items():
        t = rec.chosen_ms[slot]
        for value, _node in values:
            if isinstance(value, dict) and t > after_ms:
                yield t, value


def rejoined_after_wipe(rec: Recorder, node_id: str) -> Optional[int]:
    """ms from the node's last wipe to the first ``finish_join`` of it applied after; None
    if it has not rejoined since (or was never wiped)."""
    t_wipe = wiped_at(rec, node_id)
    if t_wipe is None:
        return None
    done = [t for t, e in _applied(rec, t_wipe) if e.get("op") == "finish_join" and e.get("id") == node_id]
    return min(done) - t_wipe if done else None


def member_when_wiped(rec: Recorder, node_id: str) -> bool:
    """``node_id`` was a member at its last wipe: of the entries about it some node had
    applied by then, in log order, the last is the bootstrap or a join listing it (a leave
    keeps it a member until it finishes), not a ``replace``, ``remove`` or ``finish_leave``.
    A node wiped again after its old incarnation's ``replace`` committed, before it joined
    again, held nothing as a member: it comes back by joining (seed 20000 of ``--wipes 2``)."""
    t_wipe = wiped_at(rec, node_id)
    if t_wipe is None:
        return False
    member = False
    for slot in sorted(rec.chosen):
        if rec.chosen_ms[slot] > t_wipe:
            continue
        for e, _node in rec.chosen[slot][:1]:
            if not isinstance(e, dict):
                continue
            op = e.get("op")
            if op == "bootstrap" and any(m.get("id") == node_id for m in e.get("members", ())):
                member = True
            elif e.get("id") == node_id and op in ("join", "replace", "remove", "finish_leave"):
                member = op == "join"
    return member


def replaced_after_wipe(rec: Recorder, node_id: str) -> bool:
    t_wipe = wiped_at(rec, node_id)
    return t_wipe is not None and any(e.get("op") == "replace" and e.get("id") == node_id
                                      for _t, e in _applied(rec, t_wipe))


def replaced_ids(rec: Recorder) -> set[str]:
    """Ids whose old incarnation a committed ``replace`` retired (any time)."""
    return {e["id"] for _t, e in _applied(rec) if e.get("op") == "replace"}


def rejoined_ms(rec: Recorder, wiped: Iterable[str]) -> str:
    """``n2:1889,...``: per wiped node, ms from its wipe to its rejoin ("never" if not)."""
    return ",".join(f"{i}:{'never' if (ms := rejoined_after_wipe(rec, i)) is None else ms}"
                    for i in sorted(wiped)) or "-"


def check_replacements(rec: Recorder, state, nodes: dict, wiped: Iterable[str]) -> list[str]:
    """The module doc's rule for each of ``wiped`` (nodes still meant to be members),
    against the settled ``state`` and the running ``nodes`` by id."""
    out = []
    for i in sorted(wiped):
        m, node = state.member(i), nodes[i]
        if m is None or m.state != "normal" or node.metalog.replacing:
            out.append(f"liveness: {i} was wiped, but after healing it has not come back as a "
                       f"normal member ({'still replacing' if node.metalog.replacing else 'not normal'})")
        if rejoined_after_wipe(rec, i) is None or (member_when_wiped(rec, i) and not replaced_after_wipe(rec, i)):
            out.append(f"replacement: {i} came back from a wiped disk without its old incarnation "
                       "retired (replace) and a new one joined (finish_join) after the wipe")
    return out
