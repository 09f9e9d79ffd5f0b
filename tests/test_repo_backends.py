"""The repository on every backend: the same verbs, the same format, gc beside writers.

Each test runs on a directory, in memory and on S3 (a real SeaweedFS server). Files are real
(safetensors and JSON), and checkouts go to real directories.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Clock, make_model_dir, make_safetensors, random_tensors, tree_bytes

from vault import Repository
from vault.backend import LocalBackend
from vault.backend_memory import MemoryBackend
from vault.backend_s3 import S3Backend
from vault.errors import LockTimeout, RefConflict
from vault.leases import SHARED
from vault.refs import LATEST, TAGS


@pytest.fixture(params=["local", "memory", "s3"])
def made(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Repository, Any]:
    if request.param == "local":
        repo = Repository.init(tmp_path / ".vault")
        return repo, None
    if request.param == "s3":  # a real SeaweedFS (tests/seaweed.py), a fresh prefix per test
        server = request.getfixturevalue("s3_server")
        bucket, prefix = request.getfixturevalue("s3_bucket"), request.getfixturevalue("s3_prefix")
        return Repository.init(S3Backend(bucket, prefix, endpoint_url=server.endpoint)), None
    clock = Clock()
    return Repository.init(MemoryBackend(clock=clock)), clock


def test_commit_checkout_log_verify(made: tuple[Repository, Any], tmp_path: Path) -> None:
    repo, _ = made
    model = make_model_dir(tmp_path / "model", seed=1)
    first = repo.commit(model, "base", tags=["base-model"])
    make_safetensors(model / "extra.safetensors", random_tensors(9, {"w": (32, 32)}))
    second = repo.commit(model, "with extra")
    assert [v.version for v in repo.log()] == ["v002", "v001"]
    assert second.parents == [first.id]
    repo.checkout("v001", tmp_path / "out1")
    repo.checkout("latest", tmp_path / "out2")
    assert tree_bytes(tmp_path / "out2") == tree_bytes(model)
    assert "extra.safetensors" not in tree_bytes(tmp_path / "out1")
    assert repo.verify().ok
    assert Repository.open(repo.backend).resolve("base-model") == first.id


def test_gc_keeps_what_refs_reach_and_collects_the_rest(
    made: tuple[Repository, Any], tmp_path: Path
) -> None:
    repo, clock = made
    src = tmp_path / "m.safetensors"
    make_safetensors(src, random_tensors(1, {"a": (64, 64)}))
    repo.commit(src, "one")
    make_safetensors(src, random_tensors(2, {"a": (64, 64)}))
    repo.commit(src, "two")
    repo.delete("v001", confirm=True)
    repo.unpin(repo.backup_list()[0].name)
    if clock is not None:
        clock.now += 7200
    result = repo.gc(grace=0 if clock is None else "1h")
    assert result.objects > 0
    assert repo.verify().ok
    repo.checkout("v002", tmp_path / "out")
    assert (tmp_path / "out" / "m.safetensors").read_bytes() == src.read_bytes()


def test_gc_waits_for_a_writer_in_flight(made: tuple[Repository, Any]) -> None:
    repo, _ = made
    fast = Repository.open(repo.backend, lock_timeout=0.3)
    with repo.locks.hold(SHARED), pytest.raises(LockTimeout):  # a writer in flight
        fast.gc(grace=0)
    fast.gc(grace=0)


def test_a_writer_waits_for_gc(made: tuple[Repository, Any], tmp_path: Path) -> None:
    repo, _ = made
    (tmp_path / "f.txt").write_text("x")
    fast = Repository.open(repo.backend, lock_timeout=0.3)
    from vault.leases import EXCLUSIVE

    with repo.locks.hold(EXCLUSIVE), pytest.raises(LockTimeout):
        fast.commit(tmp_path / "f.txt", "blocked")
    assert repo.log() == []
    assert repo.locks.list() == []


def test_concurrent_commits_serialise_into_one_history(
    made: tuple[Repository, Any], tmp_path: Path
) -> None:
    repo, _ = made
    errors: list[BaseException] = []

    def commit(n: int) -> None:
        src = tmp_path / f"src{n}"
        src.mkdir()
        np.save(src / "a.npy", np.full(1000, n))
        try:
            Repository.open(repo.backend).commit(src, f"writer {n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=commit, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    log = repo.log()
    assert [v.version for v in log] == ["v004", "v003", "v002", "v001"]
    for newer, older in zip(log, log[1:], strict=False):
        assert newer.parents == [older.id]


def test_set_if_equals_refuses_a_stale_value(made: tuple[Repository, Any], tmp_path: Path) -> None:
    repo, _ = made
    (tmp_path / "f.txt").write_text("x")
    one = repo.commit(tmp_path / "f.txt", "one")
    (tmp_path / "f.txt").write_text("y")
    two = repo.commit(tmp_path / "f.txt", "two")
    repo.refs.set_if_equals(TAGS + "best", None, one.id, "tag")
    with pytest.raises(RefConflict):
        repo.refs.set_if_equals(TAGS + "best", two.id, one.id, "stale")
    with pytest.raises(RefConflict):
        repo.refs.set_if_equals(LATEST, one.id, two.id, "stale")
    assert repo.refs.read().refs[TAGS + "best"] == one.id


def test_local_repository_opens_on_its_backend(tmp_path: Path) -> None:
    Repository.init(tmp_path / ".vault")
    repo = Repository.open(LocalBackend(tmp_path / ".vault"))
    assert repo.root == tmp_path / ".vault" and repo.log() == []
