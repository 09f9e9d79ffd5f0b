"""``--data`` paths: recorded relative to the project folder (the folder holding ``.vault/``),
absolute only outside it; ``checkout --data`` writes them under DEST by those paths, never
outside DEST, for today's versions and for those recorded by absolute path before."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from faultkit import VAULT, ok, run_vault, snapshot, vault_env
from test_commit_selection import trainer_checkpoint

from vault import Repository
from vault.meta import data_record
from vault.objects import Version
from vault.ops.commit import SourceEntry, store_tree
from vault.refs import LATEST, VERSIONS, now_iso


def setup_project(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A project with a repository, a checkpoint and ``data/train.jsonl``; and a data file
    outside the project. Returns the project, the checkpoint and the outside file."""
    project = tmp_path / "proj"
    project.mkdir()
    ok(run_vault(project / ".vault", "init"))
    ckpt = trainer_checkpoint(project / "runs" / "checkpoint-50", 50)
    (project / "data").mkdir()
    (project / "data" / "train.jsonl").write_text('{"text": "inside"}\n')
    shared = tmp_path / "shared" / "sets"
    shared.mkdir(parents=True)
    (shared / "eval.jsonl").write_text('{"text": "outside"}\n')
    return project, ckpt, shared / "eval.jsonl"


def vault_in(cwd: Path, repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``vault --repo REPO ARGS`` run from the directory ``cwd``."""
    return subprocess.run(
        [*VAULT, "--repo", str(repo), *args],
        cwd=cwd,
        env=vault_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def files_under(root: Path) -> set[str]:
    return {k for k, v in snapshot(root).items() if v[0] == "file"}


def test_data_inside_the_project_is_recorded_relative(tmp_path: Path) -> None:
    project, ckpt, _ = setup_project(tmp_path)
    # Run from a subfolder with a path relative to it: the record is relative to the project.
    ok(
        vault_in(
            project / "runs",
            project / ".vault",
            "commit",
            "checkpoint-50",
            "-m",
            "with data",
            "--data",
            "../data/train.jsonl",
            "--store-data",
        )
    )
    shown = json.loads(ok(run_vault(project / ".vault", "show", "v001", "--json")).stdout)
    (record,) = shown["data"]
    assert record["path"] == "data/train.jsonl"
    text = ok(run_vault(project / ".vault", "show", "v001")).stdout
    assert "data     data/train.jsonl" in text

    dest = tmp_path / "got"
    ok(run_vault(project / ".vault", "checkout", "v001", str(dest), "--data"))
    assert files_under(dest) == {"data/train.jsonl"}
    assert (dest / "data" / "train.jsonl").read_text() == '{"text": "inside"}\n'


def test_data_outside_the_project_stays_absolute_and_lands_under_dest(tmp_path: Path) -> None:
    project, ckpt, outside = setup_project(tmp_path)
    ok(
        run_vault(
            project / ".vault",
            "commit",
            str(ckpt),
            "-m",
            "two sets",
            "--data",
            str(project / "data" / "train.jsonl"),
            "--data",
            str(outside),
            "--store-data",
        )
    )
    shown = json.loads(ok(run_vault(project / ".vault", "show", "v001", "--json")).stdout)
    assert sorted(d["path"] for d in shown["data"]) == sorted(
        ["data/train.jsonl", os.path.abspath(outside)]
    )
    dest = tmp_path / "got"
    ok(run_vault(project / ".vault", "checkout", "v001", str(dest), "--data"))
    assert files_under(dest) == {
        "data/train.jsonl",
        "_outside/" + os.path.abspath(outside).lstrip("/"),
    }
    # Nothing was written outside DEST: the outside file is untouched, no stray folders.
    assert outside.read_text() == '{"text": "outside"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["got", "proj", "shared"]


def test_a_project_reached_through_a_link_still_records_relative(tmp_path: Path) -> None:
    project, ckpt, _ = setup_project(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(project)
    ok(
        vault_in(
            link,
            link / ".vault",
            "commit",
            str(link / "runs" / "checkpoint-50"),
            "-m",
            "via link",
            "--data",
            str(project / "data" / "train.jsonl"),
        )
    )
    shown = json.loads(ok(run_vault(project / ".vault", "show", "v001", "--json")).stdout)
    assert [d["path"] for d in shown["data"]] == ["data/train.jsonl"]


def plant_absolute_data_version(repo_dir: Path, ckpt: Path, data: list[Path]) -> str:
    """A version as vault wrote it before data paths were relative: every data file recorded
    by its absolute path and stored in the ``data`` attachment at that path without the
    leading ``/``. Built with the store's own writers, as that release did."""
    repo = Repository.open(repo_dir)
    files = repo.commit(ckpt, "files only")
    records = [data_record(d, stored=True) for d in data]  # no project: absolute, as before
    assert all(r["path"].startswith("/") for r in records)
    entries = []
    for d, r in zip(data, records, strict=True):
        st = os.stat(d)
        entries.append(SourceEntry(r["path"].lstrip("/"), d, "file", st.st_size, 0o644))
    attachment = store_tree(repo.store, entries)
    repo.store.sync()
    with repo.refs.transaction("plant an older version") as txn:
        parent = txn.get(LATEST)
        name = txn.allocate_version_name()
        version = Version(
            tree=files.tree,
            parents=(parent,) if parent else (),
            message="older release",
            created=now_iso(),
            name=name,
            size=files.bytes,
            files=files.files,
            training={"data": records},
            attachments={"data": attachment.tree},
        )
        vid = repo.store.put(version.to_bytes()).oid
        txn.set(VERSIONS + name, vid, expected=None)
        txn.set(LATEST, vid, expected=parent)
    return name


def test_an_older_version_with_absolute_data_paths_checks_out_sanely(tmp_path: Path) -> None:
    project, ckpt, outside = setup_project(tmp_path)
    name = plant_absolute_data_version(
        project / ".vault", ckpt, [project / "data" / "train.jsonl", outside]
    )
    dest = tmp_path / "got"
    ok(run_vault(project / ".vault", "checkout", name, str(dest), "--data"))
    # Where a commit today would put them, not DEST/<absolute path of the project>/...
    assert files_under(dest) == {
        "data/train.jsonl",
        "_outside/" + os.path.abspath(outside).lstrip("/"),
    }
    assert (dest / "data" / "train.jsonl").read_text() == '{"text": "inside"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["got", "proj", "shared"]


def test_an_older_version_checks_out_after_the_project_moved(tmp_path: Path) -> None:
    """The project moved since: its old absolute paths lie outside, and land under _outside."""
    project, ckpt, _ = setup_project(tmp_path)
    train = project / "data" / "train.jsonl"
    name = plant_absolute_data_version(project / ".vault", ckpt, [train])
    moved = tmp_path / "moved"
    project.rename(moved)
    dest = tmp_path / "got"
    ok(run_vault(moved / ".vault", "checkout", name, str(dest), "--data"))
    assert files_under(dest) == {"_outside/" + os.path.abspath(train).lstrip("/")}
