"""The README's exit-code table, JSON errors, and ``--repo`` the way people type it: each case
runs the real ``vault`` command line and checks the status, the one line (or one JSON object) on
stderr, and that a refusal changed nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from faultkit import VAULT, assert_clean_error, ok, run_vault, snapshot, vault_env
from safetensors.numpy import save_file

from vault.store import object_key


def _model(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file({"w": rng.standard_normal((64, 32)).astype(np.float32)}, folder / "model.safetensors")
    (folder / "config.json").write_text('{"model_type": "tiny"}')
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with ``.vault/`` holding one version, v001, tagged ``good``."""
    root = tmp_path / "project"
    root.mkdir()
    repo = root / ".vault"
    ok(run_vault(repo, "init"))
    ok(run_vault(repo, "commit", str(_model(root / "model")), "-m", "first"))
    ok(run_vault(repo, "tag", "good", "v001"))
    return root


def _vault(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VAULT, *args], cwd=cwd, env=vault_env(), capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("show", "v999"), 3, "unknown revision"),
        (("tag", "-d", "nosuch"), 3, "no such tag"),
        (("unpin", "nosuch"), 3, "no such pin"),
        (("push", "nowhere"), 3, "no remote"),
        (("tag", "good", "v001"), 4, "already exists"),
        (("delete", "v001"), 4, "--confirm"),
        (("log", "--no-such-flag"), 2, "no such option"),
        (("log", "-n", "many"), 2, "many"),
    ],
)
def test_each_kind_of_error_has_its_exit_code(
    project: Path, args: tuple[str, ...], code: int, needle: str
) -> None:
    before = snapshot(project)
    proc = run_vault(project / ".vault", *args)
    assert_clean_error(proc, needle)
    assert proc.returncode == code, proc.stderr
    assert snapshot(project) == before


def test_a_missing_repository_is_not_found(tmp_path: Path) -> None:
    proc = _vault(tmp_path, "log")
    assert_clean_error(proc, "not a vault repository")
    assert proc.returncode == 3


def test_an_existing_repository_refuses_init(project: Path) -> None:
    proc = run_vault(project / ".vault", "init")
    assert_clean_error(proc, "already exists")
    assert proc.returncode == 4


def test_damage_found_by_verify_is_1_and_an_unreadable_version_is_5(project: Path) -> None:
    repo = project / ".vault"
    manifest = json.loads(ok(run_vault(repo, "show", "v001", "--json")).stdout)["id"]
    path = repo / object_key(manifest)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    assert run_vault(repo, "verify").returncode == 1
    proc = run_vault(repo, "checkout", "v001", str(project / "out"))
    assert_clean_error(proc, manifest[:12])
    assert proc.returncode == 5
    assert not (project / "out").exists()


def test_an_io_failure_is_6(project: Path) -> None:
    """A destination under a regular file: the file system refuses (ENOTDIR)."""
    (project / "afile").write_text("x")
    proc = run_vault(project / ".vault", "checkout", "v001", str(project / "afile" / "out"))
    assert_clean_error(proc, "not a directory")
    assert proc.returncode == 6
    assert (project / "afile").read_text() == "x"


@pytest.mark.parametrize(
    ("args", "code", "kind"),
    [
        (("show", "v999", "--json"), 3, "not_found"),
        (("tag", "good", "v001", "--json"), 4, "refused"),
        (("log", "--json", "--no-such-flag"), 2, "usage"),
    ],
)
def test_with_json_an_error_is_one_json_object_on_stderr(
    project: Path, args: tuple[str, ...], code: int, kind: str
) -> None:
    proc = run_vault(project / ".vault", *args)
    assert proc.returncode == code
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    error = json.loads(lines[0])["error"]
    assert error["code"] == code
    assert error["kind"] == kind
    assert error["message"] and "vault: error" not in error["message"]


def test_repo_accepts_the_project_folder(project: Path, tmp_path: Path) -> None:
    entries = json.loads(ok(_vault(tmp_path, "--repo", str(project), "log", "--json")).stdout)
    assert [e["version"] for e in entries] == ["v001"]
    proc = subprocess.run(
        [*VAULT, "log", "--json"],
        cwd=tmp_path,
        env=vault_env(VAULT_DIR=str(project)),
        capture_output=True,
        text=True,
    )
    assert [e["version"] for e in json.loads(ok(proc).stdout)] == ["v001"]


def test_global_options_work_after_the_subcommand(project: Path, tmp_path: Path) -> None:
    proc = ok(_vault(tmp_path, "log", "--json", "--repo", str(project)))
    assert [e["version"] for e in json.loads(proc.stdout)] == ["v001"]
    proc = ok(_vault(tmp_path, "show", "v001", f"--repo={project / '.vault'}", "--json"))
    assert json.loads(proc.stdout)["version"] == "v001"
    ok(_vault(tmp_path, "tag", "best", "v001", "--repo", str(project)))
    proc = ok(_vault(tmp_path, "backup", "list", "--repo", str(project), "--json"))
    json.loads(proc.stdout)
    assert "best" in ok(_vault(tmp_path, "tag", "--repo", str(project))).stdout


def test_debug_after_the_subcommand_shows_the_traceback(project: Path, tmp_path: Path) -> None:
    proc = _vault(tmp_path, "show", "v999", "--repo", str(project), "--debug")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "UnknownRevision" in proc.stderr


def test_after_a_double_dash_nothing_is_moved(project: Path, tmp_path: Path) -> None:
    """``--repo`` after ``--`` is a file name for the subcommand, not the global option."""
    proc = _vault(tmp_path, "--repo", str(project), "log", "--", "--repo")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
