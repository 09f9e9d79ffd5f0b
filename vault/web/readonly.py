"""A backend decorator that refuses every write: what the web view reads a repository through.

Reads go to the wrapped backend unchanged; a call that would write (publish, delete, sync, remove
debris) raises :class:`ReadOnlyRepository` before touching anything. The web view opens its
repository through it, so that serving pages can never change the repository, whatever a verb
it calls might try (as restic wraps a backend in decorators for dry runs).
"""

from __future__ import annotations

from typing import Any

from ..backend import Backend
from ..errors import VaultError
from ..repo import Repository

WRITES = frozenset(
    {
        "put",
        "put_if_absent",
        "put_if_match",
        "ensure_durable",
        "delete",
        "sync",
        "discard",
        "remove_temp",
        "scratch_dir",
    }
)
"""The backend methods that write (``scratch_dir`` creates a directory)."""


class ReadOnlyRepository(VaultError):
    """Something tried to write to a repository opened read-only (a bug of the caller)."""

    kind = "refused"

    def __init__(self, where: str, method: str) -> None:
        super().__init__(f"{where} is open read-only: refusing {method}")
        self.where = where
        self.method = method


class ReadOnlyBackend:
    """``backend`` with every writing method refused (see :data:`WRITES`).

    Args:
        backend: the backend to read.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.capabilities = backend.capabilities

    def __getattr__(self, name: str) -> Any:
        if name in WRITES:
            where = self.capabilities.local_root or self.capabilities.name
            raise ReadOnlyRepository(str(where), name)
        return getattr(self._backend, name)


def open_read_only(repo: Repository) -> Repository:
    """``repo`` opened again through a :class:`ReadOnlyBackend` on its backend."""
    backend = repo.backend
    if not isinstance(backend, ReadOnlyBackend):
        backend = ReadOnlyBackend(backend)  # type: ignore[assignment]
    return Repository.open(backend)  # type: ignore[arg-type]
