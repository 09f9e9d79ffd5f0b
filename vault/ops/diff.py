"""``diff``: what changed between two versions, file by file and, for safetensors, tensor by tensor.

Everything is computed from the stored manifests and chunks, without a checkout. A tensor whose
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
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import NotSafetensors
from ..ids import Oid
from ..ml.tensors import BLOCK, StoredFile, decode_numpy, numpy
from ..objects import KIND_FILE, Tree, TreeEntry
from ..revisions import resolve
from ..safetensors_format import ITEMSIZE, Header, TensorInfo
from ..store import ObjectStore
from .parts import Parts
from .versions import version_tree

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


def _open(store: ObjectStore, e: TreeEntry | None) -> tuple[StoredFile, Header] | None:
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
    a: tuple[StoredFile, Header] | None,
    b: tuple[StoredFile, Header] | None,
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
    ra: StoredFile, ia: TensorInfo, rb: StoredFile, ib: TensorInfo
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


def _elements(reader: StoredFile, info: TensorInfo, first: int, count: int) -> bytes:
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
