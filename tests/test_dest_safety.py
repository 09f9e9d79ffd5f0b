"""Checkout and restore touch only DEST, never the repository, and go all or nothing.

* An unsafe tree (``..``, absolute, NUL, a name reserved for the repository at any depth, a path
  into the repository) is refused whole, in one line, before anything changes: the repository,
  DEST and a sibling tree are compared before and after.
* Wherever the repository lies (DEST's child, deeper in DEST, DEST itself, elsewhere), restore
  never removes it nor a directory holding it; commit never stores the names restore keeps.
* ``checkout --force`` and ``restore`` either finish or leave DEST as it was: a path that cannot
  be replaced, a failing rename at any point, and a SIGKILL at any point of the swap (put back
  by the next run) leave no half-old, half-new DEST and no debris.
* A sparse file comes back sparse.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from faultkit import (
    TMP_PREFIX,
    VAULT,
    Snapshot,
    assert_clean_error,
    assert_verify_ok,
    file_entry,
    link_entry,
    log_json,
    ok,
    plant_version,
    run_vault,
    run_vault_under,
    snapshot,
    vault_env,
)
from safetensors.numpy import save_file

STAGING_PREFIX = TMP_PREFIX + "checkout-"
"""How a checkout's staging directory in DEST is named (``vault/ops/swap.py``)."""

State = tuple[Snapshot, frozenset[str]]


def state(root: Path) -> State:
    """Every file and link under ``root`` with its content, and every directory (links are not
    followed)."""
    dirs = set()
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            dirs.add((Path(dirpath) / name).relative_to(root).as_posix())
    return snapshot(root), frozenset(dirs)


def staging_dirs(dest: Path) -> list[str]:
    """Checkout staging directories (live or left behind) at the top of ``dest``."""
    return sorted(n for n in os.listdir(dest) if n.startswith(STAGING_PREFIX))


def write_files(root: Path, files: dict[str, bytes | str]) -> Path:
    """Create ``files`` (relative path to content) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)
    return root


def small_model(root: Path, seed: int) -> Path:
    """A real safetensors file, a config and a nested file."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    save_file({"w": rng.standard_normal((64, 64)).astype(np.float32)}, str(root / "model.st"))
    return write_files(
        root, {"config.json": json.dumps({"seed": seed}), "sub/notes.txt": f"notes {seed}\n"}
    )


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    """``proj/`` with its repository ``proj/.vault`` (``init --workdir proj``) and v001 committed
    from it, plus a sibling directory and a sibling file beside ``proj``."""
    proj = tmp_path / "proj"
    repo = proj / ".vault"
    ok(run_vault(repo, "init", "--workdir", str(proj)))
    small_model(proj, 1)
    ok(run_vault(repo, "commit", str(proj), "-m", "first"))
    write_files(tmp_path / "sibling", {"a.txt": "sibling\n", "deep/b.txt": "deeper\n"})
    (tmp_path / "sibfile").write_text("a sibling file\n")
    return proj, repo


# -- unsafe trees: refused whole, before anything changes ------------------------------------


def _unsafe_cases(tmp_path: Path) -> dict[str, list[dict]]:
    return {
        "dotdot-onto-a-sibling-directory": [file_entry("../sibling")],
        "dotdot-under-a-sibling-file": [file_entry("../sibfile/x")],
        "absolute-onto-a-sibling-directory": [file_entry(str(tmp_path / "sibling"))],
        "nul": [file_entry("a\x00b")],
        "repository-name": [file_entry(".vault")],
        "repository-name-upper-case": [file_entry(".VAULT")],
        "repository-name-trailing-dot": [file_entry(".vault.")],
        "repository-name-trailing-space": [file_entry(".vault /x")],
        "repository-name-hfs-ignorable": [file_entry(".va\u200cult/x")],
        "repository-name-deeper": [file_entry("sub/.vault")],
        "repository-name-as-link": [link_entry("deep/.Vault", "/")],
        "repository-file": [file_entry(".vault/refs.json")],
        "staging-name": [file_entry(".vault-tmp-checkout-1-abcd/journal.json")],
    }


CASES = list(_unsafe_cases(Path("/x")))


@pytest.mark.parametrize("case", CASES)
def test_restore_and_checkout_refuse_an_unsafe_tree_before_touching_anything(
    project: tuple[Path, Path], tmp_path: Path, case: str
) -> None:
    proj, repo = project
    entries = [file_entry("config.json"), *_unsafe_cases(tmp_path)[case]]
    name = plant_version(repo, entries)
    (proj / "scratch.txt").write_text("unsaved work\n")
    before = state(tmp_path)  # the repository, DEST and the siblings

    assert_clean_error(run_vault(repo, "restore", name), "unsafe path")
    assert state(tmp_path) == before
    assert_clean_error(run_vault(repo, "restore", name, str(proj)), "unsafe path")
    assert state(tmp_path) == before
    assert_clean_error(run_vault(repo, "checkout", "--force", name, str(proj)), "unsafe path")
    assert state(tmp_path) == before
    assert_verify_ok(repo)


def test_checkout_never_writes_into_the_repository(project: tuple[Path, Path]) -> None:
    proj, repo = project
    (repo / "tmp" / "to-objects").symlink_to(repo / "objects")
    before = state(proj)
    for dest in (
        repo,
        repo / "objects",
        repo / "new-folder",
        repo / "tmp",
        repo / "tmp" / "to-objects",
    ):
        proc = run_vault(repo, "checkout", "--force", "v001", str(dest))
        assert_clean_error(proc, "inside the repository")
        assert state(proj) == before
    assert_verify_ok(repo)


# -- where the repository lies -------------------------------------------------------------


def _objects(repo: Path) -> dict[str, bytes]:
    out = {}
    for path in (repo / "objects").rglob("*"):
        if path.is_file():
            out[path.relative_to(repo).as_posix()] = path.read_bytes()
    return out


def _assert_repo_kept(repo: Path, objects: dict[str, bytes], config: bytes) -> None:
    """Every object the repository had is still there, intact, and it still verifies."""
    assert (repo / "config.json").read_bytes() == config
    now = _objects(repo)
    assert {k: now.get(k) for k in objects} == objects
    assert_verify_ok(repo)


def test_restore_keeps_a_repository_deeper_in_the_workdir(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    repo = proj / "meta" / "repo"
    ok(run_vault(repo, "init", "--workdir", str(proj)))
    small_model(proj, 1)
    ok(run_vault(repo, "commit", str(proj), "-m", "first"))  # meta/ holds only the repository
    expected = {k: v for k, v in snapshot(proj).items() if not k.startswith("meta/")}
    (proj / "scratch.txt").write_text("unsaved\n")
    (proj / "meta" / "extra.txt").write_text("beside the repository\n")
    objects, config = _objects(repo), (repo / "config.json").read_bytes()

    out = json.loads(ok(run_vault(repo, "restore", "v001", "--json")).stdout)

    _assert_repo_kept(repo, objects, config)
    assert out["backup"] is not None  # the unsaved work is pinned, the pin is in the repository
    assert {k: v for k, v in snapshot(proj).items() if not k.startswith("meta/")} == expected
    assert not (proj / "scratch.txt").exists() and not (proj / "meta" / "extra.txt").exists()
    ok(run_vault(repo, "backup", "restore", out["backup"]["name"], str(tmp_path / "old")))
    assert (tmp_path / "old" / "meta" / "extra.txt").read_text() == "beside the repository\n"


def test_restore_refuses_a_file_where_a_directory_holding_the_repository_is(
    tmp_path: Path,
) -> None:
    proj = tmp_path / "proj"
    repo = proj / "meta" / "repo"
    ok(run_vault(repo, "init", "--workdir", str(proj)))
    small_model(proj, 1)
    ok(run_vault(repo, "commit", str(proj), "-m", "first"))
    write_files(tmp_path / "sibling", {"a.txt": "sibling\n"})
    for entries, needle in (
        ([file_entry("a.txt"), file_entry("meta")], "holding the repository"),
        ([file_entry("meta/repo")], "inside the repository"),
        ([file_entry("meta/repo/refs.json")], "inside the repository"),
        ([file_entry("meta/repo/objects/x/y")], "inside the repository"),
    ):
        name = plant_version(repo, entries)
        before = state(tmp_path)
        assert_clean_error(run_vault(repo, "restore", name), "unsafe path", needle)
        assert state(tmp_path) == before
        assert_clean_error(run_vault(repo, "checkout", "--force", name, str(proj)), "unsafe path")
        assert state(tmp_path) == before
    assert_verify_ok(repo)


def test_restore_into_the_repository_is_refused(project: tuple[Path, Path], tmp_path: Path) -> None:
    _, repo = project
    before = state(tmp_path)
    for dest in (repo, repo / "objects", repo / "logs" / "new"):
        assert_clean_error(run_vault(repo, "restore", "v001", str(dest)), "inside the repository")
        assert state(tmp_path) == before


def test_restore_with_the_repository_elsewhere_touches_only_dest(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    src = small_model(tmp_path / "src", 1)
    ok(run_vault(repo, "commit", str(src), "-m", "first"))
    work = small_model(tmp_path / "work", 2)
    (work / "sub" / "extra").mkdir()
    (work / "sub" / "extra" / "f").write_text("extra\n")
    (work / "config.json").unlink()
    (work / "config.json").mkdir()  # a directory where the version has a file
    (work / "config.json" / "inner").write_text("inner\n")
    write_files(tmp_path / "sibling", {"a.txt": "sibling\n"})
    sibling, source = state(tmp_path / "sibling"), state(src)

    ok(run_vault(repo, "restore", "v001", str(work)))
    assert state(work) == source
    assert state(tmp_path / "sibling") == sibling
    assert staging_dirs(work) == []
    assert_verify_ok(repo)


def test_restore_keeps_reserved_names_at_any_depth(tmp_path: Path) -> None:
    """What commit never stores (a ``.vault`` anywhere, in any spelling) restore never removes,
    nor the directories holding it; the rest of those directories goes."""
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    src = small_model(tmp_path / "src", 1)
    ok(run_vault(repo, "commit", str(src), "-m", "first"))
    work = small_model(tmp_path / "work", 2)
    kept = {
        "old/.vault/config.json": "another repository\n",
        "old/deeper/.VAULT": "a file\n",
        ".Vault./x": "a spelling\n",
    }
    write_files(work, {**kept, "old/other.txt": "goes\n", "old/deeper/other.txt": "goes\n"})
    (work / "old" / "link").symlink_to(tmp_path / "src")

    res = ok(run_vault(repo, "restore", "v001", str(work), "--json"))
    assert json.loads(res.stdout)["backup"] is not None
    files = snapshot(work)
    assert {k: v for k, v in files.items() if k not in kept} == snapshot(src)
    for rel, content in kept.items():
        assert (work / rel).read_text() == content
    assert snapshot(tmp_path / "src") == snapshot(src)  # the link was removed, not followed

    # A version with a file where a directory holding a kept name is: refused up front.
    name = plant_version(repo, [file_entry("old")])
    before = state(tmp_path)
    assert_clean_error(run_vault(repo, "restore", name, str(work)), "unsafe path", "old")
    assert state(tmp_path) == before


# -- commit stores none of the names checkout refuses --------------------------------------


def test_commit_skips_reserved_names_at_any_depth_whatever_their_kind(
    project: tuple[Path, Path], tmp_path: Path
) -> None:
    proj, repo = project
    src = small_model(tmp_path / "src", 2)
    write_files(
        src,
        {
            ".vault": "a file named like the repository\n",
            "sub/.VAULT/x": "a directory\n",
            "deep/er/.vault.": "trailing dot\n",
            ".vault-tmp-checkout-1-ab/new/y": "debris of a killed checkout\n",
            "vault.txt": "an ordinary name\n",
        },
    )
    (src / "sub" / ".vault").symlink_to(repo)
    ok(run_vault(repo, "commit", str(src), "-m", "with reserved names"))
    show = json.loads(ok(run_vault(repo, "show", "v002", "--json")).stdout)
    paths = sorted(f["path"] for f in show["files"])
    assert paths == ["config.json", "model.st", "sub/notes.txt", "vault.txt"]

    # Restoring it into the project folder keeps the repository.
    objects, config = _objects(repo), (repo / "config.json").read_bytes()
    ok(run_vault(repo, "restore", "v002"))
    _assert_repo_kept(repo, objects, config)
    assert (proj / "vault.txt").read_text() == "an ordinary name\n"


def test_commit_refuses_the_repository_or_anything_inside_it(
    project: tuple[Path, Path], tmp_path: Path
) -> None:
    proj, repo = project
    (tmp_path / "repo-link").symlink_to(repo)
    for path in (repo, tmp_path / "repo-link"):
        proc = run_vault(repo, "commit", str(path), "-m", "the repository")
        assert_clean_error(proc, "is the repository itself")
    for path in (repo / "objects", repo / "refs.json", tmp_path / "repo-link" / "logs"):
        proc = run_vault(repo, "commit", str(path), "-m", "inside the repository")
        assert_clean_error(proc, "inside the repository")
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / ".vault").write_text("a file\n")
    proc = run_vault(repo, "commit", str(tmp_path / "loose" / ".vault"), "-m", "reserved")
    assert_clean_error(proc, "reserved")
    assert [e["version"] for e in log_json(repo)] == ["v001"]


# -- all or nothing --------------------------------------------------------------------------


@pytest.fixture
def versions(tmp_path: Path) -> tuple[Path, Path, dict[str, Snapshot]]:
    """A repository with v001, v002 (the same paths changed, one more directory) and v003 (v002
    with a directory where v001 has a file and a file where DEST has one), and ``dest`` holding
    v001 with unsaved extras; returns (repo, dest, {version: snapshot})."""
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    v1 = {"a.txt": "a1\n", "sub/x.txt": "x1\n", "z.txt": "z1\n", "was-dir/f": "f1\n"}
    v2 = {"a.txt": "a2\n", "sub/x.txt": "x2\n", "z.txt": "z2\n", "new/deep/n.txt": "n2\n"}
    v3 = {**v2, "was-dir": "now a file\n", "was-file/g": "g3\n"}
    snaps = {}
    for name, files in (("v001", v1), ("v002", v2), ("v003", v3)):
        src = write_files(tmp_path / name, files)
        ok(run_vault(repo, "commit", str(src), "-m", name))
        snaps[name] = snapshot(src)
    dest = tmp_path / "dest"
    ok(run_vault(repo, "checkout", "v001", str(dest)))
    write_files(dest, {"unsaved.txt": "mine\n", "was-file": "a file here\n"})
    return repo, dest, snaps


def command_args(command: str, dest: Path) -> tuple[list[str], str]:
    """The command line of a clean checkout of v002 (which also sets aside the files v002 does
    not have, as restore does), or of a restore of v003, into ``dest``, and the version it
    writes."""
    if command == "checkout":
        return ["checkout", "--clean", "v002", str(dest)], "v002"
    return ["restore", "v003", str(dest)], "v003"


def assert_holds(dest: Path, expected: Snapshot) -> None:
    """``dest`` holds every path of ``expected`` as it is there, and no staging directory."""
    got = snapshot(dest)
    assert {k: got.get(k) for k in expected} == expected
    assert staging_dirs(dest) == []


@contextlib.contextmanager
def unreplaceable(path: Path) -> Iterator[None]:
    """Make ``path`` impossible to rename away: immutable as root (chmod binds no root), else
    its directory read-only."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.parent.stat().st_mode
        path.parent.chmod(0o555)
        try:
            yield
        finally:
            path.parent.chmod(stat.S_IMODE(mode))


@pytest.mark.parametrize("command", ["checkout", "restore"])
def test_a_path_that_cannot_be_replaced_leaves_dest_as_it_was(
    versions: tuple[Path, Path, dict[str, Snapshot]], command: str
) -> None:
    repo, dest, snaps = versions
    args, version = command_args(command, dest)
    before = state(dest)
    with unreplaceable(dest / "sub" / "x.txt"):
        assert_clean_error(run_vault(repo, *args), "sub/x.txt", "unchanged")
        assert state(dest) == before
    ok(run_vault(repo, *args))
    assert_holds(dest, snaps[version])


RENAME_FAILS_ONCE = r"""
import errno, os, sys
_at = int(os.environ["FAIL_AT"])
_n = [0]
def _wrap(real):
    def call(*args, **kwargs):
        _n[0] += 1
        if _n[0] == _at:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), args[0])
        return real(*args, **kwargs)
    return call
os.rename, os.replace = _wrap(os.rename), _wrap(os.replace)
import atexit
atexit.register(lambda: open(os.environ["COUNT_FILE"], "w").write(str(_n[0])))
sys.argv = ["vault", *sys.argv[1:]]
from vault.cli.main import main
main()
"""


@pytest.mark.parametrize("command", ["checkout", "restore"])
def test_a_rename_failing_at_any_point_leaves_dest_as_it_was(
    versions: tuple[Path, Path, dict[str, Snapshot]], tmp_path: Path, command: str
) -> None:
    """Each rename (or replace) the command makes fails in turn, once: every run either goes
    through or leaves DEST exactly as it was, with no staging directory."""
    repo, dest, snaps = versions
    args, version = command_args(command, dest)
    before = state(dest)
    count = tmp_path / "count"
    at = 1
    while True:
        env = vault_env(FAIL_AT=str(at), COUNT_FILE=str(count))
        proc = run_vault_under(RENAME_FAILS_ONCE, repo, *args, env=env)
        if int(count.read_text()) < at:  # no rename left to fail: it went through
            ok(proc)
            break
        assert_clean_error(proc)
        assert state(dest) == before, f"rename {at} left DEST changed"
        at += 1
    assert at > 7, "too few renames to test anything"
    assert_holds(dest, snaps[version])


def _kill_when_staging(repo: Path, *args: str, dest: Path) -> None:
    """Run vault and SIGKILL it as soon as its staging directory appears in ``dest``."""
    for _ in range(10):
        proc = subprocess.Popen(
            [*VAULT, "--repo", str(repo), *args],
            env=vault_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while proc.poll() is None and not staging_dirs(dest):
            time.sleep(0.001)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL and staging_dirs(dest):
            return
    raise AssertionError("never caught the checkout while it was staging")


@pytest.mark.parametrize("command", ["checkout", "restore"])
def test_a_killed_checkout_leaves_nothing_the_next_run_does_not_clean(
    tmp_path: Path, command: str
) -> None:
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    rng = np.random.default_rng(3)
    src = write_files(tmp_path / "src", {f"part-{i}.bin": rng.bytes(12 << 20) for i in range(3)})
    ok(run_vault(repo, "commit", str(src), "-m", "big"))
    dest = write_files(tmp_path / "dest", {"old.txt": "old\n"})
    args = ["checkout", "--clean", "v001", str(dest)] if command == "checkout" else []
    args = args or ["restore", "v001", str(dest)]

    _kill_when_staging(repo, *args, dest=dest)
    ok(run_vault(repo, *args))
    assert_holds(dest, snapshot(src))
    # What the killed run left was put back and removed, not kept as the user's content.
    for pin in json.loads(ok(run_vault(repo, "backup", "list", "--json")).stdout):
        show = json.loads(ok(run_vault(repo, "show", pin["name"], "--json")).stdout)
        assert [f["path"] for f in show["files"]] == ["old.txt"]


@pytest.mark.parametrize("command", ["checkout", "restore"])
def test_a_swap_killed_at_any_point_is_put_back_by_the_next_run(
    versions: tuple[Path, Path, dict[str, Snapshot]], tmp_path: Path, command: str
) -> None:
    """SIGKILL before the swap, after each of its renames, and once it is done but not
    committed: the library's recovery puts DEST back as it was, and the next run, after the
    same recovery, goes through."""
    from vault.ops.swap import recover

    repo, dest, snaps = versions
    args, version = command_args(command, dest)
    pristine = tmp_path / "pristine"
    shutil.copytree(dest, pristine, symlinks=True)
    before = state(dest)
    last = "restore-written"  # a clean checkout makes the exact swap of a restore
    points = ["checkout-staged", last, *(f"checkout-swap:{n}" for n in range(1, 100))]
    killed = 0
    for point in points:
        proc = run_vault(repo, *args, env=vault_env(VAULT_CRASHPOINT=point))
        if proc.returncode == 0:  # the swap has fewer renames: it went through
            assert point.startswith("checkout-swap:") and killed > 2, (point, proc.stderr)
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        killed += 1
        assert len(staging_dirs(dest)) == 1, point
        if killed % 2:
            assert recover(dest) == 1
            assert state(dest) == before, point
        else:
            ok(run_vault(repo, *args))
            assert_holds(dest, snaps[version])
            shutil.rmtree(dest)
            shutil.copytree(pristine, dest, symlinks=True)
    assert killed >= 9


def test_recovery_leaves_a_live_checkout_alone_and_refuses_a_journal_pointing_out(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    src = write_files(tmp_path / "src", {"a.txt": "a\n"})
    ok(run_vault(repo, "commit", str(src), "-m", "one"))
    dest = write_files(tmp_path / "dest", {"mine.txt": "mine\n"})
    live = dest / f"{STAGING_PREFIX}{os.getpid()}-0000"  # this test process: alive
    write_files(live, {"new/a.txt": "staged\n"})
    ok(run_vault(repo, "checkout", "--clean", "v001", str(dest)))  # clean, yet it stays
    assert (live / "new" / "a.txt").read_text() == "staged\n"

    gone = subprocess.Popen(["true"])
    gone.wait()
    forged = dest / f"{STAGING_PREFIX}{gone.pid}-0000"  # its process is gone: recovery acts
    write_files(forged, {"old/x": "x\n"})
    write_files(tmp_path / "outside", {"keep.txt": "keep\n"})
    st = forged.stat()
    for journal, needle in (
        ({"staging": [st.st_dev, st.st_ino], "aside": ["../outside"], "new": []}, "unsafe path"),
        ({"staging": [0, 0], "aside": [], "new": ["mine.txt"]}, "not written for this directory"),
    ):
        (forged / "journal.json").write_text(json.dumps({"format": 1, **journal}))
        before = state(tmp_path)
        proc = run_vault(repo, "checkout", "--force", "v001", str(dest))
        assert_clean_error(proc, "interrupted checkout", needle)
        assert state(tmp_path) == before


# -- sparse files ----------------------------------------------------------------------------


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_sparse_files_come_back_sparse(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(7)
    with open(src / "sparse.bin", "wb") as f:
        f.truncate(256 << 20)
        for offset in (10 << 20, 200 << 20):
            f.seek(offset)
            f.write(rng.bytes(100_000))
    (src / "zeros.bin").write_bytes(bytes(16 << 20))  # written out: allocated in the source
    ok(run_vault(repo, "commit", str(src), "-m", "sparse"))
    dest = tmp_path / "dest"
    ok(run_vault(repo, "checkout", "v001", str(dest)))
    assert snapshot(dest) == snapshot(src)
    assert _allocated(dest / "sparse.bin") <= _allocated(src / "sparse.bin") + (16 << 20)
    assert _allocated(dest / "zeros.bin") < (1 << 20)
