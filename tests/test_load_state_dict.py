"""Repository.load_state_dict: tensors straight from the store, verified, without a checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_safetensors
from faultkit import flip_byte, object_files
from safetensors.numpy import load_file as np_load
from safetensors.torch import load_file as pt_load
from safetensors.torch import save_file as pt_save

from vault import Repository
from vault.errors import (
    BadValue,
    CorruptObject,
    FileNotInVersion,
    NotSafetensors,
    UnknownRevision,
    VaultError,
)


@pytest.fixture
def stored(repo: Repository, tmp_path: Path) -> tuple[Repository, Path]:
    """A version with a numpy-typed file, a torch-typed file (bf16, fp8) and a config."""
    src = tmp_path / "model"
    rng = np.random.default_rng(1)
    make_safetensors(
        src / "np.safetensors",
        {
            "big": rng.standard_normal((1200, 1000)).astype(np.float32),  # > 4 MiB: 2 chunks
            "f64": rng.standard_normal(7),
            "f16": rng.standard_normal((3, 5)).astype(np.float16),
            "i64": rng.integers(-(2**40), 2**40, 9),
            "i8": rng.integers(-128, 127, 4).astype(np.int8),
            "u8": rng.integers(0, 255, 4).astype(np.uint8),
            "flag": np.array([True, False, True]),
            "scalar": np.array(3.5, dtype=np.float32),
            "empty": np.zeros((0, 4), dtype=np.float32),
        },
        metadata={"format": "np"},
    )
    torch.manual_seed(0)
    pt_save(
        {
            "bf16": torch.randn(6, 4).to(torch.bfloat16),
            "e4m3": (torch.randn(8) * 4).to(torch.float8_e4m3fn),
            "e5m2": (torch.randn(8) * 4).to(torch.float8_e5m2),
            "i32": torch.arange(10, dtype=torch.int32),
        },
        str(src / "pt.safetensors"),
    )
    (src / "config.json").write_text("{}")
    (src / "link.safetensors").symlink_to("pt.safetensors")
    repo.commit(src, "model")
    return repo, src


def test_numpy_tensors_equal_the_files(stored: tuple[Repository, Path]) -> None:
    repo, src = stored
    expected = np_load(str(src / "np.safetensors"))
    shutil.rmtree(src)  # no checkout, no source: everything comes from the store
    got = repo.load_state_dict("latest", "np.safetensors", framework="numpy")
    assert set(got) == set(expected)
    for name, arr in expected.items():
        assert got[name].dtype == arr.dtype, name
        assert got[name].shape == arr.shape, name
        np.testing.assert_array_equal(got[name], arr)
    got["big"][0, 0] = 1.0  # returned arrays are the caller's own, writable


def test_torch_tensors_keep_their_dtypes(stored: tuple[Repository, Path]) -> None:
    repo, src = stored
    expected = pt_load(str(src / "pt.safetensors"))
    got = repo.load_state_dict("v001", "pt.safetensors")  # framework="pt" by default
    assert set(got) == set(expected)
    for name, t in expected.items():
        assert got[name].dtype == t.dtype, name
        assert torch.equal(got[name].view(torch.uint8), t.view(torch.uint8)), name
    numpy_side = np_load(str(src / "np.safetensors"))
    big = repo.load_state_dict("v001", "./np.safetensors", framework="pt")["big"]
    assert big.dtype == torch.float32
    np.testing.assert_array_equal(big.numpy(), numpy_side["big"])


def test_numpy_upcasts_bf16_and_fp8_to_float32_exactly(stored: tuple[Repository, Path]) -> None:
    repo, src = stored
    expected = pt_load(str(src / "pt.safetensors"))
    got = repo.load_state_dict("v001", "pt.safetensors", framework="numpy")
    for name in ("bf16", "e4m3", "e5m2"):
        assert got[name].dtype == np.float32, name
        np.testing.assert_array_equal(got[name], expected[name].float().numpy(), err_msg=name)
    assert got["i32"].dtype == np.int32


def test_bad_requests_are_clear_errors(stored: tuple[Repository, Path]) -> None:
    repo, _ = stored
    with pytest.raises(FileNotInVersion, match="no file missing.safetensors"):
        repo.load_state_dict("v001", "missing.safetensors")
    with pytest.raises(FileNotInVersion, match="symbolic link"):
        repo.load_state_dict("v001", "link.safetensors")
    with pytest.raises(NotSafetensors, match="config.json"):
        repo.load_state_dict("v001", "config.json", framework="numpy")
    with pytest.raises(UnknownRevision):
        repo.load_state_dict("v009", "np.safetensors")
    with pytest.raises(BadValue, match="framework"):
        repo.load_state_dict("v001", "np.safetensors", framework="jax")


def test_a_damaged_chunk_is_detected(stored: tuple[Repository, Path]) -> None:
    repo, _ = stored
    tree = repo.store.get_tree(repo.store.get_version(repo.resolve("v001")).tree)
    entry = next(e for e in tree.entries if e.path == "np.safetensors")
    assert entry.file is not None
    chunks = repo.store.get_file(entry.file).chunks
    assert len(chunks) > 2  # the header and the tensors are separate chunks
    victim = max(chunks, key=lambda c: c.size).oid  # a piece of "big"
    flip_byte(object_files(repo.root)[victim], -1)
    with pytest.raises(VaultError) as info:
        repo.load_state_dict("v001", "np.safetensors", framework="numpy")
    assert isinstance(info.value, CorruptObject) or "corrupt" in str(info.value).lower()
    # Another file of the version does not share the damaged chunk and still loads.
    assert "bf16" in repo.load_state_dict("v001", "pt.safetensors")


def test_malformed_safetensors_are_rejected(repo: Repository, tmp_path: Path) -> None:
    """A file that is named .safetensors but lies about its tensors is rejected, not misread."""
    src = tmp_path / "bad"
    src.mkdir()
    good = make_safetensors(src / "ok.safetensors", {"w": np.ones((4, 4), np.float32)})
    data = bytearray(good.read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = bytes(data[8 : 8 + n]).replace(b"[4,4]", b"[4,5]")
    (src / "lying.safetensors").write_bytes(bytes(data[:8]) + header + bytes(data[8 + n :]))
    (src / "short.safetensors").write_bytes(b"\x05\x00")
    repo.commit(src, "bad files")
    with pytest.raises(NotSafetensors, match="byte range"):
        repo.load_state_dict("latest", "lying.safetensors", framework="numpy")
    with pytest.raises(NotSafetensors, match="shorter than 8 bytes"):
        repo.load_state_dict("latest", "short.safetensors", framework="numpy")
    ok = repo.load_state_dict("latest", "ok.safetensors", framework="numpy")
    np.testing.assert_array_equal(ok["w"], np.ones((4, 4), np.float32))
