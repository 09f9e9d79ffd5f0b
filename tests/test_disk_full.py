"""Out of disk space during a commit: a clear one-line error, earlier versions intact, and what was
half written is garbage that ``gc --grace 0s`` removes.

Two ways to fill the disk: a real 5 MiB tmpfs (needs root, as in CI; not skipped when root), and
an injected ``ENOSPC`` from the N-th ``os.write`` / ``os.fsync`` of a vault process, which runs
anywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from faultkit import (
    assert_checkout_matches,
    assert_clean_error,
    assert_linear,
    assert_verify_ok,
    debris,
    log_json,
    object_files,
    ok,
    reachable_ids,
    run_vault,
    run_vault_failing,
    snapshot,
    store_bytes,
    write_model_dir,
)


def _small_dir(path: Path, seed: int) -> Path:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text(f"run {seed}\n" * 100)
    (path / "weights.bin").write_bytes(os.urandom(64 << 10))
    return path


def _assert_after_failed_commit(repo: Path, versions: dict[str, dict], tmp_path: Path) -> None:
    entries = log_json(repo)
    assert [e["version"] for e in entries] == sorted(versions, reverse=True)
    assert_linear(entries)
    assert_verify_ok(repo)
    for name, snap in versions.items():
        dest = tmp_path / f"co-{name}-{len(os.listdir(tmp_path))}"
        assert_checkout_matches(repo, name, snap, dest)


@pytest.fixture
def tmpfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 5 MiB tmpfs mounted at ``tmp_path/mnt``, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    # As root the mount must work (CI runs as root): a failure here is a test failure.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5M", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_commit_on_a_full_tmpfs(tmpfs: Path, tmp_path: Path) -> None:
    repo = tmpfs / "repo"
    ok(run_vault(repo, "init"))
    small = _small_dir(tmp_path / "small", 1)
    ok(run_vault(repo, "commit", str(small), "-m", "fits"))
    versions = {"v001": snapshot(small)}
    used_before = store_bytes(repo)
    objects_before = set(object_files(repo))

    # Incompressible and larger than the whole file system.
    big = write_model_dir(tmp_path / "big", 3, shards=2, extra_bytes=6 << 20)
    proc = run_vault(repo, "commit", str(big), "-m", "too big")
    assert_clean_error(proc, "no space")
    assert not proc.stdout.strip()
    # The failed writer removed its own temporary files.
    assert debris(repo) == []
    _assert_after_failed_commit(repo, versions, tmp_path)

    ok(run_vault(repo, "gc", "--grace", "0s"))
    assert set(object_files(repo)) == objects_before
    assert debris(repo) == []
    assert store_bytes(repo) <= used_before
    st = os.statvfs(tmpfs)
    assert st.f_bavail * st.f_frsize > 4 << 20  # the space is really back

    # And the repository takes new versions again.
    small2 = _small_dir(tmp_path / "small2", 2)
    ok(run_vault(repo, "commit", str(small2), "-m", "fits again"))
    versions["v002"] = snapshot(small2)
    _assert_after_failed_commit(repo, versions, tmp_path)


def test_checkout_to_a_full_tmpfs_leaves_nothing(tmpfs: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    big = write_model_dir(tmp_path / "big", 4, shards=2, extra_bytes=6 << 20)
    ok(run_vault(repo, "commit", str(big), "-m", "big"))
    dest = tmpfs / "out"
    proc = run_vault(repo, "checkout", "v001", str(dest))
    assert_clean_error(proc, "no space")
    assert os.listdir(tmpfs) == []  # no DEST, no staging directory
    st = os.statvfs(tmpfs)
    assert st.f_bavail * st.f_frsize > 4 << 20


# -- injected ENOSPC -------------------------------------------------------------------------


@pytest.fixture
def base(tmp_path: Path) -> tuple[Path, dict[str, dict], Path]:
    """A repository with v001, and a source directory for the next commit."""
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    first = write_model_dir(tmp_path / "first", 1, keep_shards=1)
    ok(run_vault(repo, "commit", str(first), "-m", "first"))
    nxt = write_model_dir(tmp_path / "next", 2, keep_shards=1)
    return repo, {"v001": snapshot(first)}, nxt


def _count_calls(tmp_path: Path, call: str) -> int:
    """How many ``os.<call>`` calls a successful commit of the same shape makes."""
    repo = tmp_path / "count-repo"
    ok(run_vault(repo, "init"))
    ok(run_vault(repo, "commit", str(tmp_path / "first"), "-m", "first"))
    count_file = tmp_path / "count"
    nxt = str(tmp_path / "next")
    ok(run_vault_failing(repo, call, 0, "commit", nxt, "-m", "n", count_file=count_file))
    return int(count_file.read_text())


@pytest.mark.parametrize("call", ["write", "fsync"])
def test_commit_with_injected_enospc(base, tmp_path: Path, call: str) -> None:
    template, first_versions, nxt = base
    total = _count_calls(tmp_path, call)
    assert total >= 8, total
    objects_before = set(object_files(template))
    # The first call, a few in the middle, and for writes the last ones (the version, refs.json,
    # the reflog). The number of fsyncs varies by one (whether the version object's fan-out
    # directory is new), so fsync points stay clear of the end.
    points = {1, 2, total // 3, total // 2, (2 * total) // 3}
    points |= {total - 2, total - 1, total} if call == "write" else {total - 4}
    points = sorted(points)
    for at in points:
        # Each attempt starts from the same store (earlier attempts' objects would dedup).
        repo = tmp_path / f"repo-{at}"
        shutil.copytree(template, repo, symlinks=True)
        versions = dict(first_versions)
        proc = run_vault_failing(repo, call, at, "commit", str(nxt), "-m", f"fails at {at}")
        reflog_only = call == "write" and at == total and proc.returncode == 0
        if reflog_only:
            # The last write is the reflog append, after refs.json is published: the commit
            # happened, so it succeeds with a one-line warning rather than inviting a retry.
            assert "vault: warning:" in proc.stderr and "reflog" in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stderr
        else:
            assert_clean_error(proc, "no space")
        assert debris(repo) == [], f"temporary files left after ENOSPC at {call} #{at}"
        entries = log_json(repo)
        published = len(entries) > len(versions)
        if published:
            # Only the last calls (the reflog append, and the fsync of refs.json's directory)
            # come after refs.json is renamed into place: then the version is whole.
            assert at > total - 3, f"version published although {call} #{at} of {total} failed"
            versions[entries[0]["version"]] = snapshot(nxt)
        else:
            assert not reflog_only
        _assert_after_failed_commit(repo, versions, tmp_path)

        ok(run_vault(repo, "gc", "--grace", "0s"))
        assert debris(repo) == []
        assert set(object_files(repo)) == reachable_ids(repo)
        if not published:
            assert set(object_files(repo)) == objects_before
        if at == points[len(points) // 2]:
            # Space again: the same commit succeeds.
            ok(run_vault(repo, "commit", str(nxt), "-m", "with space"))
            versions[f"v{len(versions) + 1:03d}"] = snapshot(nxt)
            _assert_after_failed_commit(repo, versions, tmp_path)
        shutil.rmtree(repo)
