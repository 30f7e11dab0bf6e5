"""Unit tests of node.anti_entropy: exchanges between in-process components over real
LevelDB stores; the peer caller routes to the other component's handlers (no sockets)."""

from __future__ import annotations

import asyncio
import functools
import random
from dataclasses import replace

import pytest

from dynamopy.core.membership import ClusterState, Settings
from dynamopy.core.merkle import HashTree
from dynamopy.core.records import Record
from dynamopy.core.tombstones import hint_expired
from dynamopy.core.versions import compose
from dynamopy.node.anti_entropy import AntiEntropy, PeerExchange
from dynamopy.node.metrics import Metrics
from dynamopy.core.placement import held_ranges, subtract_sorted
from dynamopy.peer import PeerUnavailable, RemoteError
from dynamopy.storage import Store
from ring import Ring


def aio(fn):
    """Run an async test on a fresh event loop."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))
    return run


class FakeClock:
    """Virtual time: sleeps return at once and advance the clock."""

    def __init__(self):
        self.t = 0.0
        self.slept = 0.0

    def wall_ms(self) -> int:
        return 1_700_000_000_000 + int(self.t * 1000)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += s
        self.slept += s
        await asyncio.sleep(0)


class Cluster:
    """Components of ``ids`` sharing one state; ``apply_repairs`` writes through the store
    with the replica's rules (epoch, tokens replicated, newest wins)."""

    def __init__(self, tmp_path, ids, n=3, rate=100_000, ring_ids=None):
        self.state = ClusterState(epoch=7, ring=Ring.build(ring_ids or ids, partitions=64),
                                  settings=Settings(n=n, r=1, w=1, anti_entropy_interval_s=1.0,
                                                    anti_entropy_rate=rate))
        self.fail_calls: dict[str, int] = {}  # peer -> calls to it that fail still
        self.clock = FakeClock()
        self.stores = {i: Store(str(tmp_path / i)) for i in ids}
        self.ae = {}
        self.repair_calls = []
        for i in ids:
            self.ae[i] = AntiEntropy(
                node_id=i, interval_s=1.0, rate_keys_s=rate, call_peer=self._caller(i),
                get_state=lambda: self.state, is_up=lambda m: True,
                apply_repairs=self._repairer(i), note_epoch=lambda e, p: None,
                clock=self.clock, rng=random.Random(1), metrics=Metrics(),
                tombstone_grace_s=10 * 86400.0)

    def _caller(self, me):
        async def call(peer, method, payload, timeout_s=None):
            if self.fail_calls.get(peer):
                self.fail_calls[peer] -= 1
                raise PeerUnavailable(f"{peer} is down")
            ae = self.ae[peer]
            handler = {"ae_tree": ae.rpc_tree, "ae_keys": ae.rpc_keys, "ae_get": ae.rpc_get,
                       "ae_push": ae.rpc_push, "ae_versions": ae.purge.rpc_versions,
                       "ae_purge": ae.purge.rpc_purge}[method]
            result = handler(payload, me)
            return await result if asyncio.iscoroutine(result) else result
        return call

    def _repairer(self, me):
        async def apply_repairs(epoch, items):
            assert epoch == self.state.epoch
            ring, n = self.state.ring, self.state.settings.n
            for t, _k, _r in items:
                assert me in ring.preference_list_for_token(t, n), "repair to a non-replica"
            self.repair_calls.append((me, len(items)))
            return sum(self.stores[me].apply(items, sync=False))
        return apply_repairs

    async def attach(self):
        for i, ae in self.ae.items():
            await ae.attach(self.stores[i])

    def put(self, member, key: bytes, version: int, deleted=False, value=b"v"):
        t = self.state.ring.token(key)
        self.stores[member].apply([(t, key, Record(version, deleted, "text/plain", value))],
                                  sync=False)

    def write_everywhere(self, key, version, **kw):
        t = self.state.ring.token(key)
        for m in self.state.ring.preference_list_for_token(t, self.state.settings.n):
            self.put(m, key, version, **kw)

    def replicas_of(self, key):
        return self.state.ring.preference_list(key, self.state.settings.n)

    def close(self):
        for ae in self.ae.values():
            ae.detach()
        for s in self.stores.values():
            s.close()


@pytest.fixture
def cluster(tmp_path):
    made = []

    def make(ids=("a", "b", "c"), **kw):
        c = Cluster(tmp_path, list(ids), **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def records(store):
    return {(t, k): (r.version, r.deleted, r.value) for t, k, r in store.scan(0, 2**32)}


@aio
async def test_one_round_brings_replicas_level_both_ways(cluster):
    c = cluster()
    for i in range(300):
        c.write_everywhere(f"k{i}".encode(), 1000 + i)
    # a misses 20 writes, b misses 10 newer versions and a delete, c holds a stale copy
    for i in range(20):
        c.put("b", f"miss{i}".encode(), 5000 + i)
        c.put("c", f"miss{i}".encode(), 5000 + i)
    for i in range(10):
        c.put("a", f"k{i}".encode(), 9000 + i, value=b"new")
        c.put("c", f"k{i}".encode(), 9000 + i, value=b"new")
    c.put("a", b"k50", 9500, deleted=True, value=b"")
    await c.attach()
    await c.ae["a"].round()  # one node's round: it pulls and pushes with each co-replica
    want = records(c.stores["a"])
    assert len(want) == 320
    assert records(c.stores["b"]) == want == records(c.stores["c"])
    assert want[(c.state.ring.token(b"k50"), b"k50")][1] is True  # the tombstone won
    for ae in c.ae.values():
        assert ae.tree.root() == HashTree.build(
            (t, k, r.version, r.deleted) for t, k, r in ae.store.scan(0, 2**32)).root()
    # a second round finds nothing to do and lists no keys
    before = sum(ae.totals.keys_compared for ae in c.ae.values())
    await c.ae["b"].round()
    assert sum(ae.totals.keys_compared for ae in c.ae.values()) == before
    assert c.ae["a"].view()["peers"]["b"]["outcome"] == "ok"
    from dynamopy.core.membership import Member
    gone = ClusterState(epoch=8, members={m: Member(m, "u", "p", i) for i, m in
                                          enumerate(("a", "c"), 1)})
    c.ae["a"].on_state_change(c.state, gone)  # b left: its exchange record goes
    assert sorted(c.ae["a"].view()["peers"]) == ["c"]
    text = c.ae["a"].metrics.render().decode()
    for line in ('dynamopy_anti_entropy_exchanges_total{outcome="ok"} 2.0',
                 'dynamopy_anti_entropy_keys_repaired_total{direction="pulled"} 20.0',
                 # 10 newer values and a tombstone to b, the tombstone to c
                 'dynamopy_anti_entropy_keys_repaired_total{direction="pushed"} 12.0'):
        assert line in text, line
    sent = c.ae["a"].view()["bytes_sent"]
    assert sent > 0 and f'dynamopy_anti_entropy_bytes_total{{direction="sent"}} {float(sent)}' in text
    assert "dynamopy_anti_entropy_tree_build_seconds" in text


@aio
async def test_exchanges_only_shared_ranges_and_writes_only_replicas(cluster):
    """Five members, N=3: a pair compares only ranges both replicate; no record lands on a
    member that does not replicate it (the repairer asserts it)."""
    c = cluster(ids=("a", "b", "c", "d", "e"))
    rng = random.Random(3)
    for i in range(400):
        key = f"k{i}".encode()
        reps = c.replicas_of(key)
        for m in reps:
            if rng.random() < 0.7:
                c.put(m, key, 100 + i)
    await c.attach()
    for m in c.ae:
        await c.ae[m].round()
    for i in range(400):
        key = f"k{i}".encode()
        t = c.state.ring.token(key)
        held = [m for m in c.stores if c.stores[m].get(t, key) is not None]
        reps = c.replicas_of(key)
        assert set(held) <= set(reps)
        if held:
            assert set(held) == set(reps), key


@aio
async def test_after_a_ring_change_an_exchange_compares_the_new_shared_ranges(cluster):
    """The ranges a pair shares (and their tree cover) are remembered per ring: an exchange
    under a new ring compares what the pair shares in that ring, not the old one."""
    c = cluster(ids=("a", "b", "c", "d", "e"))
    await c.attach()
    a = c.ae["a"]
    await a.exchange("b")  # remembers the a-b ranges of the 5-member ring
    ring5 = c.state.ring
    key = next(k for k in (f"k{i}".encode() for i in range(10_000))
               if "a" in c.replicas_of(k) and "b" not in c.replicas_of(k))
    c.state = ClusterState(epoch=8, ring=Ring.build(["a", "b", "c"], partitions=64),
                           settings=c.state.settings)
    assert set(c.replicas_of(key)) == {"a", "b", "c"}
    c.put("a", key, 777)
    stats = await a.exchange("b")
    assert stats.keys_pushed == 1, "the exchange compared the old ring's shared ranges"
    t = c.state.ring.token(key)
    assert c.stores["b"].get(t, key).version == 777
    assert "a" in ring5.preference_list(key, 3) and "b" not in ring5.preference_list(key, 3)


@aio
async def test_with_the_same_ring_and_another_n_an_exchange_compares_the_new_shared_ranges(
        cluster):
    """The memo of what a pair shares is keyed by N too: the same ring object under another
    N (the in-process seam; N is fixed at bootstrap in a real cluster) compares the ranges
    the pair shares at that N (review 12: passes only with ``got[1] != n`` in the memo)."""
    c = cluster(ids=("a", "b", "c", "d", "e"), n=2)
    await c.attach()
    a = c.ae["a"]
    await a.exchange("b")  # remembers the a-b ranges at N=2
    ring = c.state.ring
    key = next(k for k in (f"k{i}".encode() for i in range(10_000))
               if {"a", "b"} <= set(ring.preference_list(k, 3))
               and not {"a", "b"} <= set(ring.preference_list(k, 2)))
    c.state = ClusterState(epoch=7, ring=ring, settings=replace(c.state.settings, n=3))
    c.put("a", key, 777)
    stats = await a.exchange("b")
    assert stats.keys_pushed == 1, "the exchange compared the N=2 shared ranges"
    assert c.stores["b"].get(ring.token(key), key).version == 777


@aio
async def test_a_tree_request_for_nodes_outside_the_tree_is_a_bad_request(cluster):
    c = cluster(ids=("a", "b"), n=2)
    c.put("b", b"k", 5)
    await c.attach()
    b, top = c.ae["b"], c.ae["b"].tree.root_level
    assert b.rpc_tree([7, [top, 0, 0, 0]], "a")[0] == b.tree.root() != 0
    for flat in ([top + 1, 0], [0, -1], [0, 1 << 18], [0, "1"]):
        with pytest.raises(RemoteError) as e:
            b.rpc_tree([7, flat], "a")
        assert e.value.code == "bad_request" and "no tree node" in str(e.value), flat


@aio
async def test_bytes_grow_with_differences_not_with_data(cluster):
    c = cluster(ids=("a", "b"), n=2)
    for i in range(5000):
        c.write_everywhere(f"k{i}".encode(), 10 + i)
    for i in range(5):
        c.put("a", f"only{i}".encode(), 90_000 + i)
    await c.attach()
    stats = await c.ae["a"].exchange("b")
    assert stats.keys_pushed == 5 and stats.keys_pulled == 0
    full = 5000 * (len(b"k1234") + 9 + 5)  # listing every (token, key, version) once
    assert stats.bytes < full / 5, (stats.bytes, full)
    assert stats.keys_compared < 100


@aio
async def test_rate_cap_paces_the_exchange(cluster):
    c = cluster(ids=("a", "b"), n=2, rate=100)
    for i in range(200):
        c.put("a", f"k{i}".encode(), 10 + i)
    await c.attach()
    await c.ae["a"].exchange("b")
    assert records(c.stores["b"]) == records(c.stores["a"])
    # 200 keys listed + 200 pushed at 100 keys/s: at least 4 s of (virtual) sleeping
    assert c.clock.slept >= 4.0


@aio
async def test_a_peer_at_another_epoch_is_refused_and_no_exchange_runs_mid_change(cluster):
    c = cluster(ids=("a", "b"), n=2)
    await c.attach()
    b = c.ae["b"]
    with pytest.raises(RemoteError) as e:
        b.rpc_tree([6, [0, 0]], "a")
    assert e.value.code == "stale_epoch"
    noted = []
    c.ae["a"].note_epoch = lambda epoch, peer: noted.append((epoch, peer))
    c.ae["b"].get_state = lambda: ClusterState(epoch=9, ring=c.state.ring,
                                               settings=c.state.settings)
    stats = await c.ae["a"].exchange("b")  # b is ahead: a notes it (and catches up)
    assert stats.outcome == "stale_epoch" and noted == [(9, "b")]
    c.ae["b"].get_state = lambda: c.state
    c.state = ClusterState(epoch=7, ring=c.state.ring, settings=c.state.settings,
                           change=("join", "z"))
    stats = await c.ae["a"].exchange("b")  # the initiator skips while a change runs
    assert stats.bytes == 0


@aio
async def test_off_means_no_tree_and_refused_methods(cluster, tmp_path):
    c = cluster(ids=("a", "b"), n=2)
    c.ae["b"].interval_s = 0
    await c.attach()
    assert not c.ae["b"].built and c.stores["b"]._watcher is None
    stats = await c.ae["a"].exchange("b")
    assert stats.outcome == "anti_entropy_off"


@aio
async def test_tree_follows_writes_and_range_drops_through_the_store_watcher(cluster):
    c = cluster(ids=("a",), n=1)
    s = c.stores["a"]
    for i in range(50):
        c.put("a", f"pre{i}".encode(), 10 + i)
    await c.attach()
    for i in range(50):
        c.put("a", f"post{i}".encode(), 100 + i)
        c.put("a", f"pre{i}".encode(), 200 + i, deleted=i % 2 == 0)
    s.delete_range(0, 2**31)
    tree = c.ae["a"].tree
    rebuilt = HashTree.build((t, k, r.version, r.deleted) for t, k, r in s.scan(0, 2**32))
    assert tree.root() == rebuilt.root() and tree.records == rebuilt.records == s.key_count()


def test_settings_flags_env_and_bounds():
    import argparse

    from dynamopy import config

    def resolve(argv, env=None):
        p = argparse.ArgumentParser()
        config.add_arguments(p)
        return config.resolve(p.parse_args(argv), env or {})

    c = resolve([])
    assert (c.anti_entropy_interval_s, c.anti_entropy_rate) == (180.0, 1000)
    assert c.tombstone_grace_s == 864000.0
    assert resolve([], {"DYNAMOPY_TOMBSTONE_GRACE_S": "2",
                        "DYNAMOPY_HINT_WINDOW_S": "1"}).tombstone_grace_s == 2.0
    with pytest.raises(ValueError, match="tombstone-grace-s"):
        resolve(["--tombstone-grace-s", "0"])
    c = resolve(["--anti-entropy-interval-s", "0.5"],
                {"DYNAMOPY_ANTI_ENTROPY_RATE": "50", "DYNAMOPY_ANTI_ENTROPY_INTERVAL_S": "9"})
    assert (c.anti_entropy_interval_s, c.anti_entropy_rate) == (0.5, 50)
    assert resolve(["--anti-entropy-interval-s", "0"]).anti_entropy_interval_s == 0
    with pytest.raises(ValueError, match="anti-entropy-interval-s"):
        resolve(["--anti-entropy-interval-s", "-1"])
    with pytest.raises(ValueError, match="anti-entropy-rate"):
        resolve(["--anti-entropy-rate", "0"])


def test_a_grace_too_short_for_the_hint_window_is_refused_at_start_up(tmp_path, capsys,
                                                                     monkeypatch):
    """``serve`` exits 2 with one line naming both flags when a hint stored within the hint
    window would expire (90% of the grace less --max-clock-offset-ms) before the window
    ends (core.tombstones.grace_covers_window); nothing is created."""
    import argparse

    from dynamopy.cli import main, serve

    def started(cfg):
        raise AssertionError("the node started")  # (never a real server in a unit test)

    monkeypatch.setattr(serve, "run", started)
    data = tmp_path / "d"
    cases = (["--tombstone-grace-s", "60"],                          # window 3 h
             ["--tombstone-grace-s", "3600", "--hint-window-s", "3600"],
             ["--tombstone-grace-s", "4000", "--hint-window-s", "3600",
              "--max-clock-offset-ms", "400000"])
    for flags in cases:
        assert main(["serve", "--data-dir", str(data), *flags]) == 2, flags
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "Traceback" not in err, err
        assert "--tombstone-grace-s" in err and "--hint-window-s" in err, err
    assert not data.exists()
    from dynamopy import config
    p = argparse.ArgumentParser()
    config.add_arguments(p)
    ok = config.resolve(p.parse_args(["--tombstone-grace-s", "4001", "--hint-window-s", "3600"]),
                        {})
    assert (ok.tombstone_grace_s, ok.hint_window_s) == (4001.0, 3600.0)
    with pytest.raises(ValueError, match="tombstone-grace-s"):
        config.resolve(p.parse_args([]), {"DYNAMOPY_TOMBSTONE_GRACE_S": "60"})


def test_status_line_summarises_the_node_view():
    from dynamopy.cli import anti_entropy_line

    c_view = {"enabled": True, "interval_s": 180.0, "rate_keys_s": 1000, "exchanges": 0}
    assert anti_entropy_line({"anti_entropy": c_view}) == \
        "on, every 180s, at most 1000 keys/s; no exchange yet"
    c_view.update(exchanges=4, keys_compared=12, keys_repaired=3,
                  peers={"n2": {"outcome": "ok"}, "n3": {"outcome": "unreachable"}})
    assert anti_entropy_line({"anti_entropy": c_view}) == (
        "on, every 180s, at most 1000 keys/s; 4 exchanges (last: n2 ok, n3 unreachable); "
        "12 keys compared, 3 repaired")
    assert anti_entropy_line({"anti_entropy": {"enabled": False}}) == \
        "off (anti_entropy_interval_s is 0: POST /cluster/config to turn it on)"


def doomed_for(me):
    return lambda state, spans: subtract_sorted(spans, held_ranges(state, me))


@pytest.mark.parametrize("trees", ["both", "giver_off", "owners_off"])
@aio
async def test_hand_off_gives_new_owners_what_they_lack_before_returning(cluster, trees):
    """Issue 12 item 4: "a" no longer replicates anything (it left the ring) and holds the
    only copy of some writes; hand_off returns only once every current owner of each key
    holds it at the same or a newer version, retrying while an owner is unreachable."""
    c = cluster(ids=("a", "b", "c", "d"), n=2, ring_ids=["b", "c", "d"])
    if trees == "giver_off":
        c.ae["a"].interval_s = 0
    if trees == "owners_off":
        for m in "bcd":
            c.ae[m].interval_s = 0
    keys = [f"k{i}".encode() for i in range(120)]
    for i, key in enumerate(keys):
        c.put("a", key, 1000 + i)
        owners = c.replicas_of(key)
        if i % 3 == 1:
            c.put(owners[0], key, 5000 + i, value=b"newer")  # an owner holds newer: kept
        elif i % 3 == 2:
            c.put(owners[1], key, 1000 + i)  # one owner already has it
    await c.attach()
    before = records(c.stores["a"])
    c.fail_calls["c"] = 3  # c is unreachable for a while: hand_off waits, never gives up
    await c.ae["a"].hand_off([(0, 2**32)], doomed_for("a"))
    assert c.fail_calls["c"] == 0 and c.clock.slept >= 1.0
    for i, key in enumerate(keys):
        t = c.state.ring.token(key)
        for m in c.replicas_of(key):
            rec = c.stores[m].get(t, key)
            assert rec is not None and rec.version >= 1000 + i, (key, m)
            if i % 3 == 1 and m == c.replicas_of(key)[0]:
                assert rec.value == b"newer"
    assert records(c.stores["a"]) == before  # the giver never pulls
    # nothing doomed (the giver still replicates the spans): returns at once, no calls
    calls = len(c.repair_calls)
    await c.ae["b"].hand_off([(0, 2**32)], doomed_for("b"))
    assert len(c.repair_calls) == calls


@aio
async def test_a_hand_off_refused_as_stale_notes_the_owners_newer_epoch(cluster):
    """An owner ahead of the giver refuses the hand-off with ``stale_epoch``: the giver
    notes the owner's epoch (its metadata log catches up now, as after an exchange), and
    the retry goes through once both are at one epoch. Without the note the giver retried
    at its old epoch until its next heartbeat happened to carry the news."""
    c = cluster(ids=("a", "b", "c"), n=2, ring_ids=["b", "c"])
    c.put("a", b"k", 1000)
    await c.attach()
    ahead = ClusterState(epoch=9, ring=c.state.ring, settings=c.state.settings)
    c.ae["b"].get_state = lambda: ahead
    noted = []

    def note_epoch(epoch, peer):  # the catch-up: b's epoch is now everyone's
        noted.append((epoch, peer))
        c.state = ahead
    c.ae["a"].note_epoch = note_epoch
    await asyncio.wait_for(c.ae["a"].hand_off([(0, 2**32)], doomed_for("a")), 10)
    assert noted == [(9, "b")]
    t = c.state.ring.token(b"k")
    assert all(c.stores[m].get(t, b"k").version == 1000 for m in c.replicas_of(b"k"))


@aio
async def test_orphans_are_the_non_empty_spans_outside_the_held_ranges(cluster):
    c = cluster(ids=("a", "b"), n=1)
    c.ae["b"].interval_s = 0  # anti-entropy off: found by store seeks instead of the tree
    c.stores["b"].apply([(2**31 + 7, b"y", Record(2))], sync=False)
    leaf = 1 << 14
    c.stores["a"].apply([(5 * leaf + 3, b"x", Record(1)), (2**31 + 7, b"y", Record(2)),
                         (2**32 - 1, b"z", Record(3))], sync=False)
    await c.attach()
    ae = c.ae["a"]
    assert ae.orphans([(0, 2**32)]) == []
    held = [(0, 2**30), (2**32 - leaf, 2**32)]
    got = ae.orphans(held)
    assert got == [ae.tree.node_range(*n) for n in ae.tree.cover(2**30, 2**32 - leaf)
                   if ae.tree.node_range(*n)[0] <= 2**31 + 7 < ae.tree.node_range(*n)[1]]
    assert ae.orphans([]) and all(s < e for s, e in ae.orphans([]))
    covered = {t for t in (5 * leaf + 3, 2**31 + 7, 2**32 - 1)
               if any(s <= t < e for s, e in ae.orphans([]))}
    assert covered == {5 * leaf + 3, 2**31 + 7, 2**32 - 1}
    off = c.ae["b"]
    assert not off.built
    assert off.orphans(held) == [(2**30, 2**32 - leaf)] and off.orphans([(0, 2**32)]) == []
    assert off.orphans([(0, 2**31)]) == [(2**31, 2**32)]


DAY_MS = 86_400_000


def aged(c, age_ms: int, n: int = 0) -> int:
    """A version stamped ``age_ms`` before the cluster's (virtual) wall clock."""
    from dynamopy.core.versions import compose
    return compose(c.clock.wall_ms() - age_ms, n, 1)


async def purge_everywhere(c) -> int:
    return sum([await c.ae[m].purge.round() for m in c.ae])


@aio
async def test_old_tombstones_held_by_every_replica_are_purged_everywhere(cluster):
    c = cluster()
    for i in range(30):
        c.write_everywhere(f"gone{i}".encode(), aged(c, 11 * DAY_MS, i), deleted=True,
                           value=b"")
        c.write_everywhere(f"young{i}".encode(), aged(c, 9 * DAY_MS, i), deleted=True,
                           value=b"")
        c.write_everywhere(f"live{i}".encode(), aged(c, 20 * DAY_MS, i))
    await c.attach()
    assert await purge_everywhere(c) == 30
    for m, store in c.stores.items():
        keys = {k for _t, k, _r in store.scan(0, 2**32)}
        assert not any(k.startswith(b"gone") for k in keys), m
        assert len(keys) == 60 and store.key_count() == 60
        assert c.ae[m].tree.records == 60
    assert await purge_everywhere(c) == 0  # nothing left to purge; young ones stay


@aio
async def test_a_replica_lacking_the_tombstone_blocks_the_purge_until_it_has_it(cluster):
    """A delete missed by one replica (it holds the older live value): purging the others
    would let anti-entropy bring the old value back. No purge until every replica holds the
    tombstone; anti-entropy gives it the tombstone; then the purge goes through and the key
    stays deleted everywhere."""
    c = cluster()
    key = b"zombie"
    reps = c.replicas_of(key)
    c.write_everywhere(key, aged(c, 30 * DAY_MS))          # the old live value
    for m in reps[:2]:
        c.put(m, key, aged(c, 11 * DAY_MS), deleted=True, value=b"")
    await c.attach()
    assert await purge_everywhere(c) == 0
    t = c.state.ring.token(key)
    assert [c.stores[m].get(t, key).deleted for m in reps] == [True, True, False]
    await c.ae[reps[0]].round()                            # the tombstone reaches reps[2]
    assert await purge_everywhere(c) == 1
    assert all(c.stores[m].get(t, key) is None for m in reps)
    for m in reps:
        await c.ae[m].round()
    assert all(c.stores[m].get(t, key) is None for m in reps)  # nothing came back


@aio
async def test_an_unreachable_replica_blocks_the_purge_and_a_newer_write_survives(cluster):
    c = cluster()
    reps = c.replicas_of(b"k")
    t = c.state.ring.token(b"k")
    c.write_everywhere(b"k", aged(c, 11 * DAY_MS), deleted=True, value=b"")
    await c.attach()
    c.fail_calls[reps[1]] = 1                      # reps[1] does not answer once
    assert await c.ae[reps[0]].purge.round() == 0
    assert all(c.stores[m].get(t, b"k") is not None for m in reps)
    c.put(reps[2], b"k", aged(c, 0), value=b"again")  # a newer write lands on reps[2]
    assert await c.ae[reps[0]].purge.round() == 1
    assert c.stores[reps[0]].get(t, b"k") is None and c.stores[reps[1]].get(t, b"k") is None
    assert c.stores[reps[2]].get(t, b"k").value == b"again"  # never purged
    await c.ae[reps[2]].round()
    assert all(c.stores[m].get(t, b"k").value == b"again" for m in reps)


@aio
async def test_an_old_copy_on_a_member_that_is_no_replica_blocks_the_purge(cluster):
    """Session 13, system sim seed 134: a member that stopped replicating a key in a ring
    change still holds the old live value (its hand-off to the new owners runs late); the
    new owners delete the key and, were the tombstone purged, the hand-off would give them
    the old value back as one they lack. The purge asks every member: no purge while that
    old copy is there, or while a member that is no replica does not answer; once the old
    copy is handed off (and dropped), the purge goes through and the hand-off brings
    nothing back."""
    c = cluster(ids=("a", "b", "c", "d"), n=2)
    key = b"k"
    reps = c.replicas_of(key)
    other = sorted(set("abcd") - set(reps))
    t = c.state.ring.token(key)
    c.put(other[0], key, aged(c, 30 * DAY_MS), value=b"old")   # the left-over copy
    for m in reps:
        c.put(m, key, aged(c, 11 * DAY_MS), deleted=True, value=b"")
    await c.attach()
    assert await purge_everywhere(c) == 0
    assert all(c.stores[m].get(t, key).deleted for m in reps)
    await c.ae[other[0]].hand_off([(0, 2**32)], doomed_for(other[0]))  # the owners hold
    c.stores[other[0]].delete_range(t, t + 1)     # newer: nothing to give; then the drop
    assert all(c.stores[m].get(t, key).deleted for m in reps)
    c.fail_calls[other[1]] = 1                    # a member that is no replica: no answer
    assert await c.ae[reps[0]].purge.round() == 0
    assert await c.ae[reps[0]].purge.round() == 1
    assert all(c.stores[m].get(t, key) is None for m in "abcd")


@aio
async def test_no_purge_within_the_grace_after_a_member_left_the_ring(cluster):
    """Review 13 (failed before last_exit_ms): the purge asks every member of the *ring*, but
    a node that left it (its ``finish_leave`` applied, or a joiner whose join was abandoned
    after it pulled ranges) still holds its old copies and hands them to the new owners
    before it drops them, and that hand-off may run late (a lost reply waits out the 10 s
    call timeout, the ring keeps changing). Nobody asks it; so no tombstone goes until the
    grace has passed since the last member left, and the late hand-off gives nothing back."""
    c = cluster(ids=("a", "b", "c", "d"), n=2, ring_ids=["b", "c", "d"])  # "a" left
    c.state = replace(c.state, last_exit_ms=c.clock.wall_ms() - DAY_MS)
    key = b"k"
    reps = c.replicas_of(key)
    t = c.state.ring.token(key)
    c.put("a", key, aged(c, 30 * DAY_MS), value=b"old")   # the leaver's copy, not dropped yet
    for m in reps:
        c.put(m, key, aged(c, 11 * DAY_MS), deleted=True, value=b"")
    await c.attach()
    assert await purge_everywhere(c) == 0
    await c.ae["a"].hand_off([(0, 2**32)], doomed_for("a"))   # the late hand-off
    for m in reps:
        rec = c.stores[m].get(t, key)
        assert rec is not None and rec.deleted, f"{m} holds the deleted value again: {rec}"
    # The grace since "a" left has passed (its hand-off is done by the operator rule).
    c.state = replace(c.state, last_exit_ms=c.clock.wall_ms() - 10 * DAY_MS - 1)
    assert await purge_everywhere(c) == 1
    assert all(c.stores[m].get(t, key) is None for m in reps)


@aio
async def test_a_node_fenced_for_clock_skew_purges_nothing(cluster):
    """"Older than the grace" is judged on the purger's clock, and the hint TTL's margin
    covers only a clock within the bound of the others'. A node whose clock is fenced (a
    step ahead: every tombstone looks old) starts no pass, and one fenced after its
    confirmations drops nothing; once its clock is vouched for again the purge goes through."""
    c = cluster()
    key = b"k"
    reps = c.replicas_of(key)
    t = c.state.ring.token(key)
    c.write_everywhere(key, aged(c, 11 * DAY_MS), deleted=True, value=b"")
    await c.attach()
    purge = c.ae[reps[0]].purge
    asked = []
    call_peer = purge.call_peer

    async def counted(peer, method, payload, timeout_s=None):
        asked.append(method)
        return await call_peer(peer, method, payload, timeout_s=timeout_s)
    purge.call_peer = counted
    purge.clock_ok = lambda: False
    assert await purge.round() == 0
    assert asked == []             # no pass: not even a confirmation asked
    verdicts = iter([True])        # vouched for when the pass starts, fenced after that
    purge.clock_ok = lambda: next(verdicts, False)
    assert await purge.round() == 0
    assert "ae_versions" in asked and "ae_purge" not in asked
    assert all(c.stores[m].get(t, key) is not None for m in reps)
    purge.clock_ok = lambda: True
    assert await purge.round() == 1
    assert all(c.stores[m].get(t, key) is None for m in reps)


@aio
async def test_no_purge_while_a_ring_change_is_in_progress(cluster):
    c = cluster()
    c.write_everywhere(b"k", aged(c, 11 * DAY_MS), deleted=True, value=b"")
    await c.attach()
    c.state = ClusterState(epoch=7, ring=c.state.ring, settings=c.state.settings,
                           change=("join", "z"))
    assert await purge_everywhere(c) == 0


@aio
async def test_one_pass_purges_every_candidate_batch_by_batch(cluster, monkeypatch):
    import dynamopy.node.tombstone_purge as ae_mod

    monkeypatch.setattr(ae_mod, "PURGE_BATCH", 7)
    c = cluster()
    for i in range(50):
        c.write_everywhere(f"gone{i}".encode(), aged(c, 11 * DAY_MS, i), deleted=True,
                           value=b"")
    await c.attach()
    await purge_everywhere(c)
    assert all(s.key_count() == 0 for s in c.stores.values())
    assert sum(ae.purge.purged for ae in c.ae.values()) == 150  # 50 on each replica


@aio
async def test_a_pass_reads_the_store_off_the_event_loop_a_chunk_at_a_time(cluster):
    """Regression: a pass scanned all the keys a node is first replica of in one go on the
    event loop (live records do not fill a batch), so a node with many keys stopped
    answering requests for the whole scan (seen: 60-110 ms with 2,000 keys, under load).
    Now every record is read in an executor thread, at most SCAN_CHUNK per step, and the
    candidates of every chunk are still purged."""
    import threading

    from dynamopy.node.tombstone_purge import SCAN_CHUNK

    c = cluster()
    for i in range(6 * SCAN_CHUNK):
        c.write_everywhere(f"live{i}".encode(), aged(c, 20 * DAY_MS, i))
    for i in range(40):
        c.write_everywhere(f"gone{i}".encode(), aged(c, 11 * DAY_MS, i), deleted=True,
                           value=b"")
    await c.attach()
    loop_thread = threading.get_ident()
    calls = []  # per scan call: [threads that read its records, records read]
    for store in c.stores.values():
        def scan(*a, _orig=store.scan, **kw):
            entry = [set(), 0]
            calls.append(entry)

            def reading():
                for rec in _orig(*a, **kw):
                    entry[0].add(threading.get_ident())
                    entry[1] += 1
                    yield rec
            return reading()
        store.scan = scan
    assert await purge_everywhere(c) == 40
    read = [e for e in calls if e[1]]
    assert sum(e[1] for e in read) >= 3 * 6 * SCAN_CHUNK // 3   # every node read its share
    assert not any(loop_thread in e[0] for e in read)
    assert max(e[1] for e in read) <= SCAN_CHUNK
    for store in c.stores.values():
        assert not any(k.startswith(b"gone") for _t, k, _r in
                       type(store).scan(store, 0, 2**32))


class ReadThreads:
    """While in use, every record read from the given stores through ``scan`` or ``get``
    (the reads of anti-entropy) notes the thread that read it; restored on exit."""

    def __init__(self, stores):
        self.stores = list(stores)
        self.threads: list[int] = []

    def __enter__(self):
        import threading
        threads = self.threads
        for store in self.stores:
            def scan(*a, _orig=store.scan, **kw):
                records = _orig(*a, **kw)

                def reading():
                    for rec in records:
                        threads.append(threading.get_ident())
                        yield rec
                return reading()

            def get(*a, _orig=store.get, **kw):
                rec = _orig(*a, **kw)
                threads.append(threading.get_ident())
                return rec
            store.scan, store.get = scan, get
        return self

    def __exit__(self, *exc):
        for store in self.stores:
            del store.scan, store.get


@aio
async def test_the_peer_methods_read_the_store_off_the_event_loop(cluster):
    """Regression: ``ae_keys``, ``ae_get`` and ``ae_versions`` read the store on the event
    loop (answered inline by the transport): a hand-off piece lists thousands of keys, an
    ``ae_get`` reads up to 8 MiB of records, ``ae_versions`` up to 1000 of them, and every
    request of the node waited meanwhile (dynamopy.benchlib.loop_stalls at a million keys
    per node: 40-135 ms, 100-115 ms, 15-18 ms). Now they read in an executor thread, and
    answer the same."""
    import threading

    c = cluster()
    for i in range(300):
        c.write_everywhere(f"k{i}".encode(), 1000 + i, deleted=i % 10 == 0,
                           value=b"" if i % 10 == 0 else b"v%d" % i)
    await c.attach()
    ask_a = c._caller("b")   # b's calls, answered by a's methods
    with ReadThreads(c.stores.values()) as reads:
        keys = await ask_a("a", "ae_keys", [7, [(0, 2**31), (2**31, 2**32)]])
        wanted = [[t, k] for t, k, _v in keys] + [[5, b"absent"]]
        got = await ask_a("a", "ae_get", [7, wanted])
        versions = await ask_a("a", "ae_versions", [7, wanted])
    stored = sorted((t, k, r) for t, k, r in c.stores["a"].scan(0, 2**32))
    assert [(t, k, v) for t, k, v in keys] == [(t, k, r.version) for t, k, r in stored]
    assert [Record.from_wire(w) for _t, _k, w in got[:-1]] == [r for _t, _k, r in stored]
    assert got[-1] == [5, b"absent", None]
    assert versions == [r.version for _t, _k, r in stored] + [None]
    assert len(reads.threads) == 3 * 300 + 2
    assert threading.get_ident() not in reads.threads


@pytest.mark.parametrize("trees", [True, False])
@aio
async def test_an_exchange_and_a_hand_off_read_the_store_off_the_event_loop(cluster, trees):
    """Regression: the side that starts an exchange or a hand-off listed its keys, compared
    them with the peer's and read the records to push on the event loop (measured: a
    hand-off step without trees, 4 pieces of 2**22 tokens, 45-260 ms at a million keys per
    node). Now every record is read in an executor thread, and the replicas end level."""
    import threading

    c = cluster()
    for i in range(200):
        c.write_everywhere(f"k{i}".encode(), 1000 + i)
    for i in range(20):
        c.put("b", f"miss{i}".encode(), 5000 + i)         # a lacks these: pulled
        c.put("c", f"miss{i}".encode(), 5000 + i)
        c.put("a", f"k{i}".encode(), 9000 + i, value=b"new")  # b, c hold older: pushed
    if not trees:
        for ae in c.ae.values():
            ae.interval_s = 0
    await c.attach()
    with ReadThreads(c.stores.values()) as reads:
        if trees:
            await c.ae["a"].round()
        else:   # a hand-off to b of everything a holds, by key lists
            await c.ae["a"]._push_missing("b", 7, [(0, 2**32)], PeerExchange())
    assert len(reads.threads) >= 2 * 20
    assert threading.get_ident() not in reads.threads
    a, b = records(c.stores["a"]), records(c.stores["b"])
    assert all(b[key] == rec for key, rec in a.items())
    if trees:
        assert a == b == records(c.stores["c"]) and len(a) == 220


@aio
async def test_a_pass_cancelled_mid_read_ends_only_once_its_store_read_is_done(cluster):
    """Regression (review8): a stopping node cancels its tasks, then closes the store. A
    purge pass cancelled while its executor thread read a chunk ended at once, the thread
    read on, and LevelDB was closed under its iterator: a segfault (the race, with plyvel
    alone, crashes the process within a few hundred tries). The cancelled pass now ends
    only once the thread's read is done, so the store is closed after it."""
    import threading
    import time

    c = cluster()
    for i in range(600):
        c.write_everywhere(f"live{i}".encode(), aged(c, 20 * DAY_MS, i))
    await c.attach()
    store = c.stores["a"]
    reading, release, read_done = threading.Event(), threading.Event(), threading.Event()

    def scan(*a, _orig=store.scan, **kw):
        try:
            for i, rec in enumerate(_orig(*a, **kw)):
                if i == 10 and not reading.is_set():
                    reading.set()
                    release.wait(10)
                yield rec
        finally:
            read_done.set()
    store.scan = scan
    task = asyncio.ensure_future(c.ae["a"].purge.round())
    try:
        deadline = time.monotonic() + 10
        while not reading.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert reading.is_set(), "the pass never read a chunk"
        task.cancel()
        await asyncio.sleep(0.2)
        assert not task.done(), "the cancelled pass ended while its thread still read the store"
    finally:
        release.set()
        read_done.wait(10)  # never close the store under the thread, even when this fails
    with pytest.raises(asyncio.CancelledError):
        await task
    assert read_done.is_set()


@aio
async def test_a_pass_stops_at_the_next_chunk_once_the_epoch_moved(cluster, monkeypatch):
    """Regression (review8): a pass reads every record of its spans, SCAN_CHUNK at a time,
    sleeping SCAN_CHUNK / rate after each, and the anti-entropy loop runs no exchange until
    it ends. After a ring or settings change its batches may purge nothing (they check the
    epoch), yet it walked on to the end of its spans unless PURGE_BATCH candidates filled a
    batch. Now it stops at the next chunk."""
    import dataclasses

    from dynamopy.node import tombstone_purge

    monkeypatch.setattr(tombstone_purge, "SCAN_CHUNK", 4)
    c = cluster(rate=1000)
    for i in range(600):
        c.write_everywhere(f"live{i}".encode(), aged(c, 20 * DAY_MS, i))
    for i in range(30):
        c.write_everywhere(f"gone{i}".encode(), aged(c, 11 * DAY_MS, i), deleted=True,
                           value=b"")
    await c.attach()
    store = c.stores["a"]
    reads = []
    moved = []

    def scan(*a, _orig=store.scan, **kw):
        reads.append(bool(moved))
        return _orig(*a, **kw)
    store.scan = scan
    sleep = c.clock.sleep

    async def sleep_then_move(s):
        await sleep(s)
        if not moved and len(reads) >= 3:   # a few chunks in: a member joins, say
            moved.append(c.clock.t)
            c.state = dataclasses.replace(c.state, epoch=c.state.epoch + 1)
    c.clock.sleep = sleep_then_move
    before = sum(1 for t, _k, r in store.scan(0, 2**32) if r.deleted)
    assert await c.ae["a"].purge.round() == 0
    assert moved and reads.count(False) >= 3
    assert reads.count(True) <= 1, f"{reads.count(True)} chunks read after the epoch moved"
    assert c.clock.t - moved[0] <= 4 / 1000 + 1e-9
    assert sum(1 for t, _k, r in store.scan(0, 2**32) if r.deleted) == before  # none purged


@aio
async def test_a_pass_is_paced_by_the_records_it_reads_across_small_spans(cluster):
    """Regression (review8): a pass paused only between full chunks inside one span, so a
    store spread over many spans smaller than a chunk was read with no pause at all. Now
    the records read are counted across spans: the pass takes about records / (rate x
    SCAN_RATE_FACTOR) of (virtual) time, and no more."""
    from dynamopy.node.tombstone_purge import SCAN_CHUNK, SCAN_RATE_FACTOR

    c = cluster(rate=1000)
    for i in range(3000):
        c.write_everywhere(f"live{i}".encode(), aged(c, 20 * DAY_MS, i))
    await c.attach()
    purge = c.ae["a"].purge
    spans = purge._primary_spans(c.state)
    mine = sum(1 for s, e in spans for _ in c.stores["a"].scan(s, e))
    assert max(sum(1 for _ in c.stores["a"].scan(s, e)) for s, e in spans) < SCAN_CHUNK
    before = c.clock.slept
    assert await purge.round() == 0
    slept = c.clock.slept - before
    per_record = 1 / (1000 * SCAN_RATE_FACTOR)
    assert (mine - SCAN_CHUNK) * per_record <= slept <= mine * per_record + 1e-9


@aio
async def test_an_exchange_interrupted_between_pull_and_push_loses_nothing_and_the_next_round_finishes(cluster):
    """The ``ae_interrupt`` BUGGIFY knob: an exchange stops after pulling, before pushing
    (as if the peer vanished). The pulled records are kept, the peer's outcome is
    "unreachable", and the next round without the knob brings both sides level."""
    from dynamopy.core.buggify import BUGGIFY_OFF, Buggify

    c = cluster(ids=("a", "b"), n=2)
    for i in range(50):
        c.write_everywhere(f"k{i}".encode(), 1000 + i)
    c.put("a", b"mine", 5000)     # a must push it
    c.put("b", b"theirs", 5001)   # a pulls it
    await c.attach()
    a = c.ae["a"]
    a.buggify = Buggify(random.Random(1), enable_p=1.0, fire_p=1.0)
    await a.round()
    assert a.totals.peers["b"].outcome == "unreachable"
    assert a.buggify.fired["ae_interrupt"] >= 1
    assert records(c.stores["a"]) != records(c.stores["b"])    # pulled, not pushed
    assert {k for _t, k in records(c.stores["a"])} >= {b"mine", b"theirs"}
    a.buggify = BUGGIFY_OFF
    await a.round()
    assert a.totals.peers["b"].outcome == "ok"
    assert records(c.stores["a"]) == records(c.stores["b"])


@aio
async def test_a_hand_off_gives_an_old_only_copy_of_an_acknowledged_write(cluster):
    """Review 12 H: the hand-off exists for "a source skipped while it was down ... may hold
    the only copy of a write" (node/transfer.py). N=1 (or a W=1 write no other replica got
    yet), default grace (10 days), anti-entropy on: "a" held the only copy of a write made
    11 days ago and never deleted; a join moved its range to "b" while "a" was down for a
    minute (the gainer skips a source down over 5 s), well within the operator rule. "a"
    is back and hands the range off: "b" must get the record, since "a" drops the range
    next. The hint expiry (the record's age) cannot tell this record from one a purged
    tombstone shadows: skipping it loses an acknowledged write."""
    c = cluster(ids=("a", "b"), n=1, ring_ids=["b"])
    grace_s = 10 * 86400.0
    c.ae["a"].expired = lambda r: hint_expired(r, c.clock.wall_ms(), grace_s, 500)
    now = c.clock.wall_ms()
    old = compose(now - 11 * 86400 * 1000, 0, 1)
    c.put("a", b"k-old", old)
    await c.attach()
    assert c.ae["a"].enabled
    await c.ae["a"].hand_off([(0, 2**32)], doomed_for("a"))
    rec = c.stores["b"].get(c.state.ring.token(b"k-old"), b"k-old")
    assert rec is not None and rec.version == old
