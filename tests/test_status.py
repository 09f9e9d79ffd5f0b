"""``vault status [DIR] [--rev REV] [--json]``: files added, removed and changed in a folder
since a version, answered from the stat cache when it can, and never writing to the repository
anything but that cache.

Every run is a real ``vault`` process on real safetensors files.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from faultkit import VAULT, assert_clean_error, object_files, ok, run_vault, snapshot, vault_env
from safetensors.numpy import save_file

from vault.ops.commit import STAT_CACHE
from vault.statcache import RACY_NS

EMPTY = {"added": [], "removed": [], "changed": []}


def model(root: Path, seed: int = 0) -> Path:
    """A model folder: a safetensors file, a config, a nested tokenizer file and a link."""
    (root / "tok").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file({"w": rng.standard_normal((128, 64)).astype(np.float32)}, str(root / "m.safetensors"))
    (root / "config.json").write_text('{"layers": 2}')
    (root / "tok" / "vocab.txt").write_text("a b c\n")
    (root / "latest").symlink_to("m.safetensors")
    return root


def settle() -> None:
    """Wait until files just written are old enough for the stat cache to record them."""
    time.sleep(RACY_NS / 1e9 + 0.2)


def status_json(repo: Path, *args: str) -> dict:
    return json.loads(ok(run_vault(repo, "status", *args, "--json")).stdout)


def repo_state(repo: Path) -> dict:
    """Every file of the repository but the stat cache, with its content."""
    got = snapshot(repo)
    got.pop(STAT_CACHE, None)
    return got


@pytest.fixture
def committed(tmp_path: Path) -> tuple[Path, Path]:
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    work = model(tmp_path / "work")
    ok(run_vault(repo, "commit", str(work), "-m", "one"))
    return repo, work


def test_an_unchanged_folder_has_no_changes(committed: tuple[Path, Path]) -> None:
    repo, work = committed
    assert status_json(repo, str(work)) == EMPTY
    assert ok(run_vault(repo, "status", str(work))).stdout == "no changes against latest\n"


def test_added_removed_and_changed_files_are_listed_sorted(committed: tuple[Path, Path]) -> None:
    repo, work = committed
    before = repo_state(repo)
    (work / "z-new.txt").write_text("new")
    (work / "a-new.txt").write_text("new")
    (work / "tok" / "vocab.txt").unlink()
    data = bytearray((work / "m.safetensors").read_bytes())
    data[-1] ^= 1  # same size: only the content tells
    st = (work / "m.safetensors").stat()
    (work / "m.safetensors").write_bytes(bytes(data))
    os.utime(work / "m.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns))
    (work / "config.json").chmod(0o600)  # the mode is part of a file, as for diff
    (work / "latest").unlink()
    (work / "latest").symlink_to("config.json")

    got = status_json(repo, str(work))

    assert got == {
        "added": ["a-new.txt", "z-new.txt"],
        "removed": ["tok/vocab.txt"],
        "changed": ["config.json", "latest", "m.safetensors"],
    }
    human = ok(run_vault(repo, "status", str(work))).stdout.splitlines()
    assert human == [
        "A a-new.txt",
        "A z-new.txt",
        "D tok/vocab.txt",
        "M config.json",
        "M latest",
        "M m.safetensors",
    ]
    assert repo_state(repo) == before


def test_rev_compares_with_another_version(committed: tuple[Path, Path], tmp_path: Path) -> None:
    repo, work = committed
    (work / "extra.txt").write_text("x")
    ok(run_vault(repo, "commit", str(work), "-m", "two"))
    assert status_json(repo, str(work)) == EMPTY
    assert status_json(repo, str(work), "--rev", "v001") == {**EMPTY, "added": ["extra.txt"]}
    proc = run_vault(repo, "status", str(work), "--rev", "v009")
    assert_clean_error(proc, "v009")


def test_status_answers_from_the_stat_cache_commit_keeps(tmp_path: Path) -> None:
    """A file whose stamp the cache recorded is not read: a cache entry naming the version's
    manifest for a modified file's stamp is believed (what proves it is used), and a stamp that
    moved is not."""
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    work = model(tmp_path / "work")
    settle()
    ok(run_vault(repo, "commit", str(work), "-m", "one"))
    cache_file = repo / STAT_CACHE
    entries = json.loads(cache_file.read_text())["entries"]
    target = str((work / "config.json").absolute())
    assert target in entries

    (work / "config.json").write_text('{"layers": 3}')  # same size, new stamp
    assert status_json(repo, str(work))["changed"] == ["config.json"]

    doc = json.loads(cache_file.read_text())
    st = (work / "config.json").stat()
    stamp = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    doc["entries"][target] = [*stamp, entries[target][5]]  # vouch for the edit, falsely
    cache_file.write_text(json.dumps(doc))
    assert status_json(repo, str(work)) == EMPTY


def test_status_records_files_it_hashed_equal_and_nothing_else(
    committed: tuple[Path, Path],
) -> None:
    repo, work = committed  # committed at once: too recent for the cache to record
    cache_file = repo / STAT_CACHE
    cache_file.unlink(missing_ok=True)
    objects = set(object_files(repo))
    before = repo_state(repo)
    (work / "config.json").write_text("edited!!!!!!!")
    settle()
    assert status_json(repo, str(work))["changed"] == ["config.json"]
    recorded = json.loads(cache_file.read_text())["entries"]
    assert sorted(Path(p).name for p in recorded) == ["m.safetensors", "vocab.txt"]
    assert status_json(repo, str(work))["changed"] == ["config.json"]
    assert repo_state(repo) == before
    assert set(object_files(repo)) == objects


def test_dir_defaults_to_the_recorded_workdir_else_the_current_folder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    ok(run_vault(project / ".vault", "init", "--workdir", str(project / "model")))
    work = model(project / "model")
    ok(run_vault(project / ".vault", "commit", str(work), "-m", "one"))
    (work / "new.txt").write_text("n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def status_in(cwd: Path, repo_args: list[str]) -> dict:
        proc = subprocess.run(
            [*VAULT, *repo_args, "status", "--json"],
            cwd=cwd,
            env=vault_env(),
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    recorded = {**EMPTY, "added": ["new.txt"]}
    assert status_in(elsewhere, ["--repo", str(project / ".vault")]) == recorded

    plain = tmp_path / "plain"
    plain.mkdir()
    ok(run_vault(plain / ".vault", "init"))
    model(plain)
    ok(run_vault(plain / ".vault", "commit", str(plain), "-m", "one"))
    (plain / "tok" / "more.txt").write_text("m")
    assert status_in(plain, []) == {**EMPTY, "added": ["tok/more.txt"]}


def test_before_the_first_version_everything_is_added(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    work = model(tmp_path / "work")
    got = status_json(repo, str(work))
    assert got["added"] == ["config.json", "latest", "m.safetensors", "tok/vocab.txt"]


def test_a_missing_folder_is_one_line(committed: tuple[Path, Path], tmp_path: Path) -> None:
    repo, _ = committed
    assert_clean_error(run_vault(repo, "status", str(tmp_path / "nope")), "nope")


def test_help_documents_status(tmp_path: Path) -> None:
    out = " ".join(ok(run_vault(tmp_path, "status", "--help")).stdout.split())
    assert "--rev" in out and "stat cache" in out and "--workdir" in out
