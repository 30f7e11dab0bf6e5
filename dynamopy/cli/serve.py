"""`dynamopy serve`: run one node (HTTP + peer RPC) in one asyncio event loop."""

from __future__ import annotations

import asyncio
import logging

from dynamopy.config import NodeConfig

log = logging.getLogger("dynamopy")


async def serve(config: NodeConfig) -> None:
    import uvicorn

    from dynamopy.api.app import create_app
    from dynamopy.node.bootstrap import ensure_member
    from dynamopy.node.runtime import Node

    node = Node(config)
    await node.start()
    app = create_app(node)
    server = uvicorn.Server(uvicorn.Config(
        app, host=config.host, port=config.port, loop="none", lifespan="off",
        access_log=False, log_level="warning", server_header=False, date_header=False,
        timeout_graceful_shutdown=5))
    log.info("node %s: http %s peer %s data %s", node.id, config.advertise_url,
             config.advertise_peer, config.data_dir)
    node.spawn(ensure_member(node))
    try:
        await server.serve()   # returns on SIGINT/SIGTERM (uvicorn installs the handlers)
    finally:
        await node.stop()
        log.info("node %s stopped", node.id)


def run(config: NodeConfig) -> int:
    logging.basicConfig(level=config.log_level.upper(),
                        format=f"%(asctime)s {config.node_id} %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per seed poll is noise
    try:
        import uvloop
        uvloop.run(serve(config))
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        asyncio.run(serve(config))
    return 0
