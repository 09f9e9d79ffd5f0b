"""A commit's parent is its run's previous version; finding it never steps past damage."""

from __future__ import annotations

import json
from pathlib import Path

from faultkit import assert_clean_error, ok, run_vault, snapshot

from vault.store import object_key


def _commit(repo: Path, folder: Path, text: str, *extra: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "w.bin").write_text(text)
    return json.loads(
        ok(run_vault(repo, "commit", str(folder), "-m", text, "--json", *extra)).stdout
    )


def test_each_run_chains_onto_its_own_previous_version(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    a1 = _commit(repo, tmp_path / "exp1" / "checkpoint-2", "a1")
    b1 = _commit(repo, tmp_path / "exp2" / "checkpoint-2", "b1")
    a2 = _commit(repo, tmp_path / "exp1" / "checkpoint-4", "a2")
    named = _commit(repo, tmp_path / "elsewhere", "c1", "--run", "exp2")
    assert a1["parents"] == [] and b1["parents"] == []  # a new run's first version
    assert a2["parents"] == [a1["id"]]
    assert named["parents"] == [b1["id"]]  # --run names the run whatever the folder
    shown = json.loads(ok(run_vault(repo, "show", "latest~1", "--json")).stdout)
    assert shown["version"] == b1["version"]  # REV~N walks within the run
    assert_clean_error(run_vault(repo, "commit", str(tmp_path / "exp1"), "-m", "x", "--run", ""))


def test_a_damaged_version_on_the_way_to_the_run_head_refuses_the_commit(tmp_path: Path) -> None:
    """Finding a run's previous version reads versions newest first; a damaged one may be that
    version, so the commit is refused (the repository is damaged: exit 5) rather than chained
    past it."""
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    _commit(repo, tmp_path / "exp1" / "checkpoint-2", "a1")
    b1 = _commit(repo, tmp_path / "exp2" / "checkpoint-2", "b1")
    _commit(repo, tmp_path / "exp3" / "checkpoint-2", "c1")
    path = repo / object_key(b1["id"])
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-2] + b"!!")
    before = snapshot(repo)
    folder = tmp_path / "exp1" / "checkpoint-4"
    folder.mkdir()
    (folder / "w.bin").write_text("a2")
    proc = run_vault(repo, "commit", str(folder), "-m", "a2")
    assert_clean_error(proc, b1["version"], "verify")
    assert proc.returncode == 5
    after = snapshot(repo)
    assert {k: v for k, v in after.items() if k.startswith("refs")} == {
        k: v for k, v in before.items() if k.startswith("refs")
    }
