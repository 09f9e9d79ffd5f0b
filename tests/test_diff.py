"""vault diff: files and tensors between two versions, from the stored chunks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_safetensors
from faultkit import object_files
from safetensors.torch import save_file as pt_save

from vault import Repository
from vault.errors import UnknownRevision


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float(np.linalg.norm(b64 - a64) / np.linalg.norm(a64))


@pytest.fixture
def two_versions(repo: Repository, tmp_path: Path) -> tuple[Repository, dict, dict]:
    """v001 and v002 of a model directory, with every kind of change between them."""
    src = tmp_path / "model"
    rng = np.random.default_rng(7)
    a = {
        "big": rng.standard_normal((1200, 1000)).astype(np.float32),  # two chunks
        "same": rng.standard_normal((64, 64)).astype(np.float32),
        "gone": rng.standard_normal(5).astype(np.float32),
        "recast": rng.standard_normal((8, 8)).astype(np.float32),
        "reshaped": rng.standard_normal((4, 6)).astype(np.float32),
        "zero": np.zeros(4, np.float32),
        "negzero": np.zeros(3, np.float32),
    }
    make_safetensors(src / "model.safetensors", a)
    make_safetensors(src / "dropped.safetensors", {"d": np.ones(2, np.float32)})
    (src / "config.json").write_text('{"a": 1}')
    (src / "tokenizer.json").write_text("{}")
    (src / "fake.safetensors").write_bytes(b"not really")
    repo.commit(src, "first")

    b = dict(a)
    b["big"] = a["big"].copy()
    b["big"][1100, 3] += 5.0  # only the second 4 MiB piece changes
    b["recast"] = a["recast"].astype(np.float16)
    b["reshaped"] = a["reshaped"].reshape(6, 4)
    b["zero"] = np.array([0, 0, 1, 0], np.float32)
    b["negzero"] = -a["negzero"]  # other bytes, equal values
    b["new"] = np.arange(3, dtype=np.int64)
    del b["gone"]
    make_safetensors(src / "model.safetensors", b)
    (src / "dropped.safetensors").unlink()
    make_safetensors(src / "extra" / "added.safetensors", {"x": np.ones((2, 3), np.float16)})
    (src / "config.json").write_text('{"a": 2}')
    (src / "fake.safetensors").write_bytes(b"still not")
    repo.commit(src, "second")
    return repo, a, b


def test_files_and_tensors(two_versions: tuple[Repository, dict, dict]) -> None:
    repo, a, b = two_versions
    d = repo.diff("v001", "v002")
    assert d.files.added == ["extra/added.safetensors"]
    assert d.files.removed == ["dropped.safetensors"]
    assert d.files.changed == ["config.json", "fake.safetensors", "model.safetensors"]
    got = {(t.file, t.name): t for t in d.tensors}
    assert set(got) == {
        ("dropped.safetensors", "d"),
        ("extra/added.safetensors", "x"),
        ("model.safetensors", "big"),
        ("model.safetensors", "gone"),
        ("model.safetensors", "new"),
        ("model.safetensors", "recast"),
        ("model.safetensors", "reshaped"),
        ("model.safetensors", "zero"),
        ("model.safetensors", "negzero"),
    }  # "same" is unchanged and omitted; fake.safetensors has no tensors to compare
    m = "model.safetensors"
    assert got[m, "big"].status == "changed"
    assert got[m, "big"].rel_l2 == pytest.approx(rel_l2(a["big"], b["big"]), rel=1e-9)
    assert (got[m, "big"].shape, got[m, "big"].dtype) == ([1200, 1000], "F32")
    assert got[m, "recast"].dtype == "F16"  # the new dtype, compared by value
    assert got[m, "recast"].rel_l2 == pytest.approx(rel_l2(a["recast"], b["recast"]), rel=1e-6)
    assert 0 < got[m, "recast"].rel_l2 < 1e-3
    assert (got[m, "reshaped"].shape, got[m, "reshaped"].rel_l2) == ([6, 4], None)
    assert got[m, "zero"].rel_l2 is None  # ||a|| = 0 and b is not zero
    assert (got[m, "negzero"].status, got[m, "negzero"].rel_l2) == ("changed", 0.0)
    assert (got[m, "gone"].status, got[m, "gone"].shape, got[m, "gone"].rel_l2) == (
        "removed",
        [5],
        None,
    )
    assert (got[m, "new"].status, got[m, "new"].dtype) == ("added", "I64")
    assert got["dropped.safetensors", "d"].status == "removed"
    assert got["extra/added.safetensors", "x"].status == "added"
    assert repo.diff("v002", "v002").tensors == []
    assert d["files"]["added"] == d.files.added  # readable as its JSON, too
    assert d.to_json()["tensors"][0] == {
        "file": d.tensors[0].file,
        "name": d.tensors[0].name,
        "status": d.tensors[0].status,
        "shape": d.tensors[0].shape,
        "dtype": d.tensors[0].dtype,
        "rel_l2": d.tensors[0].rel_l2,
    }


def test_unchanged_tensors_are_never_read(two_versions: tuple[Repository, dict, dict]) -> None:
    """Deleting the chunk of a tensor both versions share does not disturb diff: it is compared
    by chunk ids alone."""
    repo, _, _ = two_versions
    tree = repo.store.get_tree(repo.store.get_version(repo.resolve("v002")).tree)
    entry = next(e for e in tree.entries if e.path == "model.safetensors")
    assert entry.file is not None
    header_chunk = repo.store.get_file(entry.file).chunks[0]
    for c in repo.store.get_file(entry.file).chunks[1:]:
        if c.size == 64 * 64 * 4:  # "same": the only tensor of that size
            object_files(repo.root)[c.oid].unlink()
    assert header_chunk.oid in object_files(repo.root)
    d = repo.diff("v001", "v002")
    assert "same" not in {t.name for t in d.tensors}
    assert any(t.name == "big" for t in d.tensors)


def test_bf16_tensors(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "m"
    src.mkdir()
    torch.manual_seed(0)
    w = torch.randn(32, 16).to(torch.bfloat16)
    pt_save({"w": w}, str(src / "model.safetensors"))
    repo.commit(src, "a")
    w2 = w.clone()
    w2[0, 0] += 1
    pt_save({"w": w2}, str(src / "model.safetensors"))
    repo.commit(src, "b")
    (t,) = repo.diff("v001", "v002").tensors
    expected = float((w2.double() - w.double()).norm() / w.double().norm())
    assert (t.dtype, t.rel_l2) == ("BF16", pytest.approx(expected, rel=1e-12))


def test_cli_json_and_text(two_versions: tuple[Repository, dict, dict], vault_cli) -> None:  # type: ignore[no-untyped-def]
    result = vault_cli("diff", "v001", "latest", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"files", "tensors"}
    assert set(doc["files"]) == {"added", "removed", "changed"}
    assert doc["files"]["removed"] == ["dropped.safetensors"]
    for t in doc["tensors"]:
        assert set(t) == {"file", "name", "status", "shape", "dtype", "rel_l2"}
        assert t["status"] in ("added", "removed", "changed")
    zero = next(t for t in doc["tensors"] if t["name"] == "zero")
    assert zero["rel_l2"] is None

    text = vault_cli("diff", "v001", "v002")
    assert text.exit_code == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "A extra/added.safetensors" in lines
    assert "D dropped.safetensors" in lines
    assert "M config.json" in lines
    rows = [line.split() for line in lines]
    assert ["M", "model.safetensors:big", "F32", "[1200,", "1000]"] in [r[:5] for r in rows]
    assert ["D", "model.safetensors:gone", "F32", "[5]", "-"] in rows

    same = vault_cli("diff", "v002", "v002")
    assert (same.exit_code, same.stdout.strip()) == (0, "no differences")


def test_unknown_revision(two_versions: tuple[Repository, dict, dict], vault_cli) -> None:  # type: ignore[no-untyped-def]
    repo, _, _ = two_versions
    with pytest.raises(UnknownRevision):
        repo.diff("v001", "v042")
    result = vault_cli("diff", "v001", "nope")
    assert result.exit_code != 0
    assert result.stderr.strip() == "vault: error: unknown revision: nope"
    assert "Traceback" not in result.output
