"""Records (core/records.py): the newest-wins rule's helpers and the size estimate that
bounds peer batches."""

import msgpack

from dynamopy.core.records import Record, newest, record_wire_bytes


def test_the_wire_size_estimate_is_never_below_the_encoded_item():
    """Peer batches (transfer, hints, anti-entropy) are cut by this estimate: it must cover
    the largest item form, [token, key, record], for any key, value and content type."""
    for key in (b"", b"k", b"k" * 300, b"k" * 70_000):
        for rec in (Record(1), Record(2**63 - 1, True),
                    Record(2**40, False, "text/plain", b"v" * 100_000),
                    Record(7, False, "t/" + "\u00e9" * 1022, b"x"),  # latin-1 header text
                    Record(7, False, "a" * 1024, b"y" * 65_536)):
            item = msgpack.packb([2**32 - 1, key, rec.to_wire()], use_bin_type=True)
            assert record_wire_bytes(key, rec) >= len(item), (len(key), rec.content_type[:8])


def test_newest_picks_the_largest_version_and_skips_missing_replies():
    a, b = Record(5, value=b"a"), Record(9, True)
    assert newest([None, a, b, None]) is b and newest([b, a]) is b
    assert newest([]) is None and newest([None]) is None


def test_a_record_and_a_missing_one_cross_the_peer_wire_unchanged():
    """What a replica sends (msgpack of ``to_wire``, None for no record) is what the
    coordinator reads back: version, tombstone flag, content type and bytes."""
    for rec in (Record(2**40 + 7, False, "text/plain; charset=utf-8", b"\x00value"),
                Record(5, True), Record(9, False, "application/json", b"")):
        wire = msgpack.unpackb(msgpack.packb(rec.to_wire()))
        assert Record.from_wire(wire) == rec
    assert Record.from_wire(msgpack.unpackb(msgpack.packb(None))) is None


def test_from_wire_on_a_subclass_builds_that_subclass():
    """``Record.from_wire`` takes its fast path for ``Record`` itself only: a subclass's
    ``from_wire`` still builds the subclass, with the wire's fields converted."""

    class Tagged(Record):
        pass

    got = Tagged.from_wire(msgpack.unpackb(msgpack.packb([2**40 + 7, 1, "text/plain", b"v"])))
    assert type(got) is Tagged
    assert (got.version, got.deleted, got.content_type, got.value) == \
        (2**40 + 7, True, "text/plain", b"v")
    assert type(got.deleted) is bool and type(got.value) is bytes
    fresh = Record.from_wire([5, 0, "t", bytearray(b"x")])
    assert type(fresh) is Record and fresh == Record(5, False, "t", b"x")
    assert type(fresh.value) is bytes and type(fresh.deleted) is bool
