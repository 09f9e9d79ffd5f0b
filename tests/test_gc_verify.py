"""gc (mark from every ref and recent reflog entry, sweep old unreachable objects) and verify."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import make_model_dir, tree_bytes

from vault import Repository
from vault.errors import BadValue, FilesCollected
from vault.fsutil import TMP_PREFIX
from vault.ops.gc import DEFAULT_GRACE, parse_duration
from vault.ops.walk import reach
from vault.refs import LATEST, VERSIONS
from vault.store import object_key


def age(repo: Repository, oid: str, seconds: float) -> None:
    """Make an object look ``seconds`` old."""
    t = time.time() - seconds
    os.utime(repo.root / object_key(oid), (t, t))


def age_all(repo: Repository, seconds: float) -> None:
    for oid, _ in repo.store.list():
        age(repo, oid, seconds)


def all_objects(repo: Repository) -> set[str]:
    return {oid for oid, _ in repo.store.list()}


def corrupt(repo: Repository, oid: str) -> None:
    path = repo.root / object_key(oid)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0s", 0), ("0", 0), ("45", 45), ("30m", 1800), ("2h", 7200), ("14d", 14 * 86400)]
    + [("1w", 604800), ("1.5h", 5400), (" 2H ", 7200)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-1h", "2y", "1h30m", "soon", "1e3s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(BadValue):
        parse_duration(text)


def test_default_grace_is_one_hour() -> None:
    assert parse_duration(DEFAULT_GRACE) == 3600


def test_gc_keeps_everything_reachable(tmp_path: Path, repo: Repository) -> None:
    model = make_model_dir(tmp_path / "model")
    repo.commit(model, "one")
    (model / "config.json").write_text("{}")
    repo.commit(model, "two")
    before = all_objects(repo)
    age_all(repo, 10 * 86400)
    res = repo.gc(grace="0s")
    assert res.objects == 0 and res.bytes == 0 and not res.dry_run
    assert res.reachable == len(before)
    assert all_objects(repo) == before
    assert repo.verify().ok


def test_gc_removes_old_unreachable_and_keeps_young(repo: Repository) -> None:
    old = repo.store.put(b"old garbage" * 100).oid
    young = repo.store.put(b"young garbage" * 100).oid
    age(repo, old, 2 * 3600)
    dry = repo.gc(grace="1h", dry_run=True)
    assert dry.dry_run and dry.objects == 1 and dry.bytes > 0 and dry.kept_young == 1
    assert repo.store.has(old)  # dry run removes nothing
    res = repo.gc(grace="1h")
    assert res.objects == 1 and res.bytes == dry.bytes and res.kept_young == 1
    assert not repo.store.has(old) and repo.store.has(young)
    assert repo.gc(grace=0).objects == 1
    assert not repo.store.has(young)


def test_gc_default_grace_keeps_fresh_garbage(repo: Repository) -> None:
    oid = repo.store.put(b"fresh").oid
    res = repo.gc()
    assert res.grace_seconds == 3600 and res.objects == 0 and res.kept_young == 1
    assert repo.store.has(oid)


def test_gc_after_version_ref_removed(tmp_path: Path, repo: Repository) -> None:
    """A version whose refs are all gone is collected once the grace period has passed."""
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(5000))
    keep = repo.commit(f, "keep")
    f.write_bytes(os.urandom(5000))
    side = tmp_path / "side"
    side.mkdir()
    (side / "g.bin").write_bytes(os.urandom(3000))
    dropped = repo.commit(side, "dropped")
    reached_by_dropped = reach(repo.store, {dropped.id}, ancestors=False).all()
    with repo.refs.transaction("drop v002") as txn:
        txn.delete(VERSIONS + "v002", expected=dropped.id)
        txn.set(LATEST, keep.id, expected=dropped.id)
    age_all(repo, 2 * 86400)
    # The reflog still names the dropped version within the grace period: kept.
    assert repo.gc(grace="1h").objects == 0
    res = repo.gc(grace="0s")
    gone = reached_by_dropped - reach(repo.store, {keep.id}).all()
    assert res.objects == len(gone) == 4  # version, tree, file manifest, chunk
    for oid in gone:
        assert not repo.store.has(oid)
    assert repo.verify().ok
    repo.checkout("v001", tmp_path / "out")


def test_gc_after_history_was_collected(tmp_path: Path, repo: Repository) -> None:
    """Regression: once 'gc --grace 0s' removed a dropped version, every gc with a longer grace
    failed for that long ("object ... is missing"), because the reflog still named it."""
    f = tmp_path / "f.bin"
    f.write_bytes(b"one" * 100)
    keep = repo.commit(f, "keep")
    f.write_bytes(b"two" * 100)
    dropped = repo.commit(f, "dropped")
    with repo.refs.transaction("drop v002") as txn:
        txn.delete(VERSIONS + "v002")
        txn.set(LATEST, keep.id)
    age_all(repo, 2 * 86400)
    assert repo.gc(grace="0s").objects == 4
    assert not repo.store.has(dropped.id)
    junk = repo.store.put(b"junk").oid
    age(repo, junk, 2 * 86400)
    res = repo.gc()  # the reflog still names the dropped version within 1h
    assert res.objects == 1 and not repo.store.has(junk)
    assert repo.verify().ok


def test_gc_with_partly_collected_history(tmp_path: Path, repo: Repository) -> None:
    """A recently dropped version whose tree is already gone (an interrupted collection) does
    not stop gc; live refs stay intact."""
    f = tmp_path / "f.bin"
    f.write_bytes(b"one" * 100)
    keep = repo.commit(f, "keep")
    f.write_bytes(b"two" * 100)
    dropped = repo.commit(f, "dropped")
    with repo.refs.transaction("drop v002") as txn:
        txn.delete(VERSIONS + "v002")
        txn.set(LATEST, keep.id)
    repo.store.delete(dropped.tree)
    age_all(repo, 2 * 86400)
    repo.gc()
    assert repo.verify().ok
    repo.checkout("v001", tmp_path / "out")
    assert (tmp_path / "out" / "f.bin").read_bytes() == b"one" * 100


def test_gc_refuses_when_a_live_ref_is_broken(tmp_path: Path, repo: Repository) -> None:
    from vault.errors import ObjectMissing

    f = tmp_path / "f.bin"
    f.write_bytes(b"data" * 100)
    res = repo.commit(f, "x")
    junk = repo.store.put(b"junk").oid
    age_all(repo, 86400)
    repo.store.delete(res.tree)
    with pytest.raises(ObjectMissing):
        repo.gc(grace="0s")
    assert repo.store.has(junk)  # nothing was removed


def test_gc_keeps_only_the_records_of_unnamed_ancestors(tmp_path: Path, repo: Repository) -> None:
    """History runs through a version whose name is gone, but its files go with the name."""
    f = tmp_path / "f.bin"
    for i in range(3):
        f.write_bytes(f"content {i}".encode() * 50)
        repo.commit(f, f"c{i}")
    first = repo.resolve("v001")
    with repo.refs.transaction("drop names") as txn:
        txn.delete(VERSIONS + "v001")
        txn.delete(VERSIONS + "v002")
    age_all(repo, 86400)
    # two trees, two file manifests, two chunks; the two version records stay
    assert repo.gc(grace="0s").objects == 6
    assert [e.version for e in repo.log()] == ["v003"]  # walked through, not listed
    assert [e.id for e in repo.log(all=True)][-1] == first
    assert repo.verify().ok
    with pytest.raises(FilesCollected):  # not damage: nothing keeps it, and gc took its files
        repo.checkout(first, tmp_path / "out")
    repo.checkout("v003", tmp_path / "out3")
    assert (tmp_path / "out3" / "f.bin").read_bytes() == b"content 2" * 50


def test_gc_removes_old_temp_debris(repo: Repository) -> None:
    debris = repo.root / "tmp" / f"{TMP_PREFIX}abc.123.ffff"
    debris.write_bytes(b"half written")
    dry = repo.gc(dry_run=True)
    assert dry.temp_files == 1 and debris.exists()
    res = repo.gc(grace="0s")
    assert res.temp_files == 1 and res.bytes == len(b"half written")
    assert not debris.exists()


def test_gc_keeps_tagged_versions_after_name_removed(tmp_path: Path, repo: Repository) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"tagged content" * 20)
    res = repo.commit(f, "x", tags=["best"])
    with repo.refs.transaction("drop") as txn:
        txn.delete(VERSIONS + "v001")
        txn.delete(LATEST)
    age_all(repo, 86400)
    assert repo.gc(grace="0s").objects == 0
    assert repo.resolve("best") == res.id
    repo.untag("best")
    age_all(repo, 86400)
    assert repo.gc(grace="0s").objects == 4
    assert all_objects(repo) == set()


# -- verify ----------------------------------------------------------------------------------


def test_verify_clean(tmp_path: Path, repo: Repository) -> None:
    model = make_model_dir(tmp_path / "model")
    repo.commit(model, "one")
    repo.commit(model, "two", allow_empty=True)
    report = repo.verify()
    assert report.ok and report.damaged == []
    assert report.versions == 2
    assert report.bytes == sum(len(b) for b in tree_bytes(model).values())
    assert report.objects == len(all_objects(repo))
    single = repo.verify("v001")
    assert single.ok and single.versions == 1


def test_verify_empty_repository(repo: Repository) -> None:
    report = repo.verify()
    assert report.ok and report.versions == 0 and report.objects == 0


def _shared_and_private(tmp_path: Path, repo: Repository) -> tuple[str, str]:
    """v001 and v002 share shared.bin; only v002 has new.bin. Returns their chunk ids."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "shared.bin").write_bytes(os.urandom(2000))
    repo.commit(src, "one")
    (src / "new.bin").write_bytes(os.urandom(2000))
    repo.commit(src, "two", tags=["best"])
    tree = repo.store.get_tree(repo.show("v002").tree)
    chunks = {e.path: repo.store.get_file(e.file).chunks[0].oid for e in tree.entries if e.file}
    return chunks["shared.bin"], chunks["new.bin"]


def test_verify_names_versions_a_corrupt_chunk_breaks(tmp_path: Path, repo: Repository) -> None:
    shared, private = _shared_and_private(tmp_path, repo)
    corrupt(repo, shared)
    report = repo.verify()
    assert not report.ok
    assert [(d.oid, d.problem, d.versions) for d in report.damaged] == [
        (shared, "corrupt", ["v001", "v002"])
    ]
    assert repo.verify("v002").damaged[0].versions == ["v002"]
    assert repo.verify("v001").damaged[0].oid == shared


def test_verify_reports_missing_objects(tmp_path: Path, repo: Repository) -> None:
    shared, private = _shared_and_private(tmp_path, repo)
    repo.store.delete(private)
    report = repo.verify()
    assert [(d.oid, d.problem, d.versions) for d in report.damaged] == [
        (private, "missing", ["v002"])
    ]
    assert repo.verify("v001").ok


def test_verify_reports_damaged_manifests(tmp_path: Path, repo: Repository) -> None:
    _shared_and_private(tmp_path, repo)
    tree = repo.show("v001").tree
    corrupt(repo, tree)
    report = repo.verify()
    assert [d.oid for d in report.damaged] == [tree]
    assert report.damaged[0].versions == ["v001"]
    version = repo.resolve("v002")
    repo.store.delete(version)
    report = repo.verify()
    assert {d.oid: d.versions for d in report.damaged} == {tree: ["v001"], version: ["v002"]}
