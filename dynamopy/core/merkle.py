"""Hash trees over the token ring, kept current on write, for anti-entropy (no I/O).

A :class:`HashTree` summarises every record a replica holds, TicTac-style (Riak's active
anti-entropy): each record hashes to 64 bits from (key, version, tombstone), and every tree
node is the XOR of the record hashes under it. Because XOR is its own inverse, a write
updates the tree in O(levels) without a scan: XOR out the old record's hash, XOR in the new
one. Two replicas that hold the same records have equal trees, whatever order the writes
arrived in.

Rules and invariants:

* The tree covers the whole token space ``[0, 2**32)``. Level 0 holds the leaves, each
  spanning ``2**LEAF_BITS`` consecutive tokens; each level above merges ``2**FANOUT_BITS``
  nodes (the top merge may be smaller) up to one root. A node's hash is the XOR of the
  record hashes in its token span, so equal spans of two trees compare in one integer.
* ``update`` is exact: a tree fed the same (old, new) changes as a store holds equals a tree
  built from that store's records (tested with Hypothesis). Callers pass the record the store
  replaced (or ``None``) and the record stored (or ``None`` when one is dropped).
* A ring range is compared by its *cover*: the fewest tree nodes that tile it exactly.
  Ranges must start and end on leaf boundaries (ring partitions are ``2**(32-log2 Q)``
  tokens wide, so rings with Q <= 2**18 partitions qualify).
* :class:`TreeWalk` compares a local tree with a remote one top-down, one level per round
  trip: it asks for the remote hashes of its frontier, keeps the nodes that differ, and
  descends into their children until it reaches leaves. Only differing subtrees are
  expanded, so the bytes exchanged grow with the number of differing keys, not the data.
* :func:`diff_keys` decides, key by key within differing leaves, which side must send what:
  the larger version wins (versions are unique per write, so this is a total order).

Reads are single integer loads from ``array`` storage: a caller on another thread may see a
concurrent update applied to some levels and not yet others, which can only make one
exchange look into a subtree for nothing or skip it until the next exchange.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Iterable, Optional

import mmh3

TOKEN_BITS = 32
LEAF_BITS = 14     # a leaf spans 16,384 tokens: 2**18 leaves, 2 MiB of leaf hashes
FANOUT_BITS = 4    # 16 children per node
MASK64 = (1 << 64) - 1


_FLAG = (b"\x00", b"\x01")
_hash64 = mmh3.hash64


def record_hash(key: bytes, version: int, deleted: bool) -> int:
    """64-bit hash of one stored record; the key, the version and the tombstone flag all
    count (the version has a fixed width, so no two distinct triples share an input)."""
    return _hash64(key + version.to_bytes(8, "big") + _FLAG[bool(deleted)], signed=False)[0]


def level_shifts(leaf_bits: int = LEAF_BITS, fanout_bits: int = FANOUT_BITS) -> tuple[int, ...]:
    """Token shift of each level, leaves first: a node at level ``l`` with index ``i`` spans
    tokens ``[i << shift, (i + 1) << shift)``. The last level is the root (shift 32)."""
    if not 0 <= leaf_bits <= TOKEN_BITS or fanout_bits < 1:
        raise ValueError(f"bad tree shape: leaf_bits={leaf_bits}, fanout_bits={fanout_bits}")
    shifts = []
    s = leaf_bits
    while s < TOKEN_BITS:
        shifts.append(s)
        s += fanout_bits
    shifts.append(TOKEN_BITS)
    return tuple(shifts)


class HashTree:
    """XOR hash tree over ``[0, 2**32)``; see the module docstring for the rules."""

    __slots__ = ("shifts", "_levels", "_pairs", "_level_for", "records")

    def __init__(self, leaf_bits: int = LEAF_BITS, fanout_bits: int = FANOUT_BITS):
        self.shifts = level_shifts(leaf_bits, fanout_bits)
        # for b in [0, 32]: the highest level whose nodes span at most 2**b tokens
        self._level_for = [max((lv for lv, s in enumerate(self.shifts) if s <= b), default=-1)
                           for b in range(TOKEN_BITS + 1)]
        self._levels = [array("Q", bytes(8 * (1 << (TOKEN_BITS - s)))) for s in self.shifts]
        self._pairs = tuple(zip(self._levels, self.shifts))  # the write path's loop
        self.records = 0  # records summarised (stored records, tombstones included)

    @classmethod
    def build(cls, records: Iterable[tuple[int, bytes, int, bool]], **shape) -> "HashTree":
        """A tree of ``(token, key, version, deleted)`` records (a full scan)."""
        tree = cls(**shape)
        for token, key, version, deleted in records:
            tree.add(token, record_hash(key, version, deleted))
        return tree

    # -- updates

    def add(self, token: int, h: int) -> None:
        """XOR the record hash ``h`` in at ``token`` (a record newly stored)."""
        self._xor(token, h)
        self.records += 1

    def update(self, token: int, key: bytes, old: Optional[tuple[int, bool]],
               new: Optional[tuple[int, bool]]) -> None:
        """A store replaced ``old`` (version, deleted) by ``new`` for ``key``; either may be
        ``None`` (absent before, dropped now)."""
        delta = 0
        if old is not None:
            delta ^= record_hash(key, old[0], old[1])
        if new is not None:
            delta ^= record_hash(key, new[0], new[1])
        self._xor(token, delta)
        self.records += (new is not None) - (old is not None)

    def xor(self, token: int, delta: int, count: int) -> None:
        """XOR a precomputed ``delta`` in at ``token`` and add ``count`` to ``records`` (the
        write path's one call: ``update`` with the hashes already taken)."""
        self._xor(token, delta)
        self.records += count

    def apply_changes(self, changes: Iterable[tuple]) -> None:
        """``update`` for each ``(token, key, old, new)`` of a store's batch, where ``old``
        and ``new`` are records (anything with ``version`` and ``deleted``) or ``None``:
        the write path's one call per batch, with the hashing and the level loop inlined."""
        pairs, hash64, flag = self._pairs, _hash64, _FLAG
        records = self.records
        try:
            for token, key, old, new in changes:
                if token >> TOKEN_BITS or token < 0:
                    raise ValueError(f"token {token} outside [0, 2**32)")
                delta = 0
                if old is not None:
                    delta = hash64(key + old.version.to_bytes(8, "big") + flag[bool(old.deleted)],
                                   signed=False)[0]
                    records -= 1
                if new is not None:
                    delta ^= hash64(key + new.version.to_bytes(8, "big") + flag[bool(new.deleted)],
                                    signed=False)[0]
                    records += 1
                for level, shift in pairs:
                    level[token >> shift] ^= delta
        finally:
            self.records = records

    def _xor(self, token: int, delta: int) -> None:
        if token >> TOKEN_BITS or token < 0:
            raise ValueError(f"token {token} outside [0, 2**32)")
        for level, shift in self._pairs:
            level[token >> shift] ^= delta

    # -- reads

    @property
    def leaf_level(self) -> int:
        return 0

    @property
    def root_level(self) -> int:
        return len(self.shifts) - 1

    def root(self) -> int:
        return self._levels[-1][0]

    def hash_at(self, level: int, index: int) -> int:
        return self._levels[level][index]

    def hashes(self, nodes: Iterable[tuple[int, int]]) -> list[int]:
        """Hashes of ``(level, index)`` nodes, in order (what a peer answers)."""
        levels = self._levels
        return [levels[lv][ix] for lv, ix in nodes]

    def hashes_flat(self, flat: list) -> list[int]:
        """Hashes of the nodes of a flat ``[level, index, level, index, ...]`` list (what a
        peer asks for; a trailing odd item is ignored). Raises ``ValueError`` naming a node
        that is not in the tree or not a pair of integers. One C-speed pass: the check is
        ``min`` for negatives and the lookups' own ``IndexError``/``TypeError``."""
        levels = self._levels
        even = flat[:len(flat) & ~1]  # the trailing odd item takes no part, not even in min
        pairs = iter(even)
        try:
            if even and min(even) < 0:
                raise IndexError
            return [levels[lv][ix] for lv, ix in zip(pairs, pairs)]
        except (IndexError, TypeError):
            pass
        for i in range(0, len(even), 2):  # the slow path only names the first bad node
            lv, ix = even[i], even[i + 1]
            if (type(lv) is not int or type(ix) is not int or not 0 <= lv < len(levels)
                    or not 0 <= ix < len(levels[lv])):
                raise ValueError(f"no tree node ({lv!r}, {ix!r})")
        raise ValueError("not a list of integer pairs")

    def node_range(self, level: int, index: int) -> tuple[int, int]:
        """Token span ``[start, end)`` of a node."""
        shift = self.shifts[level]
        return index << shift, (index + 1) << shift

    def children(self, level: int, index: int) -> list[tuple[int, int]]:
        """The nodes one level down that tile ``(level, index)``."""
        if level <= 0:
            raise ValueError("a leaf has no children")
        bits = self.shifts[level] - self.shifts[level - 1]
        first = index << bits
        return [(level - 1, first + i) for i in range(1 << bits)]

    def cover(self, start: int, end: int) -> list[tuple[int, int]]:
        """The fewest nodes that tile the token range ``[start, end)`` exactly, in token
        order. Raises ``ValueError`` unless both ends are on leaf boundaries."""
        leaf = 1 << self.shifts[0]
        if not 0 <= start <= end <= (1 << TOKEN_BITS) or start % leaf or end % leaf:
            raise ValueError(f"range [{start}, {end}) is not on {leaf}-token leaf boundaries")
        shifts, level_for = self.shifts, self._level_for
        out: list[tuple[int, int]] = []
        pos = start
        while pos < end:
            # the largest node starting at pos: aligned there (pos's lowest set bit) and
            # ending by end; both are at least a leaf, since both ends are on leaf boundaries
            bits = min((pos & -pos).bit_length() - 1 if pos else TOKEN_BITS,
                       (end - pos).bit_length() - 1)
            level = level_for[bits]
            out.append((level, pos >> shifts[level]))
            pos += 1 << shifts[level]
        return out

    def cover_ranges(self, ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """``cover`` of several disjoint ranges (merged first, so adjacent ranges can share
        larger nodes)."""
        merged: list[list[int]] = []
        for s, e in sorted(ranges):
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        return [n for s, e in merged for n in self.cover(s, e)]


@dataclass
class TreeWalk:
    """Top-down comparison of a local tree with a remote one, one level per round trip.

    Use: ``while (ask := walk.request()):`` send ``ask`` (``[(level, index)]``) to the peer,
    feed its hashes to ``walk.receive``; then ``walk.leaves`` are the differing leaves. The
    walk never reads the remote tree itself: it works the same in-process and over RPC.
    """

    tree: HashTree
    frontier: list[tuple[int, int]]
    leaves: list[tuple[int, int]] = field(default_factory=list)
    nodes_compared: int = 0

    def request(self) -> list[tuple[int, int]]:
        return list(self.frontier)

    def receive(self, remote: list[int]) -> None:
        frontier = self.frontier
        if len(remote) != len(frontier):
            raise ValueError(f"expected {len(frontier)} hashes, got {len(remote)}")
        self.nodes_compared += len(frontier)
        mine = self.tree.hashes(frontier)
        # most nodes agree: find the rest in one comprehension, then look at them one by one
        differ = [i for i, (a, b) in enumerate(zip(mine, remote)) if a != b]
        nxt: list[tuple[int, int]] = []
        for i in differ:
            level, index = frontier[i]
            if mine[i] == (int(remote[i]) & MASK64):
                continue
            if level == 0:
                self.leaves.append((level, index))
            else:
                nxt.extend(self.tree.children(level, index))
        self.frontier = nxt


def diff_trees(local: HashTree, remote: HashTree,
               roots: Optional[list[tuple[int, int]]] = None) -> list[tuple[int, int]]:
    """Differing leaves of two trees of the same shape under ``roots`` (default: the root),
    found by the same walk a node runs over RPC."""
    walk = TreeWalk(local, roots if roots is not None else [(local.root_level, 0)])
    while (ask := walk.request()):
        walk.receive(remote.hashes(ask))
    return walk.leaves


KeyVersion = tuple[int, bytes, int]  # (token, key, version)


def diff_keys(local: Iterable[KeyVersion],
              remote: Iterable[KeyVersion]) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    """Within differing leaves: ``(pull, push)``, the keys the remote holds newer (or only
    the remote holds) and the keys this side holds newer (or only this side holds)."""
    mine = {(t, bytes(k)): v for t, k, v in local}
    theirs = {(t, bytes(k)): v for t, k, v in remote}
    pull = sorted(k for k, v in theirs.items() if v > mine.get(k, 0))
    push = sorted(k for k, v in mine.items() if v > theirs.get(k, 0))
    return pull, push


def intersect_spans(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The overlap of two sorted lists of disjoint ``[start, end)`` spans."""
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return out


def shared_ranges(ring, n: int, a: str, b: str) -> list[tuple[int, int]]:
    """Token ranges both ``a`` and ``b`` replicate in ``ring`` (preference lists of
    length ``n``): what the two compare in an exchange."""
    if a not in ring.members or b not in ring.members:
        return []
    return intersect_spans(ring.ranges_of(a, n), ring.ranges_of(b, n))
