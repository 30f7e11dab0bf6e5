"""Schemathesis hooks for ``test_contract.py::test_openapi_holds_against_generated_input``
(loaded through ``SCHEMATHESIS_HOOKS``).

The fuzzer's ``POST /cluster/members`` bodies name random peer addresses, and the node
probes each one before it proposes a join (``node/joins.py`` ``check_joiner``). A host that
is a numeric IPv4 address off this machine ("7" is 0.0.0.7, "1.2.3.4") sends a connection
attempt off the machine, which nothing answers: the probe waits out the request timeout
(2 s each, about half the test's time) and the node answers 409 ``conflict``. Such a host is
sent as 127.0.0.1 with the same port instead: nothing listens there either, the probe fails at
once on the same branch, and the node gives the same 409. Host names, loopback, malformed
and unencodable addresses are sent as generated."""

from __future__ import annotations

import ipaddress
import socket

import schemathesis


def off_machine(host: str) -> bool:
    """Whether ``host`` is a numeric address (any form the resolver takes as one, e.g. "7",
    "0x7f.1", "::2") outside loopback."""
    host = host.strip("[]")
    try:
        addr = ipaddress.ip_address(socket.inet_ntoa(socket.inet_aton(host)))
    except (OSError, ValueError, UnicodeError):
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
    return not addr.is_loopback


def kept_on_machine(peer: str) -> str:
    """``peer`` ("host:port") with an off-machine numeric host replaced by 127.0.0.1."""
    host, sep, port = peer.rpartition(":")
    if sep and off_machine(host):
        return f"127.0.0.1:{port}"
    return peer


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("peer"), str):
        body["peer"] = kept_on_machine(body["peer"])
