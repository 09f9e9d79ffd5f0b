"""revisions: v007, latest, tags, REV~N along first parents, id prefixes (>= 4 hex)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault import Repository
from vault.errors import AmbiguousRevision, TagError, UnknownRevision
from vault.ids import hash_bytes
from vault.objects import Version
from vault.refs import LATEST, TAGS, VERSIONS, RefsDoc
from vault.revisions import check_tag_name, find_version_ref, resolve


@pytest.fixture
def history(tmp_path: Path, repo: Repository) -> list[str]:
    """Five versions v001..v005 of a one-file directory; returns their ids."""
    src = tmp_path / "src"
    src.mkdir()
    ids = []
    for i in range(5):
        (src / "weights.bin").write_bytes(f"weights {i}".encode())
        ids.append(repo.commit(src, f"step {i}").id)
    return ids


def test_version_names_resolve(repo: Repository, history: list[str]) -> None:
    for i, oid in enumerate(history):
        assert repo.resolve(f"v{i + 1:03d}") == oid
    assert repo.resolve("v3") == history[2]  # any zero padding
    assert repo.resolve("v0003") == history[2]


def test_latest_and_ancestry(repo: Repository, history: list[str]) -> None:
    assert repo.resolve("latest") == history[-1]
    assert repo.resolve("latest~") == history[-2]
    assert repo.resolve("latest~1") == history[-2]
    assert repo.resolve("latest~4") == history[0]
    assert repo.resolve("latest~~") == history[-3]
    assert repo.resolve("latest~1~2") == history[-4]
    assert repo.resolve("v004~2") == history[1]
    assert repo.resolve("latest~0") == history[-1]


def test_ancestry_past_the_first_version(repo: Repository, history: list[str]) -> None:
    with pytest.raises(UnknownRevision, match="latest~5"):
        repo.resolve("latest~5")
    with pytest.raises(UnknownRevision):
        repo.resolve("v001~1")


def test_tags_resolve_and_support_ancestry(repo: Repository, history: list[str]) -> None:
    repo.tag("best", "v003")
    assert repo.resolve("best") == history[2]
    assert repo.resolve("best~2") == history[0]


def test_id_prefixes(repo: Repository, history: list[str]) -> None:
    for oid in history:
        assert repo.resolve(oid) == oid
        assert repo.resolve(oid[:12]) == oid
        assert repo.resolve(oid[:12].upper()) == oid
        assert repo.resolve(oid[:12] + "~0") == oid
    # Four hex digits suffice when unique.
    prefixes = [oid[:4] for oid in history]
    for oid in history:
        if prefixes.count(oid[:4]) == 1:
            assert repo.resolve(oid[:4]) == oid
    assert repo.resolve(history[-1][:16] + "~1") == history[-2]


def test_three_hex_digits_are_not_a_prefix(repo: Repository, history: list[str]) -> None:
    with pytest.raises(UnknownRevision):
        repo.resolve(history[0][:3])


def test_unknown_revisions(repo: Repository, history: list[str]) -> None:
    for rev in ("v099", "nosuchtag", "ffffffffffff", "~1", "", "latest~x"):
        with pytest.raises(UnknownRevision):
            repo.resolve(rev)


def test_latest_in_empty_repository(repo: Repository) -> None:
    with pytest.raises(UnknownRevision, match="no versions"):
        repo.resolve("latest")


def test_full_id_of_an_unnamed_version_resolves(repo: Repository, history: list[str]) -> None:
    with repo.refs.transaction("drop name") as txn:
        txn.delete(VERSIONS + "v002")
    assert repo.resolve(history[1]) == history[1]
    assert repo.resolve("v003~1") == history[1]


def test_full_id_of_a_non_version_object_is_not_a_revision(
    repo: Repository, history: list[str]
) -> None:
    tree = repo.store.get_version(history[0]).tree
    with pytest.raises(UnknownRevision):
        repo.resolve(tree)
    with pytest.raises(UnknownRevision):
        repo.resolve(hash_bytes(b"no such object"))


# -- pure resolution over a constructed RefsDoc ----------------------------------------------


def fake(prefix: str, n: int) -> str:
    return (prefix + hash_bytes(str(n).encode()))[:64]


def test_ambiguous_prefix_lists_candidates(repo: Repository) -> None:
    a, b, c = fake("abcd1", 1), fake("abcd2", 2), fake("ef01", 3)
    doc = RefsDoc(
        {VERSIONS + "v001": a, VERSIONS + "v002": b, TAGS + "t": c, LATEST: b},
        next_version=3,
    )
    with pytest.raises(AmbiguousRevision) as info:
        resolve("abcd", doc, repo.store)
    err = info.value
    assert len(err.candidates) == 2
    assert any(a[:12] in s and "v001" in s for s in err.candidates)
    assert any(b[:12] in s and "v002" in s for s in err.candidates)
    assert a[:12] in err.message and b[:12] in err.message
    assert resolve("abcd1", doc, repo.store) == a
    assert resolve("ABCD2", doc, repo.store) == b
    assert resolve("ef01", doc, repo.store) == c


def test_same_version_under_several_refs_is_not_ambiguous(repo: Repository) -> None:
    a = fake("abcd", 1)
    doc = RefsDoc({VERSIONS + "v001": a, LATEST: a, TAGS + "best": a}, next_version=2)
    assert resolve("abcd", doc, repo.store) == a


def test_version_names_win_over_prefix_and_tag_lookup(repo: Repository) -> None:
    a, b = fake("0001", 1), fake("0002", 2)
    doc = RefsDoc({VERSIONS + "v001": a, VERSIONS + "v010": b}, next_version=11)
    assert find_version_ref(doc, "v1") == a
    assert find_version_ref(doc, "v10") == b
    assert find_version_ref(doc, "v2") is None
    assert find_version_ref(doc, "best") is None
    assert resolve("v10", doc, repo.store) == b


def test_ambiguity_with_real_versions(tmp_path: Path, repo: Repository) -> None:
    """Two real version objects whose ids share four hex digits."""
    src = tmp_path / "f.txt"
    src.write_text("content")
    base = repo.commit(src, "base")
    tree = base.tree
    by_prefix: dict[str, bytes] = {}
    pair = None
    for i in range(100_000):
        data = Version(tree, (), f"candidate {i}", "2024-01-01T00:00:00+00:00").to_bytes()
        p = hash_bytes(data)[:4]
        if p in by_prefix:
            pair = (by_prefix[p], data)
            break
        by_prefix[p] = data
    assert pair is not None
    ids = [repo.store.put(d).oid for d in pair]
    with repo.refs.transaction("test") as txn:
        txn.set(TAGS + "one", ids[0])
        txn.set(TAGS + "two", ids[1])
    with pytest.raises(AmbiguousRevision) as info:
        repo.resolve(ids[0][:4])
    assert sorted(c[:12] for c in info.value.candidates) == sorted(i[:12] for i in ids)
    n = next(k for k in range(5, 64) if ids[0][:k] != ids[1][:k])
    assert repo.resolve(ids[0][:n]) == ids[0]
    assert repo.resolve(ids[1][:n]) == ids[1]


# -- tag names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["best", "release-1.0", "v1.0", "V003", "epoch_7", "abc", "model.final", "x" * 128]
)
def test_valid_tag_names(name: str) -> None:
    assert check_tag_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "v003",
        "v1",
        "v1000",
        "latest",
        "base",
        "HEAD",
        "abcd",
        "abcd1234",
        "DEADBEEF",
        "0123456789",
        "",
        "-x",
        ".hidden",
        "a/b",
        "a b",
        "a~1",
        "x" * 129,
    ],
)
def test_invalid_tag_names(name: str) -> None:
    with pytest.raises(TagError):
        check_tag_name(name)


def test_tag_errors_in_repository(repo: Repository, history: list[str]) -> None:
    repo.tag("best", "v001")
    with pytest.raises(TagError, match="exists"):
        repo.tag("best", "v002")
    assert repo.resolve("best") == history[0]
    repo.tag("best", "v002", force=True)
    assert repo.resolve("best") == history[1]
    repo.untag("best")
    with pytest.raises(UnknownRevision):
        repo.resolve("best")
    with pytest.raises(TagError, match="no such tag"):
        repo.untag("best")
    with pytest.raises(UnknownRevision):
        repo.tag("other", "v999")
    with pytest.raises(TagError):
        repo.tag("latest", "v001")
    assert [t.name for t in repo.tags()] == []
