"""Commit: turn a file or directory into chunks, file manifests, a tree and a version.

Order of writes (see ``docs/format.md``): chunks and file manifests, then the tree, then a sync of
every directory written to; only then the version object and the refs transaction that names
it. A version is never visible before everything it reaches is durable. :func:`commit` is the
verb: it records a Trainer checkpoint's training metadata and stores attachments (training data,
snapshots) as trees of their own.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import meta as meta_mod
from ..chunking import Chunker
from ..errors import (
    BadValue,
    BrokenParent,
    EmptyCommit,
    PathNotFound,
    RefConflict,
    TagError,
    UnsupportedFile,
    VaultError,
)
from ..faults import crashpoint
from ..ids import Oid, is_oid_prefix
from ..ignore import Excluded, Rules, compact, tree_size
from ..memory import keep_large_buffers
from ..objects import (
    KIND_FILE,
    KIND_LINK,
    ChunkRef,
    FileManifest,
    Tree,
    TreeEntry,
    Version,
    canonical_json,
)
from ..progress import NullProgress, Progress
from ..refs import BASE, LATEST, TAGS, VERSIONS, RefsDoc, Transaction, now_iso, version_number
from ..revisions import RESERVED, check_name_free, check_tag_name, claim_name
from ..statcache import Stamp, StatCache, stamp_of
from ..store import ObjectStore
from .deltas import DeltaBases
from .names import is_reserved
from .parts import Parts


@dataclass(frozen=True)
class SourceEntry:
    """A file or link found under the committed path."""

    path: str  # relative, "/"-separated
    abspath: Path
    kind: str
    size: int
    mode: int
    target: str | None = None
    stamp: Stamp | None = None


@dataclass
class TreeResult:
    """What storing a tree cost.

    Attributes:
        tree: id of the stored tree.
        tree_obj: the tree itself.
        bytes: logical bytes of the files.
        new_bytes: logical bytes of chunks that were not stored before.
        stored_bytes: bytes written to the store (compressed), manifests included.
        chunks: chunks referenced (with repeats).
        new_chunks: chunks written.
        unchanged_files: files not read because the stat cache vouched for them.
    """

    tree: Oid
    tree_obj: Tree
    bytes: int = 0
    new_bytes: int = 0
    stored_bytes: int = 0
    chunks: int = 0
    new_chunks: int = 0
    unchanged_files: int = 0


def scan(
    source: Path,
    *,
    exclude: tuple[Path, ...] = (),
    rules: Rules | None = None,
    excluded: list[Excluded] | None = None,
) -> list[SourceEntry]:
    """List the files and links to commit from ``source`` (a file or a directory).

    Symlinks inside a directory are recorded as links, never followed. ``source`` itself is
    followed when it is a link, since the user named it. Directories in ``exclude`` (the
    repository itself, when it lies inside ``source``) are skipped, and so is every name
    reserved for the repository (``.vault`` and its spellings, see :mod:`vault.ops.names`), at
    any depth, whatever it is: checkout refuses them.

    Within a directory, a path ``rules`` leave out is skipped before it is looked at (a socket
    or a badly named file left out refuses nothing) and appended to ``excluded``, folded by
    :func:`vault.ignore.compact`; a directory left out is not walked unless some rule can
    re-include a path in it. A file named as ``source`` is committed whatever the rules say.

    Raises:
        PathNotFound: ``source`` does not exist.
        BadValue: ``source`` lies inside a directory of ``exclude`` (the repository), or is a
            file with a reserved name.
        UnsupportedFile: a fifo, socket or device file is found.
    """
    try:
        st = os.stat(source)
    except FileNotFoundError:
        raise PathNotFound(str(source)) from None
    real = os.path.realpath(source)
    for path in exclude:
        repo = os.path.realpath(path)
        if real == repo:
            raise BadValue("path", str(source), "is the repository itself, not files to commit")
        if real.startswith(repo.rstrip(os.sep) + os.sep):
            raise BadValue("path", str(source), f"lies inside the repository {path}")
    if stat.S_ISREG(st.st_mode):
        if is_reserved(source.name):
            raise BadValue("path", str(source), "its name is reserved for the repository")
        _check_name(str(source), source.name)
        return [
            SourceEntry(
                source.name, source, KIND_FILE, st.st_size, _perm(st.st_mode), None, stamp_of(st)
            )
        ]
    if not stat.S_ISDIR(st.st_mode):
        raise UnsupportedFile(str(source), _kind_name(st.st_mode))
    out: list[SourceEntry] = []
    skip = set()
    for path in exclude:
        with contextlib.suppress(OSError):
            est = os.stat(path)
            skip.add((est.st_dev, est.st_ino))
    left: list[Excluded] = []
    _walk(source, "", out, skip, rules if rules else None, left)
    out.sort(key=lambda e: e.path)
    if excluded is not None and left:
        excluded.extend(compact(left, [e.path for e in out]))
    return out


def _walk(
    folder: Path,
    prefix: str,
    out: list[SourceEntry],
    skip: set[tuple[int, int]],
    rules: Rules | None,
    left: list[Excluded],
) -> None:
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if is_reserved(entry.name):
            continue
        rel = prefix + entry.name
        if rules is not None and _left_out(entry, rel, rules, left):
            continue
        _check_name(entry.path, entry.name)
        st = entry.stat(follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            target = os.readlink(entry.path)
            _check_name(entry.path, target, what="link target")
            out.append(
                SourceEntry(rel, Path(entry.path), KIND_LINK, len(target.encode()), 0o777, target)
            )
        elif stat.S_ISDIR(mode):
            if (st.st_dev, st.st_ino) in skip:
                continue
            _walk(Path(entry.path), rel + "/", out, skip, rules, left)
        elif stat.S_ISREG(mode):
            out.append(
                SourceEntry(
                    rel, Path(entry.path), KIND_FILE, st.st_size, _perm(mode), None, stamp_of(st)
                )
            )
        else:
            raise UnsupportedFile(entry.path, _kind_name(mode))


def _left_out(entry: os.DirEntry[str], rel: str, rules: Rules, left: list[Excluded]) -> bool:
    """Whether ``rules`` leave ``entry`` out; if so, it is recorded in ``left``. A directory
    is matched as ``rel/``; when no rule can re-include what it holds, it is left out whole,
    else walked (its files are matched one by one)."""
    is_dir = entry.is_dir(follow_symlinks=False)
    found = rules.match(rel, is_dir)
    if is_dir:
        if found is None or rules.negates:
            return False
        files, size = tree_size(Path(entry.path))
        left.append(Excluded(rel + "/", *found, files, size))
        return True
    if found is None:
        return False
    size = entry.stat(follow_symlinks=False).st_size if entry.is_file(follow_symlinks=False) else 0
    left.append(Excluded(rel, *found, 1, size))
    return True


def _check_name(path: str, name: str, what: str = "file name") -> None:
    """Refuse, before anything is stored, a name that checkout could not write back."""
    if what == "file name" and "\\" in name:
        raise BadValue(what, path, "contains a backslash, which checkout refuses")
    try:
        name.encode()
    except UnicodeEncodeError:
        raise BadValue(what, path, "is not valid UTF-8") from None


def _perm(mode: int) -> int:
    """The permission bits vault records: rwx for user, group and others, never setuid/setgid."""
    return stat.S_IMODE(mode) & 0o777


def _kind_name(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special"


class _ChunkWriter:
    """Hashes, compresses and stores chunks on a small thread pool, in bounded memory."""

    def __init__(self, store: ObjectStore, progress: Progress, workers: int) -> None:
        self.store = store
        self.progress = progress
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vault-chunk")
        self.window: deque[Future[ChunkRef]] = deque()
        self.limit = workers * 3
        self.seen: set[Oid] = set()
        self.lock = threading.Lock()
        self.new_bytes = 0
        self.stored_bytes = 0
        self.new_chunks = 0

    def submit(self, data: bytes, width: int = 0, base: Oid | None = None) -> Future[ChunkRef]:
        while len(self.window) >= self.limit:
            self.window.popleft().result()
        fut = self.pool.submit(self._store, data, width, base)
        self.window.append(fut)
        return fut

    def submit_span(
        self, source: _Source, offset: int, length: int, width: int, base: Oid | None
    ) -> Future[ChunkRef]:
        """Like :meth:`submit`, with the read itself done on the pool: several reads are in
        flight at once, and no single thread copies every byte."""
        while len(self.window) >= self.limit:
            self.window.popleft().result()
        fut = self.pool.submit(self._read_and_store, source, offset, length, width, base)
        self.window.append(fut)
        return fut

    def _read_and_store(
        self, source: _Source, offset: int, length: int, width: int, base: Oid | None
    ) -> ChunkRef:
        try:
            data = os.pread(source.fd, length, offset)
        finally:
            source.done_one()
        if len(data) != length:
            raise OSError(f"{source.path}: file shrank while reading ({offset}+{len(data)})")
        return self._store(data, width, base)

    def _store(self, data: bytes, width: int, base: Oid | None) -> ChunkRef:
        res = self.store.put(data, width=width, base=base, defer=True)
        with self.lock:
            # A chunk repeated within the commit is counted once, even if two threads raced
            # to store it.
            if res.new and res.oid not in self.seen:
                self.new_bytes += res.size
                self.stored_bytes += res.stored
                self.new_chunks += 1
            self.seen.add(res.oid)
        self.progress.advance(len(data))
        return ChunkRef(res.oid, len(data))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Source:
    """A file open for the pool's reads; closed by the thread that reads its last span."""

    def __init__(self, path: Path, spans: int) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self._left = spans
        self._lock = threading.Lock()

    def done_one(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self.close()

    def close(self) -> None:
        with self._lock:
            fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def _cached_manifest(
    store: ObjectStore, cache: StatCache, entry: SourceEntry
) -> tuple[Oid, FileManifest] | None:
    """The manifest the stat cache records for ``entry``, if the file is unchanged, the manifest
    reads back intact and every chunk it lists looks intact (header, length and delta chain:
    :meth:`ObjectStore.looks_intact`); ``None`` means: read the file, which also replaces a
    damaged chunk."""
    if entry.stamp is None:
        return None
    oid = cache.lookup(os.path.abspath(entry.abspath), entry.stamp)
    if oid is None:
        return None
    try:
        manifest = store.get_file(oid)
    except VaultError:
        manifest = None
    if (
        manifest is None
        or manifest.size != entry.size
        or not all(store.looks_intact(c.oid, c.size) for c in manifest.chunks)
    ):
        cache.forget(os.path.abspath(entry.abspath))
        return None
    return oid, manifest


def store_tree(
    store: ObjectStore,
    entries: list[SourceEntry],
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    on_file: Callable[[SourceEntry], None] | None = None,
    deltas: DeltaBases | None = None,
    cache: StatCache | None = None,
    rehash: bool = False,
) -> TreeResult:
    """Store every entry's content and the tree that lists them; return the tree id and costs.

    With a stat ``cache``, a file whose inode, size, mtime and ctime are those recorded is not
    read: its recorded manifest is reused (unless ``rehash``; the cache is updated either way).
    The caller makes the objects durable with :meth:`ObjectStore.sync` before naming the tree,
    and saves the cache once the version is published.
    """
    keep_large_buffers()
    progress = progress or NullProgress()
    nworkers = workers or min(4, max(2, os.cpu_count() or 2))
    writer = _ChunkWriter(store, progress, nworkers)
    chunker: Chunker | None = None  # made on first use: an all-cached commit never imports it
    total = 0
    chunk_count = 0
    unchanged = 0
    sources: list[_Source] = []
    # Per file: the futures of its chunks, or the manifest the stat cache vouched for.
    pending: list[tuple[SourceEntry, list[Future[ChunkRef]] | tuple[Oid, FileManifest]]] = []
    tree_entries: list[TreeEntry] = []
    try:
        for entry in entries:
            if entry.kind == KIND_LINK:
                tree_entries.append(
                    TreeEntry(entry.path, KIND_LINK, size=entry.size, target=entry.target)
                )
                continue
            cached = (
                _cached_manifest(store, cache, entry) if cache is not None and not rehash else None
            )
            if cached is not None:
                unchanged += 1
                pending.append((entry, cached))
                progress.advance(entry.size)
                if on_file:
                    on_file(entry)
                continue
            futures = []
            layout = Chunker.layout(entry.abspath, entry.size)
            if layout is not None:
                # Only tensor pieces are delta-encoded: look for bases for safetensors only.
                bases = deltas.for_path(entry.path) if deltas is not None else None
                source = _Source(entry.abspath, len(layout))
                sources.append(source)
                for (offset, length), info in layout:
                    base = bases.get((info.tensor, info.index)) if bases and info else None
                    base_oid = (
                        deltas.usable(base.oid)
                        if deltas is not None and base is not None and base.size == length
                        else None
                    )
                    futures.append(
                        writer.submit_span(
                            source,
                            offset,
                            length,
                            info.width if info else 0,
                            base_oid,
                        )
                    )
            else:
                chunker = chunker or Chunker()
                for piece, _ in chunker.described_pieces(entry.abspath, entry.size):
                    futures.append(writer.submit(piece))
            pending.append((entry, futures))
            if on_file:
                on_file(entry)
        stored = 0
        for entry, work in pending:
            if isinstance(work, tuple):  # unchanged since the stat cache saw it
                file_oid, manifest = work
            else:
                manifest = FileManifest(tuple(f.result() for f in work))
                res = store.put(manifest.to_bytes(), defer=True)
                stored += res.stored
                file_oid = res.oid
                if cache is not None and entry.stamp is not None:
                    cache.record(os.path.abspath(entry.abspath), entry.stamp, file_oid)
            chunk_count += len(manifest.chunks)
            total += manifest.size
            tree_entries.append(
                TreeEntry(entry.path, KIND_FILE, size=manifest.size, mode=entry.mode, file=file_oid)
            )
    finally:
        writer.close()
        for source in sources:
            source.close()  # those a failure left open
    tree = Tree(tuple(sorted(tree_entries, key=lambda e: e.path)))
    res = store.put(tree.to_bytes(), defer=True)
    return TreeResult(
        tree=res.oid,
        tree_obj=tree,
        bytes=total,
        new_bytes=writer.new_bytes,
        stored_bytes=writer.stored_bytes + stored + res.stored,
        chunks=chunk_count,
        new_chunks=writer.new_chunks,
        unchanged_files=unchanged,
    )


# -- the verb: a tree, then a version published by a refs transaction ------------------------

COMMIT_RETRIES = 20
"""Times a commit re-parents its version when other writers keep moving ``latest``."""

STAT_CACHE = "cache/stat.json"
"""The stat cache, under a local repository's directory."""


@dataclass
class CommitResult:
    """A new version and what it cost.

    Attributes:
        version: its name (``v001``); ``None`` for an unnamed version (a backup).
        id: its id.
        tree: its tree id.
        files: number of entries.
        bytes: logical bytes.
        new_bytes: logical bytes of chunks not stored before.
        stored_bytes: bytes written to the store after compression.
        parents: parent version ids.
        tags: tags set by the commit.
        unchanged_files: files not read because their size, mtime, ctime and inode matched the
            stat cache (0 with ``rehash``).
        unchanged: no new version was made: the files equal ``latest``'s, which ``version``,
            ``id`` and ``parents`` then describe (``tags`` were set on it).
        excluded: the paths left out by rule (:class:`vault.ignore.Excluded` as JSON).
        warnings: what the user should know, e.g. a ``base_model`` that looks like a
            revision but names none.
    """

    version: str | None
    id: str
    tree: str
    files: int
    bytes: int
    new_bytes: int
    stored_bytes: int
    parents: list[str]
    tags: list[str]
    unchanged_files: int = 0
    unchanged: bool = False
    excluded: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


Paths = list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...]


def commit(
    parts: Parts,
    path: str | os.PathLike[str],
    message: str | None = None,
    *,
    description: str | None = None,
    tags: list[str] | tuple[str, ...] = (),
    meta: dict[str, Any] | None = None,
    progress: Progress | None = None,
    rehash: bool = False,
    name_version: bool = True,
    move_latest: bool = True,
    parents: list[Oid] | None = None,
    on_publish: Callable[[Transaction, Oid, Version], None] | None = None,
    data: Paths = (),
    store_data: bool = False,
    steps: int | None = None,
    loss: float | None = None,
    base_model: str | None = None,
    snapshots: str | os.PathLike[str] | None = None,
    exclude: list[str] | tuple[str, ...] = (),
    include: list[str] | tuple[str, ...] = (),
    ignore_files: bool = True,
    allow_empty: bool = False,
    run: str | None = None,
    record_run: bool = True,
    record_checkpoint: bool = True,
) -> CommitResult:
    """Store the file or directory ``path`` as a new version on top of its run's previous one.

    When ``path`` is a Hugging Face Trainer checkpoint directory (it holds
    ``trainer_state.json``), its step, last training and evaluation loss, learning curve and
    (from ``adapter_config.json``) base model are recorded; explicit arguments win. Every
    argument is checked before anything is stored. The objects are stored and synced under the
    writers' lease; then one refs transaction publishes the version, built again on top of what
    another writer published when ``latest`` moved (up to :data:`COMMIT_RETRIES` times).

    Args:
        parts: the repository's collaborators.
        path: the file or directory to store.
        message: what this version is (``description`` is the same, by the CLI's name
            for it; give one of the two).
        rehash: read every file even when the stat cache says it is unchanged.
        name_version: give the version the next ``vNNN`` name (a backup has none).
        move_latest: point ``latest`` at the new version.
        parents: the parent versions; default: the run's previous version (see ``run``).
        on_publish: called inside the refs transaction that publishes the version, with the
            transaction, the version id and the version, so callers can set more refs (a
            pin, ``base``) atomically with it.
        data: training data files: path, size and BLAKE3 are recorded.
        store_data: store the data files' bytes too (an attachment of the version).
        steps: training steps.
        loss: final training loss.
        base_model: a base model's name, or a revision of this repository (its id is
            recorded too when it resolves).
        snapshots: a directory of learning-progress snapshots, stored with the version.
        exclude: gitignore patterns of paths (within a committed directory) to leave out.
        include: gitignore patterns of paths to commit even when a ``.vaultignore`` or an
            ``exclude`` pattern leaves them out (see :mod:`vault.ignore`).
        ignore_files: read ``.vaultignore`` in the project folder (the folder holding the
            repository) and in the committed directory; internal commits (backups,
            consolidation) store a directory whole.
        run: the training run the version belongs to (recorded as ``training.run``); default:
            the name of the folder that holds ``path`` (a Trainer's ``output_dir``). A normal
            commit (named, moving ``latest``, no ``parents`` given) takes the run's previous
            version as its parent; a new run's first version has none. Backups and given
            ``parents`` record no run.
        record_run: ``False``: record no run even for a normal commit; its parent is
            ``latest`` (a consolidation outside any run).
        record_checkpoint: record the committed folder's name as ``training.checkpoint``
            (``False`` for a merged model: its folder is a scratch one).
        allow_empty: make a version even when nothing is left to commit, or when the files
            equal ``latest``'s. Without it, a normal commit (named, moving ``latest``, on
            top of it) whose tree equals ``latest``'s makes no version: the result says
            ``unchanged`` and describes ``latest``, ``tags`` are set on it, and nothing else
            given (description, metadata, data) is recorded.

    Raises:
        PathNotFound: ``path``, a data file or the snapshots directory does not exist.
        BadValue: a negative or non-integral step count, a loss that is not a finite number,
            a data path that is not a file, a snapshots path that is not a directory, a bad
            ``exclude`` or ``include`` pattern.
        EmptyCommit: nothing is left to commit and ``allow_empty`` is not set.
        BrokenParent: ``latest`` (or a given parent) is not a readable version; nothing a
            ref names is written.
    """
    if message is None:
        message = description
    elif description is not None and description != message:
        raise BadValue("description", description, "differs from the message given too")
    if message is None:
        raise BadValue("description", "", "a version needs a description (message)")
    canonical_json(dict(meta or {}))  # NaN and the like are refused before anything is stored
    tags = list(dict.fromkeys(tags))  # '--tag x --tag x' names one tag, not a conflict
    for t in tags:
        check_tag_name(t)
    existing = parts.refs.read()
    for t in tags:
        check_name_free(existing, t, "tag")
        if TAGS + t in existing.refs:
            raise TagError(
                f"tag {t} already exists (move it with 'vault tag --force')", kind="refused"
            )
    progress = progress or NullProgress()
    store = parts.store
    cache = (
        StatCache.load(parts.root / STAT_CACHE) if parts.root is not None else StatCache.memory()
    )

    warnings: list[str] = []
    in_run = record_run and name_version and move_latest and parents is None
    run_name = check_run_name(run if run is not None else default_run(path)) if in_run else None
    training = _training(
        parts,
        path,
        data=data,
        store_data=store_data,
        steps=steps,
        loss=loss,
        base_model=base_model,
        warnings=warnings,
    )
    if run_name is not None:
        training["run"] = run_name
        if record_checkpoint:
            training["checkpoint"] = Path(os.path.abspath(path)).name
    rules = Rules(
        Path(path),
        parts.project,
        exclude=exclude,
        include=include,
        ignore_files=ignore_files,
    )
    left: list[Excluded] = []
    entries = scan(Path(path), exclude=parts.guarded(path), rules=rules, excluded=left)
    if not entries and not allow_empty:
        raise EmptyCommit(os.fspath(path), sum(e.files for e in left))
    extra = _attachment_entries(parts, training, data, store_data, snapshots)
    may_skip = not allow_empty and name_version and move_latest and parents is None
    with parts.writing() as lease:
        every = [*entries, *(e for group in extra.values() for e in group)]
        progress.start("commit", sum(e.size for e in every if e.kind == KIND_FILE))
        try:
            start = existing.refs.get(LATEST)
            bases = tuple(o for o in (existing.refs.get(BASE),) if o is not None)
            deltas = DeltaBases(store, start, bases)
            stored = store_tree(
                store, entries, progress=progress, deltas=deltas, cache=cache, rehash=rehash
            )
            attachments: dict[str, Oid] = {}
            for role, group in extra.items():
                att = store_tree(store, group, progress=progress)
                attachments[role] = att.tree
                stored.new_bytes += att.new_bytes
                stored.stored_bytes += att.stored_bytes
            store.sync()
        except BaseException:
            store.discard()  # our temporary files; nothing was published
            raise
        finally:
            progress.finish()
        summary = message.splitlines()[0] if message else ""
        same: Version | None = None
        same_name: str | None = None
        for attempt in range(COMMIT_RETRIES):
            try:
                with parts.refs.transaction(
                    f"commit: {summary}", before_publish=lease.check
                ) as txn:
                    for t in tags:
                        claim_name(txn, t, "tag")
                        if txn.get(TAGS + t) is not None:
                            raise TagError(f"tag {t} already exists", kind="refused")
                    parent = txn.get(LATEST)
                    same = _same_tree(store, parent, stored.tree) if may_skip else None
                    if same is not None:
                        assert parent is not None
                        same_name = _name_of(txn.doc.names_for(VERSIONS), parent) or same.name
                        for t in tags:
                            txn.set(TAGS + t, parent, expected=None)
                        break
                    if move_latest and parent is not None and parent not in (parents or ()):
                        try:  # latest moves off it: a damaged latest must not be hidden
                            store.get_version(parent)
                        except VaultError as exc:
                            raise BrokenParent(LATEST, parent, exc.message) from None
                    if parents is not None:
                        version_parents = tuple(parents)
                    elif run_name is not None:
                        head = run_head(store, txn.doc, run_name)
                        version_parents = (head,) if head is not None else ()
                    elif move_latest and parent:
                        version_parents = (parent,)
                    else:
                        version_parents = ()
                    for p in version_parents:  # read now: a child names only versions
                        try:
                            store.get_version(p)
                        except VaultError as exc:
                            ref = LATEST if p == parent else "parent"
                            raise BrokenParent(ref, p, exc.message) from None
                    name = txn.allocate_version_name() if name_version else None
                    version = Version(
                        tree=stored.tree,
                        parents=version_parents,
                        message=message,
                        created=now_iso(),
                        name=name,
                        meta=dict(meta or {}),
                        size=stored.bytes,
                        files=stored.tree_obj.file_count,
                        training=training,
                        attachments=attachments,
                        excluded=[e.to_json() for e in left],
                    )
                    res = store.put(version.to_bytes(), compress=False)
                    store.sync()
                    crashpoint("version-written")
                    if name is not None:
                        txn.set(VERSIONS + name, res.oid, expected=None)
                    if move_latest:
                        txn.set(LATEST, res.oid, expected=parent)
                    for t in tags:
                        txn.set(TAGS + t, res.oid, expected=None)
                    if on_publish is not None:
                        on_publish(txn, res.oid, version)
                break
            except RefConflict:
                # Another writer moved latest (or took the name) after we read it: build
                # the version again on top of what it published.
                if attempt == COMMIT_RETRIES - 1:
                    raise
    cache.save()  # only now: the manifests it names are durable and named
    excluded = [e.to_json() for e in left]
    if same is not None:
        assert parent is not None
        return CommitResult(
            version=same_name,
            id=parent,
            tree=stored.tree,
            files=stored.tree_obj.file_count,
            bytes=stored.bytes,
            new_bytes=stored.new_bytes,
            stored_bytes=stored.stored_bytes,
            parents=list(same.parents),
            tags=list(tags),
            unchanged_files=stored.unchanged_files,
            unchanged=True,
            excluded=excluded,
            warnings=warnings,
        )
    return CommitResult(
        version=name,
        id=res.oid,
        tree=stored.tree,
        files=stored.tree_obj.file_count,
        bytes=stored.bytes,
        new_bytes=stored.new_bytes,
        stored_bytes=stored.stored_bytes + res.stored,
        parents=list(version.parents),
        tags=list(tags),
        unchanged_files=stored.unchanged_files,
        excluded=excluded,
        warnings=warnings,
    )


def default_run(path: str | os.PathLike[str]) -> str:
    """The run a commit of ``path`` belongs to when none is named: the name of the folder that
    holds it (``runs/exp1/checkpoint-300`` is in run ``exp1``)."""
    return Path(os.path.abspath(path)).parent.name or "/"


def check_run_name(name: str) -> str:
    """Return ``name`` if it can name a run: one line of printable text, 1 to 200 characters.

    Raises:
        BadValue: an empty name, a control character, or a name too long.
    """
    if not name or len(name) > 200 or not name.isprintable() or name != name.strip():
        raise BadValue(
            "run name", name, "use 1 to 200 printable characters, no leading or trailing space"
        )
    return name


def run_head(store: ObjectStore, refs: RefsDoc, run: str) -> Oid | None:
    """The newest named version of ``run`` (the highest version number whose
    ``training.run`` is ``run``), or ``None`` for a run with none yet.

    Versions are read newest first, so an active run's head is found in a read or two.

    Raises:
        BrokenParent: a version read on the way is not readable (it may be the run's head).
    """
    names = refs.names_for(VERSIONS)
    for name in sorted(names, key=lambda n: version_number(n) or 0, reverse=True):
        try:
            version = store.get_version(names[name])
        except VaultError as exc:
            # It may be the run's head: chaining past it would hide the damage.
            raise BrokenParent(name, names[name], exc.message) from None
        if version.training.get("run") == run:
            return names[name]
    return None


def _name_of(names: dict[str, Oid], oid: Oid) -> str | None:
    return next((name for name, found in sorted(names.items()) if found == oid), None)


def _same_tree(store: ObjectStore, latest: Oid | None, tree: Oid) -> Version | None:
    """``latest``'s version when its tree is ``tree`` (the commit would change nothing)."""
    if latest is None:
        return None
    try:
        version = store.get_version(latest)
    except VaultError:
        return None  # a broken latest: the commit goes on, and BrokenParent says why
    return version if version.tree == tree else None


def _training(
    parts: Parts,
    path: str | os.PathLike[str],
    *,
    data: Paths,
    store_data: bool,
    steps: int | None,
    loss: float | None,
    base_model: str | None,
    warnings: list[str],
) -> dict[str, Any]:
    """The ``training`` record of a new version: checkpoint values, overridden by arguments.

    A ``base_model`` given explicitly that names no version but looks like a revision (``v999``,
    ``latest``, ``REV~N``, an id prefix of 7 hex digits or more) is kept as a name, with a
    warning appended to ``warnings``: it is most likely a typo.
    """
    out: dict[str, Any] = {}
    checkpoint = meta_mod.read_checkpoint(path)
    if checkpoint is not None:
        out.update(
            steps=checkpoint.steps,
            loss=checkpoint.loss,
            eval_loss=checkpoint.eval_loss,
            base_model=checkpoint.base_model,
        )
        if checkpoint.curve:
            # The curve stays in the committed trainer_state.json; the version names it.
            out["curve"] = meta_mod.TRAINER_STATE
    if steps is not None:
        out["steps"] = meta_mod.check_steps(steps)
    if loss is not None:
        out["loss"] = meta_mod.check_loss(loss)
    if base_model is not None:
        if not isinstance(base_model, str) or not base_model.strip():
            raise BadValue("base model", base_model, "expected a name or a revision")
        out["base_model"] = base_model.strip()
    if out.get("base_model"):
        try:
            out["base_model_id"] = parts.resolve(out["base_model"])
        except VaultError as exc:  # else a model's name, not one of our versions
            if base_model is not None and looks_like_revision(out["base_model"]):
                warnings.append(
                    f"--base-model {out['base_model']} looks like a revision, but {exc.message};"
                    " recorded as a model name"
                )
    records: dict[str, dict[str, Any]] = {}
    for f in data:
        record = meta_mod.data_record(f, stored=store_data, project=parts.project)
        records.setdefault(record["path"], record)
    if records:
        out["data"] = list(records.values())
    return {k: v for k, v in out.items() if v is not None}


_ANCESTRY = re.compile(r".+~\d*\Z")


def looks_like_revision(text: str) -> bool:
    """Whether ``text`` reads as a revision rather than a model's name: a version name
    (``v999``), a reserved ref (``latest``, ``base``, ``HEAD``), ``NAME~N``, or an id prefix
    of at least 7 hex digits (git's shortest abbreviation). A tag-like word (``gpt2``) does
    not: most model names read that way."""
    text = text.strip()
    return bool(
        version_number(text) is not None
        or text in RESERVED
        or _ANCESTRY.match(text)
        or (len(text) >= 7 and is_oid_prefix(text.lower()))
    )


def _attachment_entries(
    parts: Parts,
    training: dict[str, Any],
    data: Paths,
    store_data: bool,
    snapshots: str | os.PathLike[str] | None,
) -> dict[str, list[SourceEntry]]:
    """The entries of the trees stored with the version, by role; counts ``snapshots``."""
    out: dict[str, list[SourceEntry]] = {}
    if store_data and training.get("data"):
        # A stored data file's tree path is its recorded path (an absolute one under
        # meta.OUTSIDE), so that files of the same name from different folders never collide.
        entries: dict[str, SourceEntry] = {}
        recorded: dict[str, str] = {}
        for f in data:
            (entry,) = scan(Path(f))
            path = meta_mod.data_path(f, parts.project)
            rel = meta_mod.data_tree_path(path)
            if recorded.setdefault(rel, path) != path:
                raise BadValue("--data", str(f), f"would be stored as {rel}, as {recorded[rel]} is")
            entries[rel] = replace(entry, path=rel)
        out["data"] = [entries[k] for k in sorted(entries)]
    if snapshots is not None:
        where = Path(snapshots)
        if where.exists() and not where.is_dir():
            raise BadValue("snapshots", str(snapshots), "is not a directory")
        found = scan(where, exclude=parts.local_paths())
        training["snapshots"] = len({e.path.split("/", 1)[0] for e in found})
        if found:
            out["snapshots"] = found
    return out
