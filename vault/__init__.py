"""vault: a git-like, content-addressed, deduplicating store for ML training artifacts.

The Python API is :class:`vault.Repository`; the ``vault`` command line is a thin layer over it.
"""

from .errors import VaultError
from .repo import CommitResult, GcResult, Repository, Stats, VersionInfo

__all__ = ["CommitResult", "GcResult", "Repository", "Stats", "VaultError", "VersionInfo"]
__version__ = "0.1.0"
