"""vault on 20,000 small files: commit, re-commit, verify, checkout and restore, against ``cp -r``.

A data set or a tokenizer-and-config folder is many small files, and every per-file cost (a stat,
an open, an fsync, a path check, a rename) shows there, not on a 1 GiB model. The tree is
20,000 files of 100 B to 16 KiB (JSON lines and text, half of them compressible), in 200
folders two levels deep: about 170 MB. Each step runs as its own ``vault`` process, as a user
would run it:

* **commit**: the first commit of the tree (each object fsynced, as always);
* **re-commit**: the same tree again, unchanged (the stat cache answers; median of 3);
* **re-commit --rehash**: unchanged, every file read again (median of 3);
* **verify**: ``vault verify`` (median of 3);
* **checkout**: ``vault checkout v001`` into a new folder (median of 3; fresh folder each time);
* **restore**: ``vault restore v001 DEST`` where DEST holds the tree with 1 % of the files
  changed and 1 % added: the changed content is first committed and pinned as ``pre_restore``,
  then DEST is made to hold exactly v001 (median of 3);
* ``cp -r`` of the tree, with and without a ``sync`` after it, for scale.

Usage::

    python benchmarks/small_files.py [--files N] [--workdir DIR] [--json OUT] [--keep]

Every checked-out or restored tree is compared byte for byte with its source (outside the
timing). MB is 10**6 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import MB, compile_vault, run, same_tree, vault_argv, vault_source  # noqa: E402

REPEATS = 3


def make_tree(root: Path, files: int, seed: int = 0) -> int:
    """Write ``files`` small files under ``root``; return their total size."""
    rng = random.Random(seed)
    total = 0
    for i in range(files):
        folder = root / f"part-{i % 20:02d}" / f"shard-{(i // 20) % 10:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(100, 16 * 1024)
        if i % 2:
            line = json.dumps({"id": i, "text": "the quick brown fox " * 4}).encode() + b"\n"
            data = (line * (size // len(line) + 1))[:size]
        else:
            data = rng.randbytes(size)
        (folder / f"sample-{i:05d}.{'jsonl' if i % 2 else 'bin'}").write_bytes(data)
        total += size
    return total


def perturb(root: Path, seed: int = 1) -> None:
    """Change 1 % of the files under ``root`` and add 1 % new ones."""
    rng = random.Random(seed)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for p in rng.sample(files, max(1, len(files) // 100)):
        p.write_bytes(rng.randbytes(p.stat().st_size))
    for i in range(max(1, len(files) // 100)):
        (root / "part-00" / f"new-{i:04d}.bin").write_bytes(rng.randbytes(1000))


def vault(repo: Path, *args: str) -> float:
    """Seconds one ``vault --repo REPO ARGS`` process took."""
    return run([*vault_argv(), "--repo", str(repo), *args]).seconds


def median_of(fn: Any) -> float:
    return statistics.median(fn(i) for i in range(REPEATS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the figures to OUT")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)

    compile_vault()
    work = Path(tempfile.mkdtemp(prefix="vault-small-", dir=args.workdir))
    try:
        src = work / "src"
        logical = make_tree(src, args.files)
        repo = work / "repo"
        vault(repo, "init")
        figures: dict[str, Any] = {"files": args.files, "logical_bytes": logical}
        t = {}

        start = time.perf_counter()
        shutil.copytree(src, work / "cp")
        t["cp -r"] = time.perf_counter() - start
        start = time.perf_counter()
        os.sync()
        t["cp -r + sync"] = t["cp -r"] + time.perf_counter() - start

        t["commit"] = vault(repo, "commit", str(src), "-m", "small files")
        t["re-commit"] = median_of(lambda i: vault(repo, "commit", str(src), "-m", f"again {i}"))
        t["re-commit --rehash"] = median_of(
            lambda i: vault(repo, "commit", str(src), "-m", f"rehash {i}", "--rehash")
        )
        t["verify"] = median_of(lambda i: vault(repo, "verify"))

        def checkout(i: int) -> float:
            dest = work / f"co{i}"
            seconds = vault(repo, "checkout", "v001", str(dest))
            assert not same_tree(src, dest), "checkout differs from the source"
            shutil.rmtree(dest)
            return seconds

        t["checkout"] = median_of(checkout)

        def restore(i: int) -> float:
            dest = work / f"rs{i}"
            shutil.copytree(src, dest)
            perturb(dest, seed=i + 1)
            seconds = vault(repo, "restore", "v001", str(dest))
            assert not same_tree(src, dest), "restore differs from v001"
            shutil.rmtree(dest)
            return seconds

        t["restore"] = median_of(restore)
        figures["seconds"] = {k: round(v, 3) for k, v in t.items()}
        figures["vault"] = vault_source()
        stored = sum(p.stat().st_size for p in (repo / "objects").rglob("*") if p.is_file())
        figures["stored_bytes"] = stored

        print(f"{args.files} files, {logical / MB:.1f} MB logical, {stored / MB:.1f} MB stored")
        print(f"{'step':<22}{'seconds':>9}{'files/s':>10}{'MB/s':>9}")
        for step, seconds in t.items():
            rate = args.files / seconds if seconds else 0
            print(f"{step:<22}{seconds:>9.3f}{rate:>10.0f}{logical / MB / seconds:>9.1f}")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
