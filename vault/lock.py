"""Inter-process locks on lock files, with a timeout instead of an indefinite wait.

Locks are ``flock`` locks: the kernel drops them when the holder dies, so a ``kill -9`` never
leaves a repository locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import LockTimeout

DEFAULT_TIMEOUT = float(os.environ.get("VAULT_LOCK_TIMEOUT", "600"))
_POLL = 0.05


@contextmanager
def file_lock(path: Path, *, shared: bool = False, timeout: float | None = None) -> Iterator[None]:
    """Hold a shared or exclusive lock on ``path`` for the duration of the block.

    Args:
        path: the lock file (created when missing).
        shared: take a shared lock (many holders) instead of an exclusive one.
        timeout: seconds to wait for the lock before raising :class:`LockTimeout`.
    """
    limit = DEFAULT_TIMEOUT if timeout is None else timeout
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        op = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + limit
        while True:
            try:
                fcntl.flock(fd, op)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(path.name, limit) from None
                time.sleep(_POLL)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
