"""A push of one small version to a remote that already holds many: how its cost grows with
the number of versions there (what ``vault watch --push`` pays after each checkpoint of a long
run).

Each version is 40 files of 4 KiB of random bytes (40 chunks, 40 file manifests), committed
from one process; the versions are pushed once to a directory remote; then, for each new
version, a commit and a timed ``Repository.push`` (median of the ``--pushes``), with the time
spent finding what to send (``vault.ops.transfer._needed``) reported apart. The remote is a
directory so that the walk, not the wire, is measured.

Usage::

    python benchmarks/push_scale.py [--versions 100,300] [--pushes 3] [--workdir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

FILES = 40
FILE_BYTES = 4096


def write_version(src: Path) -> None:
    """Fill ``src`` with :data:`FILES` files of fresh random bytes."""
    for i in range(FILES):
        (src / f"f{i}.bin").write_bytes(os.urandom(FILE_BYTES))


def measure(root: Path, versions: int, pushes: int) -> dict[str, Any]:
    """Commit and push ``versions`` versions, then time ``pushes`` pushes of one more each."""
    import vault.ops.transfer as transfer
    from vault import Repository

    repo = Repository.init(root / "repo" / ".vault")
    src = root / "src"
    src.mkdir()
    start = time.perf_counter()
    for n in range(versions):
        write_version(src)
        repo.commit(src, f"version {n + 1}")
    committed = time.perf_counter() - start
    repo.remote_add("origin", str(root / "remote"))
    start = time.perf_counter()
    repo.push("origin")
    first = time.perf_counter() - start

    walks: list[float] = []
    real = transfer._needed

    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            walks.append(time.perf_counter() - t)

    transfer._needed = timed  # type: ignore[assignment]
    seconds, sent = [], []
    try:
        for _ in range(pushes):
            write_version(src)
            repo.commit(src, "one more")
            t = time.perf_counter()
            result = repo.push("origin")
            seconds.append(time.perf_counter() - t)
            sent.append(result.objects)
    finally:
        transfer._needed = real  # type: ignore[assignment]
    return {
        "versions": versions,
        "commit_seconds": committed,
        "first_push_seconds": first,
        "push_seconds": seconds,
        "push_median": statistics.median(seconds),
        "walk_seconds": walks,
        "walk_median": statistics.median(walks),
        "objects_sent": sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", default="100,300", help="comma-separated version counts")
    parser.add_argument("--pushes", type=int, default=3, help="timed pushes per count")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the scratch dir")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    rows = []
    for count in (int(x) for x in args.versions.split(",")):
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            row = measure(Path(tmp), count, args.pushes)
        rows.append(row)
        print(
            f"{count:6d} versions on the remote: push of one more {row['push_median']:.3f} s"
            f" (finding what to send {row['walk_median']:.3f} s), {row['objects_sent'][0]}"
            " objects sent",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
