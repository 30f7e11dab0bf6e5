"""`dynamopy serve`: run one node (HTTP + peer RPC) in one asyncio event loop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import signal
import sys

from dynamopy.config import NodeConfig
from dynamopy.exposure import assess

log = logging.getLogger("dynamopy")


async def serve(config: NodeConfig) -> int:
    """Run the node until SIGINT/SIGTERM (0), or until it finds it can never become a
    member as started (``StartRefused``: its exit code, after one line saying why)."""
    import uvicorn

    from dynamopy.api.app import create_asgi
    from dynamopy.node.bootstrap import StartRefused, ensure_member
    from dynamopy.node.process_health import GcPauses, LoopLag

    ListeningServer = listening_server()
    node = production_node(config)
    await node.start()
    app = create_asgi(node)
    # Bootstrap or join once this node's own HTTP listens: a seed asks every seed for its
    # identity, itself included, and a first round asked before its own listener was up
    # failed and waited a retry (node/bootstrap.py ``RETRY_S``).
    server = ListeningServer(uvicorn.Config(
        app, host=config.host, port=config.port, loop="none", lifespan="off",
        access_log=False, log_level="warning", server_header=False, date_header=False,
        proxy_headers=False, timeout_graceful_shutdown=5,
        http=http_protocol(config, app, node.metrics.on_http_rejected),
        **_https(config)), on_listening=lambda: node.spawn(become_member()))
    refused: list[StartRefused] = []

    async def become_member() -> None:
        try:
            await ensure_member(node)
        except StartRefused as e:   # e.g. a join refused for good: say why, and exit
            refused.append(e)
            log.error("%s cannot become a member: %s; exiting", node.id, e.reason)
            server.should_exit = True

    log.info("node %s: http %s peer %s data %s", node.id, config.advertise_url,
             config.advertise_peer, config.data_dir)
    # Long-lived start-up objects (modules, app, ring tables) never become garbage: move
    # them out of the collector's sight, and collect young objects less often, so the
    # request path is not paused by full collections scanning them.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    # The group-commit thread runs Python between fsyncs; hand the GIL back to the event
    # loop quickly when it wakes up (the 5 ms default shows up as request tail latency).
    sys.setswitchinterval(0.0005)
    gc_pauses = GcPauses(node.metrics.gc_pause_seconds, node.metrics.gc_collected)
    gc_pauses.install()
    loop_lag = LoopLag(node.metrics.loop_lag_seconds)
    loop_lag.start()
    # uvicorn handles SIGINT/SIGTERM while it serves, and when it is done re-raises the
    # signal against the handler that was in place before it started: with the default one
    # the process would die right there, before the node drains its requests, syncs and
    # closes its store. A handler of our own turns that into a normal return (and stops the
    # server should a signal land before uvicorn installs its handlers).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop_on_signal(server))
    try:
        await server.serve()   # returns on SIGINT/SIGTERM (uvicorn installs the handlers)
    finally:
        loop_lag.stop()
        gc_pauses.remove()
        await node.stop()
        log.info("node %s stopped", node.id)
    return refused[0].exit_code if refused else 0


def listening_server():
    """uvicorn's ``Server`` that calls ``on_listening()`` once, right after its listener is
    bound (not at all if binding fails: uvicorn then exits)."""
    import uvicorn

    class ListeningServer(uvicorn.Server):
        def __init__(self, config, on_listening) -> None:
            super().__init__(config)
            self._on_listening = on_listening

        async def startup(self, sockets=None) -> None:
            # uvicorn logs a failure to bind (``ERROR:    [Errno 98] ...``) and exits 3:
            # keep the error and raise it naming --port, as the peer port's is, so that
            # `dynamopy serve` prints one `dynamopy: error:` line and exits 2.
            failed: list[OSError] = []

            def keep(record: logging.LogRecord) -> bool:
                if isinstance(record.msg, OSError):
                    failed.append(record.msg)
                    return False
                return True

            uvicorn_log = logging.getLogger("uvicorn.error")
            uvicorn_log.addFilter(keep)
            try:
                await super().startup(sockets=sockets)
            except SystemExit:
                if not failed:
                    raise
                from dynamopy.peer.transport import bind_error
                raise bind_error("--port", self.config.host, self.config.port,
                                 failed[0]) from None
            finally:
                uvicorn_log.removeFilter(keep)
            if self.started:
                self._on_listening()

    return ListeningServer


def production_node(config: NodeConfig):
    """The node as ``dynamopy serve`` runs it: TCP peer transport, LevelDB under the data
    dir, the system clock, and a generator seeded from the OS (the only place one is)."""
    from dynamopy.node.clock import SystemClock
    from dynamopy.node.runtime import Node
    from dynamopy.peer import TcpTransport
    from dynamopy.storage import LevelDBDisk

    rng = random.Random(int.from_bytes(os.urandom(8), "big"))
    return Node(config, transport=TcpTransport.from_config(config, rng),
                storage=LevelDBDisk(config.data_dir, rng), clock=SystemClock(), rng=rng)


def http_protocol(config: NodeConfig, app, on_reject):
    """The HTTP protocol class of ``--http-server``: ``fast`` serves ``/kv`` data requests
    without ASGI (``api/kv_protocol.py``), ``uvicorn`` sends everything through ASGI; both
    with the read deadline, header limit and lingering close of ``http_limits``."""
    from dynamopy.api.http_limits import limited_protocol
    from dynamopy.api.kv_protocol import kv_protocol

    drain = max(2 * config.max_value_bytes, 64 * 1024)
    if config.http_server == "fast":
        return kv_protocol(app.kv_endpoint, config.http_read_timeout_s, on_reject,
                           drain_bytes=drain)
    return limited_protocol(config.http_read_timeout_s, on_reject, drain_bytes=drain)


def _https(config: NodeConfig) -> dict:
    """uvicorn's TLS options: HTTPS with the node's certificate when TLS is on."""
    tls = config.tls
    if tls is None:
        return {}
    return {"ssl_certfile": tls.cert, "ssl_keyfile": tls.key, "ssl_ca_certs": tls.ca}


def _stop_on_signal(server):
    def handler(signum, frame) -> None:
        log.info("signal %d: stopping", signum)
        server.should_exit = True
    return handler


def run(config: NodeConfig) -> int:
    exposure = assess(config)
    if exposure.refusal:  # before binding anything; the CLI prints it as one line
        raise ValueError(exposure.refusal)
    logging.basicConfig(level=config.log_level.upper(),
                        format=f"%(asctime)s {config.node_id} %(levelname)s %(name)s: %(message)s")
    for warning in exposure.warnings:
        log.warning("%s", warning)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per seed poll is noise
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        return asyncio.run(serve(config))
    return uvloop.run(serve(config))
