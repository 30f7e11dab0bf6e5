"""Token space and hashing rules shared by every part of the ring.

Rules:
- A key's token is ``mmh3.hash(key_bytes, seed, signed=False)``, an int in
  ``[0, TOKEN_SPACE)``; a ``str`` key is hashed as its UTF-8 bytes.
- With ``Q = 2**k`` partitions, token ``t`` lies in partition ``t >> (32 - k)``
  (equivalently ``t * Q >> 32``) and partition ``p`` covers the tokens
  ``[p << (32 - k), (p + 1) << (32 - k))``. Boundaries are exact ints and no
  partition wraps around the end of the token space.
- Every deterministic choice the ring makes (tie-breaks, orders) comes from
  :func:`rank`, a hash of names and numbers, never from a random generator.
"""

from __future__ import annotations

import mmh3

TOKEN_BITS = 32
TOKEN_SPACE = 1 << TOKEN_BITS
MAX_SEED = (1 << 32) - 1
MAX_PARTITIONS = 1 << 24


def key_bytes(key: str | bytes) -> bytes:
    """The bytes hashed for ``key``: UTF-8 for ``str``; ``bytes``-like as is.

    We encode ``str`` ourselves: mmh3 would crash the interpreter on a
    lone surrogate, whereas ``str.encode`` raises ``UnicodeEncodeError``
    (a ``ValueError``).
    """
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return key
    raise TypeError(f"key must be str or bytes, not {type(key).__name__}")


def key_token(key: str | bytes, seed: int) -> int:
    """The token of ``key`` in ``[0, TOKEN_SPACE)`` under hash ``seed``."""
    return mmh3.hash(key_bytes(key), seed, signed=False)


def rank(seed: int, *parts: object) -> int:
    """A deterministic pseudo-random 32-bit rank of ``parts`` under ``seed``.

    Used for tie-breaks and orders, so the same inputs give the same ring on
    every machine and Python version.
    """
    text = "\x1f".join(str(part) for part in parts)
    return mmh3.hash(text.encode("utf-8"), seed, signed=False)


def partition_shift(partitions: int) -> int:
    """Right shift mapping a token to its partition (``partitions`` = 2**k)."""
    return TOKEN_BITS - (partitions.bit_length() - 1)


def is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def check_token(token: int) -> int:
    """Return ``token`` if it is an int in ``[0, TOKEN_SPACE)``; else raise."""
    if not isinstance(token, int) or isinstance(token, bool):
        raise TypeError(f"token must be an int, not {type(token).__name__}")
    if not 0 <= token < TOKEN_SPACE:
        raise ValueError(f"token {token} is outside the token space [0, 2**32)")
    return token
