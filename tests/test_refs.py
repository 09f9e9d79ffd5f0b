"""refs: one refs.json moved by compare-and-swap transactions, every move in the reflog."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from vault import Repository
from vault.errors import CorruptObject, LockTimeout, RefConflict
from vault.ids import hash_bytes
from vault.lock import file_lock
from vault.refs import LATEST, TAGS, VERSIONS, RefsDoc, RefStore, version_name, version_number


def oid(n: int) -> str:
    return hash_bytes(f"version {n}".encode())


@pytest.fixture
def refs(tmp_path: Path) -> RefStore:
    for sub in ("logs", "locks"):
        (tmp_path / sub).mkdir()
    store = RefStore(tmp_path, lock_timeout=2)
    store.initialise()
    return store


def test_version_names() -> None:
    assert [version_name(n) for n in (1, 2, 10, 999, 1000)] == [
        "v001",
        "v002",
        "v010",
        "v999",
        "v1000",
    ]
    assert version_number("v007") == 7 and version_number("v1000") == 1000
    assert version_number("v7") == 7
    for bad in ("7", "v", "v7a", "V007", "tag"):
        assert version_number(bad) is None


def test_refs_doc_round_trip() -> None:
    doc = RefsDoc({LATEST: oid(1), VERSIONS + "v001": oid(1), TAGS + "best": oid(1)}, 2)
    data = doc.to_bytes()
    assert json.loads(data)["format"] == 1
    back = RefsDoc.from_bytes(data)
    assert back == doc
    assert back.names_for(TAGS) == {"best": oid(1)}
    assert back.names_for(VERSIONS) == {"v001": oid(1)}


@pytest.mark.parametrize(
    "data",
    [
        b"{}",
        b'{"format": 99, "refs": {}, "next_version": 1}',
        b'{"format": 1, "refs": {"latest": "nothex"}, "next_version": 1}',
        b'{"format": 1, "refs": {"latest": 5}, "next_version": 1}',
        b'{"format": 1, "next_version": 1}',
    ],
)
def test_refs_doc_rejects_malformed(data: bytes) -> None:
    with pytest.raises((ValueError, KeyError)):
        RefsDoc.from_bytes(data)


def test_corrupt_refs_json_is_reported(refs: RefStore) -> None:
    refs.path.write_text("{ not json")
    with pytest.raises(CorruptObject):
        refs.read()


def test_missing_refs_json_reads_empty(tmp_path: Path) -> None:
    assert RefStore(tmp_path).read() == RefsDoc()


def test_transaction_publishes_and_logs_each_move(refs: RefStore) -> None:
    with refs.transaction("first") as txn:
        txn.set(VERSIONS + "v001", oid(1), expected=None)
        txn.set(LATEST, oid(1), expected=None)
    assert refs.read().refs == {VERSIONS + "v001": oid(1), LATEST: oid(1)}
    log = refs.reflog()
    assert [(e.ref, e.old, e.new, e.reason) for e in log] == [
        (VERSIONS + "v001", None, oid(1), "first"),
        (LATEST, None, oid(1), "first"),
    ]
    for e in log:
        datetime.fromisoformat(e.time)
    lines = refs.reflog_path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["pid"] == os.getpid()


def test_delete_is_logged(refs: RefStore) -> None:
    with refs.transaction("add") as txn:
        txn.set(TAGS + "x", oid(1))
    with refs.transaction("remove") as txn:
        txn.delete(TAGS + "x", expected=oid(1))
    assert TAGS + "x" not in refs.read().refs
    last = refs.reflog()[-1]
    assert (last.ref, last.old, last.new, last.reason) == (TAGS + "x", oid(1), None, "remove")


def test_compare_and_swap_conflict_aborts_whole_transaction(refs: RefStore) -> None:
    with refs.transaction("setup") as txn:
        txn.set(LATEST, oid(1))
    before = refs.path.read_bytes()
    with pytest.raises(RefConflict) as info, refs.transaction("stale") as txn:
        txn.set(TAGS + "a", oid(2))
        txn.set(LATEST, oid(2), expected=oid(3))
    assert info.value.ref == LATEST
    assert info.value.expected == oid(3) and info.value.actual == oid(1)
    assert refs.path.read_bytes() == before
    assert len(refs.reflog()) == 1


def test_expected_none_means_must_not_exist(refs: RefStore) -> None:
    with refs.transaction("a") as txn:
        txn.set(TAGS + "t", oid(1), expected=None)
    with pytest.raises(RefConflict), refs.transaction("b") as txn:
        txn.set(TAGS + "t", oid(2), expected=None)
    with pytest.raises(RefConflict), refs.transaction("c") as txn:
        txn.delete(TAGS + "t", expected=oid(2))
    assert refs.read().refs[TAGS + "t"] == oid(1)


def test_exception_in_block_publishes_nothing(refs: RefStore) -> None:
    with pytest.raises(RuntimeError), refs.transaction("x") as txn:
        txn.set(LATEST, oid(1))
        raise RuntimeError("abort")
    assert refs.read().refs == {}
    assert refs.reflog() == []


def test_empty_transaction_writes_nothing(refs: RefStore) -> None:
    mtime = refs.path.stat().st_mtime_ns
    with refs.transaction("noop") as txn:
        assert txn.get(LATEST) is None
    assert refs.path.stat().st_mtime_ns == mtime
    assert not refs.reflog_path.exists()


def test_version_names_are_sequential_and_never_reused(refs: RefStore) -> None:
    names = []
    for i in range(3):
        with refs.transaction("commit") as txn:
            name = txn.allocate_version_name()
            txn.set(VERSIONS + name, oid(i), expected=None)
        names.append(name)
    assert names == ["v001", "v002", "v003"]
    with refs.transaction("drop") as txn:
        txn.delete(VERSIONS + "v003")
    with refs.transaction("commit") as txn:
        assert txn.allocate_version_name() == "v004"


def test_allocation_alone_is_persisted(refs: RefStore) -> None:
    with refs.transaction("reserve") as txn:
        assert txn.allocate_version_name() == "v001"
    assert refs.read().next_version == 2


def test_allocation_respects_existing_higher_names(refs: RefStore) -> None:
    with refs.transaction("import") as txn:
        txn.set(VERSIONS + "v041", oid(1))
    with refs.transaction("commit") as txn:
        assert txn.allocate_version_name() == "v042"


def test_reflog_skips_torn_and_malformed_lines(refs: RefStore) -> None:
    with refs.transaction("one") as txn:
        txn.set(LATEST, oid(1))
    with open(refs.reflog_path, "ab") as f:
        f.write(b'["not", "an", "entry"]\n{"time": "x"}\n{"time": "2024-01-01T00:00:00+00:')
    with refs.transaction("two") as txn:
        txn.set(LATEST, oid(2))
    log = refs.reflog()
    assert [e.reason for e in log] == ["one", "two"]
    assert log[-1].old == oid(1) and log[-1].new == oid(2)


def test_recent_ids(refs: RefStore) -> None:
    import time

    with refs.transaction("old") as txn:
        txn.set(TAGS + "a", oid(1))
    with refs.transaction("gone") as txn:
        txn.delete(TAGS + "a")
    assert refs.recent_ids(time.time() - 3600) == {oid(1)}
    assert refs.recent_ids(time.time() + 3600) == set()


def test_transaction_waits_for_lock_then_times_out(refs: RefStore) -> None:
    refs.lock_timeout = 0.2
    with (
        file_lock(refs.lock_path),
        pytest.raises(LockTimeout),
        refs.transaction("blocked") as txn,
    ):
        txn.set(LATEST, oid(1))
    assert refs.read().refs == {}


def test_shared_locks_coexist_exclusive_does_not(tmp_path: Path) -> None:
    lock = tmp_path / "l.lock"
    with (
        file_lock(lock, shared=True),
        file_lock(lock, shared=True, timeout=0.1),
        pytest.raises(LockTimeout),
        file_lock(lock, timeout=0.1),
    ):
        pass
    with file_lock(lock, timeout=0.1):
        pass


def test_commit_and_tag_moves_appear_in_reflog(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "f.txt"
    src.write_text("one")
    r1 = repo.commit(src, "first", tags=["base-model"])
    src.write_text("two")
    r2 = repo.commit(src, "second")
    repo.tag("best", "v002")
    repo.tag("best", "v001", force=True)
    repo.untag("best")
    moves = [(e.ref, e.old, e.new) for e in repo.refs.reflog()]
    assert moves == [
        (VERSIONS + "v001", None, r1.id),
        (LATEST, None, r1.id),
        (TAGS + "base-model", None, r1.id),
        (VERSIONS + "v002", None, r2.id),
        (LATEST, r1.id, r2.id),
        (TAGS + "best", None, r2.id),
        (TAGS + "best", r2.id, r1.id),
        (TAGS + "best", r1.id, None),
    ]
    assert (repo.root / "logs" / "reflog.jsonl").is_file()
