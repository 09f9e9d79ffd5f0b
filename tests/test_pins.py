"""Pins: refs ``pins/NAME`` with a type, reason, creation time and expiry beside them in
refs.json; ``base`` as a reserved, resolvable ref; ``vault pin`` and ``vault unpin``."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import make_model_dir, tree_bytes

from vault import Repository
from vault.errors import BadValue, PinError, TagError, UnknownRevision
from vault.refs import PINS, RefsDoc
from vault.repo import PinInfo

PIN_KEYS = ["name", "type", "reason", "created", "expires", "version", "id"]


@pytest.fixture
def three(tmp_path: Path, repo: Repository) -> list[str]:
    """Three versions of a small model directory; their ids, oldest first."""
    ids = []
    for seed in range(3):
        src = make_model_dir(tmp_path / f"m{seed}", seed=seed, shards=1)
        ids.append(repo.commit(src, f"model {seed}").id)
    return ids


def test_pin_with_generated_name_then_unpin(repo: Repository, three: list[str]) -> None:
    info = repo.pin("v002", type="emergency", reason="before the experiment")
    assert isinstance(info, PinInfo)
    assert re.fullmatch(r"emergency-v002-\d{8}T\d{6}", info.name), info.name
    assert (info.type, info.reason, info.version, info.id) == (
        "emergency",
        "before the experiment",
        "v002",
        three[1],
    )
    assert info.expires is None
    datetime.fromisoformat(info.created)  # ISO 8601
    assert repo.pins() == [info]
    assert repo.resolve(info.name) == three[1]  # a pin name is a revision
    assert repo.unpin(info.name) == info
    assert repo.pins() == []
    with pytest.raises(PinError, match="no such pin"):
        repo.unpin(info.name)


def test_pins_are_listed_oldest_first_and_filtered_by_type(
    repo: Repository, three: list[str]
) -> None:
    a = repo.pin("v003", type="emergency", reason="a")
    b = repo.pin("v001", type="keep", reason="b", name="first-model")
    c = repo.pin("v003", type="emergency", reason="c")  # same second: a fresh name
    assert a.name != c.name
    assert [p.name for p in repo.pins()] == [a.name, b.name, c.name]
    assert [p.name for p in repo.pins("emergency")] == [a.name, c.name]
    assert repo.pins("nothing") == []


@pytest.mark.parametrize(
    "bad", ["v001", "v7", "latest", "base", "HEAD", "abcd", "has space", "-dash", "", "a/b"]
)
def test_pin_names_follow_the_tag_rules(repo: Repository, three: list[str], bad: str) -> None:
    with pytest.raises(PinError, match="invalid pin name"):
        repo.pin("v001", type="keep", reason="r", name=bad)
    assert repo.pins() == []


def test_pin_type_must_be_one_word(repo: Repository, three: list[str]) -> None:
    for bad in ("", "two words", "1st", "a/b"):
        with pytest.raises(PinError, match="invalid pin type"):
            repo.pin("v001", type=bad, reason="r")


def test_existing_pin_is_refused_unless_replaced(repo: Repository, three: list[str]) -> None:
    repo.pin("v001", type="best", reason="eval_loss 0.9", name="best")
    with pytest.raises(PinError, match="already exists"):
        repo.pin("v002", type="best", reason="eval_loss 0.8", name="best")
    moved = repo.pin("v002", type="best", reason="eval_loss 0.8", name="best", replace=True)
    assert (moved.id, moved.reason) == (three[1], "eval_loss 0.8")
    assert [p.name for p in repo.pins()] == ["best"]
    moves = [e for e in repo.refs.reflog() if e.ref == PINS + "best"]
    assert [(e.old, e.new) for e in moves] == [(None, three[0]), (three[0], three[1])]


def test_unknown_revision_pins_nothing(repo: Repository, three: list[str]) -> None:
    with pytest.raises(UnknownRevision):
        repo.pin("v099", type="keep", reason="r")
    assert repo.pins() == []


def test_expiry_as_duration_or_date(repo: Repository, three: list[str]) -> None:
    p = repo.pin("v001", type="keep", reason="r", expires="30d")
    assert p.expires is not None
    delta = datetime.fromisoformat(p.expires) - datetime.fromisoformat(p.created)
    assert timedelta(days=30) - timedelta(seconds=2) < delta <= timedelta(days=30, seconds=1)
    q = repo.pin("v001", type="keep", reason="r", expires="2031-01-02")
    assert q.expires == "2031-01-02T00:00:00+00:00"
    with pytest.raises(BadValue, match="expiry"):
        repo.pin("v001", type="keep", reason="r", expires="next tuesday")


def test_pin_description_is_stored_beside_the_ref(repo: Repository, three: list[str]) -> None:
    p = repo.pin("v002", type="keep", reason="why not", name="k", expires="2031-01-01")
    doc = json.loads((repo.root / "refs.json").read_text())
    assert doc["refs"]["pins/k"] == three[1]
    assert doc["pins"]["k"] == {
        "type": "keep",
        "reason": "why not",
        "created": p.created,
        "expires": "2031-01-01T00:00:00+00:00",
        "seq": 1,  # orders pins made within one microsecond
    }
    repo.unpin("k")
    doc = json.loads((repo.root / "refs.json").read_text())
    assert "pins/k" not in doc["refs"] and "k" not in doc.get("pins", {})


def test_refs_json_without_pins_still_reads(repo: Repository, three: list[str]) -> None:
    path = repo.root / "refs.json"
    doc = json.loads(path.read_text())
    assert "pins" not in doc  # nothing written for a repository without pins
    doc["refs"]["pins/handmade"] = three[0]  # a pin ref with no description
    path.write_text(json.dumps(doc))
    (only,) = repo.pins()
    assert (only.name, only.type, only.reason, only.version) == ("handmade", "unknown", "", "v001")
    repo.pin("v003", type="keep", reason="r", name="new")
    assert RefsDoc.from_bytes(path.read_bytes()).pins["new"]["type"] == "keep"


def test_malformed_pins_in_refs_json_are_damage(repo: Repository, three: list[str]) -> None:
    from vault.errors import CorruptObject

    path = repo.root / "refs.json"
    doc = json.loads(path.read_text())
    doc["pins"] = ["not", "a", "mapping"]
    path.write_text(json.dumps(doc))
    with pytest.raises(CorruptObject, match="refs.json"):
        repo.pins()


def test_a_pin_keeps_a_version_through_gc_until_unpinned(
    tmp_path: Path, repo: Repository, three: list[str]
) -> None:
    expected = tree_bytes(tmp_path / "m2")
    pin = repo.pin("v003", type="keep", reason="r")
    repo.delete("v003", confirm=True)
    repo.gc(grace="0s")
    repo.checkout(pin.name, tmp_path / "kept")
    assert tree_bytes(tmp_path / "kept") == expected
    for p in repo.pins():
        repo.unpin(p.name)
    repo.gc(grace="0s")
    # nothing reaches v003 any more: not even its record (no later version descends from it)
    assert not repo.store.has(three[2])
    with pytest.raises(UnknownRevision):
        repo.checkout(three[2], tmp_path / "gone")
    assert repo.verify().ok


def test_base_is_a_reserved_revision(repo: Repository, three: list[str]) -> None:
    with pytest.raises(UnknownRevision, match="base"):
        repo.resolve("base")
    with repo.refs.transaction("consolidate") as txn:
        txn.set("base", three[2], expected=txn.get("base"))
    assert repo.resolve("base") == three[2]
    assert repo.resolve("base~2") == three[0]
    with pytest.raises(TagError, match="reserved"):
        repo.tag("base", "v001")
    with pytest.raises(PinError, match="reserved"):
        repo.pin("v001", type="keep", reason="r", name="base")


def test_log_json_lists_pins(repo: Repository, vault_cli, three: list[str]) -> None:  # type: ignore[no-untyped-def]
    repo.pin("v002", type="keep", reason="r", name="b-pin")
    repo.pin("v002", type="keep", reason="r", name="a-pin")
    entries = json.loads(vault_cli("log", "--json").stdout)
    assert {e["version"]: e["pins"] for e in entries} == {
        "v003": [],
        "v002": ["a-pin", "b-pin"],
        "v001": [],
    }


# -- the command line --------------------------------------------------------------------------


def test_cli_pin_and_unpin(vault_cli, three: list[str]) -> None:  # type: ignore[no-untyped-def]
    res = vault_cli(
        "pin", "v001", "--type", "emergency", "--reason", "safe", "--name", "keep1", "--json"
    )
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert list(info) == PIN_KEYS
    assert info["name"] == "keep1" and info["version"] == "v001" and info["id"] == three[0]
    listed = json.loads(vault_cli("backup", "list", "--json").stdout)
    assert listed == [info]
    res = vault_cli("pin", "v002", "--type", "x", "--reason", "r", "--expires", "7d")
    assert res.exit_code == 0 and "keeps v002" in res.stdout
    res = vault_cli("unpin", "keep1")
    assert res.exit_code == 0 and "removed pin keep1" in res.stdout
    assert [p["type"] for p in json.loads(vault_cli("backup", "list", "--json").stdout)] == ["x"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["unpin", "nope"], "no such pin: nope"),
        (["pin", "v099", "--type", "x", "--reason", "r"], "unknown revision: v099"),
        (["pin", "v001", "--type", "x", "--reason", "r", "--name", "v002"], "invalid pin name"),
        (["pin", "v001", "--type", "two words", "--reason", "r"], "invalid pin type"),
        (["pin", "v001", "--type", "x", "--reason", "r", "--expires", "soon"], "expiry"),
        (["pin", "v001", "--type", "x"], "--reason"),
    ],
)
def test_cli_pin_errors_are_one_line(
    vault_cli, three: list[str], args: list[str], needle: str
) -> None:  # type: ignore[no-untyped-def]
    res = vault_cli(*args)
    assert res.exit_code != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vault: error: "), res.stderr
    assert needle in lines[0]
    assert "Traceback" not in res.stderr
