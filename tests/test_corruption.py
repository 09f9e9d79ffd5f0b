"""A damaged store: a flipped byte, a truncated or deleted object, a broken manifest, tree or
version, a corrupt ``refs.json``. ``vault verify`` finds and names the damage and the versions it
breaks; every other command fails with one clear line, never a traceback, and never leaves wrong
bytes (or anything at all) on disk.

The repository (built once per test):

* v001: ``a.bin``, ``shared.safetensors``
* v002: ``a.bin``, ``shared.safetensors``, ``c.bin`` (random: stored raw), ``log.txt``
  (text: stored zstd-compressed)
* v003: ``shared.safetensors``, ``c.bin``, ``log.txt``, ``d.txt``

so the chunks of ``c.bin`` and ``log.txt`` break v002 and v003 but not v001.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from faultkit import (
    Snapshot,
    assert_checkout_matches,
    assert_clean_error,
    assert_verify_ok,
    flip_byte,
    log_json,
    make_writable,
    object_files,
    ok,
    run_vault,
    snapshot,
)
from safetensors.numpy import save_file

from vault import Repository, codec
from vault.errors import CorruptObject, ObjectMissing
from vault.store import object_key

TMP_PREFIX = ".vault-tmp-"


@dataclass
class Built:
    repo: Path
    snaps: dict[str, Snapshot]
    work: Path

    def api(self) -> Repository:
        return Repository.open(self.repo)

    def path(self, oid: str) -> Path:
        return self.repo / object_key(oid)  # type: ignore[arg-type]

    def version(self, name: str) -> str:
        return self.api().resolve(name)

    def tree(self, name: str) -> str:
        r = self.api()
        return r.store.get_version(r.resolve(name)).tree

    def manifest(self, name: str, path: str) -> str:
        r = self.api()
        tree = r.store.get_tree(r.store.get_version(r.resolve(name)).tree)
        (entry,) = [e for e in tree.entries if e.path == path]
        assert entry.file is not None
        return entry.file

    def chunks(self, name: str, path: str) -> list[str]:
        return [c.oid for c in self.api().store.get_file(self.manifest(name, path)).chunks]


def _log_text(seed: int) -> bytes:
    return b"".join(b"step %d loss %.4f seed %d\n" % (i, 1.0 / (i + 1), seed) for i in range(20000))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The repository, built once; each test damages its own copy."""
    tmp_path = tmp_path_factory.mktemp("template")
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    rng = np.random.default_rng(0)
    a = rng.bytes(300_000)
    c = rng.bytes(700_000)
    shared = {"w": rng.standard_normal((256, 256)).astype(np.float32)}
    contents = {
        "v001": {"a.bin": a},
        "v002": {"a.bin": a, "c.bin": c, "log.txt": _log_text(2)},
        "v003": {"c.bin": c, "log.txt": _log_text(2), "d.txt": b"notes\n"},
    }
    snaps = {}
    for name, files in contents.items():
        src = tmp_path / f"src-{name}"
        src.mkdir()
        for rel, data in files.items():
            (src / rel).write_bytes(data)
        save_file(shared, str(src / "shared.safetensors"))
        proc = ok(run_vault(repo, "commit", str(src), "-m", name))
        assert proc.stdout.startswith(name)
        snaps[name] = snapshot(src)
    return Built(repo, snaps, tmp_path)


@pytest.fixture
def built(template: Built, tmp_path: Path) -> Built:
    shutil.copytree(template.repo, tmp_path / "repo", symlinks=True)
    shutil.copytree(template.work / "src-v003", tmp_path / "src-v003", symlinks=True)
    return Built(tmp_path / "repo", template.snaps, tmp_path)


def _verify_fails_naming(b: Built, oid: str, versions: list[str], problem: str = "corrupt") -> str:
    proc = run_vault(b.repo, "verify")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("vault: error: ")
    lines = [line for line in proc.stdout.splitlines() if oid in line]
    assert len(lines) == 1, proc.stdout
    line = lines[0]
    assert line.startswith(f"{problem} object {oid}"), line
    assert line.endswith("breaks " + ", ".join(versions)), line
    return line


def _assert_checkout_fails_cleanly(b: Built, rev: str, *needles: str) -> None:
    """Into a new DEST: a clear error, and no DEST, no staging directory afterwards."""
    dest = b.work / "out" / f"dest-{rev}"
    proc = run_vault(b.repo, "checkout", rev, str(dest))
    assert_clean_error(proc, *needles)
    assert not os.path.lexists(dest)
    assert not os.path.lexists(dest.parent), "created parent directories were left behind"
    stray = [p for p in b.work.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert stray == []


def _assert_force_checkout_fails_cleanly(b: Built, rev: str, *needles: str) -> None:
    """Into an existing DEST with --clean (which would remove the user's own files once the
    version is staged): a clear error, existing files untouched."""
    dest = b.work / f"existing-{rev}"
    dest.mkdir()
    (dest / "d.txt").write_bytes(b"the user's own d.txt\n")
    (dest / "c.bin").write_bytes(b"the user's own c.bin\n")
    (dest / "keep").mkdir()
    (dest / "keep" / "mine.txt").write_text("mine\n")
    before = snapshot(dest)
    proc = run_vault(b.repo, "checkout", "--clean", rev, str(dest))
    assert_clean_error(proc, *needles)
    assert snapshot(dest) == before
    assert sorted(os.listdir(dest)) == ["c.bin", "d.txt", "keep"]  # no staging directory left


def _assert_intact(b: Built, *names: str) -> None:
    for name in names:
        dest = b.work / f"ok-{name}-{len(os.listdir(b.work))}"
        assert_checkout_matches(b.repo, name, b.snaps[name], dest)
        shutil.rmtree(dest)


# -- chunks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["c.bin", "log.txt"])
@pytest.mark.parametrize(
    "where",
    ["magic", "codec", "reserved", "length", "length-top", "first-payload", "middle", "last"],
)
def test_flipped_byte_in_a_chunk(built: Built, which: str, where: str) -> None:
    b = built
    oid = b.chunks("v002", which)[0]
    path = b.path(oid)
    expected_codec = codec.CODEC_RAW if which == "c.bin" else codec.CODEC_ZSTD
    assert codec.read_header(path.read_bytes()).codec == expected_codec
    size = path.stat().st_size
    offset = {
        "magic": 0,
        "codec": 4,
        "reserved": 6,
        "length": 9,
        "length-top": 15,  # makes the length overflow a C ssize_t
        "first-payload": codec.HEADER_SIZE,
        "middle": size // 2,
        "last": size - 1,
    }[where]
    assert oct(path.stat().st_mode & 0o777) == "0o444"
    flip_byte(path, offset)

    _verify_fails_naming(b, oid, ["v002", "v003"])
    ok(run_vault(b.repo, "verify", "v001"))
    assert run_vault(b.repo, "verify", "v003").returncode == 1
    _assert_checkout_fails_cleanly(b, "v002", "corrupt", oid)
    _assert_force_checkout_fails_cleanly(b, "v003", "corrupt", oid)
    assert [e["version"] for e in log_json(b.repo)] == ["v003", "v002", "v001"]
    _assert_intact(b, "v001")


def test_single_byte_damage_anywhere_never_yields_wrong_bytes(built: Built) -> None:
    """Whatever byte of a stored object is damaged (or wherever it is cut short), reading it
    raises CorruptObject (no other exception: a damaged length must not become an overflow or
    a huge allocation) or, where a compressed stream has bits that do not matter, returns the
    original content. Never anything else."""
    b = built
    r = b.api()
    targets = {
        "raw chunk": b.chunks("v002", "c.bin")[0],
        "zstd chunk": b.chunks("v002", "log.txt")[0],
        "manifest": b.manifest("v002", "c.bin"),
        "tree": b.tree("v003"),
        "version": b.version("v002"),
    }
    for label, oid in targets.items():
        path = b.path(oid)
        good = path.read_bytes()
        content = r.store.get(oid)  # type: ignore[arg-type]
        make_writable(path)
        # Every bit pattern in the first 64 bytes (header and zstd frame header), then samples.
        positions = [*range(min(len(good), 64)), *range(64, len(good), max(1, len(good) // 400))]
        harmless = []
        for pos in positions:
            for flip in (0xFF, 0x01, 0x80) if pos < 64 else (0xFF,):
                damaged = bytearray(good)
                damaged[pos] ^= flip
                path.write_bytes(bytes(damaged))
                try:
                    got = r.store.get(oid)  # type: ignore[arg-type]
                except CorruptObject:
                    continue
                assert got == content, f"{label}: flip {flip:#x} at {pos} returned other bytes"
                harmless.append(pos)
        # The header is fully checked; only a few bits of a zstd stream may not matter.
        assert all(pos >= codec.HEADER_SIZE for pos in harmless), (label, harmless)
        assert len(harmless) <= len(positions) // 100, (label, harmless)
        for cut in range(0, len(good), max(1, len(good) // 97)):
            path.write_bytes(good[:cut])
            with pytest.raises(CorruptObject):
                r.store.get(oid)  # type: ignore[arg-type]
        path.write_bytes(good)
        assert r.store.get(oid) == content  # type: ignore[arg-type]


@pytest.mark.parametrize("keep", [0, 10, "half"])
def test_truncated_chunk(built: Built, keep: int | str) -> None:
    b = built
    oid = b.chunks("v003", "c.bin")[-1]
    path = b.path(oid)
    data = path.read_bytes()
    make_writable(path)
    path.write_bytes(data[: len(data) // 2 if keep == "half" else keep])  # type: ignore[operator]
    _verify_fails_naming(b, oid, ["v002", "v003"])
    _assert_checkout_fails_cleanly(b, "v003", "corrupt", oid)
    _assert_force_checkout_fails_cleanly(b, "v002", "corrupt", oid)
    _assert_intact(b, "v001")


def test_missing_chunk(built: Built) -> None:
    b = built
    oid = b.chunks("v001", "a.bin")[0]
    b.path(oid).unlink()
    _verify_fails_naming(b, oid, ["v001", "v002"], problem="missing")
    _assert_checkout_fails_cleanly(b, "v001", "missing", oid)
    _assert_force_checkout_fails_cleanly(b, "v002", "missing", oid)
    _assert_intact(b, "v003")
    with pytest.raises(ObjectMissing):
        b.api().store.get(oid)  # type: ignore[arg-type]


# -- manifests, trees, versions --------------------------------------------------------------


def test_damaged_file_manifest(built: Built) -> None:
    b = built
    oid = b.manifest("v002", "c.bin")
    flip_byte(b.path(oid), codec.HEADER_SIZE + 5)
    _verify_fails_naming(b, oid, ["v002", "v003"])
    _assert_checkout_fails_cleanly(b, "v003", "corrupt", oid)
    _assert_force_checkout_fails_cleanly(b, "v002", "corrupt", oid)
    _assert_intact(b, "v001")


def test_damaged_tree(built: Built) -> None:
    b = built
    oid = b.tree("v002")
    flip_byte(b.path(oid), -3)
    _verify_fails_naming(b, oid, ["v002"])
    _assert_checkout_fails_cleanly(b, "v002", "corrupt", oid)
    _assert_force_checkout_fails_cleanly(b, "v002", "corrupt", oid)
    assert_clean_error(run_vault(b.repo, "show", "v002"), "corrupt", oid)
    _assert_intact(b, "v001", "v003")
    assert len(log_json(b.repo)) == 3  # log reads versions, not trees


def test_damaged_version(built: Built) -> None:
    b = built
    oid = b.version("v002")
    flip_byte(b.path(oid), codec.HEADER_SIZE + 2)
    _verify_fails_naming(b, oid, ["v002"])
    _assert_checkout_fails_cleanly(b, "v002", "corrupt", oid)
    _assert_force_checkout_fails_cleanly(b, "v002", "corrupt", oid)
    # The history from latest passes through v002: log cannot walk it, and says why.
    assert_clean_error(run_vault(b.repo, "log"), "corrupt", oid)
    assert len(log_json_rev(b, "v001")) == 1
    _assert_intact(b, "v001", "v003")


def log_json_rev(b: Built, rev: str) -> list[dict]:
    return json.loads(ok(run_vault(b.repo, "log", rev, "--json")).stdout)


def test_gc_refuses_to_collect_from_a_damaged_manifest(built: Built) -> None:
    """A damaged tree hides what it reaches: gc must stop before deleting anything."""
    b = built
    flip_byte(b.path(b.tree("v003")), codec.HEADER_SIZE + 1)
    before = set(object_files(b.repo))
    proc = run_vault(b.repo, "gc", "--grace", "0s")
    assert_clean_error(proc, "corrupt")
    assert set(object_files(b.repo)) == before


# -- refs.json -------------------------------------------------------------------------------

BAD_REFS = {
    "garbage": b"\x00\x9f\xfe not json at all",
    "empty": b"",
    "truncated": None,  # the first half of the real file
    "array": b"[]",
    "null": b"null",
    "refs-array": b'{"format": 1, "next_version": 4, "refs": []}',
    "bad-id": b'{"format": 1, "next_version": 4, "refs": {"latest": "v003"}}',
    "bad-number": b'{"format": 1, "next_version": "four", "refs": {}}',
    "future-format": b'{"format": 2, "next_version": 4, "refs": {}}',
    "missing": None,
}


@pytest.mark.parametrize("kind", list(BAD_REFS))
def test_corrupt_refs_json(built: Built, kind: str) -> None:
    b = built
    refs = b.repo / "refs.json"
    good = refs.read_bytes()
    if kind == "missing":
        refs.unlink()
    else:
        bad = BAD_REFS[kind]
        refs.write_bytes(good[: len(good) // 2] if bad is None else bad)
    damaged = refs.read_bytes() if refs.exists() else None
    objects = set(object_files(b.repo))
    src = b.work / "src-v003"
    for args in (
        ["log"],
        ["verify"],
        ["show", "v001"],
        ["checkout", "v001", str(b.work / "out" / "x")],
        ["commit", str(src), "-m", "on broken refs"],
        ["tag", "best", "v001"],
        ["gc", "--grace", "0s"],
        ["stats"],
    ):
        proc = run_vault(b.repo, *args)
        assert_clean_error(proc, "refs.json")
        assert not (b.work / "out").exists()
        # Nothing rewrote refs.json or deleted objects on the strength of a broken one.
        assert (refs.read_bytes() if refs.exists() else None) == damaged, args
        assert set(object_files(b.repo)) >= objects, args
    refs.write_bytes(good)
    assert_verify_ok(b.repo)
    _assert_intact(b, "v001", "v002", "v003")
