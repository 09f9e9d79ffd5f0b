"""Small things from the trial: ``vault diff REV DIR`` (a version against a folder, in the shape
of a diff of two versions, tensors included), ``diff --exit-code``, ``log`` fitting the
terminal's width, and ``show --plot`` saying where it wrote the image.

Every run is a real ``vault`` process on real safetensors files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from faultkit import VAULT, assert_clean_error, ok, run_vault, vault_env
from safetensors.numpy import save_file

DIFFER = 1


def model(root: Path, scale: float, *, extra: bool = False) -> Path:
    """A model folder whose ``b`` tensor is scaled by ``scale`` (``a`` never changes)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 64)).astype(np.float32)
    b = rng.standard_normal((32, 64)).astype(np.float32) * scale
    tensors = {"a": a, "b": b}
    if extra:
        tensors["c"] = np.ones(16, dtype=np.float16)
    save_file(tensors, str(root / "model.safetensors"))
    (root / "config.json").write_text(json.dumps({"scale": scale}))
    return root


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A repository with v001 and v002 (``b`` scaled, ``c`` added, a notes file); and the two
    folders they were committed from."""
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    one = model(tmp_path / "one", 1.0)
    two = model(tmp_path / "two", 1.5, extra=True)
    (two / "notes.txt").write_text("n")
    ok(run_vault(repo, "commit", str(one), "-m", "one"))
    ok(run_vault(repo, "commit", str(two), "-m", "two"))
    return repo, one, two


def diff_json(repo: Path, *args: str) -> dict:
    return json.loads(ok(run_vault(repo, "diff", *args, "--json")).stdout)


def test_diff_of_a_version_and_a_folder_is_the_diff_of_two_versions(
    two: tuple[Path, Path, Path],
) -> None:
    repo, _, folder = two
    versions = diff_json(repo, "v001", "v002")
    assert versions["files"] == {
        "added": ["notes.txt"],
        "removed": [],
        "changed": ["config.json", "model.safetensors"],
    }
    assert {(t["name"], t["status"]) for t in versions["tensors"]} == {
        ("b", "changed"),
        ("c", "added"),
    }
    assert diff_json(repo, "v001", str(folder)) == versions
    b = next(t for t in versions["tensors"] if t["name"] == "b")
    assert b["rel_l2"] == pytest.approx(0.5, rel=1e-6)

    backwards = diff_json(repo, str(folder), "v001")
    assert backwards["files"] == {**versions["files"], "added": [], "removed": ["notes.txt"]}
    assert backwards == diff_json(repo, "v002", "v001")
    human = ok(run_vault(repo, "diff", "v001", str(folder))).stdout
    assert human == ok(run_vault(repo, "diff", "v001", "v002")).stdout


def test_diff_exit_code(two: tuple[Path, Path, Path]) -> None:
    repo, one, folder = two
    for args in (("v001", "v002"), ("v001", str(folder)), (str(one), "v002")):
        proc = run_vault(repo, "diff", *args, "--exit-code")
        assert proc.returncode == DIFFER, proc.stderr
        assert proc.stderr == "" and proc.stdout
        assert run_vault(repo, "diff", *args).returncode == 0
        assert run_vault(repo, "diff", *args, "--exit-code", "--json").returncode == DIFFER
    for args in (("v002", "v002"), ("v001", str(one)), (str(folder), "v002")):
        proc = ok(run_vault(repo, "diff", *args, "--exit-code"))
        assert proc.stdout == "no differences\n"


def test_an_argument_both_a_revision_and_a_folder_must_be_written_as_a_path(
    two: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    repo, _, folder = two
    shutil.copytree(folder, tmp_path / "v002")

    def diff_in(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*VAULT, "--repo", str(repo), "diff", *args],
            cwd=tmp_path,
            env=vault_env(),
            capture_output=True,
            text=True,
        )

    assert_clean_error(diff_in("v001", "v002", "--exit-code"), "./v002")
    assert diff_in("latest", "./v002", "--exit-code").returncode == 0
    assert_clean_error(diff_in(str(folder), str(folder)), "two folders")


def test_log_fits_columns_and_keeps_the_description_whole_elsewhere(
    two: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    repo, _, folder = two
    long = "retrain with a much longer warmup, cosine decay and label smoothing " * 3
    (folder / "notes.txt").write_text("again")
    ok(run_vault(repo, "commit", str(folder), "-m", long.strip()))

    narrow = run_vault(repo, "log", env=vault_env(COLUMNS="110")).stdout.splitlines()
    assert narrow and all(len(line) <= 110 for line in narrow), narrow
    assert narrow[1].endswith("\u2026") and narrow[1].split("  ")[-1].strip("\u2026") in long
    assert narrow[-1].endswith("one")  # short descriptions stay whole

    piped = run_vault(repo, "log", env={k: v for k, v in vault_env().items() if k != "COLUMNS"})
    assert long.strip() in piped.stdout  # not a terminal, no $COLUMNS: lines are whole
    logged = json.loads(ok(run_vault(repo, "log", "--json", env=vault_env(COLUMNS="60"))).stdout)
    assert logged[0]["description"] == long.strip()
    assert long.strip() in run_vault(repo, "show", "v003", env=vault_env(COLUMNS="60")).stdout


def test_show_plot_says_where_it_wrote_the_image(tmp_path: Path) -> None:
    from test_meta import make_checkpoint

    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    ok(run_vault(repo, "commit", str(make_checkpoint(tmp_path / "checkpoint-100")), "-m", "run"))
    proc = subprocess.run(
        [*VAULT, "--repo", str(repo), "show", "v001", "--plot", "curve.png"],
        cwd=tmp_path,
        env=vault_env(),
        capture_output=True,
        text=True,
    )
    ok(proc)
    written = tmp_path / "curve.png"
    assert written.read_bytes().startswith(b"\x89PNG")
    assert proc.stderr == f"wrote the learning curve to {written}\n"
    as_json = run_vault(repo, "show", "v001", "--json", "--plot", str(written))
    assert json.loads(as_json.stdout)["version"] == "v001"  # stdout stays JSON
    assert str(written) in as_json.stderr


def test_help_documents_the_flags(tmp_path: Path) -> None:
    out = " ".join(ok(run_vault(tmp_path, "diff", "--help")).stdout.split())
    assert "--exit-code" in out and "folder" in out
    assert "COLUMNS" in ok(run_vault(tmp_path, "log", "--help")).stdout


def test_log_shows_a_run_column_when_versions_of_several_runs_are_listed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    for run in ("exp1", "exp2"):
        folder = tmp_path / run / "checkpoint-2"
        folder.mkdir(parents=True)
        (folder / "w.bin").write_text(run)
        ok(run_vault(repo, "commit", str(folder), "-m", run))
    lines = ok(run_vault(repo, "log")).stdout.splitlines()
    assert lines[0].split()[3] == "RUN"
    assert [line.split()[4] for line in lines[1:]] == ["exp2", "exp1"]
    one = ok(run_vault(repo, "log", "--run", "exp1")).stdout.splitlines()
    assert "RUN" not in one[0].split() and len(one) == 2
