"""``flock`` on a lock file with a timeout: how the directory backend makes its conditional
writes atomic on one machine (repository locks are leases on the backend: :mod:`vault.leases`),
and the lock timeout both use.

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

TIMEOUT_ENV = "VAULT_LOCK_TIMEOUT"
DEFAULT_TIMEOUT = 600.0
_POLL = 0.05


_TIMEOUT_HELP = "use a finite number of seconds, 0 or more (e.g. 600)"


def check_timeout(value: float) -> float:
    """Return ``value`` if it is a usable number of seconds to wait: finite and not negative.

    Raises:
        BadValue: a negative, infinite or NaN timeout (NaN would wait forever).
    """
    if not math.isfinite(value) or value < 0:
        raise BadValue("lock timeout", value, _TIMEOUT_HELP)
    return value


def default_timeout() -> float:
    """The seconds to wait for a lock: ``$VAULT_LOCK_TIMEOUT`` when set, else 600.

    Read at each use, not at import, so that a bad value is an error of the command that
    needs a lock rather than of ``import vault``.

    Raises:
        BadValue: the variable is not a finite number of seconds, 0 or more.
    """
    text = os.environ.get(TIMEOUT_ENV, "")
    if text == "":
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BadValue(TIMEOUT_ENV, text, _TIMEOUT_HELP)
    return value


@contextmanager
def file_lock(path: Path, *, shared: bool = False, timeout: float | None = None) -> Iterator[None]:
    """Hold a shared or exclusive lock on ``path`` for the duration of the block.

    Args:
        path: the lock file (created when missing).
        shared: take a shared lock (many holders) instead of an exclusive one.
        timeout: seconds to wait for the lock before raising :class:`LockTimeout`; default
            :func:`default_timeout`.

    Raises:
        BadValue: a negative, infinite or NaN timeout.
        LockTimeout: the lock was not free within the timeout.
    """
    limit = default_timeout() if timeout is None else check_timeout(timeout)
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
