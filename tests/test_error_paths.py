"""Every way a command can fail ends in one line ``vault: error: ...`` and a non-zero exit: bad
environment variables, absurd durations and counts, hand-edited refs, hostile objects, names
with control characters. An exception vault did not expect is one line too, with exit status
70; ``--debug`` shows its traceback.

Commands run as real processes (``python -m vault``); hostile objects are written with
``store.put`` following docs/format.md, refs by editing ``refs.json`` as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faultkit import assert_clean_error, ok, run_vault, vault_env

from vault import Repository
from vault.objects import KIND_FILE, ChunkRef, FileManifest
from vault.refs import LATEST, VERSIONS, now_iso

INTERNAL_ERROR = 70
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000  # nested past any parser's recursion limit


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository (CLI-made) with one version ``v001`` of ``model/``."""
    root = tmp_path / "repo"
    ok(run_vault(root, "init"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "a.txt").write_text("hello\n")
    ok(run_vault(root, "commit", str(model), "-m", "one"))
    return root


def _refs(repo: Path) -> dict:
    return json.loads((repo / "refs.json").read_bytes())


def _set_refs(repo: Path, doc: dict) -> None:
    """Rewrite refs.json by hand, as a user with an editor would."""
    (repo / "refs.json").write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")


def _state(repo: Path) -> tuple[bytes, bytes]:
    """What a refused command must leave as it was: refs.json and the reflog."""
    reflog = repo / "logs" / "reflog.jsonl"
    return (repo / "refs.json").read_bytes(), reflog.read_bytes() if reflog.exists() else b""


def _plant_version(repo: Path, paths: list[str], **fields: object) -> str:
    """Store a tree listing ``paths`` (each a one-byte file) and a version on top of latest,
    with ``fields`` overriding the version's JSON; name it and return its name."""
    r = Repository.open(repo)
    chunk = r.store.put(b"x").oid
    manifest = r.store.put(FileManifest((ChunkRef(chunk, 1),)).to_bytes()).oid
    entries = [
        {"path": p, "kind": KIND_FILE, "size": 1, "mode": 0o644, "file": manifest} for p in paths
    ]
    tree = r.store.put(
        json.dumps({"type": "tree", "entries": entries}, separators=(",", ":")).encode()
    ).oid
    with r.refs.transaction("plant") as txn:
        parent = txn.get(LATEST)
        name = txn.allocate_version_name()
        doc = {
            "type": "version",
            "tree": tree,
            "parents": [parent] if parent else [],
            "message": "planted",
            "created": now_iso(),
            "name": name,
            "bytes": len(paths),
            "files": len(paths),
            **fields,
        }
        vid = r.store.put(json.dumps(doc, sort_keys=True).encode(), compress=False).oid
        txn.set(VERSIONS + name, vid, expected=None)
        txn.set(LATEST, vid, expected=parent)
    return name


# -- environment variables -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", " ", "-1", "nan", "inf", "1e400"])
def test_a_bad_lock_timeout_is_one_line_and_changes_nothing(
    repo: Path, tmp_path: Path, value: str
) -> None:
    """VAULT_LOCK_TIMEOUT was parsed by float() at import: 'abc' was a traceback before any
    command ran, and NaN or inf waited forever for a held lock."""
    before = _state(repo)
    proc = run_vault(
        repo,
        "commit",
        str(tmp_path / "model"),
        "-m",
        "two",
        env=vault_env(VAULT_LOCK_TIMEOUT=value),
    )
    assert_clean_error(proc, "VAULT_LOCK_TIMEOUT", repr(value))
    assert _state(repo) == before


def test_an_empty_lock_timeout_means_the_default(repo: Path, tmp_path: Path) -> None:
    proc = run_vault(
        repo, "commit", str(tmp_path / "model"), "-m", "two", env=vault_env(VAULT_LOCK_TIMEOUT="")
    )
    ok(proc)


def test_a_bad_crashpoint_is_one_line(repo: Path, tmp_path: Path) -> None:
    proc = run_vault(
        repo, "commit", str(tmp_path / "model"), "-m", "two", env=vault_env(VAULT_CRASHPOINT="x:y")
    )
    assert_clean_error(proc, "VAULT_CRASHPOINT")
