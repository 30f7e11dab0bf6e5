"""The coordinator's write re-stamping (issue 16), with the replicas stood in by a function.

Only the replica calls and the node's collaborators are replaced; the write loop, the quorum
round and the fan-out are the real ones.
"""

import asyncio
from types import SimpleNamespace

import pytest

from dynamopy.core.quorum import Target
from dynamopy.core.versions import HybridClock
from dynamopy.node.coordinator import MAX_RESTAMPS, Coordinator
from dynamopy.node.errors import QuorumUnavailable


class _Versions:
    def __init__(self):
        self.hlc = HybridClock(1)
        self.wall = 1_000_000
        self.afters: list[int] = []

    async def next(self, after: int = 0, wall_ms=None) -> int:   # (wall_ms: ignored)
        self.afters.append(after)
        if after:
            self.hlc.observe(after)
        self.wall += 1
        return self.hlc.next(self.wall)


class _Counter:
    def __init__(self):
        self.value = 0

    def inc(self):
        self.value += 1

    def labels(self, *_):
        return self


class _Clock:
    """Monotonic time that moves only when a test moves it."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def _node():
    state = SimpleNamespace(ring=SimpleNamespace(token=lambda key: 7), change=None, epoch=1)
    async def serving_state():
        return state

    return SimpleNamespace(
        id="me", versions=_Versions(), clock=_Clock(), require_ready=lambda: state, serving_state=serving_state,
        detector=SimpleNamespace(check_clock=lambda: None),
        config=SimpleNamespace(request_timeout_s=1.0),
        metrics=SimpleNamespace(restamps=_Counter(), quorum_failures=_Counter()))


def _deps(node) -> dict:
    """The Coordinator's narrow collaborators, taken from the stand-in (None if it has none:
    the test does not reach them)."""
    get = lambda name: getattr(node, name, None)  # noqa: E731
    return dict(me=get("id"), config=get("config"), state=lambda: get("state"),
                clock=get("clock"), metrics=get("metrics"), detector=get("detector"),
                replica=None, hints=None, call_peer=None, versions=get("versions"),
                observe_version=lambda v: None, serving_state=get("serving_state"),
                require_ready=get("require_ready"), wait_for_epoch=None)


class _Coordinator(Coordinator):
    """Three replicas whose answer to each put is ``reply(node, version)``."""

    def __init__(self, node, reply):
        super().__init__(**_deps(node))
        self.reply = reply
        self.sent: list[tuple[str, int]] = []

    def _targets(self, state, token, sloppy):
        return [Target("a"), Target("b"), Target("c")]

    def _start_put(self, t, epoch, token, key, record, wire, stale):
        self.sent.append((t.node, record.version))
        answer = asyncio.get_running_loop().create_future()
        answer.set_result(self.reply(t.node, record.version))
        return answer


def _write(coord, w=2):
    return asyncio.run(coord.write(b"k", value=b"v", content_type="x", deleted=False, w=w))


def test_in_order_versions_cost_one_round():
    node = _node()
    coord = _Coordinator(node, lambda n, v: v)
    version, acks = _write(coord)
    assert acks >= 2 and len({v for _, v in coord.sent}) == 1
    assert node.metrics.restamps.value == 0


def test_one_newer_replica_below_quorum_needs_no_restamp():
    node = _node()
    coord = _Coordinator(node, lambda n, v: 10**18 if n == "c" else v)
    version, acks = _write(coord)
    assert acks == 2 and node.metrics.restamps.value == 0


def test_a_write_is_restamped_above_the_newest_version_heard():
    node = _node()
    newer = {"a": 5 * 10**15, "b": 6 * 10**15}

    def reply(n, v):
        return max(v, newer.get(n, 0))   # a and b hold something newer than the first stamp
    coord = _Coordinator(node, reply)
    version, acks = _write(coord)
    assert version > 6 * 10**15 and acks >= 2
    assert node.versions.afters[-1] == 6 * 10**15      # the clock absorbed the newest heard
    assert node.metrics.restamps.value == 1


def test_replicas_always_newer_give_up_after_max_restamps():
    node = _node()
    coord = _Coordinator(node, lambda n, v: v + 10**9)   # always one step ahead
    with pytest.raises(QuorumUnavailable) as e:
        _write(coord)
    assert node.metrics.restamps.value == MAX_RESTAMPS
    assert f"newer versions after {MAX_RESTAMPS} re-stamps" in e.value.detail
    assert len({v for _, v in coord.sent}) == MAX_RESTAMPS + 1


def test_a_write_outbid_several_rounds_running_still_succeeds():
    # Other writers keep writing the key: the first five stamps each meet a newer version on
    # two replicas. The write goes on re-stamping within its time and lands (the CI run of
    # stop 28 saw a 503 with six writers on one key, when the limit was three re-stamps).
    node = _node()
    rounds: list[int] = []

    def reply(n, v):
        if not rounds or rounds[-1] != v:
            rounds.append(v)
        return v + 10**9 if len(rounds) <= 5 and n != "c" else v
    coord = _Coordinator(node, reply)
    version, acks = _write(coord)
    assert acks >= 2 and version == rounds[-1]
    assert node.metrics.restamps.value == 5


def test_re_stamping_stops_when_the_request_timeout_is_spent():
    node = _node()

    def reply(n, v):
        node.clock.now += 0.3          # each round takes 0.3 s; the timeout is 1.0 s
        return v + 10**9
    coord = _Coordinator(node, reply)
    with pytest.raises(QuorumUnavailable) as e:
        _write(coord)
    assert node.metrics.restamps.value < MAX_RESTAMPS
    assert node.clock.now >= node.config.request_timeout_s
    assert "other writers kept writing this key" in e.value.detail


def test_no_round_starts_once_the_request_timeout_is_spent():
    # Each round takes 0.25 s and the request timeout is 1.0 s: rounds start at 0, 0.25, 0.5
    # and 0.75 s; at 1.0 s the time is spent, so the write answers 503 instead of a fifth.
    node = _node()

    def reply(n, v):
        if n == "a":
            node.clock.now += 0.25
        return v + 10**9
    coord = _Coordinator(node, reply)
    with pytest.raises(QuorumUnavailable) as e:
        _write(coord)
    assert len({v for _, v in coord.sent}) == 4
    assert node.metrics.restamps.value == 3 and "after 3 re-stamps" in e.value.detail


def test_a_clock_step_refusing_a_re_stamp_says_the_write_may_be_stored():
    """The first stamp went out (replicas may hold it); the clock stepped before the re-stamp.
    The 503 clock_skew must not read as "nothing was written" (found in review, session 15)."""
    from dynamopy.node.errors import ClockSkew
    node = _node()
    checks = []

    def check_clock():
        checks.append(1)
        if len(checks) > 1:
            raise ClockSkew("this node's clock is 3600000 ms off its peers", offset_ms=3600000,
                            max_clock_offset_ms=500)
    node.detector = SimpleNamespace(check_clock=check_clock)
    coord = _Coordinator(node, lambda n, v: v + 10**9)   # every replica holds a newer one
    with pytest.raises(ClockSkew) as e:
        _write(coord)
    assert len(checks) == 2 and len({v for _, v in coord.sent}) == 1
    assert "may still be stored on some replicas" in e.value.detail
    assert e.value.extra == {"offset_ms": 3600000, "max_clock_offset_ms": 500}


# ---- session tokens are bounded by the wall clock (found in review) ----------------------

def _token_coordinator(max_offset_ms: int, wall_ms: int, hybrid_ms: int) -> Coordinator:
    node = SimpleNamespace(config=SimpleNamespace(max_clock_offset_ms=max_offset_ms),
                           clock=SimpleNamespace(wall_ms=lambda: wall_ms),
                           hybrid_ms=lambda: hybrid_ms)
    return Coordinator(**_deps(node))


def test_a_token_is_bounded_by_the_wall_clock_not_the_hybrid_one():
    """A chain of tokens each 2.4 s ahead of the last must not ratchet versions: the hybrid
    clock already moved by earlier tokens does not widen the bound."""
    from dynamopy.core.versions import compose
    from dynamopy.node.errors import BadRequest
    wall = 1_800_000_000_000
    coord = _token_coordinator(500, wall, hybrid_ms=wall + 90_000)
    coord._check_token(compose(wall + 2_000, 0, 1))          # within 0.5 s + 2 s: fine
    coord._check_token(compose(wall + 2_500, 0, 1))          # exactly at the bound: fine
    with pytest.raises(BadRequest) as e:
        coord._check_token(compose(wall + 2_600, 0, 1))
    assert e.value.detail == (f"X-Dynamopy-After={compose(wall + 2_600, 0, 1)} is 2.6 s ahead "
                              "of this node's clock: not a version this cluster issued")
    tight = _token_coordinator(200, wall, hybrid_ms=wall)   # the configured bound is used
    with pytest.raises(BadRequest):
        tight._check_token(compose(wall + 2_400, 0, 1))


def test_a_token_is_bounded_with_the_skew_check_off():
    from dynamopy.core.versions import compose
    from dynamopy.node.errors import BadRequest
    wall = 1_800_000_000_000
    coord = _token_coordinator(0, wall, hybrid_ms=wall)
    coord._check_token(compose(wall + 1_000, 0, 1))
    coord._check_token(compose(wall + 2_400, 0, 1))          # the default 0.5 s + 2 s
    with pytest.raises(BadRequest):
        coord._check_token((1 << 63) - 1)
