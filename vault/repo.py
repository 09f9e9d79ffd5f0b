"""The repository: one object store and one ref store in a directory, and the verbs over them.

This is the Python API the command line is built on; every method returns plain dataclasses
carrying the same data ``--json`` prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backend import LocalBackend
from .errors import (
    CorruptObject,
    RepoExists,
    RepoNotFound,
    TagError,
    UnknownRevision,
    UnsupportedFormat,
)
from .faults import crashpoint
from .fsutil import atomic_write
from .ids import Oid
from .lock import file_lock
from .objects import KIND_FILE, Version
from .ops import gc as gc_op
from .ops.walk import reach
from .progress import NullProgress, Progress
from .refs import LATEST, TAGS, VERSIONS, RefsDoc, RefStore, Transaction, now_iso
from .revisions import check_tag_name, resolve
from .store import ObjectStore

if TYPE_CHECKING:
    from .ops.checkout import CheckoutResult
    from .ops.verify import VerifyReport

# The verbs that need thread pools and chunkers are imported where they are used, so that a
# short command such as 'vault log' starts quickly.

FORMAT = 1
"""The repository format this release writes and reads (see ``docs/format.md``)."""

REPO_DIRNAME = ".vault"
CONFIG = "config.json"


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


@dataclass
class FileInfo:
    """One entry of a version's file list."""

    path: str
    size: int
    id: str | None
    kind: str = KIND_FILE
    mode: int | None = None
    target: str | None = None


@dataclass
class VersionInfo:
    """A version as ``log`` and ``show`` describe it."""

    version: str | None
    id: str
    message: str
    created: str
    tags: list[str]
    meta: dict[str, Any]
    parents: list[str]
    bytes: int
    file_count: int
    tree: str
    files: list[FileInfo] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``--json`` prints (``files`` only when listed)."""
        d = asdict(self)
        if self.files is None:
            del d["files"]
        return d


@dataclass
class GcResult:
    """What gc removed (or would remove with ``dry_run``)."""

    objects: int
    bytes: int
    dry_run: bool
    grace_seconds: float
    reachable: int
    kept_young: int
    temp_files: int


@dataclass
class Stats:
    """Sizes of the repository."""

    versions: int
    logical_bytes: int
    unique_bytes: int
    stored_bytes: int
    chunks: int
    objects: int
    dedup_ratio: float
    compression_ratio: float


@dataclass
class TagInfo:
    """A tag and the version it names."""

    name: str
    id: str
    version: str | None


class Repository:
    """A vault repository.

    Use :meth:`init` to create one, :meth:`open` or :meth:`find` to open one.

    Args:
        root: the repository directory (the ``.vault`` folder itself).
        lock_timeout: seconds to wait for another writer before :class:`LockTimeout`.
    """

    def __init__(self, root: Path, *, lock_timeout: float | None = None) -> None:
        self.root = Path(root)
        self.backend = LocalBackend(self.root)
        self.store = ObjectStore(self.backend)
        self.refs = RefStore(self.root, lock_timeout=lock_timeout)
        self.lock_timeout = lock_timeout

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def init(cls, path: str | os.PathLike[str], **kwargs: Any) -> Repository:
        """Create a repository in the directory ``path`` (created if needed) and open it."""
        root = Path(path)
        if (root / CONFIG).exists():
            raise RepoExists(str(root))
        if root.exists() and not root.is_dir():
            raise RepoExists(str(root))
        for sub in ("objects", "logs", "locks", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        repo = cls(root, **kwargs)
        if not repo.refs.path.exists():
            repo.refs.initialise()
        # The config file is written last: its presence marks a complete repository.
        atomic_write(root / CONFIG, json.dumps({"format": FORMAT}, indent=2).encode() + b"\n")
        return repo

    @classmethod
    def open(cls, path: str | os.PathLike[str], **kwargs: Any) -> Repository:
        """Open the repository whose directory is ``path``."""
        root = Path(path)
        try:
            config = json.loads((root / CONFIG).read_bytes())
        except FileNotFoundError:
            raise RepoNotFound(str(root)) from None
        except (OSError, ValueError) as exc:
            raise RepoNotFound(f"{root} ({exc})") from None
        found = config.get("format") if isinstance(config, dict) else None
        if found != FORMAT:
            raise UnsupportedFormat(str(root), found, FORMAT)
        repo = cls(root, **kwargs)
        if not repo.refs.path.exists():
            # init writes refs.json before config.json: a lost refs.json is damage, not an empty
            # repository (gc would otherwise remove every object).
            raise CorruptObject("refs.json", why="the file is missing")
        return repo

    @classmethod
    def find(cls, start: str | os.PathLike[str] | None = None, **kwargs: Any) -> Repository:
        """Open ``$VAULT_DIR``, else the nearest ``.vault`` walking up from ``start`` (or cwd)."""
        env = os.environ.get("VAULT_DIR")
        if env:
            return cls.open(env, **kwargs)
        here = Path(start or os.getcwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / REPO_DIRNAME / CONFIG).exists():
                return cls.open(folder / REPO_DIRNAME, **kwargs)
        raise RepoNotFound(f"{here} or any parent")

    # -- locking -----------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Held by every writer: excludes a concurrent gc, not other writers."""
        with file_lock(self.root / "locks" / "gc.lock", shared=True, timeout=self.lock_timeout):
            yield

    # -- revisions ---------------------------------------------------------------------------

    def resolve(self, rev: str) -> Oid:
        """The id of the version ``rev`` names (``v007``, a tag, ``latest~2``, an id prefix)."""
        return resolve(rev, self.refs.read(), self.store)

    def _version_names(self, refs: RefsDoc) -> tuple[dict[Oid, str], dict[Oid, list[str]]]:
        names: dict[Oid, str] = {}
        tags: dict[Oid, list[str]] = {}
        for key, oid in refs.refs.items():
            if key.startswith(VERSIONS):
                names[oid] = key[len(VERSIONS) :]
            elif key.startswith(TAGS):
                tags.setdefault(oid, []).append(key[len(TAGS) :])
        return names, tags

    # -- commit ------------------------------------------------------------------------------

    def commit(
        self,
        path: str | os.PathLike[str],
        message: str,
        *,
        tags: list[str] | tuple[str, ...] = (),
        meta: dict[str, Any] | None = None,
        progress: Progress | None = None,
        rehash: bool = False,
        name_version: bool = True,
        move_latest: bool = True,
        parents: list[Oid] | None = None,
        on_publish: Callable[[Transaction, Oid, Version], None] | None = None,
    ) -> CommitResult:
        """Store the file or directory ``path`` as a new version on top of ``latest``.

        Args:
            rehash: read every file even when the stat cache says it is unchanged.
            name_version: give the version the next ``vNNN`` name (a backup has none).
            move_latest: point ``latest`` at the new version.
            parents: the parent versions; default ``[latest]`` when ``move_latest``, else none.
            on_publish: called inside the refs transaction that publishes the version, with the
                transaction, the version id and the version, so callers can set more refs (a
                pin, ``base``) atomically with it.
        """
        tags = list(dict.fromkeys(tags))  # '--tag x --tag x' names one tag, not a conflict
        for t in tags:
            check_tag_name(t)
        existing = self.refs.read()
        for t in tags:
            if TAGS + t in existing.refs:
                raise TagError(f"tag {t} already exists (move it with 'vault tag --force')")
        progress = progress or NullProgress()
        from .ops import commit as commit_op

        entries = commit_op.scan(Path(path), exclude=(self.root,))
        with self._writing():
            progress.start("commit", sum(e.size for e in entries if e.kind == KIND_FILE))
            try:
                stored = commit_op.store_tree(self.store, entries, progress=progress)
            finally:
                progress.finish()
            self.store.sync()
            summary = message.splitlines()[0] if message else ""
            with self.refs.transaction(f"commit: {summary}") as txn:
                for t in tags:
                    if txn.get(TAGS + t) is not None:
                        raise TagError(f"tag {t} already exists")
                parent = txn.get(LATEST)
                if parents is not None:
                    version_parents = tuple(parents)
                elif move_latest and parent:
                    version_parents = (parent,)
                else:
                    version_parents = ()
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
                )
                res = self.store.put(version.to_bytes(), compress=False)
                self.store.sync()
                crashpoint("version-written")
                if name is not None:
                    txn.set(VERSIONS + name, res.oid, expected=None)
                if move_latest:
                    txn.set(LATEST, res.oid, expected=parent)
                for t in tags:
                    txn.set(TAGS + t, res.oid, expected=None)
                if on_publish is not None:
                    on_publish(txn, res.oid, version)
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
        )

    # -- reading -----------------------------------------------------------------------------

    def _info(
        self, oid: Oid, version: Version, tags: dict[Oid, list[str]], names: dict[Oid, str]
    ) -> VersionInfo:
        return VersionInfo(
            version=names.get(oid, version.name),
            id=oid,
            message=version.message,
            created=version.created,
            tags=sorted(tags.get(oid, [])),
            meta=version.meta,
            parents=list(version.parents),
            bytes=version.size,
            file_count=version.files,
            tree=version.tree,
        )

    def log(self, rev: str | None = None, *, limit: int | None = None) -> list[VersionInfo]:
        """History from ``rev`` (default ``latest``), newest first, following first parents."""
        refs = self.refs.read()
        if rev is None and LATEST not in refs.refs:
            return []
        oid: Oid | None = resolve(rev or LATEST, refs, self.store)
        names, tags = self._version_names(refs)
        out: list[VersionInfo] = []
        while oid is not None and (limit is None or len(out) < limit):
            version = self.store.get_version(oid)
            out.append(self._info(oid, version, tags, names))
            oid = version.parents[0] if version.parents else None
        return out

    def show(self, rev: str) -> VersionInfo:
        """A version with its file list."""
        refs = self.refs.read()
        oid = resolve(rev, refs, self.store)
        names, tags = self._version_names(refs)
        version = self.store.get_version(oid)
        info = self._info(oid, version, tags, names)
        tree = self.store.get_tree(version.tree)
        info.files = [
            FileInfo(
                e.path, e.size, e.file, e.kind, e.mode if e.kind == KIND_FILE else None, e.target
            )
            for e in tree.entries
        ]
        return info

    def checkout(
        self,
        rev: str,
        dest: str | os.PathLike[str],
        *,
        force: bool = False,
        progress: Progress | None = None,
    ) -> CheckoutResult:
        """Write the files of ``rev`` under ``dest``, verified; see :func:`vault.ops.checkout`."""
        oid = self.resolve(rev)
        tree = self.store.get_tree(self.store.get_version(oid).tree)
        from .ops import checkout as checkout_op

        return checkout_op.checkout(self.store, tree, Path(dest), force=force, progress=progress)

    # -- tags --------------------------------------------------------------------------------

    def tags(self) -> list[TagInfo]:
        """Every tag, by name."""
        refs = self.refs.read()
        names, _ = self._version_names(refs)
        return [TagInfo(n, oid, names.get(oid)) for n, oid in sorted(refs.names_for(TAGS).items())]

    def tag(self, name: str, rev: str, *, force: bool = False) -> TagInfo:
        """Name the version ``rev`` with the tag ``name``; moving a tag needs ``force``."""
        check_tag_name(name)
        oid = self.resolve(rev)
        with self._writing(), self.refs.transaction(f"tag {name}") as txn:
            old = txn.get(TAGS + name)
            if old is not None and not force:
                raise TagError(f"tag {name} already exists (use --force to move it)")
            txn.set(TAGS + name, oid, expected=old)
        names, _ = self._version_names(self.refs.read())
        return TagInfo(name, oid, names.get(oid))

    def untag(self, name: str) -> TagInfo:
        """Remove the tag ``name``."""
        with self._writing(), self.refs.transaction(f"untag {name}") as txn:
            old = txn.get(TAGS + name)
            if old is None:
                raise TagError(f"no such tag: {name}")
            txn.delete(TAGS + name, expected=old)
        return TagInfo(name, old, None)

    # -- maintenance -------------------------------------------------------------------------

    def roots(self) -> set[Oid]:
        """Every version a ref points at."""
        return set(self.refs.read().refs.values())

    def gc(
        self,
        *,
        grace: float | str = gc_op.DEFAULT_GRACE,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> GcResult:
        """Remove unreachable objects older than ``grace`` (seconds or a duration string)."""
        seconds = gc_op.parse_duration(grace) if isinstance(grace, str) else float(grace)

        def run() -> gc_op.GcPlan:
            import time

            history = self.refs.recent_ids(time.time() - seconds)
            p = gc_op.plan(self.store, self.backend, self.roots(), seconds, history=history)
            if not dry_run:
                gc_op.execute(self.store, p, progress)
            return p

        if dry_run:
            p = run()
        else:
            with file_lock(self.root / "locks" / "gc.lock", timeout=self.lock_timeout):
                p = run()
        return GcResult(
            p.objects, p.bytes, dry_run, seconds, p.reachable, p.young, len(p.temp_files)
        )

    def verify(self, rev: str | None = None, *, progress: Progress | None = None) -> VerifyReport:
        """Re-hash every object reachable from every ref, or from the version ``rev`` only."""
        refs = self.refs.read()
        names, _ = self._version_names(refs)
        if rev is None:
            roots, ancestors = set(refs.refs.values()), True
        else:
            roots, ancestors = {self.resolve(rev)}, False
        from .ops import verify as verify_op

        return verify_op.verify(
            self.store,
            roots,
            lambda oid: names.get(oid, oid[:12]),
            ancestors=ancestors,
            progress=progress,
        )

    def stats(self) -> Stats:
        """Versions, logical and stored sizes, dedup and compression ratios."""
        refs = self.refs.read()
        named = set(refs.names_for(VERSIONS).values())
        r = reach(self.store, set(refs.refs.values()))
        logical = sum(self.store.get_version(v).size for v in named)
        unique = sum(r.chunks.values())
        stored = 0
        chunk_stored = 0
        objects = 0
        for oid, st in self.store.list():
            objects += 1
            stored += st.size
            if oid in r.chunks:
                chunk_stored += st.size
        return Stats(
            versions=len(named),
            logical_bytes=logical,
            unique_bytes=unique,
            stored_bytes=stored,
            chunks=len(r.chunks),
            objects=objects,
            dedup_ratio=round(logical / unique, 4) if unique else 1.0,
            compression_ratio=round(unique / chunk_stored, 4) if chunk_stored else 1.0,
        )

    def unknown(self, rev: str) -> UnknownRevision:
        """An :class:`UnknownRevision` for ``rev`` (helper for callers)."""
        return UnknownRevision(rev)
