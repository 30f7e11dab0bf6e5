"""In-process runs are a function of their seed: the same scenario twice gives the same
versions, the same virtual times and the same number of peer calls (what the whole-system
simulator will rely on to replay a failing seed)."""

import asyncio

from dynamopy.sim.clock import run_virtual
from dynamopy.sim.inprocess import InProcessCluster


def _scenario(seed: int):
    async def main():
        async with InProcessCluster(["n1", "n2", "n3"], seed=seed) as c:
            ready_at = asyncio.get_running_loop().time()
            versions = []
            for i in range(10):
                co = c.coordinator(f"n{i % 3 + 1}")
                versions.append((await co.write(b"k%d" % i, value=b"x", content_type="a",
                                                deleted=False, w=2))[0])
            await c.crash("n2")
            await asyncio.sleep(3)
            for i in range(3):
                versions.append((await c.coordinator("n1").write(
                    b"j%d" % i, value=b"x", content_type="a", deleted=False, w=2))[0])
            return ready_at, asyncio.get_running_loop().time(), versions, c.network.calls
    return run_virtual(main())


def test_the_same_seed_replays_the_same_run():
    assert _scenario(9) == _scenario(9)
