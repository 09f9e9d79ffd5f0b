"""``diff``: what changed between two versions, or between a version and a folder, file by file
and, for safetensors, tensor by tensor.

Between versions, everything is computed from the stored manifests and chunks, without a
checkout. A folder's files are compared with the version's as ``status`` compares them
(:mod:`vault.ops.status`), and a folder's safetensors file is read from disk. A tensor whose
byte range is covered by the same chunks in both versions is unchanged and is never read. A tensor
that is read is streamed in blocks of :data:`~vault.ml.tensors.BLOCK` bytes, so no more than a
few blocks of either model are in memory at once.

``rel_l2`` is ``||b - a|| / ||a||`` accumulated in float64. It is ``None`` (``null`` in JSON) for an
added or removed tensor, for a tensor whose shape changed, when ``||a|| = 0`` while ``b`` is not
zero, and when either side holds a NaN or an infinity. A tensor whose dtype changed and whose shape
did not is compared by value.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import BadValue, NotSafetensors, VaultError
from ..ids import Oid
from ..ml.tensors import BLOCK, StoredFile, decode_numpy, numpy, read_header_path
from ..objects import KIND_FILE, Tree, TreeEntry
from ..revisions import resolve
from ..safetensors_format import ITEMSIZE, Header, TensorInfo
from ..store import ObjectStore
from .parts import Parts
from .versions import version_tree

if TYPE_CHECKING:
    from .commit import SourceEntry

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"


class _Mapping:
    """Lets a result be read as the JSON it prints, too: ``result.files["added"]``."""

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:  # type: ignore[attr-defined]
            raise KeyError(key)
        return getattr(self, key)


@dataclass
class FileChanges(_Mapping):
    """Paths added, removed and changed (content, kind, mode or link target), each sorted."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


@dataclass
class TensorChange(_Mapping):
    """One tensor that differs between the versions.

    Attributes:
        file: the safetensors file's path.
        name: the tensor's key.
        status: ``added``, ``removed`` or ``changed``.
        shape: its shape (the new one; the old one for a removed tensor).
        dtype: its safetensors dtype (the new one; the old one for a removed tensor).
        rel_l2: ``||b - a|| / ||a||``, or ``None`` where undefined (see the module docstring).
    """

    file: str
    name: str
    status: str
    shape: list[int]
    dtype: str
    rel_l2: float | None


@dataclass
class DiffResult(_Mapping):
    """What ``vault diff --json`` prints."""

    files: FileChanges
    tensors: list[TensorChange]

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``--json`` prints."""
        return asdict(self)


def _entry_key(e: TreeEntry) -> tuple[object, ...]:
    return (e.kind, e.file, e.mode, e.target) if e.kind == KIND_FILE else (e.kind, e.target)


def _is_safetensors(e: TreeEntry | None) -> bool:
    return e is not None and e.kind == KIND_FILE and e.path.endswith(".safetensors")


class TensorBytes(Protocol):
    """What a tensor is compared from: a stored file (:class:`StoredFile`) or a file on disk
    (:class:`LocalFile`)."""

    def read(self, lo: int, hi: int) -> bytes:
        """Bytes ``[lo, hi)`` of the file."""
        ...

    def span_key(self, lo: int, hi: int) -> tuple[int, int, tuple[Oid, ...]]:
        """What identifies bytes ``[lo, hi)`` without reading them: equal keys, equal bytes."""
        ...


Opened = tuple[TensorBytes, Header]


class LocalFile:
    """A safetensors file of a folder, read as :class:`StoredFile` is read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, lo: int, hi: int) -> bytes:
        """Bytes ``[lo, hi)`` of the file.

        Raises:
            NotSafetensors: the file is shorter now than its header said.
        """
        with open(self.path, "rb") as f:
            f.seek(lo)
            data = f.read(hi - lo)
        if len(data) != hi - lo:
            raise NotSafetensors(str(self.path), "it changed while it was being read")
        return data

    def span_key(self, lo: int, hi: int) -> tuple[int, int, tuple[Oid, ...]]:
        """A key no stored range has (its offset is negative), unless the range is empty: a
        file on disk has no chunk ids, so its tensors are compared by value."""
        return (0, 0, ()) if lo >= hi else (-1, hi - lo, ())


def diff(parts: Parts, rev_a: str, rev_b: str) -> DiffResult:
    """What changed from the version ``rev_a`` to ``rev_b``; see the module docstring.

    Raises:
        UnknownRevision: either names no version.
        FilesCollected: gc has removed the files of either.
    """
    refs = parts.refs.read()
    a, b = (
        version_tree(parts.store, refs, resolve(r, refs, parts.store), r) for r in (rev_a, rev_b)
    )
    return diff_trees(parts.store, a, b)


def diff_trees(store: ObjectStore, a: Tree, b: Tree) -> DiffResult:
    """Compare two trees: files by entry, safetensors files tensor by tensor."""
    old = {e.path: e for e in a.entries}
    new = {e.path: e for e in b.entries}
    files = FileChanges(
        added=sorted(set(new) - set(old)),
        removed=sorted(set(old) - set(new)),
        changed=sorted(p for p in set(old) & set(new) if _entry_key(old[p]) != _entry_key(new[p])),
    )
    tensors: list[TensorChange] = []
    for path in sorted({*files.added, *files.removed, *files.changed}):
        ea, eb = old.get(path), new.get(path)
        if _is_safetensors(ea) or _is_safetensors(eb):
            tensors.extend(diff_safetensors(store, path, _open(store, ea), _open(store, eb)))
    return DiffResult(files, tensors)


def diff_folder(
    parts: Parts, rev: str, folder: str | os.PathLike[str], *, folder_first: bool = False
) -> DiffResult:
    """What changed from the version ``rev`` to the folder ``folder`` (from the folder to the
    version with ``folder_first``), in the shape of :func:`diff`.

    Raises:
        UnknownRevision: ``rev`` names no version.
        PathNotFound: ``folder`` does not exist.
    """
    from .status import compare_folder

    refs = parts.refs.read()
    tree = version_tree(parts.store, refs, resolve(rev, refs, parts.store), rev)
    files, entries = compare_folder(parts, tree, folder)
    stored = {e.path: e for e in tree.entries}
    local = {e.path: e for e in entries}
    tensors: list[TensorChange] = []
    for path in sorted({*files.added, *files.removed, *files.changed}):
        a, b = _open(parts.store, stored.get(path)), _open_local(local.get(path))
        if a is None and b is None:
            continue
        tensors.extend(diff_safetensors(parts.store, path, *((b, a) if folder_first else (a, b))))
    if folder_first:
        files = FileChanges(files.removed, files.added, files.changed)
    return DiffResult(files, tensors)


def folder_or_revision(parts: Parts, arg: str) -> bool:
    """Whether the argument ``arg`` of ``diff`` names a folder (``True``) or a revision.

    It names a folder when it is an existing directory and either does not resolve as a
    revision or is written as a path (holds a ``/``, or is ``.`` or ``..``), as git tells a
    path from a revision.

    Raises:
        BadValue: ``arg`` is both a directory and a revision (write ``./NAME`` for the folder).
    """
    if not os.path.isdir(arg):
        return False
    if "/" in arg or os.sep in arg or arg in (".", ".."):
        return True
    try:
        parts.resolve(arg)
    except VaultError:
        return True
    raise BadValue("argument", arg, f"is a revision and a folder: write ./{arg} for the folder")


def _open_local(e: SourceEntry | None) -> Opened | None:
    """A folder's safetensors file opened with its header; ``None`` for anything else."""
    if e is None or e.kind != KIND_FILE or not e.path.endswith(".safetensors"):
        return None
    try:
        return LocalFile(e.abspath), read_header_path(e.abspath)
    except (NotSafetensors, OSError):
        return None


def _open(store: ObjectStore, e: TreeEntry | None) -> Opened | None:
    """A safetensors entry opened with its header; ``None`` for anything that is not one."""
    if not _is_safetensors(e):
        return None
    assert e is not None and e.file is not None
    reader = StoredFile.open(store, Oid(e.file), e.path)
    try:
        return reader, reader.header()
    except NotSafetensors:
        return None  # a file named .safetensors that is not one: compared as a file only


def diff_safetensors(
    store: ObjectStore,
    path: str,
    a: Opened | None,
    b: Opened | None,
) -> list[TensorChange]:
    """The tensors that differ between two versions of one safetensors file (either may be
    ``None``: the file is added or removed, or is not a readable safetensors file)."""
    ta = a[1].tensors if a else {}
    tb = b[1].tensors if b else {}
    out = []
    for name in sorted(set(ta) | set(tb)):
        ia, ib = ta.get(name), tb.get(name)
        if ib is None:
            assert ia is not None
            out.append(TensorChange(path, name, REMOVED, list(ia.shape), ia.dtype, None))
        elif ia is None:
            out.append(TensorChange(path, name, ADDED, list(ib.shape), ib.dtype, None))
        else:
            assert a is not None and b is not None
            changed, rel = compare_tensor(a[0], ia, b[0], ib)
            if changed:
                out.append(TensorChange(path, name, CHANGED, list(ib.shape), ib.dtype, rel))
    return out


def compare_tensor(
    ra: TensorBytes, ia: TensorInfo, rb: TensorBytes, ib: TensorInfo
) -> tuple[bool, float | None]:
    """Whether a tensor changed, and its ``rel_l2``; reads nothing when the chunks are shared."""
    same_layout = ia.dtype == ib.dtype and ia.shape == ib.shape
    if same_layout and ra.span_key(ia.start, ia.end) == rb.span_key(ib.start, ib.end):
        return False, 0.0
    if ia.shape != ib.shape:
        return True, None
    np = numpy()
    elements = BLOCK // max(ITEMSIZE[ia.dtype], ITEMSIZE[ib.dtype])
    identical = same_layout
    diff_sq = base_sq = 0.0
    for k in range(0, ia.numel, elements):
        raw_a = _elements(ra, ia, k, elements)
        raw_b = _elements(rb, ib, k, elements)
        identical = identical and raw_a == raw_b
        va = decode_numpy(raw_a, ia.dtype).astype(np.float64)
        d = decode_numpy(raw_b, ib.dtype).astype(np.float64) - va
        diff_sq += float(np.dot(d, d))
        base_sq += float(np.dot(va, va))
    if identical:  # same bytes under different chunks (a file cut another way)
        return False, 0.0
    return True, _ratio(diff_sq, base_sq)


def _elements(reader: TensorBytes, info: TensorInfo, first: int, count: int) -> bytes:
    """The bytes of elements ``[first, first + count)`` of a tensor (clipped to its end)."""
    size = ITEMSIZE[info.dtype]
    lo = info.start + first * size
    return reader.read(lo, min(info.end, lo + count * size))


def _ratio(diff_sq: float, base_sq: float) -> float | None:
    if not (math.isfinite(diff_sq) and math.isfinite(base_sq)):
        return None
    if base_sq == 0.0:
        return 0.0 if diff_sq == 0.0 else None
    return math.sqrt(diff_sq) / math.sqrt(base_sq)
