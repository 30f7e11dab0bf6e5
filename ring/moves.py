"""Key ranges whose replica sets differ between two rings.

Rules:
- A :class:`RangeMove` covers the tokens ``start <= t < end`` with
  ``0 <= start < end <= 2**32``; ranges never wrap.
- ``old`` and ``new`` are the preference lists (in preference order) of every
  token in the range, in the old and the new ring.
- Only ranges whose replica *set* differs are listed: a change of order alone
  moves no data (the same members hold the same keys), so it is not a move.
- Moves are sorted by ``start`` and adjacent ranges with equal ``(old, new)``
  are merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ring.hashing import TOKEN_BITS


@dataclass(frozen=True, slots=True)
class RangeMove:
    """Tokens ``[start, end)`` had replicas ``old`` and now have ``new``."""

    start: int
    end: int
    old: tuple[str, ...]
    new: tuple[str, ...]

    @property
    def gained(self) -> tuple[str, ...]:
        """Members in ``new`` but not in ``old`` (in ``new`` order): they must receive the range."""
        return tuple(member for member in self.new if member not in self.old)

    @property
    def lost(self) -> tuple[str, ...]:
        """Members in ``old`` but not in ``new`` (in ``old`` order): they may drop the range."""
        return tuple(member for member in self.old if member not in self.new)

    def __contains__(self, token: object) -> bool:
        return isinstance(token, int) and self.start <= token < self.end


def merge_ranges(flags: Sequence[bool], partitions: int) -> list[tuple[int, int]]:
    """``[start, end)`` token ranges of the runs of partitions whose flag is set."""
    shift = TOKEN_BITS - (partitions.bit_length() - 1)
    ranges: list[tuple[int, int]] = []
    for p, flag in enumerate(flags):
        if not flag:
            continue
        start, end = p << shift, (p + 1) << shift
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges


def diff_tables(
    old_table: Sequence[tuple[str, ...]],
    new_table: Sequence[tuple[str, ...]],
) -> list[RangeMove]:
    """Moves between two per-partition preference tables (any powers of two).

    The finer table's partitions refine the coarser one's, so comparing at
    the finer granularity is exact.
    """
    finest = max(len(old_table), len(new_table))
    shift = TOKEN_BITS - (finest.bit_length() - 1)
    old_step = finest // len(old_table)
    new_step = finest // len(new_table)
    moves: list[RangeMove] = []
    for p in range(finest):
        old = old_table[p // old_step]
        new = new_table[p // new_step]
        if old == new or set(old) == set(new):
            continue
        start, end = p << shift, (p + 1) << shift
        if moves and moves[-1].end == start and moves[-1].old == old and moves[-1].new == new:
            moves[-1] = RangeMove(moves[-1].start, end, old, new)
        else:
            moves.append(RangeMove(start, end, old, new))
    return moves


def walk_table(owner_names: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """For each partition, the first ``n`` distinct owners walking clockwise.

    Requires at least ``n`` distinct owners in ``owner_names``. Built from the
    end backwards with ``walk(p) = owner(p) + (walk(p + 1) without owner(p))``,
    which holds for truncated walks too, so the cost is O(Q * n) rather than
    one full walk per partition.
    """
    size = len(owner_names)
    first: list[str] = []
    for owner in owner_names:
        if owner not in first:
            first.append(owner)
            if len(first) == n:
                break
    table: list[tuple[str, ...]] = [()] * size
    table[0] = following = tuple(first)
    for p in range(size - 1, 0, -1):
        owner = owner_names[p]
        if following[0] != owner:
            rest = tuple(member for member in following if member != owner)
            following = (owner,) + rest[: n - 1]
        table[p] = following
    return table

