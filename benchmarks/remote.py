"""The remote rows of ``compare.py``: vault against restic's S3 backend, on one local SeaweedFS.

One ``weed server`` (see ``seaweed_server.py``) runs on loopback for the phase, with two
buckets: :data:`VAULT_BUCKET` for vault, :data:`RESTIC_BUCKET` for restic. Both tools get the
server's one identity through ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``. Each command
runs as its own process under GNU ``time`` (see ``run.run``), and is measured so:

* **commit + push**: for each of the 14 versions, ``vault commit`` then ``vault push`` (what a
  user who publishes every version does), timed as the sum over all versions; against one
  ``restic -r s3:ENDPOINT/BUCKET backup DIR`` per version. The series is read once and the page
  cache dropped before each tool, as in the local phase.
* **clone + checkout**: ``vault clone URL DEST`` then ``vault --repo DEST/.vault checkout v014
  OUT``, timed together after a page-cache drop; against ``restic restore SNAPSHOT --target
  OUT`` with an empty ``--cache-dir`` (a machine that never saw the repository, as a clone is).
  Both restored trees are then compared byte for byte with the source (not timed).
* **bytes on the remote**: the sum of the object sizes in each bucket (``list_objects_v2``), and
  the number of keys.
* **unchanged re-push**: ``vault push`` right after the last push, median of
  :data:`REPUSH_REPEATS` runs (warm cache, nothing to send).
* **peak RSS**: the largest of any vault commit, push, clone or checkout process.
* **commit + push in one process**: the same 14 commits and pushes through the Python API in
  one process (``Repository.commit`` then ``Repository.push`` per version, as a training
  callback or ``vault watch --push`` runs them), to another prefix of the same server: R1
  without an interpreter, vault and boto3 started twice per version. Not the issue's measure.
* **the wire's floor**: boto3 alone (no vault code), :data:`FLOOR_THREADS` threads, moving
  the very objects vault's push left on the remote: a GET of every one of them, then a PUT of
  every one into a scratch bucket. No client that copies these bytes over this server can
  clone faster than the GET, nor push them faster than the PUT; the report turns both into
  the best ratio against restic each target could reach.

The server shares the machine's cores with the client, which both tools pay alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import seaweed_server
from run import MB, Run, drop_caches, read_trees, same_tree, table, timed_sync, tree_bytes
from run import run as run_command

VAULT_BUCKET = "vault-bench"
RESTIC_BUCKET = "restic-bench"
VAULT_PREFIX = "series"
"""Where vault's remote repository lives: ``s3://VAULT_BUCKET/VAULT_PREFIX``."""

RESTIC_PASSWORD = "vault-bench"
"""Password of the throw-away restic repository (restic has no unencrypted mode)."""

RESTORED_VERSION = 14
"""The version cloned and checked out, or restored: the last merged model."""

REPUSH_REPEATS = 5
"""Runs of the unchanged re-push (the median is reported)."""

FLOOR_BUCKET = "floor-bench"
"""Scratch bucket the wire's floor PUTs vault's objects into."""

FLOOR_THREADS = 16
"""Requests in flight for the wire's floor: vault's default parallelism."""


@contextlib.contextmanager
def server_identity() -> Iterator[None]:
    """Give every process started in the block the server's identity, and none of the
    machine's own AWS settings; restore the environment afterwards."""
    saved = dict(os.environ)
    for name in seaweed_server.CLEARED_ENV:
        os.environ.pop(name, None)
    os.environ.update(seaweed_server.client_env())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def read_cold(versions: list[Path], drop: bool) -> float:
    """Read the series once between two page-cache drops, as the local phase does before each
    tool; return the read speed in MB/s (an indicator of the disk's state)."""
    if drop:
        drop_caches()
    total, seconds = read_trees(versions)
    if drop:
        drop_caches()
    return total / MB / seconds


def snapshot_id(stdout: str, src: Path) -> str:
    """The snapshot id in the summary line of ``restic backup --json``'s output.

    Raises:
        RuntimeError: There is none.
    """
    for line in stdout.splitlines():
        with contextlib.suppress(ValueError):
            msg = json.loads(line)
            if isinstance(msg, dict) and msg.get("message_type") == "summary":
                return str(msg["snapshot_id"])
    raise RuntimeError(f"restic backup of {src} printed no snapshot id")


def runs_json(runs: list[Run]) -> list[dict[str, Any]]:
    """The runs' command lines, times and peak RSS, JSON-ready."""
    return [
        {
            "argv": r.argv,
            "seconds": r.seconds,
            "max_rss_bytes": r.max_rss,
            "cpu_seconds": r.cpu_seconds,
        }
        for r in runs
    ]


def cpu_json(
    runs: list[Run], server: seaweed_server.SeaweedServer, server_from: float
) -> dict[str, float]:
    """CPU seconds of the client commands and of the server since ``server_from``: on a machine
    where both share the cores, their sum over the core count is a floor under the wall time."""
    client = sum(r.cpu_seconds for r in runs)
    return {"client": client, "server": server.cpu_seconds() - server_from}


def bench_vault(
    root: Path,
    server: seaweed_server.SeaweedServer,
    vault: list[str],
    versions: list[Path],
    drop: bool,
) -> dict[str, Any]:
    """Commit and push every version, re-push unchanged, then clone and check out v014.

    Args:
        root: Empty directory for the local repository, the clone and the checkout.
        server: The running server; :data:`VAULT_BUCKET` exists on it.
        vault: The command that runs the vault CLI.
        versions: Version directories in commit order.
        drop: Whether to drop the page cache before the timed phases.

    Returns:
        The figures (see :func:`bench_remote`).

    Raises:
        RuntimeError: A command failed, or the checked-out tree differs from its source.
    """
    url = f"s3://{VAULT_BUCKET}/{VAULT_PREFIX}"
    repo = root / "repo"
    base = [*vault, "--repo", str(repo)]
    run_command([*base, "init"])
    run_command([*base, "remote", "add", "origin", url, "--endpoint-url", server.endpoint])
    out: dict[str, Any] = {"url": url, "series_read_mb_per_s": read_cold(versions, drop)}

    commits: list[Run] = []
    pushes: list[Run] = []
    seconds = 0.0
    server_cpu = server.cpu_seconds()
    for src in versions:
        start = time.perf_counter()
        commits.append(run_command([*base, "commit", str(src), "-m", src.name, "--json"]))
        pushes.append(run_command([*base, "push", "--json"]))
        seconds += time.perf_counter() - start
    out["commit_push"] = {
        "seconds": seconds,
        "commit_seconds": sum(r.seconds for r in commits),
        "push_seconds": sum(r.seconds for r in pushes),
        "sync_seconds": timed_sync(),
        "commits": runs_json(commits),
        "pushes": runs_json(pushes),
        "push_results": [json.loads(r.stdout) for r in pushes],
        "cpu_seconds": cpu_json([*commits, *pushes], server, server_cpu),
    }

    repush = [run_command([*base, "push", "--json"]) for _ in range(REPUSH_REPEATS)]
    out["repush"] = {
        "median": statistics.median(r.seconds for r in repush),
        "runs": runs_json(repush),
        "results": [json.loads(r.stdout) for r in repush],
    }
    out["remote_bytes"], out["remote_keys"] = server.bucket_usage(VAULT_BUCKET)
    out["local_objects_bytes"] = tree_bytes(repo / "objects")[0]

    src = versions[RESTORED_VERSION - 1]
    dest, checkout = root / "clone", root / "checkout"
    if drop:
        drop_caches()
    server_cpu = server.cpu_seconds()
    start = time.perf_counter()
    clone = run_command(
        [*vault, "clone", url, str(dest), "--endpoint-url", server.endpoint, "--json"]
    )
    check = run_command(
        [
            *vault,
            "--repo",
            str(dest / ".vault"),
            "checkout",
            f"v{RESTORED_VERSION:03d}",
            str(checkout),
            "--json",
        ]
    )
    seconds = time.perf_counter() - start
    out["clone_checkout"] = {
        "seconds": seconds,
        "bytes": tree_bytes(src)[0],
        "sync_seconds": timed_sync(),
        "clone_result": json.loads(clone.stdout),
        "runs": runs_json([clone, check]),
        "cpu_seconds": cpu_json([clone, check], server, server_cpu),
    }
    problems = same_tree(src, checkout)
    if problems:
        raise RuntimeError(f"vault clone + checkout of v{RESTORED_VERSION:03d}: {problems[:10]}")
    # The same version straight from the remote, without a clone: what restic restore does.
    direct_out = root / "direct"
    if drop:
        drop_caches()
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint
    server_cpu = server.cpu_seconds()
    try:
        direct = run_command(
            [*vault, "--repo", url, "checkout", f"v{RESTORED_VERSION:03d}", str(direct_out)]
        )
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
    out["direct_checkout"] = {
        "seconds": direct.seconds,
        "runs": runs_json([direct]),
        "cpu_seconds": cpu_json([direct], server, server_cpu),
    }
    problems = same_tree(src, direct_out)
    if problems:
        raise RuntimeError(f"vault --repo s3:// checkout v{RESTORED_VERSION:03d}: {problems[:10]}")
    every = [*commits, *pushes, *repush, clone, check, direct]
    out["peak_rss_bytes"] = max(r.max_rss for r in every)
    return out


def bench_restic(
    root: Path, server: seaweed_server.SeaweedServer, versions: list[Path], drop: bool
) -> dict[str, Any]:
    """``restic backup`` every version to S3, then ``restic restore`` version 14.

    Args:
        root: Empty directory for restic's caches and the restored tree.
        server: The running server; :data:`RESTIC_BUCKET` exists on it.
        versions: Version directories in commit order.
        drop: Whether to drop the page cache before the timed phases.

    Returns:
        The figures (see :func:`bench_remote`).

    Raises:
        RuntimeError: A command failed, a backup printed no snapshot id, or the restored tree
            differs from its source.
    """
    repo = f"s3:{server.endpoint}/{RESTIC_BUCKET}"
    os.environ["RESTIC_PASSWORD"] = RESTIC_PASSWORD
    base = ["restic", "-r", repo, "--cache-dir", str(root / "cache")]
    run_command([*base, "init", "--repository-version", "2"])
    out: dict[str, Any] = {"repository": repo, "series_read_mb_per_s": read_cold(versions, drop)}

    backups: list[Run] = []
    snapshots: dict[int, str] = {}
    seconds = 0.0
    server_cpu = server.cpu_seconds()
    for n, src in enumerate(versions, start=1):
        argv = [*base, "backup", "--json", "--host", "vault-bench", "--tag", f"v{n:03d}", str(src)]
        start = time.perf_counter()
        backups.append(run_command(argv))
        seconds += time.perf_counter() - start
        snapshots[n] = snapshot_id(backups[-1].stdout, src)
    out["backup"] = {
        "seconds": seconds,
        "sync_seconds": timed_sync(),
        "runs": runs_json(backups),
        "snapshots": snapshots,
        "cpu_seconds": cpu_json(backups, server, server_cpu),
    }
    out["remote_bytes"], out["remote_keys"] = server.bucket_usage(RESTIC_BUCKET)
    out["cache_bytes"] = tree_bytes(root / "cache")[0]

    src = versions[RESTORED_VERSION - 1]
    target = root / "restore"
    fresh = ["restic", "-r", repo, "--cache-dir", str(root / "cache-restore")]
    if drop:
        drop_caches()
    server_cpu = server.cpu_seconds()
    start = time.perf_counter()
    restore = run_command([*fresh, "restore", snapshots[RESTORED_VERSION], "--target", str(target)])
    seconds = time.perf_counter() - start
    out["restore"] = {
        "seconds": seconds,
        "bytes": tree_bytes(src)[0],
        "sync_seconds": timed_sync(),
        "runs": runs_json([restore]),
        "cpu_seconds": cpu_json([restore], server, server_cpu),
    }
    problems = same_tree(src, target / src.relative_to(src.anchor))
    if problems:
        raise RuntimeError(f"restic restore of version {RESTORED_VERSION}: {problems[:10]}")
    out["peak_rss_bytes"] = max(r.max_rss for r in [*backups, restore])
    return out


ONE_PROCESS = """
import json, sys, time
from pathlib import Path
start = time.perf_counter()
from vault import Repository
repo_dir, url, endpoint, *versions = sys.argv[1:]
repo = Repository.init(repo_dir)
repo.remote_add("origin", url, endpoint_url=endpoint)
pushed = []
for src in versions:
    repo.commit(src, Path(src).name)
    pushed.append(repo.push("origin").bytes)
print(json.dumps({"seconds": time.perf_counter() - start, "pushed_bytes": pushed}))
"""
"""The one-process commit + push: argv REPO URL ENDPOINT VERSION..."""


def one_process(
    root: Path, server: seaweed_server.SeaweedServer, versions: list[Path], drop: bool
) -> dict[str, Any]:
    """Commit and push every version from one Python process (see :data:`ONE_PROCESS`).

    Returns:
        ``{"seconds", "max_rss_bytes", "pushed_bytes", "cpu_seconds"}``; ``seconds`` is the
        whole process.
    """
    if drop:
        drop_caches()
    url = f"s3://{VAULT_BUCKET}/{VAULT_PREFIX}-one-process"
    argv = [sys.executable, "-c", ONE_PROCESS, str(root / "one-process"), url, server.endpoint]
    server_cpu = server.cpu_seconds()
    start = time.perf_counter()
    done = run_command([*argv, *map(str, versions)])
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "max_rss_bytes": done.max_rss,
        "pushed_bytes": json.loads(done.stdout)["pushed_bytes"],
        "cpu_seconds": cpu_json([done], server, server_cpu),
    }


def wire_floor(server: seaweed_server.SeaweedServer, bucket: str, prefix: str) -> dict[str, Any]:
    """Time boto3 alone moving what is stored under ``bucket/prefix``: a GET of every object,
    then a PUT of every object into :data:`FLOOR_BUCKET`, :data:`FLOOR_THREADS` at a time.

    Returns:
        ``{"objects", "bytes", "get_seconds", "put_seconds"}``.
    """
    from concurrent.futures import ThreadPoolExecutor

    client = server.client(max_pool_connections=FLOOR_THREADS + 4)
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]
    client.create_bucket(Bucket=FLOOR_BUCKET)
    with ThreadPoolExecutor(FLOOR_THREADS) as pool:
        start = time.perf_counter()
        bodies = list(
            pool.map(lambda k: client.get_object(Bucket=bucket, Key=k)["Body"].read(), keys)
        )
        got = time.perf_counter() - start
        start = time.perf_counter()
        list(
            pool.map(
                lambda kb: client.put_object(Bucket=FLOOR_BUCKET, Key=kb[0], Body=kb[1]),
                zip(keys, bodies, strict=True),
            )
        )
        put = time.perf_counter() - start
    return {
        "objects": len(keys),
        "bytes": sum(len(b) for b in bodies),
        "get_seconds": got,
        "put_seconds": put,
    }


def weed_version() -> str | None:
    """``weed version``'s first line, or ``None``."""
    weed = seaweed_server.weed_binary()
    if weed is None:
        return None
    proc = subprocess.run([weed, "version"], capture_output=True, text=True, check=False)
    return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else None


def bench_remote(
    root: Path, vault: list[str], versions: list[Path], drop: bool, keep: bool = False
) -> dict[str, Any]:
    """Start SeaweedFS, measure restic then vault against it, and stop it.

    Args:
        root: Empty directory for the server's data and both tools' files.
        vault: The command that runs the vault CLI.
        versions: Version directories in commit order.
        drop: Whether to drop the page cache before the timed phases.
        keep: Keep the directories (the server is stopped either way).

    Returns:
        ``{"endpoint", "weed_version", "server_started_in", "load_average", "vault": {...},
        "restic": {...}, "floor": {...}}`` (``floor``: :func:`wire_floor`); ``load_average``
        holds the 1, 5 and 15 minute load averages at the start of the phase, after restic and
        at the end.
    """
    out: dict[str, Any] = {
        "weed_version": weed_version(),
        "load_average": {},
        "cores": os.cpu_count(),
    }
    out["load_average"]["start"] = os.getloadavg()
    with server_identity(), seaweed_server.start(root / "seaweedfs") as server:
        out["endpoint"] = server.endpoint
        out["server_started_in"] = server.started_in
        admin = server.client()
        for bucket in (VAULT_BUCKET, RESTIC_BUCKET):
            admin.create_bucket(Bucket=bucket)
        print(f"  SeaweedFS at {server.endpoint} (up in {server.started_in:.1f}s)", flush=True)
        print("  restic backup / restore on S3 ...", flush=True)
        out["restic"] = bench_restic(root / "restic", server, versions, drop)
        out["load_average"]["after_restic"] = os.getloadavg()
        if not keep:
            shutil.rmtree(root / "restic", ignore_errors=True)
        print("  vault commit + push / clone + checkout ...", flush=True)
        out["vault"] = bench_vault(root / "vault", server, vault, versions, drop)
        print("  the wire's floor: boto3 GET and PUT of vault's objects ...", flush=True)
        out["floor"] = wire_floor(server, VAULT_BUCKET, VAULT_PREFIX + "/")
        print("  vault commit + push in one process ...", flush=True)
        out["one_process"] = one_process(root / "vault", server, versions, drop)
        out["load_average"]["end"] = os.getloadavg()
        if not keep:
            shutil.rmtree(root / "vault", ignore_errors=True)
    return out


def report(remote: dict[str, Any]) -> str:
    """The remote figures as Markdown tables: totals side by side, then per version."""
    va, rs = remote["vault"], remote["restic"]

    def row(label: str, v: float, r: float, fmt: str) -> list[str]:
        return [label, format(v, fmt), format(r, fmt), f"{r / v:.2f}" if v else "-"]

    rows = [
        ["remote (SeaweedFS on loopback)", "vault", "restic", "restic / vault"],
        row(
            "commit + push of the 14 versions / backup, s",
            va["commit_push"]["seconds"],
            rs["backup"]["seconds"],
            ".2f",
        ),
        row(
            f"clone + checkout v{RESTORED_VERSION:03d} / restore, s",
            va["clone_checkout"]["seconds"],
            rs["restore"]["seconds"],
            ".2f",
        ),
        row(
            f"--repo s3:// checkout v{RESTORED_VERSION:03d} (no clone) / restore, s",
            va["direct_checkout"]["seconds"],
            rs["restore"]["seconds"],
            ".2f",
        ),
        row("bytes on the remote, MB", va["remote_bytes"] / MB, rs["remote_bytes"] / MB, ".1f"),
        row("keys on the remote", va["remote_keys"], rs["remote_keys"], "d"),
        row("peak RSS, MB", va["peak_rss_bytes"] / MB, rs["peak_rss_bytes"] / MB, ".1f"),
        [
            "unchanged re-push, median s",
            f"{va['repush']['median']:.3f}",
            "",
            " ".join(f"{r['seconds']:.3f}" for r in va["repush"]["runs"]),
        ],
    ]
    per = [["version", "vault commit s", "vault push s", "pushed MB", "restic backup s"]]
    cp = va["commit_push"]
    for i, (c, p, res, b) in enumerate(
        zip(cp["commits"], cp["pushes"], cp["push_results"], rs["backup"]["runs"], strict=True)
    ):
        per.append(
            [
                f"v{i + 1:03d}",
                f"{c['seconds']:.2f}",
                f"{p['seconds']:.2f}",
                f"{res['bytes'] / MB:.1f}",
                f"{b['seconds']:.2f}",
            ]
        )
    floor = remote.get("floor")
    one = remote.get("one_process")
    if one:
        rows.append(
            row(
                "commit + push of the 14 versions in one process / backup, s",
                one["seconds"],
                rs["backup"]["seconds"],
                ".2f",
            )
        )
    if floor:
        rows += [
            [
                f"floor: boto3 GET of vault's {floor['objects']} objects, s",
                f"{floor['get_seconds']:.2f}",
                "",
                f"best R2 with a full clone {rs['restore']['seconds'] / floor['get_seconds']:.2f}",
            ],
            [
                "floor: boto3 PUT of the same, s",
                f"{floor['put_seconds']:.2f}",
                "",
                f"best R1 {rs['backup']['seconds'] / floor['put_seconds']:.2f}",
            ],
        ]
    cc = va["clone_checkout"]["runs"]
    load = remote["load_average"]
    lines = [table(rows), ""]
    cpu = cpu_rows(remote)
    if cpu:
        lines += [table(cpu), ""]
    lines += [
        f"clone {cc[0]['seconds']:.2f} s + checkout {cc[1]['seconds']:.2f} s; "
        f"{remote.get('weed_version') or 'weed'} at {remote['endpoint']}; load average "
        + ", ".join(f"{k} {' '.join(f'{x:.2f}' for x in v)}" for k, v in load.items()),
        "",
        "commit + push per version (one process each):",
        "",
        table(per),
        "",
    ]
    return "\n".join(lines)


def cpu_rows(remote: dict[str, Any]) -> list[list[str]]:
    """CPU seconds of client and server per compared phase, and the best ratio they allow:
    the server shares the machine's cores, so vault's wall time cannot fall below its client's
    and the server's CPU over the core count. Empty for results recorded without CPU times."""
    va, rs = remote["vault"], remote["restic"]
    cores = remote.get("cores") or os.cpu_count() or 1
    pairs = [
        ("commit + push / backup", va["commit_push"], rs["backup"]),
        ("commit + push in one process / backup", remote.get("one_process") or {}, rs["backup"]),
        ("clone + checkout / restore", va["clone_checkout"], rs["restore"]),
        ("--repo s3:// checkout / restore", va["direct_checkout"], rs["restore"]),
    ]
    if any("cpu_seconds" not in v or "cpu_seconds" not in r for _, v, r in pairs):
        return []
    rows = [
        [
            f"CPU s, client + server ({cores} cores)",
            "vault",
            "restic",
            "vault's wall floor s",
            "best restic / vault",
        ]
    ]
    for label, v, r in pairs:
        vc, rc = v["cpu_seconds"], r["cpu_seconds"]
        floor = (vc["client"] + vc["server"]) / cores
        rows.append(
            [
                label,
                f"{vc['client']:.2f} + {vc['server']:.2f}",
                f"{rc['client']:.2f} + {rc['server']:.2f}",
                f"{floor:.2f}",
                f"{r['seconds'] / floor:.2f}" if floor else "-",
            ]
        )
    return rows
