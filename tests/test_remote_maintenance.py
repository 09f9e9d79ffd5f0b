"""Maintenance of and from a remote: ``verify --remote``, ``verify --repair``, ``gc --remote``,
and ``--repo s3://`` reading a remote straight on its store.

The remote is a real repository on a real store: a SeaweedFS bucket prefix (tests/seaweed.py)
or a directory. It is made as push makes one: every file of the local repository copied to the
remote's backend, so both hold the same objects, refs and history. Damage is done by hand on
the stored bytes; every check goes through the command line (a real ``vault`` process) or the
Python API.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import tree_bytes
from faultkit import (
    VAULT,
    assert_clean_error,
    ok,
    vault_env,
    write_checkpoint,
    write_model_dir,
)
from seaweed import SeaweedServer, credentials_env

from vault import Repository
from vault.backend import Backend, LocalBackend
from vault.backend_s3 import S3Backend
from vault.errors import LockTimeout, RemoteError
from vault.ids import Oid
from vault.leases import SHARED
from vault.objects import KIND_FILE
from vault.remotes import Remote, add_remote
from vault.store import object_key


class Remoted:
    """A local repository with a full copy of itself as the remote ``origin``.

    Attributes:
        root: the local repository's directory.
        local: the local repository.
        remote: the remote's repository, opened on its backend.
        url: the remote's URL (``s3://...`` or a directory).
        env: the environment a ``vault`` process needs to reach the remote.
        model: the directory committed as v001 (v002 adds a file).
    """

    def __init__(self, root: Path, remote_backend: Backend, url: str, env: dict[str, str]):
        self.root = root
        self.local = Repository.open(root)
        self.url = url
        self.env = env
        mirror(self.local.backend, remote_backend)
        self.remote = Repository.open(remote_backend)
        add_remote(self.local.config, Remote("origin", url, env.get("AWS_ENDPOINT_URL")))
        self.model = root.parent / "model"

    def vault(
        self, *args: str, repo: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``vault --repo REPO ARGS`` (default: the local repository), with ``env`` added
        to the environment."""
        return subprocess.run(
            [*VAULT, "--repo", repo or str(self.root), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=180,
        )


def mirror(src: Backend, dst: Backend) -> None:
    """Copy every file of a repository to another backend (what a push leaves there)."""
    for folder in ("objects", "logs"):
        for key, _ in src.list(folder):
            dst.put(key, src.get(key))
    for key in ("refs.json", "config.json"):
        dst.put(key, src.get(key))


def build(tmp_path: Path) -> Path:
    """A local repository with two versions of a model (tensors, json, a link)."""
    root = tmp_path / ".vault"
    repo = Repository.init(root)
    model = write_model_dir(tmp_path / "model", seed=1, shards=2, extra_bytes=1 << 16)
    repo.commit(model, "first")
    (model / "notes.txt").write_text("second version\n")
    repo.commit(model, "second")
    return root


@pytest.fixture(params=["dir", "s3"])
def remoted(request: pytest.FixtureRequest, tmp_path: Path) -> Remoted:
    """The local repository and its remote ``origin``: on SeaweedFS, or in a directory."""
    root = build(tmp_path)
    if request.param == "dir":
        where = tmp_path / "remote"
        Repository.init(where)  # the folders a directory repository has; mirror fills them
        return Remoted(root, LocalBackend(where), str(where), vault_env())
    return s3_remoted(request, root)


@pytest.fixture
def s3(request: pytest.FixtureRequest, tmp_path: Path) -> Remoted:
    """The local repository and its remote ``origin`` on SeaweedFS."""
    return s3_remoted(request, build(tmp_path))


def s3_remoted(request: pytest.FixtureRequest, root: Path) -> Remoted:
    server: SeaweedServer = request.getfixturevalue("s3_server")
    bucket, prefix = request.getfixturevalue("s3_bucket"), request.getfixturevalue("s3_prefix")
    url = f"s3://{bucket}/{prefix}"
    env = vault_env(AWS_ENDPOINT_URL=server.endpoint, **credentials_env())
    return Remoted(root, S3Backend.from_url(url, endpoint_url=server.endpoint), url, env)


def chunks_of(repo: Repository, rev: str = "latest") -> list[tuple[Oid, Oid]]:
    """``(file manifest, chunk)`` of every chunk of ``rev``, in tree order."""
    version = repo.store.get_version(repo.resolve(rev))
    out = []
    for entry in repo.store.get_tree(version.tree).entries:
        if entry.kind == KIND_FILE and entry.file is not None:
            out += [(entry.file, c.oid) for c in repo.store.get_file(entry.file).chunks]
    return out


def damage(backend: Backend, oid: Oid) -> None:
    """Invert the last byte of an object's stored bytes (its payload; the length stays)."""
    data = bytearray(backend.get(object_key(oid)))
    data[-1] ^= 0xFF
    if isinstance(backend, LocalBackend):
        os.chmod(backend.root / object_key(oid), 0o644)
    backend.put(object_key(oid), bytes(data))


def everything(backend: Backend) -> dict[str, bytes]:
    """Every file of a repository but its lease files, with its bytes."""
    out = {
        key: backend.get(key) for folder in ("objects", "logs") for key, _ in backend.list(folder)
    }
    return out | {key: backend.get(key) for key in ("refs.json", "config.json")}


# -- --repo s3:// --------------------------------------------------------------------------------


def test_read_commands_work_straight_on_the_remote(s3: Remoted, tmp_path: Path) -> None:
    url = s3.url
    before = everything(s3.remote.backend)
    log = json.loads(ok(s3.vault("log", "--json", repo=url)).stdout)
    assert [e["version"] for e in log] == ["v002", "v001"]
    assert [e["id"] for e in log] == [v.id for v in s3.local.log()]
    shown = json.loads(ok(s3.vault("show", "v001", "--json", repo=url)).stdout)
    assert shown["message"] == "first"
    ok(s3.vault("checkout", "latest", str(tmp_path / "out"), repo=url))
    assert tree_bytes(tmp_path / "out") == tree_bytes(s3.model)
    stats = json.loads(ok(s3.vault("stats", "--json", repo=url)).stdout)
    assert stats["versions"] == 2 and stats == json.loads(ok(s3.vault("stats", "--json")).stdout)
    assert ok(s3.vault("verify", repo=url)).stdout.startswith("ok:")
    diff = json.loads(ok(s3.vault("diff", "v001", "v002", "--json", repo=url)).stdout)
    assert "notes.txt" in json.dumps(diff)
    assert "tags/" not in ok(s3.vault("tag", repo=url)).stdout
    assert everything(s3.remote.backend) == before and s3.remote.locks.list() == []


@pytest.mark.parametrize(
    "args",
    [
        ("commit", "{model}", "-m", "third"),
        ("tag", "best", "v001"),
        ("gc", "--grace", "0s"),
        ("delete", "v001", "--confirm"),
        ("pin", "v001", "--type", "keep", "--reason", "r"),
        ("backup", "{model}", "--reason", "r"),
        ("restore", "v001", "{out}"),
        ("verify", "--repair"),
        ("init",),
    ],
)
def test_a_write_through_repo_s3_is_refused_and_changes_nothing(
    s3: Remoted, tmp_path: Path, args: tuple[str, ...]
) -> None:
    before = everything(s3.remote.backend)
    (tmp_path / "out").mkdir()
    filled = [a.format(model=s3.model, out=tmp_path / "out") for a in args]
    proc = s3.vault(*filled, repo=s3.url)
    assert_clean_error(proc, "read-only through --repo s3://", "push to it instead", args[0])
    assert everything(s3.remote.backend) == before
    assert s3.remote.locks.list() == []


def test_repo_s3_without_a_repository_is_one_line(s3: Remoted) -> None:
    proc = s3.vault("log", repo=s3.url + "-nothing-here")
    assert_clean_error(proc, "not a vault repository", s3.url + "-nothing-here")


def test_repo_file_url_is_a_directory(remoted: Remoted, tmp_path: Path) -> None:
    log = json.loads(ok(remoted.vault("log", "--json", repo=f"file://{remoted.root}")).stdout)
    assert [e["version"] for e in log] == ["v002", "v001"]
    made = tmp_path / "other" / ".vault"
    ok(remoted.vault("init", repo=f"file://{made}"))
    assert Repository.open(made).log() == []


# -- verify --remote -----------------------------------------------------------------------------


def test_verify_remote_checks_structure_and_reads_data_on_request(remoted: Remoted) -> None:
    checked = json.loads(ok(remoted.vault("verify", "--remote", "origin", "--json")).stdout)
    local = json.loads(ok(remoted.vault("verify", "--json")).stdout)
    assert checked == {**local, "remote": "origin"}
    assert checked["ok"] and checked["damaged"] == []

    (_, flipped), (_, gone) = chunks_of(remoted.remote)[:2]
    damage(remoted.remote.backend, flipped)
    # Only a download finds damage inside a payload.
    assert ok(remoted.vault("verify", "--remote", "origin")).stdout.startswith("ok:")
    proc = remoted.vault("verify", "--remote", "origin", "--read-data", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert [(d["oid"], d["problem"]) for d in report["damaged"]] == [(flipped, "corrupt")]
    assert report["remote"] == "origin" and report["damaged"][0]["versions"] == ["v001", "v002"]

    remoted.remote.backend.delete(object_key(gone))
    proc = remoted.vault("verify", "--remote", "origin", "--json")
    assert proc.returncode == 1
    assert [(d["oid"], d["problem"]) for d in json.loads(proc.stdout)["damaged"]] == [
        (gone, "missing")
    ]
    assert remoted.local.verify().ok  # the local repository was not the one checked


def test_verify_remote_structure_finds_a_truncated_chunk(remoted: Remoted) -> None:
    _, chunk = chunks_of(remoted.remote)[0]
    key = object_key(chunk)
    remoted.remote.backend.put(key, remoted.remote.backend.get(key)[:-1])
    report = remoted.local.verify_remote("origin")
    assert [(d.oid, d.problem) for d in report.damaged] == [(chunk, "corrupt")]


def test_verify_remote_of_an_unknown_name_or_an_empty_remote(
    remoted: Remoted, tmp_path: Path
) -> None:
    assert_clean_error(remoted.vault("verify", "--remote", "nope"), "no remote named 'nope'")
    add_remote(remoted.local.config, Remote("empty", str(tmp_path / "empty")))
    assert_clean_error(
        remoted.vault("verify", "--remote", "empty"), "'empty'", "holds no vault repository"
    )
    proc = remoted.vault("verify", "--read-data")
    assert_clean_error(proc, "--read-data needs --remote")


# -- verify --repair -----------------------------------------------------------------------------


def test_repair_restores_damaged_and_missing_objects_from_the_remote(
    remoted: Remoted, tmp_path: Path
) -> None:
    (_, flipped), (manifest, gone), *_ = chunks_of(remoted.local)
    damage(remoted.local.backend, flipped)
    remoted.local.backend.delete(object_key(gone))
    remoted.local.backend.delete(object_key(manifest))  # hides the chunks below it from verify
    assert remoted.vault("verify").returncode == 1

    result = json.loads(ok(remoted.vault("verify", "--repair", "--json")).stdout)
    assert sorted(result["repaired"]) == sorted({flipped, gone, manifest})
    assert result["unrepairable"] == [] and result["remote"] == "origin"
    assert result["ok"] and result["verify"]["ok"] and result["verify"]["damaged"] == []
    assert ok(remoted.vault("verify")).stdout.startswith("ok:")
    ok(remoted.vault("checkout", "latest", str(tmp_path / "out")))
    assert tree_bytes(tmp_path / "out") == tree_bytes(remoted.model)
    assert remoted.local.locks.list() == []  # the writer lease was let go


def test_repair_of_a_clean_repository_needs_no_remote(tmp_path: Path) -> None:
    root = build(tmp_path)
    result = Repository.open(root).repair()
    assert result.ok and result.repaired == [] and result.remote is None


def test_an_object_damaged_on_both_sides_is_unrepairable(remoted: Remoted) -> None:
    (_, both), (_, local_only), *_ = chunks_of(remoted.local)
    damage(remoted.local.backend, both)
    damage(remoted.remote.backend, both)
    damage(remoted.local.backend, local_only)
    fixed = everything(remoted.local.backend)
    fixed[object_key(local_only)] = remoted.remote.backend.get(object_key(local_only))

    proc = remoted.vault("verify", "--repair", "--from", "origin", "--json")
    assert_clean_error(proc, "1 damaged object remains after repair", "1 unrepairable")
    result = json.loads(proc.stdout)
    assert result["repaired"] == [local_only]
    assert [u["oid"] for u in result["unrepairable"]] == [both]
    assert "damaged too" in result["unrepairable"][0]["why"]
    assert [d["oid"] for d in result["verify"]["damaged"]] == [both]
    # Nothing else changed: the damaged object is still the local damaged copy.
    assert everything(remoted.local.backend) == fixed


def test_repair_copies_a_delta_base_before_the_delta(remoted: Remoted, tmp_path: Path) -> None:
    for step in (1, 2):
        ckpt = write_checkpoint(tmp_path / f"ckpt-{step}", step, tensors=2)
        remoted.local.commit(ckpt, f"step {step}")
    mirror(remoted.local.backend, remoted.remote.backend)
    deltas = [c for _, c in chunks_of(remoted.local) if remoted.local.store.delta_base(c)]
    delta = deltas[0]
    base = remoted.local.store.delta_base(delta)
    assert base is not None and remoted.remote.store.delta_base(delta) == base
    remoted.local.backend.delete(object_key(base))
    remoted.local.backend.delete(object_key(delta))

    result = remoted.local.repair("origin")
    assert result.ok, result.verify.damaged
    assert set(result.repaired) == {base, delta}
    assert result.repaired.index(base) < result.repaired.index(delta)


def test_repair_with_damage_and_no_remote_is_one_line(tmp_path: Path) -> None:
    root = build(tmp_path)
    (_, chunk), *_ = chunks_of(Repository.open(root))
    LocalBackend(root).delete(object_key(chunk))
    proc = subprocess.run(
        [*VAULT, "--repo", str(root), "verify", "--repair"],
        env=vault_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_clean_error(proc, "no remote")


# -- gc --remote ---------------------------------------------------------------------------------


def plant(repo: Repository, seed: int) -> Oid:
    """An unreachable object in ``repo``."""
    return repo.store.put(f"garbage {seed} {time.time()}".encode() * 50).oid


def test_gc_remote_honours_grace_and_dry_run(remoted: Remoted) -> None:
    def gc(*args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(
            ok(remoted.vault("gc", "--remote", "origin", *args, "--json")).stdout
        )
        assert out["remote"] == "origin"
        return out

    old, young = plant(remoted.remote, 1), plant(remoted.remote, 2)
    kept = gc()  # the default grace on a remote: 14 days
    assert kept["grace_seconds"] == 14 * 86400 and kept["objects"] == 0
    assert kept["kept_young"] == 2 and remoted.remote.store.has(old)
    if isinstance(remoted.remote.backend, LocalBackend):
        past = time.time() - 15 * 86400
        os.utime(remoted.remote.backend.root / object_key(old), (past, past))
        grace: tuple[str, ...] = ()
    else:  # a bucket's clock cannot be turned back: both objects go with no grace
        grace = ("--grace", "0s")
    gone = {old} if not grace else {old, young}

    dry = gc("--dry-run", *grace)
    assert dry["dry_run"] and dry["objects"] == len(gone)
    assert remoted.remote.store.has(old) and remoted.remote.store.has(young)

    done = gc(*grace)
    assert done["objects"] == len(gone) and not done["dry_run"]
    assert {o for o in (old, young) if not remoted.remote.store.has(o)} == gone
    assert remoted.remote.verify().ok and remoted.local.verify().ok
    text = ok(remoted.vault("gc", "--remote", "origin")).stdout
    assert "from origin" in text and "younger than 14d" in text


def test_gc_remote_waits_for_a_push_in_flight(remoted: Remoted) -> None:
    fresh = plant(remoted.remote, 3)
    impatient = Repository.open(remoted.root, lock_timeout=0.5)
    with remoted.remote.locks.hold(SHARED):  # a push writing objects its refs do not name yet
        with pytest.raises(LockTimeout):
            impatient.gc_remote("origin", grace=0)
        proc = remoted.vault("gc", "--remote", "origin", "--grace", "0s", VAULT_LOCK_TIMEOUT="0.5")
        assert_clean_error(proc, "shared")
        assert remoted.remote.store.has(fresh)
    # Once the push is over (and had it named the object, it would stay), gc may run.
    assert impatient.gc_remote("origin", grace=0).objects == 1


def test_gc_remote_runs_once_the_writer_lets_go(remoted: Remoted) -> None:
    fresh = plant(remoted.remote, 4)
    lease = remoted.remote.locks.acquire(SHARED)
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(remoted.local.gc_remote(grace=0)))
    worker.start()
    try:
        time.sleep(1.5)
        assert not done and remoted.remote.store.has(fresh)  # gc waits while a writer holds on
    finally:
        lease.release()
        worker.join(60)
    assert done and done[0].objects == 1
    assert not remoted.remote.store.has(fresh)
    assert remoted.remote.verify().ok


def test_gc_remote_of_an_unknown_remote(remoted: Remoted) -> None:
    with pytest.raises(RemoteError):
        remoted.local.gc_remote("nope")
