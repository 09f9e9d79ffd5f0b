"""Reachability: which objects the versions reach, read from the manifests."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from ..ids import Oid
from ..objects import KIND_FILE
from ..store import ObjectStore


@dataclass
class Reach:
    """Everything reachable from a set of versions.

    Attributes:
        versions: version ids (ancestors included).
        trees: tree ids.
        files: file manifest ids.
        chunks: chunk id to uncompressed size.
    """

    versions: set[Oid] = field(default_factory=set)
    trees: set[Oid] = field(default_factory=set)
    files: set[Oid] = field(default_factory=set)
    chunks: dict[Oid, int] = field(default_factory=dict)

    def all(self) -> set[Oid]:
        """Every reachable object id."""
        return self.versions | self.trees | self.files | set(self.chunks)


def reach(
    store: ObjectStore,
    roots: Iterable[Oid],
    *,
    ancestors: bool = True,
    bases: bool = True,
    known: Reach | None = None,
) -> Reach:
    """Mark everything ``roots`` (version ids) reach, following parents when ``ancestors``.

    A root keeps its version object, its tree and everything the tree lists, and the same for
    the trees attached to it (``Version.attachments``: training data, snapshots). An ancestor
    reached only through parents keeps its version object alone: history runs through a deleted
    version, but its files stay only while a name, tag or pin (some root) keeps them. Every
    named version is itself a root, so this only lets go of versions nothing names.

    Manifests are read (and so verified); of chunks only the headers, for delta bases, unless
    ``bases`` is false. A tree or file manifest that ``known`` holds is not read again: what it
    lists is left out (a push walks only what the remote's versions do not already reach).

    Raises:
        CorruptObject, ObjectMissing: a manifest on the way is damaged; nothing can be said
            safely about what it reaches.
    """
    out = Reach()
    stack: list[Oid] = []
    for vid in dict.fromkeys(roots):
        if vid in out.versions:
            continue
        out.versions.add(vid)
        version = store.get_version(vid)
        if ancestors:
            stack.extend(version.parents)
        # The files' tree, then the trees attached to the version (training data, snapshots).
        for tree_id in version.trees():
            if tree_id in out.trees or (known is not None and tree_id in known.trees):
                continue
            out.trees.add(tree_id)
            for entry in store.get_tree(tree_id).entries:
                if entry.kind != KIND_FILE or entry.file is None or entry.file in out.files:
                    continue
                if known is not None and entry.file in known.files:
                    continue
                out.files.add(entry.file)
                for c in store.get_file(entry.file).chunks:
                    out.chunks[c.oid] = c.size
    while stack:
        vid = stack.pop()
        if vid in out.versions:
            continue
        out.versions.add(vid)
        stack.extend(p for p in store.get_version(vid).parents if p not in out.versions)
    if bases:
        add_delta_bases(store, out.chunks)
    return out


def add_delta_bases(
    store: ObjectStore, chunks: dict[Oid, int], stop: Collection[Oid] = frozenset()
) -> None:
    """Add to ``chunks`` (id to content length) the delta bases they need, transitively, but
    none in ``stop``: a delta-encoded chunk cannot be read without its base."""
    for base in sorted(delta_bases(store, set(chunks), stop)):
        if base not in chunks:
            header = store.head(base)
            chunks[base] = header.size if header is not None else 0


def delta_bases(
    store: ObjectStore, oids: set[Oid], stop: Collection[Oid] = frozenset()
) -> set[Oid]:
    """Every object that the objects ``oids`` are deltas of, transitively (their headers name
    them), but neither a base in ``stop`` nor its own bases; costs one small read per object."""
    out: set[Oid] = set()
    stack = list(oids)
    while stack:
        base = store.delta_base(stack.pop())
        if base is not None and base not in out and base not in stop:
            out.add(base)
            stack.append(base)
    return out
