"""Becoming a member: bootstrap a fresh cluster from ``--seeds``, or join a running one.

* Seeds: every seed asks every seed URL for its identity (id, HTTP URL, peer address); the
  seeds, in ``--seeds`` order, are the metadata group (the Paxos acceptors). The elected
  leader proposes the bootstrap entry for slot 0, built from those identities and the
  settings, so it is identical whoever proposes it; a duplicate applies as a no-op.
* Join (``--join URL``, or ``--seeds`` that do not name this node): learn the metadata group
  from the member at URL, start as a learner, and ask the member to propose ``join``. The
  node catches up from the log, sees itself ``joining``, pulls its ranges (``transfer``),
  and its driver proposes ``finish_join``.
* Empty data directory under a known id (a wiped disk, a pod with a new volume): a node
  whose store holds no metadata log asks before it votes. Only a seed that finds every seed
  answering and none bootstrapped starts as a voter (then the only value any slot can hold
  is the bootstrap entry, identical from every seed). Otherwise it adopts the group from a
  member without a vote; if the cluster lists its id, it is a replacement
  (``node/replacement.py``): the old incarnation is retired, then the node joins again
  and streams its ranges back.
* Restart: the log on disk already makes the node a member, but the cluster may have
  removed it meanwhile (a dead joiner's join abandoned, a dead member removed). It first
  learns the log as it is now; if that says it is no longer a member, it joins again like a
  new node (it was started to be a member).
* Left: a node whose own graceful leave finished (the durable ``left`` marker,
  node/metalog.py, or a restart that finds its leave finished) does not join again: it
  logs why and ``GET /node`` shows ``"state": "left"``, until it is restarted with
  ``--rejoin-after-leave`` (the marker is dropped, it joins like a new node) or on an
  empty data directory.

The node asks the members it was given through a *contact* with three calls (``GET /node``,
``GET /cluster``, ``POST /cluster/members``): ``HttpContact`` over HTTP for ``dynamopy serve``;
the system simulator passes an in-process one (``sim/system_contact.py``) that answers what
those routes answer, so a wiped node in the simulator takes this very path.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

import httpx

from dynamopy.core.membership import Settings, bootstrap_entry, left_by_own_leave
from dynamopy.node.errors import MembershipError
from dynamopy.node.replacement import retire_old_incarnation

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.node.runtime import Node

log = logging.getLogger(__name__)

RETRY_S = 0.3


class ContactError(Exception):
    """A member could not answer (down, unreachable, not ready)."""


# What asking a member may raise: the node retries, or asks the next one.
UNREACHABLE = (httpx.HTTPError, ValueError, KeyError, ContactError)


class HttpContact:
    """How a starting node asks a member at ``url``: over HTTP (``dynamopy serve``)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def node_info(self, url: str) -> dict:
        """``GET /node``: the member's identity and epoch."""
        resp = await self.http.get(f"{url}/node")
        resp.raise_for_status()
        return resp.json()

    async def cluster_info(self, url: str) -> dict:
        """``GET /cluster``: members, metadata group, epoch (``ContactError`` unless 200)."""
        resp = await self.http.get(f"{url}/cluster")
        if resp.status_code != 200:
            raise ContactError(f"{url}/cluster answered {resp.status_code}")
        return resp.json()

    async def request_join(self, url: str, me: dict) -> tuple[int, dict]:
        """``POST /cluster/members``: (status, JSON body or {})."""
        resp = await self.http.post(f"{url}/cluster/members", json=me, timeout=15.0)
        body = resp.json() if resp.headers.get("content-type", "").startswith(
            "application/json") else {}
        return resp.status_code, body


def bootstrap_settings(cfg, **override) -> Settings:
    """The cluster settings a bootstrap entry carries: this node's flags (every setting
    after that changes through ``POST /cluster/config``, whatever the flags say)."""
    fields = dict(n=cfg.n, r=cfg.r, w=cfg.w, hint_window_s=cfg.hint_window_s,
                  hint_max_bytes=cfg.hint_max_bytes,
                  anti_entropy_interval_s=cfg.anti_entropy_interval_s,
                  anti_entropy_rate=cfg.anti_entropy_rate,
                  tombstone_grace_s=cfg.tombstone_grace_s,
                  metadata_group_size=cfg.metadata_group_size)
    return Settings(**{**fields, **override})


def effective_seeds(node: "Node") -> tuple[list[str], Settings]:
    cfg = node.config
    settings = bootstrap_settings(cfg)
    if cfg.seeds:
        return list(cfg.seeds), settings
    # No seeds: a one-node cluster of its own, so `dynamopy serve` alone just works.
    if settings.n > 1:
        log.warning("no --seeds given: starting a single-node cluster with n=r=w=1")
    return [cfg.advertise_url], bootstrap_settings(cfg, n=1, r=1, w=1)


def _verify(node: "Node"):
    """With TLS, members' HTTPS URLs are verified against the cluster's CA."""
    tls = node.config.tls
    if tls is None:
        return True
    from dynamopy.tls import https_client_context
    return https_client_context(tls.ca)


def _headers(node: "Node") -> dict:
    token = node.config.api_token
    return {"Authorization": f"Bearer {token}"} if token else {}


async def ensure_member(node: "Node", contact=None) -> None:
    """Bootstrap or join in the background; return once this node applied its membership,
    or at once if it left the cluster by its own graceful leave (below).
    ``contact``: how to ask members (None: ``HttpContact``, what ``dynamopy serve`` uses)."""
    if node.metalog.left is not None and node.state.member(node.id) is None:
        epoch = node.metalog.left["epoch"]
        if not node.config.rejoin_after_leave:
            _say_left(node, epoch)
            return
        await node.metalog.forget_left()
        log.warning("%s left the cluster at epoch %d; started with --rejoin-after-leave: "
                    "joining again", node.id, epoch)
    if node.state.member(node.id) is not None and not node.metalog.replacing:
        # Restarted as a member per the log on disk: wait until the log says more. A member
        # hears the leader and catches up; a removed node is not pushed to, but its learner
        # polls the metadata group and learns of its removal.
        before = node.state
        while node.state.member(node.id) is not None and not node.catchup.caught_up:
            if node.stopping:
                return
            await node.clock.sleep(RETRY_S)
        if node.state.member(node.id) is not None:
            return
        if not left_by_own_leave(before, node.state, node.id):
            log.warning("%s was removed from the cluster while it was down: joining again",
                        node.id)
        elif not node.config.rejoin_after_leave:
            # Its own leave finished while it was down (or before the batch with the
            # marker reached its disk): it left, as the operator asked.
            await node.metalog.mark_left(node.state.epoch)
            _say_left(node, node.state.epoch)
            return
        else:
            log.warning("%s left the cluster while it was down; started with "
                        "--rejoin-after-leave: joining again", node.id)
    # Not a member yet, even if a previous run got as far as learning the metadata group
    # (it may have crashed before its join or the bootstrap committed): keep going.
    if contact is None:
        async with httpx.AsyncClient(timeout=3.0, headers=_headers(node),
                                     verify=_verify(node)) as http:
            return await _become_member(node, HttpContact(http))
    await _become_member(node, contact)


def _say_left(node: "Node", epoch: int) -> None:
    """A node that left by its own graceful leave does not join again by itself (as a
    decommissioned Cassandra node refuses to start unless told): it says why, and serves
    no data, until the operator restarts it with ``--rejoin-after-leave`` or on an empty
    data directory. (A node removed while it was down does join again: it was started to
    be a member.)"""
    log.warning("%s left the cluster by a graceful leave (finished at epoch %d) and does "
                "not join again by itself: restart it with --rejoin-after-leave to join "
                "again, or on an empty data directory to join as a new node", node.id, epoch)


async def _become_member(node: "Node", contact) -> None:
    if node.config.join:
        await _join(node, contact, [node.config.join])
        return
    seeds, settings = effective_seeds(node)
    if node.metalog.replacing:
        await _join(node, contact, seeds)  # a replacement that restarted: carry on
        return
    identities = await _identities(node, contact, seeds)
    if identities is None:
        return
    if identities == BOOTSTRAPPED:
        log.warning("%s has no metadata log on disk but the cluster of %s is already "
                    "bootstrapped: it will not vote; joining through the seeds",
                    node.id, seeds)
        await _join(node, contact, [u for u in seeds if u != node.config.advertise_url] or seeds)
        return
    me = node.identity()
    if not any(i["id"] == me["id"] for i in identities):
        log.info("%s is not among the seeds %s: joining through them", node.id, seeds)
        await _join(node, contact, seeds)
        return
    await bootstrap_seeds(node, identities, settings)


async def bootstrap_seeds(node: "Node", identities: list[dict], settings: Settings) -> None:
    """As one of the seeds ``identities`` (id, url, peer each): adopt them as the metadata
    group and, whenever this node leads it, propose the bootstrap entry until it is applied."""
    # Sorted: every acceptor must see the same tuple (a ballot's member number is an
    # index into it), whatever order each node was given --seeds in.
    await node.metalog.adopt_acceptors(sorted(i["id"] for i in identities),
                                       {i["id"]: i["peer"] for i in identities},
                                       bootstrapping=True)
    entry = bootstrap_entry(identities, settings)
    while not node.state.bootstrapped and not node.stopping:
        if node.metalog.is_leader:
            try:
                # A fixed request id: should two seeds both get it committed (a leader
                # change mid-proposal), the second applies as a no-op.
                await node.metalog.propose(entry, rid="bootstrap")
                log.info("bootstrapped %s at epoch %d", [i["id"] for i in identities],
                         node.state.epoch)
            except MembershipError as e:
                log.info("bootstrap proposal: %s", e.detail)
        await node.clock.sleep(RETRY_S)


BOOTSTRAPPED = "bootstrapped"


async def _identities(node: "Node", contact, seeds: list[str]):
    """Each seed's identity, in order; retries until all answer (or the node stops).
    ``BOOTSTRAPPED`` as soon as any seed reports an epoch: the cluster exists already."""
    while not node.stopping:
        out = []
        for url in seeds:  # every seed, even past one that is down: any may say "bootstrapped"
            try:
                info = await contact.node_info(url)
                if isinstance(info.get("epoch"), int) and info["epoch"] > 0:
                    return BOOTSTRAPPED
                out.append({"id": info["id"], "url": info["url"], "peer": info["peer"],
                            **({"zone": info["zone"]} if info.get("zone") else {})})
            except UNREACHABLE as e:
                log.info("seed %s not reachable yet (%s)", url, e)
        if len(out) == len(seeds):
            return out
        await node.clock.sleep(RETRY_S)
    return None


async def _join(node: "Node", contact, urls: list[str]) -> None:
    """Learn the metadata group from any member at ``urls`` and ask it to add this node."""
    me = node.identity()
    attempt = 0
    while not node.stopping:
        url = urls[attempt % len(urls)]
        attempt += 1
        try:
            if not node.metalog.started:
                info = await contact.cluster_info(url)
                # An empty store under an id the cluster knows: this node lost its data.
                known = any(m["id"] == node.id for m in info["members"])
                # The group of slot 0: the log's group changes say who decides after it.
                await node.metalog.adopt_acceptors(
                    info.get("metadata_group_initial") or info.get("metadata_group",
                                                                   info["acceptors"]),
                    {m["id"]: m["peer"] for m in info["members"]},
                    replacing=max(1, int(info["epoch"])) if known else 0)
                if known:
                    log.warning("%s started with an empty data directory but the cluster "
                                "knows it: coming back as a replacement (no vote, no data "
                                "served until it has joined again)", node.id)
            if node.metalog.replacing:
                await retire_old_incarnation(node)
                if node.stopping:
                    return
            if node.state.member(node.id) is not None:
                return
            status, body = await contact.request_join(url, me)
            if status == 202:
                log.info("join of %s accepted at epoch %s", node.id, body.get("epoch"))
                return
            if status == 409 and "is already a member (" in body.get("detail", ""):
                return  # our earlier request committed; the log will tell us
            log.warning("join refused by %s: %s %s", url, status, body.get("detail"))
            if status in (400, 404):
                return
        except UNREACHABLE as e:
            log.info("joining through %s failed (%s); retrying", url, e)
        await node.clock.sleep(max(RETRY_S, min(3.0, 0.2 * attempt)))
