"""Push, fetch and pull: copying what is missing between two repositories of the same format.

A remote is a vault repository on another backend. Copying follows one rule on both sides:
**objects first, then refs**. Objects travel in their stored encoding and are verified on the
way (a push re-hashes each object before it leaves; a fetch re-hashes each one before it is
stored); the receiving backend is synced; only then does a compare-and-swap move the refs. So
every state of either repository is valid, no ref ever names an object its repository lacks,
and a transfer killed at any instant resumes on the next run without sending again what arrived.

What a repository last saw of a remote is kept in its remote-tracking refs
(``remotes/NAME/<ref>``). They decide what is safe:

* **push** refuses when the remote has a version name this repository does not know (someone
  else pushed): the user pulls first. Refs the remote holds that this repository never saw are
  kept; refs it saw there and has since deleted are deleted there.
* **pull** brings the remote's new versions in under their names. Local versions never pushed
  are then placed on top of them, as a rebase: each gets a new version object (same tree, files,
  metadata; new parent) and, when its name was taken meanwhile, the next free name; tags and
  pins follow. A name the remote ever gave keeps its meaning.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from .. import codec
from ..errors import CorruptObject, ObjectMissing, RefConflict, RemoteError
from ..faults import crashpoint
from ..ids import Oid
from ..objects import KIND_FILE, FileManifest, Tree, Version
from ..progress import NullProgress, Progress
from ..refs import LATEST, PINS, REMOTES, VERSIONS, RefsDoc, Transaction, version_number
from ..store import ObjectStore
from .parts import Parts
from .walk import reach

CAS_RETRIES = 5
PARALLEL = 16
"""Objects in flight at once, each way."""
PACKED = 1 << 20
"""Objects stored in fewer bytes travel to a remote in packs (see ``docs/format.md``)."""


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
    """The refs that are this repository's own: all but remote-tracking refs."""
    return {k: v for k, v in doc.refs.items() if not k.startswith(REMOTES)}


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


class _Copier:
    """Copies objects from ``src`` to ``dst``, verified, :data:`PARALLEL` at a time.

    Args:
        verify_at_source: re-hash each object as read from ``src`` and hand ``dst`` the
            verified bytes (a push: decoding on the remote would read delta bases back over
            the network); else ``dst.put_raw`` verifies each object, a delta through its base,
            which is copied first (a fetch).
        pack: put objects smaller than :data:`PACKED` into packs on ``dst``.
    """

    def __init__(
        self, src: ObjectStore, dst: ObjectStore, *, verify_at_source: bool, pack: bool
    ) -> None:
        self.src = src
        self.dst = dst
        self.verify_at_source = verify_at_source
        self.writer = dst.pack_writer() if pack and hasattr(dst, "pack_writer") else None
        # An object store takes each object whole, at once, PARALLEL at a time: what arrived
        # stays when a push is cut off. A directory batches its fsyncs until the sync.
        self.defer = dst.backend.capabilities.local_root is not None
        self.objects = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def copy(self, oids: dict[Oid, int | None], progress: Progress) -> None:
        """Copy ``oids`` (id to content length, ``None`` for manifests), then publish the last
        pack and make everything durable on ``dst``."""
        if oids:
            progress.start("objects", len(oids))
            with ThreadPoolExecutor(PARALLEL) as pool:
                # At most a few objects per thread are in flight, so memory stays bounded.
                pending = list(oids.items())
                for start in range(0, len(pending), PARALLEL * 4):
                    batch = pending[start : start + PARALLEL * 4]
                    for _ in pool.map(lambda item: self.copy_one(*item), batch):
                        progress.advance(1)
            progress.finish()
        self.flush()

    def flush(self) -> None:
        """Publish the last pack, then make everything copied durable on ``dst``."""
        if self.writer is not None:
            self.writer.flush()
        self.dst.sync()

    def copy_one(self, oid: Oid, size: int | None, depth: int = 0) -> None:
        """Copy the object ``oid`` (of content length ``size`` when known)."""
        stored = self.src.raw(oid)
        if self.verify_at_source:
            self.src.verify_stored(oid, stored, size)
            if self.writer is not None and len(stored) < PACKED:
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
        _record_tracking(local, name, _pushed(ours, name, theirs, target), "push")
        return result
    with remote.writing() as lease:
        theirs = remote.refs.read()
        target = _push_target(ours, theirs, name)
        needed = _needed(local.store, set(own_refs(ours).values()), set(theirs.refs.values()))
        present = _present(remote.store, needed)
        missing = {oid: size for oid, size in needed.items() if oid not in present}
        result.skipped = len(needed) - len(missing)
        copier = _Copier(local.store, remote.store, verify_at_source=True, pack=True)
        copier.copy(missing, progress)
        crashpoint("push-synced")
        result.objects, result.bytes = copier.objects, copier.bytes
        reason = _reason("push from", socket.gethostname())
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
            raise RemoteError(f"the remote {name} kept changing under this push: try again")
    result.versions = _by_number(set(_versions(target.refs)) - set(_versions(theirs.refs)))
    _record_tracking(local, name, _pushed(ours, name, theirs, target), "push")
    return result


def _push_target(ours: RefsDoc, theirs: RefsDoc, name: str) -> RefsDoc:
    """The refs document the remote gets, or :class:`RemoteError` when it moved on."""
    seen = tracked(ours, name)
    mine = own_refs(ours)
    unknown = [
        ref[len(VERSIONS) :]
        for ref, oid in theirs.refs.items()
        if ref.startswith(VERSIONS) and mine.get(ref) != oid and seen.get(ref) != oid
    ]
    if unknown:
        raise RemoteError(
            f"the remote {name} has versions this repository lacks"
            f" ({', '.join(_by_number(unknown)[:5])}): run 'vault pull {name}' first"
        )
    # A local name the remote has given (its number is below the remote's next one) but does
    # not hold: given there to another version, or deleted there since this repository saw it.
    given = [
        ref[len(VERSIONS) :]
        for ref in mine
        if ref.startswith(VERSIONS)
        and ref not in theirs.refs
        and (version_number(ref[len(VERSIONS) :]) or 0) < theirs.next_version
        and ref not in seen
    ]
    if given:
        raise RemoteError(
            f"the remote {name} no longer holds {', '.join(_by_number(given)[:5])} as this"
            f" repository does: run 'vault pull {name}' first"
        )
    refs = dict(theirs.refs)
    pins = {k: dict(v) for k, v in theirs.pins.items()}
    for ref, oid in theirs.refs.items():
        if ref not in mine and seen.get(ref) == oid:  # deleted here since it was seen there
            del refs[ref]
            if ref.startswith(PINS):
                pins.pop(ref[len(PINS) :], None)
    for ref, oid in mine.items():
        there = theirs.refs.get(ref)
        if there is not None and there not in (oid, seen.get(ref)) and ref[:9] != VERSIONS:
            raise RemoteError(
                f"{ref} on the remote {name} moved since this repository last saw it:"
                f" run 'vault pull {name}' first"
            )
        refs[ref] = oid
        if ref.startswith(PINS):
            pins[ref[len(PINS) :]] = dict(ours.pins.get(ref[len(PINS) :], {}))
    return RefsDoc(refs, max(ours.next_version, theirs.next_version), pins)


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

    Ordered for the receiving side: chunks first, then file manifests, trees, versions.
    """
    known = {oid for oid in theirs if store.has(oid)}
    have = reach(store, known) if known else None
    want = reach(store, roots)
    out: dict[Oid, int | None] = {}
    skip = have.all() if have is not None else set()
    for oid, size in want.chunks.items():
        if oid not in skip:
            out[oid] = size
    for group in (want.files, want.trees, want.versions):
        for oid in sorted(group):
            if oid not in skip:
                out[oid] = None
    return out


def _present(store: ObjectStore, oids: dict[Oid, int | None]) -> set[Oid]:
    """Which of ``oids`` ``store`` holds already (by a listing when there are many)."""
    if len(oids) > 64:
        listed = {oid for oid, _ in store.list()}
        return {oid for oid in oids if oid in listed}
    return {oid for oid in oids if store.has(oid)}


def _pushed(ours: RefsDoc, name: str, theirs: RefsDoc, target: RefsDoc) -> dict[str, Oid]:
    """What the tracking refs hold after a push: this repository's refs as sent, without those
    it deleted there. Refs of other writers it has not fetched stay unseen, so that a pull
    still takes them in."""
    out = tracked(ours, name)
    for ref in theirs.refs.keys() - target.refs.keys():
        out.pop(ref, None)
    for ref in own_refs(ours):
        out[ref] = target.refs[ref]
    return out


def _record_tracking(local: Parts, name: str, theirs: dict[str, Oid], verb: str) -> None:
    """Make ``remotes/NAME/*`` hold ``theirs`` (the remote's refs as far as they are known)."""
    prefix = f"{REMOTES}{name}/"
    doc = local.refs.read()
    now = {prefix + k: v for k, v in theirs.items()}
    old = {k: v for k, v in doc.refs.items() if k.startswith(prefix)}
    if now == old:
        return
    with (
        local.writing() as lease,
        local.refs.transaction(_reason(verb, name), before_publish=lease.check) as txn,
    ):
        for ref in sorted(txn.doc.refs):
            if ref.startswith(prefix) and ref not in now:
                txn.delete(ref)
        for ref, oid in sorted(now.items()):
            if txn.get(ref) != oid:
                txn.set(ref, oid)


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
    progress = progress or NullProgress()
    result = TransferResult(name)
    before = tracked(local.refs.read(), name)
    theirs = remote.refs.read()
    with local.writing() as lease:
        copier = _Copier(remote.store, local.store, verify_at_source=False, pack=False)
        _fetch_objects(copier, set(theirs.refs.values()), progress)
        result.objects, result.bytes = copier.objects, copier.bytes
        lease.check()
    _record_tracking(local, name, theirs.refs, "fetch")
    result.versions = _by_number(
        n for n, oid in _versions(theirs.refs).items() if before.get(VERSIONS + n) != oid
    )
    return result


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
    """Fetch, then bring the remote's new versions, tags and pins into the local refs; local
    versions never pushed are placed after the remote's (see the module's docstring).

    ``versions`` lists the version names new here; ``renamed`` the local versions that moved.
    """
    before = tracked(local.refs.read(), name)
    fetched = fetch(local, remote, name, progress=progress)
    theirs = RefsDoc(tracked(local.refs.read(), name))
    remote_doc = remote.refs.read()
    result = TransferResult(name, fetched.objects, fetched.bytes)
    with (
        local.writing() as lease,
        local.refs.transaction(_reason("pull", name), before_publish=lease.check) as txn,
    ):
        result.versions, result.renamed = _integrate(local, txn, before, theirs.refs, remote_doc)
    return result


def _integrate(
    local: Parts,
    txn: Transaction,
    before: dict[str, Oid],
    theirs: dict[str, Oid],
    remote_doc: RefsDoc,
) -> tuple[list[str], dict[str, str]]:
    """Move the local refs in ``txn`` to take in the remote's refs ``theirs`` (``before``: what
    the tracking refs held before this fetch); return the new names and the renamed ones."""
    mine = own_refs(txn.doc)
    their_versions = _versions(theirs)
    my_versions = _versions(mine)
    their_oids = set(their_versions.values())
    # New: names the remote holds that this repository lacks, except those deleted here.
    new = _by_number(
        n
        for n, oid in their_versions.items()
        if my_versions.get(n) != oid and (n in my_versions or before.get(VERSIONS + n) != oid)
    )
    # Never pushed: local names the remote does not hold and never held (as far as seen).
    unpushed = [
        n
        for n in _by_number(my_versions)
        if my_versions[n] not in their_oids and before.get(VERSIONS + n) != my_versions[n]
    ]
    # They move after the remote's when it has new versions, or gave one of their names.
    given = any((version_number(n) or 0) < remote_doc.next_version for n in unpushed)
    rebase = bool(unpushed) and (bool(new) or given)
    txn.doc.next_version = max(txn.doc.next_version, remote_doc.next_version)
    moved: dict[Oid, Oid] = {}
    renamed: dict[str, str] = {}
    tip = theirs.get(LATEST)
    if rebase:
        for old_name in unpushed:
            txn.delete(VERSIONS + old_name, expected=my_versions[old_name])
    for n in new:
        txn.set(VERSIONS + n, their_versions[n])
    if rebase:
        # A rebase: each never-pushed version again, on top of the remote's latest, in order.
        for old_name in unpushed:
            old_oid = my_versions[old_name]
            version = local.store.get_version(old_oid)
            rest = tuple(moved.get(p, p) for p in version.parents[1:])
            parents = (tip, *rest) if tip is not None else rest
            name = txn.allocate_version_name()
            oid = local.store.put(replace(version, parents=parents, name=name).to_bytes()).oid
            txn.set(VERSIONS + name, oid)
            moved[old_oid] = tip = oid
            renamed[old_name] = name
        local.store.sync()  # the new version objects are durable before any ref names them
        for ref, oid in sorted(txn.doc.refs.items()):
            if oid in moved and not ref.startswith((REMOTES, VERSIONS)):
                if ref.startswith(PINS):
                    info = txn.doc.pins.get(ref[len(PINS) :], {})
                    txn.set_pin(ref[len(PINS) :], moved[oid], info, expected=oid)
                else:
                    txn.set(ref, moved[oid], expected=oid)
    if moved and tip is not None:
        txn.set(LATEST, tip)
    elif theirs.get(LATEST) is not None and _behind(mine, before):
        txn.set(LATEST, theirs[LATEST])
    # Names, tags, pins and base the remote moved or deleted since this repository last saw
    # them, unless they were moved here too (then this repository's move wins, and the next
    # push sends it).
    for ref in sorted(theirs.keys() | before.keys()):
        there, was = theirs.get(ref), before.get(ref)
        if ref == LATEST or there == was or mine.get(ref) != was:
            continue
        if ref.startswith(VERSIONS) and there is not None:
            continue  # new names are taken above
        if there is None:
            txn.delete(ref, expected=was)
        elif ref.startswith(PINS):
            txn.set_pin(ref[len(PINS) :], there, remote_doc.pins.get(ref[len(PINS) :], {}))
        else:
            txn.set(ref, there)
    return new, renamed


def _behind(mine: dict[str, Oid], before: dict[str, Oid]) -> bool:
    """Whether the local ``latest`` is still where the remote's was at the last fetch (or
    there is none): it then follows the remote's."""
    return mine.get(LATEST) is None or mine.get(LATEST) == before.get(LATEST)


def apply_clone(local: Parts, theirs: RefsDoc, name: str) -> list[str]:
    """Give a new, fetched repository the remote's refs as its own; return the version names."""
    with (
        local.writing() as lease,
        local.refs.transaction(_reason("clone", name), before_publish=lease.check) as txn,
    ):
        for ref, oid in sorted(theirs.refs.items()):
            if ref.startswith(PINS):
                txn.set_pin(ref[len(PINS) :], oid, theirs.pins.get(ref[len(PINS) :], {}))
            else:
                txn.set(ref, oid)
        txn.doc.next_version = max(txn.doc.next_version, theirs.next_version)
    return _by_number(_versions(theirs.refs))
