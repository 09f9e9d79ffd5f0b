"""What docs/format.md obliges writers and readers to do, checked on real repositories."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import make_safetensors, random_tensors

from vault import Repository
from vault.errors import BadValue
from vault.ids import hash_bytes
from vault.objects import Tree, Version, canonical_json
from vault.store import object_key


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_canonical_json_never_writes_nan_or_infinity(bad: float) -> None:
    with pytest.raises(BadValue):
        canonical_json({"a": [1, {"b": bad}]})


def test_commit_refuses_non_finite_metadata_before_storing_anything(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / ".vault")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    objects_before = sorted(oid for oid, _ in repo.store.list())
    with pytest.raises(BadValue):
        repo.commit(src, "nan", meta={"lr": math.nan})
    assert sorted(oid for oid, _ in repo.store.list()) == objects_before
    assert repo.log() == []


def _put_raw(repo: Repository, content: bytes) -> str:
    """Store ``content`` as a raw object by hand (header VLT1, codec 0, length), as the spec
    says, bypassing the writer's checks."""
    oid = hash_bytes(content)
    path = repo.root / object_key(oid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"VLT1" + bytes(4) + len(content).to_bytes(8, "little") + content)
    return oid


def test_reader_reads_nan_written_by_earlier_releases_as_null(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / ".vault")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    good = repo.commit(src, "first")
    doc = json.loads(repo.store.get(good.id))
    text = json.dumps({**doc, "meta": {"lr": "X", "b": "Y"}}, sort_keys=True, separators=(",", ":"))
    oid = _put_raw(repo, text.replace('"X"', "NaN").replace('"Y"', "-Infinity").encode())
    assert repo.store.get_version(oid).meta == {"lr": None, "b": None}


def test_mode_keeps_permission_bits_only(tmp_path: Path) -> None:
    entry = {"path": "x", "kind": "file", "size": 0, "mode": 0o4755, "file": "0" * 64}
    tree = Tree.from_bytes(json.dumps({"type": "tree", "entries": [entry]}).encode())
    assert tree.entries[0].mode == 0o755


def test_unknown_fields_are_ignored_by_readers(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / ".vault")
    path = make_safetensors(tmp_path / "m.safetensors", random_tensors(1, {"w": (8, 8)}))
    got = repo.commit(path, "one")
    doc = json.loads(repo.store.get(got.id))
    doc["future_field"] = {"x": 1}
    version = Version.from_bytes(json.dumps(doc).encode())
    assert version.tree == got.tree
