"""``load_state_dict``: a version's safetensors file as tensors, read and verified straight
from the store, without a checkout."""

from __future__ import annotations

from typing import Any

from ..ml.tensors import load_state_dict as load_tensors
from ..revisions import resolve
from .parts import Parts
from .versions import version_tree


def load_state_dict(parts: Parts, rev: str, file: str, framework: str = "pt") -> dict[str, Any]:
    """The tensors of the safetensors file ``file`` of ``rev``, read and verified straight
    from the store.

    Args:
        framework: ``"pt"`` for torch tensors; ``"numpy"`` for numpy arrays, where BF16 and
            F8 tensors are returned as float32 (numpy has no such types; the upcast is exact).

    Raises:
        UnknownRevision: ``rev`` names no version.
        FilesCollected: the version is deleted and gc removed its files.
        FileNotInVersion: ``rev`` has no regular file ``file``.
        NotSafetensors: the file is not a well-formed safetensors file.
    """
    refs = parts.refs.read()
    oid = resolve(rev, refs, parts.store)
    return load_tensors(
        parts.store, version_tree(parts.store, refs, oid, rev), rev, file, framework
    )
