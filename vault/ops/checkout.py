"""Checkout: write a version's files under a destination, verified, all or nothing.

The whole tree is checked first (no absolute path, no ``..``, no name reserved for the
repository at any depth, nothing that would land in the repository), then planned against
DEST: nothing is written before both pass, so an unsafe tree is refused whole. Everything is
then written into a staging directory inside DEST, every chunk verified against its id on the
way, and only when the whole version is staged is it swapped in (:mod:`vault.ops.swap`): what
is in the way is moved aside, the staged paths are moved in, and a failure puts everything
back. A failed checkout (a damaged object, a full disk, a path that cannot be replaced) thus
leaves DEST as it was; a killed one leaves a staging directory that the next checkout or
restore into DEST rolls back and removes.

A checkout never leaves DEST holding a mix of versions: into a folder that holds files the version
does not have it is refused, before anything is written (:class:`~vault.errors.StrayFiles`),
unless asked to ``clean``, which sets those files aside in the same swap (so a killed clean
checkout puts them back too) and removes them with the staging directory.

No path component under DEST that is a symlink is ever traversed, and the repository (when
given as a protected path) is never written, moved or removed, wherever it lies in DEST.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import CorruptObject, DestinationNotEmpty, DiskFull, StrayFiles, UnsafePath
from ..faults import crashpoint
from ..fsutil import fsync_dir
from ..ids import Oid
from ..memory import keep_large_buffers
from ..meta import data_path, data_tree_path
from ..objects import KIND_FILE, KIND_LINK, FileManifest, Tree, TreeEntry
from ..progress import NullProgress, Progress
from ..revisions import resolve
from ..store import ObjectStore
from .names import fold, is_reserved
from .parts import Parts
from .swap import Staging, SwapPlan, recover
from .versions import version_tree

PREFETCH = 8
READ_THREADS = 4
"""Threads reading, decoding and verifying chunks: more than the cores, so that a thread waiting
for the disk does not leave a core idle."""


@dataclass(frozen=True)
class CheckoutResult:
    """What a checkout wrote."""

    dest: Path
    files: int
    bytes: int


def checkout_version(
    parts: Parts,
    rev: str,
    dest: str | os.PathLike[str],
    *,
    role: str | None = None,
    force: bool = False,
    clean: bool = False,
    progress: Progress | None = None,
    durable: bool = False,
) -> CheckoutResult:
    """Write the files of the version ``rev`` under ``dest``, verified, all or nothing; with
    ``role``, what was stored with it instead (``data``, ``snapshots``). See :func:`checkout`
    (``clean`` is its ``exact``).

    Raises:
        UnknownRevision: ``rev`` names no version.
        FilesCollected: the version is deleted and gc removed its files.
        NoAttachment: the version stores nothing of ``role``.
    """
    refs = parts.refs.read()
    oid = resolve(rev, refs, parts.store)
    tree = version_tree(parts.store, refs, oid, rev, role)
    if role == "data":
        records = parts.store.get_version(oid).training.get("data")
        tree = data_layout(tree, records, parts.project)
    return checkout(
        parts.store,
        tree,
        Path(dest),
        force=force,
        exact=clean,
        protect=parts.guarded(dest),
        progress=progress,
        durable=durable,
    )


def data_layout(tree: Tree, records: object, project: Path | None) -> Tree:
    """The ``data`` attachment ``tree`` with the paths checkout writes it by: as stored, unless
    the version was committed before data paths were recorded relative to the project folder.

    Such a version records every data file by its absolute path and stores it at that path
    without the leading ``/``. Each file then goes where a commit today would put it: relative
    to the project folder ``project`` when it lies inside it, else under ``_outside/``
    (:func:`vault.meta.data_tree_path`). Either way every path stays relative, and
    :func:`check_paths` still vets the result.
    """
    check_paths(tree)  # a hostile tree is refused as it is, never normalised into a safe one
    if not isinstance(records, list):
        return tree
    paths = [r.get("path") for r in records if isinstance(r, dict)]
    if not paths or not all(isinstance(p, str) and p.startswith("/") for p in paths):
        return tree  # some path is relative: recorded by today's rule
    old = {str(p).lstrip("/") for p in paths}
    if not all(e.path in old for e in tree.entries):
        return tree  # a tree stored by today's rule (absolute paths under _outside/)
    entries = (
        replace(e, path=data_tree_path(data_path("/" + e.path, project))) for e in tree.entries
    )
    return Tree(tuple(sorted(entries, key=lambda e: e.path)))


def check_paths(tree: Tree) -> None:
    """Refuse a tree with any path that is absolute, climbs out, nests under another entry or
    holds a name reserved for the repository (:mod:`vault.ops.names`), at any depth.

    Raises:
        UnsafePath: naming the first bad path.
    """
    seen: set[str] = set()
    for entry in tree.entries:
        p = entry.path
        if not p or "\x00" in p or "\\" in p:
            raise UnsafePath(p, "empty or contains NUL or backslash")
        if p.startswith("/"):
            raise UnsafePath(p, "absolute path")
        parts = p.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise UnsafePath(p, "contains an empty, '.' or '..' component")
        for part in parts:
            if is_reserved(part):
                raise UnsafePath(p, f"{part!r} is a name reserved for the repository")
        if p in seen:
            raise UnsafePath(p, "listed twice")
        if entry.kind == KIND_LINK and (not entry.target or "\x00" in entry.target):
            raise UnsafePath(p, "link target is empty or contains NUL")
        seen.add(p)
    for entry in tree.entries:
        p = entry.path
        cut = p.rfind("/")
        while cut > 0:  # every parent, by string slicing: pathlib costs ~10x on 20,000 files
            parent = p[:cut]
            if parent in seen:
                raise UnsafePath(p, f"lies under {parent}, which is a file or a link")
            cut = p.rfind("/", 0, cut)


def check_tree(tree: Tree, dest: Path, protect: tuple[Path, ...] = ()) -> None:
    """Everything about ``tree`` and ``dest`` that can be refused before DEST is looked into.

    The tree's paths must pass :func:`check_paths`; ``dest`` must not be (or lie in) a path of
    ``protect`` (the repository); and no path may land in a protected path that lies inside
    ``dest``, nor put a file where a directory holding one is. Paths are compared as a case
    insensitive file system compares them (:func:`vault.ops.names.fold`).

    Raises:
        UnsafePath: naming the destination or the first bad path.
    """
    check_paths(tree)
    real_dest = os.path.realpath(dest)
    inside: list[tuple[str, ...]] = []
    for path in protect:
        real = os.path.realpath(path)
        if real_dest == real or real_dest.startswith(real.rstrip(os.sep) + os.sep):
            raise UnsafePath(str(dest), "destination lies inside the repository")
        if real.startswith(real_dest.rstrip(os.sep) + os.sep):
            rel = os.path.relpath(real, real_dest)
            inside.append(tuple(fold(part) for part in rel.split(os.sep)))
    if not inside:
        return
    for entry in tree.entries:
        parts = tuple(fold(part) for part in entry.path.split("/"))
        for repo in inside:
            if parts[: len(repo)] == repo:
                raise UnsafePath(entry.path, "lies inside the repository")
            if repo[: len(parts)] == parts:
                raise UnsafePath(entry.path, "would replace a directory holding the repository")


def identities(paths: tuple[Path, ...]) -> frozenset[tuple[int, int]]:
    """``(st_dev, st_ino)`` of each of ``paths`` that exists: of the path itself and, when it is
    a symbolic link, of what it points at too."""
    out = set()
    for path in paths:
        for follow in (False, True):
            with contextlib.suppress(OSError):
                st = os.stat(path, follow_symlinks=follow)
                out.add((st.st_dev, st.st_ino))
    return frozenset(out)


class _Kept:
    """What a checkout never moves: names reserved for the repository, and the paths (by
    identity) it protects. Looking an entry up costs no system call unless its inode matches."""

    def __init__(self, protect: frozenset[tuple[int, int]]) -> None:
        self.ids = protect
        self.inodes = {ino for _, ino in protect}

    def protected(self, entry: os.DirEntry[str]) -> bool:
        if entry.inode() not in self.inodes:
            return False
        st = entry.stat(follow_symlinks=False)
        return (st.st_dev, st.st_ino) in self.ids

    def kept(self, entry: os.DirEntry[str]) -> bool:
        return is_reserved(entry.name) or self.protected(entry)


_Node = dict[str, "_Node | TreeEntry"]


def _trie(tree: Tree) -> _Node:
    """The tree's paths as nested directories (call after :func:`check_paths`)."""
    root: _Node = {}
    for entry in sorted(tree.entries, key=lambda e: e.path):
        *dirs, name = entry.path.split("/")
        node = root
        for d in dirs:
            child = node.setdefault(d, {})
            assert isinstance(child, dict)
            node = child
        node[name] = entry
    return root


def plan_swap(
    tree: Tree,
    dest: Path,
    *,
    exact: bool = False,
    protect: frozenset[tuple[int, int]] = frozenset(),
    strays: list[str] | None = None,
) -> SwapPlan:
    """What a checkout of ``tree`` into the existing directory ``dest`` moves; reads only.

    Every path the version has is moved in: a whole directory when DEST lacks it, else entry by
    entry, after the file or link in the way is set aside. Directories of DEST are walked
    without following a link. With ``exact`` (restore, ``checkout --clean``) whatever stands
    where the version needs something else, and whatever it does not have, is set aside too,
    except names reserved for the repository and the ``protect`` paths, at any depth (and the
    directories holding them).

    Args:
        strays: without ``exact``, receives the path of every file or link of DEST (at any
            depth, kept paths excepted) that the version does not have. Empty directories hold
            no file and are not listed.

    Raises:
        UnsafePath: DEST has a link or a file where the version needs a directory, or a
            directory where it needs a file (without ``exact``); or the version needs a file
            where a kept path or a directory holding one is; or a path lands in a protected one.
    """
    plan = SwapPlan()
    _sweep(dest, "", _trie(tree), exact, _Kept(protect), plan, strays)
    return plan


def _sweep(
    dest: Path,
    rel: str,
    node: _Node,
    exact: bool,
    kept: _Kept,
    plan: SwapPlan,
    strays: list[str] | None,
) -> None:
    """Plan the directory ``dest/rel``, which the version needs and DEST has."""
    with os.scandir(dest / rel) as it:
        present = {e.name: e for e in it}
    for name, want in node.items():
        path = f"{rel}/{name}" if rel else name
        found = present.pop(name, None)
        if found is None:
            plan.new.append(path)
            continue
        if kept.protected(found):
            raise UnsafePath(path, "lies inside the repository")
        if found.is_dir(follow_symlinks=False):
            if isinstance(want, dict):
                _sweep(dest, path, want, exact, kept, plan, strays)
                continue
            if not exact:
                raise UnsafePath(path, f"{found.path} is a directory")
            if _extras(found.path, path, kept) is not None:
                raise UnsafePath(
                    path,
                    f"{found.path} is a directory holding the repository or a '.vault',"
                    " which restore never removes",
                )
        elif isinstance(want, dict) and not exact:
            if found.is_symlink():
                raise UnsafePath(
                    _first_path(path, want),
                    f"{found.path} is a symlink; refusing to write through it",
                )
            raise UnsafePath(_first_path(path, want), f"{found.path} exists and is not a directory")
        plan.aside.append(path)
        plan.new.append(path)
    if not exact:
        if strays is not None:
            for name, found in present.items():
                if not kept.kept(found):
                    _leaves(found, f"{rel}/{name}" if rel else name, kept, strays)
        return
    for name, found in present.items():
        if kept.kept(found):
            continue
        path = f"{rel}/{name}" if rel else name
        inner = _extras(found.path, path, kept) if found.is_dir(follow_symlinks=False) else None
        if inner is None:
            plan.aside.append(path)
        else:
            plan.aside.extend(inner)


def _extras(folder: str, rel: str, kept: _Kept) -> list[str] | None:
    """Paths to set aside so that nothing is left of the directory ``folder`` but what is kept;
    ``None`` when it holds nothing kept (it can go whole)."""
    out: list[str] = []
    keeps = False
    with os.scandir(folder) as it:
        for entry in it:
            path = f"{rel}/{entry.name}"
            if kept.kept(entry):
                keeps = True
                continue
            inner = _extras(entry.path, path, kept) if entry.is_dir(follow_symlinks=False) else None
            if inner is None:
                out.append(path)
            else:
                keeps = True
                out.extend(inner)
    return out if keeps else None


def _leaves(entry: os.DirEntry[str], rel: str, kept: _Kept, out: list[str]) -> None:
    """Append ``rel`` when ``entry`` is a file or a link, else the path of every file and link
    under the directory, kept paths excepted."""
    if not entry.is_dir(follow_symlinks=False):
        out.append(rel)
        return
    with os.scandir(entry.path) as it:
        for inner in sorted(it, key=lambda e: e.name):
            if not kept.kept(inner):
                _leaves(inner, f"{rel}/{inner.name}", kept, out)


def _first_path(rel: str, node: _Node) -> str:
    """The first entry's path under ``rel`` (to name in an error)."""
    name, child = next(iter(node.items()))
    return _first_path(f"{rel}/{name}", child) if isinstance(child, dict) else f"{rel}/{name}"


def _load_manifests(store: ObjectStore, tree: Tree) -> dict[str, FileManifest]:
    """The file manifest of every file entry, checked against the sizes the tree records."""
    out: dict[str, FileManifest] = {}
    for entry in tree.entries:
        if entry.kind != KIND_FILE or entry.file is None or entry.file in out:
            continue
        manifest = store.get_file(entry.file)
        if manifest.size != entry.size:
            raise CorruptObject(
                entry.file, why=f"{entry.path}: manifest size {manifest.size} != {entry.size}"
            )
        out[entry.file] = manifest
    return out


def _write_staged(
    store: ObjectStore, tree: Tree, staging: Path, progress: Progress, durable: bool
) -> None:
    """Create every entry under ``staging``; file contents are written by the reader threads.

    Each thread fetches a chunk, decodes and verifies it, and writes it at its offset in its
    (already created, full-length) file, so no single thread copies every byte. At most
    :data:`PREFETCH` chunks are in flight; a file is closed once all its chunks are written.
    ``staging`` is this checkout's own new directory: nothing in it needs checking.
    """
    manifests = _load_manifests(store, tree)
    window: deque[tuple[Future[int], _OpenFile]] = deque()
    made: set[str] = set()

    def drain_one() -> None:
        fut, handle = window.popleft()
        progress.advance(fut.result())
        handle.pending -= 1
        if handle.pending == 0:
            handle.finish(durable)

    opened: list[_OpenFile] = []
    with ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="vault-read") as pool:
        try:
            for entry in tree.entries:
                parent = entry.path.rpartition("/")[0]
                if parent and parent not in made:
                    _make_dirs(staging, parent, made)
                target = staging / entry.path
                if entry.kind == KIND_LINK:
                    assert entry.target is not None
                    os.symlink(entry.target, target)
                    continue
                assert entry.file is not None
                manifest = manifests[entry.file]
                handle = _OpenFile(target, entry, len(manifest.chunks))
                opened.append(handle)
                if handle.pending == 0:
                    handle.finish(durable)
                    continue
                offset = 0
                for c in manifest.chunks:
                    while len(window) >= PREFETCH:
                        drain_one()
                    fut = pool.submit(_copy_chunk, store, c.oid, c.size, handle.fd, offset)
                    window.append((fut, handle))
                    offset += c.size
            while window:
                drain_one()
        finally:
            for fut, _ in window:
                fut.cancel()
            pool.shutdown(wait=True)
            for handle in opened:
                handle.close()


def _make_dirs(root: Path, rel: str, made: set[str]) -> None:
    """Create ``root/rel`` and those of its parents ``made`` does not list; record them."""
    missing = []
    while rel and rel not in made:
        missing.append(rel)
        rel = rel.rpartition("/")[0]
    for d in reversed(missing):
        os.mkdir(root / d)
        made.add(d)


class _OpenFile:
    """A staged file being written by the reader threads.

    It is created at its full length and only chunks holding a non-zero byte are written, so a
    sparse file comes back sparse and no file takes more room than its non-zero chunks need.
    """

    def __init__(self, target: Path, entry: TreeEntry, chunks: int) -> None:
        self.entry = entry
        self.pending = chunks
        self.fd: int | None = os.open(
            target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
        )
        if entry.size:
            os.ftruncate(self.fd, entry.size)

    def finish(self, durable: bool) -> None:
        assert self.fd is not None
        os.fchmod(self.fd, self.entry.mode & 0o777)  # never setuid/setgid/sticky
        if durable:
            os.fsync(self.fd)
        self.close()

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


@functools.lru_cache(maxsize=16)
def _zeros(n: int) -> bytes:
    # Pages never written: they cost no memory until read, and then only the kernel's zero page.
    return bytes(n)


def _is_zero(data: bytes | bytearray) -> bool:
    """Whether ``data`` (not empty) is all zero bytes: one memcmp, stopping at the first
    non-zero byte."""
    return not data[0] and not data[-1] and data == _zeros(len(data))


def _copy_chunk(store: ObjectStore, oid: Oid, size: int, fd: int | None, offset: int) -> int:
    """Fetch and verify one chunk and write it at ``offset``, unless it is all zeros (the file
    reads as zeros there already); return its length."""
    assert fd is not None
    data = store.get(oid, size=size)
    if len(data) != size:
        raise CorruptObject(oid, why=f"holds {len(data)} bytes, its manifest says {size}")
    if size and _is_zero(data):
        return size
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n
    return size


def checkout(
    store: ObjectStore,
    tree: Tree,
    dest: Path,
    *,
    force: bool = False,
    exact: bool = False,
    protect: tuple[Path, ...] = (),
    progress: Progress | None = None,
    durable: bool = False,
) -> CheckoutResult:
    """Write ``tree`` under ``dest``, all or nothing.

    Nothing is written before the whole tree is checked (:func:`check_tree`) and planned
    against DEST (:func:`plan_swap`). The version is staged in full in a directory inside DEST,
    then swapped in (:class:`vault.ops.swap.Staging`). What a killed checkout left in DEST is
    put back first (:func:`vault.ops.swap.recover`).

    Args:
        store: where the objects are.
        tree: the version's tree.
        dest: the destination directory, created with its parents when missing.
        force: write into a non-empty ``dest``, replacing the version's paths; refused when
            ``dest`` holds a file the version does not have (which would stay, mixing versions).
        exact: make ``dest`` hold exactly the version (restore, ``checkout --clean``): also set
            aside whatever is in the way and whatever the version does not have, except names
            reserved for the repository and the ``protect`` paths; what was set aside is
            removed once the swap commits. Implies ``force``.
        protect: paths never written, moved or removed (the repository).
        progress: receives bytes written.
        durable: fsync every file before it is moved into place. Off by default, as in git,
            cp and restic: the repository still holds every byte, so a power cut can cost only
            the copy being written, which a new checkout rewrites. A killed process loses
            nothing either way (the page cache survives it).

    Raises:
        DestinationNotEmpty: ``dest`` has files and neither ``force`` nor ``exact`` is set.
        StrayFiles: with ``force`` but not ``exact``, ``dest`` holds files the version does
            not have; nothing was written.
        UnsafePath: the tree or ``dest`` would make us write outside ``dest`` or into a
            protected path.
        SwapFailed: a path of DEST could not be replaced; DEST was put back as it was.
        CorruptObject, ObjectMissing: a damaged store; nothing is left behind.
    """
    keep_large_buffers()
    progress = progress or NullProgress()
    dest = Path(os.path.abspath(dest))
    check_tree(tree, dest, protect)
    created: list[Path] = []
    if os.path.lexists(dest):
        if not dest.is_dir():
            raise UnsafePath(str(dest), "destination exists and is not a directory")
        recover(dest)
        if not (force or exact) and not _is_empty_dir(dest):
            raise DestinationNotEmpty(str(dest))
    else:
        cur = dest
        while not os.path.lexists(cur):
            created.append(cur)
            cur = cur.parent
        for d in reversed(created):
            os.mkdir(d)
    staging: Staging | None = None
    progress.start("checkout", tree.size)
    try:
        strays: list[str] | None = None if exact or created else []
        plan = plan_swap(tree, dest, exact=exact, protect=identities(protect), strays=strays)
        if strays:
            raise StrayFiles(str(dest), sorted(strays))
        staging = Staging(dest)
        _write_staged(store, tree, staging.new, progress, durable)
        if durable:
            _fsync_dirs(staging.new)  # a staged folder is moved in whole: its entries first
        staging.swap(plan, sync_journal=bool(plan.aside))
        crashpoint("restore-written" if exact else "checkout-swapped")
        staging.commit()
        for rel in sorted({os.path.dirname(p) for p in (*plan.aside, *plan.new)}):
            fsync_dir(dest / rel)
        if created:
            fsync_dir(created[-1].parent)
    except BaseException as exc:
        if staging is not None:
            staging.close()
        for d in created:
            with contextlib.suppress(OSError):
                os.rmdir(d)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(str(dest)) from exc
        raise
    finally:
        progress.finish()
    staging.close()
    if durable:
        fsync_dir(dest)  # the staging folder's removal too: no debris after a power cut
    return CheckoutResult(dest, tree.file_count, tree.size)


def _fsync_dirs(root: Path) -> None:
    """fsync every directory under ``root``, deepest first, so that a folder renamed into DEST
    after a power cut still lists what was written into it."""
    for folder, _, _ in sorted(os.walk(root), key=lambda w: -w[0].count(os.sep)):
        fsync_dir(Path(folder))


def _is_empty_dir(path: Path) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None
