"""Crash safety: ``vault commit`` and ``vault gc`` killed with SIGKILL, at random instants and at
the deterministic crash points of :mod:`vault.faults`.

After every kill: ``vault verify`` exits 0, ``vault log`` works and the history is linear, every
earlier version checks out byte-identical, and re-running the killed command succeeds. Whatever
the killed process left behind is garbage that ``gc --grace 0s`` removes completely.

``VAULT_CRASH_TRIALS`` (default 30) sets the number of random-kill trials per command;
``VAULT_CRASH_SEED`` replays a failing run (the seed is printed in every failure).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultkit import (
    Snapshot,
    assert_checkout_matches,
    assert_linear,
    assert_verify_ok,
    debris,
    log_json,
    object_files,
    ok,
    plant_garbage,
    popen_vault,
    reachable_ids,
    run_vault,
    snapshot,
    vault_env,
    write_checkpoint,
    write_model_dir,
)

from tests.conftest import tree_bytes
from vault import Repository
from vault.backend import LocalBackend
from vault.refs import LATEST, VERSIONS, RefStore

TRIALS = int(os.environ.get("VAULT_CRASH_TRIALS", "30"))
SEED = int(os.environ.get("VAULT_CRASH_SEED", str(random.randrange(1 << 31))))
KILLED = -signal.SIGKILL


class History:
    """The versions a repository must hold, oldest first, with the content of each."""

    def __init__(self, repo: Path, work: Path) -> None:
        self.repo = repo
        self.work = work
        self.versions: list[tuple[str, Snapshot]] = []
        self._dests = 0

    def dest(self) -> Path:
        self._dests += 1
        return self.work / f"co{self._dests}"

    def commit(self, src: Path, message: str) -> None:
        """Commit ``src`` with no fault and record it (as a new version even when its files
        equal latest's: the history counts every commit)."""
        ok(run_vault(self.repo, "commit", str(src), "-m", message, "--allow-empty"))
        self.versions.append((f"v{len(self.versions) + 1:03d}", snapshot(src)))

    def check(self, rng: random.Random, *, sample: int | None = 2, log: bool = True) -> None:
        """Verify, log and check out ``sample`` versions (the newest, then random; None: all)."""
        assert_verify_ok(self.repo)
        if log:
            entries = log_json(self.repo)
            assert_linear(entries)
            assert len(entries) == len(self.versions), [e["version"] for e in entries]
        if sample is None:
            chosen = self.versions
        else:
            chosen = self.versions[-1:] + rng.sample(
                self.versions[:-1], min(sample - 1, len(self.versions) - 1)
            )
        for name, snap in chosen:
            dest = self.dest()
            assert_checkout_matches(self.repo, name, snap, dest)
            shutil.rmtree(dest)

    def settle(self, src_snapshot: Snapshot, *, published: bool | None) -> bool:
        """After a killed commit: accept its version if it was published (it must be whole).

        ``published``: whether the crash point guarantees the version is (True) or is not
        (False) named; ``None`` when either is possible. Returns whether it was.
        """
        entries = log_json(self.repo)
        assert_linear(entries)
        n = len(self.versions)
        assert len(entries) in (n, n + 1), f"{len(entries)} versions after a crash with {n}"
        landed = len(entries) == n + 1
        if published is not None:
            assert landed == published, f"version published: {landed}, expected {published}"
        if landed:
            name = f"v{n + 1:03d}"
            dest = self.dest()
            assert_checkout_matches(self.repo, name, src_snapshot, dest)
            shutil.rmtree(dest)
            self.versions.append((name, src_snapshot))
        return landed

    def assert_collected(self) -> None:
        """After ``gc --grace 0s``: only reachable objects, no temporary files anywhere."""
        assert debris(self.repo) == []
        assert set(object_files(self.repo)) == reachable_ids(self.repo)


def _context(trial: object) -> str:
    return f"(trial {trial}; replay with VAULT_CRASH_SEED={SEED})"


@pytest.fixture
def rng() -> random.Random:
    return random.Random(SEED)


@pytest.fixture
def history(tmp_path: Path) -> History:
    """A repository with two versions (the second shares a shard with the first)."""
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    h = History(repo, tmp_path)
    h.commit(write_model_dir(tmp_path / "base1", 1, keep_shards=1), "base 1")
    h.commit(write_model_dir(tmp_path / "base2", 2, keep_shards=1), "base 2")
    return h


# -- commit ----------------------------------------------------------------------------------

# (crash point, whether the new version must be named afterwards)
# A commit's first file is its lease (locks/shared-*.json): the points below count from there.
COMMIT_POINTS = [
    ("before-rename:1", False),  # the lease fsynced beside its name, not renamed
    ("before-rename:2", False),  # every chunk and manifest fsynced in tmp/, none renamed
    ("before-rename:3", False),  # the version object fsynced, not renamed
    ("after-rename:2", False),  # the version object renamed, its directory not fsynced
    ("object-written:2", False),  # first chunk renamed onto its key, directory not fsynced
    ("object-written:5", False),
    ("object-written:10", False),
    ("version-written", False),  # whole version durable, no ref names it
    ("refs-published", True),  # refs.json replaced, reflog not appended
    ("reflog-appended", True),  # everything written, lock still held
]


@pytest.mark.parametrize(("point", "published"), COMMIT_POINTS, ids=[p for p, _ in COMMIT_POINTS])
def test_commit_killed_at_crash_point(
    history: History, tmp_path: Path, rng: random.Random, point: str, published: bool
) -> None:
    src = write_model_dir(tmp_path / "new", 3, keep_shards=1)
    snap = snapshot(src)
    proc = run_vault(
        history.repo, "commit", str(src), "-m", "killed", env=vault_env(VAULT_CRASHPOINT=point)
    )
    assert proc.returncode == KILLED, f"crash point {point} not reached: {proc.stderr}"
    history.settle(snap, published=published)
    history.check(rng, sample=None)

    # Re-running the command succeeds and gives the content back.
    history.commit(src, "again")
    history.check(rng, sample=1)

    ok(run_vault(history.repo, "gc", "--grace", "0s"))
    history.assert_collected()
    history.check(rng, sample=None)


def test_commit_killed_before_refs_rename_leaves_collectable_temp(
    history: History, rng: random.Random, tmp_path: Path
) -> None:
    """Re-committing identical content writes its lease, one new object (the version), then
    refs.json: the third temp-file fsync is refs.json's, killed before its rename."""
    src = tmp_path / "base2"
    proc = run_vault(
        history.repo,
        "commit",
        str(src),
        "-m",
        "same again",
        "--allow-empty",  # without it the same files make no version: nothing to kill
        env=vault_env(VAULT_CRASHPOINT="before-rename:3"),
    )
    assert proc.returncode == KILLED, proc.stderr
    stale = [p for p in debris(history.repo) if "refs.json" in p.name]
    assert stale, "expected the refs.json temp file"
    history.settle(snapshot(src), published=False)
    history.check(rng, sample=None)
    ok(run_vault(history.repo, "gc", "--grace", "0s"))
    history.assert_collected()
    history.commit(src, "same again")
    history.check(rng, sample=None)


def test_torn_legacy_reflog_line(history: History, rng: random.Random, tmp_path: Path) -> None:
    """Format 2 appended to logs/reflog.jsonl, where a crash could leave a torn last line:
    readers skip it; new moves go to their own files, and gc still reads both."""
    legacy = history.repo / "logs" / "reflog.jsonl"
    legacy.write_bytes(b'{"time": "2026-01-01T00:00:00+00:00", "ref": "lat')
    history.commit(write_model_dir(tmp_path / "n", 4, keep_shards=1), "after a torn line")
    history.check(rng, sample=None)
    assert legacy.read_bytes().endswith(b'"lat')  # never written again
    moves = RefStore(LocalBackend(history.repo)).reflog()
    assert [m.ref for m in moves[-2:]] == ["versions/v003", "latest"]
    ok(run_vault(history.repo, "gc", "--grace", "1h"))  # gc reads the reflog
    history.check(rng, sample=1)


def _startup(repo: Path) -> float:
    """Seconds a vault process takes to start and read the refs (median of three)."""
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        ok(run_vault(repo, "log", "-n", "1"))
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def _kill_at_random(
    proc: subprocess.Popen[str],
    rng: random.Random,
    trial: int,
    total: float,
    work: float,
    started: Callable[[], bool],
) -> None:
    """SIGKILL ``proc`` at a random instant: on even trials up to ``total`` seconds after it was
    spawned, on odd ones up to ``work`` seconds after ``started()`` first holds (so that kills
    land in the middle of the work even where start-up time swamps it)."""
    if trial % 2:
        deadline = time.monotonic() + 30
        while not started() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, max(work, 0.02)))
    else:
        time.sleep(rng.uniform(0, 1.2 * total))
    proc.kill()
    proc.communicate()


def test_commit_killed_at_random_instants(
    history: History, tmp_path: Path, rng: random.Random
) -> None:
    repo = history.repo
    startup = _startup(repo)
    durations = []
    outcomes = {"before-first-write": 0, "mid-write": 0, "after-publish": 0, "finished": 0}
    for trial in range(TRIALS):
        try:
            src = write_model_dir(tmp_path / f"src{trial}", 1000 + trial, keep_shards=1)
            snap = snapshot(src)
            objects = len(object_files(repo))
            estimate = statistics.median(durations) if durations else startup + 0.2

            def started(objects: int = objects) -> bool:
                return any((repo / "tmp").iterdir()) or len(object_files(repo)) > objects

            proc = popen_vault(repo, "commit", str(src), "-m", f"trial {trial}")
            _kill_at_random(proc, rng, trial, estimate, estimate - startup, started)
            finished = proc.returncode == 0
            assert finished or proc.returncode == KILLED, proc.returncode
            landed = history.settle(snap, published=True if finished else None)
            if finished:
                outcomes["finished"] += 1
            elif landed:
                outcomes["after-publish"] += 1
            elif len(object_files(repo)) > objects or debris(repo):
                outcomes["mid-write"] += 1
            else:
                outcomes["before-first-write"] += 1
            history.check(rng, sample=2, log=False)
            t0 = time.monotonic()
            history.commit(src, f"trial {trial} again")
            durations.append(time.monotonic() - t0)
            shutil.rmtree(src)
        except AssertionError as exc:
            raise AssertionError(f"{exc} {_context(trial)}") from exc
    took = statistics.median(durations)
    print(f"start-up {startup:.2f}s, commit {took:.2f}s; outcomes {outcomes}")
    # The random instants must actually land inside commits, not all before or after them.
    if TRIALS >= 10:
        assert outcomes["mid-write"] > 0, outcomes

    ok(run_vault(repo, "gc", "--grace", "0s"))
    history.assert_collected()
    history.check(rng, sample=None)


# -- gc --------------------------------------------------------------------------------------


def _make_garbage(history: History, tmp_path: Path, seed: int, count: int) -> None:
    """A whole unnamed version (a commit killed before publishing, sharing a shard with named
    versions), loose unreachable objects, and temporary files."""
    src = write_model_dir(
        tmp_path / f"garbage{seed}", 5000 + seed, keep_shards=1, shard_floats=1 << 16
    )
    proc = run_vault(
        history.repo,
        "commit",
        str(src),
        "-m",
        "never named",
        env=vault_env(VAULT_CRASHPOINT="version-written"),
    )
    assert proc.returncode == KILLED, proc.stderr
    shutil.rmtree(src)
    plant_garbage(history.repo, count, seed=seed)


@pytest.mark.parametrize("where", ["planned", "first", "half", "last"])
def test_gc_killed_at_crash_point(
    history: History, tmp_path: Path, rng: random.Random, where: str
) -> None:
    _make_garbage(history, tmp_path, 1, 300)
    garbage = set(object_files(history.repo)) - reachable_ids(history.repo)
    assert len(garbage) > 300
    deletions = len(garbage) + len(debris(history.repo))
    point = {
        "planned": "gc-planned",
        "first": "gc-deleted:1",
        "half": f"gc-deleted:{deletions // 2}",
        "last": f"gc-deleted:{deletions}",
    }[where]
    proc = run_vault(history.repo, "gc", "--grace", "0s", env=vault_env(VAULT_CRASHPOINT=point))
    assert proc.returncode == KILLED, f"crash point {point} not reached: {proc.stderr}"
    left = set(object_files(history.repo)) - reachable_ids(history.repo)
    if where == "planned":
        assert left == garbage
    elif where == "last":
        assert left == set()
    else:
        assert left < garbage
    history.check(rng, sample=None)
    ok(run_vault(history.repo, "gc", "--grace", "0s"))
    history.assert_collected()
    history.check(rng, sample=None)


def test_gc_killed_at_random_instants(history: History, tmp_path: Path, rng: random.Random) -> None:
    repo = history.repo
    plant_garbage(repo, 800, seed=0)
    startup = _startup(repo)
    t0 = time.monotonic()
    ok(run_vault(repo, "gc", "--grace", "0s"))
    estimate = time.monotonic() - t0
    work = max(estimate - startup, 0.02) / 2  # about half of it is planning

    interrupted = 0
    for trial in range(TRIALS):
        try:
            if trial % 3 == 0:
                _make_garbage(history, tmp_path, trial + 10, 800)
            else:
                plant_garbage(repo, 800, seed=trial + 10)
            objects = len(object_files(repo))

            def started(objects: int = objects) -> bool:
                return len(object_files(repo)) < objects

            proc = popen_vault(repo, "gc", "--grace", "0s")
            _kill_at_random(proc, rng, trial, estimate, work, started)
            assert proc.returncode in (0, KILLED), proc.returncode
            if proc.returncode == KILLED:
                left = set(object_files(repo)) - reachable_ids(repo)
                interrupted += bool(left) and len(object_files(repo)) < objects
            history.check(rng, sample=1)
            ok(run_vault(repo, "gc", "--grace", "0s"))
            history.assert_collected()
        except AssertionError as exc:
            raise AssertionError(f"{exc} {_context(trial)}") from exc
    print(f"start-up {startup:.2f}s, gc {estimate:.2f}s; {interrupted}/{TRIALS} mid-deletion kills")
    if TRIALS >= 10:
        assert interrupted > 0, "no random kill landed while gc was deleting"
    history.check(rng, sample=None)


def test_gc_killed_at_every_deletion_leaves_no_delta_without_its_base(tmp_path: Path) -> None:
    """Doomed delta chains (three checkpoints of four tensors, each a delta of the one before):
    wherever gc is killed, every surviving delta still has its base, and committing the last
    checkpoint again gives a version that reads back. (Deleting in listing order leaves some
    delta without its base for most listing orders: eight delta-base pairs.)"""
    template = tmp_path / "template"
    repo = Repository.init(template)
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "readme.txt").write_text("kept\n")
    kept = repo.commit(keep, "kept").id
    steps = [write_checkpoint(tmp_path / f"step{s}", s, tensors=4) for s in (1, 2, 3)]
    for s, src in enumerate(steps, 1):
        repo.commit(src, f"step {s}")
    with repo.refs.transaction("test: let the checkpoints go") as txn:
        for name in ("v002", "v003", "v004"):
            txn.delete(VERSIONS + name, expected=txn.get(VERSIONS + name))
        txn.set(LATEST, kept, expected=txn.get(LATEST))
    doomed = set(object_files(template)) - reachable_ids(template)
    depths = {h.depth for o in doomed if (h := repo.store.head(o)) is not None}
    assert depths == {0, 1, 2}, depths

    for n in range(1, len(doomed) + 1):
        root = tmp_path / f"repo{n}"
        shutil.copytree(template, root)
        env = vault_env(VAULT_CRASHPOINT=f"gc-deleted:{n}")
        proc = run_vault(root, "gc", "--grace", "0s", env=env)
        assert proc.returncode == KILLED, f"gc-deleted:{n} not reached: {proc.stderr}"
        store = Repository.open(root).store
        left = set(object_files(root))
        assert len(doomed - left) == n
        orphans = [o for o in left if (b := store.delta_base(o)) is not None and b not in left]
        assert orphans == [], f"killed after {n} deletions: deltas without their base"

        ok(run_vault(root, "commit", str(steps[-1]), "-m", "step 3 again"))
        again = Repository.open(root)
        again.checkout("latest", tmp_path / f"out{n}")
        assert tree_bytes(tmp_path / f"out{n}") == tree_bytes(steps[-1])
        assert again.verify().ok
        shutil.rmtree(root)
