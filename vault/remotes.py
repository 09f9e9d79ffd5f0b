"""Remotes: other vault repositories, by name, that this one pushes to and fetches from.

A remote is a repository in the same format on another backend: a bucket (and prefix) on
S3-compatible storage, ``s3://BUCKET[/PREFIX]``, or a directory (a path or ``file://...``, for
a USB disk or NFS). Remotes are recorded in ``config.json`` under ``remotes``, name to
``{"url", "endpoint_url", "profile", "region"}``; nothing secret is recorded: credentials
come from the standard AWS chain (environment, shared files, the named profile) when the
backend is opened.

What a fetch saw of a remote is kept as *remote-tracking refs*, ``remotes/NAME/<ref>`` in the
local ``refs.json`` (``remotes/origin/latest``, ``remotes/origin/versions/v007``); revisions
name them ``origin/latest`` and ``origin/v007``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .backend import Backend, LocalBackend
from .config import CONFIG, Config, config_bytes
from .errors import BadValue, PreconditionFailed, RemoteError
from .refs import REMOTES

DEFAULT_REMOTE = "origin"
REPO_DIRNAME = ".vault"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_CAS_RETRIES = 20


@dataclass(frozen=True)
class Remote:
    """A named remote as ``config.json`` records it.

    Attributes:
        name: the remote's name (``origin``).
        url: ``s3://BUCKET[/PREFIX]``, or an absolute directory path.
        endpoint_url: the S3 endpoint (default: ``$AWS_ENDPOINT_URL``, else AWS).
        profile: the AWS profile whose credentials to use.
        region: the S3 region.
    """

    name: str
    url: str
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None

    @property
    def is_s3(self) -> bool:
        """Whether the remote lives on S3-compatible storage."""
        return self.url.lower().startswith("s3://")

    def open_backend(self) -> Backend:
        """The backend holding the remote repository (nothing is read or written yet)."""
        return open_url(
            self.url, endpoint_url=self.endpoint_url, profile=self.profile, region=self.region
        )

    def to_json(self) -> dict[str, Any]:
        """The remote as ``vault remote list --json`` prints it."""
        return {"name": self.name, "url": self.url, "endpoint_url": self.endpoint_url}


def check_remote_name(name: str) -> str:
    """Return ``name`` if it may name a remote (letters, digits, ``.``, ``_``, ``-``).

    Raises:
        BadValue: it may not.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise BadValue("remote name", name, "use letters, digits, '.', '_' and '-' (at most 64)")
    return name


def normalise_url(url: str, *, base: Path | None = None) -> str:
    """Check a remote URL and return it as recorded: ``s3://...`` unchanged (bucket and prefix
    checked), a directory path or ``file://`` URL as an absolute path.

    Raises:
        BadValue: the URL is empty, of another scheme, or a malformed ``s3://`` URL.
    """
    if not url:
        raise BadValue("remote URL", url, "expected s3://BUCKET[/PREFIX] or a directory")
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() == "s3":
        from .backend_s3 import parse_url

        bucket, prefix = parse_url(url)
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if sep and scheme.lower() == "file":
        if not rest.startswith("/"):
            raise BadValue("remote URL", url, "a file:// URL needs an absolute path")
        url = rest
    elif sep:
        raise BadValue("remote URL", url, "expected s3://BUCKET[/PREFIX] or a directory")
    if "\0" in url:
        raise BadValue("remote URL", url, "a path cannot hold a NUL byte")
    return os.path.abspath((base or Path.cwd()) / url)


def repository_dir(path: Path) -> Path:
    """The repository a directory URL names: the directory itself when it is a repository or
    not one yet, else its ``.vault`` when that is one (a project folder)."""
    if not (path / CONFIG).exists() and (path / REPO_DIRNAME / CONFIG).exists():
        return path / REPO_DIRNAME
    return path


def open_url(
    url: str,
    *,
    endpoint_url: str | None = None,
    profile: str | None = None,
    region: str | None = None,
) -> Backend:
    """The backend for a remote URL (see :func:`normalise_url`)."""
    url = normalise_url(url)
    if url.lower().startswith("s3://"):
        from .backend_s3 import S3Backend

        return S3Backend.from_url(url, endpoint_url=endpoint_url, profile=profile, region=region)
    return LocalBackend(repository_dir(Path(url)))


def remotes(config: Config) -> list[Remote]:
    """Every remote of the repository whose config is ``config``, by name."""
    found = config.read().get("remotes", {})
    out = []
    if isinstance(found, dict):
        for name, entry in sorted(found.items()):
            if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                out.append(
                    Remote(
                        name,
                        entry["url"],
                        _opt(entry.get("endpoint_url")),
                        _opt(entry.get("profile")),
                        _opt(entry.get("region")),
                    )
                )
    return out


def _opt(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def get_remote(config: Config, name: str | None = None) -> Remote:
    """The remote ``name``; without a name, ``origin``, or the only remote there is.

    Raises:
        RemoteError: no such remote, or no name and no single default.
    """
    found = {r.name: r for r in remotes(config)}
    if name is not None:
        if name not in found:
            known = ", ".join(found) or "none"
            raise RemoteError(f"no remote named {name!r} (remotes: {known})", kind="not_found")
        return found[name]
    if DEFAULT_REMOTE in found:
        return found[DEFAULT_REMOTE]
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise RemoteError("no remote: add one with 'vault remote add NAME URL'", kind="not_found")
    names = ", ".join(found)
    raise RemoteError(f"several remotes and none is {DEFAULT_REMOTE!r}: name one ({names})")


def add_remote(config: Config, remote: Remote) -> Remote:
    """Record ``remote`` (its name checked, its URL normalised) in ``config.json``.

    Raises:
        RemoteError: a remote of that name exists.
    """
    check_remote_name(remote.name)
    remote = Remote(
        remote.name,
        normalise_url(remote.url),
        remote.endpoint_url or None,
        remote.profile or None,
        remote.region or None,
    )

    def change(doc: dict[str, Any]) -> None:
        table = doc.setdefault("remotes", {})
        if remote.name in table:
            raise RemoteError(f"a remote named {remote.name!r} exists already", kind="refused")
        entry = asdict(remote)
        del entry["name"]
        table[remote.name] = {k: v for k, v in entry.items() if v is not None}

    update_config(config, change)
    return remote


def remove_remote(config: Config, name: str) -> Remote:
    """Forget the remote ``name`` (its remote-tracking refs are the caller's to drop).

    Raises:
        RemoteError: there is no such remote.
    """
    gone = get_remote(config, name)

    def change(doc: dict[str, Any]) -> None:
        table = doc.get("remotes", {})
        if name not in table:
            raise RemoteError(f"no remote named {name!r}", kind="not_found")
        del table[name]

    update_config(config, change)
    return gone


def update_config(config: Config, change: Any) -> None:
    """Apply ``change`` (a function editing the parsed document in place) to ``config.json``
    by compare-and-swap, replayed when another writer changed the file meanwhile."""
    backend = config.backend
    for _ in range(_CAS_RETRIES):
        data, etag = backend.get_versioned(CONFIG)
        doc = json.loads(data)
        change(doc)
        with contextlib.suppress(PreconditionFailed):
            backend.put_if_match(CONFIG, config_bytes(doc), etag)
            return
    raise RemoteError("config.json kept changing under this update; try again", kind="refused")


def tracking_ref(remote: str, ref: str) -> str:
    """The local ref that records the remote ``remote``'s ref ``ref``."""
    return f"{REMOTES}{remote}/{ref}"
