"""Nothing to commit: files equal to latest's make no version, an empty directory is refused,
``--allow-empty`` forces both, ``backup`` always pins; and ``--base-model`` typos warn."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from faultkit import assert_clean_error, flip_byte, ok, run_vault, snapshot
from test_commit_selection import trainer_checkpoint

from vault import Repository
from vault.store import object_key


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    """A repository with v001 = a Trainer checkpoint; the repository and the checkpoint."""
    repo = tmp_path / ".vault"
    ok(run_vault(repo, "init"))
    ckpt = trainer_checkpoint(tmp_path / "checkpoint-100", 100)
    ok(run_vault(repo, "commit", str(ckpt), "-m", "first"))
    return repo, ckpt


def refs_state(repo: Path) -> dict:
    """What a commit that makes no version must leave as it was: refs, reflog, config."""
    return {
        k: v
        for k, v in snapshot(repo).items()
        if k == "refs.json" or k.startswith("logs/") or k == "config.json"
    }


def test_an_unchanged_commit_makes_no_version(setup: tuple[Path, Path]) -> None:
    repo, ckpt = setup
    before = refs_state(repo)
    objects = {k for k in snapshot(repo) if k.startswith("objects/")}
    proc = ok(run_vault(repo, "commit", str(ckpt), "-m", "again"))
    assert proc.stdout == "nothing changed since v001\n"
    assert proc.stderr == ""
    assert refs_state(repo) == before
    assert {k for k in snapshot(repo) if k.startswith("objects/")} == objects
    log = json.loads(ok(run_vault(repo, "log", "--json")).stdout)
    assert [e["version"] for e in log] == ["v001"]


def test_unchanged_json_has_the_usual_keys(setup: tuple[Path, Path], tmp_path: Path) -> None:
    repo, ckpt = setup
    same = json.loads(ok(run_vault(repo, "commit", str(ckpt), "-m", "again", "--json")).stdout)
    (ckpt / "optimizer.pt").write_bytes(b"changed")
    new = json.loads(ok(run_vault(repo, "commit", str(ckpt), "-m", "new", "--json")).stdout)
    assert set(same) == set(new)
    assert same["unchanged"] is True and new["unchanged"] is False
    v001 = json.loads(ok(run_vault(repo, "show", "v001", "--json")).stdout)
    assert same["version"] == "v001" and same["id"] == v001["id"]
    assert same["tree"] == v001["tree"] and same["parents"] == v001["parents"] == []
    assert (same["files"], same["bytes"]) == (v001["file_count"], v001["bytes"])
    assert same["new_bytes"] == 0
    assert new["version"] == "v002" and new["parents"] == [v001["id"]]


def test_an_unchanged_commit_still_heals_a_damaged_chunk(setup: tuple[Path, Path]) -> None:
    """The files are read and stored before they are compared: damage that a re-read finds is
    repaired even when no version is made."""
    repo, ckpt = setup
    api = Repository.open(repo)
    (model,) = [f for f in api.show("v001").files or [] if f.path == "model.safetensors"]
    assert model.id is not None
    chunk = api.store.get_file(model.id).chunks[-1].oid
    flip_byte(repo / object_key(chunk), -3)
    assert run_vault(repo, "verify").returncode != 0
    proc = ok(run_vault(repo, "commit", str(ckpt), "-m", "heal", "--rehash"))
    assert proc.stdout == "nothing changed since v001\n"
    assert ok(run_vault(repo, "verify")).stdout.startswith("ok:")


def test_allow_empty_forces_a_version(setup: tuple[Path, Path]) -> None:
    repo, ckpt = setup
    out = json.loads(
        ok(run_vault(repo, "commit", str(ckpt), "-m", "again", "--allow-empty", "--json")).stdout
    )
    assert out["version"] == "v002" and out["unchanged"] is False
    log = json.loads(ok(run_vault(repo, "log", "--json")).stdout)
    assert log[0]["tree"] == log[1]["tree"]


def test_a_tag_given_to_an_unchanged_commit_names_latest(setup: tuple[Path, Path]) -> None:
    repo, ckpt = setup
    proc = ok(run_vault(repo, "commit", str(ckpt), "-m", "again", "--tag", "release"))
    assert proc.stdout == "nothing changed since v001\n"
    shown = json.loads(ok(run_vault(repo, "show", "release", "--json")).stdout)
    assert shown["version"] == "v001" and shown["tags"] == ["release"]


def test_changes_are_compared_with_latest_not_any_version(setup: tuple[Path, Path]) -> None:
    """Going back to v001's files after v002 is a change: latest holds v002's."""
    repo, ckpt = setup
    keep = ckpt.parent / "keep.pt"
    shutil.copy2(ckpt / "optimizer.pt", keep)
    (ckpt / "optimizer.pt").write_bytes(b"other")
    assert ok(run_vault(repo, "commit", str(ckpt), "-m", "v2")).stdout.startswith("v002 ")
    shutil.copy2(keep, ckpt / "optimizer.pt")
    assert ok(run_vault(repo, "commit", str(ckpt), "-m", "back")).stdout.startswith("v003 ")


def test_an_empty_directory_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / ".vault"
    ok(run_vault(repo, "init"))
    empty = tmp_path / "empty"
    empty.mkdir()
    before = snapshot(repo)
    proc = run_vault(repo, "commit", str(empty), "-m", "nothing")
    assert proc.returncode == 4
    assert_clean_error(proc, "nothing to commit", "--allow-empty")
    assert snapshot(repo) == before
    out = json.loads(
        ok(run_vault(repo, "commit", str(empty), "-m", "empty", "--allow-empty", "--json")).stdout
    )
    assert (out["version"], out["files"]) == ("v001", 0)


def test_a_directory_whose_files_are_all_excluded_is_refused(setup: tuple[Path, Path]) -> None:
    repo, ckpt = setup
    before = snapshot(repo)
    proc = run_vault(repo, "commit", str(ckpt), "-m", "none", "--exclude", "*")
    assert proc.returncode == 4
    line = assert_clean_error(proc, "nothing to commit", "7 left out by rule", "--allow-empty")
    assert str(ckpt) in line
    assert snapshot(repo) == before


def test_backup_always_pins(setup: tuple[Path, Path], tmp_path: Path) -> None:
    repo, ckpt = setup
    out = json.loads(
        ok(run_vault(repo, "backup", str(ckpt), "--reason", "same as v001", "--json")).stdout
    )
    pins = json.loads(ok(run_vault(repo, "backup", "list", "--json")).stdout)
    assert out["name"] in {p["name"] for p in pins}
    empty = tmp_path / "empty"
    empty.mkdir()
    ok(run_vault(repo, "backup", str(empty), "--reason", "empty folder"))


def test_api_reports_unchanged(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / ".vault")
    ckpt = trainer_checkpoint(tmp_path / "ck", 10)
    first = repo.commit(ckpt, "one")
    again = repo.commit(ckpt, "two")
    assert (again.unchanged, again.version, again.id) == (True, "v001", first.id)
    assert repo.commit(ckpt, "three", allow_empty=True).version == "v002"


@pytest.mark.parametrize("name", ["v999", "v5", "latest~3", "0123abcd"])
def test_a_base_model_that_looks_like_a_revision_warns(setup: tuple[Path, Path], name: str) -> None:
    repo, ckpt = setup
    (ckpt / "optimizer.pt").write_bytes(b"changed")
    proc = ok(run_vault(repo, "commit", str(ckpt), "-m", "typo", "--base-model", name))
    assert proc.stdout.startswith("v002 ")
    (warning,) = proc.stderr.splitlines()
    assert warning.startswith(f"vault: warning: --base-model {name} looks like a revision")
    shown = json.loads(ok(run_vault(repo, "show", "v002", "--json")).stdout)
    assert shown["base_model"] == name and shown["base_model_id"] is None


@pytest.mark.parametrize("name", ["gpt2", "meta-llama/Llama-3.2-1B", "v001", "latest"])
def test_a_base_model_name_or_a_resolving_revision_does_not_warn(
    setup: tuple[Path, Path], name: str
) -> None:
    repo, ckpt = setup
    (ckpt / "optimizer.pt").write_bytes(b"changed")
    proc = ok(run_vault(repo, "commit", str(ckpt), "-m", "fine", "--base-model", name))
    assert proc.stderr == ""
