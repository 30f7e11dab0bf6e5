"""Becoming a member: bootstrap a fresh cluster from ``--seeds``.

The bootstrap entry is built from the seeds' identities (id, HTTP URL, peer address) in the
order ``--seeds`` lists them, plus the settings, so every seed builds the same entry and
applying it is idempotent whoever does it first. A seed that finds another seed already
bootstrapped copies that seed's log instead of building its own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Optional

import httpx
import msgpack

from dynamopy.core.membership import Settings, bootstrap_entry

if TYPE_CHECKING:  # pragma: no cover
    from dynamopy.node.runtime import Node

log = logging.getLogger(__name__)

RETRY_S = 0.3


def effective_seeds(node: "Node") -> tuple[list[str], Settings]:
    cfg = node.config
    settings = Settings(n=cfg.n, r=cfg.r, w=cfg.w, hint_window_s=cfg.hint_window_s,
                        hint_max_bytes=cfg.hint_max_bytes)
    if cfg.seeds:
        return list(cfg.seeds), settings
    # No seeds: a one-node cluster of its own, so `dynamopy serve` alone just works.
    if settings.n > 1:
        log.warning("no --seeds given: starting a single-node cluster with n=r=w=1")
    return [cfg.advertise_url], Settings(n=1, r=1, w=1, hint_window_s=cfg.hint_window_s,
                                         hint_max_bytes=cfg.hint_max_bytes)


async def ensure_member(node: "Node") -> None:
    """Return once this node has applied a bootstrap entry (retrying until seeds answer)."""
    if node.state.bootstrapped:
        return
    seeds, settings = effective_seeds(node)
    headers = {"Authorization": f"Bearer {node.config.api_token}"} if node.config.api_token else {}
    async with httpx.AsyncClient(timeout=2.0, headers=headers) as http:
        while not node.state.bootstrapped and not node.stopping:
            identities = await _identities(http, seeds)
            if identities is not None:
                existing = await _existing_log(http, seeds, node.config.advertise_url)
                if existing:
                    for entry in existing:
                        if entry["epoch"] == node.state.epoch + 1:
                            body = {k: v for k, v in entry.items() if k != "epoch"}
                            await _commit_copied(node, body)
                    continue
                if node.config.advertise_url not in [i["url"] for i in identities] \
                        and node.id not in [i["id"] for i in identities]:
                    log.error("this node (%s) is not among --seeds %s; use --join", node.id, seeds)
                    return
                entry = bootstrap_entry(identities, settings)
                await node.commit_entry(entry)
                log.info("bootstrapped cluster of %s at epoch %d",
                         [i["id"] for i in identities], node.state.epoch)
                return
            await asyncio.sleep(RETRY_S)


async def _commit_copied(node: "Node", entry: dict) -> None:
    await node.committer.put_meta(f"log/{node.state.epoch + 1:012d}",
                                  msgpack.packb(entry, use_bin_type=True))
    node._apply(entry)


async def _identities(http: httpx.AsyncClient, seeds: list[str]) -> Optional[list[dict]]:
    out = []
    for url in seeds:
        try:
            resp = await http.get(f"{url}/node")
            resp.raise_for_status()
            info = resp.json()
        except (httpx.HTTPError, ValueError) as e:
            log.info("seed %s not reachable yet (%s)", url, e)
            return None
        out.append({"id": info["id"], "url": info["url"], "peer": info["peer"]})
    return out


async def _existing_log(http: httpx.AsyncClient, seeds: list[str], me: str) -> list[dict]:
    for url in seeds:
        if url == me:
            continue
        try:
            resp = await http.get(f"{url}/cluster/log")
            if resp.status_code == 200 and resp.json()["entries"]:
                return resp.json()["entries"]
        except (httpx.HTTPError, ValueError):
            continue
    return []
