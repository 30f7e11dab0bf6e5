"""framing: pure frame encoder/decoder."""

import struct

import msgpack
import pytest

from dynamopy.peer.framing import (
    MAX_FRAME_BYTES,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    encode_frame,
)

MESSAGES = [  # a request, an ok and an error response, a request keyed by an int, a bare list
    [0, 1, "put", {"k": b"key", "r": [5, False, "text/plain", b"\x00\xff"]}],
    [1, 1, True, None],
    [1, 2, False, {"code": "internal", "detail": "boom"}],
    [0, 3, "get", {1: b"int keys allowed", "s": "ünïcode"}],
    [],
]


def test_round_trip_byte_by_byte():
    stream = b"".join(encode_frame(m) for m in MESSAGES)
    dec = FrameDecoder()
    out = []
    for i in range(len(stream)):
        out.extend(dec.feed(stream[i : i + 1]))
    assert out == MESSAGES
    assert dec.pending_frame_bytes == 0


def test_many_frames_in_one_chunk_and_split_across_chunks():
    stream = b"".join(encode_frame(m) for m in MESSAGES * 50)
    dec = FrameDecoder()
    assert dec.feed(stream) == MESSAGES * 50
    # Uneven chunk boundaries that cut headers and bodies.
    dec = FrameDecoder()
    out = []
    for i in range(0, len(stream), 7):
        out.extend(dec.feed(stream[i : i + 7]))
    assert out == MESSAGES * 50


def test_str_and_bytes_keep_their_types():
    (msg,) = FrameDecoder().feed(encode_frame(["s", b"b"]))
    assert msg == ["s", b"b"] and type(msg[0]) is str and type(msg[1]) is bytes


def test_oversized_header_raises_before_body_arrives():
    dec = FrameDecoder(max_frame_bytes=1024)
    # Only the 4-byte header of a 1 MiB frame: no body sent at all.
    with pytest.raises(FrameTooLarge):
        dec.feed(struct.pack(">I", 1024 * 1024))
    # The decoder is dead afterwards: the connection must be closed.
    with pytest.raises(FrameError):
        dec.feed(encode_frame(1))


def test_oversized_frame_after_valid_frames_raises():
    dec = FrameDecoder(max_frame_bytes=100)
    assert dec.feed(encode_frame("ok")) == ["ok"]
    with pytest.raises(FrameTooLarge):
        dec.feed(struct.pack(">I", 101) + b"x" * 10)


def test_frame_at_limit_is_accepted():
    body = msgpack.packb(b"x" * 95, use_bin_type=True)
    dec = FrameDecoder(max_frame_bytes=len(body))
    assert dec.feed(struct.pack(">I", len(body)) + body) == [b"x" * 95]


def test_malformed_msgpack_raises_frame_error():
    dec = FrameDecoder()
    with pytest.raises(FrameError):
        dec.feed(struct.pack(">I", 1) + b"\xc1")  # 0xc1 is never valid msgpack
    # Trailing bytes inside a frame body are malformed too.
    body = msgpack.packb(1) + msgpack.packb(2)
    with pytest.raises(FrameError):
        FrameDecoder().feed(struct.pack(">I", len(body)) + body)
    # Truncated body (declared length covers an incomplete object).
    with pytest.raises(FrameError):
        FrameDecoder().feed(struct.pack(">I", 2) + b"\x92\x01")
    with pytest.raises(FrameError):
        FrameDecoder().feed(struct.pack(">I", 0))  # empty body


def test_encode_limits():
    with pytest.raises(FrameTooLarge):
        encode_frame(b"x" * 200, max_frame_bytes=100)
    with pytest.raises(TypeError):
        encode_frame(object())
    assert MAX_FRAME_BYTES == 32 * 1024 * 1024
