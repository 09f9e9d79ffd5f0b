"""The backend contract on :class:`vault.backend.LocalBackend`, and what only a directory does."""

from __future__ import annotations

from pathlib import Path

import pytest
from backend_contract import BackendContract

from vault.backend import LocalBackend
from vault.errors import PreconditionFailed


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    root = tmp_path / "root"
    (root / "tmp").mkdir(parents=True)
    return LocalBackend(root)


class TestLocalBackend(BackendContract):
    """The shared suite."""


def test_objects_are_read_only_and_no_debris_after_put(backend: LocalBackend) -> None:
    backend.put("objects/aa/bb", b"data")
    assert (backend.root / "objects/aa/bb").stat().st_mode & 0o222 == 0
    assert backend.temp_files() == []


def test_deferred_put_waits_in_tmp_until_sync(backend: LocalBackend) -> None:
    backend.put("objects/aa/bb", b"data", defer=True)
    path = backend.root / "objects/aa/bb"
    assert not path.exists()
    assert len(backend.temp_files()) == 1
    backend.sync()
    assert path.read_bytes() == b"data" and backend.temp_files() == []


def test_list_skips_temp_files(backend: LocalBackend) -> None:
    backend.put("objects/aa/bb", b"data")
    (backend.root / "objects/aa/.vault-tmp-bb.1.abcd").write_bytes(b"half")
    assert [k for k, _ in backend.list("objects")] == ["objects/aa/bb"]


def test_temp_files_lists_root_debris_by_relative_name(backend: LocalBackend) -> None:
    (backend.tmp_dir / ".vault-tmp-x.1.ff").write_bytes(b"12345")
    (backend.root / ".vault-tmp-refs.json.1.ff").write_bytes(b"123")
    assert sorted(backend.temp_files()) == [
        (".vault-tmp-refs.json.1.ff", 3),
        ("tmp/.vault-tmp-x.1.ff", 5),
    ]
    for name, _ in backend.temp_files():
        backend.remove_temp(name)
    assert backend.temp_files() == []


def test_conditional_writes_leave_no_debris(backend: LocalBackend) -> None:
    backend.put_if_absent("refs.json", b"a")
    _, tag = backend.get_versioned("refs.json")
    backend.put_if_match("refs.json", b"b", tag)
    for _ in range(2):
        with pytest.raises(PreconditionFailed):
            backend.put_if_absent("refs.json", b"c")
    assert backend.temp_files() == []
