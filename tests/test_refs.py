"""refs: one refs.json moved by compare-and-swap transactions, every move in the reflog."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from vault import Repository
from vault.backend import LocalBackend
from vault.backend_memory import MemoryBackend
from vault.errors import CorruptObject, RefConflict
from vault.ids import hash_bytes
from vault.refs import (
    LATEST,
    LEGACY_REFLOG,
    REFLOG_DIR,
    TAGS,
    VERSIONS,
    RefsDoc,
    RefStore,
    version_name,
    version_number,
)


def oid(n: int) -> str:
    return hash_bytes(f"version {n}".encode())


@pytest.fixture(params=["local", "memory"])
def refs(request: pytest.FixtureRequest, tmp_path: Path) -> RefStore:
    if request.param == "local":
        (tmp_path / "tmp").mkdir()
        store = RefStore(LocalBackend(tmp_path))
    else:
        store = RefStore(MemoryBackend())
    store.initialise()
    return store


def _reflog_files(refs: RefStore) -> list[str]:
    return sorted(k for k, _ in refs.backend.list(REFLOG_DIR))


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
    refs.backend.put("refs.json", b"{ not json")
    with pytest.raises(CorruptObject):
        refs.read()


def test_missing_refs_json_reads_empty(tmp_path: Path) -> None:
    assert RefStore(LocalBackend(tmp_path)).read() == RefsDoc()


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
    (key,) = _reflog_files(refs)  # one file per transaction
    lines = refs.backend.get(key).splitlines()
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
    before = refs.backend.get("refs.json")
    with pytest.raises(RefConflict) as info, refs.transaction("stale") as txn:
        txn.set(TAGS + "a", oid(2))
        txn.set(LATEST, oid(2), expected=oid(3))
    assert info.value.ref == LATEST
    assert info.value.expected == oid(3) and info.value.actual == oid(1)
    assert refs.backend.get("refs.json") == before
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
    _, tag = refs.backend.get_versioned("refs.json")
    with refs.transaction("noop") as txn:
        assert txn.get(LATEST) is None
    assert refs.backend.get_versioned("refs.json")[1] == tag
    assert _reflog_files(refs) == []


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


def test_legacy_reflog_is_read_and_torn_lines_skipped(refs: RefStore) -> None:
    # Format 2 appended every move to logs/reflog.jsonl; a crash could tear its last line.
    legacy = {"time": "2026-01-01T00:00:00+00:00", "ref": LATEST, "old": None, "new": oid(0)}
    refs.backend.put(
        LEGACY_REFLOG,
        json.dumps({**legacy, "reason": "old"}).encode()
        + b'\n["not", "an", "entry"]\n{"time": "x"}\n{"time": "2024-01-01T00:00:00+00:',
    )
    with refs.transaction("one") as txn:
        txn.set(LATEST, oid(1))
    with refs.transaction("two") as txn:
        txn.set(LATEST, oid(2))
    log = refs.reflog()
    assert [e.reason for e in log] == ["old", "one", "two"]
    assert log[-1].old == oid(1) and log[-1].new == oid(2)


def test_recent_ids(refs: RefStore) -> None:
    import time

    with refs.transaction("old") as txn:
        txn.set(TAGS + "a", oid(1))
    with refs.transaction("gone") as txn:
        txn.delete(TAGS + "a")
    assert refs.recent_ids(time.time() - 3600) == {oid(1)}
    assert refs.recent_ids(time.time() + 3600) == set()


def test_a_writer_that_read_an_old_value_gets_a_conflict(refs: RefStore) -> None:
    """Two writers read tags/best = 1; the second to publish must not overwrite the first."""
    refs.set_if_equals(TAGS + "best", None, oid(1), "setup")
    other = RefStore(refs.backend)  # another writer on the same repository
    with pytest.raises(RefConflict) as info, refs.transaction("slow") as txn:
        seen = txn.get(TAGS + "best")
        txn.set(TAGS + "best", oid(2), expected=seen)
        other.set_if_equals(TAGS + "best", oid(1), oid(3), "fast")  # lands first
    assert info.value.expected == oid(1) and info.value.actual == oid(3)
    assert refs.read().refs[TAGS + "best"] == oid(3)


def test_writers_of_different_refs_both_win(refs: RefStore) -> None:
    other = RefStore(refs.backend)
    with refs.transaction("slow") as txn:
        txn.set(TAGS + "a", oid(1), expected=None)
        name = txn.allocate_version_name()
        txn.set(VERSIONS + name, oid(1), expected=None)
        other.set_if_equals(TAGS + "b", None, oid(2), "fast")
    doc = refs.read()
    assert doc.refs[TAGS + "a"] == oid(1) and doc.refs[TAGS + "b"] == oid(2)
    assert doc.refs[VERSIONS + "v001"] == oid(1) and doc.next_version == 2


def test_a_version_name_given_meanwhile_is_a_conflict(refs: RefStore) -> None:
    other = RefStore(refs.backend)
    with pytest.raises(RefConflict), refs.transaction("slow") as txn:
        name = txn.allocate_version_name()
        txn.set(VERSIONS + name, oid(1), expected=None)
        with other.transaction("fast") as t2:
            t2.set(VERSIONS + t2.allocate_version_name(), oid(2), expected=None)
    assert refs.read().refs == {VERSIONS + "v001": oid(2)}


_RACER = """
import sys, time
from pathlib import Path
from vault.backend import LocalBackend
from vault.refs import RefStore
root, me, seen, go = Path(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
refs = RefStore(LocalBackend(root))
with refs.transaction("race " + me) as txn:
    assert txn.get("tags/best") == seen
    time.sleep(max(0.0, go - time.time()))
    txn.set("tags/best", me, expected=seen)
"""


def test_two_processes_racing_for_one_ref_never_both_win(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    (tmp_path / "tmp").mkdir()
    refs = RefStore(LocalBackend(tmp_path))
    refs.initialise()
    refs.set_if_equals(TAGS + "best", None, oid(0), "setup")
    go = time.time() + 1.5  # both have read the ref by then, and publish at the same instant
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(tmp_path), oid(n), oid(0), str(go)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in racers]
    won = [n for n, (code, _) in zip((1, 2), results, strict=True) if code == 0]
    lost = [err for code, err in results if code != 0]
    assert len(won) == 1, results
    assert len(lost) == 1 and "RefConflict" in lost[0], results
    assert refs.read().refs[TAGS + "best"] == oid(won[0])


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
    assert len(list(repo.backend.list(REFLOG_DIR))) == 5  # one file per transaction
