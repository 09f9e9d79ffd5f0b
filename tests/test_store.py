"""backend, store and objects: keys and bytes; content-addressed objects verified on read;
canonical manifests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vault.backend import LocalBackend
from vault.codec import CODEC_RAW, CODEC_ZSTD, read_header
from vault.errors import CorruptObject, ObjectMissing
from vault.ids import hash_bytes
from vault.objects import (
    KIND_FILE,
    KIND_LINK,
    ChunkRef,
    FileManifest,
    ManifestError,
    Tree,
    TreeEntry,
    Version,
    canonical_json,
)
from vault.store import ObjectStore, object_key


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    (tmp_path / "root" / "tmp").mkdir(parents=True)  # Repository.init creates it
    return LocalBackend(tmp_path / "root")


@pytest.fixture
def store(backend: LocalBackend) -> ObjectStore:
    return ObjectStore(backend)


def _object_path(store: ObjectStore, oid: str) -> Path:
    return store.backend.root / object_key(oid)  # type: ignore[attr-defined]


def _rewrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


# -- backend ---------------------------------------------------------------------------------


# The backend's own tests are the contract suite: tests/backend_contract.py.


# -- store -----------------------------------------------------------------------------------


def test_put_returns_blake3_of_uncompressed_content(store: ObjectStore) -> None:
    data = b"\0" * 10_000
    res = store.put(data)
    assert res.oid == hash_bytes(data)
    assert res.size == len(data) and res.new and 0 < res.stored < len(data)
    assert store.get(res.oid) == data
    assert store.has(res.oid)


def test_put_compresses_when_it_pays_and_stores_raw_otherwise(store: ObjectStore) -> None:
    zeros = store.put(b"\0" * 10_000)
    noise = store.put(os.urandom(10_000))
    assert read_header(_object_path(store, zeros.oid).read_bytes()).codec == CODEC_ZSTD
    assert read_header(_object_path(store, noise.oid).read_bytes()).codec == CODEC_RAW
    raw = store.put(b"\1" * 10_000, compress=False)
    assert read_header(_object_path(store, raw.oid).read_bytes()).codec == CODEC_RAW
    assert raw.stored == 10_000 + 16


def test_put_existing_object_writes_nothing(store: ObjectStore) -> None:
    first = store.put(b"same bytes")
    second = store.put(b"same bytes")
    assert second.oid == first.oid and second.stored == 0 and not second.new


def test_object_layout_is_two_hex_fanout(store: ObjectStore) -> None:
    oid = store.put(b"layout").oid
    assert object_key(oid) == f"objects/{oid[:2]}/{oid[2:]}"
    assert _object_path(store, oid).is_file()


def test_get_missing_raises_object_missing(store: ObjectStore) -> None:
    oid = hash_bytes(b"never stored")
    with pytest.raises(ObjectMissing) as info:
        store.get(oid)
    assert info.value.oid == oid
    assert not store.has(oid)


def test_get_detects_flipped_byte(store: ObjectStore) -> None:
    oid = store.put(os.urandom(1000)).oid  # raw: the flip survives decoding
    path = _object_path(store, oid)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    _rewrite(path, bytes(data))
    with pytest.raises(CorruptObject) as info:
        store.get(oid)
    assert info.value.oid == oid and info.value.actual not in (None, oid)


def test_get_detects_undecodable_object(store: ObjectStore) -> None:
    oid = store.put(b"\0" * 5000).oid
    _rewrite(_object_path(store, oid), b"garbage")
    with pytest.raises(CorruptObject):
        store.get(oid)


def test_get_detects_object_swapped_for_another(store: ObjectStore) -> None:
    a = store.put(b"content A" * 10).oid
    b = store.put(b"content B" * 10).oid
    _rewrite(_object_path(store, a), _object_path(store, b).read_bytes())
    with pytest.raises(CorruptObject) as info:
        store.get(a)
    assert info.value.actual == b


def test_list_yields_objects_and_skips_strays(store: ObjectStore) -> None:
    oids = {store.put(f"obj {i}".encode()).oid for i in range(5)}
    root = store.backend.root  # type: ignore[attr-defined]
    (root / "objects" / "README").write_text("stray")
    (root / "objects" / "zz").mkdir()
    (root / "objects" / "zz" / "notanid").write_text("stray")
    listed = dict(store.list())
    assert set(listed) == oids
    for oid in oids:
        assert listed[oid].size == store.stat(oid).size  # type: ignore[union-attr]


def test_delete(store: ObjectStore) -> None:
    oid = store.put(b"to delete").oid
    store.delete(oid)
    assert not store.has(oid)
    store.delete(oid)  # idempotent


def test_typed_getters_refuse_the_wrong_type(store: ObjectStore) -> None:
    chunk = store.put(b"just bytes").oid
    manifest = FileManifest((ChunkRef(chunk, 10),))
    fid = store.put(manifest.to_bytes()).oid
    assert store.get_file(fid) == manifest
    with pytest.raises(CorruptObject):
        store.get_tree(fid)
    with pytest.raises(CorruptObject):
        store.get_version(fid)
    with pytest.raises(CorruptObject):
        store.get_file(chunk)


# -- objects ---------------------------------------------------------------------------------


def _oid(n: int) -> str:
    return hash_bytes(str(n).encode())


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_file_manifest_round_trip_and_size() -> None:
    m = FileManifest((ChunkRef(_oid(1), 10), ChunkRef(_oid(2), 5)))
    assert m.size == 15
    data = m.to_bytes()
    assert json.loads(data) == {
        "type": "file",
        "size": 15,
        "chunks": [[_oid(1), 10], [_oid(2), 5]],
    }
    assert FileManifest.from_bytes(data) == m
    assert FileManifest(()).size == 0


def test_tree_serialisation_is_order_independent() -> None:
    a = TreeEntry("b.txt", KIND_FILE, size=3, mode=0o755, file=_oid(1))
    b = TreeEntry("a/link", KIND_LINK, size=6, target="../b.txt")
    t1, t2 = Tree((a, b)), Tree((b, a))
    assert t1.to_bytes() == t2.to_bytes()
    assert hash_bytes(t1.to_bytes()) == hash_bytes(t2.to_bytes())
    back = Tree.from_bytes(t1.to_bytes())
    assert [e.path for e in back.entries] == ["a/link", "b.txt"]
    assert back.entries[1].mode == 0o755 and back.entries[0].target == "../b.txt"
    assert t1.size == 3 and t1.file_count == 2


def test_version_round_trip() -> None:
    v = Version(
        tree=_oid(1),
        parents=(_oid(2),),
        message="hello\nworld ✓",
        created="2024-01-02T03:04:05+00:00",
        name="v002",
        meta={"lr": "0.1", "step": 100},
        size=1234,
        files=3,
    )
    assert json.loads(v.to_bytes())["bytes"] == 1234
    assert Version.from_bytes(v.to_bytes()) == v
    assert v.to_bytes() == Version.from_bytes(v.to_bytes()).to_bytes()


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"type":"tree","entries":[]}',
        b'{"type":"file"}',
        b'{"type":"file","chunks":[["abc",1]]}',
        b'{"type":"file","chunks":[[1]]}',
    ],
)
def test_bad_file_manifests_raise_manifest_error(data: bytes) -> None:
    with pytest.raises(ManifestError):
        FileManifest.from_bytes(data)


@pytest.mark.parametrize(
    "entry",
    [
        {"path": "x", "kind": "dir"},
        {"path": 5, "kind": "file", "size": 1, "mode": 420, "file": "0" * 64},
        {"path": "x", "kind": "link", "target": 7},
        {"path": "x", "kind": "file", "size": 1, "mode": 420, "file": "short"},
        {"path": "x", "kind": "file"},
    ],
)
def test_bad_tree_entries_raise_manifest_error(entry: dict) -> None:
    with pytest.raises(ManifestError):
        Tree.from_bytes(json.dumps({"type": "tree", "entries": [entry]}).encode())


def test_bad_version_raises_manifest_error() -> None:
    with pytest.raises(ManifestError):
        Version.from_bytes(b'{"type":"version","tree":"nope","parents":[]}')
    with pytest.raises(ManifestError):
        Version.from_bytes(b'{"type":"version","parents":[]}')


def test_the_store_names_every_object_it_stores(store: ObjectStore) -> None:
    """No caller hands the store an id for new content: put() hashes what it stores, delta
    and byte-plane objects included."""
    import inspect

    import numpy as np

    assert not hasattr(ObjectStore, "put_hashed")
    assert "oid" not in inspect.signature(ObjectStore.put).parameters
    base = np.arange(4096, dtype=np.float32).tobytes()
    changed = (np.arange(4096, dtype=np.float32) + 0.5).tobytes()
    b = store.put(base, width=4)
    d = store.put(changed, width=4, base=b.oid)
    assert (b.oid, d.oid) == (hash_bytes(base), hash_bytes(changed))
    assert store.get(d.oid, size=len(changed)) == changed
