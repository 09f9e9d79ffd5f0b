"""The repository: one object store and one ref store in a directory, and the verbs over them.

This is the Python API the command line is built on; every method returns plain dataclasses
carrying the same data ``--json`` prints.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backend import Backend, LocalBackend
from .errors import (
    BadValue,
    CorruptObject,
    NotConfirmed,
    ObjectMissing,
    PinError,
    PreconditionFailed,
    RefConflict,
    RepoExists,
    RepoNotFound,
    TagError,
    UnknownRevision,
    UnsupportedFormat,
    VaultError,
)
from .faults import crashpoint
from .ids import Oid
from .leases import EXCLUSIVE, SHARED, Lease, Leases
from .objects import KIND_FILE, Version, canonical_json
from .ops import gc as gc_op
from .ops import pins as pins_op
from .ops.pins import CleanupPlan, DeleteResult, PinInfo
from .ops.versions import check_files_kept, pin_names, version_names, version_tree
from .ops.walk import reach
from .progress import NullProgress, Progress
from .refs import BASE, LATEST, PINS, TAGS, VERSIONS, RefsDoc, RefStore, Transaction, now_iso
from .revisions import check_tag_name, resolve
from .store import ObjectStore

if TYPE_CHECKING:
    from .ops.checkout import CheckoutResult
    from .ops.consolidate import ConsolidateResult
    from .ops.diff import DiffResult
    from .ops.restore import RestoreResult
    from .ops.verify import VerifyReport

# The verbs that need thread pools and chunkers are imported where they are used, so that a
# short command such as 'vault log' starts quickly.

FORMAT = 3
"""The repository format this release writes (see ``docs/format.md``)."""

READABLE_FORMATS = (1, 2, 3)
"""Formats this release opens. Format 1 lacks byte-plane and delta chunks (codec 2), pins and
version metadata; format 2 locks with ``flock`` and keeps its reflog in one appended file. The
first write to an older repository records format 3, since an older writer would neither see
this release's lease locks nor could a format-1 reader read what is then written."""

COMMIT_RETRIES = 20
"""Times a commit re-parents its version when other writers keep moving ``latest``."""

REPO_DIRNAME = ".vault"
STAT_CACHE = "cache/stat.json"
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
        unchanged_files: files not read because their size, mtime, ctime and inode matched the
            stat cache (0 with ``rehash``).
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
    """A version as ``log`` and ``show`` describe it.

    The training metadata (``steps`` to ``snapshots``) is ``None`` (``[]`` for ``data``) when
    the version does not record it; ``description`` repeats ``message``. ``curve`` (the learning
    curve: the Trainer's ``log_history`` entries) is read by ``show`` only.
    """

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
    description: str = ""
    steps: int | None = None
    loss: float | None = None
    eval_loss: float | None = None
    base_model: str | None = None
    base_model_id: str | None = None
    data: list[dict[str, Any]] = field(default_factory=list)
    snapshots: int | None = None
    pins: list[str] = field(default_factory=list)
    curve: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.description = self.description or self.message

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``--json`` prints (``files`` and ``curve`` only when read)."""
        d = asdict(self)
        if self.files is None:
            del d["files"]
        if self.curve is None:
            del d["curve"]
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

    def __init__(
        self, where: str | os.PathLike[str] | Backend, *, lock_timeout: float | None = None
    ) -> None:
        if isinstance(where, (str, os.PathLike)):
            self.backend: Backend = LocalBackend(Path(where))
        else:
            self.backend = where
        local = self.backend.capabilities.local_root
        self.root = Path(local) if local is not None else None
        self.store = ObjectStore(self.backend)
        self.refs = RefStore(self.backend)
        self.locks = Leases(self.backend, timeout=lock_timeout)
        self.lock_timeout = lock_timeout
        self.format = FORMAT

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str] | Backend,
        *,
        workdir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Repository:
        """Create a repository in the directory ``path`` (created if needed), or on a backend,
        and open it.

        Args:
            workdir: the working directory ``restore`` writes into when given no destination
                (e.g. ``current_model/``); recorded in ``config.json``.
        """
        if isinstance(path, (str, os.PathLike)):
            root = Path(path)
            if root.exists() and not root.is_dir():
                raise RepoExists(str(root))
            for sub in ("objects", "logs", "locks", "tmp"):
                (root / sub).mkdir(parents=True, exist_ok=True)
        repo = cls(path, **kwargs)
        if repo.backend.stat(CONFIG) is not None:
            raise RepoExists(repo.describe())
        repo.refs.initialise()
        config: dict[str, Any] = {"format": FORMAT}
        if workdir is not None:
            if repo.root is None:
                raise BadValue("workdir", str(workdir), "only a local repository records one")
            config["workdir"] = _workdir_for_config(repo.root, Path(workdir))
        # The config file is written last: its presence marks a complete repository.
        try:
            repo.backend.put_if_absent(CONFIG, _config_bytes(config))
        except PreconditionFailed:
            raise RepoExists(repo.describe()) from None
        return repo

    def _local_paths(self) -> tuple[Path, ...]:
        """The repository's directory, when it has one: what commit never reads and restore
        never touches."""
        return (self.root,) if self.root is not None else ()

    def describe(self) -> str:
        """Where the repository is, for messages: its directory, or its backend's name."""
        return str(self.root) if self.root is not None else self.backend.capabilities.name

    def describe_abs(self) -> str:
        """:meth:`describe` with the directory made absolute."""
        return str(self.root.resolve()) if self.root is not None else self.describe()

    def _config(self) -> dict[str, Any]:
        try:
            config = json.loads(self.backend.get(CONFIG))
        except FileNotFoundError:
            raise RepoNotFound(self.describe()) from None
        except (OSError, ValueError) as exc:
            raise RepoNotFound(f"{self.describe()} ({exc})") from None
        if not isinstance(config, dict):
            raise RepoNotFound(f"{self.describe()} (config.json is not a JSON object)")
        return config

    @property
    def workdir(self) -> Path | None:
        """The working directory recorded by ``init --workdir``, or ``None``."""
        try:
            found = self._config().get("workdir")
        except RepoNotFound:
            return None
        if self.root is None or not isinstance(found, str) or not found:
            return None
        return Path(os.path.abspath(self.root.parent / found))

    @classmethod
    def open(cls, path: str | os.PathLike[str] | Backend, **kwargs: Any) -> Repository:
        """Open the repository whose directory is ``path``, or that lives on a backend."""
        repo = cls(path, **kwargs)
        found = repo._config().get("format")
        if found not in READABLE_FORMATS:
            raise UnsupportedFormat(repo.describe(), found, FORMAT)
        repo.format = found
        if not repo.refs.exists():
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
    def _writing(self) -> Iterator[Lease]:
        """Held by every writer: excludes a concurrent gc, not other writers. Yields the lease,
        whose :meth:`~vault.locks.Lease.check` a writer calls before it publishes refs."""
        with self.locks.hold(SHARED) as lease:
            if self.format < FORMAT:
                self._upgrade_format()
            yield lease

    def _upgrade_format(self) -> None:
        """Record the current format before writing anything an older release cannot read."""
        data, etag = self.backend.get_versioned(CONFIG)
        config = json.loads(data)
        if config.get("format", FORMAT) < FORMAT:
            config["format"] = FORMAT
            with contextlib.suppress(PreconditionFailed):  # another writer upgraded it first
                self.backend.put_if_match(CONFIG, _config_bytes(config), etag)
        self.format = FORMAT

    # -- revisions ---------------------------------------------------------------------------

    def resolve(self, rev: str) -> Oid:
        """The id of the version ``rev`` names (``v007``, a tag, ``latest~2``, an id prefix)."""
        return resolve(rev, self.refs.read(), self.store)

    # -- commit ------------------------------------------------------------------------------

    def commit(
        self,
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
        data: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...] = (),
        store_data: bool = False,
        steps: int | None = None,
        loss: float | None = None,
        base_model: str | None = None,
        snapshots: str | os.PathLike[str] | None = None,
    ) -> CommitResult:
        """Store the file or directory ``path`` as a new version on top of ``latest``.

        When ``path`` is a Hugging Face Trainer checkpoint directory (it holds
        ``trainer_state.json``), its step, last training and evaluation loss, learning curve and
        (from ``adapter_config.json``) base model are recorded; explicit arguments win. Every
        argument is checked before anything is stored.

        Args:
            message: what this version is (``description`` is the same, by the CLI's name
                for it; give one of the two).
            rehash: read every file even when the stat cache says it is unchanged.
            name_version: give the version the next ``vNNN`` name (a backup has none).
            move_latest: point ``latest`` at the new version.
            parents: the parent versions; default ``[latest]`` when ``move_latest``, else none.
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

        Raises:
            PathNotFound: ``path``, a data file or the snapshots directory does not exist.
            BadValue: a negative or non-integral step count, a loss that is not a finite number,
                a data path that is not a file, a snapshots path that is not a directory.
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
        existing = self.refs.read()
        for t in tags:
            if TAGS + t in existing.refs:
                raise TagError(f"tag {t} already exists (move it with 'vault tag --force')")
        progress = progress or NullProgress()
        from .ops import commit as commit_op
        from .ops.deltas import DeltaBases
        from .statcache import StatCache

        cache = (
            StatCache.load(self.root / STAT_CACHE) if self.root is not None else StatCache.memory()
        )

        training = self._training(
            path, data=data, store_data=store_data, steps=steps, loss=loss, base_model=base_model
        )
        entries = commit_op.scan(Path(path), exclude=self._local_paths())
        extra = self._attachment_entries(training, data, store_data, snapshots)
        with self._writing() as lease:
            every = [*entries, *(e for group in extra.values() for e in group)]
            progress.start("commit", sum(e.size for e in every if e.kind == KIND_FILE))
            try:
                start = existing.refs.get(LATEST)
                bases = tuple(o for o in (existing.refs.get(BASE),) if o is not None)
                deltas = DeltaBases(self.store, start, bases)
                stored = commit_op.store_tree(
                    self.store,
                    entries,
                    progress=progress,
                    deltas=deltas,
                    cache=cache,
                    rehash=rehash,
                )
                attachments: dict[str, Oid] = {}
                for role, group in extra.items():
                    att = commit_op.store_tree(self.store, group, progress=progress)
                    attachments[role] = att.tree
                    stored.new_bytes += att.new_bytes
                    stored.stored_bytes += att.stored_bytes
                self.store.sync()
            except BaseException:
                self.store.discard()  # our temporary files; nothing was published
                raise
            finally:
                progress.finish()
            summary = message.splitlines()[0] if message else ""
            for attempt in range(COMMIT_RETRIES):
                try:
                    with self.refs.transaction(
                        f"commit: {summary}", before_publish=lease.check
                    ) as txn:
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
                            training=training,
                            attachments=attachments,
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
                    break
                except RefConflict:
                    # Another writer moved latest (or took the name) after we read it: build
                    # the version again on top of what it published.
                    if attempt == COMMIT_RETRIES - 1:
                        raise
        cache.save()  # only now: the manifests it names are durable and named
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
        )

    def _training(
        self,
        path: str | os.PathLike[str],
        *,
        data: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...],
        store_data: bool,
        steps: int | None,
        loss: float | None,
        base_model: str | None,
    ) -> dict[str, Any]:
        """The ``training`` record of a new version: checkpoint values, overridden by arguments."""
        from contextlib import suppress

        from . import meta as meta_mod

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
            with suppress(VaultError):  # else a model's name, not a version of this repository
                out["base_model_id"] = self.resolve(out["base_model"])
        records: dict[str, dict[str, Any]] = {}
        for f in data:
            record = meta_mod.data_record(f, stored=store_data)
            records.setdefault(record["path"], record)
        if records:
            out["data"] = list(records.values())
        return {k: v for k, v in out.items() if v is not None}

    def _attachment_entries(
        self,
        training: dict[str, Any],
        data: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...],
        store_data: bool,
        snapshots: str | os.PathLike[str] | None,
    ) -> dict[str, list[Any]]:
        """The entries of the trees stored with the version, by role; counts ``snapshots``."""
        from dataclasses import replace

        from .meta import data_path
        from .ops import commit as commit_op

        out: dict[str, list[Any]] = {}
        if store_data and training.get("data"):
            # A stored data file's tree path is its recorded absolute path without the leading
            # "/", so files of the same name from different folders never collide.
            entries = {}
            for f in data:
                (entry,) = commit_op.scan(Path(f))
                rel = data_path(f).lstrip("/")
                entries[rel] = replace(entry, path=rel)
            out["data"] = [entries[k] for k in sorted(entries)]
        if snapshots is not None:
            where = Path(snapshots)
            if where.exists() and not where.is_dir():
                raise BadValue("snapshots", str(snapshots), "is not a directory")
            found = commit_op.scan(where, exclude=self._local_paths())
            training["snapshots"] = len({e.path.split("/", 1)[0] for e in found})
            if found:
                out["snapshots"] = found
        return out

    # -- reading -----------------------------------------------------------------------------

    def _info(
        self,
        oid: Oid,
        version: Version,
        tags: dict[Oid, list[str]],
        names: dict[Oid, str],
        pins: dict[Oid, list[str]] | None = None,
    ) -> VersionInfo:
        training = version.training
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
            steps=training.get("steps"),
            loss=training.get("loss"),
            eval_loss=training.get("eval_loss"),
            base_model=training.get("base_model"),
            base_model_id=training.get("base_model_id"),
            data=[dict(d) for d in training.get("data", [])],
            snapshots=training.get("snapshots"),
            pins=sorted((pins or {}).get(oid, [])),
        )

    def log(
        self,
        rev: str | None = None,
        *,
        limit: int | None = None,
        all: bool = False,  # noqa: A002
    ) -> list[VersionInfo]:
        """History from ``rev`` (default ``latest``), newest first, following first parents.

        A version without a name (a deleted one) is walked through but not listed, unless it
        is ``rev`` itself or ``all`` is set. ``all`` without ``rev`` lists every version any
        ref reaches, backups and pinned deleted versions included, newest first.
        """
        refs = self.refs.read()
        names, tags = version_names(refs)
        pins = pin_names(refs)
        out: list[VersionInfo] = []
        if all and rev is None:
            found: dict[Oid, Version] = {}
            stack = list(set(refs.refs.values()))
            while stack:
                vid = stack.pop()
                if vid not in found:
                    found[vid] = self.store.get_version(vid)
                    stack.extend(found[vid].parents)
            depth: dict[Oid, int] = {}  # breaks ties of equal times: children before parents
            for vid in found:
                todo = [vid]
                while todo:
                    cur = todo[-1]
                    waiting = [p for p in found[cur].parents if p in found and p not in depth]
                    if waiting:
                        todo.extend(waiting)
                        continue
                    todo.pop()
                    depth[cur] = 1 + max(
                        (depth[p] for p in found[cur].parents if p in found), default=0
                    )
            ordered = sorted(
                found.items(), key=lambda kv: (kv[1].created, depth[kv[0]], kv[0]), reverse=True
            )
            for vid, version in ordered[:limit]:
                out.append(self._info(vid, version, tags, names, pins))
            return out
        if rev is None and LATEST not in refs.refs:
            return []
        start = resolve(rev or LATEST, refs, self.store)
        oid: Oid | None = start
        while oid is not None and (limit is None or len(out) < limit):
            version = self.store.get_version(oid)
            if all or oid == start or oid in names:
                out.append(self._info(oid, version, tags, names, pins))
            oid = version.parents[0] if version.parents else None
        return out

    def show(self, rev: str) -> VersionInfo:
        """A version with its file list and, when it records one, its learning curve."""
        refs = self.refs.read()
        oid = resolve(rev, refs, self.store)
        names, tags = version_names(refs)
        version = self.store.get_version(oid)
        info = self._info(oid, version, tags, names, pin_names(refs))
        tree = version_tree(self.store, refs, oid, rev)
        info.files = [
            FileInfo(
                e.path, e.size, e.file, e.kind, e.mode if e.kind == KIND_FILE else None, e.target
            )
            for e in tree.entries
        ]
        curve_path = version.training.get("curve")
        if isinstance(curve_path, str):
            info.curve = self._read_curve(tree, curve_path)
        return info

    def _read_curve(self, tree: Any, path: str) -> list[dict[str, Any]]:
        """The ``log_history`` of the trainer state at ``path`` in ``tree``, read verified."""
        from .meta import curve_from_state

        for entry in tree.entries:
            if entry.path == path and entry.kind == KIND_FILE and entry.file is not None:
                manifest = self.store.get_file(entry.file)
                return curve_from_state(b"".join(self.store.get(c.oid) for c in manifest.chunks))
        return []

    def checkout(
        self,
        rev: str,
        dest: str | os.PathLike[str],
        *,
        force: bool = False,
        progress: Progress | None = None,
        durable: bool = False,
    ) -> CheckoutResult:
        """Write the files of ``rev`` under ``dest``, verified; see :func:`vault.ops.checkout`.

        ``durable`` fsyncs every file written (off by default, as in git and restic).

        Raises:
            FilesCollected: ``rev`` is deleted and gc removed its files.
        """
        from .ops import checkout as checkout_op

        refs = self.refs.read()
        tree = version_tree(self.store, refs, resolve(rev, refs, self.store), rev)
        return checkout_op.checkout(
            self.store, tree, Path(dest), force=force, progress=progress, durable=durable
        )

    def checkout_attachment(
        self,
        rev: str,
        role: str,
        dest: str | os.PathLike[str],
        *,
        force: bool = False,
        progress: Progress | None = None,
        durable: bool = False,
    ) -> CheckoutResult:
        """Write what was stored with ``rev`` besides its files under ``dest``, verified (as
        :meth:`checkout` writes its files).

        Args:
            role: ``data`` (the training data files of ``commit --store-data``, each at its
                recorded absolute path without the leading ``/``) or ``snapshots`` (the
                ``--snapshots`` directory).

        Raises:
            NoAttachment: ``rev`` stores nothing of that role.
        """
        from .ops import checkout as checkout_op

        refs = self.refs.read()
        tree = version_tree(self.store, refs, resolve(rev, refs, self.store), rev, role)
        return checkout_op.checkout(
            self.store, tree, Path(dest), force=force, progress=progress, durable=durable
        )

    # -- model files: tensors, diff, consolidation --------------------------------------------

    def load_state_dict(self, rev: str, file: str, framework: str = "pt") -> dict[str, Any]:
        """The tensors of the safetensors file ``file`` of ``rev``, read and verified straight
        from the store (no checkout).

        Args:
            framework: ``"pt"`` for torch tensors; ``"numpy"`` for numpy arrays, where BF16 and
                F8 tensors are returned as float32 (numpy has no such types; the upcast is exact).

        Raises:
            FileNotInVersion: ``rev`` has no regular file ``file``.
            NotSafetensors: the file is not a well-formed safetensors file.
        """
        from .ml.tensors import load_state_dict

        refs = self.refs.read()
        tree = version_tree(self.store, refs, resolve(rev, refs, self.store), rev)
        return load_state_dict(self.store, tree, rev, file, framework)

    def diff(self, rev_a: str, rev_b: str) -> DiffResult:
        """Files added, removed and changed from ``rev_a`` to ``rev_b``, and for safetensors
        files the tensors added, removed and changed with the relative L2 norm of the change;
        see :mod:`vault.ops.diff`."""
        from .ops.diff import diff_trees

        refs = self.refs.read()
        a, b = (
            version_tree(self.store, refs, resolve(r, refs, self.store), r) for r in (rev_a, rev_b)
        )
        return diff_trees(self.store, a, b)

    def consolidate(
        self,
        base: str | os.PathLike[str],
        adapter: str | os.PathLike[str],
        *,
        message: str,
        training_data: list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...] = (),
        dtype: str | None = None,
        remove_adapter_dir: bool = False,
    ) -> ConsolidateResult:
        """Merge the LoRA adapter ``adapter`` into ``base`` (each a directory or a revision) and
        commit the merged model as the next version, ``latest`` and ``base``, with lineage
        metadata; the base and the adapter are pinned as ``pre_consolidation`` in the same
        transaction. Any failure leaves every ref and the user's directories as they were.

        Args:
            message: the merged version's description.
            training_data: data files recorded with the version (path, size, BLAKE3).
            dtype: ``bf16``, ``fp16`` or ``fp32``; default: the base's.
            remove_adapter_dir: delete the adapter's directory once the merged version is
                stored (step 5).

        Raises:
            AdapterMismatch: the adapter targets a module the base lacks, or shapes differ.
            ConsolidateError: the base or adapter is not a model, or is the other one.
            MissingExtra: torch, transformers or peft are not installed.
        """
        from .ops.consolidate import consolidate

        return consolidate(
            self,
            base,
            adapter,
            message=message,
            training_data=training_data,
            dtype=dtype,
            remove_adapter_dir=remove_adapter_dir,
        )

    # -- tags --------------------------------------------------------------------------------

    def tags(self) -> list[TagInfo]:
        """Every tag, by name."""
        refs = self.refs.read()
        names, _ = version_names(refs)
        return [TagInfo(n, oid, names.get(oid)) for n, oid in sorted(refs.names_for(TAGS).items())]

    def tag(self, name: str, rev: str, *, force: bool = False) -> TagInfo:
        """Name the version ``rev`` with the tag ``name``; moving a tag needs ``force``."""
        check_tag_name(name)
        oid = self.resolve(rev)
        with self._writing(), self.refs.transaction(f"tag {name}") as txn:
            check_files_kept(self.store, txn.doc, oid, rev)
            old = txn.get(TAGS + name)
            if old is not None and not force:
                raise TagError(f"tag {name} already exists (use --force to move it)")
            txn.set(TAGS + name, oid, expected=old)
        names, _ = version_names(self.refs.read())
        return TagInfo(name, oid, names.get(oid))

    def untag(self, name: str) -> TagInfo:
        """Remove the tag ``name``."""
        with self._writing(), self.refs.transaction(f"untag {name}") as txn:
            old = txn.get(TAGS + name)
            if old is None:
                raise TagError(f"no such tag: {name}")
            txn.delete(TAGS + name, expected=old)
        return TagInfo(name, old, None)

    # -- pins, backups, delete and restore ---------------------------------------------------

    def _pin_list(self, refs: RefsDoc) -> list[PinInfo]:
        names, _ = version_names(refs)
        labels: dict[Oid, str | None] = {}
        for oid in set(refs.names_for(PINS).values()):
            label = names.get(oid)
            if label is None:  # a deleted version is still called by the name it had
                try:
                    label = self.store.get_version(oid).name
                except VaultError:
                    label = None
            labels[oid] = label
        return pins_op.pin_infos(refs, labels)

    def _pin_info(self, refs: RefsDoc, name: str) -> PinInfo:
        for p in self._pin_list(refs):
            if p.name == name:
                return p
        raise PinError(f"no such pin: {name}")

    def pins(self, type: str | None = None) -> list[PinInfo]:  # noqa: A002
        """Every pin (of ``type`` only, when given), oldest first."""
        return [p for p in self._pin_list(self.refs.read()) if type is None or p.type == type]

    backup_list = pins

    def pin(
        self,
        rev: str,
        *,
        type: str,  # noqa: A002
        reason: str,
        name: str | None = None,
        expires: str | None = None,
        replace: bool = False,
    ) -> PinInfo:
        """Pin the version ``rev`` so that it and everything it reaches stay.

        Args:
            type: ``pre_consolidation``, ``pre_deletion``, ``pre_restore``, ``emergency`` or any
                word.
            reason: why.
            name: the pin's name (the rules of tag names); generated when ``None``.
            expires: a duration (``30d``) or date after which ``backup cleanup`` drops it.
            replace: move an existing pin of that name (e.g. keep ``best`` on the best
                checkpoint) instead of refusing.

        Raises:
            UnknownRevision: ``rev`` names no version.
            PinError: a bad name or type, or the pin exists and ``replace`` is false.
        """
        with self._writing(), self.refs.transaction(f"pin {rev}") as txn:
            oid = resolve(rev, txn.doc, self.store)
            check_files_kept(self.store, txn.doc, oid, rev)
            made = pins_op.set_pin(
                txn, oid, type=type, reason=reason, name=name, expires=expires, replace=replace
            )
            return self._pin_info(txn.doc, made)

    def unpin(self, name: str) -> PinInfo:
        """Remove the pin ``name``; what only it kept becomes garbage for gc."""
        with self._writing(), self.refs.transaction(f"unpin {name}") as txn:
            info = self._pin_info(txn.doc, name)
            txn.delete(PINS + name, expected=Oid(info.id))
        return info

    def backup(
        self,
        path: str | os.PathLike[str],
        *,
        type: str = pins_op.EMERGENCY,  # noqa: A002
        reason: str,
        name: str | None = None,
        expires: str | None = None,
        progress: Progress | None = None,
    ) -> PinInfo:
        """Commit ``path`` as an unnamed version and pin it, in one transaction.

        The backup does not move ``latest`` and gets no version name; dedup makes it nearly
        free when ``path`` matches something stored.
        """
        made = self._backup(
            path, type=type, reason=reason, name=name, expires=expires, progress=progress
        )
        assert made is not None
        return made

    def _backup(
        self,
        path: str | os.PathLike[str],
        *,
        type: str,  # noqa: A002
        reason: str,
        name: str | None = None,
        expires: str | None = None,
        progress: Progress | None = None,
        unless_kept: bool = False,
    ) -> PinInfo | None:
        """:meth:`backup`; with ``unless_kept``, no pin when a ref already keeps that tree."""
        pins_op.check_type(type)
        pins_op.parse_expiry(expires)
        if name is not None:
            pins_op.check_pin_name(name)
            if PINS + name in self.refs.read().refs:
                raise PinError(f"pin {name} already exists")
        made: list[PinInfo] = []

        def on_publish(txn: Transaction, oid: Oid, version: Version) -> None:
            if unless_kept and version.tree in self._kept_trees(txn.doc):
                return
            pin_name = pins_op.set_pin(
                txn, oid, type=type, reason=reason, name=name, expires=expires
            )
            made.append(self._pin_info(txn.doc, pin_name))

        self.commit(
            path,
            f"backup ({type}): {reason}",
            progress=progress,
            name_version=False,
            move_latest=False,
            on_publish=on_publish,
        )
        return made[0] if made else None

    def _kept_trees(self, refs: RefsDoc) -> set[Oid]:
        """The trees of the versions refs point at."""
        out = set()
        for oid in set(refs.refs.values()):
            try:
                out.add(self.store.get_version(oid).tree)
            except VaultError:
                continue
        return out

    def delete(self, rev: str, *, confirm: bool = False, reason: str | None = None) -> DeleteResult:
        """Remove a version's name and tags, after pinning it as ``pre_deletion``.

        Pin and removal are one refs transaction: a crash leaves the version either still named
        or pinned. ``latest`` moves back to the nearest named ancestor when it pointed here;
        ``base``, when it pointed here, is removed with the tags.
        The name is never given again.

        Raises:
            NotConfirmed: ``confirm`` is false.
            UnknownRevision: ``rev`` names no version, or one without a name.
        """
        if not confirm:
            raise NotConfirmed(f"delete {rev}")
        with self._writing(), self.refs.transaction(f"delete {rev}") as txn:
            oid = resolve(rev, txn.doc, self.store)
            refs = txn.doc.refs
            names = sorted(k for k, v in refs.items() if k.startswith(VERSIONS) and v == oid)
            if not names:
                raise UnknownRevision(rev, "it has no version name to delete; unpin it instead")
            label = names[0][len(VERSIONS) :]
            pin_name = pins_op.set_pin(
                txn,
                oid,
                type=pins_op.PRE_DELETION,
                reason=reason or f"vault delete {label}",
                label=label,
            )
            tags = sorted(k for k, v in txn.doc.refs.items() if k.startswith(TAGS) and v == oid)
            # 'base' names the deleted version as a tag would, and goes with it: else it would
            # keep the version from cleanup and gc for ever.
            base = [BASE] if txn.get(BASE) == oid else []
            for ref in [*names, *tags, *base]:
                txn.delete(ref, expected=oid)
            if txn.get(LATEST) == oid:
                ancestor = self._named_ancestor(txn.doc, oid)
                if ancestor is None:
                    txn.delete(LATEST, expected=oid)
                else:
                    txn.set(LATEST, ancestor, expected=oid)
            pin = self._pin_info(txn.doc, pin_name)
            latest = txn.get(LATEST)
        return DeleteResult(
            label, oid, pin, [t[len(TAGS) :] for t in tags], latest, base=txn.get(BASE)
        )

    def _named_ancestor(self, refs: RefsDoc, oid: Oid) -> Oid | None:
        """The nearest version along first parents that still has a version name."""
        named = set(refs.names_for(VERSIONS).values())
        seen = {oid}
        parents = self.store.get_version(oid).parents
        while parents and parents[0] not in seen:
            oid = parents[0]
            if oid in named:
                return oid
            seen.add(oid)
            parents = self.store.get_version(oid).parents
        return None

    def restore(
        self,
        rev: str,
        dest: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> RestoreResult:
        """Make ``dest`` (default: the recorded working directory) hold exactly ``rev``'s files.

        Unless ``dest`` is empty or holds a tree some name, tag or pin keeps already, its
        content is first committed and pinned as ``pre_restore``; nothing in ``dest`` changes
        before that pin is published.

        Raises:
            NoDestination: no ``dest`` and no recorded working directory.
            UnknownRevision: ``rev`` names no version.
            UnsafePath: ``dest`` is not a directory or lies inside the repository.
        """
        from .ops import restore as restore_op

        target = Path(dest) if dest is not None else self.workdir
        if target is None:
            raise restore_op.NoDestination()
        if self.root is not None:
            restore_op.check_destination(target, self.root)
        refs = self.refs.read()
        oid = resolve(rev, refs, self.store)
        tree = version_tree(self.store, refs, oid, rev)
        check_files_kept(self.store, refs, oid, rev)
        for entry in tree.entries:  # fail on a damaged or collected version before any change
            if entry.kind == KIND_FILE and entry.file is not None:
                self.store.get_file(entry.file)
        backup = None
        if restore_op.has_content(target, self._local_paths()):
            backup = self._backup(
                target,
                type=pins_op.PRE_RESTORE,
                reason=f"content of {target} before restoring {rev}",
                unless_kept=True,
                progress=progress,
            )
        crashpoint("restore-pinned")
        restore_op.write_exactly(
            self.store, tree, target, keep=self._local_paths(), progress=progress
        )
        names, _ = version_names(self.refs.read())
        # A deleted version is still called by the name it had, as backup list calls it.
        label = names.get(oid) or self.store.get_version(oid).name
        dest_abs = os.path.abspath(target)  # as checkout reports it, whatever the cwd
        return restore_op.RestoreResult(dest_abs, label, oid, tree.file_count, tree.size, backup)

    def backup_restore(
        self,
        pin: str,
        dest: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> RestoreResult:
        """:meth:`restore` the version the pin ``pin`` keeps."""
        self._pin_info(self.refs.read(), pin)
        return self.restore(PINS + pin, dest, progress=progress)

    def backup_verify(
        self, pin: str | None = None, *, progress: Progress | None = None
    ) -> VerifyReport:
        """Re-hash everything the pin ``pin`` (default: every pin) reaches."""
        refs = self.refs.read()
        chosen = [self._pin_info(refs, pin)] if pin is not None else self._pin_list(refs)
        labels: dict[Oid, str] = {}
        for p in chosen:
            labels.setdefault(Oid(p.id), f"pin {p.name}")
        from .ops import verify as verify_op

        return verify_op.verify(
            self.store,
            set(labels),
            lambda oid: labels.get(oid, oid[:12]),
            ancestors=False,
            progress=progress,
        )

    def backup_cleanup(
        self,
        *,
        retention_days: float | None = None,
        keep_last: int | None = None,
        type: str | None = None,  # noqa: A002
        execute: bool = False,
    ) -> CleanupPlan:
        """Plan (and with ``execute``, do) the removal of old or expired pins.

        See :func:`vault.ops.pins.select_for_cleanup` for which pins go. ``bytes`` is what gc
        frees once they are gone: the stored size of objects only those pins reach.
        """
        for what, value in (("retention days", retention_days), ("--keep-last", keep_last)):
            if value is not None and value < 0:
                raise BadValue(what, value, "must not be negative")
        refs = self.refs.read()
        unpin, keep = pins_op.select_for_cleanup(
            self._pin_list(refs), retention_days=retention_days, keep_last=keep_last, pin_type=type
        )
        plan = CleanupPlan(unpin=unpin, keep=keep)
        if unpin:
            gone = {PINS + p.name for p in unpin}
            before = reach(self.store, set(refs.refs.values())).all()
            after = reach(self.store, {v for k, v in refs.refs.items() if k not in gone}).all()
            for oid in before - after:
                st = self.store.stat(oid)
                if st is not None:
                    plan.objects += 1
                    plan.bytes += st.size
        if execute and unpin:
            with self._writing(), self.refs.transaction("backup cleanup") as txn:
                for p in unpin:
                    txn.delete(PINS + p.name, expected=Oid(p.id))
        plan.executed = execute
        return plan

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
                gc_op.execute(self.store, self.backend, p, progress)
                self.locks.remove_stale()
            return p

        if dry_run:
            p = run()
        else:
            with self.locks.hold(EXCLUSIVE):
                p = run()
        return GcResult(
            p.objects, p.bytes, dry_run, seconds, p.reachable, p.young, len(p.temp_files)
        )

    def verify(self, rev: str | None = None, *, progress: Progress | None = None) -> VerifyReport:
        """Re-hash every object reachable from every ref, or from the version ``rev`` only."""
        refs = self.refs.read()
        names, _ = version_names(refs)
        # Every named version is a root; an ancestor no ref names (a deleted version) keeps
        # only its record, so its tree is not looked for (see ops/walk.py).
        roots = set(refs.refs.values()) if rev is None else {self.resolve(rev)}
        from .ops import verify as verify_op

        report = verify_op.verify(
            self.store,
            roots,
            lambda oid: names.get(oid, oid[:12]),
            ancestors=False,
            progress=progress,
        )
        if rev is None:
            self._verify_history(roots, report, names)
        return report

    def _verify_history(self, roots: set[Oid], report: VerifyReport, names: dict[Oid, str]) -> None:
        """Re-read the records of ancestors no ref points at, which history runs through."""
        from .ops.verify import Damage

        seen = set(roots)
        stack: list[tuple[Oid, str]] = []
        for oid in roots:
            with contextlib.suppress(CorruptObject, ObjectMissing):  # reported already
                stack.extend(
                    (p, names.get(oid, oid[:12])) for p in self.store.get_version(oid).parents
                )
        while stack:
            oid, child = stack.pop()
            if oid in seen:
                continue
            seen.add(oid)
            report.versions += 1
            report.objects += 1
            try:
                parents = self.store.get_version(oid).parents
            except ObjectMissing:
                report.damaged.append(Damage(oid, "missing", "object file is missing", [child]))
                continue
            except CorruptObject as exc:
                report.damaged.append(Damage(oid, "corrupt", exc.message, [child]))
                continue
            stack.extend((p, child) for p in parents)

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


def _config_bytes(config: dict[str, Any]) -> bytes:
    return json.dumps(config, indent=2).encode() + b"\n"


def _workdir_for_config(root: Path, workdir: Path) -> str:
    """``workdir`` as ``config.json`` records it: relative to the folder holding the repository
    when inside it (so the project can move), else absolute."""
    base = Path(os.path.abspath(root)).parent
    full = Path(os.path.abspath(workdir))
    try:
        return full.relative_to(base).as_posix() or "."
    except ValueError:
        return str(full)
