"""The :class:`Ring`: an immutable assignment of Q equal partitions to members.

See the package docstring for the contract; this module states the rules
the implementation keeps:

- A ring is immutable. ``add``/``remove`` return new rings; per-``n``
  preference tables are computed lazily once and cached (a benign race:
  two threads may compute the same table, both results are identical).
- Every member owns at least one partition, so every walk meets every member.
- Placement depends only on (members, owners, partition count, seed); the
  ``spread`` setting only steers future ``add``/``remove``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import mmh3

from ring import claim
from ring.hashing import (
    MAX_PARTITIONS,
    MAX_SEED,
    check_token,
    is_power_of_two,
    key_bytes,
    partition_shift,
)
from ring.moves import RangeMove, diff_tables, merge_ranges, walk_table

DEFAULT_PARTITIONS = 4096
DEFAULT_SEED = 0
DEFAULT_SPREAD = 3
DICT_VERSION = 1


def _check_member_id(member: object) -> str:
    if not isinstance(member, str):
        raise TypeError(f"member id must be a str, not {type(member).__name__}")
    if not member:
        raise ValueError("member id must be a non-empty string")
    return member


def _check_settings(partitions: object, seed: object, spread: object) -> None:
    for name, value in (("partitions", partitions), ("seed", seed), ("spread", spread)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    assert isinstance(partitions, int) and isinstance(seed, int) and isinstance(spread, int)
    if not is_power_of_two(partitions) or partitions > MAX_PARTITIONS:
        raise ValueError(f"partitions must be a power of two between 1 and 2**24, got {partitions}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    if spread < 1:
        raise ValueError(f"spread must be at least 1, got {spread}")



@functools.lru_cache(maxsize=16)
def _initial_owners(names: tuple[str, ...], partitions: int, spread: int, seed: int) -> tuple[int, ...]:
    """``claim.initial_owners``, remembered: a pure function of its arguments that every
    node of a cluster asks with the same members (and every run of the system simulator:
    dealing 4096 partitions is most of a small simulated run's CPU)."""
    return tuple(claim.initial_owners(names, partitions, spread, seed))


@functools.lru_cache(maxsize=16)
def _walk_table(owner_names: tuple[str, ...], n: int) -> list[tuple[str, ...]]:
    """``moves.walk_table``, remembered per owner layout (every node builds the same ring
    from the log; the table is shared read-only between equal rings)."""
    return walk_table(owner_names, n)

class Ring:
    """Consistent-hash ring of Q equal partitions (Dynamo strategy 3).

    Create with :meth:`build` or :meth:`from_dict`; derive with :meth:`add`
    and :meth:`remove`. The constructor is internal and trusts its input.
    """

    __slots__ = (
        "_members",
        "_owners",
        "_owner_names",
        "_partitions",
        "_shift",
        "_seed",
        "_spread",
        "_tables",
        "_ranges",
    )

    def __init__(
        self,
        members: tuple[str, ...],
        owners: Sequence[int],
        *,
        partitions: int,
        seed: int,
        spread: int,
    ) -> None:
        self._members = members
        self._owners = tuple(owners)
        self._owner_names = tuple(members[i] for i in self._owners)
        self._partitions = partitions
        self._shift = partition_shift(partitions)
        self._seed = seed
        self._spread = spread
        self._tables: dict[int, list[tuple[str, ...]]] = {}
        self._ranges: dict[tuple[str, int], list[tuple[int, int]]] = {}

    # ----------------------------------------------------------------- building

    @classmethod
    def build(
        cls,
        members: Iterable[str],
        *,
        partitions: int = DEFAULT_PARTITIONS,
        seed: int = DEFAULT_SEED,
        spread: int = DEFAULT_SPREAD,
    ) -> Ring:
        """A new ring for ``members`` (join order kept in :attr:`members`).

        Deterministic: the same members in the same order and the same
        keyword arguments give the same ring on every machine.

        ``partitions`` (Q, default 4096) must be a power of two and at least
        the member count; balance is within ``1 + m/Q`` so keep Q >= 64 * m.
        ``seed`` (default 0) is the mmh3 seed for keys and tie-breaks.
        ``spread`` (default 3) is the preference-list length N whose replica
        load is kept even: owners of any ``spread`` consecutive partitions
        are kept distinct where possible.
        """
        names = tuple(_check_member_id(member) for member in members)
        _check_settings(partitions, seed, spread)
        if not names:
            raise ValueError("a ring needs at least one member; the member list is empty")
        if len(set(names)) != len(names):
            duplicates = sorted({name for name in names if names.count(name) > 1})
            raise ValueError(f"duplicate member ids: {duplicates}")
        if len(names) > partitions:
            raise ValueError(f"{len(names)} members do not fit in {partitions} partitions")
        owners = list(_initial_owners(names, partitions, spread, seed))
        return cls(names, owners, partitions=partitions, seed=seed, spread=spread)

    def add(self, member: str) -> Ring:
        """A new ring with ``member`` joined; this ring is unchanged.

        The joiner takes ``Q // (m + 1)`` partitions evenly from the others;
        only replica sets that now include it change.
        """
        _check_member_id(member)
        if member in self._members:
            raise ValueError(f"cannot add {member!r}: already a member")
        if len(self._members) + 1 > self._partitions:
            raise ValueError(f"cannot add {member!r}: {self._partitions} partitions are all taken")
        members = self._members + (member,)
        if len(members) <= self._spread:
            owners = claim.initial_owners(members, self._partitions, self._spread, self._seed)
        else:
            owners = claim.claim_for_joiner(self._owners, self._members, member, self._spread, self._seed)
        return Ring(members, owners, partitions=self._partitions, seed=self._seed, spread=self._spread)

    def remove(self, member: str) -> Ring:
        """A new ring without ``member``; this ring is unchanged.

        Its partitions are shared evenly among the others; only replica sets
        that included it change.
        """
        index = self._index_of(member, "remove")
        if len(self._members) == 1:
            raise ValueError(f"cannot remove {member!r}: it is the last member")
        members = self._members[:index] + self._members[index + 1 :]
        if len(members) <= self._spread:
            owners = claim.initial_owners(members, self._partitions, self._spread, self._seed)
        else:
            owners = claim.release_leaver(self._owners, self._members, index, self._spread, self._seed)
        return Ring(members, owners, partitions=self._partitions, seed=self._seed, spread=self._spread)

    # ---------------------------------------------------------------- placement

    def token(self, key: str | bytes) -> int:
        """``key``'s token in ``[0, 2**32)``: unsigned mmh3 of its (UTF-8) bytes with this ring's seed."""
        return mmh3.hash(key_bytes(key), self._seed, signed=False)

    def preference_list(self, key: str | bytes, n: int) -> list[str]:
        """The ``n`` distinct members that replicate ``key``, in preference order.

        ``1 <= n <= len(members)``. Equals ``preference_list_for_token(token(key), n)``.
        """
        table = self._tables.get(n)
        if table is None:
            table = self._table(n)
        return list(table[mmh3.hash(key_bytes(key), self._seed, signed=False) >> self._shift])

    def preference_list_for_token(self, token: int, n: int) -> list[str]:
        """The ``n`` distinct members that replicate ``token``, in preference order."""
        check_token(token)
        return list(self._table(n)[token >> self._shift])

    def partition(self, token: int) -> int:
        """The index of the partition holding ``token``: every token of a partition has the
        same preference list and the same walk (what a per-partition plan can be keyed by)."""
        check_token(token)
        return token >> self._shift

    def walk(self, key: str | bytes) -> Iterator[str]:
        """Every member once, in ring order from ``key``: its preference list, then fallbacks."""
        return self.walk_token(self.token(key))

    def walk_token(self, token: int) -> Iterator[str]:
        """Every member once, in ring order from ``token``."""
        check_token(token)
        return self._walk_from(token >> self._shift)

    def _walk_from(self, partition: int) -> Iterator[str]:
        names = self._owner_names
        size = self._partitions
        total = len(self._members)
        seen: set[str] = set()
        for step in range(size):
            owner = names[(partition + step) % size]
            if owner not in seen:
                seen.add(owner)
                yield owner
                if len(seen) == total:
                    return

    # ---------------------------------------------------------- load and ranges

    def ownership(self) -> dict[str, float]:
        """Share of the token space each member owns as primary; the values sum to 1 exactly
        (Q is a power of two, so each share is an exact binary fraction)."""
        counts = dict.fromkeys(self._members, 0)
        for owner in self._owner_names:
            counts[owner] += 1
        return {member: count / self._partitions for member, count in counts.items()}

    def replica_load(self, n: int) -> dict[str, float]:
        """Share of the token space each member replicates with lists of length ``n``;
        the values sum to ``n``."""
        load = dict.fromkeys(self._members, 0)
        for replicas in self._table(n):
            for member in replicas:
                load[member] += 1
        return {member: count / self._partitions for member, count in load.items()}

    def ranges_of(self, member: str, n: int) -> list[tuple[int, int]]:
        """Sorted, merged ``[start, end)`` token ranges whose preference list of length ``n`` includes ``member``."""
        got = self._ranges.get((member, n))
        if got is None:  # remembered: the ring is immutable and nodes ask again and again
            self._index_of(member, "find ranges of")
            got = self._ranges[(member, n)] = merge_ranges(
                [member in replicas for replicas in self._table(n)], self._partitions)
        return list(got)

    def moves(self, other: Ring, n: int) -> list[RangeMove]:
        """Token ranges whose replica set (length ``n``) differs from this ring to ``other``.

        Sorted, non-wrapping, adjacent equal ``(old, new)`` merged; ranges whose
        preference order changed but whose set did not are not listed.
        """
        if not isinstance(other, Ring):
            raise TypeError(f"moves needs another Ring, not {type(other).__name__}")
        if other._seed != self._seed:
            raise ValueError(f"rings hash keys differently (seed {self._seed} vs {other._seed}); ranges are not comparable")
        return diff_tables(self._table(n), other._table(n))

    # ----------------------------------------------------------------- structure

    @property
    def members(self) -> tuple[str, ...]:
        """Member ids in join order (``build`` order, then each ``add`` appended)."""
        return self._members

    @property
    def partition_count(self) -> int:
        """Q, the number of equal partitions."""
        return self._partitions

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def spread(self) -> int:
        return self._spread

    def partition_of(self, token: int) -> int:
        """The partition holding ``token``: ``token * Q >> 32``."""
        return check_token(token) >> self._shift

    def partition_range(self, partition: int) -> tuple[int, int]:
        """Token range ``[start, end)`` of ``partition``."""
        if not 0 <= partition < self._partitions:
            raise ValueError(f"partition {partition} is outside [0, {self._partitions})")
        return partition << self._shift, (partition + 1) << self._shift

    def owner_of_partition(self, partition: int) -> str:
        """The member that comes first for every token of ``partition``."""
        self.partition_range(partition)
        return self._owner_names[partition]

    def _index_of(self, member: str, action: str) -> int:
        try:
            return self._members.index(member)
        except ValueError:
            raise ValueError(f"cannot {action} {member!r}: not a member") from None

    def _table(self, n: int) -> list[tuple[str, ...]]:
        table = self._tables.get(n)
        if table is None:
            if not isinstance(n, int) or isinstance(n, bool):
                raise TypeError(f"n must be an int, not {type(n).__name__}")
            if not 1 <= n <= len(self._members):
                raise ValueError(f"n must be between 1 and the member count {len(self._members)}, got {n}")
            table = self._tables[n] = _walk_table(self._owner_names, n)
        return table

    # ------------------------------------------------------------ serialization

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON/msgpack-safe form: str keys, ints, lists; ``owners`` holds one
        member index per partition."""
        return {
            "version": DICT_VERSION,
            "members": list(self._members),
            "partitions": self._partitions,
            "seed": self._seed,
            "spread": self._spread,
            "owners": list(self._owners),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ring:
        """The ring :meth:`to_dict` described; raises ValueError on a malformed dict."""
        if not isinstance(data, Mapping):
            raise TypeError(f"from_dict needs a mapping, not {type(data).__name__}")
        missing = [key for key in ("version", "members", "partitions", "seed", "spread", "owners") if key not in data]
        if missing:
            raise ValueError(f"ring dict is missing {missing}")
        if data["version"] != DICT_VERSION:
            raise ValueError(f"unsupported ring dict version {data['version']!r}")
        if not isinstance(data["members"], (list, tuple)) or not isinstance(data["owners"], (list, tuple)):
            raise ValueError("ring dict 'members' and 'owners' must be lists")
        names = tuple(_check_member_id(member) for member in data["members"])
        partitions, seed, spread = data["partitions"], data["seed"], data["spread"]
        _check_settings(partitions, seed, spread)
        if not names:
            raise ValueError("ring dict has an empty member list")
        if len(set(names)) != len(names):
            raise ValueError("ring dict has duplicate member ids")
        owners = data["owners"]
        if len(owners) != partitions:
            raise ValueError(f"ring dict has {len(owners)} owners for {partitions} partitions")
        if not all(isinstance(o, int) and not isinstance(o, bool) and 0 <= o < len(names) for o in owners):
            raise ValueError("ring dict owners must be member indexes")
        idle = set(range(len(names))) - set(owners)
        if idle:
            raise ValueError(f"ring dict members own no partition: {sorted(names[i] for i in idle)}")
        return cls(names, owners, partitions=partitions, seed=seed, spread=spread)

    # ------------------------------------------------------------------ dunders

    def __eq__(self, other: object) -> bool:
        """Equal iff same seed, same member set and every token placed identically."""
        if not isinstance(other, Ring):
            return NotImplemented
        if self._seed != other._seed or set(self._members) != set(other._members):
            return False
        if self._partitions == other._partitions:
            return self._owner_names == other._owner_names
        # Different Q can still place identically: compare on the finer grid.
        fine, coarse = (self, other) if self._partitions > other._partitions else (other, self)
        step = fine._partitions // coarse._partitions
        return all(name == coarse._owner_names[p // step] for p, name in enumerate(fine._owner_names))

    def __hash__(self) -> int:
        return hash((self._seed, frozenset(self._members)))

    def __repr__(self) -> str:
        shown = ", ".join(repr(m) for m in self._members[:8])
        if len(self._members) > 8:
            shown += f", ... ({len(self._members)} members)"
        return f"Ring([{shown}], partitions={self._partitions}, seed={self._seed}, spread={self._spread})"

