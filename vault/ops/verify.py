"""Verify: re-read and re-hash every object the versions reach, and say which versions break.

Unlike a read that stops at the first bad object, verify streams every finding: each damaged or
missing object once, with the names of the versions it breaks, and each pack index that cannot
be used as it is (unreadable, or naming bytes its pack does not hold). Without ``read_data`` only
the structure is checked (as restic's ``check`` without ``--read-data``): versions, trees and file
manifests are still read and verified, but of a chunk only that it is stored with the declared
length, its delta bases too (:meth:`~vault.store.ObjectStore.looks_intact`), which on a remote
costs two small requests instead of a download.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import CorruptObject, ObjectMissing
from ..ids import Oid
from ..memory import keep_large_buffers
from ..objects import KIND_FILE, Version
from ..packs import PackDamage
from ..progress import NullProgress, Progress
from ..revisions import resolve
from ..store import ObjectStore
from .parts import Parts
from .stats import version_kinds
from .versions import version_names


@dataclass
class Damage:
    """One damaged object.

    Attributes:
        oid: the object's id.
        problem: ``missing`` or ``corrupt``.
        detail: what was found.
        versions: names (or ids) of the versions that reach it.
    """

    oid: Oid
    problem: str
    detail: str
    versions: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    """The outcome of a verify run.

    Attributes:
        versions: versions checked: ``named`` + ``backups`` + ``history`` + any other a ref
            keeps (a remote-tracking ref's).
        named: of them, versions with a name (a whole-repository verify only).
        backups: versions without a name that a pin keeps (a whole-repository verify only;
            see :func:`vault.ops.stats.version_kinds`).
        history: ancestors no ref keeps (deleted versions), of which only the record is read.
        objects: objects checked.
        bytes: bytes of chunks checked.
        damaged: damaged or missing objects.
        packs: pack indexes that cannot be used as they are (the objects they name that a
            version needs are in ``damaged`` too).
    """

    versions: int = 0
    named: int = 0
    backups: int = 0
    history: int = 0
    objects: int = 0
    bytes: int = 0
    damaged: list[Damage] = field(default_factory=list)
    packs: list[PackDamage] = field(default_factory=list)
    sizes: dict[Oid, int] = field(default_factory=dict)
    """The content length each damaged chunk's file manifest declares (for a repair)."""

    @property
    def ok(self) -> bool:
        """Whether everything checked was intact."""
        return not self.damaged and not self.packs


def verify_repository(
    parts: Parts,
    rev: str | None = None,
    *,
    progress: Progress | None = None,
    read_data: bool = True,
    workers: int = 2,
) -> VerifyReport:
    """Re-hash every object reachable from every ref, or from the version ``rev`` only.

    Every named version is a root; an ancestor no ref names (a deleted version) keeps only its
    record, so of those only the records are re-read (see :mod:`vault.ops.walk`).

    Args:
        read_data: re-hash every chunk; without it, only check that each is stored with the
            declared length (see the module).
        workers: threads checking chunks (more for a remote store, where each waits on the
            network).
    """
    refs = parts.refs.read()
    names, _ = version_names(refs)
    roots = set(refs.refs.values()) if rev is None else {resolve(rev, refs, parts.store)}
    report = verify(
        parts.store,
        roots,
        lambda oid: names.get(oid, oid[:12]),
        history=rev is None,
        progress=progress,
        read_data=read_data,
        workers=workers,
    )
    named, backups = version_kinds(refs)
    report.named, report.backups = len(named & roots), len(backups & roots)
    return report


def verify(
    store: ObjectStore,
    roots: Iterable[Oid],
    name_of: Callable[[Oid], str],
    *,
    history: bool = False,
    progress: Progress | None = None,
    workers: int = 2,
    read_data: bool = True,
) -> VerifyReport:
    """Check every object reachable from ``roots``.

    Args:
        store: the object store.
        roots: version ids to start from; each is checked with everything it reaches.
        name_of: how to name a version in the report.
        history: also re-read the records of the ancestors, which history runs through (their
            files are not looked for: gc keeps them only while a root does); damage found
            there is reported against the root it was reached from.
        progress: receives bytes of chunks checked.
        workers: threads reading and hashing chunks.
        read_data: re-hash every chunk; without it, only check that each is stored with the
            length its file manifest declares, and its delta bases too.
    """
    keep_large_buffers()
    progress = progress or NullProgress()
    report = VerifyReport()
    store.packs.refresh()  # every index as it is now, each checked against its pack
    report.packs = list(store.packs.damaged)
    bad: dict[Oid, Damage] = {}
    users: dict[Oid, set[Oid]] = defaultdict(set)  # object -> versions that need it
    chunk_sizes: dict[Oid, int] = {}

    def load(oid: Oid, loader, version: Oid):  # type: ignore[no-untyped-def]
        users[oid].add(version)
        if oid in bad:
            return None
        try:
            return loader(oid)
        except (CorruptObject, ObjectMissing) as exc:
            bad[oid] = _damage(oid, exc)
            return None

    seen_versions: set[Oid] = set()
    read: dict[Oid, Version] = {}
    file_chunks: dict[Oid, list[Oid]] = {}
    for vid in roots:
        if vid in seen_versions:
            continue
        seen_versions.add(vid)
        version = load(vid, store.get_version, vid)
        if version is None:
            continue
        read[vid] = version
        for tree_oid in version.trees():  # the files, then attached data and snapshots
            tree = load(tree_oid, store.get_tree, vid)
            if tree is None:
                continue
            for entry in tree.entries:
                if entry.kind != KIND_FILE or entry.file is None:
                    continue
                if entry.file not in file_chunks:
                    manifest = load(entry.file, store.get_file, vid)
                    file_chunks[entry.file] = []
                    if manifest is not None:
                        for c in manifest.chunks:
                            chunk_sizes[c.oid] = c.size
                            file_chunks[entry.file].append(c.oid)
                else:
                    users[entry.file].add(vid)
                for c in file_chunks[entry.file]:
                    users[c].add(vid)
    if history:
        kept = len(seen_versions)
        stack = [(parent, vid) for vid, version in read.items() for parent in version.parents]
        while stack:
            vid, root = stack.pop()
            if vid in seen_versions:
                continue
            seen_versions.add(vid)
            version = load(vid, store.get_version, root)
            if version is not None:
                stack.extend((parent, root) for parent in version.parents)
        report.history = len(seen_versions) - kept
    report.versions = len(seen_versions)

    progress.start("verify", sum(chunk_sizes.values()))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vault-verify") as pool:
        window: deque[tuple[Oid, Future[int]]] = deque()

        def drain_one() -> None:
            oid, fut = window.popleft()
            try:
                n = fut.result()
            except (CorruptObject, ObjectMissing) as exc:
                bad[oid] = _damage(oid, exc)
                return
            report.bytes += n
            progress.advance(n)

        check = _read_chunk if read_data else _look_at_chunk
        for oid, size in chunk_sizes.items():
            window.append((oid, pool.submit(check, store, oid, size)))
            if len(window) >= workers * 3:
                drain_one()
        while window:
            drain_one()
    progress.finish()

    report.objects = len(users)
    for oid, damage in sorted(bad.items()):
        damage.versions = sorted({name_of(v) for v in users.get(oid, ())})
        report.damaged.append(damage)
        if oid in chunk_sizes:
            report.sizes[oid] = chunk_sizes[oid]
    return report


def _read_chunk(store: ObjectStore, oid: Oid, size: int) -> int:
    return len(store.get(oid, size=size))


def _look_at_chunk(store: ObjectStore, oid: Oid, size: int) -> int:
    if store.looks_intact(oid, size):
        return size
    if not store.has(oid):
        raise ObjectMissing(oid)
    raise CorruptObject(
        oid, why="stored with a wrong header or length, or a delta base is missing or damaged"
    )


def _damage(oid: Oid, exc: Exception) -> Damage:
    if isinstance(exc, ObjectMissing):
        return Damage(oid, "missing", "object file is missing")
    assert isinstance(exc, CorruptObject)
    detail = f"content hashes to {exc.actual}" if exc.actual else exc.message.split(": ", 1)[-1]
    return Damage(oid, "corrupt", detail)
