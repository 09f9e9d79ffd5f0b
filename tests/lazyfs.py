"""A file system that forgets whatever was not made durable, to test power cuts in one process.

A ``kill -9`` keeps the page cache, so a test that kills vault proves that every publication is
atomic, not that it is durable: with every fsync removed, such tests still pass. This module is a
recording shim in the spirit of SQLite's test VFS and Jepsen's LazyFS. While a :class:`LazyFS` is
installed, the ``os`` functions vault writes with (and ``open``/``io.open`` in a writing mode) are
wrapped for every path under one directory, the *root*. Each call that changes the file system
there is an *operation*; the shim numbers them, and when armed with ``crash_at=k`` it raises
:class:`PowerCut` in place of operation ``k`` (so operations ``0..k-1`` happened, ``k`` did not),
and again in place of every later one: the process is dead, its clean-up handlers change nothing.
The real fsyncs under the root are not performed (the model, not the disk, decides what survives),
which also keeps the tests fast.

After the run, :meth:`LazyFS.materialise` writes the *durable state* into a fresh directory: what
a machine that lost power at that instant could find on its disk.

The model (strict POSIX, no journaling file system's courtesy):

* The root's content when the shim was installed is durable (the previous operations are
  assumed to have made it so; their own final states are tested separately). The root directory
  itself exists durably.
* Files and directories are inodes, identified by their identity (``st_dev``, ``st_ino``) while
  they exist; an inode created under the root (``open`` with ``O_CREAT`` of a missing path,
  ``mkdir``, ``symlink``) is a new inode even when the kernel reuses a number.
* A regular file's durable content and permission bits are those it had at its last ``fsync``
  or ``fdatasync`` (on any descriptor of it); a file created after installation and never
  fsynced is durably empty. Unsynced writes, truncations and ``fchmod`` are lost *entirely*: a
  file is never torn half-way between two fsyncs. (Real disks may keep part of them; vault only
  ever appends to a file in place, the reflog, and its reader tolerates a torn last line.)
* A directory's durable entries (name to inode) are those it had at its last fsync. A ``create``,
  ``rename``, ``unlink``, ``mkdir`` or ``rmdir`` that was not followed by an fsync of the
  directory it changed is undone. A rename between two directories is two changes: if only the
  target directory was fsynced, the inode is durably in both; if only the source, in neither.
  An inode whose entry is not durable is lost with everything below it.
* A file durably linked whose data was never fsynced keeps the permission bits it had when its
  directory was fsynced. Timestamps are not modelled (``utime`` is an operation, and a crash
  point, but the materialised files get the time of materialisation); directories are
  materialised with default permissions; an inode durably linked twice is materialised as two
  copies.
* Descriptors are followed from the ``open`` that returned them (``os.open``, ``open``,
  ``io.open``), including ``O_RDONLY`` ones, since fsync needs only a descriptor. Creations under
  the root by other means (a C library writing its own files) are not seen: their inodes are
  treated as new and empty when a directory fsync meets them.

Only the calls vault makes are wrapped: ``os.open``, ``os.write``, ``os.pwrite``, ``os.writev``,
``os.pwritev``, ``os.sendfile``, ``os.ftruncate``, ``os.truncate``, ``os.posix_fallocate``,
``os.fsync``, ``os.fdatasync``, ``os.rename``, ``os.replace``, ``os.unlink``, ``os.remove``,
``os.mkdir`` (and so ``os.makedirs`` and ``Path.mkdir``), ``os.rmdir``, ``os.link``,
``os.symlink``, ``os.close``, ``os.fchmod``, ``os.chmod``, ``os.utime``, and ``open``/``io.open``
(``Path.write_bytes``) with ``w``, ``a``, ``x`` or ``+`` in the mode. ``os.close`` is followed but
is no operation: closing changes nothing durable. Paths are compared as spelled (made absolute),
so give the shim the root under the spelling the code under test uses.

Typical use::

    fs = LazyFS(root, crash_at=k)
    with fs:
        try:
            do_something_under(root)
        except PowerCut:
            pass
    fs.materialise(somewhere_else)
"""

from __future__ import annotations

import builtins
import io
import os
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_REAL_OPEN = io.open
_FD_OPS = ("write", "pwrite", "writev", "pwritev", "sendfile", "ftruncate", "posix_fallocate")


class PowerCut(BaseException):
    """Raised by the shim in place of the armed operation (and every one after it)."""


@dataclass(frozen=True)
class Op:
    """One operation that changed the file system under the root.

    Attributes:
        index: its number, from 0.
        name: the wrapped function (``open``, ``write``, ``fsync``, ``rename``...).
        path: the path it changed, relative to the root (``a -> b`` for a rename or link).
    """

    index: int
    name: str
    path: str

    def __str__(self) -> str:
        return f"#{self.index} {self.name} {self.path}"


class LazyFS:
    """The shim: install it with ``with``; read :attr:`ops`, then :meth:`materialise`.

    Args:
        root: the directory whose durability is modelled (it must exist).
        crash_at: the index of the operation replaced by a power cut; ``None``: never.
    """

    def __init__(self, root: str | os.PathLike[str], *, crash_at: int | None = None) -> None:
        self.root = os.path.abspath(root)
        self.crash_at = crash_at
        self.ops: list[Op] = []
        self.crashed: Op | None = None
        """The operation the power cut replaced, once it happened."""
        self._lock = threading.RLock()
        self._fds: dict[int, str] = {}
        self._ids: dict[tuple[int, int], int] = {}
        self._kind: dict[int, str] = {}
        self._data: dict[int, bytes] = {}
        self._mode: dict[int, int] = {}
        self._entries: dict[int, dict[str, int]] = {}
        self._target: dict[int, str] = {}
        self._saved: dict[tuple[Any, str], Any] = {}
        self._root_id = -1

    # -- installing ------------------------------------------------------------------------

    def __enter__(self) -> LazyFS:
        self._root_id = self._snapshot(self.root)
        real = {name: getattr(os, name) for name in _FD_OPS if hasattr(os, name)}
        wrappers: dict[str, Callable[..., Any]] = {
            name: self._fd_op(name, fn) for name, fn in real.items()
        }
        wrappers.update(
            open=self._os_open(os.open),
            close=self._close(os.close),
            fsync=self._sync("fsync", os.fsync),
            fdatasync=self._sync("fdatasync", os.fdatasync),
            fchmod=self._fd_op("fchmod", os.fchmod),
            rename=self._two_paths("rename", os.rename),
            replace=self._two_paths("replace", os.replace),
            link=self._two_paths("link", os.link),
            unlink=self._one_path("unlink", os.unlink),
            remove=self._one_path("unlink", os.remove),
            rmdir=self._one_path("rmdir", os.rmdir),
            mkdir=self._one_path("mkdir", os.mkdir, creates=True),
            symlink=self._symlink(os.symlink),
            chmod=self._one_path("chmod", os.chmod),
            utime=self._one_path("utime", os.utime),
            truncate=self._one_path("truncate", os.truncate),
        )
        for name, fn in wrappers.items():
            self._patch(os, name, fn)
        opener = self._io_open(_REAL_OPEN)
        self._patch(io, "open", opener)
        self._patch(builtins, "open", opener)
        return self

    def __exit__(self, *exc: object) -> None:
        for (module, name), fn in self._saved.items():
            setattr(module, name, fn)
        self._saved.clear()

    def _patch(self, module: Any, name: str, fn: Callable[..., Any]) -> None:
        self._saved[(module, name)] = getattr(module, name)
        setattr(module, name, fn)

    # -- the model -------------------------------------------------------------------------

    def _new_inode(self, st: os.stat_result) -> int:
        """A new inode: nothing of it is durable yet."""
        mid = len(self._kind)
        self._ids[(st.st_dev, st.st_ino)] = mid
        self._kind[mid] = _kind_of(st.st_mode)
        return mid

    def _inode(self, st: os.stat_result) -> int:
        found = self._ids.get((st.st_dev, st.st_ino))
        return found if found is not None else self._new_inode(st)

    def _snapshot(self, path: str) -> int:
        """Record ``path`` and everything under it as durable; return its inode."""
        st = os.lstat(path)
        mid = self._inode(st)
        self._mode[mid] = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            self._entries[mid] = {
                name: self._snapshot(os.path.join(path, name)) for name in os.listdir(path)
            }
        elif stat.S_ISREG(st.st_mode):
            with _REAL_OPEN(path, "rb") as f:
                self._data[mid] = f.read()
        elif stat.S_ISLNK(st.st_mode):
            self._target[mid] = os.readlink(path)
        return mid

    def _make_durable(self, fd: int) -> None:
        """What an fsync of ``fd`` does: its file's data, or its directory's entries, now."""
        st = os.fstat(fd)
        mid = self._inode(st)
        if stat.S_ISDIR(st.st_mode):
            entries = {}
            for name in os.listdir(fd):
                est = os.stat(name, dir_fd=fd, follow_symlinks=False)
                cid = self._inode(est)
                self._mode.setdefault(cid, stat.S_IMODE(est.st_mode))
                if stat.S_ISLNK(est.st_mode):
                    self._target[cid] = os.readlink(name, dir_fd=fd)
                entries[name] = cid
            self._entries[mid] = entries
        elif stat.S_ISREG(st.st_mode):
            with _REAL_OPEN(f"/proc/self/fd/{fd}", "rb") as f:
                self._data[mid] = f.read()
            self._mode[mid] = stat.S_IMODE(st.st_mode)

    def materialise(self, dest: str | os.PathLike[str]) -> None:
        """Write the durable state of the root into the new directory ``dest``."""
        with self._lock:
            self._materialise(self._root_id, os.fspath(dest), depth=0)

    def _materialise(self, mid: int, path: str, depth: int) -> None:
        if depth > 64:
            raise RuntimeError(f"directory cycle at {path}")
        kind = self._kind[mid]
        if kind == "dir":
            os.mkdir(path)
            for name, child in sorted(self._entries.get(mid, {}).items()):
                self._materialise(child, os.path.join(path, name), depth + 1)
        elif kind == "file":
            with _REAL_OPEN(path, "xb") as f:
                f.write(self._data.get(mid, b""))
            os.chmod(path, self._mode.get(mid, 0o644))
        elif kind == "link":
            os.symlink(self._target[mid], path)

    # -- operations ------------------------------------------------------------------------

    def _where(self, path: Any, dir_fd: int | None = None) -> str | None:
        """``path`` relative to the root, or ``None`` when it lies outside."""
        if isinstance(path, int):
            return self._fds.get(path)
        full = os.fsdecode(os.fspath(path))
        if dir_fd is not None and not os.path.isabs(full):
            full = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), full)
        full = os.path.abspath(full)
        if full == self.root:
            return "."
        if full.startswith(self.root + os.sep):
            return full[len(self.root) + 1 :]
        return None

    def _tick(self, name: str, where: str) -> None:
        """Count one operation; raise the power cut when it is the armed one (or later)."""
        if self.crashed is not None:
            raise PowerCut(f"{name} {where} after the power cut")
        op = Op(len(self.ops), name, where)
        if op.index == self.crash_at:
            self.crashed = op
            raise PowerCut(str(op))
        self.ops.append(op)

    def _os_open(self, real: Callable[..., int]) -> Callable[..., int]:
        def wrapper(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
            where = self._where(path, dir_fd)
            if where is None:
                return real(path, flags, mode, dir_fd=dir_fd)
            with self._lock:
                creates = False
                if flags & _WRITE_FLAGS:
                    self._tick("open", where)
                    creates = bool(flags & os.O_CREAT) and not _lexists(path, dir_fd)
                fd = real(path, flags, mode, dir_fd=dir_fd)
                self._fds[fd] = where
                if creates:
                    self._new_inode(os.fstat(fd))
                return fd

        return wrapper

    def _close(self, real: Callable[[int], None]) -> Callable[[int], None]:
        def wrapper(fd: int) -> None:
            self._fds.pop(fd, None)
            real(fd)

        return wrapper

    def _fd_op(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(fd: int, *args: Any, **kwargs: Any) -> Any:
            where = self._fds.get(fd)
            if where is None:
                return real(fd, *args, **kwargs)
            with self._lock:
                self._tick(name, where)
                return real(fd, *args, **kwargs)

        return wrapper

    def _sync(self, name: str, real: Callable[[Any], None]) -> Callable[[Any], None]:
        def wrapper(fd: Any) -> None:
            fd = fd if isinstance(fd, int) else fd.fileno()
            where = self._fds.get(fd)
            if where is None:
                try:
                    where = self._where(os.readlink(f"/proc/self/fd/{fd}"))
                except OSError:
                    where = None
            if where is None:
                real(fd)
                return
            with self._lock:
                self._tick(name, where)
                self._make_durable(fd)

        return wrapper

    def _one_path(
        self, name: str, real: Callable[..., Any], *, creates: bool = False
    ) -> Callable[..., Any]:
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            dir_fd = kwargs.get("dir_fd")
            where = self._where(path, dir_fd)
            if where is None:
                return real(path, *args, **kwargs)
            with self._lock:
                self._tick(name, where)
                out = real(path, *args, **kwargs)
                if creates:
                    self._new_inode(os.stat(path, dir_fd=dir_fd, follow_symlinks=False))
                return out

        return wrapper

    def _two_paths(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(src: Any, dst: Any, **kwargs: Any) -> Any:
            a = self._where(src, kwargs.get("src_dir_fd"))
            b = self._where(dst, kwargs.get("dst_dir_fd"))
            if a is None and b is None:
                return real(src, dst, **kwargs)
            with self._lock:
                self._tick(name, f"{a} -> {b}")
                return real(src, dst, **kwargs)

        return wrapper

    def _symlink(self, real: Callable[..., None]) -> Callable[..., None]:
        def wrapper(target: Any, path: Any, *args: Any, **kwargs: Any) -> None:
            dir_fd = kwargs.get("dir_fd")
            where = self._where(path, dir_fd)
            if where is None:
                real(target, path, *args, **kwargs)
                return
            with self._lock:
                self._tick("symlink", where)
                real(target, path, *args, **kwargs)
                self._new_inode(os.stat(path, dir_fd=dir_fd, follow_symlinks=False))

        return wrapper

    def _io_open(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, int) or not any(c in mode for c in "wax+"):
                return real(file, mode, *args, **kwargs)
            where = self._where(file)
            if where is None:
                return real(file, mode, *args, **kwargs)
            with self._lock:
                self._tick("open", where)
                creates = not _lexists(file, None)
                f = real(file, mode, *args, **kwargs)
                fd = f.fileno()
                self._fds[fd] = where
                if creates:
                    self._new_inode(os.fstat(fd))
            return _TrackedFile(self, f, fd, where)

        return wrapper


class _TrackedFile:
    """A file object opened for writing under the root: its writes are operations."""

    def __init__(self, fs: LazyFS, f: Any, fd: int, where: str) -> None:
        self._fs = fs
        self._f = f
        self._fd = fd
        self._where = where

    def _op(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        with self._fs._lock:
            self._fs._tick(name, self._where)
            return fn(*args)

    def write(self, data: Any) -> Any:
        return self._op("write", self._f.write, data)

    def writelines(self, lines: Iterable[Any]) -> None:
        self._op("write", self._f.writelines, lines)

    def truncate(self, *args: Any) -> Any:
        return self._op("ftruncate", self._f.truncate, *args)

    def close(self) -> None:
        self._fs._fds.pop(self._fd, None)
        self._f.close()

    def __enter__(self) -> _TrackedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Any:
        return iter(self._f)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


def _lexists(path: Any, dir_fd: int | None) -> bool:
    try:
        os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def tree_digest(root: str | os.PathLike[str]) -> str:
    """A digest of every path, kind, content and link target under ``root``: two materialised
    states with the same digest need checking once."""
    import hashlib

    h = hashlib.sha256()
    base = Path(root)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            h.update(full.relative_to(base).as_posix().encode() + b"\0")
            if full.is_symlink():
                h.update(b"L" + os.readlink(full).encode())
            elif full.is_file():
                h.update(b"F" + hashlib.sha256(full.read_bytes()).digest())
            else:
                h.update(b"D")
    return h.hexdigest()
