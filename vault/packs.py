"""Packs: many objects in one backend file, found through an index (restic's and git's packs).

A repository on an object store pays per key and per request, so the small objects of a push
(manifests, small files) travel together: a **pack** ``packs/<2 hex>/<62 hex>`` holds objects
back to back, each in exactly the bytes a loose object file holds, after the 4-byte magic
:data:`PACK_MAGIC`; its name is the BLAKE3 of its bytes. Its **index** ``index/<pack id>`` lists
where each object lies, as canonical JSON::

    {"format":1,"objects":[["<oid>",4,1234],["<oid>",1238,77]],"pack":"<pack id>"}

A writer publishes the pack, makes it durable, and only then publishes its index: an object is
visible once its index is, and its bytes are then already there. Garbage collection deletes an
index before its pack, and publishes a repacked copy's index before it deletes the old one.

This module knows packs and indexes as bytes on a backend; :class:`~vault.store.ObjectStore`
reads objects through :class:`Packs` and verifies them like loose ones.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .backend import Backend, FileStat
from .ids import Oid, hash_bytes, is_oid

PACKS = "packs"
INDEX = "index"
PACK_MAGIC = b"VPK1"
"""The first bytes of every pack; the first object starts right after them."""
INDEX_FORMAT = 1
PACK_TARGET = 16 << 20
"""A pack is cut once it holds this many bytes (the object that crosses it included)."""
LOAD_THREADS = 8


def pack_key(pack: str) -> str:
    """The backend key of the pack ``pack``: ``packs/<2 hex>/<62 hex>``."""
    return f"{PACKS}/{pack[:2]}/{pack[2:]}"


def index_key(pack: str) -> str:
    """The backend key of the index of the pack ``pack``: ``index/<64 hex>``."""
    return f"{INDEX}/{pack}"


@dataclass(frozen=True, slots=True)
class Location:
    """Where one object lies: in the pack ``pack``, ``length`` bytes from ``offset``."""

    pack: str
    offset: int
    length: int


@dataclass
class Pack:
    """One pack as its index describes it.

    Attributes:
        id: the pack's id (the BLAKE3 of its bytes), which names its key and its index.
        objects: ``(oid, offset, length)`` of each object in it, in the order it holds them.
        size: the pack file's length, or ``None`` when the pack is missing.
        mtime: when the pack was written (its index's time when the pack is missing).
    """

    id: str
    objects: list[tuple[Oid, int, int]]
    size: int | None
    mtime: float

    @property
    def key(self) -> str:
        """The pack's backend key."""
        return pack_key(self.id)

    @property
    def index(self) -> str:
        """Its index's backend key."""
        return index_key(self.id)

    @property
    def used(self) -> int:
        """Bytes of the pack its objects take (the magic excluded)."""
        return sum(length for _, _, length in self.objects)


@dataclass(frozen=True)
class PackDamage:
    """An index that cannot be used as it is: unreadable, or not matching its pack.

    Attributes:
        key: the index's (or a pack's) backend key.
        problem: what is wrong with it.
    """

    key: str
    problem: str


class BadIndex(ValueError):
    """An index's bytes are not an index of the pack it is named after."""


def encode_index(pack: str, objects: list[tuple[Oid, int, int]]) -> bytes:
    """The canonical JSON of the index of ``pack``."""
    doc = {"format": INDEX_FORMAT, "objects": [list(o) for o in objects], "pack": pack}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def parse_index(pack: str, data: bytes) -> list[tuple[Oid, int, int]]:
    """The entries of the index of ``pack``; unknown fields are ignored.

    Raises:
        BadIndex: it is not JSON, of another format or pack, or an entry is malformed.
    """
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise BadIndex(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadIndex("not a JSON object")
    if doc.get("format") != INDEX_FORMAT:
        raise BadIndex(f"unknown index format {doc.get('format')!r}")
    if doc.get("pack") != pack:
        raise BadIndex(f"it names the pack {doc.get('pack')!r}")
    entries = doc.get("objects")
    if not isinstance(entries, list):
        raise BadIndex("no list of objects")
    out: list[tuple[Oid, int, int]] = []
    for entry in entries:
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], str)
            and is_oid(entry[0])
            and all(type(n) is int for n in entry[1:])
            and entry[1] >= len(PACK_MAGIC)
            and entry[2] > 0
        ):
            raise BadIndex(f"malformed entry {str(entry)[:120]}")
        out.append((Oid(entry[0]), entry[1], entry[2]))
    return out


@dataclass
class Written:
    """One pack a :class:`PackWriter` published: its id, objects and length."""

    id: str
    objects: list[tuple[Oid, int, int]]
    size: int


class PackWriter:
    """Gathers objects in their stored encoding and publishes them as packs with indexes.

    Thread-safe. An object added twice goes in once. Nothing is visible to readers before
    :meth:`flush` (or the automatic flush when a pack reaches ``target`` bytes) has published
    the pack, made it durable, and then published its index.

    Args:
        backend: where the packs go.
        target: pack size at which a pack is cut.
        check: called as ``check(oid, stored, size)`` before an object is taken; raises when
            ``stored`` is not the object ``oid`` (the store verifies by decoding).
        published: called with each :class:`Written` pack once its index is durable.

    Attributes:
        objects: objects published so far.
        bytes: their stored bytes.
        packs: ids of the packs published, in order.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        target: int = PACK_TARGET,
        check: Callable[[Oid, bytes, int | None], object] | None = None,
        published: Callable[[Written], None] | None = None,
    ) -> None:
        self.backend = backend
        self.target = target
        self._check = check
        self._published = published
        self._lock = threading.Lock()
        self._buf = bytearray(PACK_MAGIC)
        self._entries: dict[Oid, tuple[int, int]] = {}
        self.objects = 0
        self.bytes = 0
        self.packs: list[str] = []

    def add(
        self, oid: Oid, stored: bytes | bytearray | memoryview, *, size: int | None = None
    ) -> bool:
        """Add the object ``oid`` in its stored encoding; return ``False`` when this writer's
        pack in progress already holds it.

        Args:
            size: the content length the caller expects, checked like a read's.

        Raises:
            CorruptObject: ``stored`` is not the object ``oid`` (with a ``check``).
        """
        with self._lock:
            if oid in self._entries:
                return False
        data = bytes(stored)
        if self._check is not None:
            self._check(oid, data, size)  # outside the lock: it may read this writer's objects
        with self._lock:
            if oid in self._entries:
                return False
            self._entries[oid] = (len(self._buf), len(data))
            self._buf += data
            if len(self._buf) >= self.target:
                self._flush()
        return True

    def pending(self, oid: Oid) -> bytes | None:
        """The stored bytes of ``oid`` when it waits in this writer's pack in progress."""
        with self._lock:
            found = self._entries.get(oid)
            if found is None:
                return None
            return bytes(self._buf[found[0] : found[0] + found[1]])

    def flush(self) -> str | None:
        """Publish the pack in progress, if it holds anything: the pack, durable, then its
        index, durable. Return its id."""
        with self._lock:
            return self._flush()

    def _flush(self) -> str | None:
        if not self._entries:
            return None
        data = bytes(self._buf)
        pack = hash_bytes(data)
        objects = [(oid, off, length) for oid, (off, length) in self._entries.items()]
        self.backend.put(pack_key(pack), data)
        self.backend.sync()  # the pack is durable before any reader can learn of it
        self.backend.put(index_key(pack), encode_index(pack, objects))
        self.backend.sync()
        if self._published is not None:
            self._published(Written(pack, objects, len(data)))
        self.objects += len(objects)
        self.bytes += len(data) - len(PACK_MAGIC)
        self.packs.append(pack)
        self._buf = bytearray(PACK_MAGIC)
        self._entries = {}
        return pack

    def discard(self) -> None:
        """Drop the pack in progress unpublished."""
        with self._lock:
            self._buf = bytearray(PACK_MAGIC)
            self._entries = {}

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.flush()
        else:
            self.discard()


class Packs:
    """Which object lies in which pack: every index of a backend, loaded on first use.

    Thread-safe. The same object may lie in several packs (two pushes raced, or a repack was
    interrupted): any copy will do, and a reader tries the next when one is damaged.

    Attributes:
        damaged: what the last load found wrong with indexes (an index that does not parse,
            or whose pack is missing or shorter than its entries say).
        orphans: packs without an index (a writer or gc killed between the two), with their
            stats: nothing reads them; gc removes them after the grace period.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self._loaded = False
        self.generation = 0
        """How many times the indexes were listed (a reader that missed an object lists them
        again only when nobody did meanwhile)."""
        self._packs: dict[str, Pack] = {}
        self._map: dict[Oid, list[Location]] = {}
        self.damaged: list[PackDamage] = []
        self.orphans: dict[str, FileStat] = {}

    def _ensure(self) -> None:
        if not self._loaded:
            self.refresh()

    def refresh(self) -> None:
        """List the indexes again and load the ones not yet known (new packs of another
        writer); forget packs whose index is gone."""
        with self._lock:
            # Indexes first: a pack is published before its index, so every index listed here
            # has its pack in the listing that follows, unless it is damaged or just collected.
            listed: dict[str, FileStat] = {}
            for key, st in self.backend.list(INDEX):
                name = key[len(INDEX) + 1 :]
                if is_oid(name):
                    listed[name] = st
            files: dict[str, FileStat] = {}
            for key, st in self.backend.list(PACKS):
                parts = key.split("/")
                if len(parts) == 3 and len(parts[1]) == 2 and is_oid(parts[1] + parts[2]):
                    files[parts[1] + parts[2]] = st
            new = [p for p in listed if p not in self._packs]
            loaded = self._load(new)
            packs = {p: self._packs[p] for p in listed if p in self._packs}
            damaged: list[PackDamage] = []
            for pack, found in loaded.items():
                if isinstance(found, PackDamage):
                    damaged.append(found)
                else:
                    packs[pack] = Pack(pack, found, None, listed[pack].mtime)
            gone: set[str] = set()
            for pack, info in packs.items():
                file = files.get(pack)
                if file is None and self.backend.stat(index_key(pack)) is None:
                    gone.add(pack)  # index and pack both removed since the listing: collected
                    continue
                info.size = None if file is None else file.size
                info.mtime = listed[pack].mtime if file is None else file.mtime
                problem = _mismatch(info)
                if problem:
                    damaged.append(PackDamage(info.index, problem))
            self._packs = {p: info for p, info in packs.items() if p not in gone}
            self.orphans = {p: st for p, st in files.items() if p not in listed}
            self.damaged = damaged
            mapping: dict[Oid, list[Location]] = {}
            for info in self._packs.values():
                _enter(mapping, info)
            self._map = mapping  # whole: a reader meanwhile sees the old map or the new one
            self._loaded = True
            self.generation += 1

    def _load(self, packs: list[str]) -> dict[str, list[tuple[Oid, int, int]] | PackDamage]:
        def one(pack: str) -> list[tuple[Oid, int, int]] | PackDamage | None:
            try:
                return parse_index(pack, self.backend.get(index_key(pack)))
            except FileNotFoundError:
                return None  # removed since the listing
            except BadIndex as exc:
                return PackDamage(index_key(pack), str(exc))

        if len(packs) > 1:
            from concurrent.futures import ThreadPoolExecutor  # only a store with packs needs it

            with ThreadPoolExecutor(min(LOAD_THREADS, len(packs))) as pool:
                found = list(pool.map(one, packs))
        else:
            found = [one(p) for p in packs]
        return {p: f for p, f in zip(packs, found, strict=True) if f is not None}

    def published(self, written: Written, mtime: float) -> None:
        """Know the pack ``written`` that this process has just published."""
        with self._lock:
            if not self._loaded or written.id in self._packs:
                return  # the first load will list it
            info = Pack(written.id, written.objects, written.size, mtime)
            self._packs[written.id] = info
            _enter(self._map, info)

    def forget(self, pack: str) -> None:
        """Stop reading from ``pack`` (gc deleted its index)."""
        with self._lock:
            info = self._packs.pop(pack, None)
            if info is None:
                return
            for oid, _, _ in info.objects:
                left = [loc for loc in self._map.get(oid, ()) if loc.pack != pack]
                if left:
                    self._map[oid] = left
                else:
                    self._map.pop(oid, None)

    def locate(self, oid: Oid) -> list[Location]:
        """Every place ``oid`` lies in a pack (empty when it is in none)."""
        self._ensure()
        return self._map.get(oid, [])

    def __contains__(self, oid: object) -> bool:
        self._ensure()
        return oid in self._map

    def packs(self) -> list[Pack]:
        """Every pack with an index."""
        self._ensure()
        with self._lock:
            return list(self._packs.values())

    def pack(self, pack: str) -> Pack | None:
        """The pack ``pack``, when it has an index."""
        self._ensure()
        return self._packs.get(pack)

    def objects(self) -> Iterator[tuple[Oid, Pack, int]]:
        """Every packed object with its pack and stored length (an object in two packs
        twice)."""
        for info in self.packs():
            for oid, _, length in info.objects:
                yield oid, info, length

    def read(self, loc: Location, n: int | None = None) -> bytes:
        """The stored bytes at ``loc`` (its first ``n`` only), unverified; fewer when the pack
        is shorter than its index says.

        Raises:
            FileNotFoundError: the pack is gone.
        """
        length = loc.length if n is None else min(n, loc.length)
        return self.backend.get_range(pack_key(loc.pack), loc.offset, length)

    def fits(self, loc: Location) -> bool:
        """Whether the pack, as last listed, holds all of ``loc``."""
        info = self._packs.get(loc.pack)
        return info is not None and info.size is not None and loc.offset + loc.length <= info.size


def _enter(found: dict[Oid, list[Location]], info: Pack) -> None:
    for oid, offset, length in info.objects:
        found.setdefault(oid, []).append(Location(info.id, offset, length))


def _mismatch(info: Pack) -> str:
    """What is wrong between the index of ``info`` and its pack, or ``""``."""
    if info.size is None:
        return "its pack is missing"
    end = max((off + length for _, off, length in info.objects), default=0)
    if end > info.size:
        return f"it lists bytes up to {end} of a pack of {info.size}"
    return ""
