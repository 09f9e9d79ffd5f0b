"""Reclaiming space in one step: ``vault delete REV... --confirm`` (all or nothing), ``vault
prune`` (unpin automatic backups by policy, then collect garbage, space back at once), and
``backup cleanup`` keeping the pins someone made."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from faultkit import (
    assert_clean_error,
    assert_verify_ok,
    object_files,
    ok,
    run_vault,
    snapshot,
    write_model_dir,
)

from vault import Repository

PRUNE_KEYS = ["unpinned", "objects", "bytes", "dry_run"]


def js(proc: Any) -> Any:
    return json.loads(ok(proc).stdout)


def disk_bytes(root: Path) -> int:
    """Bytes of every file in the repository directory: what the disk holds."""
    return sum(os.lstat(Path(d) / f).st_size for d, _, files in os.walk(root) for f in files)


@pytest.fixture
def four(tmp_path: Path, repo: Repository) -> Path:
    """v001..v004: model folders of real safetensors shards, each with its own content."""
    for n in range(1, 5):
        src = write_model_dir(tmp_path / f"m{n}", seed=n, shards=2, extra_bytes=1 << 16)
        ok(run_vault(repo.root, "commit", str(src), "-m", f"model {n}"))
    return repo.root


def names(root: Path) -> list[str]:
    return [e["version"] for e in js(run_vault(root, "log", "--json"))]


# -- delete REV... ---------------------------------------------------------------------------


def test_delete_takes_several_revisions_in_one_transaction(four: Path) -> None:
    reflog_before = set((four / "logs" / "reflog").iterdir())
    res = js(run_vault(four, "delete", "v002", "v4", "--confirm", "--json"))
    assert [r["version"] for r in res] == ["v002", "v004"]
    assert all(r["pin"]["type"] == "pre_deletion" for r in res)
    assert names(four) == ["v003", "v001"]
    latest = js(run_vault(four, "show", "latest", "--json"))
    assert latest["version"] == "v003"  # latest moved past both to the nearest named one
    assert len(set((four / "logs" / "reflog").iterdir()) - reflog_before) == 1  # one move


def test_delete_validates_every_revision_before_deleting_any(four: Path) -> None:
    before = snapshot(four)
    line = assert_clean_error(
        run_vault(four, "delete", "v002", "v009", "v003", "--confirm"), "v009"
    )
    assert "unknown revision" in line
    assert snapshot(four) == before
    assert names(four) == ["v004", "v003", "v002", "v001"]
    assert_clean_error(run_vault(four, "delete", "v002", "v003"), "--confirm")
    assert snapshot(four) == before


def test_delete_one_revision_prints_the_object_it_always_did(four: Path) -> None:
    res = js(run_vault(four, "delete", "v003", "--confirm", "--json"))
    assert res["version"] == "v003" and res["latest"] is not None


def test_delete_of_one_version_by_two_names_deletes_it_once(four: Path) -> None:
    ok(run_vault(four, "tag", "good", "v002"))
    res = js(run_vault(four, "delete", "good", "v2", "--confirm", "--json"))
    assert [(r["version"], r["tags"]) for r in res] == [("v002", ["good"])]
    assert len(js(run_vault(four, "pin", "--json"))) == 1


# -- prune -----------------------------------------------------------------------------------


def test_delete_then_prune_frees_the_space_in_one_step(four: Path, tmp_path: Path) -> None:
    """The trial: after 'vault delete v012 --confirm', 'vault gc' freed nothing, and getting the
    space back took 'backup cleanup --execute' and 'gc --grace 0s'."""
    before = disk_bytes(four)
    ok(run_vault(four, "delete", "v002", "v003", "--confirm"))
    assert js(run_vault(four, "gc", "--json"))["bytes"] == 0  # the pre_deletion pins keep them
    snap = snapshot(four)
    plan = js(run_vault(four, "prune", "--json"))
    assert list(plan) == PRUNE_KEYS
    assert len(plan["unpinned"]) == 2 and plan["dry_run"] is True
    assert all(n.startswith("pre_deletion-v00") for n in plan["unpinned"])
    assert plan["bytes"] > 2 * 1_000_000 and plan["objects"] > 0
    assert snapshot(four) == snap  # a dry run changes nothing
    text = ok(run_vault(four, "prune")).stdout
    assert "would unpin pre_deletion-v002" in text and "--execute" in text

    done = js(run_vault(four, "prune", "--execute", "--json"))
    assert done == {**plan, "dry_run": False}  # it did exactly what the dry run said
    after = disk_bytes(four)
    assert before - after >= plan["bytes"] - 64 * 1024  # the bytes left the disk
    assert js(run_vault(four, "pin", "--json")) == []
    assert_verify_ok(four)
    ok(run_vault(four, "checkout", "v004", str(tmp_path / "out")))
    assert (tmp_path / "out" / "config.json").read_text() == (
        tmp_path / "m4" / "config.json"
    ).read_text()
    again = js(run_vault(four, "prune", "--execute", "--json"))
    assert again == {"unpinned": [], "objects": 0, "bytes": 0, "dry_run": False}


def test_prune_keeps_what_others_still_reach_and_what_gc_grace_protects(
    four: Path, repo: Repository, tmp_path: Path
) -> None:
    """Only the versions prune itself unpins lose the reflog's and the grace's protection: a
    version another pin keeps stays whole, and one unpinned by hand a moment ago waits out
    gc's grace period as it always did."""
    ok(run_vault(four, "delete", "v002", "v003", "--confirm"))
    ok(run_vault(four, "pin", _pin_of(four, "v002"), "--reason", "mine", "--name", "mine2"))
    src = write_model_dir(tmp_path / "scratch", seed=77, shards=1, extra_bytes=1 << 12)
    backup = js(run_vault(four, "backup", str(src), "--reason", "scratch", "--json"))
    ok(run_vault(four, "unpin", backup["name"]))  # by hand: gc's grace still protects it
    res = js(run_vault(four, "prune", "--execute", "--json"))
    assert len(res["unpinned"]) == 2
    again = Repository.open(four)
    assert again.verify("mine2").ok  # v002 is still whole: the user's pin keeps it
    assert backup["id"] in object_files(four)  # within the grace, from the reflog
    with pytest.raises(Exception, match="unknown revision"):
        again.resolve("v003")
    assert_verify_ok(four)


def _pin_of(root: Path, version: str) -> str:
    (name,) = [
        p["name"]
        for p in js(run_vault(root, "backup", "list", "--json"))
        if p["version"] == version
    ]
    return name


def test_prune_policies_and_types(four: Path, repo: Repository) -> None:
    for n in (1, 2, 3):
        ok(run_vault(four, "delete", f"v00{n}", "--confirm"))
    ok(run_vault(four, "pin", "v004", "--reason", "mine", "--name", "mine"))
    ok(run_vault(four, "pin", "v004", "--type", "pre_restore", "--reason", "r", "--name", "pr"))
    deletion = [p["name"] for p in js(run_vault(four, "pin", "--json"))][:3]
    # the first deletion was ten days ago (refs.json edited as a user with an editor would)
    doc = json.loads((four / "refs.json").read_text())
    doc["pins"][deletion[0]]["created"] = "2020-01-01T00:00:00.000000+00:00"
    (four / "refs.json").write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")

    plan = js(run_vault(four, "prune", "--keep-last", "2", "--json"))
    assert plan["unpinned"] == [deletion[0]]  # newest 2 of pre_deletion kept; pr is the only
    plan = js(run_vault(four, "prune", "--keep-last", "1", "--json"))  # pre_restore: kept
    assert plan["unpinned"] == deletion[:2]
    plan = js(run_vault(four, "prune", "--keep-within", "10d", "--json"))
    assert plan["unpinned"] == [deletion[0]]
    plan = js(run_vault(four, "prune", "--keep-within", "100000d", "--json"))
    assert plan["unpinned"] == []
    plan = js(run_vault(four, "prune", "--keep-within", "1h", "--keep-last", "3", "--json"))
    assert plan["unpinned"] == []  # kept when any policy keeps it
    plan = js(run_vault(four, "prune", "--type", "pre_restore", "--json"))
    assert plan["unpinned"] == ["pr"]
    plan = js(run_vault(four, "prune", "--json"))
    assert plan["unpinned"] == [*deletion, "pr"]  # never the user's 'mine'
    plan = js(run_vault(four, "prune", "--type", "manual", "--json"))
    assert plan["unpinned"] == ["mine"]  # unless its type is named

    before = snapshot(four)
    for args, needle in [
        (["--keep-last", "-1"], "--keep-last"),
        (["--keep-within", "soon"], "duration"),
        (["--type", "two words"], "pin type"),
    ]:
        assert_clean_error(run_vault(four, "prune", *args, "--execute"), needle)
    assert snapshot(four) == before


def test_prune_frees_space_of_old_objects_too(four: Path) -> None:
    """Objects written long ago (past gc's grace) whose version prune unpins go as well, and
    the gc after it frees exactly what the plan said."""
    old = time.time() - 7200
    for path in object_files(four).values():
        os.utime(path, (old, old))
    ok(run_vault(four, "delete", "v001", "--confirm"))
    plan = js(run_vault(four, "prune", "--json"))
    before = disk_bytes(four)
    done = js(run_vault(four, "prune", "--execute", "--json"))
    assert done["bytes"] == plan["bytes"] > 0
    assert before - disk_bytes(four) >= plan["bytes"] - 64 * 1024
    assert_verify_ok(four)


def test_prune_through_the_api(repo: Repository, four: Path) -> None:
    repo.delete_many(["v001", "v002"], confirm=True)
    plan = repo.prune()
    assert plan.dry_run and len(plan.unpinned) == 2 and plan.bytes > 0
    done = repo.prune(execute=True)
    assert not done.dry_run and done.unpinned == plan.unpinned and done.bytes == plan.bytes
    assert repo.pins() == [] and repo.verify().ok


# -- backup cleanup keeps the pins someone made ----------------------------------------------


def test_backup_cleanup_never_drops_user_pins_by_default(four: Path, tmp_path: Path) -> None:
    """backup cleanup --retention-days 0 used to unpin every pin, 'vault pin' and 'vault backup'
    ones included: the bytes of a user's only copy became garbage."""
    ok(run_vault(four, "pin", "v001", "--reason", "keep this", "--name", "mine"))
    src = write_model_dir(tmp_path / "only-copy", seed=42, shards=1, extra_bytes=1 << 12)
    ok(run_vault(four, "backup", str(src), "--reason", "only copy", "--name", "saved"))
    ok(run_vault(four, "delete", "v002", "--confirm"))
    deletion = _pin_of(four, "v002")
    plan = js(run_vault(four, "backup", "cleanup", "--retention-days", "0", "--json"))
    assert [p["name"] for p in plan["unpin"]] == [deletion]
    assert {p["name"] for p in plan["keep"]} == {"mine", "saved"}
    ok(run_vault(four, "backup", "cleanup", "--retention-days", "0", "--execute"))
    ok(run_vault(four, "backup", "cleanup", "--keep-last", "0", "--execute"))
    assert sorted(p["name"] for p in js(run_vault(four, "backup", "list", "--json"))) == [
        "mine",
        "saved",
    ]
    # named types go when asked
    plan = js(
        run_vault(
            four,
            "backup",
            "cleanup",
            "--retention-days",
            "0",
            "--type",
            "emergency",
            "--type",
            "manual",
            "--json",
        )
    )
    assert sorted(p["name"] for p in plan["unpin"]) == ["mine", "saved"]
