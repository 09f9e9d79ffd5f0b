"""Small things from the trial: an unknown revision suggests near names; ``v5`` and ``v0005`` both
mean ``v005``; ``stats`` and ``verify`` count versions alike and say so; ``vault pin`` alone lists
the pins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from faultkit import assert_clean_error, ok, run_vault, snapshot, write_checkpoint

from vault import Repository


def js(proc: Any) -> Any:
    return json.loads(ok(proc).stdout)


@pytest.fixture
def five(tmp_path: Path, repo: Repository) -> Path:
    """v001..v005 of a real safetensors checkpoint, v004 tagged best."""
    for step in range(1, 6):
        src = write_checkpoint(tmp_path / f"c{step}", step)
        ok(run_vault(repo.root, "commit", str(src), "-m", f"step {step}"))
    ok(run_vault(repo.root, "tag", "best", "v004"))
    return repo.root


@pytest.mark.parametrize(
    ("rev", "offered"),
    [("bset", "best"), ("v04x", "v004"), ("lates", "latest"), ("nightly", None)],
)
def test_an_unknown_revision_suggests_near_names(five: Path, rev: str, offered: str | None) -> None:
    proc = run_vault(five, "show", rev)
    line = assert_clean_error(proc, f"unknown revision: {rev}")
    if offered is None:
        assert "did you mean" not in line
    else:
        assert "(did you mean " in line and offered in line.split("did you mean", 1)[1]


def test_suggestions_cover_pins_and_stay_short(five: Path) -> None:
    ok(run_vault(five, "pin", "v002", "--reason", "r", "--name", "release-candidate"))
    line = assert_clean_error(run_vault(five, "checkout", "release-candidat", "out"))
    assert line.endswith("(did you mean release-candidate?)")
    line = assert_clean_error(run_vault(five, "show", "v00"))
    assert len(line.split("did you mean", 1)[1].split(",")) <= 3


@pytest.mark.parametrize("spelling", ["v5", "v05", "v005", "v0005", "v000005"])
def test_any_zero_padding_names_the_same_version(five: Path, spelling: str) -> None:
    """The documented rule: a version name is 'v' and a number; zero padding does not matter."""
    assert js(run_vault(five, "show", spelling, "--json"))["version"] == "v005"


def test_a_number_past_the_last_version_is_unknown(five: Path) -> None:
    line = assert_clean_error(run_vault(five, "show", "v0006"), "unknown revision: v0006")
    assert "v005" in line  # the nearest name is offered


def test_stats_and_verify_count_versions_alike(five: Path, tmp_path: Path) -> None:
    """The trial saw different version counts from stats and verify with no word on why."""
    src = write_checkpoint(tmp_path / "scratch", 42)
    ok(run_vault(five, "backup", str(src), "--reason", "before an experiment"))
    ok(run_vault(five, "delete", "v003", "--confirm"))  # now a backup (pre_deletion pin) too
    stats = js(run_vault(five, "stats", "--json"))
    assert (stats["versions"], stats["backups"]) == (4, 2)
    report = js(run_vault(five, "verify", "--json"))
    assert (report["named"], report["backups"], report["history"]) == (4, 2, 0)
    assert report["versions"] == report["named"] + report["backups"] + report["history"]
    assert "4 named, 2 backups" in ok(run_vault(five, "stats")).stdout
    text = ok(run_vault(five, "verify")).stdout
    assert text.startswith("ok:") and "in 6 versions" in text and "4 named, 2 backups" in text


def test_verify_labels_records_of_deleted_ancestors(five: Path) -> None:
    ok(run_vault(five, "delete", "v002", "--confirm"))
    ok(run_vault(five, "prune", "--execute"))  # v002's files go; its record stays in history
    report = js(run_vault(five, "verify", "--json"))
    assert (report["named"], report["backups"], report["history"]) == (4, 0, 1)
    assert "1 history records" in ok(run_vault(five, "verify")).stdout
    assert js(run_vault(five, "stats", "--json"))["versions"] == 4


def test_pin_without_arguments_lists_the_pins(five: Path) -> None:
    assert ok(run_vault(five, "pin")).stdout.strip() == "no pins"
    assert js(run_vault(five, "pin", "--json")) == []
    ok(run_vault(five, "pin", "v001", "--reason", "first", "--name", "first"))
    ok(run_vault(five, "pin", "v002", "--type", "keep", "--reason", "second", "--name", "second"))
    rows = ok(run_vault(five, "pin")).stdout.splitlines()
    assert rows[0].split()[:3] == ["NAME", "TYPE", "VERSION"]
    assert [r.split()[:3] for r in rows[1:]] == [
        ["first", "manual", "v001"],
        ["second", "keep", "v002"],
    ]
    listed = js(run_vault(five, "pin", "--json"))
    assert listed == js(run_vault(five, "backup", "list", "--json"))
    assert [p["name"] for p in js(run_vault(five, "pin", "--type", "keep", "--json"))] == ["second"]
    before = snapshot(five)
    for args in (["--reason", "r"], ["--name", "x"], ["v003"]):
        proc = run_vault(five, "pin", *args)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert snapshot(five) == before
