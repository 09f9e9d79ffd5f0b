"""The tests' SeaweedFS keeps serving writes on a large disk that is nearly full.

CI once failed 18 S3 tests with ``InternalError`` on every write: the machine's 252 GB disk had
2.6 GB free, under weed's default floor of 1% of the disk, so weed had turned every volume
read-only. :data:`seaweed.MIN_FREE_SPACE` sets a fixed floor instead. This test builds such a disk
(a sparse 200 GB ext4 image, all but 1.5 GB of it taken by ``fallocate``, a few MB on the real
disk), starts the suite's server on it and commits through it.

Loop-mounting needs root. Where that is refused the test is skipped, except under ``.ci/run``,
which sets ``VAULT_CI=1``: there it must run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from seaweed import new_bucket, serving

from vault.backend_s3 import S3Backend
from vault.repo import Repository

IMAGE_BYTES = 200 * 1024**3
LEFT_FREE = 1536 * 1024**2  # under 1% of the image (2 GB), well over the fixed floor


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def nearly_full_disk(tmp_path: Path) -> Iterator[Path]:
    """A mounted 200 GB filesystem with 1.5 GB free."""
    image, mount = tmp_path / "disk.img", tmp_path / "mnt"
    mount.mkdir()
    with open(image, "wb") as f:
        f.truncate(IMAGE_BYTES)
    made = _run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1", str(image))
    mounted = made.returncode == 0 and _run("mount", "-o", "loop", str(image), str(mount))
    if not mounted or mounted.returncode != 0:
        why = (made.stderr or (mounted and mounted.stderr) or "").strip()
        if os.environ.get("VAULT_CI"):
            pytest.fail(f"cannot loop-mount a test filesystem under CI: {why}", pytrace=False)
        pytest.skip(f"loop-mounting a filesystem needs root: {why}")
    try:
        free = shutil.disk_usage(mount).free
        filled = _run("fallocate", "-l", str(free - LEFT_FREE), str(mount / "fill"))
        assert filled.returncode == 0, filled.stderr
        usage = shutil.disk_usage(mount)
        assert usage.free < usage.total // 100  # under weed's default floor
        yield mount
    finally:
        _run("umount", "-l", str(mount))


def test_the_test_server_writes_on_a_large_nearly_full_disk(nearly_full_disk: Path) -> None:
    with serving(nearly_full_disk / "weed") as server:
        bucket = new_bucket(server)
        repo = Repository.init(S3Backend(bucket, "low-disk", endpoint_url=server.endpoint))
        src = nearly_full_disk / "model"
        src.mkdir()
        (src / "weights.bin").write_bytes(os.urandom(3 * 1024**2))
        version = repo.commit(src, "on a nearly full disk")
        assert repo.resolve("latest") == version.id
        assert repo.verify().ok
