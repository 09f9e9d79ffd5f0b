"""``vault backup``: PATH as a pinned unnamed version, and list, restore, verify, cleanup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_model_dir, tree_bytes
from faultkit import flip_byte, make_writable, object_files, store_bytes

from vault import Repository

PIN_KEYS = ["name", "type", "reason", "created", "expires", "version", "id"]


def one_error_line(res) -> str:  # type: ignore[no-untyped-def]
    """The single ``vault: error:`` line of a failed run."""
    assert res.exit_code != 0
    assert "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("vault: error: "), line
    return line


@pytest.fixture
def model(tmp_path: Path, repo: Repository) -> Path:
    """A model directory committed as v001."""
    src = make_model_dir(tmp_path / "model", seed=1, shards=2)
    repo.commit(src, "first")
    return src


def test_backup_path_pins_an_unnamed_version(
    tmp_path: Path, repo: Repository, model: Path, vault_cli
) -> None:  # type: ignore[no-untyped-def]
    latest = repo.resolve("latest")
    work = make_model_dir(tmp_path / "work", seed=2, shards=2)
    res = vault_cli("backup", str(work), "--type", "emergency", "--reason", "disk alarm", "--json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert list(info) == PIN_KEYS
    assert info["type"] == "emergency" and info["reason"] == "disk alarm"
    assert info["version"] is None and info["expires"] is None
    assert info["name"].startswith("emergency-")
    assert repo.resolve("latest") == latest  # a backup does not move latest
    assert [e["version"] for e in json.loads(vault_cli("log", "--json").stdout)] == ["v001"]
    every = json.loads(vault_cli("log", "--all", "--json").stdout)
    assert {e["id"] for e in every} == {latest, info["id"]}
    assert [e["pins"] for e in every if e["id"] == info["id"]] == [[info["name"]]]
    assert "disk alarm" in vault_cli("log", "--all").stdout
    res = vault_cli("backup", "restore", info["name"], str(tmp_path / "back"))
    assert res.exit_code == 0, res.stderr
    assert tree_bytes(tmp_path / "back") == tree_bytes(work)
    # the next commit is still v002, on top of v001
    assert repo.commit(work, "second").parents == [latest]


def test_backup_of_stored_content_is_nearly_free(repo: Repository, model: Path, vault_cli) -> None:  # type: ignore[no-untyped-def]
    before = store_bytes(repo.root)
    res = vault_cli("backup", str(model), "--reason", "same as v001", "--name", "same")
    assert res.exit_code == 0, res.stderr
    assert "pin same (emergency)" in res.stdout  # emergency is the default type
    assert store_bytes(repo.root) - before < 2048  # one small version object
    (pin,) = repo.pins()
    assert repo.store.get_version(pin.id).tree == repo.store.get_version(repo.resolve("v001")).tree


def test_backup_list_is_oldest_first_and_filters_by_type(
    repo: Repository, model: Path, vault_cli
) -> None:  # type: ignore[no-untyped-def]
    assert vault_cli("backup", "list").stdout.strip() == "no pins"
    assert json.loads(vault_cli("backup", "list", "--json").stdout) == []
    names = []
    for kind in ("emergency", "pre_consolidation", "emergency"):
        res = vault_cli("backup", str(model), "--type", kind, "--reason", kind, "--json")
        names.append(json.loads(res.stdout)["name"])
    listed = json.loads(vault_cli("backup", "list", "--json").stdout)
    assert [p["name"] for p in listed] == names
    assert all(list(p) == PIN_KEYS for p in listed)
    only = json.loads(vault_cli("backup", "list", "--type", "emergency", "--json").stdout)
    assert [p["name"] for p in only] == [names[0], names[2]]
    table = vault_cli("backup", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "TYPE", "VERSION"] and len(table) == 4


def test_backup_verify_rehashes_what_pins_reach(
    tmp_path: Path, repo: Repository, model: Path, vault_cli
) -> None:  # type: ignore[no-untyped-def]
    work = make_model_dir(tmp_path / "work", seed=3, shards=1)
    first = json.loads(vault_cli("backup", str(work), "--reason", "a", "--json").stdout)
    second = repo.pin("v001", type="keep", reason="b")
    res = vault_cli("backup", "verify")
    assert res.exit_code == 0 and res.stdout.startswith("ok:"), res.stdout
    report = json.loads(vault_cli("backup", "verify", first["name"], "--json").stdout)
    assert report["ok"] and report["versions"] == 1
    # damage a chunk only the backup has
    tree = repo.store.get_tree(repo.store.get_version(first["id"]).tree)
    entry = next(e for e in tree.entries if e.path.endswith(".safetensors"))
    chunk = repo.store.get_file(entry.file).chunks[-1].oid
    path = object_files(repo.root)[chunk]
    make_writable(path)
    flip_byte(path, -1)
    res = vault_cli("backup", "verify", first["name"])
    assert res.exit_code == 1 and chunk in res.stdout
    assert vault_cli("backup", "verify", second.name).exit_code == 0
    assert one_error_line(vault_cli("backup", "verify", "nope")).endswith("no such pin: nope")


def test_cleanup_dry_run_then_execute_frees_what_it_said(
    tmp_path: Path, repo: Repository, model: Path, vault_cli
) -> None:  # type: ignore[no-untyped-def]
    work = make_model_dir(tmp_path / "work", seed=4, shards=1)
    vault_cli("backup", str(work), "--reason", "unique content")
    vault_cli("backup", str(model), "--reason", "same as v001")
    assert len(repo.pins()) == 2
    emergency = ["--type", "emergency"]  # backups someone made go only when named
    res = vault_cli("backup", "cleanup", "--retention-days", "30", *emergency, "--json")
    plan = json.loads(res.stdout)
    assert plan["unpin"] == [] and plan["bytes"] == 0 and not plan["executed"]
    res = vault_cli("backup", "cleanup", "--retention-days", "0", *emergency, "--json")
    plan = json.loads(res.stdout)
    assert [p["reason"] for p in plan["unpin"]] == ["unique content", "same as v001"]
    assert plan["bytes"] > 30_000 and not plan["executed"]
    assert len(repo.pins()) == 2  # a dry run
    human = vault_cli("backup", "cleanup", "--retention-days", "0", *emergency).stdout
    assert "would unpin 2 of 2 pins" in human and "--execute" in human
    res = vault_cli("backup", "cleanup", "--retention-days", "0", *emergency, "--execute", "--json")
    done = json.loads(res.stdout)
    assert done["executed"] and done["bytes"] == plan["bytes"]
    assert repo.pins() == []
    freed = repo.gc(grace="0s")
    assert freed.bytes == plan["bytes"] and freed.objects == plan["objects"]
    assert repo.verify().ok
    repo.checkout("v001", tmp_path / "v1")
    assert tree_bytes(tmp_path / "v1") == tree_bytes(model)


def test_cleanup_keep_last_per_type_and_type_filter(repo: Repository, model: Path) -> None:
    made = {}
    for i, kind in enumerate(["emergency", "pre_restore", "emergency", "emergency", "pre_restore"]):
        made[i] = repo.pin("v001", type=kind, reason=str(i)).name
    both = ["emergency", "pre_restore"]
    plan = repo.backup_cleanup(keep_last=1, type=both)
    assert [p.name for p in plan.unpin] == [made[0], made[1], made[2]]
    assert [p.name for p in plan.keep] == [made[3], made[4]]
    plan = repo.backup_cleanup(keep_last=1)  # by default the automatic types only
    assert [p.name for p in plan.unpin] == [made[1]]
    plan = repo.backup_cleanup(keep_last=1, type="pre_restore")
    assert [p.name for p in plan.unpin] == [made[1]]
    plan = repo.backup_cleanup(retention_days=0, keep_last=2, type="emergency")
    assert [p.name for p in plan.unpin] == [made[0]]
    assert plan.bytes == 0  # v001 is named: unpinning frees nothing
    executed = repo.backup_cleanup(keep_last=1, type=both, execute=True)
    assert executed.executed
    assert [p.name for p in repo.pins()] == [made[3], made[4]]


def test_cleanup_drops_expired_pins(repo: Repository, model: Path, vault_cli) -> None:  # type: ignore[no-untyped-def]
    expired = repo.pin("v001", type="keep", reason="short", expires="0s")
    later = repo.pin("v001", type="keep", reason="long", expires="30d")
    repo.pin("v001", type="keep", reason="forever")
    plan = json.loads(vault_cli("backup", "cleanup", "--json").stdout)
    assert [p["name"] for p in plan["unpin"]] == [expired.name]
    assert later.name in [p["name"] for p in plan["keep"]]
    res = vault_cli("backup", "cleanup", "--keep-last", "5", "--execute")
    assert res.exit_code == 0 and "unpinned 0 of 3" in res.stdout  # keep-last protects it


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["backup", "nope-dir", "--reason", "r"], "path not found"),
        (["backup", "MODEL"], "--reason"),
        (["backup", "MODEL", "--reason", "r", "--type", "a b"], "invalid pin type"),
        (["backup", "MODEL", "--reason", "r", "--name", "latest"], "invalid pin name"),
        (["backup", "cleanup", "--retention-days", "-1"], "--retention-days"),
        (["backup", "cleanup", "--keep-last", "x"], "--keep-last"),
        (["backup", "list", "--nope"], "--nope"),
    ],
)
def test_backup_bad_input(
    repo: Repository, model: Path, vault_cli, args: list[str], needle: str
) -> None:  # type: ignore[no-untyped-def]
    args = [str(model) if a == "MODEL" else a for a in args]
    assert needle in one_error_line(vault_cli(*args))
    assert repo.pins() == []


def test_backup_name_taken(repo: Repository, model: Path, vault_cli) -> None:  # type: ignore[no-untyped-def]
    repo.pin("v001", type="keep", reason="r", name="taken")
    before = json.loads((repo.root / "refs.json").read_text())
    line = one_error_line(vault_cli("backup", str(model), "--reason", "r", "--name", "taken"))
    assert "pin taken already exists" in line
    assert json.loads((repo.root / "refs.json").read_text()) == before


def test_backup_help_shows_both_forms(vault_cli) -> None:  # type: ignore[no-untyped-def]
    res = vault_cli("backup", "--help")
    assert res.exit_code == 0
    assert "vault backup PATH" in res.stdout
    for sub in ("list", "restore", "verify", "cleanup"):
        assert sub in res.stdout
