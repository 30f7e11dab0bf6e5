"""Blocking store work kept off the event loop.

A node's event loop answers every request of the node; a store read that grows with the
data (a scan of a span, a few thousand gets) must not run on it, or every request waits
for it (docs/perf.md, session 8: a scan of 2,000 keys held a node 60-110 ms). Such reads
run on the loop's default executor. An in-memory store (the simulator's) is ``inline``: its
reads run on the loop, where they cost little, so a simulated run stays deterministic.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable


async def off_loop(inline: bool, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on the loop's default executor (on the loop itself when ``inline``)."""
    if inline:
        return fn(*args)
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
