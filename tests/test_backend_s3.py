"""The backend contract on :class:`vault.backend_s3.S3Backend` against a real SeaweedFS, and
what only an object store does: the server's conditional writes, prefixes, multipart uploads
and their debris, a server that goes away, credentials and URLs."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from backend_contract import BackendContract
from conftest import make_safetensors, random_tensors, tree_bytes
from seaweed import SECRET_KEY, SeaweedServer, new_bucket, serving

from vault import Repository
from vault.backend_s3 import S3Backend, parse_url
from vault.errors import BadValue, PreconditionFailed, RemoteUnavailable


@dataclass
class Place:
    """A test's own part of the session's bucket: everything under the fresh prefix ``base``."""

    server: SeaweedServer
    bucket: str
    base: str

    def backend(self, prefix: str = "", **kwargs: Any) -> S3Backend:
        """A backend (a client of its own) on ``BASE/prefix``."""
        where = f"{self.base}/{prefix}" if prefix else self.base
        return S3Backend(self.bucket, where, endpoint_url=self.server.endpoint, **kwargs)

    def key(self, name: str) -> str:
        """The object key of ``name`` in the bucket."""
        return f"{self.base}/{name}"


@pytest.fixture
def place(s3_server: SeaweedServer, s3_bucket: str, s3_prefix: str) -> Place:
    return Place(s3_server, s3_bucket, s3_prefix)


@pytest.fixture
def backend(place: Place) -> S3Backend:
    return place.backend("team/repo")


class TestS3Backend(BackendContract):
    """The shared suite, unchanged."""


# -- conditional writes are the server's ---------------------------------------------------------


def _race(calls: list[Callable[[], object]]) -> list[bool]:
    """Run ``calls`` in threads released at once; whether each won (``PreconditionFailed``
    means it lost)."""
    start = threading.Barrier(len(calls))
    won = [False] * len(calls)

    def run(n: int) -> None:
        start.wait()
        try:
            calls[n]()
            won[n] = True
        except PreconditionFailed:
            pass

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def test_racing_put_if_match_from_two_clients_has_one_winner(place: Place) -> None:
    """Two clients read the same version and both try to replace it: the server accepts
    exactly one PUT and refuses the other, round after round."""
    clients = [place.backend() for _ in range(2)]
    clients[0].put_if_absent("refs.json", b"round 0")
    for n in range(1, 21):
        _, tag = clients[0].get_versioned("refs.json")
        bodies = [f"round {n} by client {i}".encode() for i in range(2)]
        won = _race(
            [
                partial(c.put_if_match, "refs.json", b, tag)
                for c, b in zip(clients, bodies, strict=True)
            ]
        )
        assert won.count(True) == 1, n
        assert clients[1].get("refs.json") == bodies[won.index(True)]


def test_racing_put_if_absent_creates_once(place: Place) -> None:
    clients = [place.backend() for _ in range(6)]
    bodies = [f"writer {n}".encode() for n in range(len(clients))]
    won = _race(
        [partial(c.put_if_absent, "config.json", b) for c, b in zip(clients, bodies, strict=True)]
    )
    assert won.count(True) == 1
    assert clients[0].get("config.json") == bodies[won.index(True)]


def test_server_refuses_a_stale_if_match_itself(place: Place) -> None:
    """The refusal comes from the server: a raw PUT with the stale ETag gets 412."""
    backend = place.backend()
    first = backend.put_if_absent("refs.json", b"a")
    backend.put_if_match("refs.json", b"b", first)
    raw = place.server.admin
    with pytest.raises(raw.exceptions.ClientError) as info:
        raw.put_object(Bucket=place.bucket, Key=place.key("refs.json"), Body=b"c", IfMatch=first)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert backend.get("refs.json") == b"b"


# -- keys and prefixes ---------------------------------------------------------------------------


def test_keys_live_under_the_prefix_and_prefixes_never_collide(s3_server: SeaweedServer) -> None:
    bucket = new_bucket(s3_server)  # the whole bucket: a backend at its root too
    root = S3Backend(bucket, endpoint_url=s3_server.endpoint)
    team = S3Backend(bucket, "team", endpoint_url=s3_server.endpoint)
    sibling = S3Backend(bucket, "team-b", endpoint_url=s3_server.endpoint)
    for n, backend in enumerate((root, team, sibling)):
        backend.put("objects/ab/cd", f"{n}".encode())
        backend.put_if_absent("refs.json", f"refs {n}".encode())
    raw = s3_server.admin.list_objects_v2(Bucket=bucket)
    assert sorted(o["Key"] for o in raw["Contents"]) == [
        "objects/ab/cd",
        "refs.json",
        "team-b/objects/ab/cd",
        "team-b/refs.json",
        "team/objects/ab/cd",
        "team/refs.json",
    ]
    for n, backend in enumerate((root, team, sibling)):
        assert [k for k, _ in backend.list("objects")] == ["objects/ab/cd"]
        assert backend.get("refs.json") == f"refs {n}".encode()
    sibling.delete("objects/ab/cd")
    assert team.get("objects/ab/cd") == b"1" and root.get("objects/ab/cd") == b"0"


def test_deferred_puts_stay_readable_while_sync_uploads_them(place: Place) -> None:
    backend = place.backend(parallel=1)
    backend.put("objects/aa/one", b"1", defer=True)
    backend.put("objects/aa/two", b"2", defer=True)
    seen: list[tuple[bytes, bytes]] = []

    def read_both(**_: object) -> None:  # before each upload of the sync
        seen.append((backend.get("objects/aa/one"), backend.get("objects/aa/two")))

    backend.client.meta.events.register("before-call.s3.PutObject", read_both)
    backend.sync()
    assert seen == [(b"1", b"2")] * 2


def test_list_pages_through_many_keys(place: Place) -> None:
    backend = place.backend()
    for n in range(1100):  # more than one page of ListObjectsV2 (1000 keys)
        backend.put(f"objects/{n % 7:02x}/{n:06d}", b"x", defer=True)
    backend.sync()
    assert len(dict(backend.list("objects"))) == 1100


# -- large objects and their debris --------------------------------------------------------------


def test_large_objects_go_up_in_parts(place: Place) -> None:
    backend = place.backend(multipart_threshold=5 << 20)
    blob = bytes(range(251)) * ((12 << 20) // 251)
    backend.put("objects/bi/g1", blob)
    backend.put("objects/bi/g2", blob[::-1], defer=True)
    backend.sync()
    data, tag = backend.get_versioned("objects/bi/g1")
    assert data == blob and "-" in tag  # a multipart ETag: MD5 of the parts' MD5s, dash, count
    assert backend.get("objects/bi/g2") == blob[::-1]
    assert backend.stat("objects/bi/g2").size == len(blob)


def test_unfinished_multipart_uploads_are_debris_to_remove(place: Place) -> None:
    backend = place.backend("mine")
    raw, bucket, key = place.server.admin, place.bucket, place.key("mine/objects/aa/bb")
    ours = raw.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    raw.upload_part(Bucket=bucket, Key=key, UploadId=ours, PartNumber=1, Body=b"x" * 100)
    raw.create_multipart_upload(Bucket=bucket, Key=place.key("other/objects/aa/bb"))
    (backend.scratch_dir() / "work-1").mkdir()
    found = dict(backend.temp_files())
    assert sorted(found) == [f"objects/aa/bb?uploadId={ours}", "work-1"]
    for name in found:
        backend.remove_temp(name)
    assert backend.temp_files() == []
    left = raw.list_multipart_uploads(Bucket=bucket, Prefix=place.base).get("Uploads", [])
    assert [u["Key"] for u in left] == [place.key("other/objects/aa/bb")]


# -- answers that fail on the way ---------------------------------------------------------------

_METHODS = (b"GET ", b"PUT ", b"HEAD ", b"POST ", b"DELETE ")
_SLOW_DOWN = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
    b"Connection: close\r\nContent-Length: 95\r\n\r\n"
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    + b" "
    * 8
)


class FlakyProxy:
    """A TCP proxy on 127.0.0.1 in front of the server that fails on command: it answers the
    next ``slow_down`` requests with 503 SlowDown itself, and forwards the next request whose
    head contains ``lose_answer_to`` but closes the connection instead of passing on the
    server's answer (the write happened; the client never hears of it)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.slow_down = 0
        self.lose_answer_to: bytes | None = None
        self.refused = 0
        self.lost = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        doomed = False
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([client, upstream], [], [], 0.2)
                if client in ready:
                    data = client.recv(1 << 16)
                    if not data:
                        return
                    if data.startswith(_METHODS):
                        with self._lock:
                            if self.slow_down > 0:
                                self.slow_down -= 1
                                self.refused += 1
                                client.sendall(_SLOW_DOWN)
                                return
                            head = data.split(b"\r\n\r\n", 1)[0].lower()
                            if self.lose_answer_to is not None and self.lose_answer_to in head:
                                self.lose_answer_to = None
                                self.lost += 1
                                doomed = True
                    upstream.sendall(data)
                if upstream in ready:
                    data = upstream.recv(1 << 16)
                    # botocore sends PUTs with "Expect: 100-continue": the interim answer
                    # passes, the final one (after the body is stored) is lost.
                    if not data or (doomed and not data.startswith(b"HTTP/1.1 100 ")):
                        return
                    client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()


@pytest.fixture
def flaky(s3_server: SeaweedServer) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(s3_server.ports["s3"])
    yield proxy
    proxy.close()


def test_throttling_is_retried_with_backoff(flaky: FlakyProxy, place: Place) -> None:
    backend = S3Backend(place.bucket, place.base, endpoint_url=flaky.endpoint)
    backend.put("a", b"data")
    flaky.slow_down = 3
    assert backend.get("a") == b"data"
    assert flaky.refused == 3


def test_a_lost_answer_to_a_conditional_put_that_was_applied_is_success(
    flaky: FlakyProxy, place: Place
) -> None:
    """The server created the key but the answer never came back: the retry is refused (the key
    exists), yet the key holds exactly what this writer sent, so the write succeeded."""
    backend = S3Backend(place.bucket, place.base, endpoint_url=flaky.endpoint)
    flaky.lose_answer_to = b"if-none-match"
    tag = backend.put_if_absent("refs.json", b"one")
    assert flaky.lost == 1
    assert backend.get_versioned("refs.json") == (b"one", tag)
    flaky.lose_answer_to = b"if-match"
    tag = backend.put_if_match("refs.json", b"two", tag)
    assert flaky.lost == 2
    assert backend.get_versioned("refs.json") == (b"two", tag)
    with pytest.raises(PreconditionFailed):  # another writer's key is still refused
        backend.put_if_absent("refs.json", b"three")


# -- the clock -----------------------------------------------------------------------------------


def test_now_is_the_clock_that_stamps_objects(place: Place) -> None:
    backend = place.backend()
    before = backend.now()
    backend.put("a", b"x")
    mtime = backend.stat("a").mtime
    after = backend.now()
    # LastModified has whole seconds; the server's Date too.
    assert before - 1.5 <= mtime <= after + 1.5
    assert abs(after - time.time()) < 5  # the same machine here


# -- a server that goes away ---------------------------------------------------------------------


@pytest.fixture
def doomed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SeaweedServer, S3Backend]]:
    """A server of the test's own, to kill, and a backend on it that gives up after 4 s."""
    monkeypatch.setenv("VAULT_S3_TIMEOUT", "4")
    with serving(tmp_path / "short-lived") as server:
        backend = S3Backend(new_bucket(server), "repo", endpoint_url=server.endpoint)
        assert backend.timeout == 4
        yield server, backend


def test_a_server_that_went_away_is_reported_within_the_timeout(
    doomed: tuple[SeaweedServer, S3Backend],
) -> None:
    server, backend = doomed
    backend.put("refs.json", b"x")
    for n in range(50):
        backend.put(f"objects/{n:02d}/x", bytes(1000), defer=True)
    server.kill()
    t0 = time.monotonic()
    with pytest.raises(RemoteUnavailable) as info:
        backend.get("refs.json")
    elapsed = time.monotonic() - t0
    assert 3 <= elapsed < 12, elapsed
    message = str(info.value)
    assert "\n" not in message and backend.url in message and "gave up after" in message
    # Declared down: the calls that follow (a failed commit cleaning up) fail fast.
    t0 = time.monotonic()
    with pytest.raises(RemoteUnavailable):
        backend.sync()
    with pytest.raises(RemoteUnavailable):
        backend.delete("locks/shared-1.json")
    assert time.monotonic() - t0 < 3


def test_a_server_killed_during_sync_fails_the_sync_within_the_timeout(
    doomed: tuple[SeaweedServer, S3Backend],
) -> None:
    server, backend = doomed
    uploads = []

    def kill_after_some(**_: object) -> None:
        uploads.append(1)
        if len(uploads) == 20:
            server.kill()

    backend.client.meta.events.register("after-call.s3.PutObject", kill_after_some)
    for n in range(200):
        backend.put(f"objects/{n:03d}/x", bytes(2000), defer=True)
    t0 = time.monotonic()
    with pytest.raises(RemoteUnavailable):
        backend.sync()
    assert time.monotonic() - t0 < 15
    assert len(uploads) >= 20  # the server died with uploads in flight


def test_timeout_setting_is_validated(place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("soon", "0", "-3", "nan", "inf"):
        monkeypatch.setenv("VAULT_S3_TIMEOUT", bad)
        with pytest.raises(BadValue, match="VAULT_S3_TIMEOUT"):
            place.backend()
    monkeypatch.setenv("VAULT_S3_TIMEOUT", "12.5")
    assert place.backend().timeout == 12.5
    with pytest.raises(BadValue):
        place.backend(timeout=-1)


# -- credentials, endpoints, URLs ----------------------------------------------------------------


def test_endpoint_from_the_environment(place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", place.server.endpoint)
    backend = S3Backend(place.bucket, place.base)
    backend.put("k", b"v")
    assert backend.endpoint == place.server.endpoint
    raw = place.server.admin.get_object(Bucket=place.bucket, Key=place.key("k"))
    assert raw["Body"].read() == b"v"


def test_wrong_credentials_fail_at_once_without_showing_the_secret(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-secret-must-not-be-shown"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    backend = place.backend()
    t0 = time.monotonic()
    with pytest.raises(RemoteUnavailable) as info:
        backend.get("anything")
    assert time.monotonic() - t0 < 3  # refused for good: not retried
    assert wrong not in str(info.value) and SECRET_KEY not in str(info.value)
    assert wrong not in repr(backend)


def test_a_missing_bucket_is_reported(s3_server: SeaweedServer) -> None:
    backend = S3Backend("no-such-bucket-here", endpoint_url=s3_server.endpoint)
    with pytest.raises(RemoteUnavailable, match="NoSuchBucket"):
        backend.get("config.json")


def test_parse_url() -> None:
    assert parse_url("s3://bucket/some/prefix") == ("bucket", "some/prefix")
    assert parse_url("s3://my.bucket-1") == ("my.bucket-1", "")
    assert parse_url("S3://bkt/p/") == ("bkt", "p")
    for bad in (
        "s3://ab/x",  # too short
        "s3://Upper/x",
        "s3://-dash/x",
        "s3://a..b/x",
        "s3:///prefix",
        "http://bucket/x",
        "bucket/x",
        "s3://bucket/a//b",
        "s3://bucket/a/../b",
    ):
        with pytest.raises(BadValue):
            parse_url(bad)
    with pytest.raises(BadValue, match="at least 3"):
        S3Backend("ab")
    assert S3Backend("bucket", "/team/repo/").url == "s3://bucket/team/repo"
    assert S3Backend.from_url("s3://bucket").url == "s3://bucket"


def test_without_boto3_the_backend_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "from vault.backend_s3 import S3Backend\n"
        "from vault.errors import MissingExtra\n"
        "try:\n    S3Backend('bucket')\n"
        "except MissingExtra as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "boto3" in out.stdout and "vault[s3]" in out.stdout


# -- the repository on S3 ------------------------------------------------------------------------


def test_repository_on_s3_commit_checkout_verify_gc(place: Place, tmp_path: Path) -> None:
    repo = Repository.init(place.backend("models/llama"))
    src = tmp_path / "run"
    make_safetensors(src / "adapter.safetensors", random_tensors(3, {"lora_A": (16, 256)}))
    (src / "adapter_config.json").write_text('{"r": 16}')
    first = repo.commit(src, "step 100")
    make_safetensors(src / "adapter.safetensors", random_tensors(4, {"lora_A": (16, 256)}))
    repo.commit(src, "step 200")
    # Another client, another process's view: the same bucket and prefix.
    other = Repository.open(place.backend("models/llama"))
    other.checkout("v002", tmp_path / "out")
    assert tree_bytes(tmp_path / "out") == tree_bytes(src)
    assert other.resolve("v001") == first.id
    assert other.verify().ok
    raw = place.server.admin.list_objects_v2(Bucket=place.bucket, Prefix=place.base)
    keys = {o["Key"] for o in raw["Contents"]}
    assert {place.key("models/llama/config.json"), place.key("models/llama/refs.json")} <= keys
    assert any(k.startswith(place.key("models/llama/objects/")) for k in keys)
    repo.delete("v001", confirm=True)
    for pin in repo.backup_list():
        repo.unpin(pin.name)
    assert repo.gc(grace=0).objects > 0
    assert other.verify().ok
    other.checkout("v002", tmp_path / "again")
    assert tree_bytes(tmp_path / "again") == tree_bytes(src)
