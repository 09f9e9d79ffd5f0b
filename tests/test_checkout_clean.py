"""``checkout --force`` never mixes versions: into a folder holding files the version does not
have it writes nothing and exits 4 naming them; ``--clean`` removes them, all or nothing, and a
killed clean checkout puts them back.

Every run is a real ``vault`` process on real safetensors files; a refusal is checked against
snapshots of DEST (directories included) and of the repository taken before and after.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from faultkit import assert_clean_error, ok, run_vault, snapshot, vault_env
from safetensors.numpy import save_file

from vault import Repository
from vault.errors import StrayFiles

REFUSED = 4


def model(root: Path, seed: int, *, extra: dict[str, str] | None = None) -> Path:
    """A model folder: a real safetensors file, a config and a tokenizer folder."""
    rng = np.random.default_rng(seed)
    (root / "tokenizer").mkdir(parents=True, exist_ok=True)
    save_file(
        {"w": rng.standard_normal((64, 32)).astype(np.float32)}, str(root / "model.safetensors")
    )
    (root / "config.json").write_text(f'{{"seed": {seed}}}')
    (root / "tokenizer" / "vocab.txt").write_text(f"vocab {seed}\n")
    for rel, text in (extra or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def state(root: Path) -> tuple[dict, list[str]]:
    """Files and links with their content, and every directory, under ``root``."""
    dirs = sorted(str(Path(d).relative_to(root)) for d, _, _ in os.walk(root))
    return snapshot(root), dirs


@pytest.fixture
def two(tmp_path: Path) -> Path:
    """A repository with v001 (which has an adapter folder) and v002 (which does not)."""
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    v1 = model(tmp_path / "v1", 1, extra={"adapter/adapter.txt": "lora\n"})
    ok(run_vault(repo, "commit", str(v1), "-m", "one"))
    ok(run_vault(repo, "commit", str(model(tmp_path / "v2", 2)), "-m", "two"))
    return repo


def test_force_into_a_folder_with_files_the_version_lacks_writes_nothing(
    two: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    ok(run_vault(two, "checkout", "v001", str(dest)))
    (dest / "notes.txt").write_text("mine\n")
    before, repo_before = state(dest), state(two)

    proc = run_vault(two, "checkout", "v002", str(dest), "--force")

    assert proc.returncode == REFUSED
    line = assert_clean_error(proc, "2 files", "adapter/adapter.txt", "notes.txt", "--clean")
    assert "nothing was written" in line
    assert state(dest) == before
    assert state(two) == repo_before


def test_the_refusal_names_three_files_and_counts_the_rest(two: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    ok(run_vault(two, "checkout", "v002", str(dest)))
    for i in range(7):
        (dest / "runs" / f"r{i}").mkdir(parents=True)
        (dest / "runs" / f"r{i}" / "log.txt").write_text(str(i))
    before = state(dest)
    proc = run_vault(two, "checkout", "v002", str(dest), "--force")
    assert proc.returncode == REFUSED
    line = assert_clean_error(proc, "7 files", "runs/r0/log.txt", "runs/r2/log.txt", "4 more")
    assert "runs/r3/log.txt" not in line
    assert state(dest) == before


def test_force_replaces_the_version_s_files_when_nothing_else_is_there(
    two: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    ok(run_vault(two, "checkout", "v002", str(dest)))
    (dest / "config.json").write_text("edited")
    (dest / "empty-dir").mkdir()  # holds no file: not a stray, left alone by --force
    ok(run_vault(two, "checkout", "v002", str(dest), "--force"))
    assert snapshot(dest) == snapshot(tmp_path / "v2")
    assert (dest / "empty-dir").is_dir()


def test_clean_makes_dest_exactly_the_version_and_keeps_the_repository(
    two: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    ok(run_vault(two, "checkout", "v001", str(dest)))
    (dest / "notes.txt").write_text("mine\n")
    (dest / "runs" / "empty").mkdir(parents=True)
    (dest / "tokenizer" / "merges.txt").write_text("mine too\n")
    nested = dest / "project" / ".vault"  # another repository lying in DEST: never touched
    nested.mkdir(parents=True)
    (nested / "config.json").write_text("{}")

    proc = ok(run_vault(two, "checkout", "v002", str(dest), "--clean"))

    assert "checked out" in proc.stdout
    got = snapshot(dest)
    assert got.pop("project/.vault/config.json")[0] == "file"
    assert got == snapshot(tmp_path / "v2")
    assert not (dest / "runs").exists()
    assert not (dest / "adapter").exists()
    assert not [p for p in os.listdir(dest) if p.startswith(".vault-tmp-")]


def test_clean_never_touches_the_repository_inside_dest(tmp_path: Path) -> None:
    project = tmp_path / "project"
    repo = project / ".vault"
    ok(run_vault(repo, "init"))
    src = model(tmp_path / "src", 3)
    ok(run_vault(repo, "commit", str(src), "-m", "one"))
    (project / "scratch.txt").write_text("x")
    repo_before = state(repo)
    ok(run_vault(repo, "checkout", "v001", str(project), "--clean"))
    assert state(repo) == repo_before
    assert not (project / "scratch.txt").exists()
    assert (project / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()


def test_a_killed_clean_checkout_puts_the_stray_files_back(two: Path, tmp_path: Path) -> None:
    """SIGKILL once the strays are set aside (after each of the swap's renames): the next
    checkout into DEST puts them back first, so --force is refused again and --clean goes
    through."""
    dest = tmp_path / "dest"
    ok(run_vault(two, "checkout", "v001", str(dest)))
    (dest / "notes.txt").write_text("mine\n")
    before = state(dest)
    for n in (1, 2, 3):
        env = vault_env(VAULT_CRASHPOINT=f"checkout-swap:{n}")
        proc = run_vault(two, "checkout", "v002", str(dest), "--clean", env=env)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        refused = run_vault(two, "checkout", "v002", str(dest), "--force")
        assert refused.returncode == REFUSED, refused.stderr
        assert state(dest) == before
    ok(run_vault(two, "checkout", "v002", str(dest), "--clean"))
    assert snapshot(dest) == snapshot(tmp_path / "v2")


def test_a_killed_forced_checkout_is_put_back(two: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    ok(run_vault(two, "checkout", "v002", str(dest)))
    (dest / "config.json").write_text("edited")
    before = state(dest)
    env = vault_env(VAULT_CRASHPOINT="checkout-swapped")
    proc = run_vault(two, "checkout", "v002", str(dest), "--force", env=env)
    assert proc.returncode == -signal.SIGKILL
    from vault.ops.swap import recover

    assert recover(dest) == 1
    assert state(dest) == before


def test_the_library_raises_stray_files_with_every_path(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "repo")
    repo.commit(model(tmp_path / "src", 4), "one")
    dest = model(tmp_path / "dest", 5, extra={"a.txt": "a", "b/c.txt": "c"})
    with pytest.raises(StrayFiles) as caught:
        repo.checkout("v001", dest, force=True)
    assert caught.value.paths == ["a.txt", "b/c.txt"]
    assert caught.value.exit_code == REFUSED
    repo.checkout("v001", dest, clean=True)
    assert sorted(snapshot(dest)) == ["config.json", "model.safetensors", "tokenizer/vocab.txt"]


def test_checkout_data_refuses_strays_and_cleans_them(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    data = tmp_path / "data" / "train.jsonl"
    data.parent.mkdir()
    data.write_text('{"text": "hello"}\n')
    src = model(tmp_path / "src", 6)
    ok(run_vault(repo, "commit", str(src), "-m", "one", "--data", str(data), "--store-data"))
    dest = tmp_path / "dest"
    ok(run_vault(repo, "checkout", "v001", str(dest), "--data"))
    written = snapshot(dest)
    (dest / "stray.jsonl").write_text("{}\n")
    before = state(dest)
    proc = run_vault(repo, "checkout", "v001", str(dest), "--data", "--force")
    assert proc.returncode == REFUSED
    assert_clean_error(proc, "stray.jsonl", "--clean")
    assert state(dest) == before
    ok(run_vault(repo, "checkout", "v001", str(dest), "--data", "--clean"))
    assert snapshot(dest) == written


def test_help_documents_clean(tmp_path: Path) -> None:
    proc = ok(run_vault(tmp_path, "checkout", "--help"))
    assert "--clean" in proc.stdout
    assert "exit 4" in " ".join(proc.stdout.split())
