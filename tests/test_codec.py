"""codec: 16-byte header + zstd or raw payload; ids hash the uncompressed bytes."""

from __future__ import annotations

import os
import struct

import pytest

from vault import codec
from vault.codec import (
    CODEC_RAW,
    CODEC_ZSTD,
    HEADER_SIZE,
    MAGIC,
    DecodeError,
    decode,
    encode,
    read_header,
)
from vault.ids import check_oid, hash_bytes, is_oid, is_oid_prefix


def test_header_is_16_bytes_with_magic() -> None:
    assert HEADER_SIZE == 16
    stored = encode(b"x" * 1000)
    assert stored[:4] == MAGIC == b"VLT1"
    assert stored[5:8] == b"\0\0\0"
    assert struct.unpack_from("<Q", stored, 8)[0] == 1000


def test_compressible_data_is_zstd_and_smaller() -> None:
    data = b"\0" * 100_000
    stored = encode(data)
    assert read_header(stored).codec == CODEC_ZSTD
    assert len(stored) < len(data) // 10
    assert decode(stored) == data


def test_incompressible_data_is_stored_raw() -> None:
    data = os.urandom(100_000)
    stored = encode(data)
    header = read_header(stored)
    assert header.codec == CODEC_RAW
    assert header.size == len(data)
    assert stored[HEADER_SIZE:] == data
    assert decode(stored) == data


def test_barely_compressible_data_is_stored_raw() -> None:
    # ~1% of zeros in random bytes: zstd saves less than MIN_SAVING, so it does not pay.
    data = os.urandom(99_000) + b"\0" * 1000
    assert read_header(encode(data)).codec == CODEC_RAW


def test_tiny_data_is_raw() -> None:
    stored = encode(b"a" * 63)
    assert read_header(stored).codec == CODEC_RAW
    assert decode(stored) == b"a" * 63


def test_level_zero_disables_compression() -> None:
    data = b"\0" * 10_000
    assert read_header(encode(data, level=0)).codec == CODEC_RAW
    assert decode(encode(data, level=0)) == data


@pytest.mark.parametrize("data", [b"", b"a", bytes(range(256)) * 40, b"ab" * 50_000])
def test_round_trip(data: bytes) -> None:
    assert decode(encode(data)) == data
    assert decode(memoryview(encode(data))) == data


def test_encode_accepts_memoryview_and_bytearray() -> None:
    data = b"hello " * 100
    assert decode(encode(memoryview(data))) == data
    assert decode(encode(bytearray(data))) == data


def test_id_is_hash_of_uncompressed_bytes_regardless_of_codec() -> None:
    data = b"\0" * 5000
    raw, packed = encode(data, level=0), encode(data)
    assert raw != packed
    assert hash_bytes(decode(raw)) == hash_bytes(decode(packed)) == hash_bytes(data)


def test_truncated_header() -> None:
    with pytest.raises(DecodeError, match="truncated"):
        decode(b"VLT1\x00")


def test_bad_magic() -> None:
    stored = bytearray(encode(b"payload"))
    stored[:4] = b"NOPE"
    with pytest.raises(DecodeError, match="magic"):
        decode(bytes(stored))


def test_unknown_codec() -> None:
    stored = bytearray(encode(b"payload"))
    stored[4] = 9
    with pytest.raises(DecodeError, match="codec"):
        decode(bytes(stored))


def test_raw_length_mismatch() -> None:
    stored = encode(b"payload")
    with pytest.raises(DecodeError, match="length"):
        decode(stored[:-1])
    with pytest.raises(DecodeError, match="length"):
        decode(stored + b"extra")


def test_damaged_zstd_payload() -> None:
    stored = bytearray(encode(b"\0" * 100_000))
    assert stored[4] == CODEC_ZSTD
    for i in range(HEADER_SIZE, len(stored)):
        stored[i] ^= 0xFF
    with pytest.raises(DecodeError):
        decode(bytes(stored))


def test_zstd_size_lie_is_caught() -> None:
    data = b"\0" * 100_000
    stored = bytearray(encode(data))
    struct.pack_into("<Q", stored, 8, len(data) - 1)  # header claims one byte less
    with pytest.raises(DecodeError):
        decode(bytes(stored))


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(codec.DecodeError, ValueError)


# -- ids -------------------------------------------------------------------------------------


def test_hash_bytes_is_blake3_hex() -> None:
    import blake3

    for data in (b"", b"abc", os.urandom(2 << 20)):
        oid = hash_bytes(data)
        assert oid == blake3.blake3(data).hexdigest()
        assert is_oid(oid)


def test_oid_predicates() -> None:
    oid = hash_bytes(b"x")
    assert is_oid(oid) and not is_oid(oid.upper()) and not is_oid(oid[:-1])
    assert is_oid_prefix("abcd") and is_oid_prefix(oid)
    assert not is_oid_prefix("abc") and not is_oid_prefix("abcg") and not is_oid_prefix(oid + "a")
    assert check_oid(oid) == oid
    with pytest.raises(ValueError):
        check_oid("xyz")
