"""The node's durable version mark (node/version_clock.py) over stand-in storage and clock."""

import asyncio
from types import SimpleNamespace

import pytest

from dynamopy.core.versions import compose, physical_ms
from dynamopy.node.errors import NotReady
from dynamopy.node.version_clock import LEAD_MS, MARK_KEY, VersionClock


class _Clock:
    def __init__(self, wall_ms):
        self.now = wall_ms
        self.slept = []

    def wall_ms(self):
        return self.now

    async def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += int(seconds * 1000)


def _node(wall_ms, mark=None, number=3):
    disk = {} if mark is None else {MARK_KEY: str(mark).encode()}
    writes = []

    async def put_meta(name, value):
        disk[name] = value
        writes.append(int(value))

    me = SimpleNamespace(number=number)
    node = SimpleNamespace(id="n", clock=_Clock(wall_ms),
                           store=SimpleNamespace(meta_get=disk.get),
                           committer=SimpleNamespace(put_meta=put_meta),
                           state=SimpleNamespace(member=lambda mid: me))
    return node, disk, writes


def _version_clock(node) -> VersionClock:
    return VersionClock(me=node.id, state=lambda: node.state, store=node.store,
                        committer=node.committer, clock=node.clock)


def _run(coro):
    return asyncio.run(coro)


def test_a_restart_after_a_crash_waits_out_the_mark_then_stamps_at_the_wall_clock():
    node, disk, writes = _node(10_000, mark=10_600)
    vc = _version_clock(node)

    async def go():
        await vc.load()
        vc.start(3)
        return await vc.next()
    v = _run(go())
    assert node.clock.slept == [pytest.approx(0.601)]
    assert physical_ms(v) == node.clock.now > 10_600


def test_a_version_beyond_the_durable_mark_waits_for_a_synced_extension():
    node, disk, writes = _node(50_000)
    vc = _version_clock(node)
    vc.start(3)

    async def go():
        first = await vc.next()
        vc.hlc.observe(compose(90_000, 0, 1))      # a version from a node far ahead
        second = await vc.next()
        return first, second
    first, second = _run(go())
    assert writes[0] == 50_000 + LEAD_MS                  # wall + lead, before the first
    assert physical_ms(second) == 90_000 and writes[-1] == 90_000
    assert int(disk[MARK_KEY]) >= physical_ms(second)     # durable before it was returned


def test_a_clean_stop_stores_the_exact_time_so_the_next_start_does_not_wait():
    node, disk, writes = _node(70_000)
    vc = _version_clock(node)
    vc.start(3)

    async def go():
        v = await vc.next()
        await vc.close()
        return v
    v = _run(go())
    assert int(disk[MARK_KEY]) == physical_ms(v) == 70_000
    node2, _, _ = _node(70_001, mark=int(disk[MARK_KEY]))
    vc2 = _version_clock(node2)

    async def again():
        await vc2.load()
        vc2.start(3)
        return await vc2.next()
    assert _run(again()) > v and node2.clock.slept == []


def test_a_removed_member_stamps_nothing():
    node, _, _ = _node(1_000)
    vc = _version_clock(node)
    vc.start(3)
    node.state.member = lambda mid: None
    with pytest.raises(NotReady):
        _run(vc.next())


class _Stop(Exception):
    pass


class _SteppingClock:
    """Wall and monotonic clocks advancing together; the wall clock jumps ``step_ms`` ahead
    at the ``step_at``-th sleep; ``_Stop`` after ``ticks`` sleeps."""

    def __init__(self, step_at, step_ms, ticks):
        self.wall, self.mono, self.n = 100_000, 50.0, 0
        self.step_at, self.step_ms, self.ticks = step_at, step_ms, ticks

    def wall_ms(self):
        return self.wall

    def monotonic(self):
        return self.mono

    async def sleep(self, seconds):
        self.n += 1
        if self.n > self.ticks:
            raise _Stop
        self.mono += seconds
        self.wall += int(seconds * 1000)
        if self.n == self.step_at:
            self.wall += self.step_ms


def test_the_mark_does_not_follow_a_clock_that_stepped_ahead():
    """Found in review: the loop kept the mark LEAD_MS ahead of a wall clock stepped 10
    minutes ahead (the node fenced, stamping nothing), and after a crash the node continued
    from that mark, 10 minutes ahead. The fence judges once per ping round: here two
    refreshes after the step. Until then the loop holds back because it saw the jump; from
    then on it does not lead because the node is fenced (4 s of refreshes in all)."""
    node, disk, writes = _node(0)
    node.clock = _SteppingClock(step_at=4, step_ms=600_000, ticks=16)
    vc = VersionClock(me=node.id, state=lambda: node.state, store=node.store,
                      committer=node.committer, clock=node.clock,
                      may_lead=lambda: node.clock.n < 6)   # fenced from the 6th refresh on
    vc.start(3)
    with pytest.raises(_Stop):
        _run(vc.run())
    assert writes, "the loop leads the mark before the step"
    assert max(writes) < 100_000 + 2_000 + LEAD_MS, "the mark followed the stepped clock"


def test_only_a_verdict_of_a_majority_of_the_current_members_lets_the_mark_lead():
    """FailureDetector.clock_confirmed, what the node passes as ``may_lead``. Found in review:
    a seed judged its clock alone before the bootstrap (no peers known: vouched), and that
    verdict let the mark lead a clock 10 minutes ahead in the moment after the bootstrap."""
    from dynamopy.core.clock_offsets import SkewVerdict
    from dynamopy.node.detector import FailureDetector
    members = {}
    det = FailureDetector(me="n1", state=lambda: SimpleNamespace(members=members),
                          clock=None, metrics=None, call_peer=None, note_epoch=None,
                          max_clock_offset_ms=500, on_alive=None)
    assert not det.clock_confirmed                       # no verdict yet
    det.skew = SkewVerdict(False, 0.0, far=0, measured=0, peers=0)   # alone, no peers known
    assert det.clock_confirmed
    members.update({"n1": 1, "n2": 2, "n3": 3})          # the bootstrap: two peers now
    assert not det.clock_confirmed, "a verdict judged before the peers were known"
    det.skew = SkewVerdict(False, 0.0, far=0, measured=0, peers=2)   # none measured yet
    assert not det.clock_confirmed
    det.skew = SkewVerdict(False, 0.0, far=0, measured=1, peers=2)   # one near: 2 of 3
    assert det.clock_confirmed
    det.skew = SkewVerdict(True, 6e5, far=2, measured=2, peers=2, checked=False,
                           reason="majority")
    assert not det.clock_confirmed
