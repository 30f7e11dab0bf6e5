"""Unit tests of core.merkle: incremental hash trees, top-down diff, range covers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamopy.core.merkle import (
    HashTree,
    TreeWalk,
    diff_keys,
    diff_trees,
    record_hash,
)

TOKENS = st.integers(0, 2**32 - 1)
KEYS = st.binary(min_size=1, max_size=6)
VERSIONS = st.integers(1, 2**62)

# A small tree shape keeps the arrays tiny (leaves of 2**24 tokens: 256 leaves).
SMALL = {"leaf_bits": 24, "fanout_bits": 2}


def store_tree(store: dict, **shape) -> HashTree:
    return HashTree.build(((t, k, v, d) for (t, k), (v, d) in store.items()), **shape)


# (token, key, version, deleted) writes; the store keeps the larger version per key, as a
# replica does. Every write has a version no other write has (as in the cluster).
WRITES = st.lists(st.tuples(TOKENS, KEYS, VERSIONS, st.booleans()), max_size=60,
                  unique_by=lambda w: w[2])


def distinct(a: list, b: list) -> list:
    """``b`` without the writes whose version ``a`` already used."""
    used = {w[2] for w in a}
    return [w for w in b if w[2] not in used]


def apply(store: dict, tree: HashTree, t: int, k: bytes, v: int, d: bool) -> None:
    old = store.get((t, k))
    if old is None or v > old[0]:
        store[(t, k)] = (v, d)
        tree.update(t, k, old, (v, d))


@settings(max_examples=200, deadline=None)
@given(WRITES, st.lists(st.integers(0, 59), max_size=10))
def test_incremental_updates_equal_a_rebuild(writes, drops):
    store: dict = {}
    tree = HashTree(**SMALL)
    for w in writes:
        apply(store, tree, *w)
    for i in drops:  # records dropped (a range dropped, a tombstone purged)
        if i < len(writes):
            t, k = writes[i][0], writes[i][1]
            old = store.pop((t, k), None)
            if old is not None:
                tree.update(t, k, old, None)
    rebuilt = store_tree(store, **SMALL)
    assert tree.records == rebuilt.records == len(store)
    for level in range(len(tree.shifts)):
        n = 1 << (32 - tree.shifts[level])
        assert tree.hashes((level, i) for i in range(n)) == \
            rebuilt.hashes((level, i) for i in range(n))


@settings(max_examples=100, deadline=None)
@given(WRITES, WRITES)
def test_order_of_writes_does_not_matter(a, b):
    b = distinct(a, b)
    s1, t1, s2, t2 = {}, HashTree(**SMALL), {}, HashTree(**SMALL)
    for w in a + b:
        apply(s1, t1, *w)
    for w in b + a:
        apply(s2, t2, *w)
    assert s1 == s2 and t1.root() == t2.root()


@settings(max_examples=200, deadline=None)
@given(WRITES, WRITES)
def test_diff_finds_exactly_the_leaves_of_differing_keys(common, extra):
    """Two replicas share ``common``; one also got ``extra``. The walk reports exactly the
    leaves holding a key whose record differs between them."""
    extra = distinct(common, extra)
    sa, ta, sb, tb = {}, HashTree(**SMALL), {}, HashTree(**SMALL)
    for w in common:
        apply(sa, ta, *w)
        apply(sb, tb, *w)
    for w in extra:
        apply(sa, ta, *w)
    differing = {k for k in set(sa) | set(sb) if sa.get(k) != sb.get(k)}
    expected = {(0, t >> ta.shifts[0]) for t, _k in differing}
    assert set(diff_trees(ta, tb)) == expected
    assert set(diff_trees(tb, ta)) == expected
    # and the key exchange inside those leaves brings both sides level
    pull, push = diff_keys([(t, k, v) for (t, k), (v, _d) in sb.items()],
                           [(t, k, v) for (t, k), (v, _d) in sa.items()])
    assert set(pull) == differing and push == []
    for t, k in pull:
        apply(sb, tb, t, k, *sa[(t, k)])
    assert diff_trees(ta, tb) == [] and ta.root() == tb.root()


def test_a_tombstone_and_a_live_record_of_one_version_differ():
    assert record_hash(b"k", 5, True) != record_hash(b"k", 5, False)
    assert record_hash(b"k", 5, False) != record_hash(b"k", 6, False)
    assert record_hash(b"k", 5, False) != record_hash(b"j", 5, False)


def test_walk_expands_only_differing_subtrees():
    """One differing key costs one path of node comparisons, not the whole tree."""
    a, b = HashTree(), HashTree()  # the production shape: 2**18 leaves
    for i in range(2000):
        t = (i * 2654435761) % 2**32
        for tree in (a, b):
            tree.add(t, record_hash(str(i).encode(), 7, False))
    a.add(123456789, record_hash(b"only-a", 9, False))
    walk = TreeWalk(a, [(a.root_level, 0)])
    rounds = asked = 0
    while (ask := walk.request()):
        walk.receive(b.hashes(ask))
        rounds += 1
        asked += len(ask)
    assert walk.leaves == [(0, 123456789 >> a.shifts[0])]
    assert rounds == len(a.shifts)
    assert walk.nodes_compared == asked <= 1 + 16 * (len(a.shifts) - 1)


def test_walk_refuses_a_reply_of_the_wrong_length():
    walk = TreeWalk(HashTree(**SMALL), [(0, 1), (0, 2)])
    with pytest.raises(ValueError):
        walk.receive([0])


def test_cover_tiles_a_range_with_the_fewest_nodes():
    t = HashTree()  # leaves of 2**14 tokens, fanout 16
    leaf = 1 << 14
    assert t.cover(0, 2**32) == [(t.root_level, 0)]
    # a partition of a 4096-partition ring spans 2**20 tokens; tree nodes span 2**14,
    # 2**18, 2**22, ... tokens: so 4 nodes of 2**18
    p = 5
    cov = t.cover(p << 20, (p + 1) << 20)
    assert cov == [(1, (p << 20 >> 18) + i) for i in range(4)]
    # a ragged range: leaves, then larger nodes, then leaves
    start, end = 3 * leaf, (1 << 18) * 2 + 5 * leaf
    cov = t.cover(start, end)
    spans = [t.node_range(*n) for n in cov]
    assert spans[0][0] == start and spans[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert len(cov) == 13 + 1 + 5  # 13 leaves up to 2**18, one 2**18 node, 5 leaves
    with pytest.raises(ValueError, match=r"^range \[1, 1048576\) is not on 16384-token leaf "
                                         r"boundaries$"):
        t.cover(1, 2**20)
    with pytest.raises(ValueError):
        t.cover(0, 2**33)
    assert t.cover(leaf, leaf) == []  # an empty range needs no node


def _greedy_cover(t, start, end):
    """The plain greedy cover, level by level from the top: the oracle of ``cover``."""
    out, pos = [], start
    while pos < end:
        for level in range(len(t.shifts) - 1, -1, -1):
            span = 1 << t.shifts[level]
            if pos % span == 0 and pos + span <= end:
                out.append((level, pos >> t.shifts[level]))
                pos += span
                break
    return out


@settings(max_examples=300)
@given(st.sampled_from([(14, 4), (24, 2), (20, 3), (31, 1), (16, 16)]),
       st.integers(0, 2**18), st.integers(0, 2**18))
def test_cover_is_the_greedy_tiling_of_any_leaf_aligned_range(shape, a, b):
    leaf_bits, fanout_bits = shape
    t = HashTree(leaf_bits=leaf_bits, fanout_bits=fanout_bits)
    leaves = 1 << (32 - leaf_bits)
    start, end = sorted((a % (leaves + 1), b % (leaves + 1)))
    start, end = start << leaf_bits, end << leaf_bits
    assert t.cover(start, end) == _greedy_cover(t, start, end)


def test_hashes_flat_answers_pairs_and_names_the_first_bad_node():
    t = HashTree(**SMALL)
    t.add(5, 0xABC)
    top = t.root_level
    assert t.hashes_flat([top, 0, 0, 0, 0, 1]) == [0xABC, 0xABC, 0]
    assert t.hashes_flat([top, 0, 7]) == [0xABC]  # a trailing odd item is ignored
    # whatever it is (review 12: a negative or non-integer one made the whole request fail)
    assert t.hashes_flat([top, 0, -1]) == [0xABC]
    assert t.hashes_flat([top, 0, "x"]) == [0xABC]
    assert t.hashes_flat([-1]) == []
    assert t.hashes_flat([]) == []
    for flat, named in (([0, 0, top + 1, 0], f"({top + 1}, 0)"), ([0, -1], "(0, -1)"),
                        ([-1, 0], "(-1, 0)"), ([0, 2**8], "(0, 256)"),
                        ([0, 1, 0, "2"], "(0, '2')"), ([0, 1.0], "(0, 1.0)"),
                        ([0, 2**70], f"(0, {2**70})"), ([None, 0], "(None, 0)")):
        with pytest.raises(ValueError, match=rf"^no tree node {re.escape(named)}$"):
            t.hashes_flat(flat)


def test_touching_ranges_share_the_larger_nodes_that_span_both():
    t = HashTree()
    assert t.cover_ranges([(2**31, 2**32), (0, 2**31)]) == [(t.root_level, 0)]


@given(st.lists(st.tuples(st.integers(0, 2**18 - 1), st.integers(1, 64)), max_size=8))
def test_cover_ranges_covers_exactly_the_union(raw):
    t = HashTree()
    leaf = 1 << 14
    ranges = [(s * leaf, min(2**18, s + n) * leaf) for s, n in raw]
    covered = set()
    for lv, ix in t.cover_ranges(ranges):
        s, e = t.node_range(lv, ix)
        for leaf_ix in range(s // leaf, e // leaf):
            assert leaf_ix not in covered
            covered.add(leaf_ix)
    want = {i for s, e in ranges for i in range(s // leaf, e // leaf)}
    assert covered == want


def test_diff_keys_newer_wins_each_way():
    local = [(1, b"a", 5), (1, b"b", 9), (2, b"c", 3)]
    remote = [(1, b"a", 7), (1, b"b", 9), (3, b"d", 1)]
    pull, push = diff_keys(local, remote)
    assert pull == [(1, b"a"), (3, b"d")]
    assert push == [(2, b"c")]
    assert diff_keys(remote, local) == ([(2, b"c")], [(1, b"a"), (3, b"d")])  # any version


def test_diff_trees_under_given_roots_finds_only_the_leaves_below_them():
    a, b = HashTree(), HashTree()
    a.add(5, record_hash(b"low", 7, False))          # in the first half of the ring
    a.add(2**31 + 5, record_hash(b"high", 7, False))  # in the second
    below = (a.root_level - 1, 2)  # a child of the root: tokens [2**31, 2**31 + 2**30)
    assert a.node_range(*below) == (2**31, 2**31 + 2**30)
    assert set(diff_trees(a, b)) == {(0, 0), (0, (2**31 + 5) >> a.shifts[0])}
    assert diff_trees(a, b, roots=[below]) == [(0, (2**31 + 5) >> a.shifts[0])]


def test_out_of_range_token_is_refused():
    with pytest.raises(ValueError):
        HashTree(**SMALL).add(2**32, 1)


def test_shared_ranges_are_where_both_are_in_the_preference_list():
    from ring import Ring

    from dynamopy.core.merkle import shared_ranges

    ring = Ring.build(["a", "b", "c", "d", "e"], partitions=64)
    spans = shared_ranges(ring, 3, "a", "c")
    inside = set()
    for s, e in spans:
        for p in range(ring.partition_of(s), ring.partition_of(e - 1) + 1):
            inside.add(p)
    for p in range(64):
        pl = ring.preference_list_for_token(ring.partition_range(p)[0], 3)
        assert (p in inside) == ("a" in pl and "c" in pl)
    assert shared_ranges(ring, 3, "a", "zz") == []


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(1, 10)), max_size=6),
       st.lists(st.tuples(st.integers(0, 100), st.integers(1, 10)), max_size=6))
def test_intersect_spans_is_the_overlap(ra, rb):
    from dynamopy.core.merkle import intersect_spans

    def norm(raw):
        points = sorted({x for s, n in raw for x in range(s, s + n)})
        spans = []
        for x in points:
            if spans and spans[-1][1] == x:
                spans[-1][1] = x + 1
            else:
                spans.append([x, x + 1])
        return [tuple(s) for s in spans], set(points)

    a, pa = norm(ra)
    b, pb = norm(rb)
    spans = intersect_spans(a, b)
    got = {x for s, e in spans for x in range(s, e)}
    assert got == pa & pb
    assert all(s < e for s, e in spans)  # no empty span where two spans only touch


def test_record_hashes_keep_their_format_across_versions():
    """Nodes of two versions compare trees during a rolling upgrade: a changed hash format
    would make every leaf differ (correct, but a full exchange). These values are pinned."""
    assert record_hash(b"k", 5, False) == 6420808932056155094
    assert record_hash(b"key", 2**62, True) == 797187894234306790


def test_the_root_is_the_xor_of_every_record_hash_and_updates_replace_exactly():
    import functools
    import operator
    t = HashTree()
    hashes = {tok: record_hash(b"%d" % tok, 7, False) for tok in (0, 2**18, 2**31 + 5, 2**32 - 1)}
    for tok, h in hashes.items():
        t.add(tok, h)
    assert t.root() == functools.reduce(operator.xor, hashes.values())
    t.update(2**31 + 5, b"x", old=None, new=(3, False))
    t.update(2**31 + 5, b"x", old=(3, False), new=(4, True))  # replaced: only (4, True) left
    want = HashTree()
    for tok, h in hashes.items():
        want.add(tok, h)
    want.add(2**31 + 5, record_hash(b"x", 4, True))
    assert t.root() == want.root() and t.records == want.records == 5
    t.update(2**31 + 5, b"x", old=(4, True), new=None)  # dropped
    assert t.root() == functools.reduce(operator.xor, hashes.values()) and t.records == 4


def test_bad_shapes_tokens_and_leaf_children_are_refused_with_the_reason():
    for shape in ({"leaf_bits": 33}, {"leaf_bits": -1}, {"fanout_bits": 0}):
        with pytest.raises(ValueError, match="^bad tree shape: "):
            HashTree(**shape)
    t = HashTree(**SMALL)
    with pytest.raises(ValueError, match=r"^token -1 outside \[0, 2\*\*32\)$"):
        t.add(-1, 1)
    with pytest.raises(ValueError, match="^a leaf has no children$"):
        t.children(0, 0)
    assert t.children(1, 0) == [(0, i) for i in range(4)]


def test_tree_shapes_from_one_token_leaves_to_a_lone_root():
    from dynamopy.core.merkle import level_shifts

    assert level_shifts(0, 16) == (0, 16, 32)   # a leaf per token
    assert level_shifts(32, 4) == (32,)         # the root is the only leaf
    assert level_shifts(30, 4) == (30, 32)
    assert level_shifts(30, 1) == (30, 31, 32)  # a binary tree
    for leaf_bits, fanout_bits in ((-1, 4), (33, 4), (16, 0)):
        with pytest.raises(ValueError):
            level_shifts(leaf_bits, fanout_bits)


@settings(max_examples=60, deadline=None)
@given(WRITES, st.lists(st.integers(0, 59), max_size=10))
def test_a_batch_of_store_changes_equals_a_rebuild(writes, drops):
    """``apply_changes`` (the write path's one call per batch, the store's ``(token, key,
    old, new)`` changes with Record-like old/new) keeps the tree exact, tombstones and
    dropped records included."""
    from dynamopy.core.records import Record

    store: dict = {}
    tree = HashTree(**SMALL)
    changes = []
    for t, k, v, d in writes:
        old = store.get((t, k))
        if old is None or v > old.version:
            store[(t, k)] = Record(v, d)
            changes.append((t, k, old, Record(v, d)))
    tree.apply_changes(changes[: len(changes) // 2])
    tree.apply_changes(changes[len(changes) // 2 :])
    tree.apply_changes([(w[0], w[1], store.pop((w[0], w[1])), None)
                        for w in (writes[i] for i in set(drops) if i < len(writes))
                        if (w[0], w[1]) in store])
    rebuilt = store_tree({tk: (r.version, r.deleted) for tk, r in store.items()}, **SMALL)
    assert tree.records == rebuilt.records == len(store)
    for level in range(len(tree.shifts)):
        n = 1 << (32 - tree.shifts[level])
        assert tree.hashes((level, i) for i in range(n)) == \
            rebuilt.hashes((level, i) for i in range(n))


def test_a_batch_with_an_out_of_range_token_is_refused_and_counts_what_it_applied():
    tree = HashTree(**SMALL)
    from dynamopy.core.records import Record
    with pytest.raises(ValueError):
        tree.apply_changes([(5, b"a", None, Record(1)), (2**32, b"b", None, Record(2))])
    assert tree.records == 1 and tree.root() == record_hash(b"a", 1, False)
