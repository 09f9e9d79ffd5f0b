"""Backends: where named files live. A backend knows keys and bytes, nothing of vault's domain.

Keys are relative, ``/``-separated names such as ``objects/ab/cdef...``. Files are written once
and published atomically; the only mutation of an existing file is :meth:`Backend.freshen`, which
bumps its modification time so that garbage collection counts it as young.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .faults import crashpoint
from .fsutil import TMP_PREFIX, AtomicFile, fsync_dir


@dataclass(frozen=True)
class FileStat:
    """Size in bytes and modification time (seconds since the epoch) of a stored file."""

    size: int
    mtime: float


class Backend(Protocol):
    """The storage interface every backend implements."""

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Publish ``data`` under ``key`` atomically (durable once :meth:`sync` returns)."""

    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``; raise ``FileNotFoundError`` when absent."""

    def freshen(self, key: str) -> bool:
        """Mark ``key`` as recently written; return ``False`` when it does not exist."""

    def stat(self, key: str) -> FileStat | None:
        """Return size and mtime of ``key``, or ``None`` when absent."""

    def list(self, prefix: str) -> Iterator[tuple[str, FileStat]]:
        """Yield every key under the folder ``prefix`` with its stat, in no particular order."""

    def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are ignored."""

    def sync(self) -> None:
        """Make every earlier :meth:`put` durable (directory entries included)."""


class LocalBackend:
    """A backend on the local file system rooted at ``root``.

    Temporary files are written in ``root/tmp`` so that an interrupted write leaves its debris in
    one place, where garbage collection finds it. Directory fsyncs after a put are deferred to
    :meth:`sync` so that a commit of many chunks fsyncs each fan-out directory once.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self._dirty: set[Path] = set()
        self._known_dirs: set[Path] = set()
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` to a temporary file, fsync it and rename it to ``key``."""
        path = self._path(key)
        parent = path.parent
        if parent not in self._known_dirs:
            if not parent.is_dir():
                parent.mkdir(parents=True, exist_ok=True)
                with self._lock:
                    self._dirty.add(parent.parent)
            self._known_dirs.add(parent)
        with AtomicFile(path, tmp_dir=self.tmp_dir, mode=0o444, sync_dir=False) as f:
            f.write(data)
        crashpoint("object-written")
        with self._lock:
            self._dirty.add(parent)

    def get(self, key: str) -> bytes:
        """Read the whole file under ``key``."""
        with open(self._path(key), "rb") as f:
            return f.read()

    def freshen(self, key: str) -> bool:
        """Bump the modification time of ``key`` to now."""
        try:
            os.utime(self._path(key))
        except FileNotFoundError:
            return False
        except PermissionError:
            # A read-only file we do not own; its existence is what matters.
            return self._path(key).exists()
        return True

    def stat(self, key: str) -> FileStat | None:
        """Return the size and mtime of ``key``."""
        try:
            st = os.stat(self._path(key))
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
        """Fsync every directory that received a file since the last sync."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        # Parents first, so a new fan-out directory is durable before the files in it matter.
        for folder in sorted(dirty, key=lambda p: len(p.parts)):
            fsync_dir(folder)

    def temp_files(self) -> Iterator[tuple[Path, FileStat]]:
        """Yield temporary files left by interrupted writers: everything in ``tmp/``, and the
        ``.vault-tmp-*`` files of ``refs.json`` and ``config.json`` in the root."""
        try:
            entries = list(os.scandir(self.tmp_dir))
        except FileNotFoundError:
            entries = []
        entries += [
            e
            for e in os.scandir(self.root)
            if e.name.startswith(TMP_PREFIX) and e.is_file(follow_symlinks=False)
        ]
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield Path(entry.path), FileStat(st.st_size, st.st_mtime)
