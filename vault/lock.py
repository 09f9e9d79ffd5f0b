"""``flock`` on a lock file with a timeout: how the directory backend makes its conditional
writes atomic on one machine. (Repository locks are leases on the backend: :mod:`vault.leases`.)

The kernel drops an ``flock`` when its holder dies, so a ``kill -9`` never leaves it held.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import BadValue, LockTimeout

DEFAULT_TIMEOUT = 600.0
TIMEOUT_ENV = "VAULT_LOCK_TIMEOUT"
_POLL = 0.05


def timeout_from_env() -> float:
    """Seconds to wait for a lock: ``$VAULT_LOCK_TIMEOUT``, else :data:`DEFAULT_TIMEOUT`.

    Raises:
        BadValue: the variable is not a finite number of seconds, zero or more.
    """
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BadValue(TIMEOUT_ENV, raw, "expected a number of seconds, 0 or more")
    return value


@contextmanager
def file_lock(path: Path, *, shared: bool = False, timeout: float | None = None) -> Iterator[None]:
    """Hold a shared or exclusive lock on ``path`` for the duration of the block.

    Args:
        path: the lock file (created when missing).
        shared: take a shared lock (many holders) instead of an exclusive one.
        timeout: seconds to wait for the lock before raising :class:`LockTimeout`.
    """
    limit = timeout_from_env() if timeout is None else timeout
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
