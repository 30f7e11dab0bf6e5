"""Invariant checkers over a finished metadata-log run. Each returns a list of
violation strings (empty = holds), so a run can report every broken rule at once and
tests can feed them fabricated histories.

Inputs:
- ``applied``: every (node, slot, value) any node ever applied, across restarts,
  including the slots a node took over wholesale by installing a snapshot.
- ``final_logs``: node -> its applied values by slot at the end of the run.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

Applied = Iterable[tuple[str, int, Any]]


def check_agreement(applied: Applied) -> list[str]:
    """No two nodes (or one node at two times) applied different values at one slot."""
    first: dict[int, tuple[str, Any]] = {}
    out: list[str] = []
    for node, slot, value in applied:
        seen = first.get(slot)
        if seen is None:
            first[slot] = (node, value)
        elif seen[1] != value:
            out.append(f"agreement: slot {slot}: {seen[0]} applied {seen[1]!r}, {node} applied {value!r}")
    return out


def check_prefix(final_logs: Mapping[str, Sequence[Any]]) -> list[str]:
    """Each node's applied log is a prefix of the longest one."""
    if not final_logs:
        return []
    longest_node = max(sorted(final_logs), key=lambda n: len(final_logs[n]))
    longest = final_logs[longest_node]
    out = []
    for node in sorted(final_logs):
        log = final_logs[node]
        if list(log) != list(longest[: len(log)]):
            bad = next(i for i, (a, b) in enumerate(zip(log, longest)) if a != b)
            out.append(f"prefix: {node} differs from {longest_node} at slot {bad}: {log[bad]!r} vs {longest[bad]!r}")
    return out


def check_no_loss(applied: Applied, final_logs: Mapping[str, Sequence[Any]]) -> list[str]:
    """Every value any node ever applied is, at the same slot, in every final log.
    Only meaningful once every node has caught up (after the liveness phase)."""
    out: list[str] = []
    reported: set[tuple[str, int]] = set()
    for node, slot, value in applied:
        for other in sorted(final_logs):
            log = final_logs[other]
            if (other, slot) in reported:
                continue
            if slot >= len(log) or log[slot] != value:
                reported.add((other, slot))
                have = log[slot] if slot < len(log) else "<missing>"
                out.append(f"lost: {node} applied {value!r} at slot {slot}; {other} has {have!r}")
    return out


def check_at_most_once(final_logs: Mapping[str, Sequence[Any]], effective: Mapping[str, Sequence[str]]) -> list[str]:
    """Each request id takes effect at most once, at its first occurrence in the log:
    ``effective[node]`` (what the app applied) must be the first-occurrence order of the
    request ids in ``final_logs[node]``, without repeats."""
    out = []
    for node in sorted(final_logs):
        expect, seen = [], set()
        for value in final_logs[node]:
            if value is not None and value["rid"] not in seen:
                seen.add(value["rid"])
                expect.append(value["rid"])
        got = list(effective.get(node, ()))
        if len(set(got)) != len(got):
            out.append(f"at-most-once: {node} applied a request id twice")
        if got != expect:
            out.append(f"at-most-once: {node} effective order {got[:5]}... != first occurrences {expect[:5]}...")
    return out


def check_liveness(final_logs: Mapping[str, Sequence[Any]], requests: Iterable[str], converged: bool) -> list[str]:
    """After healing: every node reached the same last slot and every client request is
    in every log, within the bound the run allowed (``converged``)."""
    out = []
    lengths = {n: len(log) for n, log in final_logs.items()}
    if len(set(lengths.values())) > 1:
        out.append(f"liveness: nodes did not reach the same last slot: {dict(sorted(lengths.items()))}")
    for node in sorted(final_logs):
        rids = {v["rid"] for v in final_logs[node] if v is not None}
        missing = sorted(set(requests) - rids)
        if missing:
            out.append(f"liveness: {node} is missing {len(missing)} requests, e.g. {missing[:3]}")
    if not converged and not out:
        out.append("liveness: no convergence within the bound")
    return out


def check_chosen_unique(accepts: Iterable[tuple[str, int, Any, Any]],
                        acceptors: "int | Callable[[int], Sequence[str]]") -> list[str]:
    """Paxos itself: at most one value is chosen per slot, where (slot, ballot, value) is
    chosen once a majority of acceptors durably accepted it. ``accepts`` holds every
    (acceptor, slot, ballot, value) an acceptor ever persisted. Catches a second chosen
    value even if no learner ever learned it. ``acceptors``: their number (a fixed group),
    or the group deciding each slot (a reconfigured log: only its members' votes count)."""
    group_at = acceptors if callable(acceptors) else None
    votes: dict[tuple[int, Any], dict[str, Any]] = {}
    chosen: dict[int, tuple[Any, Any]] = {}
    out: list[str] = []
    for acceptor, slot, ballot, value in accepts:
        if group_at is not None and acceptor not in group_at(slot):
            continue
        quorum = (len(group_at(slot)) if group_at else acceptors) // 2 + 1
        vs = votes.setdefault((slot, ballot), {})
        if acceptor in vs and vs[acceptor] != value:
            out.append(f"chosen: {acceptor} accepted two values at slot {slot} ballot {ballot}")
        vs[acceptor] = value
        same = [a for a, v in vs.items() if v == value]
        if len(same) >= quorum:
            prev = chosen.get(slot)
            if prev is None:
                chosen[slot] = (ballot, value)
            elif prev[1] != value:
                out.append(f"chosen: slot {slot}: {prev[1]!r} at {prev[0]} and {value!r} at {ballot}")
    return out
