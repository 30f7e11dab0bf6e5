"""Contract tests for the ``ring`` package: API behaviour, serialization, bad input."""

from __future__ import annotations

import ast
import json
import pathlib
import sys

import mmh3
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ring as ring_package
from ring import TOKEN_SPACE, RangeMove, Ring

member_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=6)
member_lists = st.lists(member_ids, min_size=1, max_size=12, unique=True)
keys = st.one_of(st.text(max_size=40), st.binary(max_size=40))
tokens = st.integers(min_value=0, max_value=TOKEN_SPACE - 1)
small_q = st.sampled_from([64, 256, 1024])


def names(count: int, prefix: str = "n") -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


# ------------------------------------------------------------------ determinism


@settings(max_examples=25, deadline=None)
@given(members=member_lists, partitions=small_q, seed=st.integers(0, 2**32 - 1))
def test_build_is_deterministic(members: list[str], partitions: int, seed: int) -> None:
    first = Ring.build(members, partitions=partitions, seed=seed)
    second = Ring.build(list(members), partitions=partitions, seed=seed)
    assert first == second
    assert first.to_dict() == second.to_dict()
    assert first.members == tuple(members)


@settings(max_examples=15, deadline=None)
@given(start=st.integers(4, 8), ops=st.lists(st.booleans(), max_size=5), data=st.data())
def test_same_changes_give_same_ring(start: int, ops: list[bool], data: st.DataObject) -> None:
    one = two = Ring.build(names(start), partitions=512)
    for i, grow in enumerate(ops):
        if grow or len(one.members) <= 3:
            one, two = one.add(f"x{i}"), two.add(f"x{i}")
        else:
            leaver = data.draw(st.sampled_from(one.members))
            one, two = one.remove(leaver), two.remove(leaver)
        # A node that loads the dict and carries on must agree too.
        two = Ring.from_dict(json.loads(json.dumps(two.to_dict())))
        assert one.to_dict() == two.to_dict()


def test_add_and_remove_leave_the_old_ring_unchanged() -> None:
    ring = Ring.build(names(5))
    before = ring.to_dict()
    ring.add("n9")
    ring.remove("n2")
    assert ring.to_dict() == before
    assert ring.members == tuple(names(5))


def test_members_keep_join_order() -> None:
    ring = Ring.build(["b", "a", "c", "d"]).add("e").remove("a").add("0")
    assert ring.members == ("b", "c", "d", "e", "0")


# -------------------------------------------------------------- preference lists


@settings(max_examples=60, deadline=None)
@given(members=member_lists, key=keys, data=st.data())
def test_preference_list_is_distinct_members(members: list[str], key: str | bytes, data: st.DataObject) -> None:
    ring = Ring.build(members, partitions=256)
    n = data.draw(st.integers(1, len(members)))
    replicas = ring.preference_list(key, n)
    assert isinstance(replicas, list)
    assert len(replicas) == n == len(set(replicas))
    assert set(replicas) <= set(members)
    assert replicas == ring.preference_list_for_token(ring.token(key), n)
    assert replicas == list(ring.walk(key))[:n]
    # Shorter lists are prefixes of longer ones.
    assert ring.preference_list(key, len(members))[:n] == replicas


@settings(max_examples=60, deadline=None)
@given(members=member_lists, token=tokens)
def test_walk_yields_every_member_once(members: list[str], token: int) -> None:
    ring = Ring.build(members, partitions=256)
    walked = list(ring.walk_token(token))
    assert sorted(walked) == sorted(members)
    assert walked[0] == ring.owner_of_partition(ring.partition_of(token))


@given(key=st.text(max_size=30), seed=st.integers(0, 2**32 - 1))
def test_token_is_unsigned_mmh3_of_utf8(key: str, seed: int) -> None:
    ring = Ring.build(["a"], seed=seed, partitions=1)
    token = ring.token(key)
    assert token == mmh3.hash(key.encode("utf-8"), seed, signed=False)
    assert ring.token(key.encode("utf-8")) == token
    assert 0 <= token < TOKEN_SPACE


def test_str_and_utf8_bytes_place_alike() -> None:
    ring = Ring.build(names(8))
    for key in ["user:1", "ключ", "键", "🙂"]:
        assert ring.preference_list(key, 3) == ring.preference_list(key.encode("utf-8"), 3)


def test_partition_arithmetic() -> None:
    ring = Ring.build(names(4), partitions=16)
    assert ring.partition_count == 16
    assert ring.partition_of(0) == 0
    assert ring.partition_of(TOKEN_SPACE - 1) == 15
    assert ring.partition_of(3 * TOKEN_SPACE // 16) == 3
    assert ring.partition_range(3) == (3 * 2**28, 4 * 2**28)
    assert ring.partition_range(15)[1] == TOKEN_SPACE


# -------------------------------------------------------------------- ownership


@settings(max_examples=40, deadline=None)
@given(members=member_lists, partitions=small_q)
def test_ownership_sums_to_one(members: list[str], partitions: int) -> None:
    ring = Ring.build(members, partitions=partitions)
    shares = ring.ownership()
    assert list(shares) == members
    assert sum(shares.values()) == 1.0
    assert all(share > 0 for share in shares.values())
    n = min(3, len(members))
    assert sum(ring.replica_load(n).values()) == pytest.approx(n)


# ---------------------------------------------------------------- serialization


@settings(max_examples=25, deadline=None)
@given(members=member_lists, partitions=small_q, seed=st.integers(0, 2**32 - 1), spread=st.integers(1, 4))
def test_dict_round_trip(members: list[str], partitions: int, seed: int, spread: int) -> None:
    ring = Ring.build(members, partitions=partitions, seed=seed, spread=spread)
    data = ring.to_dict()
    for loaded in (
        Ring.from_dict(data),
        Ring.from_dict(json.loads(json.dumps(data))),
        Ring.from_dict(msgpack.unpackb(msgpack.packb(data))),
    ):
        assert loaded == ring
        assert loaded.to_dict() == data
        assert loaded.members == ring.members
        assert (loaded.seed, loaded.spread, loaded.partition_count) == (seed, spread, partitions)


def test_dict_is_compact() -> None:
    data = Ring.build(names(64)).to_dict()
    assert set(data) == {"version", "members", "partitions", "seed", "spread", "owners"}
    assert all(isinstance(owner, int) for owner in data["owners"])
    assert len(data["owners"]) == 4096
    assert len(msgpack.packb(data)) < 10_000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("owners"), "missing"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d.update(owners=d["owners"][:-1]), "owners for"),
        (lambda d: d["owners"].__setitem__(0, 7), "member indexes"),
        (lambda d: d.update(members=["a", "a", "c"]), "duplicate"),
        (lambda d: d.update(members=[]), "empty"),
        (lambda d: d.update(owners=[0] * 16), "own no partition"),
        (lambda d: d.update(partitions=12, owners=[0, 1, 2] * 4), "power of two"),
    ],
)
def test_from_dict_rejects_malformed(change, message: str) -> None:
    data = Ring.build(["a", "b", "c"], partitions=16).to_dict()
    change(data)
    with pytest.raises(ValueError, match=message):
        Ring.from_dict(data)


# -------------------------------------------------------------- equality, repr


def test_equality_and_hash() -> None:
    ring = Ring.build(names(4), partitions=64)
    assert ring == Ring.from_dict(ring.to_dict())
    assert hash(ring) == hash(Ring.from_dict(ring.to_dict()))
    assert ring != Ring.build(names(4), partitions=64, seed=1)
    assert ring != ring.add("n9")
    assert ring != "ring"
    # Same placement at a finer partition grid is the same ring.
    data = ring.to_dict()
    finer = dict(data, partitions=128, owners=[owner for owner in data["owners"] for _ in range(2)])
    assert Ring.from_dict(finer) == ring


def test_repr_names_the_ring() -> None:
    text = repr(Ring.build(["a", "b"], partitions=8, seed=7))
    assert text == "Ring(['a', 'b'], partitions=8, seed=7, spread=3)"
    assert "(20 members)" in repr(Ring.build(names(20)))


# -------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Ring.build([]), "empty"),
        (lambda: Ring.build(["a", "b", "a"]), r"duplicate member ids: \['a'\]"),
        (lambda: Ring.build(["a", ""]), "non-empty"),
        (lambda: Ring.build(["a"], partitions=1000), "power of two"),
        (lambda: Ring.build(["a"], partitions=0), "power of two"),
        (lambda: Ring.build(names(5), partitions=4), "do not fit"),
        (lambda: Ring.build(["a"], seed=-1), "seed"),
        (lambda: Ring.build(["a"], seed=2**32), "seed"),
        (lambda: Ring.build(["a"], spread=0), "spread"),
        (lambda: Ring.build(names(3)).preference_list("k", 0), "n must be between 1 and the member count 3, got 0"),
        (lambda: Ring.build(names(3)).preference_list("k", 4), "n must be between 1 and the member count 3, got 4"),
        (lambda: Ring.build(names(3)).preference_list_for_token(5, 4), "member count"),
        (lambda: Ring.build(names(3)).ranges_of("n0", 9), "member count"),
        (lambda: Ring.build(names(3)).remove("n7"), "cannot remove 'n7': not a member"),
        (lambda: Ring.build(["a"]).remove("a"), "last member"),
        (lambda: Ring.build(names(3)).add("n1"), "cannot add 'n1': already a member"),
        (lambda: Ring.build(names(4), partitions=4).add("x"), "partitions are all taken"),
        (lambda: Ring.build(names(3)).ranges_of("zz", 2), "'zz': not a member"),
        (lambda: Ring.build(names(3)).walk_token(TOKEN_SPACE), "outside the token space"),
        (lambda: Ring.build(names(3)).preference_list_for_token(-1, 1), "outside the token space"),
        (lambda: Ring.build(names(3)).partition_range(4096), "outside"),
        (lambda: Ring.build(names(4)).moves(Ring.build(names(4), seed=5), 3), "seed"),
        (lambda: Ring.build(names(4)).moves(Ring.build(names(2)), 3), "member count 2"),
        (lambda: Ring.build(names(3)).preference_list("\ud800", 1), "surrogate"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: Ring.build(["a", 3]),
        lambda: Ring.build(names(3)).preference_list(17, 1),
        lambda: Ring.build(names(3)).preference_list("k", 1.5),
        lambda: Ring.build(names(3)).moves("ring", 1),
        lambda: Ring.build(names(3)).walk_token("0"),
    ],
)
def test_wrong_types_raise_type_error(call) -> None:
    with pytest.raises(TypeError):
        call()


# -------------------------------------------------------------------- RangeMove


def test_range_move_helpers() -> None:
    move = RangeMove(0, 10, ("a", "b", "c"), ("a", "d", "b"))
    assert move.gained == ("d",)
    assert move.lost == ("c",)
    assert 0 in move and 9 in move and 10 not in move
    with pytest.raises(AttributeError):
        move.start = 1  # type: ignore[misc]


def test_moves_between_equal_rings_is_empty() -> None:
    ring = Ring.build(names(6))
    assert ring.moves(Ring.from_dict(ring.to_dict()), 3) == []


# ------------------------------------------------------------------- hygiene


def test_package_exports_and_docs() -> None:
    assert set(ring_package.__all__) >= {"Ring", "RangeMove", "TOKEN_SPACE"}
    doc = ring_package.__doc__ or ""
    for name in ("preference_list", "walk", "ownership", "moves", "ranges_of", "to_dict", "from_dict", "4096"):
        assert name in doc


def test_ring_imports_only_mmh3_and_the_standard_library() -> None:
    source_dir = pathlib.Path(ring_package.__file__).parent
    allowed = set(sys.stdlib_module_names) | {"ring", "mmh3"}
    for path in source_dir.glob("*.py"):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert imported <= allowed, (path.name, imported - allowed)
        if path.name != "bench.py":
            # No random module at all: placement must not depend on process state.
            assert "random" not in imported, path.name


# ---------------------------------------- found by mutation testing (benchlib.mutation)

def test_key_token_is_unsigned_seeded_mmh3_of_the_utf8_bytes():
    from ring.hashing import check_token, key_bytes, key_token

    assert key_bytes("é") == b"\xc3\xa9" and key_bytes(b"\xff") == b"\xff"
    for seed in (0, 7):
        for key in ("user:42", "ключ", b"\x80\x81"):
            raw = key.encode() if isinstance(key, str) else key
            assert key_token(key, seed) == mmh3.hash(raw, seed, signed=False)
    assert key_token("user:42", 0) != key_token("user:42", 7)
    with pytest.raises(TypeError, match="key must be str or bytes, not int"):
        key_bytes(5)
    for bad, kind in ((True, "bool"), ("1", "str"), (1.0, "float")):
        with pytest.raises(TypeError, match=f"token must be an int, not {kind}"):
            check_token(bad)
    check_token(0)  # an int in range passes


def test_preference_list_of_a_key_is_that_of_its_token_for_any_seed():
    for seed in (0, 3):
        r = Ring.build(names(5), partitions=256, seed=seed)
        for i in range(300):
            key = f"k{i}"
            assert r.token(key) == mmh3.hash(key.encode(), seed, signed=False)
            assert r.preference_list(key, 3) == r.preference_list_for_token(r.token(key), 3)


def test_bad_arguments_name_what_was_wrong():
    r = Ring.build(names(3), partitions=64)
    with pytest.raises(ValueError, match="cannot find ranges of 'zz': not a member"):
        r.ranges_of("zz", 2)
    with pytest.raises(TypeError, match="moves needs another Ring, not int"):
        r.moves(5, 2)
    with pytest.raises(TypeError, match="from_dict needs a mapping, not list"):
        Ring.from_dict([])
    d = r.to_dict()
    for bad, message in (({"owners": "abc"}, "'members' and 'owners' must be lists"),
                         ({"members": "abc"}, "'members' and 'owners' must be lists"),
                         ({"members": []}, "has an empty member list"),
                         ({"members": ["a", "a", "b"]}, "has duplicate member ids"),
                         ({"owners": [3] * 64}, "owners must be member indexes")):
        with pytest.raises(ValueError) as e:
            Ring.from_dict({**d, **bad})
        assert str(e.value) == "ring dict " + message


def test_a_ring_can_fill_every_partition():
    r = Ring.build(names(3), partitions=4)
    full = r.add("x")  # the fourth member takes the last free partition count
    assert sorted(full.members) == ["n0", "n1", "n2", "x"]
    with pytest.raises(ValueError, match="4 partitions are all taken"):
        full.add("y")


def test_where_a_joiner_lands_depends_on_its_name():
    r = Ring.build(names(5), partitions=256)
    spots = [[i for i, o in enumerate(r.add(j).to_dict()["owners"]) if o == 5] for j in ("x", "y")]
    assert spots[0] != spots[1]  # seeded tie-breaks: joiners do not all pile on the same spots


def test_equality_needs_the_same_seed_and_compares_any_two_grids():
    r = Ring.build(names(3), partitions=64)
    assert r != Ring.from_dict({**r.to_dict(), "seed": 5})
    d = r.to_dict()
    finer = Ring.from_dict({**d, "partitions": 128, "owners": [o for o in d["owners"] for _ in (0, 1)]})
    assert finer == r and r == finer  # same placement on a finer grid, either side
    moved = list(finer.to_dict()["owners"])
    moved[0] = (moved[0] + 1) % 3  # half of partition 0 changes hands
    assert Ring.from_dict({**finer.to_dict(), "owners": moved}) != r


def test_repr_shows_at_most_eight_members():
    assert "..." not in repr(Ring.build(names(8), partitions=64))
    text = repr(Ring.build(names(9), partitions=64))
    assert "'n7', ... (9 members)" in text and "'n8'" not in text


def test_rank_is_unsigned_seeded_mmh3_of_the_joined_parts():
    from ring.hashing import rank

    values = [rank(7, "deal", i, "n1") for i in range(20)]
    assert values == [mmh3.hash(f"deal\x1f{i}\x1fn1".encode(), 7, signed=False)
                      for i in range(20)]
    assert any(v >= 2 ** 31 for v in values)  # the unsigned range is exercised
    assert rank(0, "x") != rank(1, "x")


def test_settings_and_list_lengths_are_checked_with_named_errors():
    from ring.hashing import MAX_PARTITIONS
    from ring.ring import _check_settings

    for kw, message in (({"partitions": True}, "partitions must be an int, not bool"),
                        ({"seed": "1"}, "seed must be an int, not str"),
                        ({"spread": 1.5}, "spread must be an int, not float")):
        with pytest.raises(TypeError) as e:
            Ring.build(names(3), **{"partitions": 64, **kw})
        assert str(e.value) == message
    _check_settings(MAX_PARTITIONS, 0, 3)  # the largest Q is allowed
    with pytest.raises(ValueError, match="power of two between 1 and 2"):
        _check_settings(MAX_PARTITIONS * 2, 0, 3)
    for bad, kind in ((True, "bool"), ("2", "str")):
        with pytest.raises(TypeError) as e:
            Ring.build(names(3), partitions=64).preference_list("k", bad)
        assert str(e.value) == f"n must be an int, not {kind}"


def test_member_id_errors_are_exact():
    for bad, exc, message in ((5, TypeError, "member id must be a str, not int"),
                              ("", ValueError, "member id must be a non-empty string")):
        with pytest.raises(exc) as e:
            Ring.build(["a", bad], partitions=64)
        assert str(e.value) == message
    with pytest.raises(ValueError) as e:
        Ring.build([], partitions=64)
    assert str(e.value) == "a ring needs at least one member; the member list is empty"
