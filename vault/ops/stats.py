"""``stats``: the repository's sizes, and what dedup and compression save."""

from __future__ import annotations

from dataclasses import dataclass

from ..ids import Oid
from ..refs import PINS, VERSIONS, RefsDoc
from .parts import Parts
from .walk import reach


def version_kinds(refs: RefsDoc) -> tuple[set[Oid], set[Oid]]:
    """The versions with a name, and the *backups*: versions without one that a pin keeps
    (``vault backup``, and deleted versions awaiting ``prune``). ``stats`` and ``verify``
    count versions by these two sets."""
    named = set(refs.names_for(VERSIONS).values())
    return named, set(refs.names_for(PINS).values()) - named


@dataclass
class Stats:
    """Sizes of the repository.

    Attributes:
        versions: versions with a name (``v001``...).
        backups: versions without a name that a pin keeps (see :func:`version_kinds`).
    """

    versions: int
    logical_bytes: int
    unique_bytes: int
    stored_bytes: int
    chunks: int
    objects: int
    dedup_ratio: float
    compression_ratio: float
    backups: int = 0


def stats(parts: Parts) -> Stats:
    """Versions, logical and stored sizes, dedup and compression ratios."""
    store = parts.store
    refs = parts.refs.read()
    named, backups = version_kinds(refs)
    r = reach(store, set(refs.refs.values()))
    logical = sum(store.get_version(v).size for v in named)
    unique = sum(r.chunks.values())
    stored = 0
    chunk_stored = 0
    objects = 0
    for oid, st in store.list():
        objects += 1
        stored += st.size
        if oid in r.chunks:
            chunk_stored += st.size
    return Stats(
        versions=len(named),
        logical_bytes=logical,
        unique_bytes=unique,
        stored_bytes=stored,
        chunks=len(r.chunks),
        objects=objects,
        dedup_ratio=round(logical / unique, 4) if unique else 1.0,
        compression_ratio=round(unique / chunk_stored, 4) if chunk_stored else 1.0,
        backups=len(backups),
    )
