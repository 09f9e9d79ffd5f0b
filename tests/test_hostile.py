"""A hostile or damaged repository cannot make checkout write outside DEST, and committing a
directory never follows its symlinks.

Hostile versions are planted through the library, as an attacker with write access to the
repository would: content-addressed objects written with ``store.put`` (valid ids, so every read
verifies), trees serialised by hand when the order of entries matters, and a ref moved through a
:class:`~vault.refs.RefStore` transaction.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from faultkit import (
    assert_checkout_matches,
    assert_clean_error,
    file_entry,
    link_entry,
    log_json,
    ok,
    plant_version,
    run_vault,
    snapshot,
)

from vault import codec
from vault.ids import hash_bytes
from vault.objects import KIND_FILE, KIND_LINK


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    """A repository with one honest version, and an empty directory ``outside`` beside DEST."""
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    honest = tmp_path / "honest"
    honest.mkdir()
    (honest / "readme.txt").write_text("honest\n")
    ok(run_vault(repo, "commit", str(honest), "-m", "honest"))
    outside = tmp_path / "outside"
    outside.mkdir()
    return repo, outside


def _everything_under(path: Path) -> list[str]:
    out = []
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            out.append(os.path.relpath(os.path.join(dirpath, name), path))
    return sorted(out)


def _tree_state(root: Path) -> list[str]:
    """Every path under ``root`` (the test's tmp dir) except the repository."""
    return [p for p in _everything_under(root) if not p.startswith("repo")]


def _hostile_cases(outside: Path) -> dict[str, list[dict]]:
    return {
        "absolute": [file_entry(str(outside / "abs-evil"))],
        "dotdot": [file_entry("../escaped")],
        "inner-dotdot": [file_entry("sub/../../escaped")],
        "dotdot-into-outside": [file_entry("../outside/evil")],
        "under-link": [link_entry("a", str(outside)), file_entry("a/evil")],
        "under-link-file-first": [file_entry("a/evil"), link_entry("a", str(outside))],
        "under-relative-link": [link_entry("a", "../outside"), file_entry("a/evil")],
        "under-nested-link": [link_entry("d/l", str(outside)), file_entry("d/l/deeper/evil")],
        "under-file": [file_entry("x"), file_entry("x/evil")],
        "twice": [file_entry("x"), file_entry("x")],
        "empty-component": [file_entry("a//evil")],
        "dot-component": [file_entry("./evil")],
        "backslash": [file_entry("..\\escaped")],
        "nul": [file_entry("evil\x00name")],
        "empty": [file_entry("")],
        "link-target-nul": [link_entry("l", "/tmp\x00/evil")],
    }


CASES = list(_hostile_cases(Path("/x")))


@pytest.mark.parametrize("case", CASES)
def test_checkout_refuses_a_hostile_tree(
    setup: tuple[Path, Path], tmp_path: Path, case: str
) -> None:
    repo, outside = setup
    name = plant_version(repo, _hostile_cases(outside)[case])
    before = _tree_state(tmp_path)

    dest = tmp_path / "dest"
    proc = run_vault(repo, "checkout", name, str(dest))
    assert_clean_error(proc)
    assert not os.path.lexists(dest)
    assert _tree_state(tmp_path) == before  # nothing written anywhere, no staging left

    # Into an existing, non-empty DEST with --force: refused too, DEST untouched.
    existing = tmp_path / "existing"
    (existing / "sub").mkdir(parents=True)
    (existing / "keep.txt").write_text("keep\n")
    before = _tree_state(tmp_path)
    proc = run_vault(repo, "checkout", "--force", name, str(existing))
    assert_clean_error(proc)
    assert _tree_state(tmp_path) == before
    assert (existing / "keep.txt").read_text() == "keep\n"
    assert _everything_under(outside) == []

    # The honest version is unaffected.
    honest = tmp_path / "honest-out"
    assert_checkout_matches(repo, "v001", snapshot(tmp_path / "honest"), honest)


def test_hostile_tree_error_names_the_path(setup: tuple[Path, Path], tmp_path: Path) -> None:
    repo, outside = setup
    name = plant_version(repo, [link_entry("a", str(outside)), file_entry("a/evil")])
    proc = run_vault(repo, "checkout", name, str(tmp_path / "dest"))
    assert_clean_error(proc, "unsafe path", "a/evil")


def test_link_then_file_across_two_checkouts(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """One version plants ``a -> outside`` in DEST (a link is allowed); the next puts a file at
    ``a/evil``: the second checkout must not write through the link."""
    repo, outside = setup
    first = plant_version(repo, [link_entry("a", str(outside))])
    second = plant_version(repo, [file_entry("a/evil")])
    dest = tmp_path / "dest"
    ok(run_vault(repo, "checkout", first, str(dest)))
    assert os.readlink(dest / "a") == str(outside)
    proc = run_vault(repo, "checkout", "--force", second, str(dest))
    assert_clean_error(proc, "symlink")
    assert _everything_under(outside) == []
    assert os.readlink(dest / "a") == str(outside)


def test_force_checkout_refuses_a_symlinked_directory_in_dest(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    """The user's DEST has ``sub -> outside``; an honest version has ``sub/file``."""
    repo, outside = setup
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "file").write_text("version content\n")
    (src / "a-first.txt").write_text("sorts before sub/file\n")
    (src / "top.txt").write_text("top\n")
    ok(run_vault(repo, "commit", str(src), "-m", "has sub/file"))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    (dest / "mine.txt").write_text("mine\n")
    before = _tree_state(tmp_path)

    proc = run_vault(repo, "checkout", "--force", "v002", str(dest))
    assert_clean_error(proc, "symlink")
    assert _everything_under(outside) == []
    assert _tree_state(tmp_path) == before
    assert os.readlink(dest / "sub") == str(outside)
    # Refused before writing anything, not half way through.
    assert not (dest / "a-first.txt").exists()
    assert not (dest / "top.txt").exists()


def test_force_checkout_replaces_a_symlinked_file_without_following_it(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    """The user's DEST has ``file -> outside/target``; the version has a regular ``file``: the
    link is replaced, the target outside is left alone."""
    repo, outside = setup
    target = outside / "target"
    target.write_text("outside, must not change\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_text("version content\n")
    ok(run_vault(repo, "commit", str(src), "-m", "has file"))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "file").symlink_to(target)

    ok(run_vault(repo, "checkout", "--force", "v002", str(dest)))
    assert target.read_text() == "outside, must not change\n"
    assert stat.S_ISREG(os.lstat(dest / "file").st_mode)
    assert (dest / "file").read_text() == "version content\n"


def test_commit_stores_symlinks_as_links_never_reading_their_targets(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, outside = setup
    secret = os.urandom(100_000)
    (outside / "secret.bin").write_bytes(secret)
    (outside / "dir").mkdir()
    (outside / "dir" / "inner.bin").write_bytes(secret[::-1])
    os.mkfifo(outside / "fifo")  # reading it would block forever
    src = tmp_path / "model"
    src.mkdir()
    (src / "weights.bin").write_bytes(b"honest weights\n" * 100)
    links = {
        "abs-secret": str(outside / "secret.bin"),
        "rel-secret": "../outside/secret.bin",
        "outside-dir": str(outside / "dir"),
        "fifo": str(outside / "fifo"),
        "zero": "/dev/zero",  # reading it would never end
        "dangling": str(outside / "does-not-exist"),
    }
    for name, target in links.items():
        (src / name).symlink_to(target)

    ok(run_vault(repo, "commit", str(src), "-m", "links", timeout=60))

    show = json.loads(ok(run_vault(repo, "show", "v002", "--json")).stdout)
    kinds = {f["path"]: (f["kind"], f["target"]) for f in show["files"]}
    for name, target in links.items():
        assert kinds[name] == (KIND_LINK, target)
    assert kinds["weights.bin"][0] == KIND_FILE
    assert not any(p.startswith("outside-dir/") for p in kinds)

    # No stored object holds any byte of what the links point at.
    for fan in (repo / "objects").iterdir():
        for obj in fan.iterdir():
            data = codec.decode(obj.read_bytes())
            assert hash_bytes(data) == fan.name + obj.name
            assert secret[:4096] not in data and secret[::-1][:4096] not in data

    dest = tmp_path / "dest"
    assert_checkout_matches(repo, "v002", snapshot(src), dest)
    for name, target in links.items():
        assert os.readlink(dest / name) == target
    assert (outside / "secret.bin").read_bytes() == secret
    assert [e["version"] for e in log_json(repo)] == ["v002", "v001"]


@pytest.mark.parametrize(
    "name", [b"back\\slash.bin", b"latin1-\xe9t\xe9.bin", b"link-to-\xff"], ids=str
)
def test_what_commit_accepts_checkout_writes_back(
    setup: tuple[Path, Path], tmp_path: Path, name: bytes
) -> None:
    """Names checkout would refuse (a backslash) or cannot represent (not UTF-8): commit either
    refuses them up front with a clear error, or the version checks out identically."""
    repo, _ = setup
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine\n")
    raw = os.path.join(os.fsencode(src), name)
    if name.startswith(b"link-to-"):
        os.symlink(b"target-" + name, raw)
    else:
        with open(raw, "wb") as f:
            f.write(b"content\n")
    proc = run_vault(repo, "commit", str(src), "-m", "odd names")
    if proc.returncode != 0:
        assert_clean_error(proc)
        assert [e["version"] for e in log_json(repo)] == ["v001"]
    else:
        assert_checkout_matches(repo, "v002", snapshot(src), tmp_path / "dest")
