"""A commit never counts a damaged object as already stored.

Before a commit reuses an object that exists, it reads it in full (decode, re-hash, and for a
delta its whole chain); a damaged one is replaced by the bytes being committed, counted as new.
The stat cache vouches for an unchanged file only when its manifest is intact and every chunk's
header, length and delta chain check out. Each repository step below opens the repository
afresh, as a new ``vault`` process would, so nothing is trusted from an earlier read. The same
files are committed again with ``allow_empty`` so that each makes a version to check out
(test_unchanged_commit.py shows an unchanged commit heals as well).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from faultkit import make_writable, ok, run_vault, write_checkpoint

from tests.conftest import tree_bytes
from vault import Repository, codec, statcache
from vault.objects import FileManifest
from vault.store import object_key

MODEL = "model.safetensors"


def write_source(path: Path, step: int) -> Path:
    """A directory whose chunks take every codec: in ``model.safetensors`` one tensor that never
    changes (byte planes) and one that drifts with ``step`` (a delta from step 2 on), random
    bytes (raw) and a JSON file (zstd)."""
    write_checkpoint(path, step, frozen=True)
    (path / "optimizer.bin").write_bytes(np.random.default_rng(0).bytes(100_000))
    (path / "config.json").write_text(json.dumps({"layers": [{"id": i} for i in range(300)]}))
    return path


@pytest.fixture
def two_versions(tmp_path: Path) -> tuple[Path, Path]:
    """A repository with v001 (step 1) and v002 (step 2, its drifting tensor a delta of v001's);
    returns the repository's path and step 2's source directory."""
    root = tmp_path / "repo"
    repo = Repository.init(root)
    repo.commit(write_source(tmp_path / "step1", 1), "step 1")
    repo.commit(write_source(tmp_path / "step2", 2), "step 2")
    return root, tmp_path / "step2"


def file_manifest(repo: Repository, rev: str, path: str) -> tuple[str, FileManifest]:
    tree = repo.store.get_tree(repo.store.get_version(repo.resolve(rev)).tree)
    entry = next(e for e in tree.entries if e.path == path)
    assert entry.file is not None
    return entry.file, repo.store.get_file(entry.file)


def target(repo: Repository, kind: str) -> tuple[str, int]:
    """(id, content length) of v002's object of ``kind``; a chunk's length, 0 for a manifest."""
    if kind == "tree":
        return repo.store.get_version(repo.resolve("v002")).tree, 0
    if kind == "manifest":
        return file_manifest(repo, "v002", MODEL)[0], 0
    for path in (MODEL, "optimizer.bin", "config.json"):
        for c in file_manifest(repo, "v002", path)[1].chunks:
            header = repo.store.head(c.oid)
            assert header is not None
            found = {
                "raw": header.codec == codec.CODEC_RAW,
                "zstd": header.codec == codec.CODEC_ZSTD,
                "planes": header.codec == codec.CODEC_PLANES and header.base is None,
                "delta": header.base is not None,
            }[kind]
            if found:
                return c.oid, c.size
    raise AssertionError(f"no {kind} chunk in v002")


def _flip(data: bytes, _other: bytes) -> bytes:
    """One bit of the payload, halfway in."""
    out = bytearray(data)
    out[codec.HEADER_SIZE + (len(data) - codec.HEADER_SIZE) // 2] ^= 0x10
    return bytes(out)


DAMAGE: dict[str, Callable[[bytes, bytes], bytes]] = {
    "bitflip": _flip,
    "truncated": lambda data, _other: data[: len(data) // 2],
    "empty": lambda _data, _other: b"",
    "other-object": lambda _data, other: other,
}


def damage(root: Path, oid: str, how: str) -> None:
    """Damage the object file of ``oid``; ``other-object`` puts the bytes of the repository's
    version v001 (another object, of another length) under its name."""
    repo = Repository.open(root)
    path = root / object_key(oid)
    other = (root / object_key(repo.resolve("v001"))).read_bytes()
    make_writable(path)
    path.write_bytes(DAMAGE[how](path.read_bytes(), other))


def assert_whole(root: Path, tmp_path: Path, sources: dict[str, Path]) -> None:
    """Every named version checks out as its source and verify finds nothing."""
    repo = Repository.open(root)
    for rev, src in sources.items():
        out = tmp_path / f"out-{rev}"
        repo.checkout(rev, out)
        assert tree_bytes(out) == tree_bytes(src), rev
    report = repo.verify()
    assert report.ok, report.damaged


@pytest.mark.parametrize("how", sorted(DAMAGE))
@pytest.mark.parametrize("kind", ["raw", "zstd", "planes", "delta", "manifest", "tree"])
@pytest.mark.parametrize("rehash", [True, False], ids=["rehash", "elsewhere"])
def test_recommit_replaces_a_damaged_object(
    two_versions: tuple[Path, Path], tmp_path: Path, kind: str, how: str, rehash: bool
) -> None:
    """Re-committing the source of v002 heals the damaged object: it is written again (chunks
    count as new bytes), and every version reads back. ``elsewhere`` commits a copy from another
    path (a plain commit for which the stat cache has nothing), ``rehash`` the same directory."""
    root, src = two_versions
    oid, size = target(Repository.open(root), kind)
    damage(root, oid, how)
    if not rehash:
        src = Path(shutil.copytree(src, tmp_path / "elsewhere"))
    res = Repository.open(root).commit(src, "again", rehash=rehash, allow_empty=True)
    assert res.new_bytes == size
    assert res.stored_bytes > 0
    assert_whole(root, tmp_path, {"v001": tmp_path / "step1", "v002": src, "v003": src})


def test_delta_with_a_damaged_base_is_not_reused(
    two_versions: tuple[Path, Path], tmp_path: Path
) -> None:
    """The delta itself is intact but its base is not: the delta is stored again, on its own."""
    root, src = two_versions
    repo = Repository.open(root)
    delta, size = target(repo, "delta")
    base = repo.store.delta_base(delta)
    assert base is not None
    damage(root, base, "bitflip")
    res = Repository.open(root).commit(src, "again", rehash=True, allow_empty=True)
    assert res.new_bytes == size
    repo = Repository.open(root)
    assert repo.store.delta_base(delta) is None
    for rev in ("v002", "v003"):
        repo.checkout(rev, tmp_path / rev)
        assert tree_bytes(tmp_path / rev) == tree_bytes(src)
    # Step 1's own chunk is still damaged: verify says so, and only of v001.
    report = repo.verify()
    assert [(d.oid, d.versions) for d in report.damaged] == [(base, ["v001"])]


def test_cli_rehash_heals_a_damaged_chunk(two_versions: tuple[Path, Path], tmp_path: Path) -> None:
    """The user's path: ``vault commit --rehash`` reports new bytes, checkout and verify pass."""
    root, src = two_versions
    oid, size = target(Repository.open(root), "planes")
    damage(root, oid, "bitflip")
    proc = ok(run_vault(root, "commit", str(src), "-m", "again", "--rehash", "--allow-empty"))
    assert "new 0 B" not in proc.stdout, proc.stdout
    ok(run_vault(root, "checkout", "v003", str(tmp_path / "out")))
    assert tree_bytes(tmp_path / "out") == tree_bytes(src)
    assert ok(run_vault(root, "verify")).stdout.startswith("ok:")


# -- the stat cache ---------------------------------------------------------------------------


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust files written a moment ago (the default window is 2 s, too long for a test)."""
    monkeypatch.setattr(statcache, "RACY_NS", 0)


def _bad_magic(data: bytes, _other: bytes) -> bytes:
    return b"XXXX" + data[4:]


CHEAP_DAMAGE = {
    "truncated": DAMAGE["truncated"],
    "empty": DAMAGE["empty"],
    "other-object": DAMAGE["other-object"],
    "bad-header": _bad_magic,
}


@pytest.mark.parametrize("how", sorted(CHEAP_DAMAGE))
@pytest.mark.parametrize("kind", ["raw", "planes", "delta", "manifest"])
def test_stat_cache_does_not_vouch_for_damaged_chunks(
    two_versions: tuple[Path, Path], tmp_path: Path, no_racy_window: None, kind: str, how: str
) -> None:
    """With the stat cache holding every file of step 2, damage that the chunk's header or
    length shows makes the commit read the file again and heal the chunk."""
    root, src = two_versions
    Repository.open(root).commit(src, "record the stat cache", allow_empty=True)
    oid, size = target(Repository.open(root), kind)
    path = root / object_key(oid)
    other = (root / object_key(Repository.open(root).resolve("v001"))).read_bytes()
    make_writable(path)
    path.write_bytes(CHEAP_DAMAGE[how](path.read_bytes(), other))
    res = Repository.open(root).commit(src, "again", allow_empty=True)
    assert res.unchanged_files == 2  # optimizer.bin and config.json, or model and one of them
    assert res.new_bytes == size
    assert_whole(root, tmp_path, {v: src for v in ("v002", "v003", "v004")})


def test_stat_cache_does_not_vouch_for_a_delta_whose_base_is_gone(
    two_versions: tuple[Path, Path], tmp_path: Path, no_racy_window: None
) -> None:
    root, src = two_versions
    Repository.open(root).commit(src, "record the stat cache", allow_empty=True)
    repo = Repository.open(root)
    delta, size = target(repo, "delta")
    base = repo.store.delta_base(delta)
    assert base is not None
    (root / object_key(base)).unlink()
    res = Repository.open(root).commit(src, "again", allow_empty=True)
    assert res.unchanged_files == 2
    assert res.new_bytes == size
    repo = Repository.open(root)
    repo.checkout("v004", tmp_path / "out")
    assert tree_bytes(tmp_path / "out") == tree_bytes(src)
    assert not repo.verify().ok  # v001 lost that chunk for good


def test_stat_cache_still_skips_intact_files(
    two_versions: tuple[Path, Path], no_racy_window: None
) -> None:
    root, src = two_versions
    Repository.open(root).commit(src, "record the stat cache", allow_empty=True)
    res = Repository.open(root).commit(src, "again", allow_empty=True)
    assert res.unchanged_files == 3 and res.new_bytes == 0


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_header_readers_read_past_damaged_chunks(two_versions: tuple[Path, Path], how: str) -> None:
    """``stats`` and ``backup cleanup`` read chunk headers only (for delta bases): a damaged
    delta chunk neither stops them nor is repaired by them."""
    root, _ = two_versions
    delta, _ = target(Repository.open(root), "delta")
    damage(root, delta, how)
    repo = Repository.open(root)
    repo.delete("v002", confirm=True)  # v002 is then kept by a pre_deletion pin only
    assert repo.stats().versions == 1
    plan = repo.backup_cleanup(keep_last=0)
    assert len(plan.unpin) == 1 and plan.objects > 0
    assert not repo.verify().ok
