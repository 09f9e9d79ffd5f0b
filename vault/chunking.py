"""Cutting file contents into chunks.

Two chunkers:

* **safetensors layout**: the 8-byte length and JSON header form one chunk; each tensor's bytes
  form their own chunks (a tensor larger than :data:`PIECE_SIZE` in fixed pieces). A tensor that
  did not change therefore dedups exactly, whatever moved around it in the file.
* **content-defined** (FastCDC) for every other file, so an insertion shifts only nearby cuts.

A chunker yields ``(offset, length)`` spans that tile the file exactly; reading is left to the
caller, which streams the spans without holding the file in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import NotSafetensors
from .safetensors_format import PREFIX, Header, header_length, parse_header, plane_width

PIECE_SIZE = 4 << 20
"""Largest chunk cut from a single tensor."""

CDC_MIN = 256 << 10
CDC_AVG = 768 << 10  # FastCDC's effective average is avg + min, about 1 MiB
CDC_MAX = 4 << 20
CDC_READ = 16 << 20

Span = tuple[int, int]


@dataclass(frozen=True)
class PieceInfo:
    """What a chunk of a safetensors file holds, for the codec and for delta encoding.

    Attributes:
        tensor: the tensor's name.
        index: which piece of the tensor (0 for the first :data:`PIECE_SIZE` bytes).
        width: element width in bytes (0 when byte planes do not apply).
    """

    tensor: str
    index: int
    width: int


def safetensors_layout(header: Header) -> list[tuple[Span, PieceInfo | None]]:
    """Spans that tile the file ``header`` describes, each with the tensor piece it holds
    (``None`` for the header itself and for bytes no tensor covers)."""
    out: list[tuple[Span, PieceInfo | None]] = [((0, header.data_start), None)]
    pos = header.data_start
    for t in header.tensors.values():  # in file order, not overlapping (checked by the parser)
        if t.start > pos:
            out.append(((pos, t.start - pos), None))  # padding or unlisted bytes
        width = plane_width(t.dtype)
        for i, span in enumerate(_fixed(t.start, t.end)):
            out.append((span, PieceInfo(t.name, i, width)))
        pos = max(pos, t.end)
    if pos < header.file_size:
        out.extend((span, None) for span in _fixed(pos, header.file_size))
    return out


def safetensors_spans(header: Header) -> list[Span]:
    """The spans of :func:`safetensors_layout` alone."""
    return [span for span, _ in safetensors_layout(header)]


def _fixed(lo: int, hi: int) -> Iterator[Span]:
    while lo < hi:
        n = min(PIECE_SIZE, hi - lo)
        yield lo, n
        lo += n


def read_safetensors_header(f: BinaryIO, file_size: int, where: str = "") -> Header | None:
    """Read the header of an open safetensors file; ``None`` when it does not describe the file
    exactly (the file is then cut by content)."""
    try:
        f.seek(0)
        n = header_length(f.read(PREFIX), file_size, where)
        return parse_header(f.read(n), file_size, where)
    except NotSafetensors:
        return None


def is_safetensors_name(path: str | Path) -> bool:
    """Whether a path names a safetensors file."""
    return str(path).endswith(".safetensors")


class Chunker:
    """Cuts files into chunks and reads them.

    One instance per thread: the FastCDC state is not shareable.
    """

    def __init__(self) -> None:
        from pyfastcdc import FastCDC  # imported on first use: keeps CLI start-up light

        self._cdc = FastCDC(CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX)

    def pieces(self, path: Path, size: int) -> Iterator[bytes]:
        """Yield the file's chunks as bytes, in order, reading it once.

        Raises:
            OSError: when the file cannot be read.
        """
        for data, _ in self.described_pieces(path, size):
            yield data

    @staticmethod
    def layout(path: Path, size: int) -> list[tuple[Span, PieceInfo | None]] | None:
        """The spans of a safetensors file with what each holds; ``None`` for any other file
        (or one whose header does not describe it exactly), which is cut by content instead.

        Raises:
            OSError: when the file cannot be read.
        """
        if size == 0 or not is_safetensors_name(path):
            return None
        with open(path, "rb", buffering=0) as f:
            header = read_safetensors_header(f, size, str(path))  # type: ignore[arg-type]
        return None if header is None else safetensors_layout(header)

    def described_pieces(self, path: Path, size: int) -> Iterator[tuple[bytes, PieceInfo | None]]:
        """Like :meth:`pieces`, with what each chunk of a safetensors file holds."""
        with open(path, "rb", buffering=0) as f:
            if size == 0:
                return
            layout = None
            if is_safetensors_name(path):
                header = read_safetensors_header(f, size, str(path))  # type: ignore[arg-type]
                if header is not None:
                    layout = safetensors_layout(header)
            if layout is not None:
                infos = [info for _, info in layout]
                spans = [span for span, _ in layout]
                yield from zip(_read_spans(f, spans), infos, strict=True)  # type: ignore[arg-type]
                return
            f.seek(0)
            if size <= CDC_MIN:
                yield _read_exact(f, size), None  # type: ignore[arg-type]
                return
            for data in self._cdc_pieces(f):  # type: ignore[arg-type]
                yield data, None

    def _cdc_pieces(self, f: BinaryIO) -> Iterator[bytes]:
        buf = b""
        while True:
            data = f.read(CDC_READ)
            eof = not data
            buf = buf + data if buf else data
            if not buf:
                return
            cuts = list(self._cdc.cut_buf(buf))
            # The last cut of a window may end only because the window ended: carry it over.
            keep = cuts if eof else cuts[:-1]
            for c in keep:
                yield bytes(c.data)
            if eof:
                return
            consumed = keep[-1].offset + keep[-1].length if keep else 0
            buf = buf[consumed:]


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise OSError(f"file shrank while reading ({len(data)} of {n} bytes)")
    return data


def _read_spans(f: BinaryIO, spans: list[Span]) -> Iterator[bytes]:
    fd = f.fileno()
    for offset, length in spans:
        data = os.pread(fd, length, offset)
        if len(data) != length:
            raise OSError(f"file shrank while reading ({offset}+{len(data)} of {length} bytes)")
        yield data
