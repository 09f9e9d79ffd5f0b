"""Property tests: round trips, gc safety and tensor-exact dedup over generated inputs."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import numpy as np
from conftest import make_safetensors
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vault import Repository
from vault.ops.walk import reach
from vault.refs import LATEST, TAGS, VERSIONS

FAST = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- generated trees -------------------------------------------------------------------------

NAME_CHARS = "abcXYZ019 ._-éü模型🚀"
names = st.text(alphabet=NAME_CHARS, min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..", ".vault")
)
paths = st.lists(names, min_size=1, max_size=3).map("/".join)
files = st.tuples(st.binary(max_size=3000), st.booleans())  # content, executable
links = st.text(alphabet="abc./-_ é", min_size=1, max_size=20)
entries = st.one_of(files.map(lambda f: ("file", f)), links.map(lambda t: ("link", t)))
trees = st.dictionaries(paths, entries, max_size=12)


def consistent(tree: dict[str, tuple[str, object]]) -> dict[str, tuple[str, object]]:
    """Drop entries that lie under another entry (a path cannot be both a file and a dir)."""
    out = {}
    for path, entry in sorted(tree.items()):
        parts = path.split("/")
        if any("/".join(parts[:i]) in out for i in range(1, len(parts))):
            continue
        out[path] = entry
    return out


def write_tree(root: Path, tree: dict[str, tuple[str, object]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for path, (kind, value) in tree.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        if kind == "link":
            os.symlink(value, full)  # type: ignore[arg-type]
        else:
            content, executable = value  # type: ignore[misc]
            full.write_bytes(content)
            full.chmod(0o755 if executable else 0o644)


def read_tree(root: Path) -> dict[str, tuple[str, object]]:
    out: dict[str, tuple[str, object]] = {}
    for dirpath, dirs, filenames in os.walk(root):
        for name in filenames + [d for d in dirs if (Path(dirpath) / d).is_symlink()]:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                out[rel] = ("link", os.readlink(full))
            else:
                mode = stat.S_IMODE(full.stat().st_mode)
                assert mode in (0o755, 0o644), oct(mode)
                out[rel] = ("file", (full.read_bytes(), mode == 0o755))
    return out


@FAST
@given(trees)
def test_checkout_of_commit_is_identical(raw: dict) -> None:
    tree = consistent(raw)
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        src = base / "src"
        write_tree(src, tree)
        repo = Repository.init(base / ".vault")
        first = repo.commit(src, "x", allow_empty=True)  # the tree may be empty
        assert first.files == len(tree)
        assert first.bytes == sum(len(v[0]) for k, v in tree.values() if k == "file")
        repo.checkout("v001", base / "out")
        assert read_tree(base / "out") == tree
        if tree:  # (an empty directory is refused without allow_empty)
            again = repo.commit(src, "again")
            assert again.tree == first.tree and again.new_bytes == 0
            assert again.unchanged and again.id == first.id
        assert repo.verify().ok


# -- gc never removes anything reachable -----------------------------------------------------

CONTENTS = [b"", b"alpha" * 100, b"beta" * 300, bytes(range(256)) * 8, b"gamma"]
commit_op = st.tuples(
    st.just("commit"),
    st.dictionaries(st.sampled_from(["a.bin", "b.bin", "d/c.bin"]), st.sampled_from(CONTENTS)),
)
tag_op = st.tuples(st.just("tag"), st.sampled_from(["t1", "t2", "t3"]), st.integers(0, 20))
untag_op = st.tuples(st.just("untag"), st.sampled_from(["t1", "t2", "t3"]))
drop_op = st.tuples(st.just("drop"), st.integers(0, 20))  # remove a version's name ref
drop_latest_op = st.tuples(st.just("drop-latest"))
garbage_op = st.tuples(st.just("garbage"), st.binary(min_size=1, max_size=100))
ops = st.lists(
    st.one_of(commit_op, commit_op, tag_op, untag_op, drop_op, drop_latest_op, garbage_op),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_gc_never_removes_anything_reachable(sequence: list) -> None:
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        repo = Repository.init(base / ".vault")
        expected: dict[str, dict[str, bytes]] = {}  # version id -> its files
        ids: list[str] = []
        for i, op in enumerate(sequence):
            kind = op[0]
            if kind == "commit":
                src = base / f"src{i}"
                src.mkdir()
                for rel, content in op[1].items():
                    (src / rel).parent.mkdir(parents=True, exist_ok=True)
                    (src / rel).write_bytes(content)
                res = repo.commit(src, f"commit {i}", allow_empty=True)
                expected[res.id] = dict(op[1])
                ids.append(res.id)
            elif kind == "tag" and ids:
                repo.tag(op[1], ids[op[2] % len(ids)], force=True)
            elif kind == "untag" and any(t.name == op[1] for t in repo.tags()):
                repo.untag(op[1])
            elif kind == "drop" and ids:
                name = f"v{op[1] % len(ids) + 1:03d}"
                with repo.refs.transaction("test drop") as txn:
                    txn.delete(VERSIONS + name)
            elif kind == "drop-latest":
                with repo.refs.transaction("test drop latest") as txn:
                    txn.delete(LATEST)
            elif kind == "garbage":
                repo.store.put(op[1])
        refs = repo.refs.read().refs
        reachable = reach(repo.store, set(refs.values())).all()
        result = repo.gc(grace=0)
        event(f"gc removed objects: {result.objects > 0}")
        assert result.reachable == len(reachable)
        assert {oid for oid, _ in repo.store.list()} == reachable
        assert repo.verify().ok
        # Every version any ref names, and each of its ancestors, still checks out intact.
        for n, oid in enumerate(set(refs.values())):
            for k, info in enumerate(repo.log(oid)):
                dest = base / f"out-{n}-{k}"
                repo.checkout(info.id, dest)
                got = {
                    p.relative_to(dest).as_posix(): p.read_bytes()
                    for p in dest.rglob("*")
                    if p.is_file()
                }
                assert got == expected[info.id]
        for name, oid in refs.items():
            if name.startswith(TAGS):
                assert repo.resolve(name[len(TAGS) :]) == oid


# -- editing one tensor stores exactly that tensor ---------------------------------------------

DTYPES = ["float32", "float16", "int32", "int8", "float64"]
tensor_specs = st.dictionaries(
    st.text(alphabet="abcdefgh._0123", min_size=1, max_size=10),
    st.tuples(
        st.sampled_from(DTYPES),
        st.lists(st.integers(1, 24), min_size=1, max_size=3).filter(lambda s: int(np.prod(s)) >= 8),
    ),
    min_size=1,
    max_size=6,
)


def random_array(rng: np.random.Generator, dtype: str, shape: list[int]) -> np.ndarray:
    if dtype.startswith("int"):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


@FAST
@given(tensor_specs, st.integers(0, 2**32 - 1), st.data())
def test_editing_one_tensor_adds_only_its_bytes(specs: dict, seed: int, data) -> None:
    rng = np.random.default_rng(seed)
    tensors = {name: random_array(rng, dt, shape) for name, (dt, shape) in specs.items()}
    victim = data.draw(st.sampled_from(sorted(tensors)))
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        path = make_safetensors(base / "model" / "model.safetensors", tensors)
        repo = Repository.init(base / ".vault")
        first = repo.commit(path.parent, "before")
        old = tensors[victim]
        new = random_array(rng, str(old.dtype), list(old.shape))
        if new.tobytes() == old.tobytes():
            new = old + 1  # wraps for integers; still a different pattern
        tensors[victim] = new
        make_safetensors(path, tensors)
        second = repo.commit(path.parent, "after")
        assert second.new_bytes == new.nbytes
        assert second.bytes == first.bytes
        repo.checkout("v002", base / "out")
        assert (base / "out" / "model.safetensors").read_bytes() == path.read_bytes()
