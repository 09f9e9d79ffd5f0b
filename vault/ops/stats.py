"""``stats``: the repository's sizes, and what dedup and compression save."""

from __future__ import annotations

from dataclasses import dataclass

from ..ids import Oid
from ..objects import KIND_FILE
from ..refs import PINS, VERSIONS, RefsDoc
from ..store import ObjectStore
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


def version_chunks(store: ObjectStore, oid: Oid) -> dict[Oid, int]:
    """The chunks of the files of the version ``oid`` (not its attachments), with their sizes."""
    out: dict[Oid, int] = {}
    for entry in store.get_tree(store.get_version(oid).tree).entries:
        if entry.kind == KIND_FILE and entry.file is not None:
            for chunk in store.get_file(entry.file).chunks:
                out[chunk.oid] = chunk.size
    return out


def new_bytes(store: ObjectStore, oid: Oid) -> int:
    """The logical bytes of the chunks of the version ``oid``'s files that none of its parents'
    files hold: what it added over what it was made from (a first version adds all its bytes).

    Reads manifests only (verified), never chunks.
    """
    version = store.get_version(oid)
    old: set[Oid] = set()
    for parent in version.parents:
        old.update(version_chunks(store, parent))
    return sum(size for c, size in version_chunks(store, oid).items() if c not in old)
