"""How a node in the system simulator asks another one what ``dynamopy serve``'s routes would
answer while it becomes a member: the in-process *contact* of ``node/bootstrap.py``.

A node restarted on a wiped disk runs the production ``ensure_member`` with this contact in
place of ``HttpContact``: it asks the seeds' ``GET /node`` (is the cluster bootstrapped?),
a member's ``GET /cluster`` (the metadata group, and whether the cluster knows its id: then
it is a replacement, ``node/replacement.py``), and ``POST /cluster/members`` to join again.
Each call runs what the route runs (``Node.node_view``, ``api.cluster.cluster_view``,
``check_group_rule`` then ``admit_join``), so nothing of the path is re-implemented here. A
member that is down, paused or cut off from the asking node by the fault state does not
answer (``ContactError``, as a refused or timed-out HTTP request); the join's own handshake
with the joiner goes over the faulty network (``check_joiner``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable

from dynamopy.api.cluster import cluster_view
from dynamopy.api.members import check_group_rule
from dynamopy.node.bootstrap import ContactError
from dynamopy.node.errors import MembershipError, NodeError
from dynamopy.node.joins import admit_join

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.node.runtime import Node

JOIN_TIMEOUT_S = 15.0  # HttpContact's POST /cluster/members timeout


class MemoryContact:
    """The contact of node ``me``: ``nodes()`` are the running nodes by id, and
    ``reachable(a, b)`` says whether a message from ``a`` gets to ``b`` right now."""

    def __init__(self, me: str, nodes: Callable[[], dict[str, "Node"]],
                 reachable: Callable[[str, str], bool]) -> None:
        self.me, self.nodes, self.reachable = me, nodes, reachable

    def _member_at(self, url: str) -> "Node":
        node_id = url.removeprefix("mem://")
        node = self.nodes().get(node_id)
        if node is None or node.stopping or not (self.reachable(self.me, node_id)
                                                 and self.reachable(node_id, self.me)):
            raise ContactError(f"{url} does not answer")
        return node

    async def node_info(self, url: str) -> dict:
        return self._member_at(url).node_view()

    async def cluster_info(self, url: str) -> dict:
        node = self._member_at(url)
        try:
            return cluster_view(node, [])
        except NodeError as e:  # not ready: a 503
            raise ContactError(f"{url}/cluster answered {e.status}") from None

    async def request_join(self, url: str, me: dict) -> tuple[int, dict]:
        node = self._member_at(url)
        entry = {"op": "join", **{k: me[k] for k in ("id", "url", "peer", "zone") if k in me}}
        try:
            check_group_rule(node)
            epoch = await asyncio.wait_for(admit_join(node, entry), JOIN_TIMEOUT_S)
        except MembershipError as e:
            return e.status, {"detail": e.detail}
        except NodeError as e:
            return e.status, {"detail": e.detail}
        except asyncio.TimeoutError:
            raise ContactError(f"{url}/cluster/members did not answer in {JOIN_TIMEOUT_S}s") from None
        return 202, {"epoch": epoch}
