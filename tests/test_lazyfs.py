"""The power-cut model of ``tests/lazyfs.py``: what survives is what was fsynced, nothing more.

These pin the model the durability tests rely on: if the shim kept too much, those tests would
prove nothing; if it kept too little, they would fail on correct code.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import tree_bytes
from lazyfs import LazyFS, PowerCut

_CASE = itertools.count()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes, *, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _root(tmp_path: Path) -> Path:
    """A new root holding ``old`` (``b"old"``) and an empty folder ``sub``."""
    r = tmp_path / f"case-{next(_CASE)}"
    (r / "sub").mkdir(parents=True)
    (r / "old").write_bytes(b"old")
    return r


def _durable(tmp_path: Path, work: Callable[[Path], object]) -> dict[str, bytes]:
    """Run ``work(root)`` on a new root under the shim; the files of the durable state."""
    root = _root(tmp_path)
    fs = LazyFS(root)
    with fs:
        work(root)
    out = root.with_name(root.name + "-durable")
    fs.materialise(out)
    return tree_bytes(out)


def test_the_content_at_installation_is_durable(tmp_path: Path) -> None:
    assert _durable(tmp_path, lambda root: None) == {"old": b"old"}


def test_a_new_file_needs_its_data_and_its_directory_synced(tmp_path: Path) -> None:
    def work(sync_data: bool, sync_dir: bool) -> Callable[[Path], None]:
        def run(root: Path) -> None:
            _write(root / "new", b"data", sync=sync_data)
            if sync_dir:
                _fsync_path(root)

        return run

    assert _durable(tmp_path, work(False, True))["new"] == b""
    assert "new" not in _durable(tmp_path, work(True, False))
    assert _durable(tmp_path, work(True, True))["new"] == b"data"


def test_data_written_after_the_last_fsync_is_lost(tmp_path: Path) -> None:
    def rewrite(root: Path) -> None:
        _write(root / "old", b"synced", sync=True)
        _write(root / "old", b"not synced", sync=False)

    assert _durable(tmp_path, rewrite)["old"] == b"synced"


def test_a_rename_needs_its_directory_synced(tmp_path: Path) -> None:
    def publish(sync_dir: bool) -> Callable[[Path], None]:
        def run(root: Path) -> None:
            _write(root / "tmp", b"new", sync=True)
            os.replace(root / "tmp", root / "old")
            if sync_dir:
                _fsync_path(root)

        return run

    assert _durable(tmp_path, publish(False)) == {"old": b"old"}
    assert _durable(tmp_path, publish(True)) == {"old": b"new"}


def test_a_rename_between_directories_needs_both(tmp_path: Path) -> None:
    def move(synced: str) -> Callable[[Path], None]:
        def run(root: Path) -> None:
            os.rename(root / "old", root / "sub" / "moved")
            _fsync_path(root / synced)

        return run

    assert _durable(tmp_path, move("sub")) == {"old": b"old", "sub/moved": b"old"}
    assert _durable(tmp_path, move(".")) == {}


def test_a_new_directory_needs_its_parent_synced(tmp_path: Path) -> None:
    def mkdir(sync_parent: bool) -> Callable[[Path], None]:
        def run(root: Path) -> None:
            (root / "a" / "b").mkdir(parents=True)
            _write(root / "a" / "b" / "f", b"f", sync=True)
            _fsync_path(root / "a" / "b")
            _fsync_path(root / "a")
            if sync_parent:
                _fsync_path(root)

        return run

    assert "a/b/f" not in _durable(tmp_path, mkdir(False))
    assert _durable(tmp_path, mkdir(True))["a/b/f"] == b"f"


def test_an_unlink_needs_its_directory_synced(tmp_path: Path) -> None:
    def unlink(sync_dir: bool) -> Callable[[Path], None]:
        def run(root: Path) -> None:
            os.unlink(root / "old")
            if sync_dir:
                _fsync_path(root)

        return run

    assert _durable(tmp_path, unlink(False)) == {"old": b"old"}
    assert _durable(tmp_path, unlink(True)) == {}


def test_writes_through_open_are_followed(tmp_path: Path) -> None:
    def run(root: Path) -> None:
        with open(root / "new", "wb") as f:
            f.write(b"data")
            f.flush()
            os.fsync(f.fileno())
        (root / "cache").write_bytes(b"never synced")
        _fsync_path(root)

    assert _durable(tmp_path, run) == {"old": b"old", "new": b"data", "cache": b""}


def test_the_power_cut_replaces_the_armed_operation_and_every_later_one(tmp_path: Path) -> None:
    root = _root(tmp_path)
    outside = tmp_path / "outside"
    fs = LazyFS(root, crash_at=2)
    with fs:
        _write(outside, b"not counted", sync=True)
        with pytest.raises(PowerCut):
            _write(root / "new", b"data", sync=True)  # open, write, then the cut: no fsync
        with pytest.raises(PowerCut):
            os.unlink(root / "old")
    assert [(op.index, op.name, op.path) for op in fs.ops] == [
        (0, "open", "new"),
        (1, "write", "new"),
    ]
    assert fs.crashed is not None and fs.crashed.name == "fsync"
    assert (root / "old").exists()
    assert outside.read_bytes() == b"not counted"
