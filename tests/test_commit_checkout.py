"""commit and checkout through the Repository API: round trips, dedup, links, modes, names."""

from __future__ import annotations

import os
import stat
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import make_model_dir, make_safetensors, random_tensors, tree_bytes

from vault import Repository
from vault.errors import (
    DestinationNotEmpty,
    ObjectMissing,
    PathNotFound,
    StrayFiles,
    TagError,
    UnsafePath,
    UnsupportedFile,
)
from vault.objects import KIND_LINK
from vault.refs import LATEST, VERSIONS


def test_model_directory_round_trip(tmp_path: Path, repo: Repository) -> None:
    model = make_model_dir(tmp_path / "model", shards=3)
    res = repo.commit(model, "initial")
    assert res.version == "v001" and res.parents == []
    assert res.files == 5
    assert res.bytes == sum(len(b) for b in tree_bytes(model).values())
    assert res.new_bytes == res.bytes
    assert res.stored_bytes > 0
    dest = tmp_path / "a" / "b" / "out"  # parents are created
    out = repo.checkout("v001", dest)
    assert out.files == 5 and out.bytes == res.bytes
    assert tree_bytes(dest) == tree_bytes(model)
    assert not [p for p in dest.parent.iterdir() if p.name != "out"]  # no staging debris


def test_identical_commit_makes_no_version_unless_allowed_and_then_dedups(
    tmp_path: Path, repo: Repository
) -> None:
    model = make_model_dir(tmp_path / "model")
    first = repo.commit(model, "one")
    same = repo.commit(model, "two")
    assert same.unchanged and (same.version, same.id) == ("v001", first.id)
    second = repo.commit(model, "two", allow_empty=True)
    assert second.tree == first.tree
    assert second.id != first.id
    assert second.new_bytes == 0
    assert second.version == "v002" and second.parents == [first.id]
    assert repo.refs.read().refs[LATEST] == second.id
    assert [v.version for v in repo.log()] == ["v002", "v001"]


def test_identical_content_in_different_directories_gives_same_tree(
    tmp_path: Path, repo: Repository
) -> None:
    a = make_model_dir(tmp_path / "a", seed=5)
    b = make_model_dir(tmp_path / "elsewhere" / "b", seed=5)
    assert repo.commit(a, "a").tree == repo.commit(b, "b").tree


def test_changing_one_file_stores_only_its_new_chunks(tmp_path: Path, repo: Repository) -> None:
    model = make_model_dir(tmp_path / "model", shards=2)
    repo.commit(model, "one")
    (model / "config.json").write_text('{"hidden_size": 65}')
    res = repo.commit(model, "two")
    assert res.new_bytes == len('{"hidden_size": 65}')


def test_editing_one_tensor_stores_only_that_tensor(tmp_path: Path, repo: Repository) -> None:
    tensors = random_tensors(11, {"a": (64, 64), "b": (32, 32), "c": (100,)})
    path = make_safetensors(tmp_path / "m" / "model.safetensors", tensors)
    repo.commit(path.parent, "one")
    tensors["b"] = tensors["b"] + 1
    make_safetensors(path, tensors)
    res = repo.commit(path.parent, "two")
    assert res.new_bytes == tensors["b"].nbytes


def test_single_file_commit_and_checkout(tmp_path: Path, repo: Repository) -> None:
    f = tmp_path / "weights.safetensors"
    make_safetensors(f, {"w": np.arange(10, dtype=np.float32)})
    res = repo.commit(f, "just a file")
    assert res.files == 1
    info = repo.show("v001")
    assert [x.path for x in info.files or []] == ["weights.safetensors"]
    repo.checkout("v001", tmp_path / "out")
    assert (tmp_path / "out" / "weights.safetensors").read_bytes() == f.read_bytes()


def test_metadata_message_and_tags(tmp_path: Path, repo: Repository) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"x")
    res = repo.commit(f, "line one\nline two", tags=["best", "rc-1"], meta={"lr": "3e-4"})
    assert res.tags == ["best", "rc-1"]
    info = repo.show("best")
    assert info.id == res.id
    assert info.message == "line one\nline two"
    assert info.meta == {"lr": "3e-4"}
    assert info.tags == ["best", "rc-1"]
    assert datetime.fromisoformat(info.created).tzinfo is not None
    with pytest.raises(TagError):
        repo.commit(f, "again", tags=["best"])
    with pytest.raises(TagError):
        repo.commit(f, "bad", tags=["v009"])
    assert len(repo.log()) == 1  # failed commits record nothing
    again = repo.commit(f, "dup", tags=["twice", "twice"])
    assert again.tags == ["twice"] and repo.resolve("twice") == again.id


def test_symlinks_are_stored_as_links_never_followed(tmp_path: Path, repo: Repository) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"S" * 100_000)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "real.txt").write_text("real")
    os.symlink("real.txt", src / "rel-link")
    os.symlink(str(outside / "secret.bin"), src / "abs-link")
    os.symlink("../../outside", src / "sub" / "dir-link")
    os.symlink("does-not-exist", src / "dangling")
    res = repo.commit(src, "links")
    assert res.bytes == 4  # nothing behind the links was read
    info = repo.show("v001")
    links = {f.path: f.target for f in info.files or [] if f.kind == KIND_LINK}
    assert links == {
        "rel-link": "real.txt",
        "abs-link": str(outside / "secret.bin"),
        "sub/dir-link": "../../outside",
        "dangling": "does-not-exist",
    }
    dest = tmp_path / "dest"
    repo.checkout("v001", dest)
    for path, target in links.items():
        assert (dest / path).is_symlink()
        assert os.readlink(dest / path) == target
    assert (dest / "real.txt").read_text() == "real"


def test_committed_path_that_is_a_link_is_followed(tmp_path: Path, repo: Repository) -> None:
    model = make_model_dir(tmp_path / "model")
    os.symlink(model, tmp_path / "current")
    res = repo.commit(tmp_path / "current", "via link")
    assert res.files == 4
    repo.checkout("v001", tmp_path / "out")
    assert tree_bytes(tmp_path / "out") == tree_bytes(model)


def test_modes_survive_round_trip(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (src / "run.sh").chmod(0o755)
    (src / "data.txt").write_text("data")
    (src / "data.txt").chmod(0o640)
    repo.commit(src, "modes")
    repo.checkout("v001", tmp_path / "out")
    assert stat.S_IMODE((tmp_path / "out" / "run.sh").stat().st_mode) == 0o755
    assert os.access(tmp_path / "out" / "run.sh", os.X_OK)
    assert stat.S_IMODE((tmp_path / "out" / "data.txt").stat().st_mode) == 0o640


def test_chmod_alone_makes_a_new_tree(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "tool").write_text("x")
    first = repo.commit(src, "a")
    (src / "tool").chmod(0o755)
    second = repo.commit(src, "b")
    assert first.tree != second.tree and second.new_bytes == 0


def test_empty_files_unicode_and_spaces(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    (src / "dir with spaces" / "ünïcødé 模型").mkdir(parents=True)
    (src / "empty").write_bytes(b"")
    (src / "dir with spaces" / "file name.txt").write_text("spaced")
    (src / "dir with spaces" / "ünïcødé 模型" / "權重 🚀.bin").write_bytes(b"\x00\x01")
    res = repo.commit(src, "names")
    assert res.files == 3
    dest = tmp_path / "dest"
    repo.checkout("v001", dest)
    assert tree_bytes(dest) == tree_bytes(src)
    assert (dest / "empty").stat().st_size == 0


def test_empty_directories_are_not_tracked(tmp_path: Path, repo: Repository) -> None:
    """Like git, vault tracks files and links; a directory exists only through its contents."""
    src = tmp_path / "src"
    (src / "empty-dir" / "nested-empty").mkdir(parents=True)
    (src / "keep").write_text("k")
    res = repo.commit(src, "dirs")
    assert res.files == 1
    repo.checkout("v001", tmp_path / "dest")
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["keep"]


def test_empty_directory_commit_and_checkout(tmp_path: Path, repo: Repository) -> None:
    (tmp_path / "nothing").mkdir()
    res = repo.commit(tmp_path / "nothing", "empty", allow_empty=True)
    assert res.files == 0 and res.bytes == 0
    repo.checkout("v001", tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_repository_inside_committed_directory_is_skipped(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    repo = Repository.init(project / ".vault")
    (project / "w.bin").write_bytes(b"weights")
    res = repo.commit(project, "self")
    assert res.files == 1
    assert [f.path for f in repo.show("v001").files or []] == ["w.bin"]


def test_repository_elsewhere_inside_committed_directory_is_skipped(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    repo = Repository.init(project / "sub" / "store")
    (project / "sub" / "w.bin").write_bytes(b"weights")
    res = repo.commit(project, "nested repo")
    assert [f.path for f in repo.show("v001").files or []] == ["sub/w.bin"]
    assert res.files == 1


def test_missing_path(tmp_path: Path, repo: Repository) -> None:
    with pytest.raises(PathNotFound):
        repo.commit(tmp_path / "nope", "x")
    assert repo.log() == []


def test_fifo_is_refused(tmp_path: Path, repo: Repository) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "pipe")
    with pytest.raises(UnsupportedFile) as info:
        repo.commit(src, "fifo")
    assert info.value.file_type == "fifo"
    assert repo.log() == []


# -- checkout destinations -------------------------------------------------------------------


@pytest.fixture
def two_versions(tmp_path: Path, repo: Repository) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a1")
    (src / "sub" / "b.txt").write_text("b1")
    repo.commit(src, "one")
    (src / "a.txt").write_text("a2")
    (src / "sub" / "b.txt").unlink()
    (src / "c.txt").write_text("c2")
    repo.commit(src, "two")
    return src


def test_checkout_older_version(tmp_path: Path, repo: Repository, two_versions: Path) -> None:
    repo.checkout("latest~1", tmp_path / "old")
    assert tree_bytes(tmp_path / "old") == {"a.txt": b"a1", "sub/b.txt": b"b1"}
    repo.checkout("latest", tmp_path / "new")
    assert tree_bytes(tmp_path / "new") == {"a.txt": b"a2", "c.txt": b"c2"}


def test_checkout_into_existing_empty_directory(
    tmp_path: Path, repo: Repository, two_versions: Path
) -> None:
    dest = tmp_path / "empty"
    dest.mkdir()
    repo.checkout("v002", dest)
    assert tree_bytes(dest) == {"a.txt": b"a2", "c.txt": b"c2"}
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt", "c.txt"]


def test_non_empty_destination_needs_force(
    tmp_path: Path, repo: Repository, two_versions: Path
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.txt").write_text("local edit")
    (dest / "mine.txt").write_text("untracked")
    with pytest.raises(DestinationNotEmpty):
        repo.checkout("v001", dest)
    assert (dest / "a.txt").read_text() == "local edit"
    with pytest.raises(StrayFiles):  # mine.txt would stay: a mix of versions
        repo.checkout("v001", dest, force=True)
    assert tree_bytes(dest) == {"a.txt": b"local edit", "mine.txt": b"untracked"}
    (dest / "mine.txt").unlink()
    repo.checkout("v001", dest, force=True)
    assert tree_bytes(dest) == {"a.txt": b"a1", "sub/b.txt": b"b1"}
    repo.checkout("v002", dest, clean=True)  # sub/b.txt is not in v002
    assert tree_bytes(dest) == {"a.txt": b"a2", "c.txt": b"c2"}


def test_force_replaces_a_link_without_writing_through_it(
    tmp_path: Path, repo: Repository, two_versions: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(victim, dest / "a.txt")
    repo.checkout("v002", dest, force=True)
    assert victim.read_text() == "do not touch"
    assert not (dest / "a.txt").is_symlink()
    assert (dest / "a.txt").read_text() == "a2"


def test_force_refuses_to_write_through_a_linked_directory(
    tmp_path: Path, repo: Repository, two_versions: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(elsewhere, dest / "sub")
    with pytest.raises(UnsafePath):
        repo.checkout("v001", dest, force=True)
    assert list(elsewhere.iterdir()) == []
    assert not (dest / "a.txt").exists()


def test_destination_that_is_a_file(tmp_path: Path, repo: Repository, two_versions: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UnsafePath):
        repo.checkout("v001", tmp_path / "file", force=True)
    assert (tmp_path / "file").read_text() == "x"


def test_failed_checkout_leaves_nothing(
    tmp_path: Path, repo: Repository, two_versions: Path
) -> None:
    manifest = repo.store.get_file(
        next(e.file for e in repo.store.get_tree(repo.show("v002").tree).entries if e.file)
    )
    repo.store.delete(manifest.chunks[0].oid)
    dest = tmp_path / "x" / "y" / "dest"
    with pytest.raises(ObjectMissing):
        repo.checkout("v002", dest)
    assert not (tmp_path / "x").exists()


def test_unknown_revision_checkout_writes_nothing(
    tmp_path: Path, repo: Repository, two_versions: Path
) -> None:
    from vault.errors import UnknownRevision

    with pytest.raises(UnknownRevision):
        repo.checkout("v007", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


# -- log, show, stats ------------------------------------------------------------------------


def test_log_show_and_stats(tmp_path: Path, repo: Repository) -> None:
    model = make_model_dir(tmp_path / "model")
    r1 = repo.commit(model, "one", meta={"step": "1"})
    repo.commit(model, "two", allow_empty=True)
    (model / "config.json").write_text("{}")
    r3 = repo.commit(model, "three")
    log = repo.log()
    assert [v.version for v in log] == ["v003", "v002", "v001"]
    assert log[0].parents == [log[1].id] and log[-1].parents == []
    assert log[-1].meta == {"step": "1"}
    assert [v.version for v in repo.log("v002")] == ["v002", "v001"]
    assert [v.version for v in repo.log(limit=1)] == ["v003"]
    assert repo.log(limit=0) == []
    info = repo.show("v003")
    assert info.bytes == r3.bytes and info.file_count == 4
    assert {f.path for f in info.files or []} == {
        "config.json",
        "tokenizer.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    }
    s = repo.stats()
    assert s.versions == 3
    assert s.logical_bytes == 2 * r1.bytes + r3.bytes
    assert s.unique_bytes == r1.bytes + 2  # the new config.json is "{}"
    assert s.dedup_ratio == round(s.logical_bytes / s.unique_bytes, 4)
    assert s.dedup_ratio > 2.5
    assert s.stored_bytes > 0 and s.compression_ratio > 0
    assert set(repo.refs.read().names_for(VERSIONS)) == {"v001", "v002", "v003"}


def test_stats_of_empty_repository(repo: Repository) -> None:
    s = repo.stats()
    assert (s.versions, s.logical_bytes, s.chunks) == (0, 0, 0)
    assert s.dedup_ratio == 1.0 and s.compression_ratio == 1.0
