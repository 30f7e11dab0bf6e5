"""Review finding (session 4): a hint that is already expired when it is stored still counts
toward W.

``tombstone_grace_s`` is accepted down to any value > 0 (flag and ``POST /cluster/config``),
and a hint older than 90% of the grace less ``--max-clock-offset-ms`` is dropped, never
delivered. With a grace of 0.4 s (and the default 500 ms bound) every hint is expired at
birth, yet the fallback stored it and acked it. README: "A fallback that cannot store a hint
(window or cap) answers an error instead of an ack, so a dropped hint never counts toward W".
Here a W=2 write is acknowledged by one home replica and one such hint; the hint is dropped;
the one replica holding the write crashes, and the acknowledged write reads as never written.

Fixed (``HintManager.store`` refuses such a hint: the write answers 503, which this test
accepts). The suite's regression test is ``tests/unit/test_fallback_reply.py::
test_a_fallback_refuses_a_hint_that_is_expired_when_offered``; this real-process repro (about
7 s) is run by hand: ``python -m pytest -q tests/repro/repro_hint_grace_ack.py``.

Since session 5 the flags below are refused at start-up (exit 2): a grace must let a hint
outlive the hint window (``core.tombstones.grace_covers_window``; 0.4 s needs
``--hint-window-s 0``), so this repro no longer starts as written. A hint expired at birth
stays reachable only on a node whose ``--max-clock-offset-ms`` is larger than the one the
settings were checked against, which the fallback's refusal still covers.
"""

import signal

import pytest

from dynamopy.client import DynamoError

pytestmark = pytest.mark.integration


def test_a_hint_expired_at_birth_never_counts_toward_w(make_cluster):
    c = make_cluster(4, n=3, r=1, w=2, extra=["--anti-entropy-interval-s", "0",
                                              "--tombstone-grace-s", "0.4"])
    ids = [c.node_id(i) for i in range(4)]
    key = "k"
    with c.client(0, timeout_s=5) as cl:
        prefs = cl.preference_list(key)
    home, b, d = prefs[0], prefs[1], prefs[2]   # home coordinates; b and d go down
    (fallback,) = set(ids) - set(prefs)
    idx = {m: i for i, m in enumerate(ids)}
    for m in (b, d):
        c.pause(idx[m])
    try:
        c.wait_until(lambda: not any(m["alive"] for m in c.cluster_info(idx[home])["members"]
                                     if m["id"] in (b, d)), 10, "b and d seen down")
        with c.client(idx[home], timeout_s=5) as cl:
            try:
                acked = cl.put(key, b"v", w=2)   # home + a hint on the fallback
            except DynamoError as e:
                assert e.status == 503, e     # refused honestly: nothing to check
                return
        assert acked["acks"] == 2
    finally:
        for m in (b, d):
            c.resume(idx[m])
    # b is back: the fallback drops the expired hint instead of delivering it
    c.wait_until(lambda: "reason=\"expired\"" in _metrics(c, idx[fallback]), 5,
                 "the hint dropped as expired")
    c.kill(idx[home], signal.SIGKILL)   # one node down: an acknowledged W=2 write survives it
    with c.client(idx[fallback], timeout_s=5) as cl:
        c.wait_until(lambda: not any(m["alive"] for m in c.cluster_info(idx[fallback])["members"]
                                     if m["id"] == home), 10, "home seen down")
        try:
            got = cl.get(key, r=1)
        except DynamoError as e:
            raise AssertionError(f"a write acknowledged at W=2 is gone with one node down: "
                                 f"{e}") from None
        assert got.version == acked["version"]


def _metrics(c, i: int) -> str:
    import httpx
    text = httpx.get(c.url(i) + "/metrics", timeout=3).text
    return "\n".join(line for line in text.splitlines()
                     if line.startswith("dynamopy_hints_dropped_total") and " 0.0" not in line)
