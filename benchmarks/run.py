"""Benchmark vault against ``cp -r`` on a realistic fine-tuning artifact series.

The series (see ``series.py``) is a ~``scale`` GiB bf16 base model, ten fp32 LoRA
checkpoints and three merged models: 14 versions, committed in order. One run
measures, for both tools and in the same way:

* **commit**: ``cp -r`` of each version into ``versions/NNN/``, versus
  ``vault commit`` of each version, one subprocess per version. Throughput is
  logical bytes / wall-clock seconds over all 14 versions.
* **checkout**: ``cp -r`` of the last checkpoint and the last merged model back
  out, versus ``vault checkout`` of the same two versions (``v011``, ``v014``).
  The checked-out trees are then compared byte for byte with the sources
  (outside the timing).
* **stored / logical**: bytes on disk after the 14 commits over logical bytes.
* **peak RSS**: the largest maximum resident set size of any one subprocess,
  measured by GNU ``time -f %M`` (or ``os.wait4`` without it; see :func:`run`).

The page cache is dropped (``sync; echo 3 > /proc/sys/vm/drop_caches``)
before every timed phase when we may, so that neither tool reads a warm cache
the other did not get. ``cp`` does not fsync while vault fsyncs every object
and checked-out file, so the time of a ``sync`` right after each ``cp`` phase
is recorded too (``cp -r + sync``).

Usage::

    python benchmarks/run.py [--scale S] [--seed N] [--workdir DIR] [--keep] [--json OUT]

MB is 10**6 bytes throughout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from series import generate, version_order

MB = 1_000_000
"""Bytes in a megabyte, as reported."""

GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
"""GNU time, used to read each command's own peak RSS (see :func:`run`)."""

CHECKOUT_VERSIONS = (14, 11)
"""Versions restored by the checkout phase: the last merged model and the last checkpoint."""


@dataclass
class Run:
    """One finished subprocess.

    Attributes:
        argv: Command line.
        seconds: Wall-clock time from spawn to exit.
        max_rss: Peak resident set size of the child, in bytes.
        stdout: Captured standard output.
        cpu_seconds: User plus system CPU time of the child and its descendants.
    """

    argv: list[str]
    seconds: float
    max_rss: int
    stdout: str = field(repr=False)
    cpu_seconds: float = 0.0


@dataclass
class Phase:
    """A timed sequence of subprocesses over ``bytes`` logical bytes.

    Attributes:
        bytes: Logical bytes written (commit) or restored (checkout).
        seconds: Wall-clock time of the whole phase.
        sync_seconds: Time of a ``sync`` run right after the phase.
        runs: The subprocesses, in order.
    """

    bytes: int
    seconds: float
    sync_seconds: float
    runs: list[Run]

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s."""
        return self.bytes / MB / self.seconds

    @property
    def mb_per_s_synced(self) -> float:
        """Throughput in MB/s, counting the trailing ``sync``."""
        return self.bytes / MB / (self.seconds + self.sync_seconds)

    @property
    def peak_rss(self) -> int:
        """Largest peak RSS of any subprocess, in bytes."""
        return max(r.max_rss for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        """Figures of the phase as a JSON-ready dictionary."""
        return {
            "bytes": self.bytes,
            "seconds": self.seconds,
            "sync_seconds": self.sync_seconds,
            "mb_per_s": self.mb_per_s,
            "mb_per_s_synced": self.mb_per_s_synced,
            "peak_rss_bytes": self.peak_rss,
            "runs": [
                {"argv": r.argv, "seconds": r.seconds, "max_rss_bytes": r.max_rss}
                for r in self.runs
            ],
        }


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def run(argv: list[str]) -> Run:
    """Run a command to completion and measure its time and peak RSS.

    On Linux a child's ``ru_maxrss`` starts from the resident size of the
    process it was forked from (``exec`` records the old image's high-water
    mark), so reading it for a child of this Python process, which holds the
    generated series' numpy state, would report at least this process's own
    peak. The command therefore runs under GNU ``time -f %M`` when
    ``/usr/bin/time`` exists: the measured process is then forked from the
    small ``time`` process, whose own footprint (~1 MB) is the floor. Without
    it, the ``rusage`` of :func:`os.wait4` is used and the floor is this
    process's peak RSS.

    Args:
        argv: Command line.

    Returns:
        The finished run.

    Raises:
        RuntimeError: If the command exits with a non-zero status.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(mode="r") as rss,
    ):
        full = [GNU_TIME, "-f", "%M", "-o", rss.name, *argv] if GNU_TIME else argv
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
        # GNU time writes "Command exited with non-zero status N" before %M on failure.
        max_rss_kib = int(rss.read().split()[-1]) if GNU_TIME else usage.ru_maxrss
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{stderr}")
    # wait4's usage counts the child and the descendants it waited for (GNU time's command).
    cpu = usage.ru_utime + usage.ru_stime
    return Run(argv, seconds, max_rss_kib * 1024, stdout, cpu)


def timed_sync() -> float:
    """Run ``sync`` and return how long it took, in seconds."""
    start = time.perf_counter()
    os.sync()
    return time.perf_counter() - start


def drop_caches() -> bool:
    """Flush dirty pages and drop the page cache, dentries and inodes.

    Returns:
        Whether the cache could be dropped (it needs root).
    """
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def read_trees(paths: list[Path]) -> tuple[int, float]:
    """Read every file under ``paths`` once, discarding the bytes.

    Args:
        paths: Directories to read.

    Returns:
        Bytes read and seconds taken.
    """
    start = time.perf_counter()
    total = 0
    for path in paths:
        for folder, _, files in os.walk(path):
            for name in sorted(files):
                with open(os.path.join(folder, name), "rb", buffering=0) as f:
                    while block := f.read(1 << 24):
                        total += len(block)
    return total, time.perf_counter() - start


def tree_bytes(path: Path) -> tuple[int, int]:
    """Sum the sizes of the regular files under ``path``.

    Args:
        path: Directory to walk.

    Returns:
        Apparent size (sum of ``st_size``) and allocated size (``st_blocks``
        times 512, what ``du`` reports).
    """
    apparent = allocated = 0
    for folder, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


def same_tree(a: Path, b: Path) -> list[str]:
    """Compare two directory trees byte for byte.

    Args:
        a: Reference tree.
        b: Tree to check.

    Returns:
        Relative paths that are missing, extra or different; empty when equal.
    """

    def listing(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}

    left, right = listing(a), listing(b)
    problems = sorted(left ^ right)
    for rel in sorted(left & right):
        if not filecmp.cmp(a / rel, b / rel, shallow=False):
            problems.append(rel)
    return problems


def vault_argv() -> list[str]:
    """The command that runs the vault CLI: ``vault`` on PATH, else ``python -m vault``."""
    exe = shutil.which("vault")
    return [exe] if exe else [sys.executable, "-m", "vault"]


def compile_vault() -> None:
    """Byte-compile the vault package under test, as a regular ``pip install`` does.

    An editable install leaves compilation to the first import, and with
    ``PYTHONDONTWRITEBYTECODE`` set (as on this machine) every run would compile the package
    again (~25 ms): a cost users of an installed vault never pay. Compiling once up front
    times the CLI as installed.
    """
    found = subprocess.run(
        [sys.executable, "-c", "import vault; print(vault.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(found).parent)],
        check=True,
        capture_output=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )


def vault_source() -> dict[str, Any]:
    """Say which vault code the subprocesses run.

    Returns:
        The imported package's directory, and when it lies in a git work tree,
        the commit checked out and whether ``vault/`` has uncommitted changes.
    """
    found = subprocess.run(
        [sys.executable, "-c", "import vault; print(vault.__file__, vault.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    package = Path(found[0]).parent
    info: dict[str, Any] = {"package": str(package), "version": found[1]}

    def git(*args: str) -> str | None:
        res = subprocess.run(
            ["git", "-C", str(package), *args], capture_output=True, text=True, check=False
        )
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit:
        info["git_commit"] = commit
        info["git_dirty"] = bool(git("status", "--porcelain", "--", "."))
    return info


def machine_info(workdir: Path) -> dict[str, Any]:
    """Describe the machine the benchmark ran on.

    Args:
        workdir: Directory whose file system is benchmarked.

    Returns:
        CPU model and count, memory, Python version and the file system of
        ``workdir``.
    """
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    df = subprocess.run(
        ["df", "-hT", str(workdir)], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "memory_bytes": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "filesystem": df,
    }


# --------------------------------------------------------------------------
# Phases
# --------------------------------------------------------------------------


def bench_cp(versions: list[Path], root: Path, drop: bool) -> tuple[Phase, Phase, int]:
    """Measure ``cp -r`` as the baseline.

    Args:
        versions: Version directories in commit order.
        root: Empty directory for the copies.
        drop: Whether to drop the page cache before each phase.

    Returns:
        The commit-equivalent phase, the restore phase, and the bytes the
        copies occupy (apparent size).
    """
    store = root / "versions"
    store.mkdir(parents=True)
    logical = sum(tree_bytes(v)[0] for v in versions)
    if drop:
        drop_caches()
    runs = []
    start = time.perf_counter()
    for n, src in enumerate(versions, start=1):
        runs.append(run(["cp", "-r", str(src), str(store / f"{n:03d}")]))
    commit = Phase(logical, time.perf_counter() - start, timed_sync(), runs)
    stored = tree_bytes(store)[0]

    restore_dir = root / "restore"
    restore_dir.mkdir()
    sources = [store / f"{n:03d}" for n in CHECKOUT_VERSIONS]
    if drop:
        drop_caches()
    runs = []
    start = time.perf_counter()
    for src in sources:
        runs.append(run(["cp", "-r", str(src), str(restore_dir / src.name)]))
    restore_bytes = sum(tree_bytes(s)[0] for s in sources)
    restore = Phase(restore_bytes, time.perf_counter() - start, timed_sync(), runs)
    return commit, restore, stored


def bench_vault(
    versions: list[Path], root: Path, drop: bool
) -> tuple[Phase, Phase, dict[str, Any], list[dict[str, Any]], str]:
    """Measure vault: init, 14 commits, then two checkouts, verified.

    Args:
        versions: Version directories in commit order.
        root: Empty directory for the repository and the checkouts.
        drop: Whether to drop the page cache before each phase.

    Returns:
        The commit phase, the checkout phase, ``vault stats --json``, the
        ``commit --json`` results in order, and the human ``vault stats``
        output.

    Raises:
        RuntimeError: If a checked-out tree differs from its source.
    """
    vault = vault_argv()
    repo = root / "repo"
    base = [*vault, "--repo", str(repo)]
    run([*base, "init"])
    logical = sum(tree_bytes(v)[0] for v in versions)
    if drop:
        drop_caches()
    runs = []
    start = time.perf_counter()
    for src in versions:
        runs.append(run([*base, "commit", str(src), "-m", src.name, "--json"]))
    commit = Phase(logical, time.perf_counter() - start, timed_sync(), runs)
    results = [json.loads(r.stdout) for r in runs]

    out = root / "checkout"
    out.mkdir()
    targets = [(f"v{n:03d}", versions[n - 1]) for n in CHECKOUT_VERSIONS]
    if drop:
        drop_caches()
    runs = []
    start = time.perf_counter()
    for rev, _ in targets:
        runs.append(run([*base, "checkout", rev, str(out / rev), "--json"]))
    restore_bytes = sum(json.loads(r.stdout)["bytes"] for r in runs)
    checkout = Phase(restore_bytes, time.perf_counter() - start, timed_sync(), runs)

    for rev, src in targets:
        problems = same_tree(src, out / rev)
        if problems:
            raise RuntimeError(f"checkout of {rev} differs from {src}: {problems[:10]}")

    stats = json.loads(run([*base, "stats", "--json"]).stdout)
    stats_text = run([*base, "stats"]).stdout
    return commit, checkout, stats, results, stats_text


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def table(rows: list[list[str]]) -> str:
    """Format rows as a Markdown table; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(rows[0]), rule, *(line(r) for r in rows[1:])])


def report(figures: dict[str, Any]) -> str:
    """Render the summary and per-version tables.

    Args:
        figures: The dictionary written by ``--json``.

    Returns:
        Markdown text.
    """
    cp, va = figures["cp"], figures["vault"]
    logical = figures["logical_bytes"]

    def row(name: str, tool: dict[str, Any], synced: bool = False) -> list[str]:
        key = "mb_per_s_synced" if synced else "mb_per_s"
        rss = max(tool["commit"]["peak_rss_bytes"], tool["checkout"]["peak_rss_bytes"])
        return [
            name,
            f"{tool['commit'][key]:.1f}",
            f"{tool['checkout'][key]:.1f}",
            f"{tool['stored_bytes'] / logical:.3f}",
            f"{rss / MB:.1f}",
        ]

    head = ["tool", "commit MB/s", "checkout MB/s", "stored/logical", "peak RSS (MB)"]
    summary = table(
        [head, row("cp -r", cp), row("cp -r + sync", cp, synced=True), row("vault", va)]
    )
    ratios = figures["ratios"]
    lines = [
        summary,
        "",
        f"vault/cp commit   {ratios['commit']:.2f}x  (vs cp -r + sync: "
        f"{ratios['commit_synced']:.2f}x)",
        f"vault/cp checkout {ratios['checkout']:.2f}x  (vs cp -r + sync: "
        f"{ratios['checkout_synced']:.2f}x)",
        "",
    ]
    detail = [["version", "source", "logical MB", "s", "MB/s", "new MB", "stored MB", "RSS MB"]]
    for n, (v, res, r) in enumerate(
        zip(figures["versions"], va["commits"], va["commit"]["runs"], strict=True), start=1
    ):
        detail.append(
            [
                f"v{n:03d}",
                v["name"],
                f"{v['bytes'] / MB:.1f}",
                f"{r['seconds']:.2f}",
                f"{v['bytes'] / MB / r['seconds']:.1f}",
                f"{res['new_bytes'] / MB:.1f}",
                f"{res['stored_bytes'] / MB:.1f}",
                f"{r['max_rss_bytes'] / MB:.1f}",
            ]
        )
    lines += ["vault commit, per version:", "", table(detail), ""]
    co = [["checkout", "MB", "s", "MB/s", "RSS MB"]]
    for r in va["checkout"]["runs"]:
        rev = r["argv"][r["argv"].index("checkout") + 1]
        nbytes = figures["versions"][int(rev[1:]) - 1]["bytes"]
        co.append(
            [
                rev,
                f"{nbytes / MB:.1f}",
                f"{r['seconds']:.2f}",
                f"{nbytes / MB / r['seconds']:.1f}",
                f"{r['max_rss_bytes'] / MB:.1f}",
            ]
        )
    lines += [table(co), ""]
    return "\n".join(lines)


def prepare_series(root: Path, scale: float, seed: int) -> tuple[dict, list[Path], int, float]:
    """Enter an empty ``root/cwd`` and generate the series under ``root/series``.

    Commands then run from an empty directory: with ``python -c`` or ``python -m`` the current
    directory comes first on sys.path and could shadow the vault under test.

    Returns:
        The generator's info, the version directories in commit order, their logical bytes,
        and the seconds the generation took.
    """
    (root / "cwd").mkdir()
    os.chdir(root / "cwd")
    print(f"workdir {root}", flush=True)
    start = time.perf_counter()
    info = generate(root / "series", scale=scale, seed=seed)
    versions = version_order(info)
    logical = info["total_bytes"]
    seconds = time.perf_counter() - start
    print(f"series: {len(versions)} versions, {logical / MB:.1f} MB in {seconds:.1f}s", flush=True)
    return info, versions, logical, seconds


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        Process exit status.
    """
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
    args = parser.parse_args(argv)
    if not args.scale > 0:
        parser.error("--scale must be positive")

    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    if args.json:
        args.json = args.json.resolve()
    root = Path(tempfile.mkdtemp(prefix="vault-bench-", dir=args.workdir)).resolve()
    here = os.getcwd()
    try:
        info, versions, logical, _ = prepare_series(root, args.scale, args.seed)
        compile_vault()
        print(f"vault: {vault_source()}", flush=True)

        drop = drop_caches()
        if not drop:
            print("note: cannot drop the page cache (not root?); caches stay warm", flush=True)

        print("cp -r ...", flush=True)
        cp_commit, cp_restore, cp_stored = bench_cp(versions, root / "cp", drop)
        print("vault ...", flush=True)
        va_commit, va_checkout, stats, commits, stats_text = bench_vault(
            versions, root / "vault", drop
        )
        objects_apparent, objects_allocated = tree_bytes(root / "vault" / "repo" / "objects")
        repo_apparent, _ = tree_bytes(root / "vault" / "repo")

        figures: dict[str, Any] = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "scale": args.scale,
            "seed": args.seed,
            "machine": machine_info(root),
            "vault_source": vault_source(),
            "page_cache_dropped": drop,
            "rss_method": "GNU time -f %M" if GNU_TIME else "os.wait4 ru_maxrss",
            "bench_process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            * 1024,
            "logical_bytes": logical,
            "versions": [{"name": v.name, "bytes": tree_bytes(v)[0]} for v in versions],
            "cp": {
                "commit": cp_commit.to_json(),
                "checkout": cp_restore.to_json(),
                "stored_bytes": cp_stored,
            },
            "vault": {
                "commit": va_commit.to_json(),
                "checkout": va_checkout.to_json(),
                "stored_bytes": objects_apparent,
                "objects_allocated_bytes": objects_allocated,
                "repo_bytes": repo_apparent,
                "stats": stats,
                "commits": commits,
            },
            "ratios": {
                "commit": va_commit.mb_per_s / cp_commit.mb_per_s,
                "checkout": va_checkout.mb_per_s / cp_restore.mb_per_s,
                "commit_synced": va_commit.mb_per_s / cp_commit.mb_per_s_synced,
                "checkout_synced": va_checkout.mb_per_s / cp_restore.mb_per_s_synced,
            },
        }
        print()
        print(report(figures))
        print("vault stats:")
        print(stats_text)
        if objects_apparent != stats["stored_bytes"]:
            print(
                f"note: objects/ holds {objects_apparent} bytes, "
                f"vault stats says {stats['stored_bytes']}"
            )
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
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
