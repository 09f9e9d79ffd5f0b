"""The object store: content-addressed objects on a backend, hashed inside, verified on read.

The caller hands over bytes and gets back their id; it never names an id for new content. Every
read re-hashes the decoded content and raises :class:`~vault.errors.CorruptObject` on mismatch, so
damaged bytes never leave the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from . import codec
from .backend import Backend, FileStat
from .errors import CorruptObject, ObjectMissing
from .ids import Oid, hash_bytes, is_oid
from .objects import FileManifest, ManifestError, Tree, Version

OBJECTS = "objects"


def object_key(oid: Oid) -> str:
    """The backend key of an object: ``objects/<2 hex>/<62 hex>``."""
    return f"{OBJECTS}/{oid[:2]}/{oid[2:]}"


@dataclass(frozen=True)
class PutResult:
    """What a :meth:`ObjectStore.put` did.

    Attributes:
        oid: the id of the content.
        size: uncompressed length.
        stored: bytes written to the backend (0 when the object already existed).
    """

    oid: Oid
    size: int
    stored: int

    @property
    def new(self) -> bool:
        """Whether the object was written by this call."""
        return self.stored > 0


class ObjectStore:
    """Objects by id on a :class:`~vault.backend.Backend`.

    Args:
        backend: where the encoded objects live.
        level: zstd level for new objects.
    """

    def __init__(self, backend: Backend, *, level: int = codec.DEFAULT_LEVEL) -> None:
        self.backend = backend
        self.level = level

    # -- writing -----------------------------------------------------------------------------

    def put(self, data: bytes | bytearray | memoryview, *, compress: bool = True) -> PutResult:
        """Store ``data`` unless an object with its id exists; return its id.

        An existing object is freshened (its mtime bumped) rather than rewritten: a concurrent
        garbage collection then sees it as young and keeps it.
        """
        oid = hash_bytes(data)
        return self.put_hashed(oid, data, compress=compress)

    def put_hashed(
        self, oid: Oid, data: bytes | bytearray | memoryview, *, compress: bool = True
    ) -> PutResult:
        """Store ``data`` whose id this module's :func:`hash_bytes` has just computed."""
        key = object_key(oid)
        if self.backend.freshen(key):
            return PutResult(oid, len(data), 0)
        encoded = codec.encode(data, level=self.level if compress else 0)
        self.backend.put(key, encoded)
        return PutResult(oid, len(data), len(encoded))

    def sync(self) -> None:
        """Make every object put so far durable."""
        self.backend.sync()

    # -- reading -----------------------------------------------------------------------------

    def get(self, oid: Oid) -> bytes:
        """Return the content of ``oid``, verified against its id."""
        try:
            stored = self.backend.get(object_key(oid))
        except FileNotFoundError:
            raise ObjectMissing(oid) from None
        try:
            data = codec.decode(stored)
        except codec.DecodeError as exc:
            raise CorruptObject(oid, why=str(exc)) from None
        actual = hash_bytes(data)
        if actual != oid:
            raise CorruptObject(oid, actual)
        return data

    def has(self, oid: Oid) -> bool:
        """Whether an object with this id is stored (its content is not checked)."""
        return self.backend.stat(object_key(oid)) is not None

    def stat(self, oid: Oid) -> FileStat | None:
        """Stored size and mtime of an object."""
        return self.backend.stat(object_key(oid))

    def list(self) -> Iterator[tuple[Oid, FileStat]]:
        """Yield every stored object id with its stat; stray files are skipped."""
        for key, st in self.backend.list(OBJECTS):
            parts = key.split("/")
            if len(parts) == 3:
                oid = parts[1] + parts[2]
                if is_oid(oid) and parts[1] == oid[:2]:
                    yield Oid(oid), st

    def delete(self, oid: Oid) -> None:
        """Remove an object (garbage collection only)."""
        self.backend.delete(object_key(oid))

    # -- typed manifests ---------------------------------------------------------------------

    def _manifest(self, oid: Oid, parse):  # type: ignore[no-untyped-def]
        data = self.get(oid)
        try:
            return parse(data)
        except ManifestError as exc:
            raise CorruptObject(oid, why=str(exc)) from None

    def get_file(self, oid: Oid) -> FileManifest:
        """Load and parse a file manifest."""
        return self._manifest(oid, FileManifest.from_bytes)  # type: ignore[no-any-return]

    def get_tree(self, oid: Oid) -> Tree:
        """Load and parse a tree."""
        return self._manifest(oid, Tree.from_bytes)  # type: ignore[no-any-return]

    def get_version(self, oid: Oid) -> Version:
        """Load and parse a version."""
        return self._manifest(oid, Version.from_bytes)  # type: ignore[no-any-return]
