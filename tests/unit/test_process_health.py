"""GC pauses and event-loop lag reach the node's /metrics text (dynamopy/node/process_health.py)."""

import asyncio
import gc
import re
import time

from dynamopy.node.metrics import Metrics
from dynamopy.node.process_health import GcPauses, LoopLag


def _value(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def test_a_collection_of_cyclic_garbage_is_timed_and_counted():
    metrics = Metrics()
    pauses = GcPauses(metrics.gc_pause_seconds, metrics.gc_collected)
    pauses.install()
    try:
        for _ in range(100):   # cyclic garbage only the collector can free
            a: list = []
            a.append(a)
        del a
        gc.collect()
    finally:
        pauses.remove()
    text = metrics.render().decode()
    assert _value(text, 'dynamopy_gc_pause_seconds_count{generation="2"}') >= 1
    assert _value(text, 'dynamopy_gc_collected_objects_total{generation="2"}') >= 100
    assert pauses._callback not in gc.callbacks


def test_a_blocked_event_loop_shows_as_lag():
    metrics = Metrics()

    async def main():
        lag = LoopLag(metrics.loop_lag_seconds, interval_s=0.01)
        lag.start()
        await asyncio.sleep(0.05)
        time.sleep(0.2)            # a callback that holds the loop for 200 ms
        await asyncio.sleep(0.05)
        lag.stop()

    asyncio.run(asyncio.wait_for(main(), 10))
    text = metrics.render().decode()
    assert _value(text, "dynamopy_event_loop_lag_seconds_count") >= 3
    assert _value(text, "dynamopy_event_loop_lag_seconds_sum") >= 0.15
    # the 200 ms stall lands above the 0.1 s bucket: exactly one sample there
    assert (_value(text, 'dynamopy_event_loop_lag_seconds_bucket{le="5.0"}')
            - _value(text, 'dynamopy_event_loop_lag_seconds_bucket{le="0.1"}')) >= 1
