"""Name resolution for the emulated StatefulSet (tests/deploy/test_statefulset_emulation.py).

On Kubernetes, cluster DNS maps each pod's stable name under the headless Service
(``dynamopy-1.dynamopy-peers.dynamopy.svc.cluster.local``) to that pod's IP. The emulation
runs each pod as a local process on its own loopback address and puts this directory first on
``PYTHONPATH``, so Python loads this module at start-up in every pod process, before
dynamopy. It maps the names listed in ``DYNAMOPY_EMULATED_HOSTS`` (``name=ip,name=ip``)
to their addresses, like a hosts file, for every resolver dynamopy uses:

* ``socket.getaddrinfo`` (the standard event loop, httpx's sync paths);
* uvloop, which resolves through libuv and not through ``socket``: ``uvloop.run`` gets a
  loop subclass whose ``getaddrinfo`` (used by httpx/anyio) and ``create_connection`` (used
  by the peer client) look the name up first.

Names not in the map resolve as usual. Without the variable this module does nothing.
"""

from __future__ import annotations

import os
import socket


def _load() -> dict[str, str]:
    out = {}
    for item in os.environ.get("DYNAMOPY_EMULATED_HOSTS", "").split(","):
        name, sep, ip = item.strip().partition("=")
        if sep and name and ip:
            out[name.lower().rstrip(".")] = ip
    return out


HOSTS = _load()


def _map(host):
    if isinstance(host, bytes):
        host = host.decode()
    if isinstance(host, str):
        return HOSTS.get(host.lower().rstrip("."), host)
    return host


def _install() -> None:
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real_getaddrinfo(_map(host), *args, **kwargs)

    socket.getaddrinfo = getaddrinfo

    try:
        import uvloop
    except ImportError:
        return

    class MappedLoop(uvloop.Loop):
        async def getaddrinfo(self, host, *args, **kwargs):
            return await super().getaddrinfo(_map(host), *args, **kwargs)

        async def create_connection(self, protocol_factory, host=None, port=None, **kwargs):
            mapped = _map(host)
            if mapped != host and kwargs.get("ssl") and kwargs.get("server_hostname") is None:
                kwargs["server_hostname"] = host  # keep the name for TLS, as DNS would
            return await super().create_connection(protocol_factory, mapped, port, **kwargs)

    real_run = uvloop.run

    def run(main, *, loop_factory=None, **kwargs):
        return real_run(main, loop_factory=loop_factory or MappedLoop, **kwargs)

    uvloop.run = run
    uvloop.new_event_loop = MappedLoop


if HOSTS:
    _install()
