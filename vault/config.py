"""``config.json``: a repository's format version and its recorded working directory.

``init`` writes it last, so its presence marks a complete repository. A release opens the
formats in :data:`READABLE_FORMATS`; its first write to an older repository records
:data:`FORMAT` (see ``docs/format.md``).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from .backend import Backend
from .errors import PreconditionFailed, RepoExists, RepoNotFound

FORMAT = 4
"""The repository format this release writes (see ``docs/format.md``)."""

READABLE_FORMATS = (1, 2, 3, 4)
"""Formats this release opens. Format 1 lacks byte-plane and delta chunks (codec 2), pins and
version metadata; format 2 locks with ``flock`` and keeps its reflog in one appended file;
format 3 has no packs. The first write to an older repository records format 4, since an older
writer would not see this release's lease locks, an older reader would not find objects in
packs, and a format-1 reader could not read what is then written."""

CONFIG = "config.json"
DEFAULT_GRACE = "1h"
"""How old an unreachable object must be before a local gc removes it (``vault gc --grace``)."""


class Config:
    """The ``config.json`` of one repository, and the format it was opened at.

    Args:
        backend: where the repository lives.
        where: how messages name the repository (its directory, or its backend's name).
    """

    def __init__(self, backend: Backend, where: str) -> None:
        self.backend = backend
        self.where = where
        self.format = FORMAT

    def exists(self) -> bool:
        """Whether the repository is complete (``config.json`` is written last)."""
        return self.backend.stat(CONFIG) is not None

    def create(self, config: dict[str, Any]) -> None:
        """Write ``config`` as a new repository's ``config.json``.

        Raises:
            RepoExists: another ``init`` wrote one first.
        """
        try:
            self.backend.put_if_absent(CONFIG, config_bytes(config))
        except PreconditionFailed:
            raise RepoExists(self.where) from None

    def read(self) -> dict[str, Any]:
        """The parsed ``config.json``.

        Raises:
            RepoNotFound: it is missing, unreadable or not a JSON object.
        """
        try:
            config = json.loads(self.backend.get(CONFIG))
        except FileNotFoundError:
            raise RepoNotFound(self.where) from None
        except (OSError, ValueError) as exc:
            raise RepoNotFound(f"{self.where} ({exc})") from None
        if not isinstance(config, dict):
            raise RepoNotFound(f"{self.where} (config.json is not a JSON object)")
        return config

    def upgrade(self) -> None:
        """Record the current format before writing anything an older release cannot read
        (once: afterwards this costs nothing)."""
        if self.format >= FORMAT:
            return
        data, etag = self.backend.get_versioned(CONFIG)
        config = json.loads(data)
        if config.get("format", FORMAT) < FORMAT:
            config["format"] = FORMAT
            with contextlib.suppress(PreconditionFailed):  # another writer upgraded it first
                self.backend.put_if_match(CONFIG, config_bytes(config), etag)
        self.format = FORMAT


def config_bytes(config: dict[str, Any]) -> bytes:
    """``config`` as ``config.json`` holds it."""
    return json.dumps(config, indent=2).encode() + b"\n"


def workdir_for_config(root: Path, workdir: Path) -> str:
    """``workdir`` as ``config.json`` records it: relative to the folder holding the repository
    when inside it (so the project can move), else absolute."""
    base = Path(os.path.abspath(root)).parent
    full = Path(os.path.abspath(workdir))
    try:
        return full.relative_to(base).as_posix() or "."
    except ValueError:
        return str(full)


def workdir_from_config(root: Path, found: object) -> Path | None:
    """The working directory a ``workdir`` value of ``config.json`` names, or ``None``."""
    if not isinstance(found, str) or not found:
        return None
    return Path(os.path.abspath(root.parent / found))
