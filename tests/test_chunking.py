"""chunking: safetensors files cut along their layout, everything else by FastCDC."""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import make_safetensors, random_tensors

from vault import Repository
from vault.chunking import (
    CDC_MAX,
    CDC_MIN,
    PIECE_SIZE,
    Chunker,
    read_safetensors_header,
    safetensors_spans,
)
from vault.errors import NotSafetensors
from vault.ids import hash_bytes
from vault.safetensors_format import Header, parse_header


def pieces(path: Path) -> list[bytes]:
    return list(Chunker().pieces(path, path.stat().st_size))


def header_len(path: Path) -> int:
    with open(path, "rb") as f:
        return 8 + struct.unpack("<Q", f.read(8))[0]


def test_safetensors_header_chunk_then_one_chunk_per_tensor(tmp_path: Path) -> None:
    tensors = random_tensors(1, {"a": (10, 10), "b": (7,), "c": (3, 5)})
    path = make_safetensors(tmp_path / "m.safetensors", tensors)
    got = pieces(path)
    assert b"".join(got) == path.read_bytes()
    assert len(got[0]) == header_len(path)
    tensor_bytes = {t.tobytes() for t in tensors.values()}
    assert set(got[1:]) == tensor_bytes
    assert len(got) == 1 + len(tensors)


def test_safetensors_metadata_is_in_header_chunk(tmp_path: Path) -> None:
    tensors = random_tensors(2, {"w": (16,)})
    path = make_safetensors(tmp_path / "m.safetensors", tensors, metadata={"epoch": "3"})
    got = pieces(path)
    assert b'"epoch"' in got[0]
    assert got[1:] == [tensors["w"].tobytes()]


def test_large_tensor_is_cut_into_fixed_pieces(tmp_path: Path) -> None:
    big = np.arange((9 << 20) // 4, dtype=np.float32)  # 9 MiB
    small = np.ones(3, dtype=np.float32)
    path = make_safetensors(tmp_path / "big.safetensors", {"big": big, "small": small})
    got = pieces(path)
    assert b"".join(got) == path.read_bytes()
    sizes = [len(p) for p in got[1:]]
    assert sorted(sizes) == sorted([PIECE_SIZE, PIECE_SIZE, 1 << 20, 12])
    assert max(sizes) <= PIECE_SIZE


def test_zero_size_tensor_and_empty_file(tmp_path: Path) -> None:
    path = make_safetensors(
        tmp_path / "z.safetensors",
        {"empty": np.zeros((0, 4), dtype=np.float32), "x": np.ones(2, np.float32)},
    )
    got = pieces(path)
    assert b"".join(got) == path.read_bytes()
    assert all(len(p) > 0 for p in got)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert pieces(empty) == []


def test_safetensors_spans_tile_the_file(tmp_path: Path) -> None:
    path = make_safetensors(
        tmp_path / "m.safetensors",
        {
            "a": np.ones(5, np.float64),
            "b": np.ones((3, 3), np.int8),
            "c": np.ones(11, np.float16),
        },
    )
    size = path.stat().st_size
    with open(path, "rb") as f:
        parsed = read_safetensors_header(f, size)
    assert parsed is not None
    spans = safetensors_spans(parsed)
    pos = 0
    for off, n in spans:
        assert off == pos and n >= 0
        pos += n
    assert pos == size


def _header(doc: dict, file_size: int, length: int | None = None) -> Header:
    raw = json.dumps(doc).encode()
    raw += b" " * ((length or len(raw)) - len(raw))  # JSON allows trailing blanks
    return parse_header(raw, file_size, "test")


def test_spans_cover_padding_and_trailing_bytes() -> None:
    header = _header({"a": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}, 8 + 60 + 9, 60)
    spans = safetensors_spans(header)
    assert spans == [(0, 68), (68, 2), (70, 4), (74, 3)]


@pytest.mark.parametrize(
    "header",
    [
        {"a": {"data_offsets": [0, 10], "dtype": "U8", "shape": [10]}},  # past end of file
        {"a": {"data_offsets": [4, 2], "dtype": "U8", "shape": [0]}},  # hi < lo
        {
            "a": {"data_offsets": [0, 4], "dtype": "U8", "shape": [4]},
            "b": {"data_offsets": [2, 6], "dtype": "U8", "shape": [4]},
        },  # overlap
        {"a": {"dtype": "U8", "shape": [1]}},  # no offsets
        {"a": {"data_offsets": ["x", 1], "dtype": "U8", "shape": [1]}},
        {"a": {"data_offsets": [0, 4], "dtype": "U8", "shape": [3]}},  # shape != range
        {"a": {"data_offsets": [0, 4], "dtype": "X9", "shape": [4]}},  # unknown dtype
        {"a": {"data_offsets": [0, 4.0], "dtype": "U8", "shape": [4]}},  # not an integer
        {"a": {"data_offsets": [0, 4], "dtype": "U8", "shape": [-4]}},  # negative
        {"a": {"data_offsets": [0, 4], "dtype": "U8", "shape": [True, 4]}},  # a boolean
    ],
)
def test_untrusted_layouts_are_rejected(header: dict) -> None:
    raw = json.dumps(header).encode()
    path_size = 8 + len(raw) + 6
    with pytest.raises(NotSafetensors):
        parse_header(raw, path_size, "test")
    blob = struct.pack("<Q", len(raw)) + raw + b"\0" * 6
    assert read_safetensors_header(io.BytesIO(blob), len(blob)) is None


def test_malformed_safetensors_falls_back_to_cdc(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.safetensors"
    bad_json.write_bytes(struct.pack("<Q", 5) + b"{nope" + os.urandom(100))
    huge_len = tmp_path / "huge.safetensors"
    huge_len.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    not_dict = tmp_path / "list.safetensors"
    not_dict.write_bytes(struct.pack("<Q", 2) + b"[]" + b"x" * 10)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"abc")
    lie = tmp_path / "lie.safetensors"
    header = json.dumps({"a": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}}).encode()
    lie.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)  # truncated data
    for path in (bad_json, huge_len, not_dict, tiny, lie):
        got = pieces(path)
        assert got == [path.read_bytes()], path.name  # small file: one opaque chunk


def test_safetensors_layout_only_for_safetensors_names(tmp_path: Path) -> None:
    tensors = random_tensors(3, {"a": (100,), "b": (100,)})
    st = make_safetensors(tmp_path / "m.safetensors", tensors)
    other = tmp_path / "m.bin"
    other.write_bytes(st.read_bytes())
    assert len(pieces(st)) == 3
    assert pieces(other) == [other.read_bytes()]


def test_unchanged_tensor_dedups_when_a_tensor_is_added_before_it(tmp_path: Path) -> None:
    base = random_tensors(4, {"b.weight": (64, 64), "c.weight": (32,)})
    v1 = make_safetensors(tmp_path / "v1" / "m.safetensors", base)
    extra = random_tensors(5, {"a.weight": (17, 3)})
    v2 = make_safetensors(tmp_path / "v2" / "m.safetensors", {**extra, **base})
    # The unchanged tensors moved within the file, but their chunks are identical.
    p1, p2 = pieces(v1), pieces(v2)
    assert v1.read_bytes().find(base["b.weight"].tobytes()) != v2.read_bytes().find(
        base["b.weight"].tobytes()
    )
    assert set(p1[1:]) <= set(p2)
    new = set(p2) - set(p1)
    assert new == {p2[0], extra["a.weight"].tobytes()}


def test_unchanged_tensor_dedups_when_a_neighbour_changes_size(tmp_path: Path) -> None:
    t1 = random_tensors(6, {"a": (10, 10), "b": (50,), "c": (20,)})
    t2 = {**t1, "a": random_tensors(7, {"a": (30, 10)})["a"]}
    p1 = pieces(make_safetensors(tmp_path / "1.safetensors", t1))
    p2 = pieces(make_safetensors(tmp_path / "2.safetensors", t2))
    assert t1["b"].tobytes() in p2 and t1["c"].tobytes() in p2
    assert set(p2) - set(p1) == {p2[0], t2["a"].tobytes()}


def test_repo_dedups_unchanged_tensors_after_insertion(tmp_path: Path, repo: Repository) -> None:
    base = random_tensors(8, {"layer.1": (128, 64), "layer.2": (64,)})
    model = tmp_path / "model"
    make_safetensors(model / "m.safetensors", base)
    repo.commit(model, "v1")
    added = random_tensors(9, {"layer.0": (40,)})
    path = make_safetensors(model / "m.safetensors", {**added, **base})
    res = repo.commit(model, "v2")
    assert res.new_bytes == header_len(path) + added["layer.0"].nbytes


def test_large_unchanged_tensor_dedups_after_insertion(tmp_path: Path, repo: Repository) -> None:
    big = np.random.default_rng(12).standard_normal((9 << 20) // 4).astype(np.float32)
    model = tmp_path / "model"
    make_safetensors(model / "m.safetensors", {"m.big": big})
    first = repo.commit(model, "v1")
    assert first.new_bytes == first.bytes
    small = np.ones(5, dtype=np.float32)
    path = make_safetensors(model / "m.safetensors", {"a.small": small, "m.big": big})
    res = repo.commit(model, "v2")
    assert res.new_bytes == header_len(path) + small.nbytes


# -- FastCDC ---------------------------------------------------------------------------------


def test_small_file_is_one_chunk(tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    path.write_bytes(os.urandom(CDC_MIN))
    assert pieces(path) == [path.read_bytes()]


def test_cdc_chunks_tile_file_and_respect_bounds(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(np.random.default_rng(0).bytes(6 << 20))
    got = pieces(path)
    assert b"".join(got) == path.read_bytes()
    assert len(got) >= 3
    assert all(len(p) <= CDC_MAX for p in got)
    assert all(len(p) >= CDC_MIN for p in got[:-1])


def test_cdc_chunks_do_not_depend_on_read_window(tmp_path: Path) -> None:
    # Larger than one 16 MiB read window: the streamed cuts must equal the cuts FastCDC makes
    # over the whole buffer at once, including around the window seam.
    from pyfastcdc import FastCDC

    from vault.chunking import CDC_AVG

    data = np.random.default_rng(1).bytes(20 << 20)
    a = tmp_path / "a.bin"
    a.write_bytes(data)
    whole = [
        bytes(c.data) for c in FastCDC(CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX).cut_buf(data)
    ]
    assert pieces(a) == whole


def test_insertion_near_start_changes_few_chunks(tmp_path: Path) -> None:
    data = np.random.default_rng(2).bytes(12 << 20)
    a = tmp_path / "a.bin"
    a.write_bytes(data)
    b = tmp_path / "b.bin"
    b.write_bytes(data[:1000] + b"INSERTED" * 20 + data[1000:])
    pa, pb = pieces(a), pieces(b)
    assert len(pa) >= 6
    changed = set(pb) - set(pa)
    assert len(changed) <= 2
    assert len(set(pa) & set(pb)) >= len(pa) - 2


def test_repo_new_bytes_small_after_insertion(tmp_path: Path, repo: Repository) -> None:
    data = np.random.default_rng(3).bytes(8 << 20)
    path = tmp_path / "data" / "blob.bin"
    path.parent.mkdir()
    path.write_bytes(data)
    first = repo.commit(path.parent, "one")
    assert first.new_bytes == len(data)
    path.write_bytes(data[:500] + b"x" * 100 + data[500:])
    second = repo.commit(path.parent, "two")
    assert 0 < second.new_bytes <= 2 * CDC_MAX
    assert second.new_bytes < len(data) // 2


def test_chunk_ids_are_hashes_of_content(tmp_path: Path, repo: Repository) -> None:
    tensors = random_tensors(10, {"w": (100,)})
    path = make_safetensors(tmp_path / "d" / "m.safetensors", tensors)
    res = repo.commit(path, "c")
    tree = repo.store.get_tree(repo.store.get_version(res.id).tree)
    manifest = repo.store.get_file(tree.entries[0].file)
    expected = [hash_bytes(p) for p in pieces(path)]
    assert [c.oid for c in manifest.chunks] == expected
    for c in manifest.chunks:
        assert repo.store.has(c.oid)
