"""The object store: content-addressed objects on a backend, hashed inside, verified on read.

The caller hands over bytes and gets back their id; it never names an id for new content. Every
read re-hashes the decoded content and raises :class:`~vault.errors.CorruptObject` on mismatch, so
damaged bytes never leave the store. Every read also bounds the content length the object's
header declares before anything is decoded, so a damaged or hostile header cannot make a read
allocate more than the caller expects. A write reuses an existing object only once a full read
has found it intact, and replaces a damaged one.

An object is stored loose (its own key, ``objects/<2 hex>/<62 hex>``) or in a pack (see
:mod:`vault.packs`), or both; reads find it either way, and verify it the same way. Commits write
loose objects; :meth:`ObjectStore.pack_writer` writes packs (a push to a remote repository).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from . import codec
from .backend import Backend, FileStat
from .errors import CorruptObject, ObjectMissing
from .ids import Oid, hash_bytes, is_oid
from .objects import FileManifest, ManifestError, Tree, Version
from .packs import PACK_TARGET, Location, Packs, PackWriter, Written, pack_key

T = TypeVar("T")

OBJECTS = "objects"


MAX_MANIFEST_SIZE = 256 << 20
"""Longest content a read without an expected length accepts (file manifests, trees, versions):
a file manifest of a 1 TB file cut into 1 MiB chunks is about 75 MB."""

HEAD_SIZE = (
    codec.HEADER_SIZE + codec.PLANES_HEAD.size + codec.OID_BYTES + 8 * codec.PLANE_ENTRY.size
)
"""Bytes of an object that hold its header, delta base and plane table."""


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
        # Ids read and verified, or written, through this store: a commit that meets one again
        # reuses it without a second read. Set operations are atomic, so the commit's threads
        # share it without a lock.
        self._verified: set[Oid] = set()
        self.packs = Packs(backend)
        """The packs of this repository and what they hold."""
        self._writers: weakref.WeakSet[PackWriter] = weakref.WeakSet()

    # -- writing -----------------------------------------------------------------------------

    def put(
        self,
        data: bytes | bytearray | memoryview,
        *,
        compress: bool = True,
        width: int = 0,
        base: Oid | None = None,
        defer: bool = False,
    ) -> PutResult:
        """Store ``data`` unless an intact object with its id exists; return its id, which the
        store computes itself: no caller names the id of new content.

        An existing object is first read in full and verified (a delta with its whole chain),
        unless this store has already verified or written it. An intact one is not written
        again, only made sure of (its directory entry synced with this writer's objects; no gc
        can remove it before the writer's refs name it, since writers hold a shared lock that
        excludes gc). A damaged one is replaced by ``data``, published over it atomically.

        Args:
            width: element width when ``data`` is a piece of a tensor (byte planes apply).
            base: an object to try as a delta base (which one is the caller's choice, see
                :mod:`vault.ops.deltas`); one that cannot be read is ignored, and the object is
                stored on its own.
            defer: publish at the next :meth:`sync` (see :meth:`LocalBackend.put`).
        """
        oid = hash_bytes(data)
        key = object_key(oid)
        if self._intact(oid, len(data)) and self._durable(oid):
            return PutResult(oid, len(data), 0)
        base_data = None
        depth = 0
        if base is not None and width and compress and base != oid:
            try:
                base_data, depth = self._get_with_depth(base, len(data))
            except (ObjectMissing, CorruptObject):
                base_data = None
        encoded = codec.encode(
            data,
            level=self.level if compress else 0,
            width=width,
            base=base_data,
            base_oid=base if base_data is not None else None,
            base_depth=depth,
        )
        self.backend.put(key, encoded, defer=defer)
        self._verified.add(oid)
        return PutResult(oid, len(data), len(encoded))

    def _intact(self, oid: Oid, size: int | None) -> bool:
        """Whether ``oid`` is stored and reads back (as ``size`` bytes) hashing to its id."""
        if oid in self._verified:
            return True
        try:
            # No fresh look at the packs for an object not found: that is every new object.
            self._get_with_depth(oid, size, refresh=False)
        except (ObjectMissing, CorruptObject):
            return False
        return True

    def _durable(self, oid: Oid) -> bool:
        """Whether ``oid`` is still stored, and durable once :meth:`sync` returns: loose, or in
        a pack (a pack is durable before its index names it)."""
        if self.backend.ensure_durable(object_key(oid)):
            return True
        return any(
            self.backend.ensure_durable(pack_key(loc.pack)) for loc in self.packs.locate(oid)
        )

    def put_raw(
        self, oid: Oid, stored: bytes, *, size: int | None = None, defer: bool = False
    ) -> PutResult:
        """Store an object received in its stored encoding (from another repository), once it
        decodes to content that hashes to ``oid``; an intact object already here is kept.

        A delta's base must be readable from this store first (copy bases before deltas).

        Args:
            size: the content length the caller expects (as :meth:`get`).

        Raises:
            CorruptObject: ``stored`` is damaged, or is not the object ``oid``.
        """
        if self._intact(oid, size) and self._durable(oid):
            return PutResult(oid, size or 0, 0)
        data, _ = self._decode(oid, stored, size, codec.MAX_DEPTH)
        self.backend.put(object_key(oid), stored, defer=defer)
        self._verified.add(oid)
        return PutResult(oid, len(data), len(stored))

    def verify_stored(self, oid: Oid, stored: bytes, size: int | None = None) -> None:
        """Check that ``stored``, read from this store, is the intact object ``oid`` (a delta
        through its bases here), before it is handed to :meth:`put_stored` of another store.

        Raises:
            CorruptObject: it is not.
        """
        self._decode(oid, stored, size, codec.MAX_DEPTH)

    def put_stored(self, oid: Oid, stored: bytes, *, defer: bool = True) -> int:
        """Store ``stored`` as the object ``oid`` as it is, the one place an id is taken from
        the caller: the bytes must have passed :meth:`verify_stored` of the store they come
        from (a push, where decoding here would read delta bases back over the network).
        With ``defer``, published at the next :meth:`sync`; return the stored length."""
        self.backend.put(object_key(oid), stored, defer=defer)
        return len(stored)

    def pack_writer(self, *, target: int = PACK_TARGET, verified: bool = False) -> PackWriter:
        """A :class:`~vault.packs.PackWriter` into this repository's packs.

        It verifies each object it is given (decoded and re-hashed as by :meth:`put_raw`; a
        delta's base must be readable here or already given to the writer), and this store
        reads the writer's objects at once, and knows its packs once they are published.

        Args:
            verified: the objects have passed :meth:`verify_stored` of the store they come
                from (a push, as for :meth:`put_stored`): they are not decoded again here.
        """
        writer = PackWriter(
            self.backend,
            target=target,
            check=None if verified else self._check_stored,
            published=self._published,
        )
        self._writers.add(writer)
        return writer

    def _check_stored(self, oid: Oid, stored: bytes, size: int | None) -> None:
        self._decode(oid, stored, size, codec.MAX_DEPTH)

    def _published(self, written: Written) -> None:
        self.packs.published(written, self.backend.now())
        self._verified.update(oid for oid, _, _ in written.objects)

    def sync(self) -> None:
        """Make every object put so far durable."""
        self.backend.sync()

    def discard(self) -> None:
        """Drop deferred puts not yet synced (a failed commit cleans up after itself)."""
        discard = getattr(self.backend, "discard", None)
        if discard is not None:
            discard()
        self._verified.clear()  # some of them were those puts

    # -- reading -----------------------------------------------------------------------------

    def get(self, oid: Oid, *, size: int | None = None) -> bytes | bytearray:
        """Return the content of ``oid``, verified against its id (a ``bytearray`` for tensor
        chunks, which decode in place; treat it as read-only).

        A delta-encoded object's base is read (and verified) first; a damaged or missing base
        makes this object unreadable too, reported as this object's damage.

        Args:
            size: the content length the caller knows (a chunk's length in its file manifest).
                The object's header must declare exactly this, checked before anything is
                decoded; without it, the header may declare at most :data:`MAX_MANIFEST_SIZE`.
        """
        return self._get_with_depth(oid, size)[0]

    def _get_with_depth(
        self,
        oid: Oid,
        size: int | None = None,
        budget: int = codec.MAX_DEPTH,
        *,
        refresh: bool = True,
    ) -> tuple[bytes | bytearray, int]:
        """Content and delta depth of ``oid``; ``budget`` bounds the bases read on the way, so a
        damaged header naming a base in a loop is an error, not an endless recursion."""
        return self._first(oid, lambda stored: self._decode(oid, stored, size, budget), refresh)

    def _copies(self, oid: Oid) -> list[Callable[[], bytes]]:
        """Readers of each stored copy of ``oid``: waiting in a pack writer, in packs, loose."""
        out: list[Callable[[], bytes]] = []
        for writer in list(self._writers):
            pending = writer.pending(oid)
            if pending is not None:
                out.append(partial(bytes, pending))
        for loc in self.packs.locate(oid):
            out.append(partial(self._read_packed, oid, loc))
        out.append(partial(self.backend.get, object_key(oid)))
        return out

    def _read_packed(self, oid: Oid, loc: Location) -> bytes:
        data = self.packs.read(loc)
        if len(data) != loc.length:
            raise CorruptObject(
                oid,
                why=f"its pack {loc.pack[:12]} holds {len(data)} of its {loc.length} bytes"
                f" at offset {loc.offset}",
            )
        return data

    def _first(self, oid: Oid, use: Callable[[bytes], T], refresh: bool = True) -> T:
        """``use`` applied to the first stored copy of ``oid`` it accepts: a copy it (or its
        read) finds damaged gives way to the next. When no copy is found, the packs are listed
        again once (another writer may have packed it since they were loaded, or gc repacked
        it) unless ``refresh`` is false.

        Raises:
            CorruptObject: every copy is damaged (the first one's damage).
            ObjectMissing: no copy is stored.
        """
        damage: CorruptObject | None = None
        generation = self.packs.generation
        for attempt in range(2):
            for read in self._copies(oid):
                try:
                    return use(read())
                except FileNotFoundError:
                    continue
                except CorruptObject as exc:
                    damage = damage or exc
            if damage is not None:
                raise damage
            if attempt or not refresh or self.packs.generation != generation:
                break  # just loaded: listing again would tell nothing new
            self.packs.refresh()
        raise ObjectMissing(oid)

    def _decode(
        self, oid: Oid, stored: bytes, size: int | None, budget: int
    ) -> tuple[bytes | bytearray, int]:
        """Decode the stored encoding of ``oid`` (bounded as :meth:`get` says) and verify it."""
        try:
            header = codec.read_header(stored)
            if size is not None and header.size != size:
                raise codec.DecodeError(f"its header declares {header.size} bytes, expected {size}")
            if size is None and header.size > MAX_MANIFEST_SIZE:
                raise codec.DecodeError(
                    f"its header declares {header.size} bytes, more than the"
                    f" {MAX_MANIFEST_SIZE} a manifest may hold"
                )
            if header.base is not None and budget <= 0:
                raise codec.DecodeError("its delta chain is longer than the format allows")
            data = codec.decode(stored, self._base_reader(header.size, budget - 1), header=header)
        except codec.DecodeError as exc:
            raise CorruptObject(oid, why=str(exc)) from None
        actual = hash_bytes(data)
        if actual != oid:
            raise CorruptObject(oid, actual)
        self._verified.add(oid)
        return data, header.depth

    def raw(self, oid: Oid) -> bytes:
        """The stored encoding of ``oid`` as it lies on the backend, *not verified*: for copying
        to another repository, whose :meth:`put_raw` verifies it.

        Raises:
            ObjectMissing: no object ``oid`` is stored.
            CorruptObject: it lies in a pack shorter than its index says.
        """
        return self._first(oid, lambda stored: stored)

    def _base_reader(self, size: int, budget: int):  # type: ignore[no-untyped-def]
        """Reads a delta's base, which must hold ``size`` bytes like the delta itself."""

        def read(base: str) -> bytes | bytearray:
            try:
                return self._get_with_depth(Oid(base), size, budget)[0]
            except (ObjectMissing, CorruptObject) as exc:
                raise codec.DecodeError(
                    f"its delta base {base[:12]} is unreadable ({exc})"
                ) from None

        return read

    def head(self, oid: Oid) -> codec.Header | None:
        """The header of ``oid`` (codec, content length, delta base), read without the payload;
        ``None`` when it is missing or its header is damaged (verify reports those)."""
        found = self._peek(oid, codec.HEADER_SIZE + 4 + codec.OID_BYTES)
        if found is None:
            return None
        try:
            return codec.read_header(found[0])
        except codec.DecodeError:
            return None

    def _peek(self, oid: Oid, n: int) -> tuple[bytes, int | None] | None:
        """The first ``n`` stored bytes of ``oid`` and, when known without another request,
        its stored length (``-1`` for a packed object its pack is too short to hold); ``None``
        when it is not stored."""
        for writer in list(self._writers):
            pending = writer.pending(oid)
            if pending is not None:
                return pending[:n], len(pending)
        for loc in self.packs.locate(oid):
            try:
                return self.packs.read(loc, n), loc.length if self.packs.fits(loc) else -1
            except FileNotFoundError:
                continue
        try:
            return self.backend.get_head(object_key(oid), n), None
        except FileNotFoundError:
            return None

    def looks_intact(self, oid: Oid, size: int) -> bool:
        """A cheap check that ``oid`` can be read as ``size`` bytes, without reading payloads.

        The object must be stored, its header parse and declare ``size``, its stored length be
        the one the header implies (raw and byte-plane objects; a zstd frame alone knows its
        own), and the same must hold for every delta base down its chain. Damage inside a
        payload passes: only a full read (:meth:`get`, ``vault verify``) finds that.
        """
        for _ in range(codec.MAX_DEPTH + 1):
            found = self._peek(oid, HEAD_SIZE)
            if found is None:
                return False
            head, known = found
            try:
                header = codec.read_header(head)
                length = codec.stored_length(head, header)
            except codec.DecodeError:
                return False
            if header.size != size:
                return False
            if length is not None:
                if known is None:
                    st = self.backend.stat(object_key(oid))
                    known = -1 if st is None else st.size
                if known != length:
                    return False
            if header.base is None:
                return True
            oid = Oid(header.base)
        return False  # a chain longer than the format allows

    def delta_base(self, oid: Oid) -> Oid | None:
        """The id of the object ``oid`` is a delta of, from its header; ``None`` if it is
        stored whole (or missing, or its header is damaged)."""
        header = self.head(oid)
        return Oid(header.base) if header is not None and header.base else None

    def has(self, oid: Oid) -> bool:
        """Whether an object with this id is stored, loose or in a pack (its content is not
        checked). Packs are as last loaded: :meth:`~vault.packs.Packs.refresh` sees those
        another process has published since."""
        if oid in self.packs or any(w.pending(oid) is not None for w in list(self._writers)):
            return True
        return self.backend.stat(object_key(oid)) is not None

    def stat(self, oid: Oid) -> FileStat | None:
        """Stored size and mtime of an object: its file's when loose, else its stored length
        and its pack's mtime."""
        st = self.backend.stat(object_key(oid))
        if st is not None:
            return st
        for loc in self.packs.locate(oid):
            pack = self.packs.pack(loc.pack)
            if pack is not None:
                return FileStat(loc.length, pack.mtime)
        return None

    def list(self) -> Iterator[tuple[Oid, FileStat]]:
        """Yield every stored object id once with its stat (see :meth:`stat`); stray files
        are skipped."""
        seen: set[Oid] = set()
        for oid, st in self.list_loose():
            seen.add(oid)
            yield oid, st
        for oid, pack, length in self.packs.objects():
            if oid not in seen:
                seen.add(oid)
                yield oid, FileStat(length, pack.mtime)

    def list_loose(self) -> Iterator[tuple[Oid, FileStat]]:
        """Yield every loose object id with its file's stat."""
        for key, st in self.backend.list(OBJECTS):
            parts = key.split("/")
            if len(parts) == 3:
                oid = parts[1] + parts[2]
                if is_oid(oid) and parts[1] == oid[:2]:
                    yield Oid(oid), st

    def delete(self, oid: Oid) -> None:
        """Remove the loose copy of an object (garbage collection only; packs are removed
        whole, see :mod:`vault.ops.gc`)."""
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
