"""The repository facade: opens a repository's collaborators and calls one verb per method.

This is the Python API the command line is built on; every method returns plain dataclasses
carrying the same data ``--json`` prints. The verbs themselves live in :mod:`vault.ops`, each a
function over the collaborators (:class:`vault.ops.parts.Parts`): object store, refs, leases.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backend import Backend, LocalBackend
from .config import (
    CONFIG,
    DEFAULT_GRACE,
    FORMAT,
    READABLE_FORMATS,
    Config,
    workdir_for_config,
    workdir_from_config,
)
from .errors import (
    BadValue,
    CorruptObject,
    NotADirectory,
    RepoExists,
    RepoNotFound,
    UnknownRevision,
    UnsupportedFormat,
)
from .fsutil import make_dirs
from .ids import Oid
from .leases import Leases
from .objects import Version
from .ops.parts import Parts
from .progress import Progress
from .refs import RefStore, Transaction
from .repo_remotes import RemoteMethods
from .store import ObjectStore

if TYPE_CHECKING:
    from .ops.checkout import CheckoutResult
    from .ops.commit import CommitResult, Paths
    from .ops.consolidate import ConsolidateResult
    from .ops.delete import DeleteResult
    from .ops.diff import DiffResult, FileChanges
    from .ops.files import FileDetail, VersionFile
    from .ops.gc import GcResult
    from .ops.history import FileInfo, VersionInfo
    from .ops.pins import CleanupPlan, PinInfo
    from .ops.prune import PruneResult
    from .ops.restore import RestoreResult
    from .ops.runs import PlotResult, RunInfo
    from .ops.stats import Stats
    from .ops.tags import TagInfo
    from .ops.verify import VerifyReport

# The verbs that need thread pools and chunkers are imported where they are used, so that a
# short command such as 'vault log' starts quickly; so are their result classes.
_LAZY = {
    "CommitResult": "commit",
    "COMMIT_RETRIES": "commit",
    "STAT_CACHE": "commit",
    "DeleteResult": "delete",
    "GcResult": "gc",
    "FileInfo": "history",
    "VersionInfo": "history",
    "CleanupPlan": "pins",
    "PinInfo": "pins",
    "PruneResult": "prune",
    "Stats": "stats",
    "TagInfo": "tags",
}

__all__ = [
    "CONFIG",
    "FORMAT",
    "READABLE_FORMATS",
    "REPO_DIRNAME",
    "CleanupPlan",
    "CommitResult",
    "DeleteResult",
    "FileInfo",
    "GcResult",
    "PinInfo",
    "PruneResult",
    "Repository",
    "Stats",
    "TagInfo",
    "VersionInfo",
]

REPO_DIRNAME = ".vault"


def __getattr__(name: str) -> Any:
    """The names of :mod:`vault.ops.commit` this module used to define, imported on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"vault.ops.{_LAZY[name]}"), name)


class Repository(RemoteMethods):
    """A vault repository.

    Use :meth:`init` to create one, :meth:`open` or :meth:`find` to open one.

    Args:
        where: the repository directory (the ``.vault`` folder itself), or a backend.
        lock_timeout: seconds to wait for a lease (a writer waits for gc, gc for writers)
            before :class:`LockTimeout`.
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
        self.config = Config(self.backend, self.describe())
        self.parts = Parts(self.backend, self.store, self.refs, self.locks, self.config, self.root)

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

        Raises:
            RepoExists: ``path`` holds a repository already.
            NotADirectory: ``path`` exists and is not a directory.
        """
        if isinstance(path, (str, os.PathLike)):
            root = Path(path)
            if (root / CONFIG).exists():
                raise RepoExists(str(root))
            if root.exists() and not root.is_dir():
                raise NotADirectory(str(root))
            make_dirs(root)  # a power cut after init must not lose the repository's folder
            for sub in ("objects", "logs", "locks", "tmp"):
                (root / sub).mkdir(exist_ok=True)  # durable with refs.json or config.json below
        repo = cls(path, **kwargs)
        if repo.config.exists():
            raise RepoExists(repo.describe())
        repo.refs.initialise()
        config: dict[str, Any] = {"format": FORMAT}
        if workdir is not None:
            if repo.root is None:
                raise BadValue("workdir", str(workdir), "only a local repository records one")
            config["workdir"] = workdir_for_config(repo.root, Path(workdir))
        repo.config.create(config)  # last: its presence marks a complete repository
        return repo

    @classmethod
    def open(cls, path: str | os.PathLike[str] | Backend, **kwargs: Any) -> Repository:
        """Open the repository whose directory is ``path``, or that lives on a backend.

        ``path`` may also be a project folder: one that holds a repository in ``.vault/``.
        """
        if isinstance(path, (str, os.PathLike)):
            folder = Path(path)
            if not (folder / CONFIG).exists() and (folder / REPO_DIRNAME / CONFIG).exists():
                path = folder / REPO_DIRNAME
        repo = cls(path, **kwargs)
        found = repo.config.read().get("format")
        if found not in READABLE_FORMATS:
            raise UnsupportedFormat(repo.describe(), found, FORMAT)
        repo.config.format = found
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

    @property
    def format(self) -> int:
        """The repository's format: as opened, or :data:`FORMAT` once this release wrote."""
        return self.config.format

    def describe(self) -> str:
        """Where the repository is, for messages: its directory, or its backend's name."""
        return str(self.root) if self.root is not None else self.backend.capabilities.name

    def describe_abs(self) -> str:
        """:meth:`describe` with the directory made absolute."""
        return str(self.root.resolve()) if self.root is not None else self.describe()

    @property
    def workdir(self) -> Path | None:
        """The working directory recorded by ``init --workdir``, or ``None``."""
        try:
            found = self.config.read().get("workdir")
        except RepoNotFound:
            return None
        return workdir_from_config(self.root, found) if self.root is not None else None

    def resolve(self, rev: str) -> Oid:
        """The id of the version ``rev`` names (``v007``, a tag, ``latest~2``, an id prefix)."""
        return self.parts.resolve(rev)

    def roots(self) -> set[Oid]:
        """Every version a ref points at."""
        return set(self.refs.read().refs.values())

    def unknown(self, rev: str) -> UnknownRevision:
        """An :class:`UnknownRevision` for ``rev`` (helper for callers)."""
        return UnknownRevision(rev)

    # -- commit and reading ------------------------------------------------------------------

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
        data: Paths = (),
        store_data: bool = False,
        steps: int | None = None,
        loss: float | None = None,
        base_model: str | None = None,
        snapshots: str | os.PathLike[str] | None = None,
        exclude: list[str] | tuple[str, ...] = (),
        include: list[str] | tuple[str, ...] = (),
        allow_empty: bool = False,
        run: str | None = None,
    ) -> CommitResult:
        """Store the file or directory ``path`` as a new version on top of ``latest``, with
        the training metadata of a Trainer checkpoint; every argument is checked before
        anything is stored. The arguments are those of :func:`vault.ops.commit.commit`:
        ``exclude`` and ``include`` take gitignore patterns (with ``.vaultignore`` files, see
        :mod:`vault.ignore`); files equal to ``latest``'s make no new version (the result
        says ``unchanged``) and an empty directory is refused, unless ``allow_empty``.
        """
        from .ops import commit as commit_op

        return commit_op.commit(
            self.parts,
            path,
            message,
            description=description,
            tags=tags,
            meta=meta,
            progress=progress,
            rehash=rehash,
            name_version=name_version,
            move_latest=move_latest,
            parents=parents,
            on_publish=on_publish,
            data=data,
            store_data=store_data,
            steps=steps,
            loss=loss,
            base_model=base_model,
            snapshots=snapshots,
            exclude=exclude,
            include=include,
            allow_empty=allow_empty,
            run=run,
        )

    def log(
        self,
        rev: str | None = None,
        *,
        limit: int | None = None,
        all: bool = False,  # noqa: A002
        run: str | None = None,
        meta: dict[str, str] | None = None,
    ) -> list[VersionInfo]:
        """Every named version by number, newest first; or from ``rev``, its history following
        first parents. ``all`` adds backups and deleted versions pins keep; ``run`` and ``meta``
        filter. See :func:`vault.ops.history.log`.
        """
        from .ops import history

        return history.log(self.parts, rev, limit=limit, all=all, run=run, meta=meta)

    def show(self, rev: str) -> VersionInfo:
        """A version with its file list and, when it records one, its learning curve."""
        from .ops import history

        return history.show(self.parts, rev)

    def runs(self) -> list[RunInfo]:
        """Every training run with a named version, in the order they started: its versions,
        first and last step, best and last loss, last date and best pin; versions that record
        no run are left out. See :func:`vault.ops.runs.runs`."""
        from .ops import runs as runs_op

        return runs_op.runs(self.parts)

    def plot(
        self,
        revs: list[str] | tuple[str, ...],
        dest: str | os.PathLike[str],
        *,
        runs: list[str] | tuple[str, ...] = (),
        metric: str = "loss",
    ) -> PlotResult:
        """Draw the learning curves (``metric`` by step) of the versions ``revs`` and of the
        whole runs ``runs`` on one chart, to the image ``dest``; see
        :func:`vault.ops.runs.plot`.
        """
        from .ops import runs as runs_op

        return runs_op.plot(self.parts, revs, runs, dest, metric=metric)

    def checkout(
        self,
        rev: str,
        dest: str | os.PathLike[str],
        *,
        force: bool = False,
        clean: bool = False,
        progress: Progress | None = None,
        durable: bool = False,
    ) -> CheckoutResult:
        """Write the files of ``rev`` under ``dest``, verified; see :func:`vault.ops.checkout`.

        ``force`` writes into a non-empty ``dest`` unless it holds files ``rev`` does not have
        (:class:`~vault.errors.StrayFiles`); ``clean`` removes those (it implies ``force``).
        ``durable`` fsyncs every file written (off by default, as in git and restic).

        Raises:
            FilesCollected: ``rev`` is deleted and gc removed its files.
        """
        from .ops.checkout import checkout_version

        return checkout_version(
            self.parts, rev, dest, force=force, clean=clean, progress=progress, durable=durable
        )

    def checkout_attachment(
        self,
        rev: str,
        role: str,
        dest: str | os.PathLike[str],
        *,
        force: bool = False,
        clean: bool = False,
        progress: Progress | None = None,
        durable: bool = False,
    ) -> CheckoutResult:
        """Write what was stored with ``rev`` besides its files under ``dest``, verified (as
        :meth:`checkout` writes its files).

        Args:
            role: ``data`` (the training data files of ``commit --store-data``, each at its
                recorded path relative to the project folder; one recorded by an absolute
                path, outside the project, under ``_outside/`` and that path without its
                leading ``/``) or ``snapshots`` (the ``--snapshots`` directory).

        Raises:
            NoAttachment: ``rev`` stores nothing of that role.
        """
        from .ops.checkout import checkout_version

        return checkout_version(
            self.parts,
            rev,
            dest,
            role=role,
            force=force,
            clean=clean,
            progress=progress,
            durable=durable,
        )

    # -- single files and status (ls, cat, show REV:PATH, status) ------------------------------

    def ls(self, rev: str, path: str | None = None) -> list[FileInfo]:
        """The files and links of ``rev``: all, the one at ``path``, or those under the folder
        ``path``; see :func:`vault.ops.files.ls`.

        Raises:
            PathNotInVersion: ``rev`` has nothing at ``path``.
        """
        from .ops import files

        return files.ls(self.parts, rev, path)

    def open_file(self, rev: str, path: str) -> VersionFile:
        """The file ``path`` of ``rev`` as a read-only binary stream, every byte verified on
        the way out of the store; see :class:`vault.ops.files.VersionFile`.

        Raises:
            PathNotInVersion: ``rev`` has no file ``path``.
        """
        from .ops import files

        return files.open_file(self.parts, rev, path)

    def file_detail(self, rev: str, path: str) -> FileDetail:
        """The file ``path`` of ``rev``: size, id, mode and, for safetensors, its tensors."""
        from .ops import files

        return files.file_detail(self.parts, rev, path)

    def status(
        self, path: str | os.PathLike[str] | None = None, *, rev: str | None = None
    ) -> FileChanges:
        """Files added, removed and changed in the folder ``path`` (default: the recorded
        working directory, else the current one) against ``rev`` (default ``latest``); see
        :mod:`vault.ops.status`, which also says what it writes (the stat cache only)."""
        from .ops.status import status

        return status(self.parts, self._destination(path) or Path("."), rev)

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
        from .ops.tensors import load_state_dict

        return load_state_dict(self.parts, rev, file, framework)

    def diff(self, rev_a: str, rev_b: str) -> DiffResult:
        """Files added, removed and changed from ``rev_a`` to ``rev_b``, and for safetensors
        files the tensors added, removed and changed with the relative L2 norm of the change;
        see :mod:`vault.ops.diff`."""
        from .ops.diff import diff

        return diff(self.parts, rev_a, rev_b)

    def diff_folder(
        self, rev: str, folder: str | os.PathLike[str], *, folder_first: bool = False
    ) -> DiffResult:
        """:meth:`diff` from ``rev`` to the folder ``folder`` (the other way round with
        ``folder_first``); see :func:`vault.ops.diff.diff_folder`."""
        from .ops.diff import diff_folder

        return diff_folder(self.parts, rev, folder, folder_first=folder_first)

    def consolidate(
        self,
        base: str | os.PathLike[str],
        adapter: str | os.PathLike[str],
        *,
        message: str,
        training_data: Paths = (),
        dtype: str | None = None,
        remove_adapter_dir: bool = False,
    ) -> ConsolidateResult:
        """Merge the LoRA adapter ``adapter`` into ``base`` (each a directory or a revision) and
        commit the merged model as the next version, ``latest`` and ``base``, pinning both
        sources as ``pre_consolidation`` in the same transaction; see
        :func:`vault.ops.consolidate.consolidate`.
        """
        from .ops.consolidate import consolidate

        return consolidate(
            self.parts,
            base,
            adapter,
            message=message,
            training_data=training_data,
            dtype=dtype,
            remove_adapter_dir=remove_adapter_dir,
        )

    # -- tags --------------------------------------------------------------------------------

    def tags(self, *, reserved: bool = False) -> list[TagInfo]:
        """Every tag, by name; with ``reserved``, then ``latest`` and ``base`` where set."""
        from .ops import tags as tags_op

        return tags_op.tags(self.parts, reserved=reserved)

    def tag(self, name: str, rev: str, *, force: bool = False) -> TagInfo:
        """Name the version ``rev`` with the tag ``name``; moving a tag needs ``force``."""
        from .ops import tags as tags_op

        return tags_op.tag(self.parts, name, rev, force=force)

    def untag(self, name: str) -> TagInfo:
        """Remove the tag ``name``."""
        from .ops import tags as tags_op

        return tags_op.untag(self.parts, name)

    # -- pins, backups, delete and restore ---------------------------------------------------

    def pins(self, type: str | None = None) -> list[PinInfo]:  # noqa: A002
        """Every pin (of ``type`` only, when given), oldest first."""
        from .ops import pins as pins_op

        return pins_op.pins(self.parts, type)

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
        """Pin the version ``rev`` so that it and everything it reaches stay; ``expires`` (a
        duration such as ``30d``, or a date) lets ``backup cleanup`` drop it, ``replace`` moves
        an existing pin of that name. See :func:`vault.ops.pins.pin`.
        """
        from .ops import pins as pins_op

        return pins_op.pin(
            self.parts, rev, type=type, reason=reason, name=name, expires=expires, replace=replace
        )

    def unpin(self, name: str) -> PinInfo:
        """Remove the pin ``name``; what only it kept becomes garbage for gc."""
        from .ops import pins as pins_op

        return pins_op.unpin(self.parts, name)

    def backup(
        self,
        path: str | os.PathLike[str],
        *,
        type: str = "emergency",  # noqa: A002 - vault.ops.pins.EMERGENCY
        reason: str,
        name: str | None = None,
        expires: str | None = None,
        progress: Progress | None = None,
    ) -> PinInfo:
        """Commit ``path`` as an unnamed version and pin it, in one transaction.

        The backup does not move ``latest`` and gets no version name; dedup makes it nearly
        free when ``path`` matches something stored.
        """
        from .ops import backup as backup_op

        made = backup_op.backup(
            self.parts,
            path,
            type=type,
            reason=reason,
            name=name,
            expires=expires,
            progress=progress,
        )
        assert made is not None
        return made

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
        from .ops import delete as delete_op

        return delete_op.delete(self.parts, rev, confirm=confirm, reason=reason)

    def delete_many(
        self, revs: list[str], *, confirm: bool = False, reason: str | None = None
    ) -> list[DeleteResult]:
        """:meth:`delete` several versions in one refs transaction: every revision is
        resolved before anything changes, so one that names nothing deletes nothing."""
        from .ops import delete as delete_op

        return delete_op.delete_many(self.parts, revs, confirm=confirm, reason=reason)

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
            UnsafePath: ``dest`` is not a directory or lies inside the repository; the version
                holds an unsafe path, or needs a file where the repository, a ``.vault`` or a
                directory holding one is. Nothing has changed then.
        """
        from .ops import restore as restore_op

        return restore_op.restore(self.parts, rev, self._destination(dest), progress=progress)

    def backup_restore(
        self,
        pin: str,
        dest: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> RestoreResult:
        """:meth:`restore` the version the pin ``pin`` keeps."""
        from .ops import restore as restore_op

        return restore_op.restore_pin(self.parts, pin, self._destination(dest), progress=progress)

    def _destination(self, dest: str | os.PathLike[str] | None) -> Path | None:
        return Path(dest) if dest is not None else self.workdir

    def backup_verify(
        self, pin: str | None = None, *, progress: Progress | None = None
    ) -> VerifyReport:
        """Re-hash everything the pin ``pin`` (default: every pin) reaches."""
        from .ops import backup as backup_op

        return backup_op.verify_pins(self.parts, pin, progress=progress)

    def backup_cleanup(
        self,
        *,
        retention_days: float | None = None,
        keep_last: int | None = None,
        type: str | Collection[str] | None = None,  # noqa: A002
        execute: bool = False,
    ) -> CleanupPlan:
        """Plan (and with ``execute``, do) the removal of old or expired pins.

        Only pins of ``type`` (one or several) are considered; by default the automatic ones
        (``pre_deletion``, ``pre_restore``, ``pre_consolidation``) and expired pins. See
        :func:`vault.ops.backup.cleanup`. ``bytes`` is what gc frees once they are gone: the
        stored size of objects only those pins reach.
        """
        from .ops import backup as backup_op

        return backup_op.cleanup(
            self.parts,
            retention_days=retention_days,
            keep_last=keep_last,
            pin_types=[type] if isinstance(type, str) else type,
            execute=execute,
        )

    # -- maintenance -------------------------------------------------------------------------

    def gc(
        self,
        *,
        grace: float | str = DEFAULT_GRACE,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> GcResult:
        """Remove unreachable objects older than ``grace`` (seconds or a duration string)."""
        from .ops import gc as gc_op

        return gc_op.gc(self.parts, grace=grace, dry_run=dry_run, progress=progress)

    def prune(
        self,
        *,
        keep_last: int | None = None,
        keep_within: float | str | None = None,
        types: Collection[str] | None = None,
        execute: bool = False,
        progress: Progress | None = None,
    ) -> PruneResult:
        """Unpin automatic backups (``pre_deletion``, ``pre_restore``, ``pre_consolidation``,
        or ``types``) that ``keep_last``/``keep_within`` do not keep, then collect garbage so
        that the space comes back at once; a dry run unless ``execute``. See
        :mod:`vault.ops.prune`."""
        from .ops import prune as prune_op

        return prune_op.prune(
            self.parts,
            keep_last=keep_last,
            keep_within=keep_within,
            types=types,
            execute=execute,
            progress=progress,
        )

    def verify(self, rev: str | None = None, *, progress: Progress | None = None) -> VerifyReport:
        """Re-hash every object reachable from every ref, or from the version ``rev`` only."""
        from .ops.verify import verify_repository

        return verify_repository(self.parts, rev, progress=progress)

    def stats(self) -> Stats:
        """Versions, logical and stored sizes, dedup and compression ratios."""
        from .ops import stats as stats_op

        return stats_op.stats(self.parts)
