"""The partition assignment (``ring.claim``) keeps the invariants its docstring and the
README state: even counts, no repeated owner within ``spread`` consecutive partitions
wherever possible, a joiner's partitions spread out and at least ``spread`` apart, a
leaver's partitions capped and placed without repeats, and nothing else moving.

Small partition counts keep these fast; every assertion is over many sizes and seeds."""

from __future__ import annotations

import hashlib
import json

import pytest

from ring import Ring
from ring.claim import (
    COUNT_SLACK_PERCENT, claim_for_joiner, initial_owners, release_leaver,
)

SEEDS = range(4)


def names(m: int) -> list[str]:
    return [f"n{i}" for i in range(m)]


def counts(owners: list[int], m: int) -> list[int]:
    return [owners.count(i) for i in range(m)]


def repeats(owners: list[int], spread: int) -> int:
    """Windows of ``spread`` consecutive partitions (wrapping) with a repeated owner."""
    size = len(owners)
    return sum(len({owners[(p + d) % size] for d in range(spread)}) < spread for p in range(size))


def gaps(partitions: list[int], size: int) -> list[int]:
    """Clockwise distances between consecutive partitions of one member (wrapping)."""
    ps = sorted(partitions)
    return [(b - a) % size or size for a, b in zip(ps, ps[1:] + ps[:1])]


def replica_load_max_over_mean(owners: list[int], m: int, spread: int) -> float:
    """Max/mean of how many preference lists of length ``spread`` each member is in."""
    size = len(owners)
    load = [0] * m
    for q in range(size):
        seen: list[int] = []
        step = q
        while len(seen) < spread:
            if owners[step % size] not in seen:
                seen.append(owners[step % size])
            step += 1
        for member in seen:
            load[member] += 1
    return max(load) * m / (spread * size)


# ------------------------------------------------------------------- build


@pytest.mark.parametrize("spread", [2, 3, 4])
def test_fewer_members_than_spread_rotate_so_repeats_are_m_apart(spread: int) -> None:
    for m in range(1, spread):
        owners = initial_owners(names(m), 64, spread, 0)
        assert owners == [p % m for p in range(64)]


@pytest.mark.parametrize("size", [64, 256, 4096])
def test_build_counts_are_within_one_of_the_mean_and_every_partition_is_owned(size: int) -> None:
    """Rounds deal one partition per member; at the wrap-around a member may take a
    second partition of the last round rather than repeat, so counts lie in
    [Q//m - 1, Q//m + 1]."""
    for m in (3, 4, 5, 7, 9, 13, 17, 31):
        for seed in SEEDS:
            owners = initial_owners(names(m), size, 3, seed)
            assert len(owners) == size and all(0 <= o < m for o in owners)
            got = counts(owners, m)
            assert size // m - 1 <= min(got) and max(got) <= size // m + 1, (m, seed, got)
            assert max(got) - min(got) <= 2


def test_build_counts_differ_by_at_most_one_when_no_repeat_forces_otherwise() -> None:
    """The usual case: exact round-robin counts (Q//m or Q//m + 1)."""
    for m in (3, 4, 8, 16, 32, 64):
        got = counts(initial_owners(names(m), 4096, 3, 0), m)
        assert set(got) <= {4096 // m, 4096 // m + 1}


@pytest.mark.parametrize("spread", [2, 3, 4])
@pytest.mark.parametrize("size", [64, 256])
def test_build_never_repeats_an_owner_within_spread_partitions(spread: int, size: int) -> None:
    """With at least spread + 2 members, every window of ``spread`` consecutive
    partitions, the wrap-around included, has distinct owners."""
    for m in range(spread + 2, 24):
        for seed in SEEDS:
            assert repeats(initial_owners(names(m), size, spread, seed), spread) == 0, (m, seed)


def test_build_depends_on_the_seed_and_deals_rounds_in_different_orders() -> None:
    a = initial_owners(names(8), 256, 3, 0)
    assert a == initial_owners(names(8), 256, 3, 0)
    assert a != initial_owners(names(8), 256, 3, 1)
    rounds = {tuple(a[r * 8:(r + 1) * 8]) for r in range(32)}
    assert len(rounds) > 16  # a per-round order, not one order repeated


def test_a_down_members_fallbacks_spread_for_any_seed() -> None:
    """The member after a partition's preference list (its first fallback) varies:
    failover load does not land on one successor."""
    for seed in SEEDS:
        owners = initial_owners(names(12), 1024, 3, seed)
        fallbacks = {owners[(p + 3) % 1024] for p in range(1024) if owners[p] == 0}
        assert len(fallbacks) >= 8


# -------------------------------------------------------------------- join


def _join(m: int, size: int, spread: int, seed: int) -> tuple[list[int], list[int]]:
    before = initial_owners(names(m), size, spread, seed)
    return before, claim_for_joiner(before, names(m), "joiner", spread, seed)


@pytest.mark.parametrize("spread", [2, 3, 4])
@pytest.mark.parametrize("size", [64, 256, 1024])
def test_joiner_takes_its_share_evenly_from_the_others_and_nothing_else_moves(spread: int, size: int) -> None:
    for m in range(spread, 30):
        if 2 * m > size:
            continue
        for seed in SEEDS:
            before, after = _join(m, size, spread, seed)
            assert all(a in (b, m) for b, a in zip(before, after))
            got = counts(after, m + 1)
            assert got[m] == size // (m + 1)  # the joiner's share, exactly
            assert max(got[:m]) - min(got[:m]) <= 1  # taken from whoever had most
            mine = [p for p in range(size) if after[p] == m]
            stride = size // (size // (m + 1))
            g = gaps(mine, size)
            assert max(g) <= 3 * stride, (m, seed)  # near evenly spaced centres
            if size >= 256:  # (64 partitions can be nearly all joiner-sized gaps)
                if m > spread:
                    assert min(g) >= spread, (m, seed)  # each in `spread` distinct lists
                assert repeats(after, spread) <= repeats(before, spread)


def test_joiner_takes_from_whoever_has_most() -> None:
    """Water-filling: with one member far above the rest, the joiner's whole share
    comes from it."""
    owners = [0] * 40 + [1, 2, 3] * 8  # 64 partitions: n0 has 40, the others 8
    after = claim_for_joiner(owners, names(4), "joiner", 3, 0)
    assert counts(after, 5) == [28, 8, 8, 8, 12]


def test_a_joiner_repairs_repeats_a_shrink_left() -> None:
    for seed in SEEDS:
        owners = initial_owners(names(10), 256, 3, seed)
        for _ in range(6):  # 10 -> 4 members: few left, repeats unavoidable
            owners = release_leaver(owners, names(len(set(owners))), 0, 3, seed)
        left = repeats(owners, 3)
        assert left >= 10
        after = claim_for_joiner(owners, names(4), "joiner", 3, seed)
        assert repeats(after, 3) <= left // 2, seed


def test_where_a_joiner_lands_depends_on_the_seed_and_is_deterministic() -> None:
    owners = initial_owners(names(6), 256, 3, 0)
    a = claim_for_joiner(owners, names(6), "j", 3, 0)
    assert a == claim_for_joiner(owners, names(6), "j", 3, 0)
    assert a != claim_for_joiner(owners, names(6), "j", 3, 1)


# ------------------------------------------------------------------- leave


@pytest.mark.parametrize("spread", [2, 3, 4])
@pytest.mark.parametrize("size", [64, 256])
def test_leaver_partitions_go_to_survivors_under_the_cap_and_nothing_else_moves(spread: int, size: int) -> None:
    for m in range(spread + 2, 24):
        for seed in SEEDS:
            before = initial_owners(names(m), size, spread, seed)
            leaver = (seed * 5 + m) % m
            after = release_leaver(before, names(m), leaver, spread, seed)
            heirs = m - 1
            for b, a in zip(before, after):
                if b != leaver:
                    assert a == b - (b > leaver)  # unchanged, renumbered
            got = counts(after, heirs)
            cap = max(-(-size // heirs), size * (100 + COUNT_SLACK_PERCENT) // (100 * heirs))
            assert max(got) <= cap and sum(got) == size
            if heirs >= 2 * spread + 2:
                assert repeats(after, spread) <= 4, (m, seed)  # survivors that repeat nothing nearby


def test_leaver_partitions_go_to_the_survivors_with_fewest() -> None:
    """In a clean stretch the freed partitions water-fill: the survivors end within
    one partition of each other (COUNT_SLACK_PERCENT is only used to avoid repeats)."""
    for seed in SEEDS:
        after = release_leaver(initial_owners(names(40), 4096, 3, seed), names(40), 7, 3, seed)
        got = counts(after, 39)
        assert max(got) - min(got) <= 2, (seed, sorted(set(got)))


def test_with_few_members_a_leavers_partitions_may_go_up_to_the_slack_cap() -> None:
    """Shrinking to 4 members (every survivor neighbours every other) uses the
    COUNT_SLACK_PERCENT room above the mean to avoid repeats: right up to the cap,
    never over it."""
    for m, seed in ((5, 0), (6, 1)):
        members = names(m)
        owners = initial_owners(members, 1024, 3, seed)
        while len(members) > 4:
            leaver = len(members) // 2
            owners = release_leaver(owners, members, leaver, 3, seed)
            members = members[:leaver] + members[leaver + 1:]
        cap = 1024 * (100 + COUNT_SLACK_PERCENT) // (100 * 4)
        assert cap == 263 and max(counts(owners, 4)) == cap


def test_replica_load_stays_even_while_shrinking_to_few_members() -> None:
    """Shrinking 10 -> 4 members: every survivor neighbours every other, repeats are
    unavoidable, and the heir is chosen by projected replica load."""
    for size in (256, 1024):
        for seed in SEEDS:
            members = names(10)
            owners = initial_owners(members, size, 3, seed)
            while len(members) > 4:
                leaver = (seed * 7 + len(members)) % len(members)
                owners = release_leaver(owners, members, leaver, 3, seed)
                members = members[:leaver] + members[leaver + 1:]
                assert replica_load_max_over_mean(owners, len(members), 3) <= 1.03, (size, seed, len(members))


def test_ring_remove_uses_the_same_assignment() -> None:
    ring = Ring.build(names(6), partitions=256)
    after = ring.remove("n2")
    expected = release_leaver([ring.members.index(ring.owner_of_partition(p)) for p in range(256)],
                              names(6), 2, 3, 0)
    assert [after.members.index(after.owner_of_partition(p)) for p in range(256)] == expected


# ------------------------------------------------------------ fixed across versions


PINNED = {  # (members, seed): sha256 of the owners lists of the history, first 16 hex digits
    (3, 0): "906d7a72382f12ce",
    (3, 1): "a4b32ed494a8d8d4",
    (4, 0): "52aa6c1645ccb694",
    (4, 1): "f6ad15726a8d3bc3",
    (5, 0): "3925ae9c833ee6c0",
    (5, 1): "4f2b465d4265c4a1",
    (7, 0): "bebdf077229d1653",
    (7, 1): "e94389de2ec35781",
    (9, 0): "133491d456365c13",
    (9, 1): "e32ae21b6b034e8e",
    (12, 0): "02958dc138427647",
    (12, 1): "e99605f6a0863044",
}


def _history(m: int, seed: int) -> list[list[int]]:
    """Owners after a build, two joins, and leaves from both (256 partitions)."""
    ring = Ring.build(names(m), partitions=256, seed=seed)
    out = [ring.to_dict()["owners"]]
    grown = ring.add("joiner-a").add("joiner-b")
    out.append(grown.to_dict()["owners"])
    if m > 3:
        out.append(ring.remove("n1").to_dict()["owners"])
        out.append(grown.remove("n0").remove("joiner-a").to_dict()["owners"])
    return out


# A history takes milliseconds: a change that makes the assignment loop fails in seconds.
@pytest.mark.timeout(10)
@pytest.mark.parametrize("m, seed", sorted(PINNED))
def test_assignments_are_the_same_in_every_version(m: int, seed: int) -> None:
    """Every node computes ``add``/``remove`` itself when it applies a membership entry
    of the metadata log (``core/membership.py``), also when it replays the log after a
    restart or an upgrade. So the assignment a history gives is part of the ring's
    format (``to_dict`` version 1): nodes running different code must compute the same
    owners, or they disagree on where keys live. Changing the algorithm means a new
    format version and a migration, never a silent change."""
    digest = hashlib.sha256(json.dumps(_history(m, seed)).encode()).hexdigest()
    assert digest[:16] == PINNED[m, seed]


PINNED_SHRINK_THEN_GROW = {1: "352b8ef6b3bc4cbd", 2: "091a3f675fb2e5a8", 3: "89a70e7bceb6102a",
                           4: "d74b2bbfba377083"}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("spread", sorted(PINNED_SHRINK_THEN_GROW))
def test_assignments_after_shrinking_then_growing_are_the_same_in_every_version(spread: int) -> None:
    """As above, for rings of every spread shrunk to few members (repeats left behind)
    and grown again (the joiner's second pass, which prefers spots in a repeat)."""
    out = []
    for m in (3, 5, 6):
        for seed in (0, 1, 2):
            if m <= spread:
                continue
            ring = Ring.build(names(m), partitions=256, seed=seed, spread=spread)
            while len(ring.members) - 1 > spread and len(ring.members) > m - 4:
                ring = ring.remove(ring.members[0])
            out.append(ring.to_dict()["owners"])
            out.append(ring.add("j").to_dict()["owners"])
    digest = hashlib.sha256(json.dumps(out).encode()).hexdigest()
    assert digest[:16] == PINNED_SHRINK_THEN_GROW[spread]


def _odd_settings_history() -> list[list[int]]:
    out = []
    for size, spread, m, seed in ((32, 5, 5, 0), (32, 5, 5, 1), (128, 5, 6, 1), (256, 5, 5, 2)):
        out.append(Ring.build(names(m), partitions=size, seed=seed, spread=spread).to_dict()["owners"])
    for size, spread, m, seed in ((64, 3, 7, 1), (128, 3, 9, 1), (64, 4, 10, 0)):
        ring = Ring.build(names(m), partitions=size, seed=seed, spread=spread)
        while len(ring.members) - 1 > spread:
            ring = ring.remove(ring.members[(seed + len(ring.members)) % len(ring.members)])
            out.append(ring.to_dict()["owners"])
    return out


@pytest.mark.timeout(10)
def test_assignments_with_a_long_spread_or_long_shrinks_are_the_same_in_every_version() -> None:
    """As above: builds with spread 5 (the wrap-around weighs how many repeats each
    candidate makes) and shrinks down to spread + 1 members."""
    digest = hashlib.sha256(json.dumps(_odd_settings_history()).encode()).hexdigest()
    assert digest[:16] == "12ef868cb7cd0c54"
