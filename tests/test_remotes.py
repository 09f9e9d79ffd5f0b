"""Remotes: push, fetch, pull and clone through the command line, to a directory and to a real
SeaweedFS (tests/seaweed.py), with two repositories sharing one remote."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from faultkit import (
    VAULT,
    assert_clean_error,
    ok,
    run_vault,
    snapshot,
    vault_env,
    write_checkpoint,
    write_model_dir,
)

from vault.backend_s3 import S3Backend
from vault.errors import RemoteError
from vault.remotes import open_url
from vault.repo import Repository


@pytest.fixture(params=["dir", "s3"])
def remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a remote lives: a directory, or a fresh prefix on a real SeaweedFS."""
    if request.param == "dir":
        return str(tmp_path / "remote")
    server = request.getfixturevalue("s3_server")
    bucket, prefix = request.getfixturevalue("s3_bucket"), request.getfixturevalue("s3_prefix")
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint  # undone by _endpoint_env
    request.addfinalizer(lambda: os.environ.pop("AWS_ENDPOINT_URL", None))
    return f"s3://{bucket}/{prefix}"


def vault(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_vault(repo, *args, env=vault_env(**env))


def clone(*args: str) -> subprocess.CompletedProcess[str]:
    """``vault clone ARGS`` without ``--repo``."""
    return subprocess.run(
        [*VAULT, "clone", *args], env=vault_env(), capture_output=True, text=True, timeout=300
    )


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(proc).stdout)


def commit(repo: Path, src: Path, message: str, *extra: str) -> str:
    out = as_json(vault(repo, "commit", str(src), "-m", message, "--json", *extra))
    return str(out["version"])


def remote_refs(url: str) -> dict[str, str]:
    return Repository.open(open_url(url)).refs.read().refs


def test_push_clone_round_trip_keeps_every_version_tag_and_pin(
    remote_url: str, tmp_path: Path
) -> None:
    a = tmp_path / "a" / ".vault"
    ok(vault(a, "init"))
    srcs = []
    for step in (1, 2, 3):
        src = write_checkpoint(tmp_path / f"ckpt{step}", step, tensors=2)
        (src / "trainer_state.json").write_text(json.dumps({"global_step": step * 100}))
        srcs.append(src)
        commit(a, src, f"step {step}")
    ok(vault(a, "tag", "best", "v002"))
    ok(vault(a, "backup", "create", str(srcs[0]), "--reason", "before cleanup", "--name", "safe"))
    ok(vault(a, "remote", "add", "origin", remote_url))
    listed = as_json(vault(a, "remote", "list", "--json"))
    assert listed == [{"name": "origin", "url": remote_url, "endpoint_url": None}]

    pushed = as_json(vault(a, "push", "--json"))
    assert set(pushed) == {"remote", "objects", "bytes", "skipped", "versions"}
    assert pushed["remote"] == "origin"
    assert pushed["versions"] == ["v001", "v002", "v003"]
    assert pushed["objects"] > 0 and pushed["bytes"] > 0

    again = as_json(vault(a, "push", "--json"))
    assert again["objects"] == 0 and again["bytes"] == 0 and again["versions"] == []

    theirs = remote_refs(remote_url)
    mine = Repository.open(a).refs.read().refs
    assert {k: v for k, v in mine.items() if not k.startswith(("remotes/", "synced/"))} == theirs
    assert {"latest", "tags/best", "pins/safe", "versions/v003"} <= set(theirs)

    dest = tmp_path / "b"
    cloned = as_json(clone(remote_url, str(dest), "--json"))
    assert set(cloned) == {"repo", "versions", "objects", "bytes"}
    assert cloned["repo"] == str(dest / ".vault")
    assert cloned["versions"] == ["v001", "v002", "v003"]
    b = dest / ".vault"
    ok(vault(b, "verify"))
    for n, src in enumerate(srcs, start=1):
        out = tmp_path / f"out{n}"
        ok(vault(b, "checkout", f"v00{n}", str(out)))
        assert snapshot(out) == snapshot(src)
    log = as_json(vault(b, "log", "--json"))
    assert [e["version"] for e in log] == ["v003", "v002", "v001"]
    assert as_json(vault(b, "tag", "--json"))[0]["name"] == "best"
    pins = as_json(vault(b, "backup", "list", "--json"))
    assert [p["name"] for p in pins] == ["safe"] and pins[0]["reason"] == "before cleanup"
    # The clone knows its origin, and origin/NAME revisions resolve.
    assert [r["name"] for r in as_json(vault(b, "remote", "list", "--json"))] == ["origin"]
    assert as_json(vault(b, "log", "origin/latest", "--json"))[0]["version"] == "v003"


def test_remote_tracking_revisions_after_fetch(remote_url: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ok(vault(a, "init"))
    ok(vault(a, "remote", "add", "origin", remote_url))
    commit(a, write_model_dir(tmp_path / "m1", 1, shards=2), "one")
    ok(vault(a, "push"))
    ok(clone(remote_url, str(b)))
    src = write_model_dir(tmp_path / "m2", 2, shards=2, keep_shards=1)
    commit(a, src, "two")
    ok(vault(a, "push"))

    fetched = as_json(vault(b / ".vault", "fetch", "--json"))
    assert set(fetched) == {"remote", "objects", "bytes", "versions"}
    assert fetched["versions"] == ["v002"] and fetched["objects"] > 0
    # fetch moves nothing of the local repository's own
    assert [e["version"] for e in as_json(vault(b / ".vault", "log", "--json"))] == ["v001"]
    log = as_json(vault(b / ".vault", "log", "origin/latest", "--json"))
    assert [e["version"] for e in log] == ["v002", "v001"]
    ok(vault(b / ".vault", "checkout", "origin/v002", str(tmp_path / "co")))
    assert snapshot(tmp_path / "co") == snapshot(src)
    again = as_json(vault(b / ".vault", "fetch", "--json"))
    assert again["objects"] == 0 and again["versions"] == []
    # Fetched is not taken in: a push now would drop a's version, so it is refused.
    assert_clean_error(vault(b / ".vault", "push"), "pull")
    assert "versions/v002" in remote_refs(remote_url)
    ok(vault(b / ".vault", "pull"))
    assert as_json(vault(b / ".vault", "push", "--json"))["objects"] == 0
    assert "versions/v002" in remote_refs(remote_url)


def test_two_writers_one_remote_never_lose_a_version(remote_url: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a" / ".vault", tmp_path / "b"
    ok(vault(a, "init"))
    ok(vault(a, "remote", "add", "origin", remote_url))
    commit(a, write_checkpoint(tmp_path / "c1", 1), "shared start")
    ok(vault(a, "push"))
    ok(clone(remote_url, str(b)))
    b = b / ".vault"

    a_src = write_checkpoint(tmp_path / "ca", 2)
    commit(a, a_src, "from a")
    ok(vault(a, "push"))
    b_src = write_checkpoint(tmp_path / "cb", 3, tensors=2)
    b_version = commit(b, b_src, "from b", "--steps", "300", "--loss", "0.25")
    ok(vault(b, "tag", "candidate", b_version))
    ok(vault(b, "pin", b_version, "--type", "manual", "--reason", "keep b"))
    before_b = as_json(vault(b, "show", b_version, "--json"))

    refused = vault(b, "push")
    assert_clean_error(refused, "pull")
    # It names the versions to pull, not the ref latest (which moved with them).
    assert "lacks (v002)" in refused.stderr
    assert remote_refs(remote_url)["versions/v002"] == Repository.open(a).resolve("v002")

    pulled_run = vault(b, "pull", "--json")
    pulled = as_json(pulled_run)
    assert set(pulled) == {"remote", "objects", "bytes", "versions"}
    assert pulled["versions"] == ["v002"]
    assert "renamed v002 -> v003" in pulled_run.stderr
    log = as_json(vault(b, "log", "--json"))
    assert [(e["version"], e["message"]) for e in log] == [
        ("v003", "from b"),
        ("v002", "from a"),
        ("v001", "shared start"),
    ]
    after_b = as_json(vault(b, "show", "v003", "--json"))
    for key in ("message", "steps", "loss", "bytes", "files"):
        assert after_b[key] == before_b[key], key
    assert as_json(vault(b, "tag", "--json"))[0]["version"] == "v003"
    pins = [p for p in as_json(vault(b, "backup", "list", "--json")) if p["reason"] == "keep b"]
    assert pins and pins[0]["version"] == "v003"
    ok(vault(b, "checkout", "v003", str(tmp_path / "co_b")))
    assert snapshot(tmp_path / "co_b") == snapshot(b_src)

    pushed = as_json(vault(b, "push", "--json"))
    assert pushed["versions"] == ["v003"]
    # a takes in b's version; v002 keeps its meaning everywhere
    assert as_json(vault(a, "pull", "--json"))["versions"] == ["v003"]
    ok(vault(a, "checkout", "v003", str(tmp_path / "co_a")))
    assert snapshot(tmp_path / "co_a") == snapshot(b_src)
    ok(vault(a, "checkout", "v002", str(tmp_path / "co_a2")))
    assert snapshot(tmp_path / "co_a2") == snapshot(a_src)


def test_two_pushers_racing(remote_url: str, tmp_path: Path) -> None:
    """Two processes push different new versions at once: one wins, the other is told to
    pull; after its pull and push the remote holds both."""
    a = tmp_path / "a" / ".vault"
    ok(vault(a, "init"))
    ok(vault(a, "remote", "add", "origin", remote_url))
    commit(a, write_checkpoint(tmp_path / "c0", 0), "base")
    ok(vault(a, "push"))
    repos = []
    for name in ("p", "q"):
        ok(clone(remote_url, str(tmp_path / name)))
        repos.append(tmp_path / name / ".vault")
    for n, repo in enumerate(repos):
        commit(repo, write_model_dir(tmp_path / f"m{n}", 10 + n, shards=2), f"racer {n}")
    results: list[subprocess.CompletedProcess[str]] = [None, None]  # type: ignore[list-item]
    barrier = threading.Barrier(2)

    def race(i: int) -> None:
        barrier.wait()
        results[i] = vault(repos[i], "push", "--json")

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in enumerate(results) if r.returncode == 0]
    assert len(winners) == 1, [r.stderr for r in results]
    loser = 1 - winners[0]
    assert_clean_error(results[loser], "pull")
    ok(vault(repos[loser], "pull"))
    ok(vault(repos[loser], "push"))
    messages = {
        Repository.open(open_url(remote_url)).store.get_version(oid).message
        for ref, oid in remote_refs(remote_url).items()
        if ref.startswith("versions/")
    }
    assert messages == {"base", "racer 0", "racer 1"}
    ok(vault(repos[loser], "verify"))


def test_a_damaged_remote_object_is_named_and_leaves_the_local_repository_unchanged(
    remote_url: str, tmp_path: Path
) -> None:
    a, b = tmp_path / "a" / ".vault", tmp_path / "b"
    ok(vault(a, "init"))
    ok(vault(a, "remote", "add", "origin", remote_url))
    commit(a, write_checkpoint(tmp_path / "c1", 1), "one")
    ok(vault(a, "push"))
    ok(clone(remote_url, str(b)))
    b = b / ".vault"
    src = write_model_dir(tmp_path / "m2", 2, shards=2)
    commit(a, src, "two")
    ok(vault(a, "push"))
    # Damage one chunk of v002 on the remote: same key, one byte flipped.
    remote = Repository.open(open_url(remote_url))
    v2 = remote.resolve("v002")
    chunk = _a_chunk_only_in(remote, v2, remote.resolve("v001"))
    _damage(remote, chunk)
    refs_before = Repository.open(b).refs.read().refs

    failed = vault(b, "pull")
    assert_clean_error(failed, chunk[:12])
    assert Repository.open(b).refs.read().refs == refs_before
    ok(vault(b, "verify"))
    failed = vault(b, "fetch")
    assert_clean_error(failed, chunk[:12])
    assert Repository.open(b).refs.read().refs == refs_before


def _damage(repo: Repository, oid: str) -> None:
    """Flip a byte in the middle of the stored object ``oid``, loose or packed."""
    key, start, length = f"objects/{oid[:2]}/{oid[2:]}", 0, None
    if repo.backend.stat(key) is None:
        from vault.packs import pack_key

        loc = repo.store.packs.locate(oid)[0]
        key, start, length = pack_key(loc.pack), loc.offset, loc.length
    data = bytearray(repo.backend.get(key))
    data[start + (length or len(data)) // 2] ^= 0x40
    repo.backend.put(key, bytes(data))


def _a_chunk_only_in(repo: Repository, version: str, other: str) -> str:
    from vault.ops.walk import reach

    mine = reach(repo.store, [version], ancestors=False).chunks
    theirs = reach(repo.store, [other], ancestors=False).chunks
    return max(set(mine) - set(theirs), key=lambda oid: mine[oid])


def test_a_killed_push_resumes_without_sending_again_what_arrived(
    remote_url: str, tmp_path: Path
) -> None:
    a = tmp_path / "a" / ".vault"
    ok(vault(a, "init"))
    ok(vault(a, "remote", "add", "origin", remote_url))
    for n in (1, 2):  # 16 MiB of random state each: four 4 MiB chunks, too large for a pack
        commit(a, write_model_dir(tmp_path / f"m{n}", n, shards=4, extra_bytes=16 << 20), str(n))
    killed = vault(a, "push", VAULT_CRASHPOINT="push-sent:6")
    assert killed.returncode < 0  # SIGKILL
    # Nothing is named on the remote yet.
    try:
        refs = remote_refs(remote_url)
    except Exception:  # no repository yet, or an empty one: both are fine
        refs = {}
    assert not any(k.startswith("versions/") for k in refs)
    resumed = as_json(vault(a, "push", "--json"))
    assert resumed["versions"] == ["v001", "v002"]
    if remote_url.startswith("s3://"):
        # Objects sent one by one arrive whole: at least those before the kill are skipped.
        assert resumed["skipped"] >= 5
    b = tmp_path / "b"
    ok(clone(remote_url, str(b)))
    ok(vault(b / ".vault", "verify"))
    ok(vault(b / ".vault", "checkout", "v002", str(tmp_path / "co")))
    assert snapshot(tmp_path / "co") == snapshot(tmp_path / "m2")


def test_remote_errors_are_one_line(tmp_path: Path) -> None:
    a = tmp_path / "a"
    ok(vault(a, "init"))
    assert_clean_error(vault(a, "push"), "no remote")
    assert_clean_error(vault(a, "remote", "add", "bad name", str(tmp_path / "r")), "remote name")
    assert_clean_error(vault(a, "remote", "add", "origin", "ftp://x/y"), "s3://")
    ok(vault(a, "remote", "add", "origin", str(tmp_path / "r")))
    assert_clean_error(vault(a, "remote", "add", "origin", str(tmp_path / "r2")), "exists")
    assert_clean_error(vault(a, "fetch"), "holds no vault repository")
    assert_clean_error(vault(a, "push", "nosuch"), "nosuch")
    assert_clean_error(vault(a, "remote", "remove", "nosuch"), "nosuch")
    ok(vault(a, "remote", "remove", "origin"))
    assert as_json(vault(a, "remote", "list", "--json")) == []
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    proc = clone(str(tmp_path / "a"), str(tmp_path / "full"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert (tmp_path / "full" / "x").read_text() == "keep"
    assert_clean_error(
        clone(str(tmp_path / "nothing"), str(tmp_path / "c")),
        "holds no vault repository",
    )
    assert not (tmp_path / "c").exists()


def test_push_to_s3_writes_nothing_secret(
    s3_server: Any, s3_bucket: str, s3_prefix: str, tmp_path: Path
) -> None:
    a = tmp_path / "a"
    ok(vault(a, "init"))
    url = f"s3://{s3_bucket}/{s3_prefix}"
    ok(vault(a, "remote", "add", "origin", url, "--endpoint-url", s3_server.endpoint))
    commit(a, write_checkpoint(tmp_path / "c", 1), "one")
    out = ok(vault(a, "push"))
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert secret not in out.stdout + out.stderr
    for path in a.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    backend = S3Backend(s3_bucket, s3_prefix, endpoint_url=s3_server.endpoint)
    for key, _ in backend.list(""):
        assert secret.encode() not in backend.get(key), key


def test_a_push_whose_server_dies_fails_in_one_line_and_completes_once_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server is killed while a push uploads: the push gives up within its timeout with
    one line, no ref names anything on the remote; started again on the same data, the same
    command completes, and what had arrived is not sent again."""
    from seaweed import credentials_env, new_bucket, start_server

    for name, value in credentials_env().items():
        monkeypatch.setenv(name, value)
    a = tmp_path / "a"
    ok(vault(a, "init"))
    for n in (1, 2, 3):  # 24 MiB of random state each: six chunks too large for a pack
        commit(a, write_model_dir(tmp_path / f"m{n}", n, shards=4, extra_bytes=24 << 20), str(n))
    data_dir = tmp_path / "weed"
    server = start_server(data_dir)  # not serving(): that removes the data at its end
    try:
        bucket = new_bucket(server)
        url = f"s3://{bucket}/team"
        ok(vault(a, "remote", "add", "origin", url))
        env = {"AWS_ENDPOINT_URL": server.endpoint, "VAULT_S3_TIMEOUT": "5"}
        proc = subprocess.Popen(
            [*VAULT, "--repo", str(a), "push", "--json"],
            env=vault_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        client = server.admin
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            listed = client.list_objects_v2(Bucket=bucket, Prefix="team/objects/")
            if listed.get("KeyCount", 0) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the push ended before the server could be killed"
        server.kill()
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=120)
        assert time.monotonic() - t0 < 60
        failed = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert_clean_error(failed, "unavailable")
    finally:
        server.stop()
    # Back on the same data (new ports): nothing is named yet, and the push completes.
    server = start_server(data_dir)
    try:
        env = {"AWS_ENDPOINT_URL": server.endpoint}
        backend = S3Backend(bucket, "team", endpoint_url=server.endpoint)
        arrived = {key for key, _ in backend.list("objects")}
        assert arrived, "nothing arrived before the kill"
        with contextlib.suppress(FileNotFoundError):
            refs = json.loads(backend.get("refs.json"))["refs"]
            assert not any(k.startswith("versions/") for k in refs), refs
        done = as_json(vault(a, "push", "--json", **env))
        assert done["versions"] == ["v001", "v002", "v003"]
        assert done["skipped"] >= len(arrived) - 1  # at most one was cut off mid-way
        b = tmp_path / "b"
        cloned = subprocess.run(
            [*VAULT, "clone", url, str(b), "--json"],
            env=vault_env(**env),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert json.loads(ok(cloned).stdout)["versions"] == ["v001", "v002", "v003"]
        ok(vault(b / ".vault", "verify", **env))
        ok(vault(b / ".vault", "checkout", "v003", str(tmp_path / "co"), **env))
        assert snapshot(tmp_path / "co") == snapshot(tmp_path / "m3")
    finally:
        server.stop()


def test_deletions_and_tags_travel_both_ways(tmp_path: Path) -> None:
    remote = str(tmp_path / "remote")
    a, e = tmp_path / "a", tmp_path / "e"
    for repo in (a, e):
        ok(vault(repo, "init"))
        ok(vault(repo, "remote", "add", "origin", remote))
    for n in (1, 2, 3):
        commit(a, write_checkpoint(tmp_path / f"c{n}", n), f"step {n}")
    ok(vault(a, "push"))
    # A repository with no versions of its own takes the remote's as they are.
    pulled_run = vault(e, "pull", "--json")
    assert as_json(pulled_run)["versions"] == ["v001", "v002", "v003"]
    assert "renamed" not in pulled_run.stderr
    assert as_json(vault(e, "log", "--json"))[0]["version"] == "v003"

    ok(vault(a, "delete", "v003", "--confirm"))
    assert as_json(vault(a, "push", "--json"))["versions"] == []
    assert "versions/v003" not in remote_refs(remote)
    ok(vault(e, "pull"))
    log = as_json(vault(e, "log", "--json"))
    assert [x["version"] for x in log] == ["v002", "v001"]  # the deletion came over
    pins = as_json(vault(e, "backup", "list", "--json"))
    assert [p["version"] for p in pins] == ["v003"]  # with the pin that keeps v003

    ok(vault(e, "tag", "best", "v001"))
    ok(vault(e, "push"))
    assert as_json(vault(a, "push", "--json"))["objects"] == 0  # a tag it never saw is kept
    assert "tags/best" in remote_refs(remote)
    ok(vault(a, "pull"))
    tags = as_json(vault(a, "tag", "--json"))
    assert [t["name"] for t in tags if not t["reserved"]] == ["best"]

    # The remote gave v004 and deleted it since: a local v004 never pushed must move on.
    commit(a, write_checkpoint(tmp_path / "c4", 4), "step 4")
    ok(vault(a, "push"))
    ok(vault(a, "delete", "v004", "--confirm"))
    ok(vault(a, "push"))
    mine = commit(e, write_checkpoint(tmp_path / "c5", 5), "e's step")
    assert mine == "v004"
    assert_clean_error(vault(e, "push"), "pull")
    pulled_text = ok(vault(e, "pull")).stdout
    assert "renamed v004 -> v005" in pulled_text
    ok(vault(e, "push"))
    assert as_json(vault(a, "pull", "--json"))["versions"] == ["v005"]
    ok(vault(a, "checkout", "v005", str(tmp_path / "co")))
    assert snapshot(tmp_path / "co") == snapshot(tmp_path / "c5")


def test_a_pushed_version_of_3000_small_files_leaves_few_keys(
    s3_server: Any, s3_bucket: str, s3_prefix: str, tmp_path: Path
) -> None:
    src = tmp_path / "tokenizer-shards"
    for i in range(3000):
        sub = src / f"part-{i // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file-{i:04d}.json").write_text(json.dumps({"id": i, "text": "x" * (i % 700)}))
    a = tmp_path / "a"
    ok(vault(a, "init"))
    commit(a, src, "3,000 small files")
    url = f"s3://{s3_bucket}/{s3_prefix}"
    ok(vault(a, "remote", "add", "origin", url, "--endpoint-url", s3_server.endpoint))
    pushed = as_json(vault(a, "push", "--json"))
    assert pushed["objects"] >= 3000
    backend = S3Backend(s3_bucket, s3_prefix, endpoint_url=s3_server.endpoint)
    keys = [key for key, _ in backend.list("")]
    assert len(keys) <= 60, sorted(keys)
    b = tmp_path / "b"
    ok(clone(url, str(b), "--endpoint-url", s3_server.endpoint))
    ok(vault(b / ".vault", "checkout", "v001", str(tmp_path / "co")))
    assert snapshot(tmp_path / "co") == snapshot(src)
    assert as_json(vault(a, "push", "--json"))["objects"] == 0


def test_a_pulled_rebase_keeps_each_version_in_its_run(tmp_path: Path) -> None:
    """b's never-pushed versions follow their own run's newest version after a pull: the
    remote's version of the same run, or b's earlier one of another run."""
    url = str(tmp_path / "remote")
    a, b = tmp_path / "a" / ".vault", tmp_path / "b"
    ok(vault(a, "init"))
    ok(vault(a, "remote", "add", "origin", url))
    commit(a, write_checkpoint(tmp_path / "exp" / "c1", 1), "exp start")
    ok(vault(a, "push"))
    ok(clone(url, str(b)))
    b = b / ".vault"
    commit(a, write_checkpoint(tmp_path / "exp" / "c2", 2), "exp from a")
    ok(vault(a, "push"))
    commit(b, write_checkpoint(tmp_path / "exp" / "c3", 3), "exp from b")
    commit(b, write_checkpoint(tmp_path / "other" / "c1", 4), "other from b")
    ok(vault(b, "pull"))
    log = {e["message"]: e for e in as_json(vault(b, "log", "--json"))}
    assert log["exp from b"]["run"] == "exp" and log["other from b"]["run"] == "other"
    assert log["exp from b"]["parents"] == [log["exp from a"]["id"]]
    assert log["other from b"]["parents"] == []
    runs = as_json(vault(b, "log", "--run", "exp", "--json"))
    assert [e["message"] for e in runs] == ["exp from b", "exp from a", "exp start"]


@pytest.mark.parametrize("whole", [True, False], ids=["packs-whole", "packs-too-large"])
def test_a_clone_reads_small_objects_pack_by_pack(
    s3_server: Any, s3_bucket: str, s3_prefix: str, tmp_path: Path, monkeypatch: Any, whole: bool
) -> None:
    """A clone takes each pack whole in one GET, not one ranged GET per object in it: 300 small
    files cost some 300 requests before (S3 bills each, and each costs client CPU). A pack
    larger than a fetch holds whole is read object by object, as before."""
    from vault.ops import transfer

    if not whole:
        monkeypatch.setattr(transfer, "PACK_HELD_BYTES", 1000)
    url = f"s3://{s3_bucket}/{s3_prefix}"
    a = tmp_path / "a" / ".vault"
    src = tmp_path / "small"
    src.mkdir()
    for i in range(300):
        (src / f"f{i:03d}.bin").write_bytes(os.urandom(2000 + 7 * i))
    ok(vault(a, "init"))
    ok(vault(a, "remote", "add", "origin", url, "--endpoint-url", s3_server.endpoint))
    commit(a, src, "small files")
    ok(vault(a, "push"))

    reads: dict[str, int] = {"whole": 0, "ranged": 0}
    get_whole, get_range = S3Backend.get_versioned, S3Backend.get_range

    def count_whole(self: S3Backend, key: str) -> tuple[bytes, str]:
        reads["whole"] += 1
        return get_whole(self, key)

    def count_ranged(self: S3Backend, key: str, offset: int, length: int) -> bytes:
        reads["ranged"] += 1
        return get_range(self, key, offset, length)

    monkeypatch.setattr(S3Backend, "get_versioned", count_whole)
    monkeypatch.setattr(S3Backend, "get_range", count_ranged)
    repo, result = Repository.clone(url, tmp_path / "b", endpoint_url=s3_server.endpoint)
    monkeypatch.undo()

    packs = [k for k in open_url(url, endpoint_url=s3_server.endpoint).list("packs/")]
    assert result.objects > 300
    if whole:
        assert reads["ranged"] == 0
        assert reads["whole"] < len(packs) + 20  # the packs, their indexes, refs, config
    else:
        assert reads["ranged"] >= 300
    repo.checkout("v001", tmp_path / "out")
    for f in src.iterdir():
        assert (tmp_path / "out" / f.name).read_bytes() == f.read_bytes()


def test_a_damaged_object_in_a_remote_pack_is_named_by_a_clone(
    s3_server: Any, s3_bucket: str, s3_prefix: str, tmp_path: Path
) -> None:
    """Read from its whole pack, a damaged small object is still caught by its hash and named,
    and the clone leaves nothing behind."""
    url = f"s3://{s3_bucket}/{s3_prefix}"
    a = tmp_path / "a" / ".vault"
    ok(vault(a, "init"))
    ok(vault(a, "remote", "add", "origin", url, "--endpoint-url", s3_server.endpoint))
    commit(a, write_checkpoint(tmp_path / "c1", 1), "one")
    ok(vault(a, "push"))
    remote = Repository.open(open_url(url, endpoint_url=s3_server.endpoint))
    packed = [oid for oid, _, _ in remote.store.packs.objects()]
    victim = sorted(packed)[len(packed) // 2]
    _damage(remote, victim)

    failed = clone(url, str(tmp_path / "b"), "--endpoint-url", s3_server.endpoint)
    assert_clean_error(failed, victim[:12])
    assert not (tmp_path / "b" / ".vault").exists()


def test_pushes_from_one_process_reuse_the_client_and_read_the_remote_anew(
    s3_server: Any, s3_bucket: str, s3_prefix: str, tmp_path: Path
) -> None:
    """A long-lived process (``vault watch --push``) makes its S3 client once, yet each push
    sees what other writers did since: a push after someone else's is refused until a pull."""
    url = f"s3://{s3_bucket}/{s3_prefix}"
    a = Repository.init(tmp_path / "a" / ".vault")
    a.remote_add("origin", url, endpoint_url=s3_server.endpoint)
    a.commit(write_checkpoint(tmp_path / "c1", 1), "one")
    a.push()
    client = a.open_remote().backend

    b, _ = Repository.clone(url, tmp_path / "b" / ".vault", endpoint_url=s3_server.endpoint)
    b.commit(write_checkpoint(tmp_path / "c2", 2), "two on b")
    b.push()

    a.commit(write_checkpoint(tmp_path / "c3", 3), "three on a")
    with pytest.raises(RemoteError, match="pull"):
        a.push()
    assert a.open_remote().backend is client
    assert a.pull().versions == ["v002"]
    assert a.push().versions == ["v003"]
    remote = Repository.open(open_url(url, endpoint_url=s3_server.endpoint))
    assert [v.message for v in remote.log()] == ["three on a", "two on b", "one"]
