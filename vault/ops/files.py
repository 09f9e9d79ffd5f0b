"""Single files of a version, read straight from the store: ``ls``, ``cat`` and
``show REV:PATH``.

A path names a file of the version, or a folder (a prefix of its paths) for :func:`ls`; it is
written as the version stores it, ``/``-separated, with any ``./`` in front and ``/`` at the end
ignored. ``REV:PATH`` (:func:`split_rev_path`) names a file of a revision, as git's ``HEAD:path``
does: a revision never holds a ``:``, so the first one separates the two.

Reading a file never checks it out: its chunks are fetched one at a time, each verified against
its id (:meth:`~vault.store.ObjectStore.get`), so memory holds one chunk at a time (at most a few
MiB, see :mod:`vault.chunking`) whatever the file's size.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import NotSafetensors, PathNotInVersion
from ..ml.tensors import StoredFile
from ..objects import KIND_FILE, KIND_LINK, Tree, TreeEntry
from ..revisions import resolve
from .history import FileInfo
from .parts import Parts
from .versions import version_tree


def split_rev_path(arg: str) -> tuple[str, str | None]:
    """``REV:PATH`` as ``(REV, PATH)``; an argument without ``:`` as ``(arg, None)``."""
    rev, sep, path = arg.partition(":")
    return (rev, path) if sep else (arg, None)


def clean_path(path: str | None) -> str:
    """``path`` as the version stores paths: no ``./`` in front, no ``/`` at the end; ``""``
    for the whole version (``None``, ``""``, ``.``, ``/``)."""
    p = (path or "").strip()
    while p.startswith("./"):
        p = p[2:]
    p = p.strip("/")
    return "" if p == "." else p


def read_tree(parts: Parts, rev: str) -> Tree:
    """The tree of the version ``rev``.

    Raises:
        UnknownRevision: ``rev`` names no version.
        FilesCollected: gc removed the version's files.
    """
    refs = parts.refs.read()
    return version_tree(parts.store, refs, resolve(rev, refs, parts.store), rev)


def _info(entry: TreeEntry) -> FileInfo:
    mode = entry.mode if entry.kind == KIND_FILE else None
    return FileInfo(entry.path, entry.size, entry.file, entry.kind, mode, entry.target)


def ls(parts: Parts, rev: str, path: str | None = None) -> list[FileInfo]:
    """The files and links of ``rev``, by path: all of them, the one named ``path``, or those
    under the folder ``path``.

    Raises:
        UnknownRevision: ``rev`` names no version.
        PathNotInVersion: ``rev`` has no file, link or folder ``path``.
    """
    tree = read_tree(parts, rev)
    wanted = clean_path(path)
    if not wanted:
        return [_info(e) for e in tree.entries]
    prefix = wanted + "/"
    found = [_info(e) for e in tree.entries if e.path == wanted or e.path.startswith(prefix)]
    if not found:
        raise PathNotInVersion(rev, path or "")
    return found


def file_entry(parts: Parts, rev: str, path: str) -> TreeEntry:
    """The entry of the regular file ``path`` of ``rev``.

    Raises:
        UnknownRevision: ``rev`` names no version.
        PathNotInVersion: ``rev`` has no file ``path`` (nothing, a folder or a link there).
    """
    tree = read_tree(parts, rev)
    wanted = clean_path(path)
    for entry in tree.entries:
        if entry.path == wanted and wanted:
            if entry.kind == KIND_LINK:
                raise PathNotInVersion(rev, path, f"is a symbolic link to {entry.target}")
            return entry
    prefix = wanted + "/"
    if any(e.path.startswith(prefix) for e in tree.entries):
        raise PathNotInVersion(rev, path, f"is a folder, not a file (vault ls {rev} {wanted})")
    raise PathNotInVersion(rev, path)


class VersionFile(io.RawIOBase):
    """A file of a version, opened for reading: a seekable binary stream whose every byte was
    verified against its chunk's id on the way out of the store.

    Iterate :meth:`chunks` to stream the whole file one verified chunk at a time (what
    ``vault cat`` does); ``read`` and ``seek`` work as on any binary file.
    """

    def __init__(self, parts: Parts, entry: TreeEntry) -> None:
        super().__init__()
        assert entry.file is not None
        self.path = entry.path
        self.id = entry.file
        self._file = StoredFile.open(parts.store, entry.file, entry.path)
        self.size = self._file.size
        self._pos = 0

    def readable(self) -> bool:
        """Always: it is opened for reading."""
        return True

    def seekable(self) -> bool:
        """Always: any chunk can be fetched."""
        return True

    def tell(self) -> int:
        """The current offset."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` from the start, the current offset or the end (``whence``)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        """Read up to ``len(buffer)`` verified bytes into ``buffer``; 0 at the end."""
        view = memoryview(buffer).cast("B")
        end = min(self.size, self._pos + len(view))
        if end <= self._pos:
            return 0
        data = self._file.read(self._pos, end)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def chunks(self) -> Iterator[bytes | bytearray]:
        """Every chunk of the file from the start, in order, each verified; memory holds one
        at a time."""
        for c in self._file.chunks:
            yield self._file.store.get(c.oid, size=c.size)


def open_file(parts: Parts, rev: str, path: str) -> VersionFile:
    """The file ``path`` of ``rev``, opened for reading (:class:`VersionFile`).

    Raises:
        UnknownRevision: ``rev`` names no version.
        PathNotInVersion: ``rev`` has no file ``path``.
        CorruptObject, ObjectMissing: its manifest is damaged or gone (a chunk's damage is
            raised when that chunk is read).
    """
    return VersionFile(parts, file_entry(parts, rev, path))


@dataclass
class TensorSummary:
    """One tensor of a safetensors file, as ``show REV:PATH`` lists it."""

    name: str
    dtype: str
    shape: list[int]


@dataclass
class FileDetail:
    """One file of a version, as ``show REV:PATH --json`` prints it.

    Attributes:
        tensors: for a safetensors file, its tensors in file order (read from the header
            alone); ``None`` for any other file, or one whose header does not parse.
    """

    rev: str
    path: str
    size: int
    id: str
    mode: int
    tensors: list[TensorSummary] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``--json`` prints."""
        return asdict(self)


def file_detail(parts: Parts, rev: str, path: str) -> FileDetail:
    """The file ``path`` of ``rev``: size, id, mode and, for safetensors, its tensors.

    Raises:
        UnknownRevision: ``rev`` names no version.
        PathNotInVersion: ``rev`` has no file ``path``.
    """
    entry = file_entry(parts, rev, path)
    assert entry.file is not None
    detail = FileDetail(rev, entry.path, entry.size, entry.file, entry.mode)
    if entry.path.endswith(".safetensors"):
        try:
            header = StoredFile.open(parts.store, entry.file, entry.path).header()
        except NotSafetensors:
            return detail
        detail.tensors = [
            TensorSummary(t.name, t.dtype, list(t.shape)) for t in header.tensors.values()
        ]
    return detail
