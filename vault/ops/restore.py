"""Restore: make a working directory hold exactly one version's files.

The repository first commits and pins what the directory holds (unless a name, tag or pin keeps
that very tree already); only then does anything in the directory change. The version is then
written by an exact checkout: staged and verified in full, then swapped in, with everything the
version does not have moved aside in the same swap, all or nothing. A crash at any instant
therefore leaves the old content restorable from its ``pre_restore`` pin, and the next checkout
or restore into the directory puts back what a killed one had moved.

Restore keeps what commit never stores: names reserved for the repository (``.vault`` at any
depth, see :mod:`vault.ops.names`) and the repository itself, wherever it lies in the directory,
with the directories that hold them. A version that would need a file where one of those is is
refused before anything changes.

:func:`restore` is the verb; :func:`write_exactly` its file-system half, run once the pin is
published.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnsafePath, VaultError
from ..faults import crashpoint
from ..objects import KIND_FILE, Tree
from ..progress import Progress
from ..refs import PINS
from ..revisions import resolve
from ..store import ObjectStore
from . import backup as backup_op
from .checkout import check_tree, checkout, identities, plan_swap
from .names import is_reserved
from .parts import Parts
from .pins import PRE_RESTORE, PinInfo, pin_info
from .swap import recover
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
        UnsafePath: ``dest`` is not a directory or lies inside the repository; the version
            holds an unsafe path, or needs a file where the repository, a ``.vault`` or a
            directory holding one is. Nothing has changed then.
        FilesCollected: gc has removed the version's files.
    """
    if dest is None:
        raise NoDestination()
    store = parts.store
    refs = parts.refs.read()
    oid = resolve(rev, refs, store)
    tree = version_tree(store, refs, oid, rev)
    check_files_kept(store, refs, oid, rev)
    for entry in tree.entries:  # fail on a damaged or collected version before any change
        if entry.kind == KIND_FILE and entry.file is not None:
            store.get_file(entry.file)
    prepare(tree, dest, parts.local_paths())
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
    skip = identities(keep)
    with os.scandir(dest) as it:
        for entry in it:
            if is_reserved(entry.name):
                continue
            st = entry.stat(follow_symlinks=False)
            if (st.st_dev, st.st_ino) in skip:
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


def prepare(tree: Tree, dest: Path, protect: tuple[Path, ...]) -> None:
    """Refuse, before anything changes, a restore of ``tree`` into ``dest`` that could not go
    through whole; put back first what a killed checkout or restore left in ``dest``.
    ``protect`` holds the repository's directory when it has one on this machine.

    Raises:
        UnsafePath: an unsafe tree, a destination inside the repository, or a version that
            needs a file where the repository, a ``.vault`` or a directory holding one is.
        RecoveryFailed: what a killed checkout moved cannot be put back safely.
    """
    dest = Path(os.path.abspath(dest))
    for root in protect:
        check_destination(dest, root)
    check_tree(tree, dest, protect)
    if dest.is_dir():
        recover(dest)
        plan_swap(tree, dest, exact=True, protect=identities(protect))


def write_exactly(
    store: ObjectStore,
    tree: Tree,
    dest: Path,
    *,
    keep: tuple[Path, ...] = (),
    progress: Progress | None = None,
) -> None:
    """Make ``dest`` hold exactly ``tree``'s entries. Call only once its old content is kept.

    Paths in ``keep`` (the repository, when it lies inside ``dest``) and names reserved for the
    repository, at any depth, are never touched, nor the directories holding them.
    """
    checkout(store, tree, dest, exact=True, protect=keep, progress=progress)


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
