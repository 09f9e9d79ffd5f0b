"""``vault status`` on an unchanged 1 GiB model: the stat cache should answer in well under a
second (issue 11, item 10).

The model is four safetensors shards of 256 MiB (random float32) plus a config and a tokenizer
file, committed once the files are older than the stat cache's racy window (so that commit
records them, as it does for any checkpoint that is not committed the instant it is written).
Each step runs as its own ``vault`` process, as a user would run it:

* **startup**: ``vault --version``, the floor any command pays (median of 5);
* **status, unchanged**: ``vault status MODEL`` answered by the cache commit kept (median of 5);
* **status, one file edited**: ``config.json`` rewritten, the shards untouched (median of 5);
* **status, no cache**: ``cache/stat.json`` removed, so every shard is read and hashed along the
  version's chunk cuts (once); it records what it found equal;
* **status, after that**: answered by what the previous run recorded (median of 5);
* in-process ``Repository.status`` on the unchanged model, without the interpreter's start
  (median of 5).

Usage::

    python benchmarks/status.py [--workdir DIR] [--json OUT] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import MB, compile_vault, run, vault_argv, vault_source  # noqa: E402

REPEATS = 5
SHARDS = 4
SHARD_BYTES = 256 << 20


def make_model(root: Path) -> int:
    """Write the 1 GiB model under ``root``; return its size."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(SHARDS):
        w = rng.standard_normal(SHARD_BYTES // 4, dtype=np.float32).reshape(-1, 4096)
        save_file({f"layers.{i}.weight": w}, str(root / f"model-{i + 1:05d}.safetensors"))
    (root / "config.json").write_text(json.dumps({"layers": SHARDS, "hidden": 4096}))
    (root / "tokenizer.json").write_text(json.dumps({"vocab": [f"t{i}" for i in range(5000)]}))
    return sum(p.stat().st_size for p in root.iterdir())


def vault(repo: Path, *args: str) -> float:
    """Seconds one ``vault`` process takes."""
    return run([*vault_argv(), "--repo", str(repo), *args]).seconds


def median_of(fn: Any) -> float:
    return statistics.median(fn() for _ in range(REPEATS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    compile_vault()
    work = Path(tempfile.mkdtemp(prefix="vault-status-", dir=args.workdir))
    try:
        repo, model = work / "repo", work / "model"
        size = make_model(model)
        time.sleep(2.5)  # older than the stat cache's racy window (2 s)
        vault(repo, "init")
        commit = vault(repo, "commit", str(model), "-m", "1 GiB model")
        figures: dict[str, Any] = {"bytes": size, "commit_seconds": commit}
        figures["startup"] = median_of(lambda: run([*vault_argv(), "--version"]).seconds)
        figures["status_unchanged"] = median_of(lambda: vault(repo, "status", str(model)))

        from vault import Repository

        opened = Repository.open(repo)

        def in_process() -> float:
            start = time.perf_counter()
            changes = opened.status(model)
            assert not (changes.added or changes.removed or changes.changed), changes
            return time.perf_counter() - start

        figures["api_unchanged"] = median_of(in_process)
        (model / "config.json").write_text(json.dumps({"layers": SHARDS, "hidden": 4097}))
        figures["status_one_edited"] = median_of(lambda: vault(repo, "status", str(model)))
        (repo / "cache" / "stat.json").unlink()
        time.sleep(2.5)  # let the edited config age too, so the next run may record it
        figures["status_no_cache"] = vault(repo, "status", str(model))
        figures["status_after"] = median_of(lambda: vault(repo, "status", str(model)))
        figures["vault"] = vault_source()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    rows = [
        ("model", f"{figures['bytes'] / MB:.0f} MB in {SHARDS} shards and 2 small files"),
        ("commit (for scale)", f"{figures['commit_seconds']:.2f} s"),
        ("vault --version (startup)", f"{figures['startup']:.3f} s"),
        ("status, unchanged (stat cache)", f"{figures['status_unchanged']:.3f} s"),
        ("Repository.status, unchanged", f"{figures['api_unchanged']:.3f} s"),
        ("status, config.json edited", f"{figures['status_one_edited']:.3f} s"),
        ("status, no stat cache (reads 1 GiB)", f"{figures['status_no_cache']:.3f} s"),
        ("status, after it recorded", f"{figures['status_after']:.3f} s"),
    ]
    for name, value in rows:
        print(f"{name:<40} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
