"""Backends: where named files live. A backend knows keys and bytes, nothing of vault's domain.

Keys are relative, ``/``-separated names such as ``objects/ab/cdef...`` or ``refs.json``. Every
file of a repository goes through a backend: objects, the refs document, the reflog, the config
and the lock leases. A backend offers

* plain writes, published atomically (a reader sees the old file or the new one, never a part);
* **conditional writes**, the only primitive refs need on a store without locks:
  :meth:`Backend.put_if_absent` (S3's ``If-None-Match: *``) and :meth:`Backend.put_if_match`,
  which replaces a file only while it still has the version tag (ETag) the caller read;
* listing, stat, delete, and a local scratch directory for work that needs real files.

Two implementations live here and in :mod:`vault.backend_memory`: :class:`LocalBackend` (a
directory) and :class:`~vault.backend_memory.MemoryBackend` (a dict, for tests). Both pass the
same contract suite (``tests/backend_contract.py``).
"""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import PreconditionFailed
from .faults import crashpoint
from .fsutil import TMP_PREFIX, AtomicFile, fsync_dir, process_alive, reraise_disk_full, temp_name
from .ids import hash_bytes
from .lock import file_lock

_FADV_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)


@dataclass(frozen=True)
class FileStat:
    """Size in bytes and modification time (seconds since the epoch) of a stored file."""

    size: int
    mtime: float


@dataclass(frozen=True)
class Capabilities:
    """What a backend is, as data rather than as type checks.

    Attributes:
        name: a short name for messages (``local``, ``memory``, ``s3``).
        local_root: the directory holding the repository when it is on this machine's file
            system (the stat cache lives there), else ``None``.
    """

    name: str
    local_root: Path | None = None


class Backend(Protocol):
    """The storage interface every backend implements."""

    capabilities: Capabilities

    def put(self, key: str, data: bytes | bytearray | memoryview, *, defer: bool = False) -> None:
        """Publish ``data`` under ``key`` atomically, replacing what was there; with ``defer``,
        only at the next :meth:`sync` (durable once :meth:`sync` returns in both cases)."""

    def put_if_absent(self, key: str, data: bytes) -> str:
        """Publish ``data`` under ``key`` only if no file has that key; return its version tag.

        Raises:
            PreconditionFailed: ``key`` exists.
        """

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace the file under ``key`` only if its version tag is still ``etag``; return the
        new tag.

        Raises:
            PreconditionFailed: ``key`` is absent or was replaced since ``etag`` was read.
        """

    def ensure_durable(self, key: str) -> bool:
        """Make sure the existing file ``key`` is durable once :meth:`sync` returns (a writer
        that reuses a file another writer published, perhaps not yet durably, relies on it);
        return ``False`` when ``key`` does not exist."""

    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``; raise ``FileNotFoundError`` when absent."""

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        """Return the bytes under ``key`` with their version tag, for :meth:`put_if_match`."""

    def get_head(self, key: str, n: int) -> bytes:
        """Return at most the first ``n`` bytes under ``key``; ``FileNotFoundError`` when absent."""

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Return at most ``length`` bytes under ``key`` from ``offset`` on (fewer, or none,
        where the file ends first); ``FileNotFoundError`` when absent."""

    def stat(self, key: str) -> FileStat | None:
        """Return size and mtime of ``key``, or ``None`` when absent."""

    def list(self, prefix: str) -> Iterator[tuple[str, FileStat]]:
        """Yield every key under the folder ``prefix`` with its stat, in no particular order."""

    def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are ignored."""

    def sync(self) -> None:
        """Make every earlier :meth:`put` durable (directory entries included)."""

    def discard(self) -> None:
        """Forget every deferred put not yet synced."""

    def temp_files(self) -> builtins.list[tuple[str, int]]:
        """Debris of interrupted writes: ``(name, size)`` pairs for :meth:`remove_temp`."""

    def remove_temp(self, name: str) -> None:
        """Remove one item :meth:`temp_files` listed."""

    def scratch_dir(self) -> Path:
        """A directory on the local file system for temporary work (a consolidation's merge);
        what is left there after a crash is listed by :meth:`temp_files`."""

    def now(self) -> float:
        """The current time on the clock :meth:`stat` times come from (epoch seconds): a
        grace period is measured on the store's clock, not on a client's that may be off."""


def check_range(offset: int, length: int) -> None:
    """Refuse a byte range no file has (a negative offset or length): a caller's bug."""
    if offset < 0 or length < 0:
        raise ValueError(f"bad byte range: offset {offset}, length {length}")


def etag_of(data: bytes | bytearray | memoryview) -> str:
    """The version tag local backends give content: its BLAKE3 hash, so equal bytes match."""
    return hash_bytes(data)


class LocalBackend:
    """A backend on the local file system rooted at ``root``.

    A deferred put writes a temporary file in ``root/tmp`` and returns; :meth:`sync` then fsyncs
    every pending file (several at once, so the file system commits them together), renames each
    onto its key and fsyncs the directories that received one. That is still write, fsync,
    rename for each object, but a commit of a thousand chunks waits for the disk a few times,
    not a thousand times. Until :meth:`sync` a pending object is readable through this backend
    only. An interrupted write leaves its debris in ``tmp/``, where garbage collection finds it.
    """

    SYNC_THREADS = 8
    FLUSH_BYTES = 1 << 30
    """Pending bytes that trigger an early :meth:`sync`, so a huge commit does not pile up."""

    BESIDE = ("locks/",)
    """Keys whose temporary files go beside them, not in ``tmp/`` (see :meth:`_put_now`)."""
    STALE_TEMP = 3600.0
    """Age after which a temporary file beside a lock is debris of a dead writer."""

    CAS_LOCK = "locks/refs.lock"
    """The lock file that serialises conditional writes on this machine (the name format 2
    used for its refs lock, so a format-2 writer and this one exclude each other)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.capabilities = Capabilities("local", root)
        self._root_prefix = os.path.join(root, "")
        self.tmp_dir = root / "tmp"
        self._dirty: set[Path] = set()
        self._known_dirs: set[Path] = set()
        self._pending: dict[str, Path] = {}
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, data: bytes | bytearray | memoryview, *, defer: bool = False) -> None:
        """Publish ``data`` under ``key``: temporary file, fsync, rename.

        With ``defer`` the file is only written; the next :meth:`sync` fsyncs and publishes it
        together with every other deferred put.
        """
        if not defer:
            self._put_now(key, data)
            return
        tmp = self.tmp_dir / temp_name(self._path(key)).name
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except OSError as exc:
            reraise_disk_full(exc, tmp)
            raise
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            # Start writing the pages back now, so the fsync in sync() finds little left to
            # do: the disk works while the next chunks are compressed. (Linux starts
            # asynchronous writeback of dirty pages on this advice; elsewhere it is a no-op.)
            if _FADV_DONTNEED is not None:
                os.posix_fadvise(fd, 0, 0, _FADV_DONTNEED)
        except BaseException as exc:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                reraise_disk_full(exc, tmp)
            raise
        os.close(fd)
        with self._lock:
            old = self._pending.get(key)
            self._pending[key] = tmp
            self._pending_bytes += len(data)
            flush = self._pending_bytes >= self.FLUSH_BYTES
        if old is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(old)
        if flush:
            self.sync()

    def _put_now(self, key: str, data: bytes | bytearray | memoryview) -> None:
        path = self._path(key)
        parent = path.parent
        if parent not in self._known_dirs:
            if not parent.is_dir():
                parent.mkdir(parents=True, exist_ok=True)
                with self._lock:
                    self._dirty.add(parent.parent)
            self._known_dirs.add(parent)
        # A lock file is written before its writer holds any lock, so a gc may be sweeping
        # tmp/ meanwhile: its temporary file goes beside it instead. Nor is it made durable:
        # after a power cut every lease of before is stale (the boot id changed), and one
        # lost or torn is ignored, so its fsyncs would only slow every writer down.
        lock = key.startswith(self.BESIDE)
        with AtomicFile(
            path,
            tmp_dir=None if lock else self.tmp_dir,
            mode=0o444,
            sync_dir=False,
            durable=not lock,
        ) as f:
            f.write(data)
        crashpoint("object-written")
        if not lock:
            with self._lock:
                self._dirty.add(parent)

    def ensure_durable(self, key: str) -> bool:
        """Have :meth:`sync` fsync the directory holding ``key``: the writer that renamed it
        there may not have synced that directory yet."""
        with self._lock:
            if key in self._pending:
                return True
        path = self._path(key)
        if not os.path.lexists(path):
            return False
        with self._lock:
            self._dirty.add(path.parent)
        return True

    def get(self, key: str) -> bytes:
        """Read the whole file under ``key``."""
        with open(self._readable(key), "rb") as f:
            return f.read()

    def _readable(self, key: str) -> str | Path:
        if self._pending:
            with self._lock:
                tmp = self._pending.get(key)
            if tmp is not None:
                return tmp
        return self._root_prefix + key  # a plain string: reads are the hot path of log

    def get_head(self, key: str, n: int) -> bytes:
        """Read at most the first ``n`` bytes under ``key``."""
        with open(self._readable(key), "rb") as f:
            return f.read(n)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Read at most ``length`` bytes under ``key`` from ``offset`` on."""
        check_range(offset, length)
        with open(self._readable(key), "rb") as f:
            f.seek(offset)
            return f.read(length)

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        """The bytes under ``key`` and their version tag (the hash of the bytes)."""
        data = self.get(key)
        return data, etag_of(data)

    def put_if_absent(self, key: str, data: bytes) -> str:
        """Publish ``data`` under ``key`` unless it exists: temporary file, fsync, then a hard
        link onto the key, which fails atomically when the key exists."""
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_dir / temp_name(final).name
        with AtomicFile(tmp, tmp_dir=self.tmp_dir, mode=0o644, sync_dir=False) as f:
            f.write(data)
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise PreconditionFailed(key, "it exists") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_dir(final.parent)
        return etag_of(data)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace the file under ``key`` if its content still has the tag ``etag``.

        On this machine the compare and the rename happen under an ``flock`` on
        :data:`CAS_LOCK`, the local equivalent of an object store's ``If-Match``.
        """
        final = self._path(key)
        with self._cas_lock():
            try:
                current = final.read_bytes()
            except FileNotFoundError:
                raise PreconditionFailed(key, "it does not exist") from None
            if etag_of(current) != etag:
                raise PreconditionFailed(key, "it changed since it was read")
            with AtomicFile(final, tmp_dir=self.tmp_dir, mode=0o644) as f:
                f.write(data)
        return etag_of(data)

    def _cas_lock(self) -> contextlib.AbstractContextManager[None]:
        path = self._path(self.CAS_LOCK)
        path.parent.mkdir(parents=True, exist_ok=True)
        return file_lock(path)  # held for a read and a rename: never long

    def stat(self, key: str) -> FileStat | None:
        """Return the size and mtime of ``key``."""
        try:
            st = os.stat(self._readable(key))
        except FileNotFoundError:
            return None
        return FileStat(st.st_size, st.st_mtime)

    def list(self, prefix: str) -> Iterator[tuple[str, FileStat]]:
        """Walk the folder ``prefix`` and yield its files (temporary files excluded)."""
        base = self._path(prefix)
        stack = [base]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif not entry.name.startswith(TMP_PREFIX):
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    rel = os.path.relpath(entry.path, self.root).replace(os.sep, "/")
                    yield rel, FileStat(st.st_size, st.st_mtime)

    def delete(self, key: str) -> None:
        """Unlink ``key``."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def sync(self) -> None:
        """Publish every pending put: fsync the files, rename them onto their keys, fsync the
        directories. Objects become visible under their keys only once their bytes are durable."""
        with self._sync_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                self._pending_bytes = 0
            if pending:
                try:
                    self._publish(pending)
                except BaseException:
                    for tmp in pending.values():
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(tmp)
                    raise
            with self._lock:
                dirty, self._dirty = self._dirty, set()
            # Parents first, so a new fan-out directory is durable before the files in it matter.
            for folder in sorted(dirty, key=lambda p: len(p.parts)):
                fsync_dir(folder)

    def discard(self) -> None:
        """Forget every deferred put not yet synced and remove its temporary file."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._pending_bytes = 0
        for tmp in pending.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _publish(self, pending: dict[str, Path]) -> None:
        tmps = list(pending.values())
        if len(tmps) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self.SYNC_THREADS, len(tmps))) as pool:
                list(pool.map(_fsync_file, tmps))
        else:
            for tmp in tmps:
                _fsync_file(tmp)
        crashpoint("before-rename")
        for key, tmp in pending.items():
            final = self._path(key)
            parent = final.parent
            if parent not in self._known_dirs:
                if not parent.is_dir():
                    parent.mkdir(parents=True, exist_ok=True)
                    self._dirty.add(parent.parent)
                self._known_dirs.add(parent)
            try:
                os.rename(tmp, final)
            except OSError as exc:
                reraise_disk_full(exc, final)
                raise
            self._dirty.add(parent)
            crashpoint("object-written")

    def temp_files(self) -> builtins.list[tuple[str, int]]:
        """Debris of interrupted writers: everything in ``tmp/`` (files, and the work folders
        of killed consolidations), and the ``.vault-tmp-*`` files of ``refs.json`` and
        ``config.json`` in the root. Names are relative to the root."""
        found: list[os.DirEntry[str]] = []
        with contextlib.suppress(FileNotFoundError):
            found += os.scandir(self.tmp_dir)
        found += [
            e
            for e in os.scandir(self.root)
            if e.name.startswith(TMP_PREFIX) and e.is_file(follow_symlinks=False)
        ]
        old = time.time() - self.STALE_TEMP
        for folder in self.BESIDE:
            with contextlib.suppress(FileNotFoundError):
                found += [
                    e
                    for e in os.scandir(self._path(folder))
                    if e.name.startswith(TMP_PREFIX)
                    and (not _writer_alive(e.name) or e.stat().st_mtime < old)
                ]
        out = []
        for entry in found:
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
            out.append((os.path.relpath(entry.path, self.root).replace(os.sep, "/"), size))
        return out

    def remove_temp(self, name: str) -> None:
        """Remove one item of :meth:`temp_files` (a folder with what it holds)."""
        path = self._path(name)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def now(self) -> float:
        """This machine's clock, which stamps the files."""
        return time.time()

    def scratch_dir(self) -> Path:
        """``tmp/`` in the repository: on the same file system, so results can be renamed."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        return self.tmp_dir


def _writer_alive(temp: str) -> bool:
    """Whether the process that named the temporary file ``temp`` (``fsutil.temp_name``:
    ``.vault-tmp-NAME.PID.RAND``) still runs on this machine; an unreadable name counts as
    alive, so only age removes it."""
    try:
        pid = int(temp.rsplit(".", 2)[-2])
    except (IndexError, ValueError):
        return True
    return process_alive(pid)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        reraise_disk_full(exc, path)
        raise
    finally:
        os.close(fd)
