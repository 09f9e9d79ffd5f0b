"""The stat cache: unchanged files are not re-read, changed ones always are."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import make_model_dir, tree_bytes
from vault import Repository, statcache
from vault.store import object_key


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust files written a moment ago (the default window is 2 s, too long for a test)."""
    monkeypatch.setattr(statcache, "RACY_NS", 0)


def n_files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


def test_unchanged_directory_is_not_read_again(
    repo: Repository, tmp_path: Path, no_racy_window: None
) -> None:
    model = make_model_dir(tmp_path / "model", seed=1, shards=3)
    first = repo.commit(model, "first")
    assert first.unchanged_files == 0
    again = repo.commit(model, "again")
    assert again.unchanged_files == n_files(model)
    assert again.tree == first.tree and again.new_bytes == 0
    out = tmp_path / "out"
    repo.checkout(again.version, out)
    assert tree_bytes(out) == tree_bytes(model)


def test_changed_file_is_read_even_with_size_and_mtime_restored(
    repo: Repository, tmp_path: Path, no_racy_window: None
) -> None:
    model = make_model_dir(tmp_path / "model", seed=2)
    repo.commit(model, "first")
    victim = model / "config.json"
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[5] = ord("X") if data[5] != ord("X") else ord("Y")
    victim.write_bytes(bytes(data))  # same size, same inode
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back; ctime moves
    res = repo.commit(model, "edited")
    assert res.unchanged_files == n_files(model) - 1
    out = tmp_path / "out"
    repo.checkout(res.version, out)
    assert (out / "config.json").read_bytes() == bytes(data)


def test_replaced_file_with_same_stat_fields_but_new_inode_is_read(
    repo: Repository, tmp_path: Path, no_racy_window: None
) -> None:
    model = make_model_dir(tmp_path / "model", seed=3)
    repo.commit(model, "first")
    victim = model / "tokenizer.json"
    st = victim.stat()
    fresh = model / "tokenizer.json.new"
    fresh.write_bytes(victim.read_bytes().replace(b"tok1", b"tokX"))
    os.utime(fresh, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(fresh, victim)
    res = repo.commit(model, "replaced")
    assert res.unchanged_files == n_files(model) - 1
    out = tmp_path / "out"
    repo.checkout(res.version, out)
    assert b"tokX" in (out / "tokenizer.json").read_bytes()


def test_rehash_reads_everything(repo: Repository, tmp_path: Path, no_racy_window: None) -> None:
    model = make_model_dir(tmp_path / "model", seed=4)
    repo.commit(model, "first")
    assert repo.commit(model, "again", rehash=True).unchanged_files == 0
    assert repo.commit(model, "and again").unchanged_files == n_files(model)


def test_recently_modified_files_are_not_trusted(repo: Repository, tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "model", seed=5)
    repo.commit(model, "first")
    # Written within the racy window: a change in the same clock tick could go unseen.
    assert repo.commit(model, "again").unchanged_files == 0


def test_cache_naming_a_lost_chunk_falls_back_to_reading(
    repo: Repository, tmp_path: Path, no_racy_window: None
) -> None:
    model = make_model_dir(tmp_path / "model", seed=6, shards=1)
    first = repo.commit(model, "first")
    # Lose one chunk of the shard, as a damaged disk would.
    shard = next(e for e in repo.show(first.version).files or [] if e.path.endswith("safetensors"))
    assert shard.id is not None
    chunk = repo.store.get_file(shard.id).chunks[-1].oid
    (repo.root / object_key(chunk)).unlink()
    res = repo.commit(model, "again")
    assert res.unchanged_files == n_files(model) - 1  # the shard was read and its chunk re-stored
    assert repo.store.has(chunk)
    assert repo.verify().ok


def test_damaged_cache_file_is_ignored(
    repo: Repository, tmp_path: Path, no_racy_window: None
) -> None:
    model = make_model_dir(tmp_path / "model", seed=7)
    repo.commit(model, "first")
    cache = repo.root / "cache" / "stat.json"
    assert json.loads(cache.read_text())["entries"]
    cache.write_bytes(b"{not json")
    assert repo.commit(model, "again").unchanged_files == 0
    assert repo.commit(model, "and again").unchanged_files == n_files(model)


def test_cli_rehash_flag(
    vault_cli,
    tmp_path: Path,
    no_racy_window: None,  # type: ignore[no-untyped-def]
) -> None:
    model = make_model_dir(tmp_path / "model", seed=8)
    assert vault_cli("commit", str(model), "-m", "a").exit_code == 0
    res = vault_cli("commit", str(model), "-m", "b", "--json")
    assert json.loads(res.stdout)["unchanged_files"] == n_files(model)
    res = vault_cli("commit", str(model), "-m", "c", "--rehash", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["unchanged_files"] == 0


def test_old_enough_files_are_trusted_with_the_default_window(
    repo: Repository, tmp_path: Path
) -> None:
    model = make_model_dir(tmp_path / "model", seed=9, shards=1)
    time.sleep(statcache.RACY_NS / 1e9 + 0.1)
    repo.commit(model, "first")
    assert repo.commit(model, "again").unchanged_files == n_files(model)


def test_relative_and_absolute_paths_share_the_cache(
    repo: Repository, tmp_path: Path, no_racy_window: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model_dir(tmp_path / "model", seed=10)
    monkeypatch.chdir(tmp_path)
    repo.commit("model", "relative")
    assert repo.commit(model, "absolute").unchanged_files == n_files(model)
