"""Value types of the object model: file manifests, trees and versions.

Each serialises to canonical JSON (sorted keys, no insignificant white space, UTF-8), so the same
content always has the same bytes and therefore the same id. Chunks are plain bytes and have no
type here. See ``docs/format.md`` for the field-by-field description.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import BadValue
from .ids import Oid, check_oid

KIND_FILE = "file"
KIND_LINK = "link"


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` the one way vault hashes it.

    Raises:
        BadValue: ``value`` holds NaN or an infinity, which JSON cannot express (Python's
            ``json`` would write the non-standard ``NaN``, which other readers refuse).
    """
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError:
        raise BadValue(
            "value", "NaN or Infinity", "JSON has no such number (store it as a string)"
        ) from None
    return text.encode()


class ManifestError(ValueError):
    """Bytes that do not decode to the expected manifest type."""


def _null_constant(name: str) -> None:
    """``NaN`` and the infinities, which releases before format 3 could write into metadata
    (Python's ``json`` does), read as ``null``: JSON has no such numbers."""
    return None


def _load(data: bytes | bytearray, expected_type: str) -> dict[str, Any]:
    try:
        doc = json.loads(data, parse_constant=_null_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ManifestError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("type") != expected_type:
        raise ManifestError(f"not a {expected_type} manifest")
    return doc


@dataclass(frozen=True)
class ChunkRef:
    """One chunk of a file: its id and its uncompressed length."""

    oid: Oid
    size: int


@dataclass(frozen=True)
class FileManifest:
    """A file's content as the ordered list of its chunks."""

    chunks: tuple[ChunkRef, ...]

    @property
    def size(self) -> int:
        """Length of the file in bytes."""
        return sum(c.size for c in self.chunks)

    def to_bytes(self) -> bytes:
        """Canonical serialisation."""
        return canonical_json(
            {
                "type": "file",
                "size": self.size,
                "chunks": [[c.oid, c.size] for c in self.chunks],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> FileManifest:
        """Parse a serialised file manifest."""
        doc = _load(data, "file")
        try:
            chunks = tuple(ChunkRef(check_oid(o), int(s)) for o, s in doc["chunks"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"bad file manifest: {exc}") from exc
        return cls(chunks)


@dataclass(frozen=True)
class TreeEntry:
    """One path of a version: a regular file (with mode and file object) or a symbolic link."""

    path: str
    kind: str
    size: int = 0
    mode: int = 0o644
    file: Oid | None = None
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object."""
        if self.kind == KIND_LINK:
            return {"path": self.path, "kind": KIND_LINK, "target": self.target}
        return {
            "path": self.path,
            "kind": KIND_FILE,
            "size": self.size,
            "mode": self.mode,
            "file": self.file,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TreeEntry:
        """Parse one entry."""
        kind = doc["kind"]
        path = doc["path"]
        if not isinstance(path, str):
            raise ManifestError("path is not a string")
        if kind == KIND_LINK:
            target = doc["target"]
            if not isinstance(target, str):
                raise ManifestError("link target is not a string")
            return cls(path, KIND_LINK, size=len(target.encode()), target=target)
        if kind == KIND_FILE:
            return cls(
                path,
                KIND_FILE,
                size=int(doc["size"]),
                mode=int(doc["mode"]) & 0o777,
                file=check_oid(doc["file"]),
            )
        raise ManifestError(f"unknown entry kind {kind!r}")


@dataclass(frozen=True)
class Tree:
    """The flat list of paths in a version, sorted by path."""

    entries: tuple[TreeEntry, ...]

    def to_bytes(self) -> bytes:
        """Canonical serialisation."""
        ordered = sorted(self.entries, key=lambda e: e.path)
        return canonical_json({"type": "tree", "entries": [e.to_json() for e in ordered]})

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> Tree:
        """Parse a serialised tree."""
        doc = _load(data, "tree")
        try:
            entries = tuple(TreeEntry.from_json(e) for e in doc["entries"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"bad tree: {exc}") from exc
        return cls(entries)

    @property
    def size(self) -> int:
        """Logical bytes: the sum of the regular files' sizes."""
        return sum(e.size for e in self.entries if e.kind == KIND_FILE)

    @property
    def file_count(self) -> int:
        """Number of entries (files and links)."""
        return len(self.entries)


@dataclass(frozen=True)
class Version:
    """An immutable version: a tree plus where it came from and what it is.

    Attributes:
        tree: id of the :class:`Tree`.
        parents: ids of parent versions, first parent first.
        message: the description given at commit.
        created: creation time, ISO 8601 with time zone.
        name: the sequential name given at commit (``v001``), or ``None``.
        meta: free-form string-keyed metadata (JSON values).
        size: logical size of the tree, ``bytes`` in JSON (copied so ``log`` need not read trees).
        files: number of entries in the tree.
        training: training metadata (steps, loss, base model, data files, ...); see
            ``docs/format.md``, "Version metadata". Omitted from the JSON when empty.
        attachments: trees stored with the version besides its files, by role (``data``,
            ``snapshots``). Omitted from the JSON when empty, so older version ids are unchanged.
        excluded: the paths the commit left out by rule (``.vaultignore``, ``--exclude``): see
            ``docs/format.md``, "Excluded paths". Omitted from the JSON when empty.
    """

    tree: Oid
    parents: tuple[Oid, ...]
    message: str
    created: str
    name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    size: int = 0
    files: int = 0
    training: dict[str, Any] = field(default_factory=dict)
    attachments: dict[str, Oid] = field(default_factory=dict)
    excluded: list[dict[str, Any]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        """Canonical serialisation."""
        doc: dict[str, Any] = {
            "type": "version",
            "tree": self.tree,
            "parents": list(self.parents),
            "message": self.message,
            "created": self.created,
            "name": self.name,
            "meta": self.meta,
            "bytes": self.size,
            "files": self.files,
        }
        if self.training:
            doc["training"] = self.training
        if self.attachments:
            doc["attachments"] = dict(self.attachments)
        if self.excluded:
            doc["excluded"] = list(self.excluded)
        return canonical_json(doc)

    def trees(self) -> tuple[Oid, ...]:
        """Every tree the version reaches: its files' tree, then its attachments by role."""
        return (self.tree, *(self.attachments[k] for k in sorted(self.attachments)))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> Version:
        """Parse a serialised version."""
        doc = _load(data, "version")
        try:
            return cls(
                tree=check_oid(doc["tree"]),
                parents=tuple(check_oid(p) for p in doc["parents"]),
                message=str(doc["message"]),
                created=str(doc["created"]),
                name=doc.get("name"),
                meta=dict(doc.get("meta") or {}),
                size=int(doc.get("bytes", 0)),
                files=int(doc.get("files", 0)),
                training=dict(doc.get("training") or {}),
                attachments={
                    str(k): check_oid(v) for k, v in (doc.get("attachments") or {}).items()
                },
                excluded=_excluded(doc.get("excluded")),
            )
        except (AttributeError, KeyError, OverflowError, TypeError, ValueError) as exc:
            raise ManifestError(f"bad version: {exc}") from exc


def _excluded(found: Any) -> list[dict[str, Any]]:
    """A version's ``excluded`` records as a reader keeps them: objects only; anything else
    (a field this release does not know how to read) is ignored, never an error."""
    if not isinstance(found, list):
        return []
    return [dict(e) for e in found if isinstance(e, dict)]
