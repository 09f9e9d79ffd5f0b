"""Repository locks as leases: small files on the backend, renewed while held.

A file system lock (``flock``) exists only on one machine; an object store has none. So, as
restic does, a lock is a file ``locks/<kind>-<random>.json`` written through the backend:

* **writers** (commit, tag, pin, delete, consolidate...) hold a *shared* lock from their first
  object write until their refs are published; many may hold one at once;
* **gc** holds an *exclusive* lock: while it does, no writer is in flight, so everything a
  writer has stored is already reachable from a ref, or is garbage of a dead writer.

Taking a lock writes its file, then lists the others: a shared lock conflicts with any live
exclusive one, an exclusive lock with any live lock. On a conflict the new file is removed and
the taker waits and tries again, up to a timeout. Both sides write before they look, so two
takers can never both miss each other (they may both back off; random waits break the tie).

A holder renews its file every :data:`RENEW` seconds. A lock is **stale**, and ignored, when its
holder is a process of this machine that no longer runs (same host: written before the last
boot, or its pid is gone or belongs to a process started at another time), or when it was last
renewed more than
:data:`STALE` seconds ago. A writer checks before publishing that its own lease was renewed
within :data:`STALE` seconds (:meth:`Lease.check`): one that was not may have been ignored by a
gc, so it publishes nothing (:class:`~vault.errors.LockLost`).
"""

from __future__ import annotations

import builtins
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .backend import Backend
from .errors import LockLost, LockTimeout
from .lock import default_timeout

LOCKS = "locks"
SHARED = "shared"
EXCLUSIVE = "exclusive"
RENEW = 60.0
"""Seconds between renewals of a held lock."""
STALE = 600.0
"""A lock not renewed for this long is ignored (its holder is taken to be dead)."""


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot), or ``None`` when it does not run."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""


_HOST = os.uname().nodename  # socket.gethostname(), without importing socket
_BOOT = _boot_id()


@dataclass(frozen=True)
class LockInfo:
    """What a lock file says about its holder."""

    key: str
    kind: str
    host: str
    boot: str
    pid: int
    start: str | None
    renewed: float

    @classmethod
    def parse(cls, key: str, data: bytes) -> LockInfo | None:
        """The lock in ``data``; ``None`` when it does not parse (a torn or foreign file)."""
        try:
            doc: dict[str, Any] = json.loads(data)
            return cls(
                key,
                str(doc["kind"]),
                str(doc["host"]),
                str(doc.get("boot", "")),
                int(doc["pid"]),
                doc.get("start"),
                float(doc["renewed"]),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def stale(self, now: float) -> bool:
        """Whether its holder is known dead, or it was not renewed for :data:`STALE` seconds."""
        if self.host == _HOST and self.boot and _BOOT:
            if self.boot != _BOOT:
                return True  # this machine restarted since: its holder is gone
            started = _start_time(self.pid)
            if started is None or (self.start and started and started != self.start):
                return True
        return now - self.renewed > STALE


class Lease:
    """A held lock: renewed by a background thread until released."""

    def __init__(self, locks: Leases, key: str, body: dict[str, Any]) -> None:
        self.locks = locks
        self.key = key
        self._body = body
        self._renewed = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="vault-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.locks.renew):
            try:
                self._body["renewed"] = self.locks.clock()
                self.locks.backend.put(self.key, _encode(self._body))
                self._renewed = time.monotonic()
            except Exception:  # noqa: BLE001 - the next check() reports a lease not renewed
                continue

    def check(self) -> None:
        """Raise :class:`LockLost` when the lease went unrenewed long enough to be ignored."""
        age = time.monotonic() - self._renewed
        if age > self.locks.stale - self.locks.renew:
            raise LockLost(self.key, age)

    def release(self) -> None:
        """Stop renewing and remove the lock file."""
        self._stop.set()
        self._thread.join()
        self.locks.backend.delete(self.key)


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True).encode() + b"\n"


class Leases:
    """The lease locks of one repository.

    Args:
        backend: where the lock files live.
        timeout: seconds to wait for a conflicting lock (default: :func:`default_timeout`).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        timeout: float | None = None,
        clock: Any = time.time,
        renew: float = RENEW,
        stale: float = STALE,
    ) -> None:
        self.backend = backend
        self.timeout = timeout
        self.clock = clock
        self.renew = renew
        self.stale = stale

    def list(self) -> builtins.list[LockInfo]:
        """Every lock file that parses (live or stale)."""
        out = []
        for key, _ in self.backend.list(LOCKS):
            if not key.endswith(".json"):
                continue  # format 2's flock files
            try:
                data = self.backend.get(key)
            except FileNotFoundError:
                continue
            info = LockInfo.parse(key, data)
            if info is not None:
                out.append(info)
        return out

    def _conflicts(self, kind: str, own: str) -> builtins.list[LockInfo]:
        now = self.clock()
        live = [i for i in self.list() if i.key != own and not i.stale(now)]
        if kind == SHARED:
            return [i for i in live if i.kind == EXCLUSIVE]
        return live

    def acquire(self, kind: str) -> Lease:
        """Take a lock of ``kind`` (:data:`SHARED` or :data:`EXCLUSIVE`), waiting for
        conflicting holders up to the timeout.

        Raises:
            LockTimeout: a conflicting lock was still held when the timeout ran out.
        """
        limit = default_timeout() if self.timeout is None else self.timeout
        deadline = time.monotonic() + limit
        pause = 0.02
        while True:
            key = f"{LOCKS}/{kind}-{os.urandom(8).hex()}.json"
            now = self.clock()
            body = {
                "kind": kind,
                "host": _HOST,
                "boot": _BOOT,
                "pid": os.getpid(),
                "start": _start_time(os.getpid()),
                "created": now,
                "renewed": now,
            }
            self.backend.put(key, _encode(body))
            conflicts = self._conflicts(kind, key)
            if not conflicts:
                return Lease(self, key, body)
            self.backend.delete(key)
            if time.monotonic() >= deadline:
                held = conflicts[0]
                raise LockTimeout(f"{held.kind} (held by pid {held.pid} on {held.host})", limit)
            time.sleep(pause * (0.5 + int.from_bytes(os.urandom(2), "big") / 65536))
            pause = min(pause * 2, 1.0)

    @contextmanager
    def hold(self, kind: str) -> Iterator[Lease]:
        """Hold a lock of ``kind`` for the block."""
        lease = self.acquire(kind)
        try:
            yield lease
        finally:
            lease.release()

    def remove_stale(self) -> int:
        """Remove the files of stale locks (a gc does this under its exclusive lock)."""
        now = self.clock()
        gone = 0
        for info in self.list():
            if info.stale(now):
                self.backend.delete(info.key)
                gone += 1
        return gone
