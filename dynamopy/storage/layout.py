"""The store's key layout, record and hint encodings, and input checks (no I/O).

Key layout (one LevelDB keyspace, separated by a one-byte prefix; ``Store`` documents what
each holds)::

    b"d" + token.to_bytes(4, "big") + key              data records
    b"h" + target.encode() + b"\\x00" + seq.to_bytes(8, "big")   hints
    b"i" + target.encode() + b"\\x00" + token.to_bytes(4, "big") + key   hint index
    b"m" + name.encode()                               metadata
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional

import msgpack

from dynamopy.core.records import Record

TOKEN_LIMIT = 2**32

DATA_PREFIX = b"d"
HINT_PREFIX = b"h"
HINT_INDEX_PREFIX = b"i"
META_PREFIX = b"m"
# The byte after b"d": stop key of a scan that runs to the end of the ring (end == 2**32).
DATA_END = b"e"

_SEQ_BYTES = 8

Write = tuple[int, bytes, Record]
HintAdd = tuple[str, int, bytes, Record]
# (token, key, old record or None, new record or None): one change to the data records.
Change = tuple[int, bytes, Optional[Record], Optional[Record]]
Watcher = Callable[[list[Change]], None]


# ---------------------------------------------------------------- encoding and validation


def data_key(token: int, key: bytes) -> bytes:
    return DATA_PREFIX + token.to_bytes(4, "big") + key


def token_bound(token: int) -> bytes:
    """Start/stop key of the data range at ``token`` (``2**32`` means past the last token)."""
    if token >= TOKEN_LIMIT:
        return DATA_END
    return DATA_PREFIX + token.to_bytes(4, "big")


def hint_index_key(target: str, token: int, key: bytes) -> bytes:
    """``i`` + target + NUL + token (4 bytes) + key -> the key of the newest hint for it."""
    return HINT_INDEX_PREFIX + target.encode() + b"\x00" + token.to_bytes(4, "big") + key


def hint_prefix(target: str) -> bytes:
    return HINT_PREFIX + target.encode() + b"\x00"


def hint_key(target: str, seq: int) -> bytes:
    return hint_prefix(target) + seq.to_bytes(_SEQ_BYTES, "big")


def hint_target(hkey: bytes) -> str:
    # b"h" + target + b"\x00" + 8-byte seq
    return hkey[1 : -(_SEQ_BYTES + 1)].decode()


def hint_seq(hkey: bytes) -> int:
    return int.from_bytes(hkey[-_SEQ_BYTES:], "big")


def pack_record(record: Record) -> bytes:
    return msgpack.packb(record.to_wire(), use_bin_type=True)


def unpack_record(raw: bytes) -> Record:
    return Record.from_wire(msgpack.unpackb(raw, raw=False))


def pack_hint(token: int, key: bytes, record: Record) -> bytes:
    return msgpack.packb([token, key, record.to_wire()], use_bin_type=True)


def unpack_hint(raw: bytes) -> tuple[int, bytes, Record]:
    token, key, wire = msgpack.unpackb(raw, raw=False)
    return int(token), bytes(key), Record.from_wire(wire)


def validate_write(token: int, key: bytes, record: Record) -> None:
    """Raise ``ValueError``/``TypeError`` for a data write this store cannot hold."""
    if not isinstance(token, int) or not 0 <= token < TOKEN_LIMIT:
        raise ValueError(f"token must be an int in [0, 2**32), got {token!r}")
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"key must be bytes, got {type(key).__name__}")
    if not isinstance(record, Record):
        raise TypeError(f"record must be a Record, got {type(record).__name__}")


def validate_target(target: str) -> None:
    if not isinstance(target, str) or not target or "\x00" in target:
        raise ValueError(f"hint target must be a non-empty str without NUL, got {target!r}")


def validate_ops(writes: Iterable, hints_add: Iterable, meta_put: Mapping[str, bytes],
                 meta_delete: Iterable[str]) -> None:
    """Raise (ValueError/TypeError) on any malformed operation, before anything is written."""
    for token, key, record in writes:
        validate_write(token, key, record)
    for target, token, key, record in hints_add:
        validate_target(target)
        validate_write(token, key, record)
    for name, value in meta_put.items():
        validate_meta_name(name)
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"metadata value must be bytes, got {type(value).__name__}")
    for name in meta_delete:
        validate_meta_name(name)


def validate_meta_name(name: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"metadata name must be str, got {type(name).__name__}")


def check_range(start_token: int, end_token: int) -> None:
    if not 0 <= start_token <= TOKEN_LIMIT or not 0 <= end_token <= TOKEN_LIMIT:
        raise ValueError(f"token range [{start_token}, {end_token}) outside [0, 2**32]")
