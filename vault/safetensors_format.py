"""The safetensors file format: the one place vault parses a header and applies its limits.

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes of a JSON object
(tensor name to ``{"dtype", "shape", "data_offsets"}``, plus an optional ``__metadata__`` map of
strings), then the data section. vault trusts a header only when it describes the file exactly:
every tensor has a known dtype, a shape whose element count times the dtype's width is its byte
range, and lies inside the data section without overlapping another tensor. Chunking cuts along
such a layout, deltas find a tensor's earlier pieces by it, and ``vault.ml`` reads tensors with
it; anything else is opaque bytes to chunking and an error (:class:`NotSafetensors`) to readers.

This module knows nothing of the store: it parses bytes handed to it.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

from .errors import NotSafetensors

MAX_HEADER = 100 << 20
"""Largest JSON header accepted (the limit the safetensors library itself applies)."""

PREFIX = 8
"""Bytes of the header-length prefix."""

ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip
"""Bytes per element of every safetensors dtype vault knows."""

PLANE_WIDTHS = (2, 4, 8)


def plane_width(dtype: str) -> int:
    """Element width for byte planes (2, 4 or 8), or 0 when planes do not apply to ``dtype``."""
    width = ITEMSIZE.get(dtype, 0)
    return width if width in PLANE_WIDTHS else 0


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors file.

    Attributes:
        name: its key.
        dtype: the safetensors dtype (``F32``, ``BF16``, ...).
        shape: its dimensions.
        start: absolute byte offset of its data in the file.
        end: absolute offset one past its data.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        """Length of its data."""
        return self.end - self.start

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class Header:
    """A parsed safetensors header.

    Attributes:
        tensors: by name, in the order of their data in the file.
        metadata: the ``__metadata__`` mapping (empty when absent).
        data_start: offset of the data section (8 + header length).
        file_size: the length of the file it describes.
    """

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int
    file_size: int


def header_length(prefix: bytes | bytearray, file_size: int, where: str) -> int:
    """The JSON header's length from a file's first 8 bytes, checked against the file size.

    Raises:
        NotSafetensors: the file is too short, or the length is over :data:`MAX_HEADER` or past
            the end of the file.
    """
    if file_size < PREFIX or len(prefix) < PREFIX:
        raise NotSafetensors(where, "shorter than 8 bytes")
    (n,) = struct.unpack_from("<Q", prefix)
    if n > MAX_HEADER or PREFIX + n > file_size:
        raise NotSafetensors(where, f"header length {n} does not fit a {file_size}-byte file")
    return int(n)


def parse_header(raw: bytes | bytearray, file_size: int, where: str) -> Header:
    """Parse and check the JSON header ``raw`` of a ``file_size``-byte safetensors file.

    Raises:
        NotSafetensors: anything that does not describe the file exactly (see the module).
    """
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NotSafetensors(where, f"header is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise NotSafetensors(where, "header is not a JSON object")
    data_start = PREFIX + len(raw)
    metadata = doc.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise NotSafetensors(where, "__metadata__ is not an object")
    tensors = []
    for name, info in doc.items():
        try:
            dtype = info["dtype"]
            shape = tuple(_count(d) for d in info["shape"])
            lo, hi = (_count(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise NotSafetensors(where, f"bad entry for tensor {name!r}") from None
        if dtype not in ITEMSIZE:
            raise NotSafetensors(where, f"tensor {name!r} has unsupported dtype {dtype!r}")
        if not lo <= hi:
            raise NotSafetensors(where, f"tensor {name!r} has a bad byte range")
        if math.prod(shape) * ITEMSIZE[dtype] != hi - lo:
            raise NotSafetensors(where, f"tensor {name!r}: shape {list(shape)} != its byte range")
        tensors.append(TensorInfo(name, dtype, shape, data_start + lo, data_start + hi))
    tensors.sort(key=lambda t: (t.start, t.end))
    pos = data_start
    for t in tensors:
        if t.start < pos or t.end > file_size:
            raise NotSafetensors(where, f"tensor {t.name!r} overlaps another or the file's end")
        pos = t.end
    return Header(
        {t.name: t for t in tensors},
        {str(k): v for k, v in metadata.items()},
        data_start,
        file_size,
    )


def parse(head: bytes | bytearray, file_size: int, where: str) -> Header:
    """Parse the header from ``head``, the file's first bytes (at least the prefix and header).

    Raises:
        NotSafetensors: as :func:`parse_header`, or ``head`` stops before the header ends.
    """
    n = header_length(head, file_size, where)
    if len(head) < PREFIX + n:
        raise NotSafetensors(where, "the header is cut short")
    return parse_header(head[PREFIX : PREFIX + n], file_size, where)


def _count(value: object) -> int:
    """A JSON non-negative integer (``True`` and ``2.0`` are not counts)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a non-negative integer: {value!r}")
    return value
