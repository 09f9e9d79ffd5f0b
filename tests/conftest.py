"""Shared fixtures and helpers for the vault test suite.

* ``repo``: a fresh :class:`vault.Repository` at ``tmp_path/".vault"``.
* ``make_safetensors(path, tensors)``: write a real safetensors file from numpy arrays.
* ``make_model_dir(path, ...)``: a small model directory (several safetensors shards + json).
* ``runner`` / ``vault_cli``: click's CliRunner (stdout and stderr kept apart, click >= 8.2)
  and a helper that invokes ``vault --repo <repo> ARGS``.
* ``tree_bytes(path)``: ``{relpath: bytes}`` of every regular file under ``path``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from safetensors.numpy import save_file

from vault import Repository
from vault.cli.main import cli


class Clock:
    """A clock a test moves forward (to age objects past a grace period), for
    :class:`~vault.backend_memory.MemoryBackend`."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def make_safetensors(
    path: str | os.PathLike[str],
    tensors: dict[str, np.ndarray],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``tensors`` as a real safetensors file at ``path`` (parents created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(p), metadata=metadata)
    return p


def random_tensors(
    seed: int, shapes: dict[str, tuple[int, ...]], dtype: str = "float32"
) -> dict[str, np.ndarray]:
    """Deterministic random tensors (incompressible enough that no two collide)."""
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in shapes.items()}


def make_model_dir(path: str | os.PathLike[str], seed: int = 0, shards: int = 2) -> Path:
    """A small model directory: ``shards`` safetensors files, config.json, a tokenizer file."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(shards):
        make_safetensors(
            root / f"model-{i + 1:05d}-of-{shards:05d}.safetensors",
            random_tensors(
                seed * 100 + i,
                {f"layers.{i}.attn.weight": (64, 64), f"layers.{i}.mlp.weight": (64, 128)},
            ),
        )
    (root / "config.json").write_text(
        json.dumps({"hidden_size": 64, "num_layers": shards, "seed": seed}, indent=2)
    )
    (root / "tokenizer.json").write_text(json.dumps({"vocab": {f"tok{i}": i for i in range(200)}}))
    return root


def tree_bytes(path: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every regular file under ``path`` (not following links) as ``{relpath: content}``."""
    root = Path(path)
    out: dict[str, bytes] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = Path(dirpath) / name
            if full.is_symlink():
                continue
            out[full.relative_to(root).as_posix()] = full.read_bytes()
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    """A fresh, empty repository at ``tmp_path/.vault``."""
    return Repository.init(tmp_path / ".vault")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CliRunner with ``$VAULT_DIR`` unset; ``result.stdout``/``result.stderr`` are separate."""
    monkeypatch.delenv("VAULT_DIR", raising=False)
    return CliRunner()


@pytest.fixture
def vault_cli(runner: CliRunner, repo: Repository) -> Callable[..., Result]:
    """``vault_cli("log", "--json")`` runs ``vault --repo <repo> log --json``."""

    def run(*args: str, **kwargs) -> Result:  # type: ignore[no-untyped-def]
        return runner.invoke(cli, ["--repo", str(repo.root), *args], **kwargs)

    return run


# The S3 test server (tests/seaweed.py): one real SeaweedFS and one bucket per session, a fresh
# prefix in it per test.
from seaweed import s3_bucket, s3_prefix, s3_server  # noqa: E402, F401
