"""Packs: small objects gathered in one backend file with an index, read and verified like loose
objects, collected and repacked by gc, on a directory, in memory and on S3 (a real SeaweedFS).

Repositories are real: files are committed with :class:`vault.Repository`, then their objects
are moved into packs the way a push lays them on a remote (read in their stored encoding, written
through a pack writer, the loose copies removed).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock, make_model_dir, tree_bytes
from faultkit import ok, run_vault, vault_env, write_checkpoint

from vault import Repository
from vault.backend import Backend, LocalBackend
from vault.backend_memory import MemoryBackend
from vault.backend_s3 import S3Backend
from vault.errors import CorruptObject, ObjectMissing
from vault.ids import Oid, hash_bytes
from vault.packs import PACK_MAGIC, encode_index, index_key, pack_key
from vault.refs import LATEST, VERSIONS
from vault.store import ObjectStore

KILLED = -signal.SIGKILL


class Place:
    """A backend of one kind, and how time passes on it (to age files past a grace period)."""

    def __init__(self, kind: str, backend: Backend, clock: Any = None) -> None:
        self.kind = kind
        self.backend = backend
        self.clock = clock
        # S3 stamps files with the server's clock, which a test cannot move: it waits instead.
        self.grace = "5s" if kind == "s3" else "1h"

    def pass_time(self) -> None:
        """Make everything written so far older than :attr:`grace`."""
        if self.kind == "memory":
            self.clock.now += 7200
        elif self.kind == "local":
            root = self.backend.capabilities.local_root
            assert root is not None
            for folder in ("objects", "packs", "index"):
                for path in (root / folder).rglob("*"):
                    if path.is_file():
                        st = path.stat()
                        os.utime(path, (st.st_atime - 7200, st.st_mtime - 7200))
        else:
            time.sleep(7)


@pytest.fixture(params=["local", "memory", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "local":
        (tmp_path / "repo" / "tmp").mkdir(parents=True)  # as init makes it
        return Place("local", LocalBackend(tmp_path / "repo"))
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        bucket, prefix = request.getfixturevalue("s3_bucket"), request.getfixturevalue("s3_prefix")
        return Place("s3", S3Backend(bucket, prefix, endpoint_url=server.endpoint))
    clock = Clock()
    return Place("memory", MemoryBackend(clock=clock), clock)


def small_objects(n: int, seed: int = 0) -> dict[Oid, bytes]:
    """``n`` small objects in their stored encoding (as a loose object file holds them)."""
    rng = random.Random(seed)
    source = ObjectStore(MemoryBackend())
    out: dict[Oid, bytes] = {}
    for i in range(n):
        content = f"file {i}: ".encode() + rng.randbytes(rng.randrange(20, 400))
        oid = source.put(content).oid
        out[oid] = source.raw(oid)
    return out


def write_packs(store: ObjectStore, objects: dict[Oid, bytes], **kwargs: Any) -> list[str]:
    """Write ``objects`` through a pack writer of ``store``; return the packs written."""
    with store.pack_writer(**kwargs) as writer:
        for oid, stored in objects.items():
            writer.add(oid, stored)
    return writer.packs


def keys(backend: Backend) -> list[str]:
    return [k for folder in ("objects", "packs", "index") for k, _ in backend.list(folder)]


def pack_everything(repo: Repository, junk: dict[Oid, bytes] | None = None) -> list[str]:
    """Move every loose object of ``repo`` into packs, bases before their deltas, with the
    objects ``junk`` (which nothing refers to) among them; return the packs written."""
    store = repo.store
    loose = [oid for oid, _ in store.list_loose()]

    def depth(oid: Oid) -> int:
        header = store.head(oid)
        return header.depth if header is not None else 0

    with store.pack_writer() as writer:
        for oid in sorted(loose, key=depth):
            writer.add(oid, store.raw(oid))
        for oid, stored in (junk or {}).items():
            writer.add(oid, stored)
    for oid in loose:
        store.delete(oid)
    return writer.packs


def junk_pack(store: ObjectStore, n: int, seed: int) -> tuple[str, list[Oid]]:
    """A pack of ``n`` objects nothing refers to (a push whose refs never came)."""
    objects = small_objects(n, seed)
    (pack,) = write_packs(store, objects)
    return pack, list(objects)


def flip(backend: Backend, key: str, offset: int) -> None:
    data = bytearray(backend.get(key))
    data[offset] ^= 0xFF
    if isinstance(backend, LocalBackend):  # objects are read-only files
        os.chmod(backend.root / key, 0o644)
    backend.put(key, bytes(data))


# -- writing and reading -------------------------------------------------------------------------


def test_packed_objects_read_back_verified_from_a_handful_of_keys(place: Place) -> None:
    objects = small_objects(3000)
    store = ObjectStore(place.backend)
    writer = store.pack_writer()
    for oid, stored in objects.items():
        assert writer.add(oid, stored)
    assert not writer.add(next(iter(objects)), objects[next(iter(objects))])  # once per pack
    some = next(iter(objects))
    assert store.get(some) and store.has(some)  # readable while it waits in the writer
    writer.flush()
    assert writer.objects == 3000 and len(writer.packs) == 1
    assert writer.bytes == sum(len(s) for s in objects.values())
    assert len(keys(place.backend)) <= 4  # one pack and its index

    for reader in (store, ObjectStore(place.backend)):  # the writer's store, and a fresh one
        for oid, stored in objects.items():
            assert hash_bytes(reader.get(oid)) == oid
            assert reader.raw(oid) == stored
        oid, stored = some, objects[some]
        assert reader.has(oid)
        st = reader.stat(oid)
        assert st is not None and st.size == len(stored)
        header = reader.head(oid)
        assert header is not None and reader.looks_intact(oid, header.size)
        assert {o for o, _ in reader.list()} == set(objects)
        assert list(reader.list_loose()) == []
    pack = writer.packs[0]
    assert place.backend.get(pack_key(pack)).startswith(PACK_MAGIC)
    assert hash_bytes(place.backend.get(pack_key(pack))) == pack
    index = json.loads(place.backend.get(index_key(pack)))
    assert index["format"] == 1 and index["pack"] == pack and len(index["objects"]) == 3000


def test_a_pack_is_cut_at_its_target_size(place: Place) -> None:
    objects = small_objects(200)
    assert len(write_packs(ObjectStore(place.backend), objects, target=8 << 10)) > 3
    fresh = ObjectStore(place.backend)
    assert all(hash_bytes(fresh.get(oid)) == oid for oid in objects)


def test_the_writer_refuses_bytes_that_are_not_the_object(place: Place) -> None:
    (a, stored_a), (b, _) = list(small_objects(2).items())
    store = ObjectStore(place.backend)
    with store.pack_writer() as writer:
        with pytest.raises(CorruptObject):
            writer.add(b, stored_a)  # a's bytes under b's name
        writer.add(a, stored_a)
    assert not store.has(b) and store.has(a)


def test_a_damaged_byte_in_a_pack_breaks_that_object_only(place: Place) -> None:
    objects = small_objects(50)
    (pack,) = write_packs(ObjectStore(place.backend), objects)
    index = json.loads(place.backend.get(index_key(pack)))
    victim, offset, length = index["objects"][20]
    flip(place.backend, pack_key(pack), offset + length - 3)
    fresh = ObjectStore(place.backend)
    with pytest.raises(CorruptObject) as exc:
        fresh.get(Oid(victim))
    assert exc.value.oid == victim
    for oid in objects:
        if oid != victim:
            assert hash_bytes(fresh.get(oid)) == oid
    # Another intact copy (here a loose one) is read instead of the damaged one.
    fresh.put_raw(Oid(victim), objects[Oid(victim)])
    assert hash_bytes(ObjectStore(place.backend).get(Oid(victim))) == victim


def test_an_index_past_its_pack_end_is_damage_not_a_crash(place: Place) -> None:
    objects = list(small_objects(3).items())
    body = b"".join(stored for _, stored in objects)
    data = PACK_MAGIC + body
    pack = hash_bytes(data)
    entries = []
    offset = len(PACK_MAGIC)
    for oid, stored in objects:
        entries.append((oid, offset, len(stored)))
        offset += len(stored)
    last_oid, last_off, last_len = entries[-1]
    entries[-1] = (last_oid, last_off, last_len + 500)  # past the end of the pack
    place.backend.put(pack_key(pack), data)
    doc = json.loads(encode_index(pack, entries))
    doc["comment"] = "an unknown field is ignored"
    place.backend.put(index_key(pack), json.dumps(doc).encode())

    store = ObjectStore(place.backend)
    for oid, _ in objects[:-1]:
        assert hash_bytes(store.get(oid)) == oid
    with pytest.raises((CorruptObject, ObjectMissing)):
        store.get(last_oid)
    with pytest.raises(CorruptObject):
        store.raw(last_oid)
    assert not store.looks_intact(last_oid, 10)
    assert [d.key for d in store.packs.damaged] == [index_key(pack)]
    assert "up to" in store.packs.damaged[0].problem


def test_indexes_without_their_pack_or_unreadable_are_damage(place: Place) -> None:
    objects = small_objects(3)
    (pack,) = write_packs(ObjectStore(place.backend), objects)
    place.backend.delete(pack_key(pack))
    bogus = hash_bytes(b"no such pack")
    place.backend.put(index_key(bogus), b"{not json")
    fresh = ObjectStore(place.backend)
    for oid in objects:
        with pytest.raises(ObjectMissing):
            fresh.get(oid)
    found = {d.key: d.problem for d in fresh.packs.damaged}
    assert found[index_key(pack)] == "its pack is missing"
    assert "not JSON" in found[index_key(bogus)]


def test_a_store_finds_packs_published_after_it_loaded_them(place: Place) -> None:
    reader = ObjectStore(place.backend)
    assert not reader.has(hash_bytes(b"x"))  # the packs are loaded now: there are none
    objects = small_objects(5)
    write_packs(ObjectStore(place.backend), objects)
    for oid in objects:
        assert hash_bytes(reader.get(oid)) == oid


# -- a repository whose objects are packed --------------------------------------------------------


def test_a_version_of_3000_small_files_packs_into_few_keys(tmp_path: Path) -> None:
    src = tmp_path / "many"
    for i in range(3000):
        path = src / f"d{i % 30:02d}" / f"f{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"small file {i}\n" * (1 + i % 7))
    repo = Repository.init(MemoryBackend())
    repo.commit(src, "many small files")
    pack_everything(repo)
    assert len(keys(repo.backend)) <= 60
    again = Repository.open(repo.backend)
    assert again.verify().ok
    again.checkout("latest", tmp_path / "out")
    assert tree_bytes(tmp_path / "out") == tree_bytes(src)


def test_verify_passes_over_packs_and_finds_a_damaged_packed_object(tmp_path: Path) -> None:
    repo = Repository.init(MemoryBackend())
    model = make_model_dir(tmp_path / "model", seed=3)
    repo.commit(model, "model")
    packs = pack_everything(repo)
    report = Repository.open(repo.backend).verify()
    assert report.ok and report.objects > 5
    tree = repo.store.get_tree(repo.store.get_version(repo.resolve("latest")).tree)
    config = next(e for e in tree.entries if e.path == "config.json")
    assert config.file is not None
    victim = repo.store.get_file(config.file).chunks[0].oid
    index = json.loads(repo.backend.get(index_key(packs[0])))
    _, offset, length = next(e for e in index["objects"] if e[0] == victim)
    flip(repo.backend, pack_key(packs[0]), offset + length // 2)
    report = Repository.open(repo.backend).verify()
    assert [(d.oid, d.problem) for d in report.damaged] == [(victim, "corrupt")]
    assert report.damaged[0].versions == ["v001"]


def checkpoints(repo: Repository, tmp_path: Path) -> Path:
    """Commit two steps of a drifting checkpoint (the second stored as deltas of the first)
    and a model beside the second; return the source of the last version."""
    src = tmp_path / "ckpt"
    write_checkpoint(src, 1)
    repo.commit(src, "step 1")
    write_checkpoint(src, 2)
    make_model_dir(src / "model", seed=5)
    repo.commit(src, "step 2")
    assert any(repo.store.delta_base(oid) for oid, _ in repo.store.list())
    return src


@pytest.fixture
def packed(place: Place, tmp_path: Path) -> tuple[Repository, Path]:
    """A repository on ``place`` whose every object is packed."""
    repo = Repository.init(place.backend)
    src = checkpoints(repo, tmp_path)
    pack_everything(repo)
    return repo, src


def assert_reads_back(repo: Repository, src: Path, out: Path) -> None:
    fresh = Repository.open(repo.backend)
    assert fresh.verify().ok
    fresh.checkout("latest", out)
    assert tree_bytes(out) == tree_bytes(src)


def test_gc_drops_a_dead_old_pack_and_keeps_young_ones(
    place: Place, packed: tuple[Repository, Path], tmp_path: Path
) -> None:
    repo, src = packed
    old, old_junk = junk_pack(repo.store, 40, seed=1)
    place.pass_time()
    young, young_junk = junk_pack(repo.store, 40, seed=2)
    before = set(keys(place.backend))
    dry = repo.gc(grace=place.grace, dry_run=True)
    assert dry.objects == 40 and dry.packs_removed == 1
    assert set(keys(place.backend)) == before
    result = repo.gc(grace=place.grace)
    assert result.objects == 40 and result.packs_removed == 1 and result.kept_young == 40
    left = set(keys(place.backend))
    assert before - left == {pack_key(old), index_key(old)}
    fresh = ObjectStore(place.backend)
    assert not any(fresh.has(o) for o in old_junk) and all(fresh.has(o) for o in young_junk)
    assert_reads_back(repo, src, tmp_path / "out")


def test_gc_repacks_a_mostly_dead_pack(place: Place, tmp_path: Path) -> None:
    repo = Repository.init(place.backend)
    src = checkpoints(repo, tmp_path)
    live = [oid for oid, _ in repo.store.list()]
    junk = small_objects(2500, seed=7)
    (mixed,) = pack_everything(repo, junk)
    place.pass_time()
    dry = repo.gc(grace=place.grace, dry_run=True)
    assert dry.packs_repacked == 1 and dry.objects == len(junk)
    result = repo.gc(grace=place.grace)
    assert result.packs_repacked == 1 and result.objects == len(junk)
    assert place.backend.stat(pack_key(mixed)) is None
    assert place.backend.stat(index_key(mixed)) is None
    fresh = ObjectStore(place.backend)
    assert not any(fresh.has(o) for o in junk)
    assert all(fresh.has(o) for o in live)
    assert len(fresh.packs.packs()) == 1 and list(fresh.list_loose()) == []
    assert_reads_back(repo, src, tmp_path / "out")


def test_gc_leaves_a_pack_with_little_dead_weight(place: Place, tmp_path: Path) -> None:
    repo = Repository.init(place.backend)
    checkpoints(repo, tmp_path)
    (pack,) = pack_everything(repo, small_objects(2, seed=8))
    place.pass_time()
    before = set(keys(place.backend))
    result = repo.gc(grace=place.grace)
    assert result.packs_repacked == 0 and result.objects == 0
    assert set(keys(place.backend)) == before == {pack_key(pack), index_key(pack)}


def test_gc_of_packs_killed_at_every_step_keeps_every_reachable_object(tmp_path: Path) -> None:
    """A repository whose objects lie in a mostly dead pack, beside a dead pack and old
    versions let go: wherever gc is killed (after the repack, after each deletion), every
    object the refs reach still reads back, and a second gc finishes the job."""
    template = tmp_path / "template"
    repo = Repository.init(template)
    steps = [write_checkpoint(tmp_path / f"step{s}", s, tensors=2) for s in (1, 2, 3)]
    for s, path in enumerate(steps, 1):
        repo.commit(path, f"step {s}")
    with repo.refs.transaction("test: let step 2 go") as txn:
        txn.delete(VERSIONS + "v002", expected=txn.get(VERSIONS + "v002"))
    junk = small_objects(2000, seed=9)
    pack_everything(repo, junk)
    junk_pack(repo.store, 30, seed=10)
    plan = Repository.open(template).gc(grace=0, dry_run=True)
    assert plan.packs_repacked == 1 and plan.packs_removed == 1
    points = ["gc-planned", "gc-repacked"] + [f"gc-deleted:{n}" for n in range(1, 100)]
    for point in points:
        root = tmp_path / point.replace(":", "-")
        shutil.copytree(template, root)
        proc = run_vault(root, "gc", "--grace", "0s", env=vault_env(VAULT_CRASHPOINT=point))
        if proc.returncode == 0 and point.startswith("gc-deleted:"):
            assert int(point.split(":")[1]) > 4, "the old index and pack, the dead ones"
            break
        assert proc.returncode == KILLED, f"{point} not reached: {proc.stderr}"
        after = Repository.open(root)
        assert after.verify().ok, point
        after.checkout("latest", tmp_path / f"out-{point}")
        assert tree_bytes(tmp_path / f"out-{point}") == tree_bytes(steps[-1])
        ok(run_vault(root, "gc", "--grace", "0s"))
        done = Repository.open(root)
        assert done.verify().ok
        assert not any(done.store.has(o) for o in junk)
        assert len(done.store.packs.packs()) == 1 and not done.store.packs.orphans
        shutil.rmtree(root)


def test_a_format_3_repository_opens_and_is_upgraded_on_first_write(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / ".vault")
    config = tmp_path / ".vault" / "config.json"
    config.write_text(json.dumps({"format": 3}))
    (tmp_path / "f.txt").write_text("x")
    old = Repository.open(tmp_path / ".vault")
    assert old.log() == []
    old.commit(tmp_path / "f.txt", "first")
    assert json.loads(config.read_text())["format"] == 4
    assert repo.refs.read().refs[LATEST]
