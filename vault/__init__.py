"""vault: a git-like, content-addressed, deduplicating store for ML training artifacts.

The Python API is :class:`vault.Repository`; the ``vault`` command line is a thin layer over it.
Every result class its methods return is importable from here (``from vault import PinInfo``);
those of the heavier verbs are imported on first use, so ``import vault`` stays quick.
"""

from typing import Any

from .errors import VaultError
from .repo import Repository

_LAZY = {
    "CheckoutResult": "vault.ops.checkout",
    "CleanupPlan": "vault.ops.pins",
    "DeleteResult": "vault.ops.delete",
    "FileInfo": "vault.ops.history",
    "GcResult": "vault.ops.gc",
    "PinInfo": "vault.ops.pins",
    "Stats": "vault.ops.stats",
    "TagInfo": "vault.ops.tags",
    "VersionInfo": "vault.ops.history",
    "CommitResult": "vault.ops.commit",
    "ConsolidateResult": "vault.ops.consolidate",
    "Damage": "vault.ops.verify",
    "DiffResult": "vault.ops.diff",
    "FileChanges": "vault.ops.diff",
    "RestoreResult": "vault.ops.restore",
    "TensorChange": "vault.ops.diff",
    "VerifyReport": "vault.ops.verify",
}

__all__ = [
    "CheckoutResult",
    "CleanupPlan",
    "CommitResult",
    "ConsolidateResult",
    "Damage",
    "DeleteResult",
    "DiffResult",
    "FileChanges",
    "FileInfo",
    "GcResult",
    "PinInfo",
    "Repository",
    "RestoreResult",
    "Stats",
    "TagInfo",
    "TensorChange",
    "VaultError",
    "VerifyReport",
    "VersionInfo",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """The result classes of the heavier verbs, imported on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
