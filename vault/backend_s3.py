"""A backend on an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph, R2...).

The file under key ``K`` is the object ``PREFIX/K`` in the bucket. What the protocol asks of a
backend maps onto S3 directly:

* an object appears whole when its PUT returns, so plain writes need no temporary name;
* the version tag is the object's ETag, and the conditional writes are a PUT with
  ``If-None-Match: *`` (create only) or ``If-Match: ETAG`` (replace only that version): the
  server refuses them with 412 ``PreconditionFailed`` (or 409 ``ConditionalRequestConflict``
  when two race), which this module raises as :class:`~vault.errors.PreconditionFailed`;
* :meth:`S3Backend.now` is the server's clock, read from the ``Date`` of its responses, because
  ``LastModified`` (what :meth:`S3Backend.stat` returns) is stamped by that clock.

Requests that fail on the way (connection refused or reset, timeouts, 5xx, throttling) are
retried here with exponential backoff and jitter, up to a deadline per call
(``$VAULT_S3_TIMEOUT``, default :data:`DEFAULT_TIMEOUT` seconds; one attempt under way then
may add its read timeout); then :class:`~vault.errors.RemoteUnavailable` is raised, and calls
that fail soon after give up at their first failure instead of waiting again. botocore's own
retries are off: a conditional PUT whose answer was lost may have been applied, and only the
caller of the PUT can tell (see :meth:`S3Backend._put_conditional`). Credentials come from the
standard AWS chain (environment, shared files, ``profile``); this module never reads, logs or
stores them itself.

boto3 is an optional dependency, the ``s3`` extra; it is imported when a backend is made.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import math
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from .backend import Capabilities, FileStat, check_range
from .errors import BadValue, MissingExtra, PreconditionFailed, RemoteUnavailable
from .fsutil import remove_entry

T = TypeVar("T")

TIMEOUT_ENV = "VAULT_S3_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
"""Seconds a request keeps being retried before the store is declared unavailable."""
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
"""Seconds one attempt waits to connect, and for the server between two reads."""
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
CLOCK_FRESH = 300.0
"""Seconds a reading of the server's clock is trusted before :meth:`S3Backend.now` asks again."""

_UPLOAD_MARK = "?uploadId="
"""Separates key and upload id in the name of an unfinished multipart upload (temp_files)."""
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "SlowDown",
    "RequestLimitExceeded",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestTimeout",
}
_MISSING = {"NoSuchKey", "NotFound", "404"}
_PRECONDITION = {"PreconditionFailed", "ConditionalRequestConflict"}


def timeout_from_env() -> float:
    """The per-call deadline: ``$VAULT_S3_TIMEOUT`` seconds, else :data:`DEFAULT_TIMEOUT`.

    Raises:
        BadValue: the variable is not a finite number of seconds above zero.
    """
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise BadValue(TIMEOUT_ENV, raw, "expected a number of seconds above 0")
    return value


def check_bucket(name: str) -> str:
    """Return ``name`` if it is a valid bucket name (3 to 63 lowercase letters, digits, dots
    and hyphens, beginning and ending with a letter or digit).

    Raises:
        BadValue: it is not.
    """
    if not _BUCKET_RE.fullmatch(name) or ".." in name:
        why = (
            "a bucket name has at least 3 characters"
            if len(name) < 3
            else "expected 3 to 63 lowercase letters, digits, dots and hyphens,"
            " beginning and ending with a letter or digit"
        )
        raise BadValue("S3 bucket", name, why)
    return name


def check_prefix(prefix: str) -> str:
    """``prefix`` without leading and trailing slashes.

    Raises:
        BadValue: it has an empty, ``.`` or ``..`` component.
    """
    stripped = prefix.strip("/")
    if stripped and any(part in ("", ".", "..") for part in stripped.split("/")):
        raise BadValue("S3 prefix", prefix, "empty, '.' and '..' components are not allowed")
    return stripped


def parse_url(url: str) -> tuple[str, str]:
    """Split ``s3://BUCKET/SOME/PREFIX`` into ``(bucket, prefix)``; the prefix may be empty.

    Raises:
        BadValue: not an ``s3://`` URL, or a bad bucket name or prefix.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "s3":
        raise BadValue("S3 URL", url, "expected s3://BUCKET[/PREFIX]")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise BadValue("S3 URL", url, "no bucket name")
    return check_bucket(bucket), check_prefix(prefix)


def _boto() -> tuple[Any, Any, Any]:
    try:
        import boto3
        import boto3.s3.transfer
        import botocore.config
    except ImportError:
        raise MissingExtra("the S3 backend", "boto3", extra="s3") from None
    return boto3, botocore.config.Config, boto3.s3.transfer.TransferConfig


class _Failure:
    """What became of a failed request."""

    MISSING = "missing"
    PRECONDITION = "precondition"
    TRANSIENT = "transient"
    FATAL = "fatal"


def _classify(exc: BaseException) -> str:
    import botocore.exceptions as bx

    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _PRECONDITION or status == 412:
            return _Failure.PRECONDITION
        if code in _MISSING or (status == 404 and code != "NoSuchBucket"):
            return _Failure.MISSING
        if status >= 500 or status == 429 or code in _THROTTLED:
            return _Failure.TRANSIENT
        return _Failure.FATAL
    if isinstance(
        exc, (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError, ConnectionError)
    ):
        return _Failure.TRANSIENT
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return _Failure.FATAL
    raise exc  # a bug (bad parameters), not a store failure


def _why(exc: BaseException) -> str:
    import botocore.exceptions as bx

    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return f"{exc} (looked in the environment, the shared AWS files and the profile)"
    if isinstance(exc, bx.ClientError) and exc.response.get("Error", {}).get("Code"):
        error = exc.response["Error"]
        return f"{error['Code']}: {error.get('Message') or 'no message'}"
    return str(exc) or type(exc).__name__


class S3Backend:
    """Keys and bytes in a bucket of an S3-compatible store, under ``prefix``.

    A deferred put waits in memory until :meth:`sync`, which uploads every waiting object,
    :attr:`parallel` at a time; an object of :attr:`multipart_threshold` bytes or more is sent
    as a multipart upload. An upload cut short by a crash leaves its parts on the server,
    invisible to GET and LIST but billed; :meth:`temp_files` lists those under the prefix, so
    garbage collection aborts them as it removes a directory's temporary files.

    Args:
        bucket: the bucket (it must exist).
        prefix: folder in the bucket that holds the repository; keys are ``PREFIX/KEY``.
        endpoint_url: the store's URL for anything other than AWS (also taken from
            ``$AWS_ENDPOINT_URL_S3`` or ``$AWS_ENDPOINT_URL``); such stores are addressed
            path-style (``ENDPOINT/BUCKET/KEY``).
        profile: a profile of the shared AWS files, for credentials and region.
        region: the region, when neither the profile nor the environment gives one.
        timeout: seconds a request is retried before :class:`RemoteUnavailable` (default
            ``$VAULT_S3_TIMEOUT``, else :data:`DEFAULT_TIMEOUT`).
        parallel: uploads in flight during :meth:`sync`.
        multipart_threshold: objects at least this large go up in parts.

    Attributes:
        client: the boto3 S3 client (thread-safe; its retries are off, see the module).
        endpoint: the URL the store is reached at.

    Raises:
        MissingExtra: boto3 is not installed.
        BadValue: a bad bucket name, prefix, timeout or profile.
    """

    FLUSH_BYTES = 256 << 20
    """Deferred bytes that trigger an early :meth:`sync`, so a huge commit is not all in memory."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        timeout: float | None = None,
        parallel: int = 16,
        multipart_threshold: int = 64 << 20,
    ) -> None:
        boto3, config_cls, transfer_cls = _boto()
        import botocore.exceptions as bx

        self.bucket = check_bucket(bucket)
        self.prefix = check_prefix(prefix)
        self._base = f"{self.prefix}/" if self.prefix else ""
        self.timeout = timeout_from_env() if timeout is None else timeout
        if not math.isfinite(self.timeout) or self.timeout <= 0:
            raise BadValue("S3 timeout", timeout, "expected a number of seconds above 0")
        self.parallel = parallel
        self.multipart_threshold = multipart_threshold
        self.capabilities = Capabilities("s3")
        endpoint = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
        try:
            session = boto3.session.Session(profile_name=profile, region_name=region)
        except bx.ProfileNotFound:
            raise BadValue("AWS profile", profile, "not found in the shared AWS files") from None
        config = config_cls(
            region_name=session.region_name or "us-east-1",
            connect_timeout=min(CONNECT_TIMEOUT, self.timeout),
            read_timeout=min(READ_TIMEOUT, self.timeout),
            retries={"mode": "standard", "total_max_attempts": 1},
            # Every object read is verified by its BLAKE3 before use, so a CRC32 of each
            # response body is CPU spent twice (a sixth of a clone's); uploads keep theirs.
            response_checksum_validation="when_required",
            max_pool_connections=max(parallel, 4) + 4,
            # Payloads are not signed (no SHA-256 of every body): vault's objects are named by
            # their BLAKE3 and verified on every read, and the body keeps its CRC32 checksum.
            s3={"addressing_style": "path", "payload_signing_enabled": False}
            if endpoint
            else {"payload_signing_enabled": False},
        )
        self.client = session.client("s3", endpoint_url=endpoint, config=config)
        self._transfer = transfer_cls(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(multipart_threshold // 4, 8 << 20),
            max_concurrency=4,
        )
        self.endpoint = str(self.client.meta.endpoint_url)
        self.client.meta.events.register("after-call.s3", self._saw_response)
        self._skew: float | None = None
        self._skew_read = -math.inf
        self._down_since: float | None = None
        self._pending: dict[str, bytes] = {}
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._scratch: Path | None = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> S3Backend:
        """The backend for ``s3://BUCKET/PREFIX`` (keyword arguments as for the constructor)."""
        bucket, prefix = parse_url(url)
        return cls(bucket, prefix, **kwargs)

    @property
    def url(self) -> str:
        """``s3://BUCKET/PREFIX``: where the repository is, for messages."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def where(self) -> str:
        """The URL and the endpoint it is reached at, for error messages."""
        return f"{self.url} ({self.endpoint})"

    def __repr__(self) -> str:
        return f"S3Backend({self.url!r}, endpoint={self.endpoint!r})"

    # -- requests ------------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        return self._base + key

    def _request(
        self, key: str, call: Callable[[], T], failures: builtins.list[BaseException] | None = None
    ) -> T:
        """Run ``call`` (one request, its body read), retrying what may pass on a second try
        until the deadline; transient errors seen are appended to ``failures``.

        Raises:
            FileNotFoundError: the key (404) is absent.
            PreconditionFailed: the server refused a conditional write.
            RemoteUnavailable: the store kept failing until the deadline, or refused for good.
        """
        start = time.monotonic()
        deadline = start + self.timeout
        pause = BACKOFF_FIRST
        while True:
            try:
                result = call()
            except Exception as exc:  # noqa: BLE001 - classified below; bugs re-raise there
                kind = _classify(exc)
                if kind == _Failure.MISSING:
                    raise FileNotFoundError(key) from None
                if kind == _Failure.PRECONDITION:
                    raise PreconditionFailed(key, "the store refused the condition") from None
                if kind == _Failure.FATAL:
                    raise RemoteUnavailable(self.where, _why(exc)) from None
                if failures is not None:
                    failures.append(exc)
                now = time.monotonic()
                # Once one call has given up, the others stop waiting too: a commit that fails
                # then cleans up (lease, deferred puts) in seconds, not a deadline per request.
                down = self._down_since
                if now >= deadline or (down is not None and now - down < self.timeout):
                    self._down_since = now
                    raise RemoteUnavailable(self.where, _why(exc), max(now - start, 0.1)) from None
                time.sleep(min(pause * random.uniform(0.5, 1.0), deadline - now))
                pause = min(pause * 2, BACKOFF_MAX)
                continue
            self._down_since = None
            return result

    def _saw_response(self, http_response: Any = None, **_: Any) -> None:
        """Note the server's clock from the ``Date`` of each response."""
        date = getattr(http_response, "headers", {}).get("Date") if http_response else None
        if not date:
            return
        try:
            # Date has whole seconds, truncated: the middle of that second is the best guess.
            server = parsedate_to_datetime(date).timestamp() + 0.5
        except (TypeError, ValueError, IndexError):
            return
        self._skew = server - time.time()
        self._skew_read = time.monotonic()

    # -- writes --------------------------------------------------------------------------------

    def put(self, key: str, data: bytes | bytearray | memoryview, *, defer: bool = False) -> None:
        """Upload ``data`` under ``key``; with ``defer``, keep it until :meth:`sync`."""
        body = data if isinstance(data, bytes) else bytes(data)
        if not defer:
            with self._lock:
                self._pending_bytes -= len(self._pending.pop(key, b""))
            self._upload(key, body)
            return
        with self._lock:
            old = self._pending.get(key)
            self._pending[key] = body
            self._pending_bytes += len(body) - (len(old) if old is not None else 0)
            flush = self._pending_bytes >= self.FLUSH_BYTES
        if flush:
            self.sync()

    def _upload(self, key: str, body: bytes) -> None:
        full = self._full(key)
        if len(body) < self.multipart_threshold:
            self._request(
                key, lambda: self.client.put_object(Bucket=self.bucket, Key=full, Body=body)
            )
            return
        self._request(
            key,
            lambda: self.client.upload_fileobj(
                io.BytesIO(body), self.bucket, full, Config=self._transfer
            ),
        )

    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create ``key`` with a PUT carrying ``If-None-Match: *``; return its ETag."""
        return self._put_conditional(key, data, {"IfNoneMatch": "*"}, "it exists")

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace ``key`` with a PUT carrying ``If-Match: ETAG``; return the new ETag."""
        return self._put_conditional(
            key, data, {"IfMatch": etag}, "it is absent or changed since it was read"
        )

    def _put_conditional(self, key: str, data: bytes, condition: dict[str, str], why: str) -> str:
        """One conditional PUT. When an attempt failed on the way and a retry is then refused,
        the first attempt may have been applied and only its answer lost: if the store holds
        exactly ``data`` now, that write counts as this one (equal bytes are the same state)."""
        full = self._full(key)
        failures: list[BaseException] = []

        def attempt() -> str:
            response = self.client.put_object(Bucket=self.bucket, Key=full, Body=data, **condition)
            return str(response["ETag"])

        try:
            return self._request(key, attempt, failures)
        except (PreconditionFailed, FileNotFoundError):
            if failures:
                try:
                    current, etag = self.get_versioned(key)
                except FileNotFoundError:
                    current, etag = None, ""
                if current == data:
                    return etag
        raise PreconditionFailed(key, why)

    def sync(self) -> None:
        """Upload every deferred put, :attr:`parallel` at a time; each is durable once its PUT
        returns. Until then it stays readable here; if an upload fails, the error is raised and
        the puts of this sync are forgotten."""
        with self._sync_lock:
            with self._lock:
                batch = dict(self._pending)
            try:
                if len(batch) <= 1:
                    for key, body in batch.items():
                        self._upload(key, body)
                else:
                    with ThreadPoolExecutor(min(self.parallel, len(batch))) as pool:
                        futures = [pool.submit(self._upload, k, b) for k, b in batch.items()]
                        for future in futures:
                            future.result()
            finally:
                with self._lock:
                    for key, body in batch.items():
                        if self._pending.get(key) is body:  # not put again meanwhile
                            del self._pending[key]
                            self._pending_bytes -= len(body)

    def discard(self) -> None:
        """Forget every deferred put not yet uploaded."""
        with self._lock:
            self._pending.clear()
            self._pending_bytes = 0

    def delete(self, key: str) -> None:
        """Delete ``key`` (S3 ignores absent keys)."""
        full = self._full(key)
        self._request(key, lambda: self.client.delete_object(Bucket=self.bucket, Key=full))

    # -- reads ---------------------------------------------------------------------------------

    def _waiting(self, key: str) -> bytes | None:
        if not self._pending:
            return None
        with self._lock:
            return self._pending.get(key)

    def ensure_durable(self, key: str) -> bool:
        """Whether ``key`` exists: an object visible on S3 is durable."""
        return self.stat(key) is not None

    def get(self, key: str) -> bytes:
        """The bytes under ``key`` (a deferred put's until it is uploaded)."""
        waiting = self._waiting(key)
        if waiting is not None:
            return waiting
        return self.get_versioned(key)[0]

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        """The bytes under ``key`` and their ETag, from one GET."""
        full = self._full(key)

        def call() -> tuple[bytes, str]:
            response = self.client.get_object(Bucket=self.bucket, Key=full)
            return response["Body"].read(), str(response["ETag"])

        return self._request(key, call)

    def get_head(self, key: str, n: int) -> bytes:
        """At most the first ``n`` bytes under ``key``, with a ranged GET."""
        return self.get_range(key, 0, n)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """At most ``length`` bytes under ``key`` from ``offset`` on, with a ranged GET (a
        deferred put's until it is uploaded)."""
        check_range(offset, length)
        waiting = self._waiting(key)
        if waiting is not None:
            return waiting[offset : offset + length]
        full = self._full(key)
        if length == 0:
            if self.stat(key) is None:
                raise FileNotFoundError(key)
            return b""

        def call() -> bytes:
            import botocore.exceptions as bx

            try:
                response = self.client.get_object(
                    Bucket=self.bucket, Key=full, Range=f"bytes={offset}-{offset + length - 1}"
                )
            except bx.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return b""  # the object ends before ``offset``: no byte of the range exists
                raise
            return bytes(response["Body"].read()[:length])

        return self._request(key, call)

    def stat(self, key: str) -> FileStat | None:
        """Size and ``LastModified`` of ``key`` (a HEAD request), or ``None`` when absent."""
        waiting = self._waiting(key)
        if waiting is not None:
            return FileStat(len(waiting), time.time() + (self._skew or 0.0))
        full = self._full(key)
        try:
            head = self._request(key, lambda: self.client.head_object(Bucket=self.bucket, Key=full))
        except FileNotFoundError:
            return None
        return FileStat(int(head["ContentLength"]), head["LastModified"].timestamp())

    def list(self, prefix: str) -> Iterator[tuple[str, FileStat]]:
        """Every uploaded key under the folder ``prefix`` (ListObjectsV2, page by page)."""
        folder = prefix.strip("/")
        folder = self._full(f"{folder}/" if folder else "")
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": folder}
            if token:
                args["ContinuationToken"] = token
            page = self._request(prefix, partial(self.client.list_objects_v2, **args))
            for item in page.get("Contents", ()):
                name = str(item["Key"])
                if name.endswith("/"):
                    continue  # a folder marker some tools create, not a file
                yield (
                    name[len(self._base) :],
                    FileStat(int(item["Size"]), item["LastModified"].timestamp()),
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def now(self) -> float:
        """The server's clock: this machine's, corrected by the ``Date`` of a recent response
        (a HEAD of the bucket when none was seen for :data:`CLOCK_FRESH` seconds); this
        machine's clock alone when the server sends no date."""
        if time.monotonic() - self._skew_read > CLOCK_FRESH:
            self._request("", lambda: self.client.head_bucket(Bucket=self.bucket))
        return time.time() + (self._skew or 0.0)

    # -- debris and scratch --------------------------------------------------------------------

    def temp_files(self) -> builtins.list[tuple[str, int]]:
        """Debris of interrupted writes: unfinished multipart uploads under the prefix (named
        ``KEY?uploadId=ID``), and what is left in this backend's scratch directory."""
        out: list[tuple[str, int]] = []
        if self._scratch is not None:
            for path in self._scratch.iterdir():
                size = path.stat().st_size if path.is_file() else 0
                out.append((path.name, size))
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._base}
        while True:
            page = self._request("", partial(self.client.list_multipart_uploads, **args))
            for upload in page.get("Uploads", ()):
                key = str(upload["Key"])[len(self._base) :]
                out.append((f"{key}{_UPLOAD_MARK}{upload['UploadId']}", 0))
            if not page.get("IsTruncated"):
                return out
            args["KeyMarker"] = page.get("NextKeyMarker", "")
            args["UploadIdMarker"] = page.get("NextUploadIdMarker", "")

    def remove_temp(self, name: str) -> None:
        """Abort one unfinished multipart upload, or remove one item of the scratch directory."""
        key, mark, upload_id = name.rpartition(_UPLOAD_MARK)
        if mark:
            full = self._full(key)
            abort = partial(
                self.client.abort_multipart_upload, Bucket=self.bucket, Key=full, UploadId=upload_id
            )
            with contextlib.suppress(FileNotFoundError):  # finished or aborted meanwhile
                self._request(key, abort)
            return
        if self._scratch is not None:
            remove_entry(self._scratch, name)

    def scratch_dir(self) -> Path:
        """A private directory on this machine, made on first use."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="vault-s3-"))
        return self._scratch
