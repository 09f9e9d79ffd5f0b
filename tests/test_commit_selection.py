"""Choosing what a commit takes: ``.vaultignore`` (project folder and committed directory),
``--exclude`` and ``--include`` (gitignore syntax), what the version records and ``show`` lists.

Every command runs as a real ``vault`` process on Trainer-like checkpoint folders (safetensors
weights, ``trainer_state.json``, optimizer and scheduler bytes).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from faultkit import assert_clean_error, ok, run_vault, snapshot
from safetensors.numpy import save_file

from vault import Repository

HEAVY = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "rng_state_1.pth")


def trainer_checkpoint(path: Path, step: int) -> Path:
    """A checkpoint folder as the Hugging Face Trainer writes it."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(step)
    save_file(
        {"layer.weight": rng.standard_normal((64, 32)).astype(np.float32)},
        str(path / "model.safetensors"),
    )
    (path / "config.json").write_text(json.dumps({"hidden_size": 32}))
    state = {"global_step": step, "log_history": [{"step": step, "loss": 1.0 / step}]}
    (path / "trainer_state.json").write_text(json.dumps(state))
    (path / "optimizer.pt").write_bytes(rng.bytes(50_000))
    (path / "scheduler.pt").write_bytes(rng.bytes(1_000))
    (path / "rng_state.pth").write_bytes(rng.bytes(500))
    (path / "rng_state_1.pth").write_bytes(rng.bytes(500))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder holding ``.vault/``, a run with two checkpoints and scratch checkouts."""
    root = tmp_path / "proj"
    root.mkdir()
    ok(run_vault(root / ".vault", "init"))
    trainer_checkpoint(root / "runs" / "checkpoint-100", 100)
    trainer_checkpoint(root / "runs" / "checkpoint-200", 200)
    scratch = root / "scratch" / "restored"
    scratch.mkdir(parents=True)
    (scratch / "model.safetensors").write_bytes(b"x" * 4096)
    (root / "notes.tmp").write_text("scratch notes")
    return root


def commit(project: Path, *args: str) -> dict:
    """``vault commit ... --json`` run from the project folder; the parsed result."""
    return json.loads(ok(run_vault(project / ".vault", "commit", *args, "--json")).stdout)


def files_of(project: Path, rev: str) -> set[str]:
    shown = json.loads(ok(run_vault(project / ".vault", "show", rev, "--json")).stdout)
    return {f["path"] for f in shown["files"]}


def excluded_of(project: Path, rev: str) -> dict[str, dict]:
    shown = json.loads(ok(run_vault(project / ".vault", "show", rev, "--json")).stdout)
    return {e["path"]: e for e in shown["excluded"]}


def test_project_vaultignore_leaves_out_scratch_and_show_lists_it(project: Path) -> None:
    (project / ".vaultignore").write_text("# scratch checkouts\nscratch/\n*.tmp\n")
    out = commit(project, str(project), "-m", "the whole project")
    paths = files_of(project, "v001")
    assert not any(p.startswith(("scratch/", ".vault/")) for p in paths), paths
    assert "notes.tmp" not in paths
    assert "runs/checkpoint-100/optimizer.pt" in paths  # nothing else is left out
    assert ".vaultignore" in paths  # kept, as git keeps a .gitignore
    assert {e["path"] for e in out["excluded"]} == {"scratch/", "notes.tmp"}
    listed = excluded_of(project, "v001")
    assert listed["scratch/"] == {
        "path": "scratch/",
        "rule": "scratch/",
        "source": ".vaultignore",
        "files": 1,
        "bytes": 4096,
    }
    assert listed["notes.tmp"]["rule"] == "*.tmp"
    text = ok(run_vault(project / ".vault", "show", "v001")).stdout
    assert "excluded scratch/  1 file, 4.0 KiB  (rule scratch/ from .vaultignore)" in text

    dest = project.parent / "out"
    ok(run_vault(project / ".vault", "checkout", "v001", str(dest)))
    assert set(snapshot(dest)) >= {"runs/checkpoint-200/model.safetensors"}
    assert not (dest / "scratch").exists() and not (dest / "notes.tmp").exists()


def test_project_patterns_match_from_the_project_folder(project: Path) -> None:
    """An anchored pattern of the project's .vaultignore matches as seen from the project
    folder, as in a .gitignore at the top of a work tree, even when a subfolder is committed."""
    (project / ".vaultignore").write_text("/runs/checkpoint-100/\n")
    commit(project, str(project / "runs"), "-m", "runs")
    paths = files_of(project, "v001")
    assert not any(p.startswith("checkpoint-100/") for p in paths)
    assert "checkpoint-200/model.safetensors" in paths
    assert set(excluded_of(project, "v001")) == {"checkpoint-100/"}


def test_project_patterns_apply_to_a_directory_outside_the_project(
    project: Path, tmp_path: Path
) -> None:
    """A checkpoint outside the project folder: the project's patterns match within it."""
    (project / ".vaultignore").write_text("optimizer.pt\n/config.json\n")
    ckpt = trainer_checkpoint(tmp_path / "elsewhere" / "checkpoint-7", 7)
    commit(project, str(ckpt), "-m", "outside")
    assert "optimizer.pt" not in files_of(project, "v001")
    assert "config.json" not in files_of(project, "v001")
    assert excluded_of(project, "v001")["optimizer.pt"]["source"] == ".vaultignore"


def test_vaultignore_in_the_committed_directory(project: Path) -> None:
    ckpt = project / "runs" / "checkpoint-200"
    (ckpt / ".vaultignore").write_text("optimizer.pt\nrng_state*.pth\n")
    commit(project, str(ckpt), "-m", "weights and state")
    assert files_of(project, "v001") == {
        ".vaultignore",
        "config.json",
        "model.safetensors",
        "scheduler.pt",
        "trainer_state.json",
    }
    listed = excluded_of(project, "v001")
    assert set(listed) == {"optimizer.pt", "rng_state.pth", "rng_state_1.pth"}
    assert listed["optimizer.pt"]["source"] == "runs/checkpoint-200/.vaultignore"
    assert listed["optimizer.pt"]["bytes"] == 50_000


def test_exclude_is_repeatable_and_recorded(project: Path) -> None:
    ckpt = project / "runs" / "checkpoint-100"
    out = commit(
        project,
        str(ckpt),
        "-m",
        "weights only",
        "--exclude",
        "optimizer.pt",
        "--exclude",
        "scheduler.pt",
        "--exclude",
        "rng_state*.pth",
    )
    assert files_of(project, "v001") == {"config.json", "model.safetensors", "trainer_state.json"}
    assert {e["source"] for e in out["excluded"]} == {"--exclude"}
    assert {e["path"]: e["rule"] for e in out["excluded"]} == {
        "optimizer.pt": "optimizer.pt",
        "scheduler.pt": "scheduler.pt",
        "rng_state.pth": "rng_state*.pth",
        "rng_state_1.pth": "rng_state*.pth",
    }
    # The training metadata still comes from the checkpoint.
    shown = json.loads(ok(run_vault(project / ".vault", "show", "v001", "--json")).stdout)
    assert shown["steps"] == 100
    text = ok(run_vault(project / ".vault", "commit", str(ckpt), "-m", "all")).stdout
    assert text.startswith("v002 ")  # without the rules the other files come back


def test_include_re_adds_what_ignore_files_and_exclude_leave_out(project: Path) -> None:
    (project / ".vaultignore").write_text("scratch/\n*.pt\n")
    commit(
        project,
        str(project),
        "-m",
        "keep the scheduler",
        "--exclude",
        "rng_state*",
        "--include",
        "scheduler.pt",
        "--include",
        "scratch/restored/model.safetensors",
    )
    paths = files_of(project, "v001")
    ckpt = "runs/checkpoint-100/"
    assert ckpt + "scheduler.pt" in paths
    assert ckpt + "optimizer.pt" not in paths and ckpt + "rng_state.pth" not in paths
    # Unlike git, an --include reaches into a directory a rule leaves out.
    assert "scratch/restored/model.safetensors" in paths


def test_exclude_everything_include_some_restricts(project: Path) -> None:
    commit(
        project,
        str(project / "runs"),
        "-m",
        "safetensors only",
        "--exclude",
        "*",
        "--include",
        "*.safetensors",
    )
    assert files_of(project, "v001") == {
        "checkpoint-100/model.safetensors",
        "checkpoint-200/model.safetensors",
    }
    listed = excluded_of(project, "v001")
    assert listed["checkpoint-100/optimizer.pt"]["rule"] == "*"


def test_a_directory_left_out_is_not_walked(project: Path) -> None:
    """A fifo in a directory that a rule leaves out refuses nothing: it is never looked at."""
    os.mkfifo(project / "scratch" / "restored" / "pipe")
    (project / ".vaultignore").write_text("scratch/\n")
    commit(project, str(project), "-m", "fifo left out")
    assert excluded_of(project, "v001")["scratch/"]["files"] == 2
    (project / ".vaultignore").write_text("")
    proc = run_vault(project / ".vault", "commit", str(project), "-m", "fifo in")
    assert_clean_error(proc, "fifo")


def test_a_file_named_as_path_is_committed_whatever_the_rules(project: Path) -> None:
    (project / ".vaultignore").write_text("*.pt\n")
    ckpt = project / "runs" / "checkpoint-100"
    commit(project, str(ckpt / "optimizer.pt"), "-m", "explicit", "--exclude", "*")
    assert files_of(project, "v001") == {"optimizer.pt"}
    assert excluded_of(project, "v001") == {}


@pytest.mark.parametrize(
    "flag, pattern, needle",
    [
        ("--exclude", "!optimizer.pt", "use --include"),
        ("--include", "!optimizer.pt", "use --exclude"),
        ("--exclude", "", "expected a pattern"),
        ("--exclude", "#x", "comment"),
    ],
)
def test_bad_patterns_are_refused_before_anything_changes(
    project: Path, flag: str, pattern: str, needle: str
) -> None:
    before = snapshot(project)
    proc = run_vault(project / ".vault", "commit", str(project / "runs"), "-m", "x", flag, pattern)
    assert_clean_error(proc, flag, needle)
    assert snapshot(project) == before


def test_a_vaultignore_that_is_not_text_is_refused(project: Path) -> None:
    (project / ".vaultignore").write_bytes(b"\xff\xfe scratch/\n")
    before = snapshot(project)
    proc = run_vault(project / ".vault", "commit", str(project), "-m", "x")
    assert_clean_error(proc, ".vaultignore", "UTF-8")
    assert snapshot(project) == before


def test_backup_keeps_the_directory_whole(project: Path) -> None:
    """A backup is a safety copy: .vaultignore does not apply to it."""
    (project / ".vaultignore").write_text("*.pt\nscratch/\n")
    ckpt = project / "runs" / "checkpoint-100"
    out = json.loads(
        ok(
            run_vault(
                project / ".vault", "backup", str(ckpt), "--reason", "before cleanup", "--json"
            )
        ).stdout
    )
    shown = json.loads(ok(run_vault(project / ".vault", "show", out["id"], "--json")).stdout)
    assert "optimizer.pt" in {f["path"] for f in shown["files"]}
    assert shown["excluded"] == []


def test_api_takes_the_same_options(project: Path) -> None:
    repo = Repository.open(project / ".vault")
    (project / ".vaultignore").write_text("scratch/\n")
    result = repo.commit(
        project, "api", exclude=["*.pt", "*.pth", "*.tmp"], include=["scheduler.pt"]
    )
    paths = {f.path for f in repo.show(result.version or "").files or []}
    assert "runs/checkpoint-100/scheduler.pt" in paths
    assert "runs/checkpoint-100/optimizer.pt" not in paths
    assert {e["path"] for e in result.excluded} >= {"scratch/", "notes.tmp"}
    assert repo.show("v001").excluded == result.excluded


def test_a_version_without_exclusions_keeps_its_format(project: Path) -> None:
    """No rule, no ``excluded`` field: the version serialises as before (and keeps its id)."""
    repo = Repository.open(project / ".vault")
    result = repo.commit(project / "runs", "plain")
    doc = json.loads(repo.store.get(result.id))
    assert "excluded" not in doc


def test_a_reader_ignores_an_excluded_field_it_cannot_read(tmp_path: Path) -> None:
    """A version whose ``excluded`` is not a list of records (another writer's idea of it)
    still reads: show and log go on, listing nothing."""
    from vault.objects import Version, canonical_json
    from vault.refs import LATEST, VERSIONS, now_iso

    repo = Repository.init(tmp_path / ".vault")
    base = repo.commit(trainer_checkpoint(tmp_path / "ck", 5), "one")
    version = Version.from_bytes(repo.store.get(base.id))
    doc = json.loads(version.to_bytes())
    doc.update(excluded="everything", created=now_iso(), parents=[base.id], name="v002")
    vid = repo.store.put(canonical_json(doc)).oid
    with repo.refs.transaction("plant") as txn:
        txn.allocate_version_name()
        txn.set(VERSIONS + "v002", vid, expected=None)
        txn.set(LATEST, vid, expected=base.id)
    shown = json.loads(ok(run_vault(tmp_path / ".vault", "show", "v002", "--json")).stdout)
    assert shown["excluded"] == [] and shown["steps"] == 5
    ok(run_vault(tmp_path / ".vault", "show", "v002"))
