"""A damaged or hostile header cannot make a read allocate what it declares.

The bomb: a 32 KiB object whose header and zstd frame both claim 1 GiB of content. A chunk read
passes the length its file manifest lists and a header that disagrees is corruption before
anything is decoded; a manifest may declare at most ``MAX_MANIFEST_SIZE``; a delta's base must
declare the delta's length. ``vault verify`` and ``vault checkout`` run under an address-space
limit (so that a bomb that goes off cannot take the machine down; it is above the bomb's size, so
that one that goes off shows in the peak memory rather than as a failed allocation), their peak
memory is measured, and each reports the damage as usual.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import zstandard
from faultkit import VAULT, assert_clean_error, make_writable, vault_env, write_checkpoint

from vault import Repository, codec
from vault.store import object_key

BOMB_SIZE = 1 << 30
LIMIT = 1536 << 20
PEAK = 250 << 20
"""Far above what verify or checkout of this small repository needs, far below the bomb."""


@functools.cache
def bomb() -> bytes:
    """A zstd object whose header and frame both declare :data:`BOMB_SIZE` bytes of zeros."""
    comp = zstandard.ZstdCompressor(level=1).compressobj(size=BOMB_SIZE)
    zeros = bytes(1 << 20)
    frame = b"".join([comp.compress(zeros) for _ in range(BOMB_SIZE >> 20)] + [comp.flush()])
    assert zstandard.frame_content_size(frame) == BOMB_SIZE
    return codec.HEADER.pack(codec.MAGIC, codec.CODEC_ZSTD, BOMB_SIZE) + frame


# Measures from a small process of its own: a child forked straight from pytest would count the
# pages it shares with pytest (torch, after the consolidation tests) in its peak.
MEASURE = """
import json, os, resource, subprocess, sys
limit = int(sys.argv[2])
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
proc = subprocess.Popen(sys.argv[3:], preexec_fn=cap)
_, status, usage = os.wait4(proc.pid, 0)
proc.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    json.dump({"rc": proc.returncode, "peak": usage.ru_maxrss * 1024}, f)
"""


def run_measured(repo: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run vault under an address-space limit of :data:`LIMIT`; return the run and its peak
    resident memory in bytes."""
    cmd = [*VAULT, "--repo", str(repo), *args]
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, str(result), str(LIMIT), *cmd],
            env=vault_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        measured = json.loads(result.read_text())
    done = subprocess.CompletedProcess(cmd, measured["rc"], proc.stdout, proc.stderr)
    return done, measured["peak"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """v001 and v002, the tensor of v002 a delta of v001's."""
    root = tmp_path / "repo"
    repo = Repository.init(root)
    repo.commit(write_checkpoint(tmp_path / "a", 1), "a")
    repo.commit(write_checkpoint(tmp_path / "b", 2), "b")
    return root


def victim(root: Path, which: str) -> str:
    repo = Repository.open(root)
    tree_id = repo.store.get_version(repo.resolve("v002")).tree
    if which == "tree":
        return tree_id
    entry = repo.store.get_tree(tree_id).entries[0]
    assert entry.file is not None
    if which == "manifest":
        return entry.file
    chunk = repo.store.get_file(entry.file).chunks[1].oid  # the tensor (0 is the header)
    if which == "chunk":
        return chunk
    base = repo.store.delta_base(chunk)
    assert base is not None
    return base


@pytest.mark.parametrize("which", ["chunk", "delta-base", "manifest", "tree"])
def test_bomb_is_rejected_before_it_is_decoded(root: Path, tmp_path: Path, which: str) -> None:
    oid = victim(root, which)
    path = root / object_key(oid)
    make_writable(path)
    path.write_bytes(bomb())
    assert len(bomb()) < 64 << 10

    proc, peak = run_measured(root, "checkout", "v002", str(tmp_path / "out"))
    assert peak < PEAK, f"checkout peaked at {peak >> 20} MiB"
    line = assert_clean_error(proc, "corrupt")
    assert f"declares {BOMB_SIZE} bytes" in line, line
    assert not (tmp_path / "out").exists()

    proc, peak = run_measured(root, "verify")
    assert peak < PEAK, f"verify peaked at {peak >> 20} MiB"
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"corrupt object {oid}: its header declares {BOMB_SIZE} bytes" in proc.stdout
