"""What a verb works with: the parts of an open repository, handed over explicitly.

Every verb in :mod:`vault.ops` takes these collaborators, never the ``Repository`` facade: the
facade opens them once and calls one verb per method, so a verb can be read (and called)
without it, as dulwich's porcelain works over an object store and a refs container.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..backend import Backend
from ..config import Config
from ..ids import Oid
from ..leases import SHARED, Lease, Leases
from ..refs import RefStore
from ..revisions import resolve
from ..store import ObjectStore


@dataclass(frozen=True)
class Parts:
    """The collaborators of one open repository.

    Attributes:
        backend: where every repository file lives.
        store: the object store on it.
        refs: the ref store on it.
        locks: its lease locks (writers hold a shared lease, gc an exclusive one).
        config: its ``config.json``, which the first write to an older format upgrades.
        root: the repository's local directory, or ``None`` when the backend has none.
    """

    backend: Backend
    store: ObjectStore
    refs: RefStore
    locks: Leases
    config: Config
    root: Path | None = None

    def local_paths(self) -> tuple[Path, ...]:
        """The repository's directory, when it has one: what commit never reads and restore
        never touches."""
        return (self.root,) if self.root is not None else ()

    @property
    def project(self) -> Path | None:
        """The project folder: the folder holding the repository's directory (``.vault``), or
        ``None`` when the repository has no local directory. Its ``.vaultignore`` applies to
        commits, and ``--data`` paths inside it are recorded relative to it."""
        return Path(os.path.abspath(self.root)).parent if self.root is not None else None

    def guarded(self, path: str | os.PathLike[str]) -> tuple[Path, ...]:
        """What a checkout into ``path``, or a commit of it, must keep out of: the repository,
        unless ``path`` lies under the repository's ``tmp/``, where vault itself checks out and
        commits (consolidate's working directory) and nothing of the repository can be reached.
        """
        if self.root is None:
            return ()
        scratch = os.path.realpath(self.root / "tmp")
        if os.path.realpath(path).startswith(scratch + os.sep):
            return ()
        return (self.root,)

    @contextmanager
    def writing(self) -> Iterator[Lease]:
        """Held by every writer: excludes a concurrent gc, not other writers. Yields the lease,
        whose :meth:`~vault.leases.Lease.check` a writer calls before it publishes refs."""
        with self.locks.hold(SHARED) as lease:
            self.config.upgrade()
            yield lease

    def resolve(self, rev: str) -> Oid:
        """The id of the version ``rev`` names, by the refs as they are now."""
        return resolve(rev, self.refs.read(), self.store)
