"""Lease locks on the backend: shared writers, an exclusive gc, stale holders ignored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vault.backend import LocalBackend
from vault.backend_memory import MemoryBackend
from vault.errors import BadValue, LockLost, LockTimeout
from vault.leases import EXCLUSIVE, SHARED, Leases
from vault.lock import default_timeout


@pytest.fixture(params=["local", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "local":
        (tmp_path / "tmp").mkdir()
        return LocalBackend(tmp_path)
    return MemoryBackend()


def test_shared_locks_coexist_and_exclude_an_exclusive_one(backend) -> None:  # type: ignore[no-untyped-def]
    locks = Leases(backend, timeout=0.3)
    with locks.hold(SHARED), locks.hold(SHARED):
        assert sorted(i.kind for i in locks.list()) == [SHARED, SHARED]
        with pytest.raises(LockTimeout), locks.hold(EXCLUSIVE):
            pass
    with locks.hold(EXCLUSIVE):
        with pytest.raises(LockTimeout), locks.hold(SHARED):
            pass
        with pytest.raises(LockTimeout), locks.hold(EXCLUSIVE):
            pass
    assert locks.list() == []  # released locks leave no file


def _write_lock(backend, name: str, **fields) -> None:  # type: ignore[no-untyped-def]
    body = {"kind": EXCLUSIVE, "host": "elsewhere", "boot": "b", "pid": 1, "renewed": time.time()}
    body.update(fields)
    backend.put(f"locks/{name}.json", json.dumps(body).encode())


def test_a_live_lock_of_another_machine_blocks(backend) -> None:  # type: ignore[no-untyped-def]
    _write_lock(backend, "exclusive-other")
    with pytest.raises(LockTimeout, match="elsewhere"), Leases(backend, timeout=0.2).hold(SHARED):
        pass


def test_a_lock_not_renewed_for_too_long_is_stale(backend) -> None:  # type: ignore[no-untyped-def]
    _write_lock(backend, "exclusive-old", renewed=time.time() - 3600)
    locks = Leases(backend, timeout=0.2)
    with locks.hold(SHARED):
        pass
    assert locks.remove_stale() == 1
    assert locks.list() == []


def test_a_dead_process_of_this_machine_holds_nothing(backend) -> None:  # type: ignore[no-untyped-def]
    from vault import leases as locks_mod

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    _write_lock(
        backend,
        "exclusive-dead",
        host=locks_mod._HOST,
        boot=locks_mod._BOOT,
        pid=int(dead.stdout),
    )
    with Leases(backend, timeout=0.2).hold(SHARED):
        pass


def test_a_lease_is_renewed_while_held(backend) -> None:  # type: ignore[no-untyped-def]
    locks = Leases(backend, timeout=1, renew=0.05, stale=2)
    with locks.hold(SHARED) as lease:
        first = locks.list()[0].renewed
        time.sleep(0.3)
        assert locks.list()[0].renewed > first
        lease.check()


class _FailingPuts(MemoryBackend):
    """A backend whose writes start failing (a lost network), to starve a lease."""

    fail = False

    def put(self, key, data, *, defer=False):  # type: ignore[no-untyped-def]
        if self.fail:
            raise OSError("network unreachable")
        super().put(key, data, defer=defer)


def test_a_lease_that_could_not_be_renewed_is_lost() -> None:
    backend = _FailingPuts()
    locks = Leases(backend, timeout=1, renew=0.05, stale=0.2)
    with locks.hold(SHARED) as lease:
        backend.fail = True
        time.sleep(0.4)
        with pytest.raises(LockLost):
            lease.check()
        backend.fail = False


@pytest.mark.parametrize("raw", ["abc", "-1", "nan", "inf", "1e400"])
def test_bad_lock_timeouts_are_refused(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_LOCK_TIMEOUT", raw)
    with pytest.raises(BadValue):
        default_timeout()


def test_lock_default_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_LOCK_TIMEOUT", "2.5")
    assert default_timeout() == 2.5
    monkeypatch.delenv("VAULT_LOCK_TIMEOUT")
    assert default_timeout() == 600


def test_format_2_flock_files_are_not_leases(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "gc.lock").write_bytes(b"")
    (tmp_path / "locks" / "refs.lock").write_bytes(b"")
    locks = Leases(LocalBackend(tmp_path), timeout=0.2)
    with locks.hold(EXCLUSIVE):
        assert [i.pid for i in locks.list()] == [os.getpid()]
