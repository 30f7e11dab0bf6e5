"""The cluster identity the membership log carries (``core/paxos/identity.py`` says what the
Paxos layer does with it).

The bootstrap entry names each seed's store token (``"token"`` in its member record, from
``GET /node``) and ``"cluster"``: a hash of the (id, token) pairs, so every seed builds the
same entry from the same answers, and a seed that lost its disk (a new store token) builds
a different one. ``ClusterState`` keeps both (``cluster``, ``seed_tokens``) so that a node
that learns the log from a snapshot knows them too. An entry without tokens (from before
identities, or a seed that reports none) names no cluster: a *legacy* log, checked as
before (the Paxos layer takes untagged messages only). Deriving an id from such a slot 0
instead would not work: nodes that learned it from a snapshot taken before this version
could not, and members would disagree on their own identity.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping, Optional

from dynamopy.core.paxos.identity import ClusterTokens, Identity


def cluster_id(tokens: Mapping[str, str]) -> str:
    """The id named by a bootstrap entry whose seeds have these store tokens."""
    text = ";".join(f"{mid}={tokens[mid]}" for mid in sorted(tokens))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def seed_tokens(members: list[Mapping[str, Any]]) -> Optional[dict[str, str]]:
    """{id: token} if every seed reported a store token, else None (a legacy entry)."""
    out = {m["id"]: m.get("token") for m in members}
    if not out or not all(isinstance(t, str) and t for t in out.values()):
        return None
    return out


def of_value(value: Any) -> ClusterTokens:
    """(cluster, {seed: token}) named by a slot-0 value (None, {}: legacy or not a bootstrap)."""
    if not isinstance(value, dict) or value.get("op") != "bootstrap":
        return None, {}
    cluster = value.get("cluster")
    tokens = seed_tokens(list(value.get("members") or ()))
    if not isinstance(cluster, str) or tokens is None:
        return None, {}
    return cluster, tokens


def of_snapshot(data: Any) -> ClusterTokens:
    """(cluster, {seed: token}) kept in a membership snapshot (a ``ClusterState`` dict)."""
    if not isinstance(data, dict) or not isinstance(data.get("cluster"), str):
        return None, {}
    tokens = data.get("seed_tokens")
    return data["cluster"], dict(tokens) if isinstance(tokens, dict) else {}


def identity() -> Identity:
    """The ``Identity`` the running node gives its ``MetaLogNode``."""
    return Identity(of_value, of_snapshot)
