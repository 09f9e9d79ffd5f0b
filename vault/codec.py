"""The encoding of one stored object: a 16-byte header, then the (possibly compressed) payload.

Header layout (all integers little-endian)::

    offset  size  field
    0       4     magic b"VLT1"
    4       1     codec: 0 = raw, 1 = zstd, 2 = byte planes
    5       3     reserved, zero
    8       8     length of the uncompressed content

Codec 2 (**byte planes**, for tensor chunks) splits elements of ``width`` bytes into ``width``
planes (byte 0 of every element, then byte 1, ...) and stores each plane raw or as its own zstd
frame: the high bytes of floats (sign and exponent) compress well, the low bytes are noise and are
stored as they are. Optionally the elements are first replaced by their zigzagged difference with
the same chunk of an earlier version (a **delta**), whose id the payload names. Payload::

    u8 width (2, 4 or 8)   u8 flags (bit 0: delta)   u8 depth   u8 reserved (0)
    [32 bytes: the base object's id, when delta]
    width x (u8 plane codec: 0 raw / 1 zstd, u64 stored length)
    the planes' stored bytes, plane 0 first
    the last (length mod width) content bytes, raw

``depth`` is 0 without delta, else 1 + the base's depth, bounded by :data:`MAX_DEPTH` so a read
never decodes a long chain.

The object's id is the BLAKE3 hash of the uncompressed content, never of the stored bytes, so the
codec can change without changing ids. See ``docs/format.md``.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zstandard

MAGIC = b"VLT1"
HEADER = struct.Struct("<4sB3xQ")
HEADER_SIZE = HEADER.size

CODEC_RAW = 0
CODEC_ZSTD = 1
CODEC_PLANES = 2
CODEC_NAMES = {CODEC_RAW: "raw", CODEC_ZSTD: "zstd", CODEC_PLANES: "planes"}

PLANES_HEAD = struct.Struct("<BBBx")
PLANE_ENTRY = struct.Struct("<BQ")
FLAG_DELTA = 1
OID_BYTES = 32
PLANE_WIDTHS = (2, 4, 8)
MAX_DEPTH = 4
"""Longest delta chain: reading a chunk decodes at most this many bases first."""

DEFAULT_LEVEL = 3
MIN_SAVING = 0.02
"""Store raw unless compression saves at least this fraction: decompressing costs time too."""

PROBE = 128 << 10
"""A low plane is compressed only if its first bytes compress: most are noise."""

DELTA_MIN_GAIN = 0.95
"""Use a delta only when its sample is at most this fraction of the plain encoding's."""

_local = threading.local()


class DecodeError(ValueError):
    """Stored bytes that are not a well-formed object."""


@dataclass(frozen=True)
class Header:
    """The decoded header of a stored object.

    Attributes:
        codec: codec number.
        size: length of the content.
        base: for a delta-encoded object, the hex id of the object it is a delta of.
        depth: length of the delta chain below this object (0 when not a delta).
    """

    codec: int
    size: int
    base: str | None = None
    depth: int = 0


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    comp = cache.get(level)
    if comp is None:
        comp = cache[level] = zstandard.ZstdCompressor(level=level)
    return comp


def _plane_compressor() -> zstandard.ZstdCompressor:
    """zstd without a useful match finder: in effect Huffman coding in 128 KiB blocks.

    Float planes have almost no repeated strings; on bf16 high bytes this gives 2.94x at ~0.9 GB/s
    against 2.71x at ~0.33 GB/s for level 1 (docs/notes/codec-measurements.md).
    """
    comp = getattr(_local, "plane_compressor", None)
    if comp is None:
        params = zstandard.ZstdCompressionParameters(
            strategy=zstandard.STRATEGY_FAST,
            window_log=17,
            hash_log=6,
            chain_log=6,
            search_log=1,
            min_match=7,
            target_length=0,
        )
        comp = _local.plane_compressor = zstandard.ZstdCompressor(compression_params=params)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = zstandard.ZstdDecompressor()
    return dec


# -- encoding ------------------------------------------------------------------------------------


def encode(
    data: bytes | bytearray | memoryview,
    *,
    level: int = DEFAULT_LEVEL,
    width: int = 0,
    base: bytes | bytearray | None = None,
    base_oid: str | None = None,
    base_depth: int = 0,
) -> bytes:
    """Return the stored form of ``data``.

    Args:
        level: zstd level for plain objects; 0 stores them raw.
        width: element width in bytes when ``data`` holds tensor elements (2 for bf16/fp16, 4 for
            fp32, 8 for fp64): byte planes are used when they pay.
        base: the content of the same chunk in an earlier version (same length), tried as a delta
            base when given with ``base_oid``; ``base_depth`` is that object's own depth.
    """
    size = len(data)
    if width in PLANE_WIDTHS and size >= 4 * width and level > 0:
        use_base = (
            base is not None
            and base_oid is not None
            and len(base) == size
            and base_depth < MAX_DEPTH
        )
        packed = _encode_planes(data, width, base if use_base else None, base_oid, base_depth)
        if packed is not None:
            return packed
    if size >= 64 and level > 0:
        packed = _compressor(level).compress(data)
        if len(packed) <= size * (1 - MIN_SAVING):
            return HEADER.pack(MAGIC, CODEC_ZSTD, size) + packed
    return HEADER.pack(MAGIC, CODEC_RAW, size) + bytes(data)


def _np() -> Any:
    import numpy  # imported on first tensor chunk: keeps CLI start-up light

    return numpy


def _uint(width: int) -> Any:
    return _np().dtype(f"<u{width}")


def _split(elems: Any, width: int) -> list[Any]:
    """Byte planes of an unsigned array, least significant byte first."""
    np = _np()
    if width == 2:
        return [elems.astype(np.uint8), (elems >> 8).astype(np.uint8)]
    return [(elems >> (8 * k)).astype(np.uint8) for k in range(width)]


def _zigzag_delta(elems: Any, base: Any, width: int) -> Any:
    """Zigzagged differences ``elems - base`` (modulo 2**bits): a small change of either sign
    becomes a small unsigned number, so the high planes are mostly zero."""
    np = _np()
    d = np.subtract(elems, base).view(np.dtype(f"<i{width}"))
    sign = d >> (8 * width - 1)  # 0 or -1
    d <<= 1
    d ^= sign
    return d.view(elems.dtype)


def _unzigzag_add(z: Any, base: Any) -> None:
    """Inverse of :func:`_zigzag_delta`, in place on ``z``."""
    np = _np()
    sign = np.bitwise_and(z, 1)
    z >>= 1
    np.negative(sign, out=sign)  # 0 or all ones, modulo 2**bits
    z ^= sign
    z += base


def _compress_plane(plane: memoryview, first: bool) -> tuple[int, bytes | memoryview]:
    """(codec, stored bytes) for one plane: zstd when it saves 2 %, else raw.

    Every plane but the most significant is first tried on a prefix, since most are noise.
    """
    n = len(plane)
    comp = _plane_compressor()
    if not first and n > 2 * PROBE:
        probe = comp.compress(plane[:PROBE])
        if len(probe) > PROBE * (1 - MIN_SAVING):
            return CODEC_RAW, plane
    packed = comp.compress(plane)
    if len(packed) <= n * (1 - MIN_SAVING):
        return CODEC_ZSTD, packed
    return CODEC_RAW, plane


def _sample_cost(planes: list[memoryview]) -> int:
    comp = _plane_compressor()
    return sum(min(len(comp.compress(p[:PROBE])), len(p[:PROBE])) for p in planes)


def _encode_planes(
    data: bytes | bytearray | memoryview,
    width: int,
    base: bytes | bytearray | None,
    base_oid: str | None,
    base_depth: int,
) -> bytes | None:
    np = _np()
    size = len(data)
    count = size // width
    elems = np.frombuffer(data, dtype=_uint(width), count=count)
    planes = [memoryview(p) for p in _split(elems, width)]  # no copies: zstd reads buffers
    delta = False
    if base is not None:
        zz = _zigzag_delta(elems, np.frombuffer(base, dtype=_uint(width), count=count), width)
        dplanes = [memoryview(p) for p in _split(zz, width)]
        if _sample_cost(dplanes) <= _sample_cost(planes) * DELTA_MIN_GAIN:
            planes, delta = dplanes, True
    table = []
    bodies = []
    for k in range(width - 1, -1, -1):
        codec_k, body = _compress_plane(planes[k], first=k == width - 1)
        table.append((k, codec_k, len(body)))
        bodies.append((k, body))
    table.sort()
    bodies.sort(key=lambda kb: kb[0])
    stored = sum(len(b) for _, b in bodies) + (size - count * width)
    if not delta and stored > size * (1 - MIN_SAVING):
        return None  # planes do not pay: let the caller try plain zstd or raw
    parts: list[bytes | memoryview] = [
        HEADER.pack(MAGIC, CODEC_PLANES, size),
        PLANES_HEAD.pack(width, FLAG_DELTA if delta else 0, base_depth + 1 if delta else 0),
    ]
    if delta:
        assert base_oid is not None
        parts.append(bytes.fromhex(base_oid))
    parts.extend(PLANE_ENTRY.pack(codec_k, n) for _, codec_k, n in table)
    parts.extend(b for _, b in bodies)
    parts.append(bytes(data[count * width :]))
    return b"".join(parts)


# -- decoding ------------------------------------------------------------------------------------


def read_header(stored: bytes | memoryview) -> Header:
    """Parse the header at the start of ``stored`` (for codec 2, its delta base and depth too)."""
    if len(stored) < HEADER_SIZE:
        raise DecodeError("truncated header")
    magic, codec, size = HEADER.unpack_from(stored)
    if magic != MAGIC:
        raise DecodeError("bad magic")
    if codec not in CODEC_NAMES:
        raise DecodeError(f"unknown codec {codec}")
    if bytes(stored[5:8]) != b"\0\0\0":
        raise DecodeError("reserved header bytes are not zero")
    if codec != CODEC_PLANES:
        return Header(codec, size)
    if len(stored) < HEADER_SIZE + PLANES_HEAD.size:
        raise DecodeError("truncated plane header")
    width, flags, depth = PLANES_HEAD.unpack_from(stored, HEADER_SIZE)
    if width not in PLANE_WIDTHS:
        raise DecodeError(f"bad plane width {width}")
    if flags & ~FLAG_DELTA or stored[HEADER_SIZE + 3] != 0:
        raise DecodeError("unknown plane flags")
    if not flags & FLAG_DELTA:
        if depth != 0:
            raise DecodeError("depth without delta")
        return Header(codec, size)
    if not 1 <= depth <= MAX_DEPTH:
        raise DecodeError(f"bad delta depth {depth}")
    at = HEADER_SIZE + PLANES_HEAD.size
    if len(stored) < at + OID_BYTES:
        raise DecodeError("truncated delta base")
    return Header(codec, size, bytes(stored[at : at + OID_BYTES]).hex(), depth)


def stored_length(head: bytes | memoryview, header: Header) -> int | None:
    """The length of the whole stored object that its first bytes ``head`` imply: exact for raw
    and byte-plane objects (from the plane table), ``None`` for zstd, whose frame alone knows
    its own length. ``header`` is ``read_header(head)``.

    Raises:
        DecodeError: ``head`` ends inside the plane table.
    """
    if header.codec == CODEC_RAW:
        return HEADER_SIZE + header.size
    if header.codec != CODEC_PLANES:
        return None
    width = head[HEADER_SIZE]
    at = HEADER_SIZE + PLANES_HEAD.size + (OID_BYTES if header.base else 0)
    end = at + width * PLANE_ENTRY.size
    if len(head) < end:
        raise DecodeError("truncated plane table")
    planes = sum(PLANE_ENTRY.unpack_from(head, at + k * PLANE_ENTRY.size)[1] for k in range(width))
    return end + planes + header.size % width


def decode(
    stored: bytes | memoryview,
    get_base: Callable[[str], bytes] | None = None,
    *,
    header: Header | None = None,
) -> bytes | bytearray:
    """Return the uncompressed content of a stored object (its hash is checked by the caller).

    Byte-plane objects decode into a ``bytearray`` (no final copy); treat the result as
    read-only bytes.

    Args:
        get_base: returns the verified content of a delta's base object; required to decode a
            delta-encoded object.
        header: the object's header, when the caller has parsed it already.
    """
    if header is None:
        header = read_header(stored)
    payload = memoryview(stored)[HEADER_SIZE:]
    data: bytes | bytearray
    if header.codec == CODEC_RAW:
        data = bytes(payload)
    elif header.codec == CODEC_ZSTD:
        data = _unzstd(payload, header.size)
    else:
        data = _decode_planes(payload, header, get_base)
    if len(data) != header.size:
        raise DecodeError(f"length {len(data)} differs from header {header.size}")
    return data


def _unzstd(payload: memoryview, size: int) -> bytes:
    # A damaged length (in the header or the frame) must not become a huge allocation.
    try:
        framed = zstandard.frame_content_size(payload)
    except zstandard.ZstdError as exc:
        raise DecodeError(f"zstd: {exc}") from exc
    if framed != size:
        raise DecodeError(f"zstd frame holds {framed} bytes, expected {size}")
    try:
        return _decompressor().decompress(payload, max_output_size=size)  # type: ignore[no-any-return]
    except (zstandard.ZstdError, OverflowError, MemoryError) as exc:
        raise DecodeError(f"zstd: {exc}") from exc


def _decode_planes(
    payload: memoryview, header: Header, get_base: Callable[[str], bytes] | None
) -> bytearray:
    np = _np()
    width = payload[0]
    count, tail = divmod(header.size, width)
    at = PLANES_HEAD.size + (OID_BYTES if header.base else 0)
    table = []
    for _ in range(width):
        if len(payload) < at + PLANE_ENTRY.size:
            raise DecodeError("truncated plane table")
        table.append(PLANE_ENTRY.unpack_from(payload, at))
        at += PLANE_ENTRY.size
    if at + sum(n for _, n in table) + tail != len(payload):
        raise DecodeError("plane lengths do not add up to the object's length")
    planes = []
    for k, (codec_k, n) in enumerate(table):
        body = payload[at : at + n]
        at += n
        if codec_k == CODEC_RAW:
            if n != count:
                raise DecodeError(f"raw plane {k} holds {n} bytes, expected {count}")
            planes.append(np.frombuffer(body, dtype=np.uint8))
        elif codec_k == CODEC_ZSTD:
            planes.append(np.frombuffer(_unzstd(body, count), dtype=np.uint8))
        else:
            raise DecodeError(f"unknown plane codec {codec_k}")
    base = None
    if header.base:
        if get_base is None:
            raise DecodeError("delta object read without access to its base")
        base = get_base(header.base)
        if len(base) != header.size:
            raise DecodeError(f"delta base holds {len(base)} bytes, expected {header.size}")
    # Interleave straight into the result: no temporary arrays of the element type, no copy
    # at the end (about 10x faster than astype/shift/or/tobytes on 4 MiB pieces).
    out = bytearray(header.size)
    utype = _uint(width)
    elems = np.frombuffer(out, dtype=utype, count=count)
    np.left_shift(planes[-1], 8 * (width - 1), out=elems, dtype=utype)
    if width > 2:
        tmp = np.empty(count, dtype=utype)
        for k in range(1, width - 1):
            np.left_shift(planes[k], 8 * k, out=tmp, dtype=utype)
            elems |= tmp
    elems |= planes[0]
    if base is not None:
        _unzigzag_add(elems, np.frombuffer(base, dtype=utype, count=count))
    if tail:
        out[count * width :] = payload[at:]
    return out
