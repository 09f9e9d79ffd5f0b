"""A backend in memory: the reference implementation of the backend contract, for fast tests.

Everything lives in a dict of key to bytes; nothing survives the process. It behaves like an
object store (flat keys, version tags that change on every write, no rename) so tests that pass
on it do not lean on anything a file system gives for free.
"""

from __future__ import annotations

import builtins
import itertools
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .backend import Capabilities, FileStat, check_range
from .errors import PreconditionFailed
from .fsutil import remove_entry


@dataclass(frozen=True)
class _File:
    data: bytes
    etag: str
    mtime: float


class MemoryBackend:
    """Keys and bytes in a dict.

    Args:
        clock: returns the current time in epoch seconds (a test can move it forward to age
            objects past a grace period).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.capabilities = Capabilities("memory")
        self.clock = clock
        self._files: dict[str, _File] = {}
        self._pending: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._tags = itertools.count(1)
        self._scratch: Path | None = None

    def _publish(self, key: str, data: bytes) -> str:
        etag = f"m{next(self._tags)}"
        self._files[key] = _File(data, etag, self.clock())
        return etag

    def put(self, key: str, data: bytes | bytearray | memoryview, *, defer: bool = False) -> None:
        """Store ``data`` (at the next :meth:`sync` with ``defer``)."""
        with self._lock:
            if defer:
                self._pending[key] = bytes(data)
            else:
                self._pending.pop(key, None)
                self._publish(key, bytes(data))

    def put_if_absent(self, key: str, data: bytes) -> str:
        """Store ``data`` unless ``key`` exists."""
        with self._lock:
            if key in self._files:
                raise PreconditionFailed(key, "it exists")
            return self._publish(key, bytes(data))

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace ``key`` if its tag is still ``etag``."""
        with self._lock:
            current = self._files.get(key)
            if current is None:
                raise PreconditionFailed(key, "it does not exist")
            if current.etag != etag:
                raise PreconditionFailed(key, "it changed since it was read")
            return self._publish(key, bytes(data))

    def ensure_durable(self, key: str) -> bool:
        """Whether ``key`` exists (memory is as durable as it gets)."""
        with self._lock:
            return key in self._files or key in self._pending

    def _find(self, key: str) -> bytes:
        with self._lock:
            pending = self._pending.get(key)
            if pending is not None:
                return pending
            found = self._files.get(key)
        if found is None:
            raise FileNotFoundError(key)
        return found.data

    def get(self, key: str) -> bytes:
        """The bytes under ``key``."""
        return self._find(key)

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        """The bytes under ``key`` and their tag."""
        with self._lock:
            found = self._files.get(key)
        if found is None:
            raise FileNotFoundError(key)
        return found.data, found.etag

    def get_head(self, key: str, n: int) -> bytes:
        """The first ``n`` bytes under ``key``."""
        return self._find(key)[:n]

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """At most ``length`` bytes under ``key`` from ``offset`` on."""
        check_range(offset, length)
        return self._find(key)[offset : offset + length]

    def stat(self, key: str) -> FileStat | None:
        """Size and time of the last write of ``key``."""
        with self._lock:
            pending = self._pending.get(key)
            if pending is not None:
                return FileStat(len(pending), self.clock())
            found = self._files.get(key)
        return None if found is None else FileStat(len(found.data), found.mtime)

    def list(self, prefix: str) -> Iterator[tuple[str, FileStat]]:
        """Every published key under the folder ``prefix``."""
        folder = prefix.rstrip("/") + "/"
        with self._lock:
            found = [(k, f) for k, f in self._files.items() if k.startswith(folder)]
        for key, f in found:
            yield key, FileStat(len(f.data), f.mtime)

    def delete(self, key: str) -> None:
        """Remove ``key``."""
        with self._lock:
            self._files.pop(key, None)

    def sync(self) -> None:
        """Publish the deferred puts."""
        with self._lock:
            pending, self._pending = self._pending, {}
            for key, data in pending.items():
                self._publish(key, data)

    def discard(self) -> None:
        """Drop the deferred puts."""
        with self._lock:
            self._pending.clear()

    def temp_files(self) -> builtins.list[tuple[str, int]]:
        """What is left in the scratch directory (nothing else is ever temporary here)."""
        if self._scratch is None:
            return []
        out = []
        for path in self._scratch.iterdir():
            size = path.stat().st_size if path.is_file() else 0
            out.append((path.name, size))
        return out

    def remove_temp(self, name: str) -> None:
        """Remove one item of the scratch directory."""
        if self._scratch is not None:
            remove_entry(self._scratch, name)

    def now(self) -> float:
        """The backend's clock."""
        return self.clock()

    def scratch_dir(self) -> Path:
        """A private temporary directory, made on first use."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="vault-mem-"))
        return self._scratch
