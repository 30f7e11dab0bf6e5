"""The stored value of a key and the rule that picks the newest one.

Invariant: a replica keeps, for each key, the record with the largest version it has
ever seen. Versions are unique per write across the cluster (see ``versions``), so
"largest version" is a total order and replicas that saw the same writes agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Record:
    """One version of one key. A delete is a record with ``deleted=True`` (a tombstone)."""

    version: int
    deleted: bool = False
    content_type: str = DEFAULT_CONTENT_TYPE
    value: bytes = b""

    def to_wire(self) -> list:
        """Compact form for msgpack: [version, deleted, content_type, value]."""
        return [self.version, self.deleted, self.content_type, self.value]

    @classmethod
    def from_wire(cls, w: Optional[list]) -> Optional["Record"]:
        if w is None:
            return None
        version, deleted, content_type, value = w
        if cls is not Record:
            return cls(int(version), bool(deleted), str(content_type), bytes(value))
        # The frozen dataclass's __init__ sets each field through object.__setattr__; the
        # slots' own setters do the same in half the time (every peer reply and stored
        # record is decoded here).
        rec = _new(Record)
        _set_version(rec, int(version))
        _set_deleted(rec, bool(deleted))
        _set_content_type(rec, str(content_type))
        _set_value(rec, bytes(value))
        return rec


_new = object.__new__
_set_version = Record.version.__set__  # type: ignore[attr-defined]
_set_deleted = Record.deleted.__set__  # type: ignore[attr-defined]
_set_content_type = Record.content_type.__set__  # type: ignore[attr-defined]
_set_value = Record.value.__set__  # type: ignore[attr-defined]


def version_only(version: int, deleted: bool) -> Record:
    """``Record(version, deleted)`` (default content type, empty value) in a third of the
    time, with the slots' own setters as ``from_wire`` uses them."""
    rec = _new(Record)
    _set_version(rec, version)
    _set_deleted(rec, deleted)
    _set_content_type(rec, DEFAULT_CONTENT_TYPE)
    _set_value(rec, b"")
    return rec


def record_wire_bytes(key: bytes, rec: Record) -> int:
    """An upper estimate of one keyed record's share of a peer frame: key, value, content
    type (its UTF-8 bytes: a header's latin-1 text may hold two-byte characters), and the
    msgpack envelope of the item (batches of records are sized with it)."""
    return len(key) + len(rec.value) + len(rec.content_type.encode()) + 64


def newest(records: Iterable[Optional[Record]]) -> Optional[Record]:
    """The record with the largest version, ignoring ``None`` (missing)."""
    best: Optional[Record] = None
    for rec in records:
        if rec is not None and (best is None or rec.version > best.version):
            best = rec
    return best


def is_newer(candidate: Optional[Record], current: Optional[Record]) -> bool:
    """True if ``candidate`` should replace ``current`` on a replica."""
    if candidate is None:
        return False
    return current is None or candidate.version > current.version
