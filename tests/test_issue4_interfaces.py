"""Issue 4's interfaces as an acceptance test reads them: the API returns the dataclasses the
CLI prints, exported from ``vault``; errors about deleted versions say what to do; a version
whose files gc removed is never named again; output cut short by a closed pipe is no error."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from conftest import make_model_dir, tree_bytes

from vault import DeleteResult, Repository


def test_result_dataclasses_are_exported_and_import_lightly() -> None:
    code = (
        "import sys\n"
        "from vault import (CheckoutResult, CleanupPlan, CommitResult, ConsolidateResult,\n"
        "    DeleteResult, DiffResult, FileChanges, GcResult, PinInfo, Repository, RestoreResult,\n"
        "    TensorChange, VerifyReport, VersionInfo)\n"
        "import dataclasses, vault\n"
        "for name in vault.__all__:\n"
        "    obj = getattr(vault, name)\n"
        "    assert name in ('Repository', 'VaultError') or dataclasses.is_dataclass(obj), name\n"
        "heavy = [m for m in ('torch', 'transformers', 'numpy', 'matplotlib')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert PinInfo.__module__ == 'vault.ops.pins'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def two(repo: Repository, tmp_path: Path) -> Repository:
    """``repo`` with v001 and v002, two different small models."""
    make_model_dir(tmp_path / "m1", seed=1)
    make_model_dir(tmp_path / "m2", seed=2)
    repo.commit(tmp_path / "m1", "one")
    repo.commit(tmp_path / "m2", "two")
    return repo


def test_every_verb_returns_the_dataclass_its_json_prints(
    two: Repository, vault_cli: Callable[..., Result], tmp_path: Path
) -> None:
    repo = two

    def cli_json(*args: str) -> object:
        result = vault_cli(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    pin = repo.pin("v001", type="milestone", reason="first", name="first")
    assert dataclasses.is_dataclass(pin)
    assert cli_json("backup", "list") == [dataclasses.asdict(pin)]
    assert cli_json("unpin", "first") == dataclasses.asdict(pin)
    assert cli_json("show", "v002") == repo.show("v002").to_json()
    assert cli_json("log") == [v.to_json() for v in repo.log()]
    assert cli_json("diff", "v001", "v002") == repo.diff("v001", "v002").to_json()
    deleted = cli_json("delete", "v002", "--confirm")
    assert deleted["version"] == "v002" and deleted["pin"]["type"] == "pre_deletion"
    assert set(deleted) == {f.name for f in dataclasses.fields(DeleteResult)}
    restored = repo.restore(deleted["pin"]["name"], tmp_path / "back")
    assert dataclasses.is_dataclass(restored) and restored.version == "v002"


def test_a_deleted_name_points_to_the_pin_that_keeps_it(
    two: Repository, vault_cli: Callable[..., Result], tmp_path: Path
) -> None:
    repo = two
    pin = repo.delete("v002", confirm=True).pin
    for args in (("show", "v002"), ("restore", "v2", str(tmp_path / "d")), ("diff", "v1", "v2")):
        result = vault_cli(*args)
        assert result.exit_code == 3
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "unknown revision" in result.stderr and pin.name in result.stderr
    assert vault_cli("show", pin.name).exit_code == 0  # the hint works as it says
    repo.unpin(pin.name)
    result = vault_cli("show", "v002")
    assert result.exit_code == 3 and "pin" not in result.stderr  # nothing keeps it now


def test_a_version_whose_files_gc_removed_is_never_named_again(
    two: Repository, vault_cli: Callable[..., Result], tmp_path: Path
) -> None:
    repo = two
    gone = repo.resolve("v002")
    repo.commit(tmp_path / "m1", "three")
    repo.unpin(repo.delete("v002", confirm=True).pin.name)
    repo.gc(grace=0)
    assert repo.verify().ok
    before = (repo.root / "refs.json").read_bytes()
    for args in (
        ("pin", gone, "--type", "x", "--reason", "y"),
        ("tag", "again", gone),
        ("show", gone),
        ("diff", "v001", gone),
        ("restore", gone, str(tmp_path / "d")),
    ):
        result = vault_cli(*args)
        assert result.exit_code == 3, (args, result.output)
        assert result.stderr.strip() == (
            f"vault: error: version v002 ({gone[:12]}) was deleted and gc has removed its files;"
            " only its record remains"
        )
    assert (repo.root / "refs.json").read_bytes() == before
    assert not (tmp_path / "d").exists()
    assert repo.verify().ok
    assert [v.version for v in repo.log()] == ["v003", "v001"]  # history still runs through


def test_lineage_in_show_reads_one_value_a_line(
    repo: Repository, vault_cli: Callable[..., Result], tmp_path: Path
) -> None:
    make_model_dir(tmp_path / "m", seed=1)
    base, adapter = "a" * 64, "b" * 64
    lineage = {"base": base, "adapter": adapter, "adapter_version": None}
    repo.commit(tmp_path / "m", "merged", meta={"lineage": lineage})
    out = vault_cli("show", "v001").stdout
    assert "meta     lineage.adapter_version = -\n" in out
    assert f"meta     lineage.base = {base}\n" in out
    assert f"meta     lineage.adapter = {adapter}\n" in out


def test_consolidate_takes_description_like_commit(
    vault_cli: Callable[..., Result], tmp_path: Path
) -> None:
    for flag in ("-m", "--description", "--message"):
        result = vault_cli(
            "consolidate", "--base", str(tmp_path / "no"), "--adapter", "v9", flag, "merged"
        )
        assert result.exit_code == 3
        assert "neither a directory nor a revision" in result.stderr, result.stderr


@pytest.mark.parametrize("args", [("show", "v001"), ("log", "--json"), ("backup", "list")])
def test_a_reader_that_stopped_is_no_error(
    repo: Repository, tmp_path: Path, args: tuple[str, ...]
) -> None:
    make_model_dir(tmp_path / "m", seed=1)
    repo.commit(tmp_path / "m", "one")
    repo.pin("v001", type="t", reason="r")
    read, write = os.pipe()
    os.close(read)  # as 'vault log | head -1' once head has exited
    try:
        run = subprocess.run(
            [sys.executable, "-m", "vault", "--repo", str(repo.root), *args],
            stdout=write,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write)
    assert run.stderr == b""
    assert run.returncode == 141


def test_deleting_the_consolidated_base_removes_base_too(
    two: Repository, vault_cli: Callable[..., Result]
) -> None:
    repo = two
    merged = repo.resolve("v002")
    with repo.refs.transaction("consolidate (as the verb sets it)") as txn:
        txn.set("base", merged, expected=None)
    result = vault_cli("delete", "base", "--confirm", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["base"] is None and out["latest"] == repo.resolve("v001")
    assert "base" not in repo.refs.read().refs
    # Only the pre_deletion pin keeps it now: once that goes, gc can take its files.
    repo.unpin(out["pin"]["name"])
    repo.gc(grace=0)
    assert repo.verify().ok
    assert not repo.store.has(merged)  # no child keeps even its record
    result = vault_cli("show", "base")
    assert result.exit_code == 3 and "it was deleted" in result.stderr


BAD_INPUT = [
    # unknown revisions
    ("show", "v099"),
    ("log", "nope"),
    ("diff", "v001", "nope"),
    ("diff", "nope", "v001"),
    ("checkout", "nope", "{tmp}/out"),
    ("tag", "t1", "nope"),
    ("pin", "nope", "--type", "x", "--reason", "r"),
    ("delete", "nope", "--confirm"),
    ("restore", "nope", "{tmp}/out"),
    ("verify", "nope"),
    ("show", "base"),
    ("consolidate", "--base", "nope", "--adapter", "v001", "-m", "x"),
    ("consolidate", "--base", "v001", "--adapter", "nope", "-m", "x"),
    ("commit", "{tmp}/m1", "-m", "x", "--base-model", ""),
    # unknown pins
    ("unpin", "nope"),
    ("backup", "restore", "nope", "{tmp}/out"),
    ("backup", "verify", "nope"),
    # missing files
    ("commit", "{tmp}/missing", "-m", "x"),
    ("commit", "{tmp}/m1", "-m", "x", "--data", "{tmp}/missing.jsonl"),
    ("commit", "{tmp}/m1", "-m", "x", "--snapshots", "{tmp}/missing"),
    ("backup", "{tmp}/missing", "--reason", "r"),
    ("consolidate", "--base", "{tmp}/missing", "--adapter", "v001", "-m", "x"),
    ("show", "v001", "--plot", "{tmp}/missing/curve.png"),
    # the adapter is not an adapter for this base; unconfirmed delete; missing messages
    ("consolidate", "--base", "v001", "--adapter", "v002", "-m", "x"),
    ("delete", "v001"),
    ("commit", "{tmp}/m1"),
    ("pin", "v001", "--type", "x"),
    ("backup", "{tmp}/m1"),
]


@pytest.mark.parametrize("args", BAD_INPUT, ids=lambda a: " ".join(a))
def test_bad_input_is_one_line_a_nonzero_exit_and_no_change(
    two: Repository, vault_cli: Callable[..., Result], tmp_path: Path, args: tuple[str, ...]
) -> None:
    before = (two.root / "refs.json").read_bytes()
    result = vault_cli(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.exit_code != 0, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("vault: error: ") and result.stderr.count("\n") == 1
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    assert (two.root / "refs.json").read_bytes() == before
    assert not (tmp_path / "out").exists()


def test_restore_reports_an_absolute_destination_and_a_deleted_versions_name(
    two: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pin = two.delete("v002", confirm=True).pin
    result = two.restore(pin.name, "back")
    assert result.dest == str(tmp_path / "back")
    assert (result.version, result.id) == ("v002", pin.id)


def test_stored_data_and_snapshots_come_back_after_their_sources_are_gone(
    repo: Repository, vault_cli: Callable[..., Result], tmp_path: Path
) -> None:
    model = make_model_dir(tmp_path / "m", seed=1)
    data = tmp_path / "data" / "train.jsonl"
    data.parent.mkdir()
    data.write_text('{"text": "hello"}\n')
    snaps = tmp_path / "snaps"
    (snaps / "step-10").mkdir(parents=True)
    (snaps / "step-10" / "sample.txt").write_text("sample at step 10")
    (snaps / "step-20.txt").write_text("sample at step 20")
    result = vault_cli(
        "commit", str(model), "-m", "x", "--data", str(data), "--store-data",
        "--snapshots", str(snaps),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected_data, expected_snaps = data.read_bytes(), tree_bytes(snaps)
    data.unlink()
    shutil.rmtree(snaps)
    repo.gc(grace=0)

    assert vault_cli("checkout", "v001", str(tmp_path / "d"), "--data").exit_code == 0
    # Relative to the project folder (tmp_path holds .vault).
    assert tree_bytes(tmp_path / "d") == {"data/train.jsonl": expected_data}
    result = vault_cli("checkout", "v001", str(tmp_path / "s"), "--snapshots", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["files"] == 2
    assert tree_bytes(tmp_path / "s") == expected_snaps

    repo.commit(model, "without", allow_empty=True)  # the same files, stored without them
    for flag, hint in (("--data", "--store-data"), ("--snapshots", "--snapshots")):
        result = vault_cli("checkout", "v002", str(tmp_path / "none"), flag)
        assert result.exit_code == 3
        assert result.stderr == f"vault: error: v002 stores no {flag[2:]} (commit it with {hint})\n"
    assert not (tmp_path / "none").exists()


def test_api_commit_takes_description_as_the_message(repo: Repository, tmp_path: Path) -> None:
    from vault.errors import BadValue

    model = make_model_dir(tmp_path / "model", seed=11, shards=1)
    res = repo.commit(model, description="first run")
    assert repo.show(res.version).message == "first run"
    with pytest.raises(BadValue):
        repo.commit(model)
    with pytest.raises(BadValue):
        repo.commit(model, "a", description="b")
