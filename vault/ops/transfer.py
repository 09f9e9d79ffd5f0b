"""Push, fetch and pull: copying what is missing between two repositories of the same format.

A remote is a vault repository on another backend. Copying follows one rule on both sides:
**objects first, then refs**. Objects travel in their stored encoding and are verified on the
way (a push re-hashes each object before it leaves; a fetch re-hashes each one before it is
stored); the receiving backend is synced; only then does a compare-and-swap move the refs. So
every state of either repository is valid, no ref ever names an object its repository lacks,
and a transfer killed at any instant resumes on the next run without sending again what arrived.

What a repository knows of a remote is kept in its own refs: ``remotes/NAME/<ref>``, the
remote's refs at the last fetch (the ``origin/...`` revisions), and ``synced/NAME/<ref>``, what
both held at the last push, pull or clone. Push and pull are three-way merges over those, as git
merges over a merge base (``docs/format.md``, "Remotes"):

* **push** refuses when the remote gained or lost versions since the last sync (someone else
  pushed): the user pulls first. A tag another writer added there is kept; a ref deleted here is
  deleted there.
* **pull** brings the remote's new versions in under their names. Local versions never pushed
  are then placed on top of them, as a rebase: each gets a new version object (same tree, files,
  metadata; new parent) and the next free name; tags and pins follow. A name the remote ever
  gave keeps its meaning.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from .. import codec
from ..errors import CorruptObject, NameTaken, ObjectMissing, RefConflict, RemoteError
from ..faults import crashpoint
from ..ids import Oid
from ..memory import few_arenas
from ..objects import KIND_FILE, FileManifest, Tree, Version
from ..packs import PACK_TARGET, Location, pack_key
from ..progress import NullProgress, Progress
from ..refs import (
    LATEST,
    PINS,
    REMOTES,
    SYNCED,
    TAGS,
    VERSIONS,
    RefsDoc,
    Transaction,
    version_number,
)
from ..revisions import name_clashes
from ..store import ObjectStore, object_key
from .commit import run_head
from .parts import Parts
from .walk import Reach, add_delta_bases, reach

CAS_RETRIES = 5
PARALLEL = 16
"""Objects in flight at once, each way."""
PACKED = 1 << 20
"""Objects stored in fewer bytes are copied into packs (see ``docs/format.md``)."""
DECODERS = 4
"""Objects decoded (verified) at once: decoding is CPU work, and each holds its content and its
delta bases in memory, so fewer than :data:`PARALLEL` bound the memory of a transfer."""
WAIT_FOR_OTHER = 120.0
"""Seconds a copy waits for another thread copying the same object before copying it too."""
PACKS_HELD = 2
"""Whole packs a fetch holds in memory at once."""
PACK_HELD_BYTES = 2 * PACK_TARGET
"""The largest pack a fetch reads whole (writers cut packs at ``PACK_TARGET``); a larger one,
or one whose size is unknown, is read object by object."""


@dataclass
class TransferResult:
    """What a push, fetch or pull did.

    Attributes:
        remote: the remote's name.
        objects: objects transferred.
        bytes: stored bytes transferred.
        skipped: objects the push needed that the receiving side had already.
        versions: version names that became new on the receiving side.
        renamed: local versions a pull placed after the remote's, old name to new.
        refs: refs moved on the receiving side (tracking refs not counted).
    """

    remote: str
    objects: int = 0
    bytes: int = 0
    skipped: int = 0
    versions: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    refs: int = 0


# -- which refs travel -------------------------------------------------------------------------


def own_refs(doc: RefsDoc) -> dict[str, Oid]:
    """The refs that are this repository's own: all but what it records of remotes."""
    return {k: v for k, v in doc.refs.items() if not k.startswith((REMOTES, SYNCED))}


def synced(doc: RefsDoc, remote: str) -> dict[str, Oid]:
    """The refs this repository and the remote ``remote`` both held at their last push, pull
    or clone, by the remote's ref names: the base of a three-way merge."""
    return doc.names_for(f"{SYNCED}{remote}/")


def tracked(doc: RefsDoc, remote: str) -> dict[str, Oid]:
    """What ``doc`` records of the remote ``remote``'s refs, by the remote's ref names."""
    return doc.names_for(f"{REMOTES}{remote}/")


def _versions(refs: dict[str, Oid]) -> dict[str, Oid]:
    return {k[len(VERSIONS) :]: v for k, v in refs.items() if k.startswith(VERSIONS)}


def _by_number(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda n: (version_number(n) or 0, n))


def _reason(verb: str, remote: str) -> str:
    return f"{verb} {remote}"


# -- copying objects ---------------------------------------------------------------------------


class _Slot:
    """A pack being downloaded, or downloaded (``data``; ``None`` when that failed)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.data: bytes | None = None


class _PackCache:
    """Whole packs of a fetch's source, each downloaded with one request while the objects in it
    are copied, instead of one ranged request per object (a clone of the benchmark series made
    950 of them, each costing more client CPU than the bytes it carried).

    At most :data:`PACKS_HELD` packs are held; the objects to copy are ordered by pack, so a pack
    is done with before it is dropped. What this returns is unverified, as
    :meth:`ObjectStore.raw`'s is: the destination verifies it. When a pack cannot be read whole,
    the object is read on its own (:meth:`ObjectStore.raw`, with its errors).
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._held: dict[str, _Slot] = {}

    def location(self, oid: Oid) -> Location | None:
        """Where ``oid`` lies in a pack of the source small enough to read whole, or ``None``."""
        found = self.store.packs.locate(oid)
        if not found:
            return None
        info = self.store.packs.pack(found[0].pack)
        small = info is not None and info.size is not None and info.size <= PACK_HELD_BYTES
        return found[0] if small else None

    def raw(self, oid: Oid) -> bytes:
        """The stored encoding of ``oid``, from its whole pack when it lies in one."""
        loc = self.location(oid)
        data = self._pack(loc.pack) if loc is not None else None
        if loc is None or data is None or loc.offset + loc.length > len(data):
            return self.store.raw(oid)
        return data[loc.offset : loc.offset + loc.length]

    def _pack(self, pack: str) -> bytes | None:
        with self._lock:
            slot = self._held.pop(pack, None)
            mine = slot is None
            if slot is None:
                slot = _Slot()
            self._held[pack] = slot  # the most recently used last
            while len(self._held) > PACKS_HELD:
                del self._held[next(iter(self._held))]
        if mine:
            try:
                slot.data = self.store.backend.get(pack_key(pack))
            except FileNotFoundError:
                slot.data = None  # gone meanwhile (gc repacked it): read object by object
            finally:
                slot.done.set()
        else:
            slot.done.wait()
        return slot.data


class _Copier:
    """Copies objects from ``src`` to ``dst``, verified, :data:`PARALLEL` at a time; objects
    stored in fewer than :data:`PACKED` bytes go into packs on ``dst``.

    Args:
        verify_at_source: re-hash each object as read from ``src`` and hand ``dst`` the
            verified bytes (a push: decoding on the remote would read delta bases back over
            the network), skipping those ``dst`` holds already (what an interrupted push
            left); else ``dst`` verifies each object, a delta through its base, which is
            copied first (a fetch).
    """

    def __init__(self, src: ObjectStore, dst: ObjectStore, *, verify_at_source: bool) -> None:
        few_arenas()
        self.src = src
        self.dst = dst
        self.verify_at_source = verify_at_source
        self.writer = dst.pack_writer(verified=verify_at_source)
        # An object store takes each object whole, at once, PARALLEL at a time: what arrived
        # stays when a push is cut off. A directory batches its fsyncs until the sync.
        self.defer = dst.backend.capabilities.local_root is not None
        self.objects = 0
        self.bytes = 0
        self.skipped = 0
        self._lock = threading.Lock()
        self._decoding = threading.BoundedSemaphore(DECODERS)
        self._claims: dict[Oid, threading.Event] = {}
        # A fetch from a remote reads small objects pack by pack; a local source reads ranges.
        self.packs = (
            _PackCache(src)
            if not verify_at_source and src.backend.capabilities.local_root is None
            else None
        )

    def copy(self, oids: dict[Oid, int | None], progress: Progress) -> None:
        """Copy ``oids`` (id to content length, ``None`` for manifests), then publish the last
        pack and make everything durable on ``dst``."""
        if oids:
            progress.start("objects", len(oids))
            with ThreadPoolExecutor(PARALLEL) as pool:
                # At most a few objects per thread are in flight, so memory stays bounded.
                pending = self._by_pack(oids)
                for start in range(0, len(pending), PARALLEL * 4):
                    batch = pending[start : start + PARALLEL * 4]
                    for _ in pool.map(lambda item: self.copy_one(*item), batch):
                        progress.advance(1)
            progress.finish()
        self.flush()

    def _by_pack(self, oids: dict[Oid, int | None]) -> list[tuple[Oid, int | None]]:
        """``oids`` in the order to copy them: when fetching from packs, the packed ones first,
        pack by pack in the order they lie there, so each pack is read whole once."""
        if self.packs is None:
            return list(oids.items())
        where = {oid: self.packs.location(oid) for oid in oids}
        packed = sorted(
            (oid for oid, loc in where.items() if loc is not None),
            key=lambda oid: (where[oid].pack, where[oid].offset),  # type: ignore[union-attr]
        )
        return [(oid, oids[oid]) for oid in packed] + [
            (oid, size) for oid, size in oids.items() if where[oid] is None
        ]

    def flush(self) -> None:
        """Publish the last pack, then make everything copied durable on ``dst``."""
        self.writer.flush()
        self.dst.sync()

    def copy_one(self, oid: Oid, size: int | None, depth: int = 0) -> None:
        """Copy the object ``oid`` (of content length ``size`` when known), once: a thread that
        finds another copying it waits for that copy (a fetched delta's base may also be in the
        list being copied)."""
        with self._lock:
            claim = self._claims.get(oid)
            mine = claim is None
            if mine:
                claim = self._claims[oid] = threading.Event()
        assert claim is not None
        # A bounded wait: a damaged remote could name bases in a loop across threads; then
        # this thread copies the object itself, and its depth check ends the loop.
        if not mine and claim.wait(WAIT_FOR_OTHER):
            return
        try:
            self._copy(oid, size, depth)
        finally:
            claim.set()

    def _copy(self, oid: Oid, size: int | None, depth: int) -> None:
        stored = self.src.raw(oid) if self.packs is None else self.packs.raw(oid)
        small = len(stored) < PACKED
        if self.verify_at_source:
            there = oid in self.dst.packs if small else self.dst.backend.stat(object_key(oid))
            if there:
                with self._lock:
                    self.skipped += 1
                return
            with self._decoding:
                self.src.verify_stored(oid, stored, size)
            if small:
                self.writer.add(oid, stored)
            else:
                self.dst.put_stored(oid, stored, defer=self.defer)
                crashpoint("push-sent")
        else:
            header = _header(oid, stored)
            if header.base is not None and not self.dst.has(Oid(header.base)):
                if depth >= codec.MAX_DEPTH:
                    raise CorruptObject(oid, why="its delta chain is longer than the format allows")
                self.copy_one(Oid(header.base), header.size, depth + 1)
            with self._decoding:  # the destination verifies as it stores
                if small:
                    self.writer.add(oid, stored, size=size)
                else:
                    self.dst.put_raw(oid, stored, size=size, defer=True)
        with self._lock:
            self.objects += 1
            self.bytes += len(stored)


def _header(oid: Oid, stored: bytes) -> codec.Header:
    try:
        return codec.read_header(stored)
    except codec.DecodeError as exc:
        raise CorruptObject(oid, why=str(exc)) from None


# -- push --------------------------------------------------------------------------------------


def push(
    local: Parts, remote: Parts, name: str, *, progress: Progress | None = None
) -> TransferResult:
    """Send ``local``'s versions, tags, pins, ``latest`` and ``base`` to the remote ``remote``.

    Raises:
        RemoteError: the remote has versions this repository lacks (pull first), or it moved
            on while this push ran.
    """
    progress = progress or NullProgress()
    result = TransferResult(name)
    ours = local.refs.read()
    theirs = remote.refs.read()
    target = _push_target(ours, theirs, name)
    if target.refs == theirs.refs and target.pins == theirs.pins:
        _record(local, name, target.refs, "push", synced=_agreed(ours, target))
        return result
    with remote.writing() as lease:
        theirs = remote.refs.read()
        target = _push_target(ours, theirs, name)
        needed = _needed(local.store, set(own_refs(ours).values()), set(theirs.refs.values()))
        remote.store.packs.refresh()  # what other pushes published since this store looked
        copier = _Copier(local.store, remote.store, verify_at_source=True)
        copier.copy(needed, progress)
        crashpoint("push-synced")
        result.objects, result.bytes, result.skipped = copier.objects, copier.bytes, copier.skipped
        reason = _reason("push from", os.uname().nodename)
        for _ in range(CAS_RETRIES):
            try:
                with remote.refs.transaction(reason, before_publish=lease.check) as txn:
                    _apply(txn, theirs, target)
                result.refs = len(txn.moves)
                break
            except RefConflict:
                # Another pusher moved a ref this push moves. If it brought versions this
                # repository lacks, _push_target says to pull first; otherwise the push
                # applies again to what the remote holds now (its objects are all there).
                theirs = remote.refs.read()
                target = _push_target(ours, theirs, name)
        else:
            raise RemoteError(
                f"the remote {name} kept changing under this push: try again", kind="refused"
            )
    result.versions = _by_number(set(_versions(target.refs)) - set(_versions(theirs.refs)))
    _record(local, name, target.refs, "push", synced=_agreed(ours, target))
    return result


def _push_target(ours: RefsDoc, theirs: RefsDoc, name: str) -> RefsDoc:
    """The refs document the remote gets: a three-way merge of this repository's refs, the
    remote's, and what both held at the last push, pull or clone (``synced/NAME/*``).

    A ref only this repository changed since then takes its value here (a deletion deletes it
    there); a tag, pin or ``base`` only another writer changed keeps that writer's value.

    Raises:
        RemoteError: the remote gained or lost versions, or moved ``latest``, since the last
            sync (pull first); another writer moved a tag, pin or ``base`` this repository moved
            too; or a new version here has a name the remote has given already.
    """
    base = synced(ours, name)
    mine = own_refs(ours)
    refs: dict[str, Oid] = {}
    pins: dict[str, dict[str, Any]] = {}
    lacking: list[str] = []
    gone: list[str] = []
    clashes: list[str] = []
    for ref in sorted(mine.keys() | theirs.refs.keys() | base.keys()):
        m, t, b = mine.get(ref), theirs.refs.get(ref), base.get(ref)
        if t in (m, b):
            out, doc = m, ours  # unchanged there since the last sync: this repository's value
            number = version_number(ref[len(VERSIONS) :]) if ref.startswith(VERSIONS) else None
            if t is None and b is None and number is not None and number < theirs.next_version:
                clashes.append(ref)  # a name the remote gave (and deleted) meanwhile
        elif ref.startswith(VERSIONS) or ref == LATEST:
            (lacking if t is not None else gone).append(ref)
            continue
        elif m == b:
            out, doc = t, theirs  # another writer's tag, pin or base
        else:
            clashes.append(ref)
            continue
        if out is not None:
            refs[ref] = out
            if ref.startswith(PINS):
                pins[ref[len(PINS) :]] = dict(doc.pins.get(ref[len(PINS) :], {}))
    if lacking or gone or clashes:
        names = [r[len(VERSIONS) :] if r.startswith(VERSIONS) else r for r in lacking + gone]
        # latest moves with the versions: name it only when nothing else changed.
        names = [n for n in names if n != LATEST] or names
        what = (
            f"has versions this repository lacks ({', '.join(_by_number(names)[:5])})"
            if lacking
            else f"changed {', '.join(sorted(names + clashes)[:5])} since this repository last"
            " synced with it"
        )
        raise RemoteError(
            f"the remote {name} {what}: run 'vault pull {name}' first", kind="refused"
        )
    target = RefsDoc(refs, max(ours.next_version, theirs.next_version), pins)
    _refuse_clashes(target, [ours, theirs], theirs, name)
    return target


def _refuse_clashes(merged: RefsDoc, sides: list[RefsDoc], remote: RefsDoc, name: str) -> None:
    """Refuse a merge that makes a name both a tag and a pin, unless one side had that already.

    Raises:
        NameTaken: the merge would give a tag and a pin one name; nothing is published.
    """
    new = name_clashes(merged).difference(*(name_clashes(d) for d in sides))
    if new:
        clash = sorted(new)[0]
        theirs = "tag" if TAGS + clash in remote.refs else "pin"
        raise NameTaken(clash, theirs, "pin" if theirs == "tag" else "tag", remote=name)


def _apply(txn: Transaction, seen: RefsDoc, target: RefsDoc) -> None:
    """Move the remote's refs from ``seen`` to ``target``, each by compare-and-swap."""
    for ref in sorted(seen.refs.keys() - target.refs.keys()):
        txn.delete(ref, expected=seen.refs[ref])
    for ref, oid in sorted(target.refs.items()):
        old = seen.refs.get(ref)
        if ref.startswith(PINS):
            info = target.pins.get(ref[len(PINS) :], {})
            if old != oid or seen.pins.get(ref[len(PINS) :]) != info:
                txn.set_pin(ref[len(PINS) :], oid, info, expected=old)
        elif old != oid:
            txn.set(ref, oid, expected=old)
    txn.doc.next_version = max(txn.doc.next_version, target.next_version)


def _needed(store: ObjectStore, roots: set[Oid], theirs: set[Oid]) -> dict[Oid, int | None]:
    """Objects ``roots`` reach that the versions ``theirs`` (those this store has) do not:
    what the other side lacks, since a repository holds everything its refs reach.

    The other side's versions are walked first, without reading chunk headers; then only the
    trees and file manifests they do not hold, and the delta bases of the chunks to send (a
    base the other side holds stops the chain there). A push of one new version so reads the
    remote's manifests once, not every manifest and chunk header twice.

    Ordered for the receiving side: chunks first, then file manifests, trees, versions.
    """
    known = {oid for oid in theirs if store.has(oid)}
    have = reach(store, known, bases=False) if known else Reach()
    want = reach(store, roots, bases=False, known=have)
    chunks = {oid: size for oid, size in want.chunks.items() if oid not in have.chunks}
    add_delta_bases(store, chunks, stop=have.chunks)
    out: dict[Oid, int | None] = dict(chunks)
    for group in (want.files, want.trees, want.versions):
        for oid in sorted(group):
            if oid not in have.files and oid not in have.trees and oid not in have.versions:
                out[oid] = None
    return out


def _agreed(ours: RefsDoc, target: RefsDoc) -> dict[str, Oid]:
    """The refs a push leaves equal on both sides: the base of the next merge. Another
    writer's tag kept on the remote is not among them, so that a pull still takes it in."""
    mine = own_refs(ours)
    return {ref: oid for ref, oid in target.refs.items() if mine.get(ref) == oid}


def _record(
    local: Parts,
    name: str,
    refs: dict[str, Oid],
    verb: str,
    *,
    synced: dict[str, Oid] | None = None,
) -> None:
    """Record ``refs`` as the remote ``name``'s tracking refs, and ``synced`` (what both sides
    now hold) as the base of the next three-way merge."""
    doc = local.refs.read()
    spaces = {f"{REMOTES}{name}/": refs}
    if synced is not None:
        spaces[f"{SYNCED}{name}/"] = synced
    if all(doc.names_for(prefix) == want for prefix, want in spaces.items()):
        return
    with (
        local.writing() as lease,
        local.refs.transaction(_reason(verb, name), before_publish=lease.check) as txn,
    ):
        for prefix, want in spaces.items():
            set_namespace(txn, prefix, want)


def set_namespace(txn: Transaction, prefix: str, refs: dict[str, Oid]) -> None:
    """Make the refs under ``prefix`` exactly ``refs`` (named without the prefix)."""
    for ref in sorted(txn.doc.refs):
        if ref.startswith(prefix) and ref[len(prefix) :] not in refs:
            txn.delete(ref)
    for ref, oid in sorted(refs.items()):
        if txn.get(prefix + ref) != oid:
            txn.set(prefix + ref, oid)


# -- fetch -------------------------------------------------------------------------------------


def fetch(
    local: Parts, remote: Parts, name: str, *, progress: Progress | None = None
) -> TransferResult:
    """Copy every object the remote's refs reach that ``local`` lacks, then record the remote's
    refs as ``remotes/NAME/*``. Nothing else moves.

    ``versions`` lists the remote's version names the tracking refs did not hold before.

    Raises:
        CorruptObject, ObjectMissing: the remote holds a damaged object, or lacks one; the
            local refs are then unchanged (objects fetched before it stay, unnamed).
    """
    result, theirs = _fetch(local, remote, name, progress)
    _record(local, name, theirs.refs, "fetch")
    return result


def _fetch(
    local: Parts, remote: Parts, name: str, progress: Progress | None
) -> tuple[TransferResult, RefsDoc]:
    """The objects of :func:`fetch` (no ref moves), and the remote's refs they are of."""
    progress = progress or NullProgress()
    result = TransferResult(name)
    before = tracked(local.refs.read(), name)
    theirs = remote.refs.read()
    with local.writing() as lease:
        copier = _Copier(remote.store, local.store, verify_at_source=False)
        _fetch_objects(copier, set(theirs.refs.values()), progress)
        result.objects, result.bytes = copier.objects, copier.bytes
        lease.check()
    result.versions = _by_number(
        n for n, oid in _versions(theirs.refs).items() if before.get(VERSIONS + n) != oid
    )
    return result, theirs


def _fetch_objects(copier: _Copier, roots: set[Oid], progress: Progress) -> None:
    """Copy what ``roots`` reach in the source and the destination lacks: the manifests level
    by level (each read where it is already, else copied first), then the chunks in parallel.

    As for gc (:func:`vault.ops.walk.reach`), a root brings its trees and files, an ancestor
    reached through parents only its version object.
    """
    chunks: dict[Oid, int] = {}
    frontier: list[tuple[str, Oid]] = [("root", v) for v in sorted(roots)]
    seen: set[Oid] = set()
    with ThreadPoolExecutor(PARALLEL) as pool:
        while frontier:
            level: dict[Oid, str] = {}
            for kind, oid in frontier:
                if oid not in seen and level.get(oid) != "root":
                    level[oid] = kind
            todo = list(level.items())
            seen.update(oid for oid, _ in todo)
            loaded = list(pool.map(lambda item: _manifest(copier, item[0]), todo))
            frontier = []
            for (_oid, kind), data in zip(todo, loaded, strict=True):
                if kind in ("root", "ancestor"):
                    version = Version.from_bytes(data)
                    frontier += [("ancestor", p) for p in version.parents]
                    if kind == "root":
                        frontier += [("tree", t) for t in version.trees()]
                elif kind == "tree":
                    for entry in Tree.from_bytes(data).entries:
                        if entry.kind == KIND_FILE and entry.file is not None:
                            frontier.append(("file", entry.file))
                else:
                    for c in FileManifest.from_bytes(data).chunks:
                        if not copier.dst.looks_intact(c.oid, c.size):
                            chunks[c.oid] = c.size
    copier.copy(chunks, progress)  # type: ignore[arg-type]


def _manifest(copier: _Copier, oid: Oid) -> bytes:
    """The content of the manifest ``oid``: the destination's copy when intact, else the
    source's, copied to the destination on the way (verified)."""
    try:
        return bytes(copier.dst.get(oid))
    except (ObjectMissing, CorruptObject):
        pass
    copier.copy_one(oid, None)
    return bytes(copier.dst.get(oid))


# -- pull --------------------------------------------------------------------------------------


def pull(
    local: Parts, remote: Parts, name: str, *, progress: Progress | None = None
) -> TransferResult:
    """Fetch, then merge the remote's refs into the local ones, recording them in the same
    transaction. The merge is three-way, over the refs both held at the last sync: versions,
    tags, pins and ``base`` the remote added, moved or deleted since are taken unless changed
    here too; local versions never pushed are placed after the remote's (see the module's
    docstring).

    ``versions`` lists the version names new here; ``renamed`` the local versions that moved.
    """
    fetched, theirs = _fetch(local, remote, name, progress)
    result = TransferResult(name, fetched.objects, fetched.bytes)
    with (
        local.writing() as lease,
        local.refs.transaction(_reason("pull", name), before_publish=lease.check) as txn,
    ):
        before = RefsDoc(dict(txn.doc.refs))
        result.versions, result.renamed = _integrate(local, txn, name, theirs)
        _refuse_clashes(txn.doc, [before, theirs], theirs, name)
        set_namespace(txn, f"{REMOTES}{name}/", theirs.refs)
        set_namespace(txn, f"{SYNCED}{name}/", theirs.refs)
    return result


def _integrate(
    local: Parts, txn: Transaction, name: str, theirs_doc: RefsDoc
) -> tuple[list[str], dict[str, str]]:
    """Merge the remote's refs ``theirs_doc`` into ``txn``; return the new version names and
    the renamed ones."""
    mine, theirs, base = own_refs(txn.doc), theirs_doc.refs, synced(txn.doc, name)
    my_v, their_v, base_v = _versions(mine), _versions(theirs), _versions(base)
    # New there since the last sync, and not already here as they are.
    new = _by_number(n for n, oid in their_v.items() if oid not in (my_v.get(n), base_v.get(n)))
    # Never pushed: added here since the last sync, and not on the remote.
    unpushed = _by_number(
        n for n, oid in my_v.items() if oid not in (base_v.get(n), their_v.get(n))
    )
    # They move after the remote's when it has new versions, or gave one of their names.
    given = any((version_number(n) or 0) < theirs_doc.next_version for n in unpushed)
    rebase = bool(unpushed) and (bool(new) or given)
    txn.doc.next_version = max(txn.doc.next_version, theirs_doc.next_version)
    moved: dict[Oid, Oid] = {}
    renamed: dict[str, str] = {}
    tip = theirs.get(LATEST)
    if rebase:
        for old_name in unpushed:
            txn.delete(VERSIONS + old_name, expected=my_v[old_name])
    for n in new:
        txn.set(VERSIONS + n, their_v[n])
    if rebase:
        # Each never-pushed version again, on top of the remote's latest, in order.
        for old_name in unpushed:
            old_oid = my_v[old_name]
            version = local.store.get_version(old_oid)
            rest = tuple(moved.get(p, p) for p in version.parents[1:])
            run = version.training.get("run")
            # A run's version follows its run's newest version, the remote's included; one
            # from before runs follows the remote's latest.
            first = run_head(local.store, txn.doc, run) if run is not None else tip
            parents = (first, *rest) if first is not None else rest
            new_name = txn.allocate_version_name()
            oid = local.store.put(replace(version, parents=parents, name=new_name).to_bytes()).oid
            txn.set(VERSIONS + new_name, oid)
            moved[old_oid] = tip = oid
            renamed[old_name] = new_name
        local.store.sync()  # the new version objects are durable before any ref names them
        for ref, oid in sorted(txn.doc.refs.items()):
            if oid in moved and not ref.startswith((REMOTES, SYNCED, VERSIONS)):
                if ref.startswith(PINS):
                    info = txn.doc.pins.get(ref[len(PINS) :], {})
                    txn.set_pin(ref[len(PINS) :], moved[oid], info, expected=oid)
                else:
                    txn.set(ref, moved[oid], expected=oid)
    if moved and tip is not None:
        txn.set(LATEST, tip)
    elif mine.get(LATEST) == base.get(LATEST) and theirs.get(LATEST) is not None:
        txn.set(LATEST, theirs[LATEST])  # not moved here since the sync: it follows
    # Names the remote deleted, and tags, pins and base it moved or deleted, since the last
    # sync, unless changed here too (then this repository's change wins; a push sends it).
    for ref in sorted(theirs.keys() | base.keys()):
        there, was = theirs.get(ref), base.get(ref)
        if ref == LATEST or there == was or mine.get(ref) != was:
            continue
        if ref.startswith(VERSIONS) and there is not None:
            continue  # new names are taken above
        if there is None:
            txn.delete(ref, expected=was)
        elif ref.startswith(PINS):
            txn.set_pin(ref[len(PINS) :], there, theirs_doc.pins.get(ref[len(PINS) :], {}))
        else:
            txn.set(ref, there)
    return new, renamed


def forget_remote(local: Parts, name: str) -> None:
    """Drop what ``local`` recorded of the remote ``name``: its tracking refs and merge base."""
    with (
        local.writing() as lease,
        local.refs.transaction(f"remote remove {name}", before_publish=lease.check) as txn,
    ):
        for prefix in (f"{REMOTES}{name}/", f"{SYNCED}{name}/"):
            set_namespace(txn, prefix, {})
