"""Helpers for the fault-injection and concurrency tests (test_crash, test_concurrency,
test_disk_full, test_corruption, test_hostile, test_dest_safety).

Everything that must behave like a user's ``vault`` runs as a real subprocess
(``sys.executable -m vault``), so a SIGKILL, a held lock or a full disk hits a real process.
Content checks compare *snapshots*: ``{relpath: (kind, sha256-or-target, mode)}`` of a directory
tree, links not followed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

VAULT = [sys.executable, "-m", "vault"]
TMP_PREFIX = ".vault-tmp-"
_ENV_DROP = ("VAULT_DIR", "VAULT_CRASHPOINT", "VAULT_LOCK_TIMEOUT")

Snapshot = dict[str, tuple[str, str, int]]


# -- running vault ---------------------------------------------------------------------------


def vault_env(**extra: str) -> dict[str, str]:
    """The environment for a vault subprocess: no inherited repository or fault settings."""
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    env.update(extra)
    return env


def run_vault(
    repo: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``vault --repo REPO ARGS`` to completion; never raises on a non-zero exit."""
    return subprocess.run(
        [*VAULT, "--repo", str(repo), *args],
        env=env or vault_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen_vault(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``vault --repo REPO ARGS``; stdout and stderr are piped."""
    return subprocess.Popen(
        [*VAULT, "--repo", str(repo), *args],
        env=env or vault_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Assert a vault run succeeded and return it."""
    assert proc.returncode == 0, (
        f"{proc.args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc


def assert_clean_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert a failure reported as exactly one ``vault: error: ...`` line (under ``--json``, one
    JSON error object), no traceback.

    Every ``needle`` must appear in that line (case-insensitive). Returns the line.
    """
    assert proc.returncode not in (0, None), f"{proc.args} unexpectedly succeeded:\n{proc.stdout}"
    assert proc.returncode > 0, f"{proc.args} died from signal {-proc.returncode}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{proc.stderr}"
    line = lines[0]
    if line.startswith("{"):  # under --json: {"error": {"code", "kind", "message"}}
        error = json.loads(line)["error"]
        assert error["code"] == proc.returncode, line
        line = error["message"]
    else:
        assert line.startswith("vault: error: "), line
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in {line!r}"
    return line


def log_json(repo: Path) -> list[dict]:
    """``vault log --json``, newest first (asserts success)."""
    return json.loads(ok(run_vault(repo, "log", "--json")).stdout)


def assert_linear(entries: list[dict]) -> None:
    """Names v001..vN, newest first, each version's only parent the one before it."""
    n = len(entries)
    assert [e["version"] for e in entries] == [f"v{i:03d}" for i in range(n, 0, -1)], [
        e["version"] for e in entries
    ]
    for newer, older in zip(entries, entries[1:], strict=False):
        assert newer["parents"] == [older["id"]], (newer["version"], older["version"])
    if entries:
        assert entries[-1]["parents"] == []


def assert_verify_ok(repo: Path) -> None:
    """``vault verify`` exits 0 and says ok."""
    proc = ok(run_vault(repo, "verify"))
    assert proc.stdout.startswith("ok:"), proc.stdout


def assert_checkout_matches(repo: Path, rev: str, expected: Snapshot, dest: Path) -> None:
    """``vault checkout REV DEST`` succeeds and DEST is byte-identical to ``expected``."""
    ok(run_vault(repo, "checkout", rev, str(dest)))
    got = snapshot(dest)
    assert got == expected, f"checkout of {rev} differs: {diff_snapshots(expected, got)}"


# -- content ---------------------------------------------------------------------------------


def write_model_dir(
    root: Path,
    seed: int,
    *,
    shards: int = 3,
    shard_floats: int = 256 * 1024,
    extra_bytes: int = 2 << 20,
    keep_shards: int = 0,
) -> Path:
    """A model directory of several MB: real safetensors shards, an optimizer blob, json, a link.

    ``keep_shards`` leading shards do not depend on ``seed`` (they dedup between versions).
    """
    root.mkdir(parents=True, exist_ok=True)
    for i in range(shards):
        s = 10_000 + i if i < keep_shards else seed * 100 + i
        rng = np.random.default_rng(s)
        n = shard_floats // 2
        save_file(
            {
                f"layers.{i}.weight": rng.standard_normal(n).astype(np.float32).reshape(-1, 256),
                f"layers.{i}.bias": rng.standard_normal(n).astype(np.float16),
            },
            str(root / f"model-{i + 1:05d}-of-{shards:05d}.safetensors"),
            metadata={"seed": str(s)},
        )
    rng = np.random.default_rng(seed + 7)
    sub = root / "state"
    sub.mkdir(exist_ok=True)
    (sub / "optimizer.bin").write_bytes(rng.bytes(extra_bytes))
    (sub / "rng.pt").write_bytes(bytes(range(256)) * 40 + seed.to_bytes(8, "little"))
    (root / "config.json").write_text(json.dumps({"seed": seed, "shards": shards}))
    (root / "empty.txt").write_bytes(b"")
    run = root / "run.sh"
    run.write_text("#!/bin/sh\necho train\n")
    run.chmod(0o755)
    link = root / "latest.safetensors"
    if not link.is_symlink():
        link.symlink_to(f"model-00001-of-{shards:05d}.safetensors")
    return root


def write_checkpoint(path: Path, step: int, *, tensors: int = 1, frozen: bool = False) -> Path:
    """``path/model.safetensors``: fp32 tensors that drift a little with ``step`` (so that from
    step 2 on a commit stores them as deltas of the step before), and with ``frozen`` one more
    that never changes."""
    rng = np.random.default_rng(0)
    out = {}
    if frozen:
        out["frozen.weight"] = rng.normal(0, 0.02, (128, 256)).astype(np.float32)
    for i in range(tensors):
        start = rng.normal(0, 0.02, (128, 256)).astype(np.float32)
        drift = np.random.default_rng(step * 10 + i).normal(0, 1e-4, start.shape)
        out[f"layers.{i}.weight"] = (start + step * drift).astype(np.float32)
    path.mkdir(parents=True, exist_ok=True)
    save_file(out, str(path / "model.safetensors"))
    return path


def snapshot(root: Path) -> Snapshot:
    """``{relpath: (kind, sha256 or link target, permission bits)}`` of a tree, links unfollowed."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full), 0)
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(full.read_bytes()).hexdigest()
                out[rel] = ("file", digest, stat.S_IMODE(st.st_mode))
    return out


def diff_snapshots(expected: Snapshot, got: Snapshot) -> str:
    """A short description of how two snapshots differ."""
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    changed = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    return f"missing={missing} extra={extra} changed={changed}"


# -- the repository on disk ------------------------------------------------------------------


def object_files(repo: Path) -> dict[str, Path]:
    """Every object file in the store, by id."""
    out = {}
    objects = repo / "objects"
    for fan in objects.iterdir():
        if fan.is_dir():
            for f in fan.iterdir():
                out[fan.name + f.name] = f
    return out


def debris(repo: Path) -> list[Path]:
    """Temporary files anywhere in the repository (``tmp/`` and ``.vault-tmp-*`` files)."""
    found = [p for p in (repo / "tmp").iterdir()] if (repo / "tmp").is_dir() else []
    for dirpath, _dirs, files in os.walk(repo):
        for name in files:
            if name.startswith(TMP_PREFIX) and Path(dirpath) != repo / "tmp":
                found.append(Path(dirpath) / name)
    return found


def reachable_ids(repo: Path) -> set[str]:
    """Ids of every object some ref reaches (read through the library)."""
    from vault import Repository
    from vault.ops.walk import reach

    r = Repository.open(repo)
    return {str(o) for o in reach(r.store, r.roots()).all()}


def store_bytes(repo: Path) -> int:
    """Bytes in object files and temporary files (what a full disk is full of)."""
    total = sum(p.stat().st_size for p in object_files(repo).values())
    return total + sum(p.stat().st_size for p in debris(repo))


def plant_garbage(repo: Path, count: int, *, seed: int, temp_files: int = 3) -> set[str]:
    """Write ``count`` small unreachable objects straight into the store (no fsync: fast), and
    ``temp_files`` stale temporary files in ``tmp/`` and beside ``refs.json``; return the ids.
    """
    from vault import codec
    from vault.ids import hash_bytes

    rng = np.random.default_rng(seed)
    ids = set()
    for i in range(count):
        data = rng.bytes(int(rng.integers(1, 2048))) + i.to_bytes(4, "little")
        oid = hash_bytes(data)
        path = repo / "objects" / oid[:2] / oid[2:]
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(codec.encode(data))
        path.chmod(0o444)
        ids.add(str(oid))
    for i in range(temp_files):
        (repo / "tmp" / f"{TMP_PREFIX}{seed}-{i}.1.abcd").write_bytes(rng.bytes(4096))
    if temp_files:
        (repo / f"{TMP_PREFIX}refs.json.{seed}.dead").write_bytes(b'{"torn": ')
    return ids


def make_writable(path: Path) -> None:
    """Objects are 0444; tests that damage one must chmod first."""
    path.chmod(0o644)


def flip_byte(path: Path, offset: int) -> None:
    """Invert every bit of one byte of a (read-only) file, in place."""
    make_writable(path)
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))


# -- locks -----------------------------------------------------------------------------------


@contextlib.contextmanager
def held_flock(path: Path, *, shared: bool = False) -> Iterator[int]:
    """Hold a flock on ``path`` (as another vault process would) for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield fd
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def release_later(path: Path, seconds: float) -> tuple[threading.Event, threading.Thread]:
    """Take an exclusive flock on ``path`` now and release it after ``seconds`` on a thread.

    Returns an event set at release time and the thread (join it).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    released = threading.Event()

    def release() -> None:
        time.sleep(seconds)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        released.set()

    t = threading.Thread(target=release, daemon=True)
    t.start()
    return released, t


# -- a vault process with an injected failing syscall ----------------------------------------

FAILING_SYSCALL_RUNNER = r"""
import errno, os, sys, threading
_name = os.environ["FAULT_CALL"]
_at = int(os.environ["FAULT_AT"])
_count_file = os.environ.get("FAULT_COUNT_FILE")
_real = getattr(os, _name)
_lock = threading.Lock()
_n = [0]
def _faulty(*args, **kwargs):
    with _lock:
        _n[0] += 1
        n = _n[0]
    if _at and n >= _at:  # a full disk stays full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _real(*args, **kwargs)
setattr(os, _name, _faulty)
if _count_file:
    import atexit
    atexit.register(lambda: open(_count_file, "w").write(str(_n[0])))
sys.argv = ["vault", *sys.argv[1:]]
from vault.cli.main import main
main()
"""


def run_vault_failing(
    repo: Path, call: str, at: int, *args: str, count_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run vault with ``os.<call>`` raising ENOSPC from its ``at``-th call on (0: never).

    With ``count_file`` the number of calls made is written there at exit.
    """
    env = vault_env(FAULT_CALL=call, FAULT_AT=str(at))
    if count_file is not None:
        env["FAULT_COUNT_FILE"] = str(count_file)
    return run_vault_under(FAILING_SYSCALL_RUNNER, repo, *args, env=env)


def run_vault_under(
    runner: str, repo: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``vault --repo REPO ARGS`` through ``runner``, Python code that patches ``os`` and
    then calls ``vault.cli.main.main`` with ``sys.argv[1:]``; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-c", runner, "--repo", str(repo), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- hostile versions ------------------------------------------------------------------------

PAYLOAD = b"written by a hostile tree\n"


def file_entry(path: str) -> dict:
    """A tree entry for a file at ``path`` (its content is :data:`PAYLOAD`, see below)."""
    return {"path": path, "kind": "file", "size": len(PAYLOAD), "mode": 0o644, "file": None}


def link_entry(path: str, target: str) -> dict:
    """A tree entry for a symbolic link at ``path``."""
    return {"path": path, "kind": "link", "target": target}


def plant_version(repo: Path, entries: list[dict]) -> str:
    """Store a tree listing ``entries`` in the given order (file entries get PAYLOAD), a version
    on top of latest, and name it; return its name.

    Planted through the library, as an attacker with write access to the repository would:
    content-addressed objects written with ``store.put`` (valid ids, so every read verifies),
    the tree serialised by hand so that any order and any path survive, and a ref moved through
    a refs transaction.
    """
    from vault import Repository
    from vault.objects import ChunkRef, FileManifest, Version
    from vault.refs import LATEST, VERSIONS, now_iso

    r = Repository.open(repo)
    chunk = r.store.put(PAYLOAD).oid
    manifest = r.store.put(FileManifest((ChunkRef(chunk, len(PAYLOAD)),)).to_bytes()).oid
    for e in entries:
        if e["kind"] == "file":
            e["file"] = manifest
    tree_bytes = json.dumps(
        {"type": "tree", "entries": entries}, sort_keys=True, separators=(",", ":")
    ).encode()
    tree_oid = r.store.put(tree_bytes).oid
    with r.refs.transaction("plant hostile version") as txn:
        parent = txn.get(LATEST)
        name = txn.allocate_version_name()
        version = Version(
            tree=tree_oid,
            parents=(parent,) if parent else (),
            message="hostile",
            created=now_iso(),
            name=name,
            size=len(PAYLOAD),
            files=len(entries),
        )
        vid = r.store.put(version.to_bytes()).oid
        txn.set(VERSIONS + name, vid, expected=None)
        txn.set(LATEST, vid, expected=parent)
    # The tree really parses back to what we planted (the attack reaches checkout).
    assert [e.path for e in r.store.get_tree(tree_oid).entries] == [e["path"] for e in entries]
    return name


# -- the README's example scripts ------------------------------------------------------------

README_MARKER = "# --- the README's commands ---\n"
"""The line of an ``examples/*.sh`` script after which its lines are exactly the README's."""


def readme_block(readme: Path, heading: str) -> str:
    """The first ``sh`` block of the README section that starts with ``heading``."""
    section = readme.read_text().split(f"\n{heading}", 1)[1]
    assert "```sh\n" in section, f"the section {heading!r} has no sh block"
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def run_example_script(script: Path, tmp: Path, timeout: float = 300) -> tuple[Path, str]:
    """Run ``bash SCRIPT`` (whose commands ``mktemp -d`` a project folder, here under ``tmp``)
    with this Python's ``bin`` first on ``PATH``; assert it succeeded and return the project
    folder (the one holding ``.vault``) and the output."""
    env = vault_env(TMPDIR=str(tmp))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    run = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (project,) = [p.parent for p in tmp.glob("*/.vault")]
    return project, run.stdout + run.stderr
