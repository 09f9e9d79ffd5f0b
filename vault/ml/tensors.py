"""Safetensors files read from the store: the header from the first chunk(s), each tensor from
the chunks covering its byte range.

A stored file is a list of chunks (:class:`~vault.objects.ChunkRef`); vault cuts safetensors files
along their layout, but nothing here relies on that: byte ranges are mapped onto whatever chunks
the manifest lists, and every chunk is read through :meth:`ObjectStore.get`, which verifies it.

Decoding (:func:`decode_numpy`, :func:`decode_torch`):

* ``numpy`` has no bfloat16 nor float8 types: ``BF16``, ``F8_E4M3`` and ``F8_E5M2`` tensors are
  returned as ``float32`` (exact: every value of those formats is a float32 value).
* ``torch`` returns every type as itself (``torch.bfloat16``, ``torch.float8_e4m3fn``, ...).
"""

from __future__ import annotations

import bisect
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtra, NotSafetensors
from ..ids import Oid
from ..objects import FileManifest, Tree
from ..safetensors_format import Header, header_length, parse_header

if TYPE_CHECKING:
    from ..store import ObjectStore

BLOCK = 4 << 20
"""Bytes of one tensor decoded at a time when a tensor is streamed (``diff``)."""

_NUMPY = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}  # fmt: skip

_TORCH = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16",
    "U8": "uint8", "BOOL": "bool",
}  # fmt: skip

FRAMEWORKS = ("pt", "numpy")


class StoredFile:
    """Random access to the bytes of a stored file, chunk by verified chunk.

    Args:
        store: the object store.
        manifest: the file's manifest.
        where: how to name the file in errors.
    """

    def __init__(self, store: ObjectStore, manifest: FileManifest, where: str) -> None:
        self.store = store
        self.chunks = manifest.chunks
        self.where = where
        self.size = manifest.size
        self._starts: list[int] = []
        pos = 0
        for c in self.chunks:
            self._starts.append(pos)
            pos += c.size
        self._cached: tuple[int, bytes | bytearray] | None = None

    @classmethod
    def open(cls, store: ObjectStore, file_oid: Oid, where: str) -> StoredFile:
        """The stored file whose manifest is ``file_oid``."""
        return cls(store, store.get_file(file_oid), where)

    def _chunk(self, i: int) -> bytes | bytearray:
        if self._cached is not None and self._cached[0] == i:
            return self._cached[1]
        data = self.store.get(self.chunks[i].oid, size=self.chunks[i].size)
        self._cached = (i, data)
        return data

    def _first(self, lo: int) -> int:
        return bisect.bisect_right(self._starts, lo) - 1

    def read(self, lo: int, hi: int) -> bytes:
        """Bytes ``[lo, hi)`` of the file."""
        if not 0 <= lo <= hi <= self.size:
            raise NotSafetensors(self.where, f"range {lo}..{hi} is outside the file")
        out = bytearray()
        i = self._first(lo) if lo < self.size else len(self.chunks)
        while lo < hi:
            start = self._starts[i]
            data = self._chunk(i)
            piece = data[lo - start : min(hi, start + len(data)) - start]
            out += piece
            lo += len(piece)
            i += 1
        return bytes(out)

    def span_key(self, lo: int, hi: int) -> tuple[int, int, tuple[Oid, ...]]:
        """What identifies bytes ``[lo, hi)`` without reading them: the ids of the chunks that
        cover the range and the range's place in them. Equal keys mean equal bytes."""
        if lo >= hi:
            return (0, 0, ())
        first, last = self._first(lo), self._first(hi - 1)
        oids = tuple(self.chunks[i].oid for i in range(first, last + 1))
        return (lo - self._starts[first], hi - lo, oids)

    def header(self) -> Header:
        """The file's safetensors header, read from its first chunk(s)."""
        n = header_length(self.read(0, min(8, self.size)), self.size, self.where)
        return parse_header(self.read(8, 8 + n), self.size, self.where)


def read_header_path(path: Path) -> Header:
    """The safetensors header of a file on disk."""
    where = str(path)
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        n = header_length(f.read(8), size, where)
        return parse_header(f.read(n), size, where)


# -- decoding --------------------------------------------------------------------------------


def numpy() -> Any:
    """The numpy module; a clear error when it is not installed (it is not a core dependency)."""
    try:
        import numpy as np
    except ImportError:
        raise MissingExtra("reading tensors as numpy arrays", "numpy") from None
    return np


@functools.lru_cache(maxsize=1)
def _f8_e4m3_table() -> Any:
    np = numpy()

    table = np.empty(256, dtype=np.float32)
    for b in range(256):
        sign = -1.0 if b & 0x80 else 1.0
        exp, man = (b >> 3) & 0xF, b & 7
        if exp == 0xF and man == 7:
            table[b] = np.nan  # E4M3FN: no infinities, one NaN pattern per sign
        elif exp == 0:
            table[b] = sign * (man / 8) * 2.0**-6
        else:
            table[b] = sign * (1 + man / 8) * 2.0 ** (exp - 7)
    return table


def decode_numpy(raw: bytes, dtype: str, shape: tuple[int, ...] | None = None) -> Any:
    """Decode little-endian tensor bytes to a numpy array (BF16 and F8 become float32).

    Args:
        shape: the array's shape; ``None`` gives a flat array.
    """
    np = numpy()

    if dtype == "BF16":
        arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    elif dtype == "F8_E5M2":  # the top byte of an IEEE half
        arr = (np.frombuffer(raw, dtype="u1").astype("<u2") << 8).view("<f2").astype(np.float32)
    elif dtype == "F8_E4M3":
        arr = _f8_e4m3_table()[np.frombuffer(raw, dtype="u1")]
    else:
        arr = np.frombuffer(raw, dtype=_NUMPY[dtype]).copy()  # writable, owns its memory
    return arr if shape is None else arr.reshape(shape)


def decode_torch(raw: bytes, dtype: str, shape: tuple[int, ...]) -> Any:
    """Decode little-endian tensor bytes to a torch tensor of the same dtype."""
    try:
        import torch
    except ImportError:
        raise MissingExtra("loading tensors for torch", "torch") from None

    tdtype = getattr(torch, _TORCH[dtype])
    if not raw:
        return torch.empty(shape, dtype=tdtype)
    return torch.frombuffer(bytearray(raw), dtype=tdtype).reshape(shape)


def load_tensors(reader: StoredFile, framework: str = "pt") -> dict[str, Any]:
    """Every tensor of a stored safetensors file, verified, in file order.

    Args:
        framework: ``"pt"`` for torch tensors, ``"numpy"`` for numpy arrays.
    """
    header = reader.header()
    out: dict[str, Any] = {}
    for name, info in header.tensors.items():
        raw = reader.read(info.start, info.end)
        if framework == "pt":
            out[name] = decode_torch(raw, info.dtype, info.shape)
        else:
            out[name] = decode_numpy(raw, info.dtype, info.shape)
    return out


def load_state_dict(
    store: ObjectStore, tree: Tree, rev: str, path: str, framework: str = "pt"
) -> dict[str, Any]:
    """The tensors of the file ``path`` of ``tree``, a version's (named ``rev`` in errors)."""
    from ..errors import BadValue, FileNotInVersion
    from ..objects import KIND_FILE

    if framework not in FRAMEWORKS:
        raise BadValue("framework", framework, "expected 'pt' or 'numpy'")
    wanted = path.strip()
    while wanted.startswith("./"):
        wanted = wanted[2:]
    for entry in tree.entries:
        if entry.path == wanted:
            if entry.kind != KIND_FILE or entry.file is None:
                raise FileNotInVersion(rev, path, "it is a symbolic link")
            return load_tensors(StoredFile.open(store, entry.file, path), framework)
    raise FileNotInVersion(rev, path)
