"""The encoding of one stored object: a 16-byte header, then the (possibly compressed) payload.

Header layout (all integers little-endian)::

    offset  size  field
    0       4     magic b"VLT1"
    4       1     codec: 0 = raw, 1 = zstd
    5       3     reserved, zero
    8       8     length of the uncompressed content

The object's id is the BLAKE3 hash of the uncompressed content, never of the stored bytes, so the
codec can change without changing ids. See ``docs/format.md``.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

import zstandard

MAGIC = b"VLT1"
HEADER = struct.Struct("<4sB3xQ")
HEADER_SIZE = HEADER.size

CODEC_RAW = 0
CODEC_ZSTD = 1
CODEC_NAMES = {CODEC_RAW: "raw", CODEC_ZSTD: "zstd"}

DEFAULT_LEVEL = 3
MIN_SAVING = 0.02
"""Store raw unless compression saves at least this fraction: decompressing costs time too."""

_local = threading.local()


class DecodeError(ValueError):
    """Stored bytes that are not a well-formed object."""


@dataclass(frozen=True)
class Header:
    """The decoded header of a stored object."""

    codec: int
    size: int


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    comp = cache.get(level)
    if comp is None:
        comp = cache[level] = zstandard.ZstdCompressor(level=level)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = zstandard.ZstdDecompressor()
    return dec


def encode(data: bytes | bytearray | memoryview, *, level: int = DEFAULT_LEVEL) -> bytes:
    """Return the stored form of ``data``: zstd-compressed when that pays, raw otherwise."""
    size = len(data)
    if size >= 64 and level > 0:
        packed = _compressor(level).compress(data)
        if len(packed) <= size * (1 - MIN_SAVING):
            return HEADER.pack(MAGIC, CODEC_ZSTD, size) + packed
    return HEADER.pack(MAGIC, CODEC_RAW, size) + bytes(data)


def read_header(stored: bytes | memoryview) -> Header:
    """Parse the header at the start of ``stored``."""
    if len(stored) < HEADER_SIZE:
        raise DecodeError("truncated header")
    magic, codec, size = HEADER.unpack_from(stored)
    if magic != MAGIC:
        raise DecodeError("bad magic")
    if codec not in CODEC_NAMES:
        raise DecodeError(f"unknown codec {codec}")
    if bytes(stored[5:8]) != b"\0\0\0":
        raise DecodeError("reserved header bytes are not zero")
    return Header(codec, size)


def decode(stored: bytes | memoryview) -> bytes:
    """Return the uncompressed content of a stored object (its hash is checked by the caller)."""
    header = read_header(stored)
    payload = memoryview(stored)[HEADER_SIZE:]
    if header.codec == CODEC_RAW:
        data = bytes(payload)
    else:
        # A damaged length (in the header or the frame) must not become a huge allocation.
        try:
            framed = zstandard.frame_content_size(payload)
        except zstandard.ZstdError as exc:
            raise DecodeError(f"zstd: {exc}") from exc
        if framed != header.size:
            raise DecodeError(f"zstd frame holds {framed} bytes, header says {header.size}")
        try:
            data = _decompressor().decompress(payload, max_output_size=header.size)
        except (zstandard.ZstdError, OverflowError, MemoryError) as exc:
            raise DecodeError(f"zstd: {exc}") from exc
    if len(data) != header.size:
        raise DecodeError(f"length {len(data)} differs from header {header.size}")
    return data
