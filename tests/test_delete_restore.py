"""Safe delete (pin first, then drop the name) and restore (pin what the destination held,
then make it hold exactly the version), through the API, the CLI and SIGKILL at every step."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import make_model_dir, tree_bytes
from faultkit import assert_verify_ok, ok, run_vault, snapshot, vault_env

from vault import Repository
from vault.errors import NotConfirmed, UnknownRevision, UnsafePath
from vault.ops.restore import NoDestination


def dirs_and_files(root: Path) -> set[str]:
    """Every path under ``root`` (directories too), relative, links not followed."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.add((Path(dirpath) / name).relative_to(root).as_posix())
    return out


@pytest.fixture
def models(tmp_path: Path, repo: Repository) -> list[Path]:
    """v001..v003: three small model directories (their sources, oldest first)."""
    out = []
    for seed in range(3):
        src = make_model_dir(tmp_path / f"m{seed}", seed=seed, shards=1)
        repo.commit(src, f"model {seed}", tags=[f"t{seed}"])
        out.append(src)
    return out


# -- delete ----------------------------------------------------------------------------------


def test_delete_needs_confirmation(repo: Repository, models: list[Path], vault_cli) -> None:  # type: ignore[no-untyped-def]
    before = (repo.root / "refs.json").read_bytes()
    with pytest.raises(NotConfirmed, match="--confirm"):
        repo.delete("v002")
    res = vault_cli("delete", "v002")
    assert res.exit_code != 0
    assert res.stderr.strip().splitlines() == [
        "vault: error: refusing to delete v002 without confirmation: add --confirm"
    ]
    assert (repo.root / "refs.json").read_bytes() == before


def test_delete_latest_pins_it_and_moves_latest_back(
    tmp_path: Path, repo: Repository, models: list[Path]
) -> None:
    v3 = repo.resolve("v003")
    res = repo.delete("v003", confirm=True)
    assert (res.version, res.id, res.tags) == ("v003", v3, ["t2"])
    assert res.pin.type == "pre_deletion" and res.pin.id == v3
    assert res.pin.name.startswith("pre_deletion-v003-")
    assert res.latest == repo.resolve("v002") == repo.resolve("latest")
    assert [e.version for e in repo.log()] == ["v002", "v001"]
    for gone in ("v003", "t2"):
        with pytest.raises(UnknownRevision):
            repo.resolve(gone)
    # still restorable through its pin, even after gc
    repo.gc(grace="0s")
    repo.checkout(res.pin.name, tmp_path / "back")
    assert tree_bytes(tmp_path / "back") == tree_bytes(models[2])
    # the name is never given again
    new = repo.commit(models[0], "again")
    assert new.version == "v004" and new.parents == [repo.resolve("v002")]


def test_delete_in_the_middle_keeps_history_running_through(
    repo: Repository, models: list[Path], vault_cli
) -> None:  # type: ignore[no-untyped-def]
    v2 = repo.resolve("v002")
    res = vault_cli("delete", "v002", "--confirm", "--reason", "bad run", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["version"] == "v002" and out["tags"] == ["t1"]
    assert out["pin"]["reason"] == "bad run" and out["latest"] == repo.resolve("v003")
    entries = json.loads(vault_cli("log", "--json").stdout)
    assert [e["version"] for e in entries] == ["v003", "v001"]
    assert entries[0]["parents"] == [v2]  # history still runs through the deleted version
    human = vault_cli("log").stdout
    assert "v002" not in human and "v003" in human
    assert v2 in [e["id"] for e in json.loads(vault_cli("log", "--all", "--json").stdout)]


def test_deleted_files_go_once_unpinned_but_the_record_stays(
    repo: Repository, models: list[Path]
) -> None:
    v2 = repo.resolve("v002")
    pin = repo.delete("v002", confirm=True).pin
    repo.unpin(pin.name)
    res = repo.gc(grace="0s")
    assert res.objects > 0
    assert repo.store.has(v2)  # the record, for history
    assert not repo.store.has(repo.store.get_version(v2).tree)
    assert [e.version for e in repo.log()] == ["v003", "v001"]
    assert repo.verify().ok


def test_verify_rereads_the_records_history_runs_through(
    repo: Repository, models: list[Path]
) -> None:
    from faultkit import flip_byte, make_writable, object_files

    v2 = repo.resolve("v002")
    repo.unpin(repo.delete("v002", confirm=True).pin.name)
    repo.gc(grace="0s")
    report = repo.verify()
    assert report.ok and report.versions == 3
    path = object_files(repo.root)[v2]
    make_writable(path)
    flip_byte(path, 20)
    report = repo.verify()
    assert [(d.oid, d.problem, d.versions) for d in report.damaged] == [(v2, "corrupt", ["v003"])]
    path.unlink()
    (damage,) = repo.verify().damaged
    assert (damage.oid, damage.problem) == (v2, "missing")


def test_delete_every_version(repo: Repository, models: list[Path], vault_cli) -> None:  # type: ignore[no-untyped-def]
    for rev in ("v003", "v002", "v001"):
        repo.delete(rev, confirm=True)
    assert "latest" not in repo.refs.read().refs
    assert repo.log() == []
    assert vault_cli("log").stdout.strip() == "no versions yet"
    assert len(repo.pins("pre_deletion")) == 3
    assert repo.commit(models[1], "fresh start").version == "v004"


def test_delete_bad_input(repo: Repository, models: list[Path], vault_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backup = repo.backup(models[0], reason="r")
    for rev, needle in (("v099", "unknown revision: v099"), (backup.name, "no version name")):
        res = vault_cli("delete", rev, "--confirm")
        assert res.exit_code != 0 and "Traceback" not in res.stderr
        (line,) = res.stderr.strip().splitlines()
        assert line.startswith("vault: error: ") and needle in line
    assert [e.version for e in repo.log()] == ["v003", "v002", "v001"]


# -- restore ---------------------------------------------------------------------------------


def test_restore_pins_unsaved_work_and_writes_exactly_the_version(
    tmp_path: Path, repo: Repository, models: list[Path]
) -> None:
    work = tmp_path / "work"
    make_model_dir(work, seed=2, shards=1)  # v003's content...
    (work / "notes.txt").write_text("unsaved notes")  # ...plus work of the user's own
    (work / "extra" / "deep").mkdir(parents=True)
    (work / "extra" / "deep" / "f").write_text("x")
    (work / "link").symlink_to("notes.txt")
    old = snapshot(work)
    res = repo.restore("v001", work)
    assert (res.version, res.files) == ("v001", 3)
    assert tree_bytes(work) == tree_bytes(models[0])
    assert dirs_and_files(work) == dirs_and_files(models[0])  # no stray files or directories
    assert res.backup is not None and res.backup.type == "pre_restore"
    assert res.backup.version is None  # an unnamed version
    assert [e.version for e in repo.log()] == ["v003", "v002", "v001"]  # latest untouched
    again = repo.backup_restore(res.backup.name, tmp_path / "again")
    assert again.backup is None and again.id == res.backup.id
    assert snapshot(tmp_path / "again") == old


def test_restore_makes_no_pin_when_the_content_is_kept_already(
    tmp_path: Path, repo: Repository, models: list[Path]
) -> None:
    work = tmp_path / "work"
    repo.checkout("v002", work)
    assert repo.restore("v003", work).backup is None  # v002 keeps that tree
    assert repo.restore("v003", work).backup is None  # and now v003 does
    empty = tmp_path / "empty"
    empty.mkdir()
    assert repo.restore("v001", empty).backup is None
    missing = tmp_path / "new" / "dir"
    assert repo.restore("v001", missing).backup is None
    assert tree_bytes(missing) == tree_bytes(models[0])
    assert repo.pins() == []


def test_restore_replaces_files_by_dirs_and_dirs_by_files(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "x").write_text("x")
    (src / "a.txt").write_text("a")
    repo.commit(src, "shapes")
    work = tmp_path / "work"
    (work / "a.txt").mkdir(parents=True)
    (work / "a.txt" / "inner").write_text("was a directory")
    (work / "sub").write_text("was a file")
    old = snapshot(work)
    res = repo.restore("v001", work)
    assert tree_bytes(work) == {"a.txt": b"a", "sub/x": b"x"}
    assert res.backup is not None
    repo.restore(res.backup.name, tmp_path / "old")
    assert snapshot(tmp_path / "old") == old


def test_restore_defaults_to_the_recorded_workdir(
    tmp_path: Path, runner, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from vault.cli.main import cli

    monkeypatch.chdir(tmp_path)
    res = runner.invoke(cli, ["init", "--workdir", "current_model"])
    assert res.exit_code == 0, res.stderr
    config = json.loads((tmp_path / ".vault" / "config.json").read_text())
    assert config["workdir"] == "current_model"
    model = make_model_dir(tmp_path / "current_model", seed=5, shards=1)
    expected = tree_bytes(model)
    assert runner.invoke(cli, ["commit", "current_model", "-m", "first"]).exit_code == 0
    make_model_dir(model, seed=6, shards=1)  # training goes on, uncommitted
    changed = tree_bytes(model)
    res = runner.invoke(cli, ["restore", "v001", "--json"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["dest"] == str(tmp_path / "current_model") and out["version"] == "v001"
    assert tree_bytes(model) == expected
    pin = out["backup"]["name"]
    res = runner.invoke(cli, ["backup", "restore", pin])
    assert res.exit_code == 0, res.stderr
    assert "restored" in res.stdout
    assert tree_bytes(model) == changed
    assert (tmp_path / ".vault" / "config.json").exists()


def test_restore_never_touches_the_repository_inside_the_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repository.init(tmp_path / "proj" / ".vault", workdir=tmp_path / "proj")
    assert repo.workdir == tmp_path / "proj"
    make_model_dir(tmp_path / "proj", seed=1, shards=1)
    repo.commit(tmp_path / "proj", "whole project")
    (tmp_path / "proj" / "scratch.txt").write_text("scratch")
    res = repo.restore("v001")
    assert not (tmp_path / "proj" / "scratch.txt").exists()
    assert (repo.root / "config.json").exists() and repo.verify().ok
    assert res.backup is not None


def test_restore_bad_input(tmp_path: Path, repo: Repository, models: list[Path], vault_cli) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NoDestination):
        repo.restore("v001")
    with pytest.raises(UnsafePath, match="inside the repository"):
        repo.restore("v001", repo.root / "objects")
    afile = tmp_path / "afile"
    afile.write_text("x")
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine").write_text("mine")
    for args, needle in (
        (["restore", "v099", str(work)], "unknown revision: v099"),
        (["restore", "v001"], "no destination given"),
        (["restore", "v001", str(afile)], "is a file"),
        (["backup", "restore", "nope", str(work)], "no such pin: nope"),
    ):
        res = vault_cli(*args)
        assert res.exit_code != 0, args
        (line,) = res.stderr.strip().splitlines()
        assert line.startswith("vault: error: ") and needle in line, line
    assert (work / "mine").read_text() == "mine" and afile.read_text() == "x"
    assert repo.pins() == []


# -- crashes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    # The first file a delete writes is its lease, the second refs.json.
    "point",
    ["before-rename:2", "after-rename:2", "refs-published", "reflog-appended"],
)
def test_delete_killed_leaves_the_version_named_or_pinned(
    tmp_path: Path, repo: Repository, models: list[Path], point: str
) -> None:
    v2 = repo.resolve("v002")
    proc = run_vault(
        repo.root, "delete", "v002", "--confirm", env=vault_env(VAULT_CRASHPOINT=point)
    )
    assert proc.returncode == -9, proc.stderr
    refs = repo.refs.read().refs
    named = refs.get("versions/v002") == v2
    pinned = any(k.startswith("pins/") and v == v2 for k, v in refs.items())
    assert named != pinned  # one transaction: before, or after, never between
    assert pinned == (point != "before-rename:2")  # refs.json is replaced by one rename
    assert_verify_ok(repo.root)
    ok(run_vault(repo.root, "checkout", v2, str(tmp_path / "out")))
    assert tree_bytes(tmp_path / "out") == tree_bytes(models[1])


@pytest.mark.parametrize(
    ("point", "changed"),
    [
        ("object-written", False),
        ("version-written", False),
        ("refs-published", False),
        ("restore-pinned", False),
        ("restore-written", True),
    ],
)
def test_restore_killed_never_loses_the_old_content(
    tmp_path: Path, repo: Repository, models: list[Path], point: str, changed: bool
) -> None:
    work = tmp_path / "work"
    make_model_dir(work, seed=9, shards=1)
    (work / "notes.txt").write_text("only here")
    old = snapshot(work)
    proc = run_vault(repo.root, "restore", "v001", str(work), env=vault_env(VAULT_CRASHPOINT=point))
    assert proc.returncode == -9, proc.stderr
    pins = json.loads(ok(run_vault(repo.root, "backup", "list", "--json")).stdout)
    if not changed:
        assert snapshot(work) == old  # killed before anything in DEST changed
    else:
        assert snapshot(work) != old
        assert len(pins) == 1  # so the pin must be there
    for p in pins:
        dest = tmp_path / f"from-{p['name']}"
        ok(run_vault(repo.root, "backup", "restore", p["name"], str(dest)))
        assert snapshot(dest) == old
    assert_verify_ok(repo.root)
    # and restoring again completes
    ok(run_vault(repo.root, "restore", "v001", str(work)))
    assert tree_bytes(work) == tree_bytes(models[0])
