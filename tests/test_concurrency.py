"""Concurrent writers: parallel ``vault commit`` processes on one repository, lock waits and lock
timeouts, and ``gc --grace 0s`` running in a loop beside commits.

Every process is a real ``sys.executable -m vault`` subprocess.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pytest
from faultkit import (
    assert_checkout_matches,
    assert_clean_error,
    assert_linear,
    assert_verify_ok,
    held_flock,
    log_json,
    object_files,
    ok,
    popen_vault,
    reachable_ids,
    release_later,
    run_vault,
    snapshot,
    vault_env,
    write_model_dir,
)

from vault.backend import LocalBackend
from vault.leases import EXCLUSIVE, SHARED, Leases
from vault.refs import RefStore


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one version, v001."""
    root = tmp_path / "repo"
    ok(run_vault(root, "init"))
    ok(run_vault(root, "commit", str(write_model_dir(tmp_path / "base", 0)), "-m", "base"))
    return root


def _reflog(repo: Path) -> list[dict]:
    return [asdict(e) for e in RefStore(LocalBackend(repo)).reflog()]


@contextmanager
def held_lease(repo: Path, kind: str) -> Iterator[None]:
    """Hold a repository lock of ``kind`` from this (live) test process."""
    with Leases(LocalBackend(repo)).hold(kind):
        yield


def _run_parallel_commits(repo: Path, tmp_path: Path, n: int, *, pile_up: bool) -> None:
    sources = [write_model_dir(tmp_path / f"src{i}", 100 + i, keep_shards=1) for i in range(n)]
    snaps = {str(src): snapshot(src) for src in sources}
    before = log_json(repo)

    def start_all() -> list:
        return [
            popen_vault(repo, "commit", str(src), "-m", f"writer {i}", "--json")
            for i, src in enumerate(sources)
        ]

    if pile_up:
        # Every writer stores its objects, then queues on the refs lock; all race at release.
        with held_flock(repo / "locks" / "refs.lock"):
            procs = start_all()
            time.sleep(1.0)
            assert all(p.poll() is None for p in procs), "a commit finished under a held lock"
    else:
        procs = start_all()
    results = {}
    for src, proc in zip(sources, procs, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"writer {src.name} failed:\n{err}"
        results[str(src)] = json.loads(out)

    names = sorted(r["version"] for r in results.values())
    expected_names = [f"v{i:03d}" for i in range(len(before) + 1, len(before) + n + 1)]
    assert names == expected_names  # distinct and sequential, none skipped

    entries = log_json(repo)
    assert len(entries) == len(before) + n
    assert_linear(entries)
    by_name = {e["version"]: e for e in entries}
    for src, r in results.items():
        assert by_name[r["version"]]["id"] == r["id"]
        assert r["parents"] == by_name[r["version"]]["parents"]  # the parent it reported is real
        assert_checkout_matches(repo, r["version"], snaps[src], tmp_path / f"co-{r['version']}")

    # The reflog records the moves of latest as one chain.
    latest_moves = [e for e in _reflog(repo) if e["ref"] == "latest"]
    for prev, cur in zip(latest_moves, latest_moves[1:], strict=False):
        assert cur["old"] == prev["new"]
    assert latest_moves[-1]["new"] == entries[0]["id"]
    assert_verify_ok(repo)


@pytest.mark.parametrize("n", [2, 4])
def test_parallel_commits_make_a_linear_history(repo: Path, tmp_path: Path, n: int) -> None:
    _run_parallel_commits(repo, tmp_path, n, pile_up=False)


@pytest.mark.parametrize("n", [2, 4])
def test_parallel_commits_queued_on_the_refs_lock(repo: Path, tmp_path: Path, n: int) -> None:
    _run_parallel_commits(repo, tmp_path, n, pile_up=True)


def test_commit_waits_for_a_held_refs_lock(repo: Path, tmp_path: Path) -> None:
    src = write_model_dir(tmp_path / "src", 7)
    released, thread = release_later(repo / "locks" / "refs.lock", 1.0)
    t0 = time.monotonic()
    proc = ok(run_vault(repo, "commit", str(src), "-m", "patient"))
    elapsed = time.monotonic() - t0
    thread.join()
    assert released.is_set()
    assert elapsed >= 0.9, f"commit finished in {elapsed:.2f}s while the lock was held for 1s"
    assert proc.stdout.startswith("v002 ")
    entries = log_json(repo)
    assert_linear(entries)
    assert_checkout_matches(repo, "v002", snapshot(src), tmp_path / "co")


@pytest.mark.parametrize("lock", ["refs.lock", "exclusive"])
def test_commit_times_out_on_a_held_lock(repo: Path, tmp_path: Path, lock: str) -> None:
    """A commit waits for the directory's CAS lock (refs.lock) and for gc's exclusive lease."""
    src = write_model_dir(tmp_path / "src", 8)
    before = log_json(repo)
    held = held_flock(repo / "locks" / lock) if lock == "refs.lock" else held_lease(repo, EXCLUSIVE)
    with held:
        t0 = time.monotonic()
        proc = run_vault(
            repo, "commit", str(src), "-m", "impatient", env=vault_env(VAULT_LOCK_TIMEOUT="0.5")
        )
        elapsed = time.monotonic() - t0
    line = assert_clean_error(proc, "timed out", lock)
    assert "0.5" in line
    assert elapsed < 10
    assert log_json(repo) == before
    assert_verify_ok(repo)
    # What the failed commit stored is garbage; the retry succeeds.
    ok(run_vault(repo, "gc", "--grace", "0s"))
    assert set(object_files(repo)) == reachable_ids(repo)
    assert not any((repo / "tmp").iterdir())
    ok(run_vault(repo, "commit", str(src), "-m", "retry"))
    assert_checkout_matches(repo, "v002", snapshot(src), tmp_path / "co")


def test_gc_timeout_while_a_writer_holds_a_shared_lease(repo: Path) -> None:
    objects = set(object_files(repo))
    with held_lease(repo, SHARED):
        proc = run_vault(repo, "gc", "--grace", "0s", env=vault_env(VAULT_LOCK_TIMEOUT="0.5"))
    assert_clean_error(proc, "timed out", "shared")
    assert set(object_files(repo)) == objects


class _GcLoop:
    """``vault gc --grace 0s`` over and over on a thread until stopped."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.runs = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            proc = run_vault(self.repo, "gc", "--grace", "0s")
            self.runs += 1
            if proc.returncode != 0:
                self.failures.append(proc.stderr)

    def __enter__(self) -> _GcLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


def test_gc_loop_beside_commits_never_deletes_what_a_commit_needs(
    repo: Path, tmp_path: Path
) -> None:
    sources = [write_model_dir(tmp_path / f"src{i}", 200 + i, keep_shards=1) for i in range(8)]
    snaps = [snapshot(s) for s in sources]
    # Make every future commit's objects exist already as garbage (commits killed before naming
    # their version): the real commits find them in the store while gc wants them gone.
    for src in sources:
        proc = run_vault(
            repo,
            "commit",
            str(src),
            "-m",
            "never named",
            env=vault_env(VAULT_CRASHPOINT="version-written"),
        )
        assert proc.returncode == -9, proc.stderr
    assert set(object_files(repo)) > reachable_ids(repo)

    committed = []
    with _GcLoop(repo) as loop:
        for i in range(0, len(sources), 2):
            # Two writers at a time, gc in between and around them.
            procs = [
                popen_vault(repo, "commit", str(src), "-m", f"with gc {j}", "--json")
                for j, src in enumerate(sources[i : i + 2], start=i)
            ]
            for j, proc in enumerate(procs, start=i):
                out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, err
                committed.append((json.loads(out)["version"], snaps[j]))
            # Check out the newest version while gc keeps running.
            name, snap = committed[-1]
            dest = tmp_path / f"during-{name}"
            assert_checkout_matches(repo, name, snap, dest)
            shutil.rmtree(dest)
        time.sleep(0.3)
    assert loop.runs >= 3, f"gc ran only {loop.runs} times"
    assert loop.failures == []

    entries = log_json(repo)
    assert_linear(entries)
    assert len(entries) == 1 + len(sources)
    assert_verify_ok(repo)
    for name, snap in committed:
        assert_checkout_matches(repo, name, snap, tmp_path / f"after-{name}")
    ok(run_vault(repo, "gc", "--grace", "0s"))
    assert set(object_files(repo)) == reachable_ids(repo)
