"""Checkout: write a version's files under a destination, verified, all or nothing.

Everything is first written into a staging directory (beside DEST when DEST does not exist yet,
inside it otherwise), every chunk verified against its id on the way. Only when the whole version
is staged are the files moved to their final names, so a failed checkout (a damaged object, a full
disk) leaves no file under a final name with bytes other than the version's, and removes what it
staged.

A hostile or damaged tree cannot write outside DEST: paths are checked before anything is
written, and no path component under DEST that is a symlink is ever traversed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import CorruptObject, DestinationNotEmpty, DiskFull, UnsafePath
from ..fsutil import TMP_PREFIX, fsync_dir
from ..ids import Oid
from ..memory import keep_large_buffers
from ..objects import KIND_FILE, KIND_LINK, FileManifest, Tree, TreeEntry
from ..progress import NullProgress, Progress
from ..revisions import resolve
from ..store import ObjectStore
from .parts import Parts
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
    progress: Progress | None = None,
    durable: bool = False,
) -> CheckoutResult:
    """Write the files of the version ``rev`` under ``dest``, verified, all or nothing; with
    ``role``, what was stored with it instead (``data``, ``snapshots``). See :func:`checkout`.

    Raises:
        UnknownRevision: ``rev`` names no version.
        FilesCollected: the version is deleted and gc removed its files.
        NoAttachment: the version stores nothing of ``role``.
    """
    refs = parts.refs.read()
    oid = resolve(rev, refs, parts.store)
    tree = version_tree(parts.store, refs, oid, rev, role)
    return checkout(parts.store, tree, Path(dest), force=force, progress=progress, durable=durable)


def check_paths(tree: Tree) -> None:
    """Refuse a tree with any path that is absolute, climbs out, or nests under another entry.

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
        if p in seen:
            raise UnsafePath(p, "listed twice")
        if entry.kind == KIND_LINK and (not entry.target or "\x00" in entry.target):
            raise UnsafePath(p, "link target is empty or contains NUL")
        seen.add(p)
    for entry in tree.entries:
        parent = PurePosixPath(entry.path).parent
        while str(parent) != ".":
            if str(parent) in seen:
                raise UnsafePath(entry.path, f"lies under {parent}, which is a file or a link")
            parent = parent.parent


def _is_empty_dir(path: Path) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


def _ensure_dirs(root: Path, rel: PurePosixPath) -> Path:
    """Create ``root/rel`` directory by directory, refusing to pass through any symlink."""
    cur = root
    for part in rel.parts:
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            os.mkdir(cur)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(str(rel), f"{cur} is a symlink; refusing to write through it")
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(str(rel), f"{cur} exists and is not a directory")
    return cur


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
    (already created, preallocated) file, so no single thread copies every byte. At most
    :data:`PREFETCH` chunks are in flight; a file is closed once all its chunks are written.
    """
    manifests = _load_manifests(store, tree)
    window: deque[tuple[Future[int], _OpenFile]] = deque()

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
                rel = PurePosixPath(entry.path)
                parent = _ensure_dirs(staging, rel.parent)
                target = parent / rel.name
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


class _OpenFile:
    """A staged file being written by the reader threads."""

    def __init__(self, target: Path, entry: TreeEntry, chunks: int) -> None:
        self.entry = entry
        self.pending = chunks
        self.fd: int | None = os.open(
            target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
        )
        if entry.size:
            with contextlib.suppress(OSError):
                os.posix_fallocate(self.fd, 0, entry.size)

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


def _copy_chunk(store: ObjectStore, oid: Oid, size: int, fd: int | None, offset: int) -> int:
    """Fetch and verify one chunk and write it at ``offset``; return its length."""
    assert fd is not None
    data = store.get(oid)
    if len(data) != size:
        raise CorruptObject(oid, why=f"holds {len(data)} bytes, its manifest says {size}")
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
    progress: Progress | None = None,
    durable: bool = False,
) -> CheckoutResult:
    """Write ``tree`` under ``dest``.

    Args:
        store: where the objects are.
        tree: the version's tree.
        dest: the destination directory, created with its parents when missing.
        force: write into a non-empty ``dest``, replacing the version's paths and leaving other
            files alone.
        progress: receives bytes written.
        durable: fsync every file before it is moved into place. Off by default, as in git,
            cp and restic: the repository still holds every byte, so a power cut can cost only
            the copy being written, which a new checkout rewrites. A killed process loses
            nothing either way (the page cache survives it).

    Raises:
        DestinationNotEmpty: ``dest`` has files and ``force`` is false.
        UnsafePath: the tree or ``dest`` would make us write outside ``dest``.
        CorruptObject, ObjectMissing: a damaged store; nothing is left behind.
    """
    keep_large_buffers()
    progress = progress or NullProgress()
    check_paths(tree)
    dest = Path(os.path.abspath(dest))
    exists = os.path.lexists(dest)
    if exists:
        if not dest.is_dir():
            raise UnsafePath(str(dest), "destination exists and is not a directory")
        if not force and not _is_empty_dir(dest):
            raise DestinationNotEmpty(str(dest))
        if force:
            _check_force_targets(tree, dest)
    created: list[Path] = []
    if not exists:
        missing = []
        cur = dest.parent
        while not os.path.lexists(cur):
            missing.append(cur)
            cur = cur.parent
        for d in reversed(missing):
            os.mkdir(d)
            created.append(d)
    staging_parent = dest if exists else dest.parent
    staging = staging_parent / f"{TMP_PREFIX}checkout-{os.getpid()}-{os.urandom(4).hex()}"
    progress.start("checkout", tree.size)
    try:
        os.mkdir(staging, 0o700)
        _write_staged(store, tree, staging, progress, durable)
        if exists:
            _move_into(tree, staging, dest)
            shutil.rmtree(staging)
        else:
            os.chmod(staging, 0o777 & ~_umask())
            os.rename(staging, dest)
        fsync_dir(dest if exists else dest.parent)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        for d in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(d)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(str(dest)) from exc
        raise
    finally:
        progress.finish()
    return CheckoutResult(dest, tree.file_count, tree.size)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_force_targets(tree: Tree, dest: Path) -> None:
    """Before anything is written, make sure every final path can be replaced safely."""
    for entry in tree.entries:
        rel = PurePosixPath(entry.path)
        cur = dest
        for part in rel.parent.parts:
            cur = cur / part
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                break
            if stat.S_ISLNK(st.st_mode):
                raise UnsafePath(entry.path, f"{cur} is a symlink; refusing to write through it")
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafePath(entry.path, f"{cur} exists and is not a directory")
        else:
            final = dest / entry.path
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISDIR(os.lstat(final).st_mode):
                    raise UnsafePath(entry.path, f"{final} is a directory")


def _move_into(tree: Tree, staging: Path, dest: Path) -> None:
    """Rename each staged entry onto its final name (replacing a file or link, never following)."""
    touched: set[Path] = set()
    for entry in tree.entries:
        rel = PurePosixPath(entry.path)
        parent = _ensure_dirs(dest, rel.parent)
        os.replace(staging / entry.path, parent / rel.name)
        touched.add(parent)
    for d in touched:
        fsync_dir(d)
