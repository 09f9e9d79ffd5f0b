"""Restore: make a working directory hold exactly one version's files.

The repository first commits and pins what the directory holds (unless a name, tag or pin keeps
that very tree already); only then does anything in the directory change. The version is then
written with a forced checkout (staged and verified in full before any final name is touched),
and last everything the version does not have is removed. A crash at any instant therefore
leaves the old content restorable from its ``pre_restore`` pin.

:func:`restore` is the verb; :func:`write_exactly` its file-system half, run once the pin is
published.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import UnsafePath, VaultError
from ..faults import crashpoint
from ..objects import KIND_FILE, Tree
from ..progress import Progress
from ..refs import PINS
from ..revisions import resolve
from ..store import ObjectStore
from . import backup as backup_op
from .commit import IGNORED_NAMES
from .parts import Parts
from .pins import PRE_RESTORE, PinInfo, pin_info
from .versions import check_files_kept, version_names, version_tree


def restore(
    parts: Parts, rev: str, dest: Path | None, *, progress: Progress | None = None
) -> RestoreResult:
    """Make ``dest`` hold exactly ``rev``'s files (see the module docstring).

    Everything is checked (destination, revision, every file manifest) before anything
    changes; then what ``dest`` holds is committed and pinned as ``pre_restore`` (unless a ref
    keeps that tree already), and only then is ``dest`` written.

    Raises:
        NoDestination: ``dest`` is ``None``.
        UnknownRevision: ``rev`` names no version.
        UnsafePath: ``dest`` is not a directory or lies inside the repository.
        FilesCollected: gc has removed the version's files.
    """
    if dest is None:
        raise NoDestination()
    store = parts.store
    if parts.root is not None:
        check_destination(dest, parts.root)
    refs = parts.refs.read()
    oid = resolve(rev, refs, store)
    tree = version_tree(store, refs, oid, rev)
    check_files_kept(store, refs, oid, rev)
    for entry in tree.entries:  # fail on a damaged or collected version before any change
        if entry.kind == KIND_FILE and entry.file is not None:
            store.get_file(entry.file)
    backup = None
    if has_content(dest, parts.local_paths()):
        backup = backup_op.backup(
            parts,
            dest,
            type=PRE_RESTORE,
            reason=f"content of {dest} before restoring {rev}",
            unless_kept=True,
            progress=progress,
        )
    crashpoint("restore-pinned")
    write_exactly(store, tree, dest, keep=parts.local_paths(), progress=progress)
    names, _ = version_names(parts.refs.read())
    # A deleted version is still called by the name it had, as backup list calls it.
    label = names.get(oid) or store.get_version(oid).name
    dest_abs = os.path.abspath(dest)  # as checkout reports it, whatever the cwd
    return RestoreResult(dest_abs, label, oid, tree.file_count, tree.size, backup)


def restore_pin(
    parts: Parts, pin: str, dest: Path | None, *, progress: Progress | None = None
) -> RestoreResult:
    """:func:`restore` the version the pin ``pin`` keeps.

    Raises:
        PinError: there is no pin ``pin``.
    """
    pin_info(parts.store, parts.refs.read(), pin)
    return restore(parts, PINS + pin, dest, progress=progress)


def has_content(dest: Path, keep: tuple[Path, ...] = ()) -> bool:
    """Whether ``dest`` is a directory holding anything besides what restore never touches."""
    if not dest.is_dir():
        return False
    skip = _identities(keep)
    with os.scandir(dest) as it:
        for entry in it:
            if entry.name in IGNORED_NAMES or _identity(entry.path) in skip:
                continue
            return True
    return False


def check_destination(dest: Path, repo_root: Path) -> None:
    """Refuse a destination that is not a directory, or that lies inside the repository."""
    if os.path.lexists(dest) and (dest.is_symlink() or not dest.is_dir()):
        raise UnsafePath(str(dest), "destination exists and is not a directory")
    real_dest = Path(os.path.realpath(dest))
    real_root = Path(os.path.realpath(repo_root))
    if real_dest == real_root or real_root in real_dest.parents:
        raise UnsafePath(str(dest), "destination lies inside the repository")


def write_exactly(
    store: ObjectStore,
    tree: Tree,
    dest: Path,
    *,
    keep: tuple[Path, ...] = (),
    progress: Progress | None = None,
) -> None:
    """Make ``dest`` hold exactly ``tree``'s entries. Call only once its old content is kept.

    Paths in ``keep`` (the repository, when it lies inside ``dest``) and top-level names commit
    ignores (``.vault``) are never touched.
    """
    from .checkout import checkout

    dest = Path(os.path.abspath(dest))
    if dest.is_dir():
        _clear_conflicts(tree, dest)
    checkout(store, tree, dest, force=True, progress=progress)
    crashpoint("restore-written")
    _remove_extras(tree, dest, _identities(keep))


def _identity(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _identities(paths: tuple[Path, ...]) -> set[tuple[int, int] | None]:
    return {i for i in (_identity(p) for p in paths) if i is not None}


def _remove(path: Path) -> None:
    """Remove a file, a link (never followed) or a whole directory."""
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _clear_conflicts(tree: Tree, dest: Path) -> None:
    """Remove what would stop a forced checkout: a file or link where the version has a
    directory, a directory where it has a file or link."""
    for entry in tree.entries:
        cur = dest
        parts = PurePosixPath(entry.path).parts
        for i, part in enumerate(parts):
            cur = cur / part
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                break
            last = i == len(parts) - 1
            if last and stat.S_ISDIR(st.st_mode):
                shutil.rmtree(cur)
            elif not last and not stat.S_ISDIR(st.st_mode):
                os.unlink(cur)  # a file or a symlink standing where a directory must be
                break


def _remove_extras(tree: Tree, dest: Path, keep: set[tuple[int, int] | None]) -> None:
    """Remove every path under ``dest`` that is neither an entry of ``tree`` nor a directory
    one of its entries lies in; directories are walked without following links."""
    entries = {e.path for e in tree.entries}
    dirs = {str(p) for e in tree.entries for p in PurePosixPath(e.path).parents if str(p) != "."}

    def walk(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as it:
            children = list(it)
        for child in children:
            rel = prefix + child.name
            if not prefix and child.name in IGNORED_NAMES:
                continue
            if _identity(child.path) in keep:
                continue
            if rel in entries:
                continue
            if rel in dirs and child.is_dir(follow_symlinks=False):
                walk(Path(child.path), rel + "/")
                continue
            with contextlib.suppress(FileNotFoundError):
                _remove(Path(child.path))

    walk(dest, "")


class NoDestination(VaultError):
    """``restore`` was given no destination and the repository records no working directory."""

    def __init__(self) -> None:
        super().__init__(
            "no destination given and no working directory recorded"
            " (give DEST, or record one with 'vault init --workdir DIR')"
        )


@dataclass
class RestoreResult:
    """What a restore wrote, and the pin that keeps what the destination held before.

    Attributes:
        dest: the directory restored into, as an absolute path.
        version: the restored version's name, or the name it had before it was deleted
            (``None`` for an unnamed one, such as a backup).
        id: its id.
        files: entries written.
        bytes: logical bytes written.
        backup: the ``pre_restore`` pin of the old content; ``None`` when the destination was
            empty or already held a version some name, tag or pin keeps.
    """

    dest: str
    version: str | None
    id: str
    files: int
    bytes: int
    backup: PinInfo | None
