"""The remote half of the repository facade: remotes, push, fetch, pull, clone, and the
maintenance of and from a remote. :class:`vault.repo.Repository` inherits it; each method opens
what it needs and calls one verb of :mod:`vault.ops`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BadValue, RemoteError, RepoExists, RepoNotFound
from .progress import Progress

if TYPE_CHECKING:
    from .backend import Backend
    from .ops.gc import GcResult
    from .ops.parts import Parts
    from .ops.repair import RepairReport
    from .ops.transfer import TransferResult
    from .ops.verify import VerifyReport
    from .remotes import Remote
    from .repo import Repository
    from .store import ObjectStore

REMOTE_GRACE = "14d"
"""The default grace of gc on a remote, longer than a local one: other machines write to it, whose
clocks may differ from the store's and whose leases may lapse on a slow link."""
_CLIENT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_ACCESS_KEY_ID")
"""Variables an S3 client reads when it is made: one made under other values is not reused."""
REMOTE_WORKERS = 8
"""Threads that check a remote's chunks: each mostly waits on the network."""


def _remotes() -> Any:
    """:mod:`vault.remotes`, imported when a remote is first used (``vault log`` needs none)."""
    from . import remotes

    return remotes


class RemoteMethods:
    """What :class:`~vault.repo.Repository` does with remotes (see :mod:`vault.remotes`)."""

    config: Any
    parts: Parts
    lock_timeout: float | None

    def remotes(self) -> list[Remote]:
        """Every remote, by name."""
        return _remotes().remotes(self.config)

    def remote_add(
        self,
        name: str,
        url: str,
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        region: str | None = None,
    ) -> Remote:
        """Record the remote ``name`` at ``url`` (``s3://BUCKET[/PREFIX]`` or a directory).
        Nothing is contacted: the first push creates the remote repository."""
        return _remotes().add_remote(
            self.config, _remotes().Remote(name, url, endpoint_url, profile, region)
        )

    def remote_remove(self, name: str) -> Remote:
        """Forget the remote ``name`` and what this repository recorded of it (its tracking
        refs and merge base); the remote itself is untouched."""
        from .ops.transfer import forget_remote

        gone = _remotes().remove_remote(self.config, name)
        forget_remote(self.parts, name)
        self.__dict__.get("_backends", {}).clear()
        return gone

    def open_remote(self, name: str | None = None, *, create: bool = False) -> Repository:
        """The repository of the remote ``name`` (default: ``origin``, or the only remote),
        opened on its backend with this repository's lock timeout; with ``create``, initialised
        first when the remote holds none yet (a first push).

        Raises:
            RemoteError: no such remote, or it holds no vault repository (and not ``create``).
        """
        return self._open_remote(_remotes().get_remote(self.config, name), create=create)

    def _remote_backend(self, remote: Remote) -> Backend:
        """The backend of ``remote``, made once per repository object: a long-lived process
        (``vault watch --push``, a training callback) pushes after every commit, and an S3
        client takes a fifth of a second to make and its connections a round trip each to open.
        The repository on it is opened afresh each time, so what it holds is read anew."""
        key = (
            remote.name,
            remote.url,
            remote.endpoint_url,
            remote.profile,
            remote.region,
            *(os.environ.get(v) for v in _CLIENT_ENV),
        )
        opened: dict[tuple[str | None, ...], Backend] = self.__dict__.setdefault("_backends", {})
        backend = opened.get(key)
        if backend is None:
            backend = remote.open_backend()
            if backend.capabilities.local_root is None:  # a directory costs nothing to open
                opened[key] = backend
        return backend

    def _open_remote(self, remote: Remote, *, create: bool = False) -> Repository:
        from .repo import Repository

        backend = self._remote_backend(remote)
        try:
            return Repository.open(backend, lock_timeout=self.lock_timeout)
        except RepoNotFound:
            if not create:
                raise RemoteError(
                    f"the remote {remote.name!r} ({remote.url}) holds no vault repository",
                    kind="not_found",
                ) from None
        where: Backend | Path = backend
        if backend.capabilities.local_root is not None:
            where = backend.capabilities.local_root
        try:
            return Repository.init(where, lock_timeout=self.lock_timeout)
        except RepoExists:  # another pusher created it meanwhile
            return Repository.open(backend, lock_timeout=self.lock_timeout)

    # -- transfer ----------------------------------------------------------------------------

    def push(
        self, remote: str | None = None, *, progress: Progress | None = None
    ) -> TransferResult:
        """Send every version, tag and pin, ``latest`` and ``base`` to the remote (default:
        ``origin`` or the only one); see :func:`vault.ops.transfer.push`."""
        from .ops import transfer

        found = _remotes().get_remote(self.config, remote)
        target = self._open_remote(found, create=True)
        return transfer.push(self.parts, target.parts, found.name, progress=progress)

    def fetch(
        self, remote: str | None = None, *, progress: Progress | None = None
    ) -> TransferResult:
        """Copy the remote's objects here and record its refs as ``NAME/...`` revisions;
        see :func:`vault.ops.transfer.fetch`."""
        from .ops import transfer

        found = _remotes().get_remote(self.config, remote)
        source = self._open_remote(found)
        return transfer.fetch(self.parts, source.parts, found.name, progress=progress)

    def pull(
        self, remote: str | None = None, *, progress: Progress | None = None
    ) -> TransferResult:
        """Fetch, then take in the remote's versions, tags and pins; local versions never
        pushed are placed after the remote's. See :func:`vault.ops.transfer.pull`."""
        from .ops import transfer

        found = _remotes().get_remote(self.config, remote)
        source = self._open_remote(found)
        return transfer.pull(self.parts, source.parts, found.name, progress=progress)

    @classmethod
    def clone(
        cls,
        url: str,
        path: str | os.PathLike[str],
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        progress: Progress | None = None,
    ) -> tuple[Repository, TransferResult]:
        """Create the repository ``path`` (the ``.vault`` directory itself; it must not exist
        or be empty) as a copy of the one at ``url``, which becomes its remote ``origin``.

        A clone that fails removes the repository it began.

        Raises:
            RemoteError: ``url`` holds no vault repository.
            BadValue: ``path`` exists and is not an empty directory.
        """
        from .ops import transfer
        from .repo import Repository

        remote = _remotes().Remote(
            _remotes().DEFAULT_REMOTE,
            _remotes().normalise_url(url),
            endpoint_url,
            profile,
            region,
        )
        try:
            source = Repository.open(remote.open_backend())
        except RepoNotFound:
            raise RemoteError(f"{remote.url} holds no vault repository", kind="not_found") from None
        root = Path(path)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise BadValue("clone destination", str(root), "it exists and is not empty")
        made = not root.exists()
        try:
            repo = Repository.init(root)
            _remotes().add_remote(repo.config, remote)
            pulled = transfer.pull(repo.parts, source.parts, remote.name, progress=progress)
        except BaseException:
            _remove_made(root, made)
            raise
        return repo, pulled

    # -- maintenance of and from a remote ----------------------------------------------------

    def verify_remote(
        self,
        name: str | None = None,
        rev: str | None = None,
        *,
        read_data: bool = False,
        progress: Progress | None = None,
    ) -> VerifyReport:
        """Verify the remote ``name``'s repository (see :meth:`open_remote`): its versions,
        trees and file manifests are read and verified, and every chunk must be stored with its
        declared length, delta bases too; ``read_data`` downloads and re-hashes every chunk."""
        from .ops.verify import verify_repository

        remote = self.open_remote(name)
        return verify_repository(
            remote.parts, rev, progress=progress, read_data=read_data, workers=REMOTE_WORKERS
        )

    def repair(self, from_: str | None = None, *, progress: Progress | None = None) -> RepairReport:
        """Verify, replace every damaged or missing object with the remote ``from_``'s copy
        (default: ``origin``, or the only remote; opened only when something is damaged), and
        verify again; see :func:`vault.ops.repair.repair`.

        Raises:
            RemoteError: ``from_`` names no remote, or something is damaged and there is no
                remote to repair it from.
        """
        from .ops.repair import repair

        if from_ is not None:
            _remotes().get_remote(self.config, from_)  # an unknown name fails before any work

        def source() -> tuple[str, ObjectStore]:
            remote = _remotes().get_remote(self.config, from_)
            return remote.name, self._open_remote(remote).store

        return repair(self.parts, source, progress=progress)

    def gc_remote(
        self,
        name: str | None = None,
        *,
        grace: float | str = REMOTE_GRACE,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> GcResult:
        """:meth:`~vault.repo.Repository.gc` on the remote ``name``'s repository, under its
        exclusive lease (a push holds it shared, so the two exclude each other). Roots are the
        remote's refs and what its reflog shows within ``grace``."""
        remote = self.open_remote(name)
        from .ops import gc as gc_op

        return gc_op.gc(remote.parts, grace=grace, dry_run=dry_run, progress=progress)


def _remove_made(root: Path, made: bool) -> None:
    """Remove what a failed clone created under ``root`` (the folder too when it made it)."""
    if made:
        shutil.rmtree(root, ignore_errors=True)
    elif root.is_dir():
        for child in root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
