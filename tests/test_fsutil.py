"""fsutil: atomic publication (temp + fsync + rename), durable appends, disk-full mapping."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from vault import fsutil
from vault.errors import DiskFull
from vault.fsutil import TMP_PREFIX, AtomicFile, atomic_write, temp_name


def _debris(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_temp_name_is_beside_final_and_unique(tmp_path: Path) -> None:
    final = tmp_path / "refs.json"
    a, b = temp_name(final), temp_name(final)
    assert a.parent == final.parent
    assert a.name.startswith(TMP_PREFIX) and "refs.json" in a.name
    assert a != b


def test_atomic_write_publishes_bytes_and_leaves_no_temp(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    atomic_write(final, b"hello world")
    assert final.read_bytes() == b"hello world"
    assert _debris(tmp_path) == []


def test_atomic_write_sets_mode(tmp_path: Path) -> None:
    final = tmp_path / "ro.bin"
    atomic_write(final, b"x", mode=0o444)
    assert stat.S_IMODE(final.stat().st_mode) == 0o444


def test_atomic_write_accepts_iterable_of_pieces(tmp_path: Path) -> None:
    final = tmp_path / "pieces.bin"
    atomic_write(final, iter([b"ab", b"", b"cd", bytes(range(5))]))
    assert final.read_bytes() == b"abcd" + bytes(range(5))


def test_atomic_write_accepts_memoryview_and_bytearray(tmp_path: Path) -> None:
    atomic_write(tmp_path / "a", memoryview(b"0123456789")[2:5])
    atomic_write(tmp_path / "b", bytearray(b"xyz"))
    assert (tmp_path / "a").read_bytes() == b"234"
    assert (tmp_path / "b").read_bytes() == b"xyz"


def test_atomic_write_replaces_existing_file(tmp_path: Path) -> None:
    final = tmp_path / "f"
    final.write_bytes(b"old content that is longer")
    atomic_write(final, b"new")
    assert final.read_bytes() == b"new"


def test_atomic_write_large_payload(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    atomic_write(tmp_path / "big", data)
    assert (tmp_path / "big").read_bytes() == data


def test_tmp_dir_is_used_for_the_temporary_file(tmp_path: Path) -> None:
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    final = tmp_path / "final"
    with AtomicFile(final, tmp_dir=tmp_dir) as f:
        f.write(b"data")
        assert len(list(tmp_dir.iterdir())) == 1
        assert not final.exists()
    assert final.read_bytes() == b"data"
    assert list(tmp_dir.iterdir()) == []


def test_exception_in_block_publishes_nothing_and_cleans_up(tmp_path: Path) -> None:
    final = tmp_path / "never"
    with pytest.raises(RuntimeError), AtomicFile(final) as f:
        f.write(b"partial")
        raise RuntimeError("boom")
    assert not final.exists()
    assert _debris(tmp_path) == []


def test_exception_keeps_previous_version(tmp_path: Path) -> None:
    final = tmp_path / "keep"
    final.write_bytes(b"previous")
    with pytest.raises(KeyError), AtomicFile(final) as f:
        f.write(b"replacement")
        raise KeyError("x")
    assert final.read_bytes() == b"previous"
    assert _debris(tmp_path) == []


def test_nothing_visible_under_final_name_before_exit(tmp_path: Path) -> None:
    final = tmp_path / "pending"
    with AtomicFile(final) as f:
        f.write(b"abc")
        assert not final.exists()
    assert final.exists()


def test_enospc_on_write_becomes_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    final = tmp_path / "full"
    monkeypatch.setattr(fsutil.os, "write", full)
    with pytest.raises(DiskFull) as info:
        atomic_write(final, b"data")
    monkeypatch.undo()
    assert "full" in info.value.where
    assert not final.exists()
    assert _debris(tmp_path) == []


def test_other_oserror_is_not_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fd: int, data: object) -> int:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(fsutil.os, "write", broken)
    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "io", b"data")
    monkeypatch.undo()
    assert not isinstance(info.value, DiskFull)
    assert info.value.errno == errno.EIO
    assert _debris(tmp_path) == []


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write

    def one_byte(fd: int, data: memoryview) -> int:
        return real_write(fd, bytes(data[:1]))

    monkeypatch.setattr(fsutil.os, "write", one_byte)
    atomic_write(tmp_path / "short", b"abcdefgh")
    monkeypatch.undo()
    assert (tmp_path / "short").read_bytes() == b"abcdefgh"


def test_missing_directory_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "no" / "such" / "dir" / "f", b"x")
