"""Durability: a power cut at any instant of a vault operation loses nothing already published.

Each test runs one operation through the Python API, in this process, under
:class:`lazyfs.LazyFS`: once without a crash (the *reference run*, whose outcome is what the
caller saw when the operation returned), then once for every operation index k with the power
cut armed at k, until a run completes before reaching k. After each run the durable state (what
the disk holds once everything unsynced is forgotten, see ``tests/lazyfs.py``) is materialised in
a fresh directory and must be a repository that:

* opens (only a cut ``init`` may leave no repository, and ``init`` then succeeds on it),
* has exactly the refs it had before the operation or exactly those of the reference run
  (compared by the message of the version each ref names, since a new version's id holds its
  creation time), and a reflog equal to the one before or the one after, never ahead of the refs,
* verifies clean, and checks out every version a ref names byte-identical to the files it was
  committed from: every version named before the operation, and any the operation published.

When the run completes, the durable state must be the reference run's: refs and reflog.
A SIGKILL test cannot see any of this, since the page cache survives the killed process.
Identical durable states are checked once.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import make_safetensors, random_tensors, tree_bytes
from lazyfs import LazyFS, PowerCut, tree_digest

from vault import Repository, leases
from vault.errors import RepoNotFound
from vault.fsutil import TMP_PREFIX
from vault.ops import transfer

SHAPES = {"layers.0.weight": (24, 24), "layers.0.bias": (24,)}
BACKUP_MESSAGE = "backup (emergency): safety"
GENERATED_TIME = re.compile(r"-\d{8}T\d{6}$")


@dataclass(frozen=True)
class Seen:
    """What a repository holds, in terms that survive a re-run: refs by version message."""

    refs: dict[str, str]
    reflog: list[tuple[str, str]]


@dataclass
class World:
    """Source trees (by the message they are committed with) and repository templates."""

    sources: dict[str, Path]
    templates: dict[str, Path]


def _source(root: Path, seed: int, keep: int, *, weights: str = "model.safetensors") -> Path:
    """A small model: a safetensors file (its first tensor shared between seeds of the same
    ``keep``, so commits dedup), a json config and a json file in a subfolder."""
    tensors = random_tensors(seed, SHAPES)
    tensors["layers.0.weight"] = random_tensors(keep, SHAPES)["layers.0.weight"]
    make_safetensors(root / weights, tensors)
    (root / "config.json").write_text(json.dumps({"seed": seed, "hidden": 24}))
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "vocab.json").write_text(json.dumps({"seed": seed % 2}))
    return root


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for the module's thousands of short-lived files: in memory when the machine
    has a tmpfs (the model decides what is durable, not the disk, and unlinking on a disk
    mounted with ``discard`` costs more than the whole test)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path_factory.mktemp("durability")
        return
    base = Path(tempfile.mkdtemp(prefix="vault-durability-", dir=shm))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def world(scratch: Path) -> World:
    base = scratch / "world"
    src = base / "src"
    sources = {
        "first": _source(src / "first", 1, keep=1),
        "second": _source(src / "second", 2, keep=1),
        "third": _source(src / "third", 3, keep=3),
        BACKUP_MESSAGE: _source(src / "safety", 4, keep=3),
        # The files of "second" under another name: only its tree is new (a sync of one file).
        "renamed": _source(src / "renamed", 2, keep=1, weights="weights.safetensors"),
    }
    templates: dict[str, Path] = {}

    def step(name: str, after: str | None, do: Callable[[Path], object]) -> None:
        root = base / name
        if after is None:
            root.mkdir()
        else:
            shutil.copytree(templates[after], root, symlinks=True)
        do(root / "repo")
        templates[name] = root

    step("empty", None, lambda repo: None)
    step("init", "empty", Repository.init)
    step("v1", "init", lambda repo: Repository.open(repo).commit(sources["first"], "first"))
    step("v2", "v1", lambda repo: Repository.open(repo).commit(sources["second"], "second"))

    def garbage(path: Path) -> None:
        repo = Repository.open(path)
        repo.commit(sources["third"], "third")
        pin = repo.delete("v002", confirm=True).pin
        repo.unpin(pin.name)  # v002's own objects are now garbage for gc
        (path / "tmp" / ".vault-tmp-debris").write_bytes(b"left by a dead writer")

    step("garbage", "v2", garbage)

    def pushed(path: Path) -> None:
        """The remote (a directory beside the repository) holds v1, pushed from here."""
        transfer.push(Repository.open(path).parts, _remote(path, create=True).parts, "origin")

    def ahead(path: Path) -> None:
        """Another repository pushed "second" to the remote since: the remote is ahead."""
        other = path.parent / "other"
        shutil.copytree(path, other, symlinks=True)
        writer = Repository.open(other)
        writer.commit(sources["second"], "second")
        transfer.push(writer.parts, _remote(path).parts, "origin")
        shutil.rmtree(other)

    step("remote-v1", "v1", pushed)
    step("remote-ahead", "remote-v1", ahead)
    step(
        "local-ahead",
        "remote-v1",
        lambda repo: Repository.open(repo).commit(sources["second"], "second"),
    )

    def swap(path: Path) -> None:
        """The remote becomes ``repo`` (the state a push test checks), the pusher ``local``."""
        path.rename(path.parent / "local")
        (path.parent / "remote").rename(path)

    step("pushing", "local-ahead", swap)
    time.sleep(0.01)  # gc --grace 0 removes what is older than its start
    return World(sources, templates)


def _seen(repo: Repository) -> Seen:
    doc = repo.refs.read()
    refs = {_stable(ref): repo.store.get_version(oid).message for ref, oid in doc.refs.items()}
    return Seen(refs, [(_stable(e.ref), e.reason) for e in repo.refs.reflog()])


def _stable(ref: str) -> str:
    """A ref's name without the time a generated pin name holds."""
    return GENERATED_TIME.sub("", ref)


@contextmanager
def _holders_gone() -> Iterator[None]:
    """Look at a state as the next process does: after a power cut the machine has restarted,
    and after a kill the writer is gone; either way the leases it left are stale. (The
    operation ran in this very process, whose pid is alive, so the restart is simulated by a
    new boot id.)"""
    saved = leases._BOOT
    leases._BOOT = f"{saved}-after"
    try:
        yield
    finally:
        leases._BOOT = saved


def _check(
    world: World, path: Path, before: Seen | None, after: Seen, completed: bool, where: str
) -> None:
    """Assert that the durable state at ``path`` is one the caller may find after a power cut."""
    with _holders_gone():
        _check_state(world, path, before, after, completed, where)


def _check_state(
    world: World, path: Path, before: Seen | None, after: Seen, completed: bool, where: str
) -> None:
    try:
        repo = Repository.open(path)
    except RepoNotFound:
        assert before is None and not completed, f"{where}: the repository is lost"
        repo = Repository.init(path)  # a cut init is redone
    seen = _seen(repo)
    if completed:
        assert seen == after, f"{where}: the finished operation is not durable"
    else:
        old = before or Seen({}, [])
        assert seen.refs in (old.refs, after.refs), f"{where}: refs {seen.refs}"
        assert seen.reflog in (old.reflog, after.reflog), f"{where}: reflog {seen.reflog}"
        if seen.refs == old.refs:
            assert seen.reflog == old.reflog, f"{where}: the reflog is ahead of the refs"
    report = repo.verify()
    assert report.ok, f"{where}: verify found {report.damaged}"
    dest = path.parent / "checkout"
    for ref, oid in sorted(repo.refs.read().refs.items()):
        message = seen.refs[_stable(ref)]
        repo.checkout(oid, dest)
        expected = tree_bytes(world.sources[message])
        assert tree_bytes(dest) == expected, f"{where}: {ref} ({message}) checks out wrong"
        shutil.rmtree(dest)
    repo.gc(grace=0)  # what the cut left behind is garbage, never something a ref needs
    report = repo.verify()
    assert report.ok, f"{where}: verify after gc found {report.damaged}"


@dataclass
class Sweep:
    """How many power cuts an operation was tested with."""

    ops: int
    points: int
    states: int


def _sweep(world: World, tmp_path: Path, template: str, op: Operation) -> Sweep:
    """Cut the power at every operation of ``op`` run on a copy of ``template``.

    Runs may differ by an operation or two (a new version's id holds its creation time, so it
    may or may not fall in an existing fan-out folder): each run is cut at its own k-th."""
    origin = world.templates[template]
    before = _seen(Repository.open(origin / "repo")) if (origin / "repo").exists() else None
    reference = tmp_path / "reference"
    shutil.copytree(origin, reference, symlinks=True)
    with LazyFS(reference) as fs:
        op(world, reference / "repo")
    after = _seen(Repository.open(reference / "repo"))
    checked: set[str] = set()
    k = 0
    while True:
        run = tmp_path / f"run-{k}"
        shutil.copytree(origin, run, symlinks=True)
        fs = LazyFS(run, crash_at=k)
        with fs:
            try:
                op(world, run / "repo")
                completed = True
            except PowerCut:
                completed = False
        state = tmp_path / f"state-{k}"
        fs.materialise(state)
        digest = tree_digest(state)
        if completed or digest not in checked:
            checked.add(digest)
            where = f"power cut at {fs.crashed}" if fs.crashed else "after the operation returned"
            with LazyFS(state):  # the checks' own fsyncs need not wait for the disk
                _check(world, state / "repo", before, after, completed, where)
        if not completed:
            # What the process left in the page cache: the state a kill -9 at k leaves.
            with LazyFS(run):
                _check(world, run / "repo", before, after, False, f"killed at {fs.crashed}")
        shutil.rmtree(run)
        shutil.rmtree(state)
        if completed:
            return Sweep(ops=len(fs.ops), points=k + 1, states=len(checked))
        k += 1


Operation = Callable[[World, Path], object]
"""An operation under test, given the world and the repository's path."""


def _init(world: World, repo: Path) -> None:
    Repository.init(repo)


def _init_after_killed_init(world: World, repo: Path) -> None:
    """``init`` run again after a killed one had made the folder (in the page cache only)."""
    repo.mkdir()
    Repository.init(repo)


def _commit(message: str) -> Operation:
    def commit(world: World, repo: Path) -> None:
        Repository.open(repo).commit(world.sources[message], message)

    return commit


def _tag(world: World, repo: Path) -> None:
    Repository.open(repo).tag("best", "v001")


def _pin(world: World, repo: Path) -> None:
    Repository.open(repo).pin("v001", type="emergency", reason="keep", name="keep")


def _backup(world: World, repo: Path) -> None:
    Repository.open(repo).backup(world.sources[BACKUP_MESSAGE], reason="safety", name="bk")


def _delete(world: World, repo: Path) -> None:
    Repository.open(repo).delete("v002", confirm=True)


def _gc(world: World, repo: Path) -> None:
    Repository.open(repo).gc(grace=0)


def _remote(repo: Path, *, create: bool = False) -> Repository:
    """The remote repository of the remote operations: the folder ``remote`` beside ``repo``."""
    where = repo.parent / "remote"
    return Repository.init(where) if create else Repository.open(where)


def _pull(world: World, repo: Path) -> None:
    transfer.pull(Repository.open(repo).parts, _remote(repo).parts, "origin")


def _push(world: World, repo: Path) -> None:
    """Push from the folder ``local`` beside ``repo`` into ``repo``, the remote (the state
    checked is the remote's)."""
    transfer.push(
        Repository.open(repo.parent / "local").parts, Repository.open(repo).parts, "origin"
    )


OPERATIONS: dict[str, tuple[str, Operation]] = {
    "init": ("empty", _init),
    "init-after-killed-init": ("empty", _init_after_killed_init),
    "first-commit": ("init", _commit("first")),
    "second-commit": ("v1", _commit("second")),
    "commit-of-one-new-object": ("v2", _commit("renamed")),
    "tag": ("v2", _tag),
    "pin": ("v2", _pin),
    "backup": ("v2", _backup),
    "delete": ("v2", _delete),
    "gc": ("garbage", _gc),
    "pull": ("remote-ahead", _pull),
    "push": ("pushing", _push),
}
"""Name: (the template it starts from, the operation)."""


_RUN = itertools.count()


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_power_cut_at_every_operation_keeps_the_repository(
    world: World, scratch: Path, name: str
) -> None:
    template, op = OPERATIONS[name]
    work = scratch / f"{name}-{next(_RUN)}"
    work.mkdir()
    sweep = _sweep(world, work, template, op)
    shutil.rmtree(work)
    assert sweep.points > 1
    print(f"{name}: {sweep.ops} operations, {sweep.points} power cuts, {sweep.states} states")


@pytest.mark.parametrize("existing", [True, False], ids=["existing-folder", "new-folder"])
def test_checkout_with_fsync_into_a_folder_is_durable_once_it_returns(
    world: World, scratch: Path, existing: bool
) -> None:
    """``checkout --fsync`` (with ``--clean`` into an existing folder, or into a new one): at
    every power cut each file under its final name is complete (or absent), and the user's own
    files are there or set aside; once checkout returns the folder holds the version, without
    the user's files, and no staging debris."""
    origin = world.templates["v1"]
    expected = tree_bytes(world.sources["first"])
    # The user's own files, one of them in a folder the version also writes into (so a file
    # is renamed into a folder that existed before, whose entries must then be synced).
    mine = {"notes.txt": b"mine", "tokenizer/mine.txt": b"also mine"} if existing else {}
    work = scratch / f"checkout-{next(_RUN)}"
    k = 0
    while True:
        run = work / f"run-{k}"
        shutil.copytree(origin, run, symlinks=True)
        for rel, data in mine.items():
            (run / "dest" / rel).parent.mkdir(parents=True, exist_ok=True)
            (run / "dest" / rel).write_bytes(data)
        fs = LazyFS(run, crash_at=k)
        with fs:
            try:
                repo = Repository.open(run / "repo")
                repo.checkout("v001", run / "dest", clean=existing, durable=True)
                completed = True
            except PowerCut:
                completed = False
        state = work / f"state-{k}"
        fs.materialise(state)
        got = tree_bytes(state / "dest") if (state / "dest").is_dir() else {}
        where = f"power cut at {fs.crashed}" if fs.crashed else "after checkout returned"
        for rel, data in mine.items():
            found = got.pop(rel, None)
            assert found in (data, None) and not (completed and found), where
        if completed:
            assert got == expected, f"{where}: {sorted(got)}"
            top = {rel.split("/")[0] for rel in expected}
            assert set(os.listdir(state / "dest")) == top, f"{where}: debris is left"
            break
        for rel, data in got.items():
            if not rel.startswith(TMP_PREFIX):
                assert data == expected[rel], f"{where}: {rel} is torn"
        k += 1
    shutil.rmtree(work)
    assert k > 0
