"""Insecure defaults stay on loopback (the Redis "protected mode" rule).

Rules:

- A node whose ``--host`` is a loopback address (127.0.0.0/8, ::1, or a name that resolves only
  to those) is reachable from this machine only; the built-in cluster secret and an empty API
  token are fine there (``dynamopy cluster up`` runs this way).
- Any other ``--host`` (``0.0.0.0``, ``::``, a LAN or public address, a name that resolves to
  one, or a name that does not resolve) is *exposed*. An exposed node with the built-in secret
  (``DEFAULT_CLUSTER_SECRET``) refuses to start, with one line naming the flag to set, unless
  ``--insecure`` is given; then it warns at start and in ``GET /cluster`` (``"warnings"``).
- An exposed node without ``--api-token`` starts, with a warning: its HTTP routes are open to
  anyone who can reach the port (some deployments put an authenticating proxy in front).

Checked before anything binds a port or touches the data directory.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Callable, Optional

from dynamopy.config import DEFAULT_CLUSTER_SECRET, NodeConfig

Resolver = Callable[[str], list[str]]


def _resolve(host: str) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, None)]


def is_loopback_host(host: str, resolve: Resolver = _resolve) -> bool:
    """True if listening on ``host`` is reachable from this machine only."""
    if not host:
        return False  # empty host = every interface
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addrs = resolve(host)
    except OSError:
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


@dataclass(frozen=True)
class Exposure:
    refusal: Optional[str]               # one line, when the node must not start
    warnings: list[str] = field(default_factory=list)


def assess(config: NodeConfig, resolve: Resolver = _resolve) -> Exposure:
    if is_loopback_host(config.host, resolve):
        return Exposure(None, [])
    where = f"--host {config.host or repr('')} is not a loopback address"
    warnings = []
    refusal = None
    if config.cluster_secret == DEFAULT_CLUSTER_SECRET:
        if config.insecure:
            warnings.append(
                f"INSECURE: {where} and the cluster secret is the built-in default "
                f"(--insecure): anyone who reaches peer port {config.peer_port} can act as a "
                "member and read or write every key; set --cluster-secret")
        else:
            refusal = (
                f"{where} and the cluster secret is the built-in default: set --cluster-secret "
                "(or DYNAMOPY_CLUSTER_SECRET) to a secret of your own, or pass --insecure to "
                "accept the risk")
    if not config.api_token:
        warnings.append(
            f"{where} and no --api-token is set: anyone who reaches HTTP port {config.port} "
            "can read and write data and change membership")
    return Exposure(refusal, warnings)
