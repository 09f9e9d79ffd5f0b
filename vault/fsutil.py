"""Durable file publication: write to a temporary file, fsync, rename, fsync the directory.

Every object, ref file and checked-out file vault publishes goes through :func:`atomic_write` or
:class:`AtomicFile`, so a reader never sees a partly written file under its final name and a crash
at any instant leaves either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from .errors import DiskFull
from .faults import crashpoint

TMP_PREFIX = ".vault-tmp-"


def temp_name(final: Path) -> Path:
    """Return a unique temporary path beside ``final``, recognisable by :data:`TMP_PREFIX`."""
    return final.with_name(f"{TMP_PREFIX}{final.name}.{os.getpid()}.{os.urandom(4).hex()}")


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename into it, a new file in it) to stable storage."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """Create the directory ``path`` and its missing parents, durably: the directory holding
    each one is fsynced, and so is ``path``'s parent even when ``path`` existed (an earlier,
    killed caller may have created it without syncing)."""
    missing = []
    cur = path
    while not cur.is_dir():
        missing.append(cur)
        cur = cur.parent
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            if not d.is_dir():
                raise
        fsync_dir(d.parent)
    if not missing:
        fsync_dir(path.parent)


def reraise_disk_full(exc: OSError, where: Path) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        raise DiskFull(str(where)) from exc


class AtomicFile:
    """A file written under a temporary name and published by rename when the block succeeds.

    On any exception the temporary file is removed and nothing appears under the final name.

    Args:
        final: where the file is published.
        tmp_dir: where the temporary file is written (same file system as ``final``); defaults
            to ``final``'s directory.
        mode: permission bits of the published file.
        sync_dir: whether to fsync ``final``'s directory after the rename. Callers that publish
            many files into few directories may pass ``False`` and fsync each directory once.
        overwrite: whether to replace an existing file; when ``False`` and ``final`` exists the
            rename still happens (same content is assumed) but callers usually check first.
        durable: whether to fsync at all; ``False`` for files a power cut may lose (lease
            locks: after a restart every lease of before is stale anyway).
    """

    def __init__(
        self,
        final: Path,
        *,
        tmp_dir: Path | None = None,
        mode: int = 0o644,
        sync_dir: bool = True,
        durable: bool = True,
    ) -> None:
        self.final = final
        self.durable = durable
        self.tmp = (tmp_dir / temp_name(final).name) if tmp_dir is not None else temp_name(final)
        self.mode = mode
        self.sync_dir = sync_dir
        self._fd: int | None = None

    def __enter__(self) -> AtomicFile:
        try:
            self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
        except OSError as exc:
            reraise_disk_full(exc, self.final)
            raise
        return self

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the temporary file."""
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            reraise_disk_full(exc, self.final)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fd, self._fd = self._fd, None
        if exc_type is not None:
            if fd is not None:
                os.close(fd)
            _unlink_quietly(self.tmp)
            return
        try:
            assert fd is not None
            try:
                os.fchmod(fd, self.mode)
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            crashpoint("before-rename")
            os.rename(self.tmp, self.final)
        except OSError as exc:
            _unlink_quietly(self.tmp)
            reraise_disk_full(exc, self.final)
            raise
        except BaseException:
            _unlink_quietly(self.tmp)
            raise
        crashpoint("after-rename")
        if self.sync_dir and self.durable:
            fsync_dir(self.final.parent)


def atomic_write(
    final: Path,
    data: bytes | bytearray | memoryview | Iterable[bytes],
    *,
    tmp_dir: Path | None = None,
    mode: int = 0o644,
    sync_dir: bool = True,
) -> None:
    """Publish ``data`` at ``final`` durably: temp file, fsync, rename, fsync of the directory."""
    with AtomicFile(final, tmp_dir=tmp_dir, mode=mode, sync_dir=sync_dir) as f:
        if isinstance(data, (bytes, bytearray, memoryview)):
            f.write(data)
        else:
            for piece in data:
                f.write(piece)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_entry(folder: Path, name: str) -> None:
    """Remove ``folder/name`` (a file, a link never followed, or a whole folder); a name that
    is not a plain entry of ``folder`` is ignored."""
    if "/" in name or name in ("", ".", ".."):
        return
    path = folder / name
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
