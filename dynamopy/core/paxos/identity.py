"""Cluster identity: which cluster a Paxos message belongs to, and which acceptor state may
vote in it (the wiped only-seed, issue 14).

A seed that starts with an empty data directory cannot tell a first start from a lost disk.
If it bootstraps a cluster of its own (its only seed is itself), the real cluster it was a
member of still lists it, and the two logs share acceptor ids: without a check, its empty
acceptor state could vote in the real log (a forgotten promise or accept lets Paxos choose
two values for one slot). So every cluster has an identity, fixed by its slot 0:

* The bootstrap entry names every seed's *store token* (a random token each store makes up
  the first time it is opened, durable before anyone is told; ``GET /node``) and a
  ``cluster`` id derived from them. The entry stays identical whichever seed builds it.
  ``Identity.of_value`` / ``of_snapshot`` read (cluster, {seed id: token}) from the slot-0
  value / from an app snapshot (slot 0 may be compacted away).
* Rule 1: a node *knows its cluster* once it has learned slot 0 (or installed a snapshot).
  A log whose slot 0 names no cluster (bootstrapped before identities) is *legacy*: its
  cluster is None and it behaves as before (untagged messages only).
* Rule 2: the runtime sends every message with the sender's ``cluster`` (None before it
  learned slot 0). On learning slot 0 the node drops the vote messages it queued before
  (they were made without an identity); chosen values (commits, catch-up) it keeps.
* Rule 3: a node that knows its cluster takes in only messages tagged with it (a legacy
  node: untagged ones), except a ``CatchupRequest``: the chosen log is served to anyone
  (that is how a joiner, which knows no cluster yet, learns it).
* Rule 4: a node that does not know its cluster yet votes, and counts votes, only on
  untagged messages (seeds before the bootstrap). From tagged ones it only learns
  (``Commit``, ``CatchupReply``, a ``Heartbeat``'s commit index).
* Rule 5 (binding): an acceptor state created at a seed's first start (``votes_from == 0``)
  keeps its vote once it knows its cluster only if slot 0 names this store's token: the
  store existed when the bootstrap entry was built, so it still holds every promise and
  accept its id made in that cluster. Otherwise (a wiped seed that learned the log of the
  cluster it was a seed of) the acceptor and the proposer are dropped and the node is a
  learner (``disowned``) until a group change re-admits it (``groups``: incarnation
  tokens). A re-admitted state (``votes_from > 0``) is bound by its incarnation instead.

Why this is safe: a state votes in cluster C only if it was named by C's slot 0 (so it
existed before C's first vote after slot 0, and every later vote in C is tagged C, rule 3)
or was re-admitted by a change of C. Before slot 0 is chosen, all seeds build the same
value, so a wiped seed's lost votes for slot 0 matter only if they could make two different
values chosen; the runtime closes that (``node/bootstrap.py``: a seed that another seed
adopted under another store token never votes before the bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

ClusterTokens = tuple[Optional[str], Mapping[str, str]]


@dataclass(frozen=True)
class Identity:
    """How the app's values name the cluster: ``of_value(slot0_value)`` and
    ``of_snapshot(snapshot_data)`` each give (cluster id or None, {seed id: store token})."""

    of_value: Callable[[Any], ClusterTokens]
    of_snapshot: Callable[[Any], ClusterTokens]
