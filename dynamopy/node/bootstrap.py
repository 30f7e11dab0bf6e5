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
  answering, none bootstrapped and none that adopted it under another store token
  (``SEEN_BEFORE``) may start as a voter; it first listens ``LISTEN_S`` for Paxos traffic of
  a cluster that lists it. Otherwise it adopts the group from a member without a vote; if
  the cluster lists its id, it is a replacement (``node/replacement.py``): the old
  incarnation is retired, then the node joins again and streams its ranges back.
* A seed's "every seed answers epoch 0" is also what a wiped seed sees when it is the only
  seed, or when every seed lost its disk after the group moved to other members. Its vote is
  then kept out of the real cluster by the cluster identity (``core/paxos/identity.py``: the
  bootstrap entry names the seeds' store tokens; messages carry the cluster id). What
  brings it back: a seed that learns a cluster whose slot 0 does not name its store
  (``disowned``) drops that log and comes back as a replacement (``_rejoin_disowned``); a
  seed that bootstrapped a one-node cluster from an empty directory yields, while that
  cluster never had another member, to a cluster that reaches it and lists it
  (``_yield_while_alone``); a wiped node joins through a member that reached it, not only
  through the seeds (which may all be wiped).
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
from dynamopy.node.clock import wait_set
from dynamopy.node.errors import MembershipError
from dynamopy.node.joins import join_again_if_abandoned
from dynamopy.node.replacement import retire_old_incarnation

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.node.runtime import Node

log = logging.getLogger(__name__)

RETRY_S = 0.3
SEED_TROUBLE_LOG_S = 30.0   # a seed that stays unreachable (or refusing) is logged this often
# Names the node asking (``HttpContact``): ``GET /node`` wakes a seed waiting to ask the seeds
# again unless it is the seed's own bootstrap asking itself (``identity_asked_by``).
ASKER_HEADER = "X-Dynamopy-Asker"


def identity_asked_by(node: "Node", asker: Optional[str]) -> None:
    """``GET /node`` asked by ``asker`` (its ``ASKER_HEADER``; None: not a node): wake this
    node's bootstrap into asking the seeds again (``_identities``), unless the asker is this
    node itself or a seed that answered its last round already. Two seeds up while a third
    is not would otherwise wake each other on every ask: a loop without pause, a busy CPU
    and a log line per round until the third comes up."""
    if asker != node.id and asker not in node.identity_answered:
        node.identity_asked.set()


class ContactError(Exception):
    """A member could not answer (down, unreachable, not ready)."""


class TokenRefused(ContactError):
    """A member answered 401/403: this node's --api-token is not the one it expects (or the
    member's is wrong). Retried like any contact error, except on the member named by
    ``--join``, where it ends the start (``StartRefused``): the operator named that member,
    and no retry makes it answer (review 14: a seed with the right token exited because
    another seed had a wrong one)."""


class StartRefused(Exception):
    """This node can never become a member as started: a join refused for good (a wrong
    cluster secret or API token, its id a member at another address, any refusal a retry
    cannot fix), or --seeds naming one node twice. ``dynamopy serve`` logs ``reason`` as one
    line and exits with ``exit_code`` (as etcd exits when it cannot join); a transient
    refusal (503, nothing answering, another change in progress) is retried instead."""

    def __init__(self, reason: str, exit_code: int = 1) -> None:
        super().__init__(reason)
        self.reason, self.exit_code = reason, exit_code


# Answers to a join that no retry can change: 400 (the joiner failed the cluster-secret
# handshake, answers as another id, or the request is malformed), 401/403 (API token), 404
# (no such route: not a dynamopy member), 405, 413, 422. 409 is final only when the id is a
# member at another address; 408, 425, 429 and other 409s (a change in progress, the joiner
# not answering yet) pass with time.
FINAL_STATUSES = frozenset((400, 401, 403, 404, 405, 413, 422))


def refused_for_good(status: int, detail: str) -> bool:
    """Whether a join answered ``status`` with ``detail`` is refused for good."""
    return status in FINAL_STATUSES or (status == 409 and "is already a member at " in detail)


# What asking a member may raise: the node retries, or asks the next one.
UNREACHABLE = (httpx.HTTPError, ValueError, KeyError, ContactError)


class HttpContact:
    """How a starting node asks a member at ``url``: over HTTP (``dynamopy serve``)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def node_info(self, url: str) -> dict:
        """``GET /node``: the member's identity and epoch."""
        resp = await self.http.get(f"{url}/node")
        if resp.status_code in (401, 403):
            raise TokenRefused(f"{url}/node answered {resp.status_code}: this node's "
                               "--api-token is not the one that member expects")
        resp.raise_for_status()
        return resp.json()

    async def cluster_info(self, url: str) -> dict:
        """``GET /cluster``: members, metadata group, epoch (``ContactError`` unless 200)."""
        resp = await self.http.get(f"{url}/cluster")
        if resp.status_code in (401, 403):
            raise TokenRefused(f"{url}/cluster answered {resp.status_code}: this node's "
                               "--api-token is not the one that member expects")
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
    or at once if it left the cluster by its own graceful leave (below). A node that
    bootstrapped alone from an empty directory keeps watching: see ``_yield_while_alone``.
    ``contact``: how to ask members (None: ``HttpContact``, what ``dynamopy serve`` uses)."""
    if contact is None:
        async with httpx.AsyncClient(timeout=3.0, headers={**_headers(node),
                                                            ASKER_HEADER: node.id},
                                     verify=_verify(node)) as http:
            contact = HttpContact(http)
            await _ensure_member(node, contact)    # StartRefused: serve exits
            return await _stay_joined(node, contact)
    try:
        await _ensure_member(node, contact)
        await _stay_joined(node, contact)
    except StartRefused as e:   # in-process nodes (simulators) stay up, not ready, as before
        log.error("%s cannot become a member: %s", node.id, e.reason)


async def _stay_joined(node: "Node", contact) -> None:
    """A joiner whose join the cluster abandons while it runs joins again
    (``joins.join_again_if_abandoned``), through the members it knows, else its ``--join``
    or seeds."""
    def urls() -> list[str]:
        known = [m.url for m in node.state.members.values() if m.id != node.id]
        given = [node.config.join] if node.config.join else list(node.config.seeds)
        return known + [u for u in given if u not in known and u != node.config.advertise_url]
    await join_again_if_abandoned(node, lambda: _join(node, contact, urls() or
                                                      [node.config.advertise_url]))


async def _ensure_member(node: "Node", contact) -> None:
    if node.metalog.left is not None and node.state.member(node.id) is None:
        epoch = node.metalog.left["epoch"]
        if not node.config.rejoin_after_leave:
            _say_left(node, epoch)
            return
        await node.metalog.forget_left()
        log.warning("%s left the cluster at epoch %d; started with --rejoin-after-leave: "
                    "joining again", node.id, epoch)
    if node.state.member(node.id) is not None and not node.metalog.replacing:
        if node.config.join:
            await _check_join_flag(node, contact)
        # Restarted as a member per the log on disk: wait until the log says more. A member
        # hears the leader and catches up; a removed node is not pushed to, but its learner
        # polls the metadata group and learns of its removal.
        before = node.state
        while node.state.member(node.id) is not None and not node.catchup.caught_up:
            if node.stopping:
                return
            await node.clock.sleep(RETRY_S)
        if node.state.member(node.id) is not None:
            if node.metalog.disowned:
                await _rejoin_disowned(node, contact)
            await _yield_while_alone(node, contact)
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
    await _become_member(node, contact)
    await _yield_while_alone(node, contact)


def _never_had_company(node: "Node") -> bool:
    """This node bootstrapped a one-seed cluster from an empty directory and that cluster
    never had another member (``_yield_while_alone`` watches such a node)."""
    state = node.state
    return node.metalog.alone and set(state.members) == {node.id} and state.next_number <= 2


async def _check_join_flag(node: "Node", contact) -> None:
    """``--join`` names whom a node that is no member yet asks to join; a node restarted as
    a member per its log has no use for it. If it names a member of *another* cluster (found
    by an operator, session 15: the flag was ignored without a word), the operator meant
    this node to be there. A one-node cluster of its own (no other member ever relied on
    it) does not start: it says what its directory holds and how to add it. A member of a
    larger cluster logs a warning and serves its own. A member that does not answer, or
    whose cluster lists this node (it is being added there: the one-node cluster yields by
    itself), changes nothing."""
    url = node.config.join
    try:
        info = await contact.node_info(url)
    except (TokenRefused, *UNREACHABLE):
        return
    theirs = (info.get("metadata") or {}).get("cluster") if isinstance(info, dict) else None
    paxos = node.metalog.paxos
    mine = paxos.cluster if paxos is not None and paxos.cluster_known else None
    if not isinstance(theirs, str) or not mine or theirs == mine:
        return
    if not _never_had_company(node):
        log.warning("--join %s is ignored: %s is a member of cluster %s by the log in its data "
                    "directory, and that member is of cluster %s", url, node.id, mine, theirs)
        return
    if await _lists_me(node, contact, url):
        return
    raise StartRefused(
        f"--join {url}: that member is of cluster {theirs}, but the data directory "
        f"{node.config.data_dir} holds a one-node cluster of {node.id}'s own ({mine}), and "
        "--join only applies to a node that is no member yet. To add this node to that "
        "cluster with the data it holds, start it without --join and add it there "
        f"(`dynamopy members --url {url} join {node.id} {node.config.advertise_url} "
        f"{node.config.advertise_peer}`); to join as a new, empty node, start it on an empty "
        "data directory")


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
    fresh = not node.metalog.started  # no metadata at all on disk: first start, or wiped
    if node.config.advertise_url in seeds and len(seeds) < settings.n:
        node.waiting_for = (f"waiting for the seeds: --seeds names {len(seeds)}, fewer than "
                            f"--n {settings.n}, so they can only be joined if they already run "
                            "a cluster")
        log.warning("--seeds names %d member%s, fewer than --n %d: this node can join a "
                    "cluster they already run, not bootstrap a new one", len(seeds),
                    "s" if len(seeds) != 1 else "", settings.n)
    while True:
        identities = await _identities(node, contact, seeds)
        if identities != REACHED:
            break
        # A cluster reached it while a seed did not answer: if it lists this node, this
        # node lost its disk (it may wait for seeds that are gone or wiped too).
        url = await _listen_for_a_cluster(node, contact)
        if url is not None:
            await _join(node, contact, [url])
            return
    node.waiting_for = None   # every seed answered
    if identities is None:
        return
    if identities in (BOOTSTRAPPED, SEEN_BEFORE):
        _say_not_bootstrapping(node, seeds, identities)
        await _join(node, contact, [u for u in seeds if u != node.config.advertise_url] or seeds)
        if node.metalog.voter:
            # Its acceptor state votes only if slot 0 names this store (identity rule 5):
            # learn the log, and if it does not, come back as a replacement now, as a
            # restarted disowned seed does (before, it stayed disowned until a restart).
            while not node.stopping and not node.catchup.caught_up:
                await node.clock.sleep(RETRY_S)
            if node.metalog.disowned:
                await _rejoin_disowned(node, contact)
        return
    me = node.identity()
    if not any(i["id"] == me["id"] for i in identities):
        log.info("%s is not among the seeds %s: joining through them", node.id, seeds)
        await _join(node, contact, seeds)
        return
    if fresh:
        url = await _listen_for_a_cluster(node, contact)
        if url is not None:
            await _join(node, contact, [url])
            return
    ids = [i["id"] for i in identities]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        # One node under two URLs (a host name and its address): the bootstrap entry needs
        # distinct ids and is refused for ever (review 14).
        raise StartRefused(
            f"--seeds names {', '.join(twice)} more than once ("
            + ", ".join(f"{u} is {i}" for u, i in zip(seeds, ids) if i in twice)
            + "): name each seed once", exit_code=2)
    if len({i["id"] for i in identities}) < settings.n:
        # Every seed answered and none runs a cluster: a new one would be bootstrapped, and
        # the bootstrap entry is refused (each key needs N distinct members). It waits
        # rather than exits (review 14): a wiped seed of a cluster made with a lower --n,
        # its other members out of reach for a moment, comes back as a replacement once
        # they reach it (the README: the flags no longer matter once the cluster exists).
        await _wait_for_a_cluster(node, contact, seeds, len(identities), settings.n)
        return
    await bootstrap_seeds(node, identities, settings, alone=fresh and len(identities) == 1)
    if node.metalog.disowned:
        await _rejoin_disowned(node, contact)


def _say_not_bootstrapping(node: "Node", seeds: list[str], why: str) -> None:
    """Log why a seed that has not learned slot 0 joins instead of bootstrapping, and
    whether it votes. A seed that adopted the group as a voter and crashed before it learned
    slot 0 still holds that acceptor state (every promise and accept it made): it keeps it,
    and once it learns slot 0 it votes if slot 0 names this store (identity rule 5; until
    then it only learns, rule 4). Any other store (none on disk, or one adopted without a
    vote) does not vote."""
    reason = (f"the cluster of {seeds} is already bootstrapped" if why == BOOTSTRAPPED
              else "a seed adopted it under another store token before the bootstrap "
              "(its disk was wiped)")
    if node.metalog.voter:
        log.warning("%s crashed before it learned the bootstrap and %s: it keeps the acceptor "
                    "state it has on disk from before the bootstrap and votes with it once it "
                    "learns slot 0 and slot 0 names this store (if it names another store of this "
                    "id, it comes back as a replacement); learning the log through the seeds",
                    node.id, reason)
        return
    what = ("has no metadata log on disk" if not node.metalog.started
            else "holds no acceptor state of its own")
    log.warning("%s %s and %s: it will not vote; joining through the seeds", node.id, what,
                reason)


async def _rejoin_disowned(node: "Node", contact) -> None:
    """This seed started as a voter on an empty directory (every seed answered epoch 0) but
    then learned the log of a cluster whose slot 0 does not name its store: it is a wiped
    member of that cluster. Its Paxos node stopped voting when it learned slot 0; it
    drops that log and comes back as a replacement through the members it learned of."""
    urls = [m.url for m in node.state.members.values() if m.id != node.id]
    log.warning("%s learned the log of cluster %s, whose bootstrap does not name this store "
                "(a wiped seed): it does not vote; coming back as a replacement", node.id,
                node.state.cluster)
    await node.metalog.forget()
    await _join(node, contact, urls or [node.config.advertise_url])


async def bootstrap_seeds(node: "Node", identities: list[dict], settings: Settings, *,
                          alone: bool = False) -> None:
    """As one of the seeds ``identities`` (id, url, peer, store token each): adopt them as
    the metadata group and, whenever this node leads it, propose the bootstrap entry until
    it is applied. ``alone``: the only seed, started with an empty directory."""
    # Sorted: every acceptor must see the same tuple (a ballot's member number is an
    # index into it), whatever order each node was given --seeds in.
    await node.metalog.adopt_acceptors(
        sorted(i["id"] for i in identities), {i["id"]: i["peer"] for i in identities},
        bootstrapping=True, alone=alone,
        seed_tokens={i["id"]: i["token"] for i in identities if i.get("token")})
    entry = bootstrap_entry(identities, settings)
    while not node.state.bootstrapped and not node.stopping:
        node.metalog.role_changed.clear()
        if node.metalog.is_leader:
            try:
                # A fixed request id: should two seeds both get it committed (a leader
                # change mid-proposal), the second applies as a no-op.
                await node.metalog.propose(entry, rid="bootstrap")
                log.info("bootstrapped %s at epoch %d", [i["id"] for i in identities],
                         node.state.epoch)
            except MembershipError as e:
                log.info("bootstrap proposal: %s", e.detail)
        # Again after RETRY_S, or as soon as this node's role changes (it may lead now).
        await wait_set(node.metalog.role_changed, RETRY_S)


BOOTSTRAPPED = "bootstrapped"
SEEN_BEFORE = "seen before"
REACHED = "reached"  # Paxos traffic of a cluster reached this node while it asked the seeds
LISTEN_S = 0.5  # a fresh seed listens this long for a cluster that lists it (heartbeats: 0.1 s)


async def _identities(node: "Node", contact, seeds: list[str]):
    """Each seed's identity, in order; retries until all answer (or the node stops).
    ``BOOTSTRAPPED`` as soon as any seed reports an epoch: the cluster exists already.
    ``REACHED`` if, while some seed does not answer, a cluster's Paxos traffic reached this
    node (empty store only: the caller checks whether that cluster lists it).
    Between two rounds it waits ``RETRY_S``, or less: until someone asks this node for its
    identity (a seed that just came up asks every seed, so the one missing may answer now);
    a seed that answered the last round asking does not wake it (``identity_asked_by``).
    ``SEEN_BEFORE`` if a seed adopted this node's id under another store token before the
    bootstrap: this store is not the one that seed asked, so the old one may have voted for
    slot 0 already (a seed's votes need a proposer that adopted it first; that proposer's
    adoption is durable, so it is seen here); voting again with an empty state could let two
    different bootstrap entries be chosen (core/paxos/identity.py)."""
    mine = node.metalog.token
    said: dict[str, tuple[str, float]] = {}   # seed -> its trouble as last logged, and when
    waiting = [None]                          # what this wait put in node.waiting_for

    def trouble(url: str, level: int, text: str) -> None:
        # A round every RETRY_S: log a seed's trouble when it starts or changes, then every
        # SEED_TROUBLE_LOG_S while it lasts (it was a line per seed per round).
        now = node.clock.monotonic()
        last = said.get(url)
        if last is None or last[0] != text or now - last[1] >= SEED_TROUBLE_LOG_S:
            log.log(level, "%s", text)
            said[url] = (text, now)

    try:
        while not node.stopping:
            node.identity_asked.clear()
            out = []
            problems = []
            for url in seeds:  # every seed, even past one that is down: any may say
                #                 "bootstrapped"
                try:
                    info = await contact.node_info(url)
                    if said.pop(url, None) is not None:
                        log.info("seed %s answers", url)
                    if isinstance(info.get("epoch"), int) and info["epoch"] > 0:
                        return BOOTSTRAPPED
                    seen = (info.get("seed_tokens") or {}).get(node.id)
                    if seen is not None and seen != mine:
                        return SEEN_BEFORE
                    out.append({"id": info["id"], "url": info["url"], "peer": info["peer"],
                                **({"zone": info["zone"]} if info.get("zone") else {}),
                                **({"token": info["store_token"]} if info.get("store_token")
                                   else {})})
                except TokenRefused as e:
                    problems.append(f"{url} refuses this node ({e})")
                    trouble(url, logging.WARNING,
                            f"seed {url} refuses this node ({e}); retrying")
                except UNREACHABLE as e:
                    problems.append(f"{url} not reachable ({e})")
                    trouble(url, logging.INFO, f"seed {url} not reachable yet ({e})")
            if len(out) == len(seeds):
                return out
            if getattr(node, "waiting_for", None) in (None, waiting[0]):
                # GET /ready says what it waits for (unless another wait said so first)
                waiting[0] = node.waiting_for = ("waiting for the seeds to answer: "
                                                 + "; ".join(problems))
            node.identity_answered = frozenset(i["id"] for i in out)  # identity_asked_by
            foreign = node.metalog.foreign
            if not node.metalog.started and foreign is not None and foreign.get("url"):
                return REACHED
            # Ask again after RETRY_S, or as soon as someone asks this node for its identity
            # (``GET /node``): a seed that just came up asks every seed, this one included.
            await wait_set(node.identity_asked, RETRY_S)
        return None
    finally:
        if waiting[0] is not None and getattr(node, "waiting_for", None) == waiting[0]:
            node.waiting_for = None


async def _lists_me(node: "Node", contact, url: str) -> bool:
    """Whether the member at ``url`` answers and its cluster lists this node's id at this
    node's peer address."""
    try:
        info = await contact.cluster_info(url)
    except UNREACHABLE:
        return False
    return any(m.get("id") == node.id and m.get("peer") == node.config.advertise_peer
               for m in info.get("members", ()))


async def _listen_for_a_cluster(node: "Node", contact) -> Optional[str]:
    """A seed about to bootstrap from an empty directory listens ``LISTEN_S`` for Paxos
    traffic of a bootstrapped cluster (its leader heartbeats every member): if one that
    lists this node reaches it, it was a member and lost its disk. Returns that member's
    URL (then it comes back as a replacement), or None (bootstrap)."""
    deadline = node.clock.monotonic() + LISTEN_S
    while not node.stopping and node.clock.monotonic() < deadline:
        foreign = node.metalog.foreign
        if foreign is not None and foreign.get("url"):
            if await _lists_me(node, contact, foreign["url"]):
                log.warning("%s: a cluster that lists it reached it (%s at %s) before it "
                            "bootstrapped: coming back as a replacement", node.id,
                            foreign["id"], foreign["url"])
                return foreign["url"]
            node.metalog.foreign = None
        await node.clock.sleep(0.05)
    return None


async def _wait_for_a_cluster(node: "Node", contact, seeds: list[str], count: int,
                              n: int) -> None:
    """Seeds fewer than ``n`` that run no cluster cannot bootstrap one: say so (the log,
    once; ``GET /ready``), and wait for a cluster to reach this node (it lists it: a wiped
    member comes back as a replacement) or for a seed to run one (join it)."""
    why = (f"--seeds names {count} member{'s' if count != 1 else ''} and none runs a cluster, "
           f"but --n is {n}: a new cluster needs at least n seeds (name {n} in --seeds, or "
           "lower --n); waiting for a cluster that lists this node or a seed that runs one")
    node.waiting_for = why
    log.error("%s cannot bootstrap: %s", node.id, why)
    while not node.stopping:
        url = await _listen_for_a_cluster(node, contact)
        if url is None and await _identities(node, contact, seeds) == BOOTSTRAPPED:
            url = next((u for u in seeds if u != node.config.advertise_url), seeds[0])
        if url is not None:
            node.waiting_for = None
            await _join(node, contact, [url])
            return
        await node.clock.sleep(RETRY_S)


async def _yield_while_alone(node: "Node", contact) -> None:
    """A node that bootstrapped a one-seed cluster from an empty directory (its only seed
    was itself) may be a wiped member of a real cluster whose other members were out of
    reach meanwhile. While its own cluster never had another member, it watches for Paxos
    traffic of another cluster; when a member of one that lists this id at this address
    answers, it drops its one-node log (``MetaLog.forget``: data and store token stay) and
    comes back as a replacement through that member (``_join``: ``replace``, then a join
    that streams its ranges back)."""
    while not node.stopping and node.metalog.alone:
        if not _never_had_company(node):
            return  # it has had other members: a cluster of its own
        foreign = node.metalog.foreign
        if foreign is not None and foreign.get("url"):
            if await _lists_me(node, contact, foreign["url"]):
                log.warning("%s bootstrapped alone from an empty directory, but cluster %s "
                            "(%s at %s) lists it: dropping its one-node cluster %s and coming "
                            "back as a replacement", node.id, foreign["cluster"],
                            foreign["id"], foreign["url"], node.state.cluster)
                await node.metalog.forget()
                await _join(node, contact, [foreign["url"]])
                return
            node.metalog.foreign = None
        await node.clock.sleep(RETRY_S)


async def _join(node: "Node", contact, urls: list[str]) -> None:
    """Learn the metadata group from any member at ``urls`` and ask it to add this node."""
    me = node.identity()
    attempt = 0
    while not node.stopping:
        foreign = node.metalog.foreign
        if not node.metalog.started and foreign is not None and foreign.get("url") \
                and foreign["url"] not in urls:
            # A member of a cluster that lists this node reached it (its leader heartbeats
            # every member): ask it too. When every seed lost its disk, the seeds answer
            # nothing useful (they are replacements themselves) and only the members that
            # kept theirs know the cluster (review finding 1, tests/repro/repro_wiped_seeds.py).
            urls = [foreign["url"], *urls]
        url = urls[attempt % len(urls)]
        attempt += 1
        try:
            if not node.metalog.started:
                info = await contact.cluster_info(url)
                # An empty store under an id the cluster knows: this node lost its data.
                listed = next((m for m in info["members"] if m["id"] == node.id), None)
                known = listed is not None
                if known and listed.get("peer") != node.config.advertise_peer \
                        and listed.get("alive"):
                    # Not this node's lost incarnation: another node, alive, holds the id.
                    raise StartRefused(
                        f"{node.id} is already a member at {listed.get('url')} "
                        f"({listed.get('peer')}), which {url} sees alive, and this node is at "
                        f"{node.config.advertise_peer}: start it with another --node-id, or "
                        f"remove that member first")
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
                epoch = body.get("epoch")
                if isinstance(epoch, int) and not isinstance(epoch, bool):
                    node.join_accepted_epoch = epoch
                return
            if status == 409 and "is already a member (" in body.get("detail", ""):
                return  # our earlier request committed; the log will tell us
            detail = str(body.get("detail") or "")
            if refused_for_good(status, detail):
                raise StartRefused(f"join refused by {url}: {status} {detail}".rstrip())
            log.warning("join refused by %s: %s %s; retrying", url, status, detail)
        except TokenRefused as e:
            if url == node.config.join:
                raise StartRefused(f"{e}: start this node with the cluster's --api-token") \
                    from e
            log.warning("joining through %s failed (%s); retrying", url, e)
        except UNREACHABLE as e:
            log.info("joining through %s failed (%s); retrying", url, e)
        await node.clock.sleep(max(RETRY_S, min(3.0, 0.2 * attempt)))
