"""``status``: how a folder differs from a version, file by file, without storing anything.

The folder is listed as ``commit`` lists it (:func:`vault.ops.commit.scan`: links not followed,
names reserved for the repository and the repository itself left out). A path only the folder
has is *added*, one only the version has is *removed*, and one both have is *changed* when its
kind, permission bits, link target, size or content differ (what ``diff`` compares).

Content is compared without reading the store's chunks:

1. the stat cache (:mod:`vault.statcache`, the one ``commit`` keeps) vouches for a file whose
   inode, size, mtime and ctime are those it recorded: when it names the version's own file
   manifest the file is unchanged, at the cost of a ``stat``; when it names a manifest cut at
   the same places but with other chunk ids, the file changed;
2. otherwise the file is read and hashed along the chunk boundaries of the version's manifest,
   stopping at the first chunk whose id differs. A file found equal this way is recorded in
   the stat cache, so the next ``status`` (or ``commit``) does not read it again.

That record is the only thing ``status`` ever writes to a repository (``cache/stat.json``,
rewritten atomically, and only when something was learned); a repository that is not a local
directory is only read.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import VaultError
from ..ids import Oid, hash_bytes
from ..objects import KIND_LINK, ChunkRef, Tree, TreeEntry
from ..refs import LATEST
from ..revisions import resolve
from ..statcache import StatCache
from ..store import ObjectStore
from .commit import STAT_CACHE, SourceEntry, scan
from .diff import FileChanges
from .parts import Parts
from .versions import version_tree


def status(parts: Parts, folder: str | os.PathLike[str], rev: str | None = None) -> FileChanges:
    """How ``folder`` differs from the version ``rev`` (default ``latest``; with no version
    yet, every file is added). See the module docstring.

    Raises:
        PathNotFound: ``folder`` does not exist.
        UnknownRevision: ``rev`` names no version.
        FilesCollected: gc removed the version's files.
    """
    refs = parts.refs.read()
    if rev is None and LATEST not in refs.refs:
        tree = Tree(())
    else:
        name = rev or LATEST
        tree = version_tree(parts.store, refs, resolve(name, refs, parts.store), name)
    return compare_folder(parts, tree, folder)[0]


def compare_folder(
    parts: Parts, tree: Tree, folder: str | os.PathLike[str]
) -> tuple[FileChanges, list[SourceEntry]]:
    """How ``folder`` differs from ``tree``, and the folder's entries as listed.

    Raises:
        PathNotFound: ``folder`` does not exist.
    """
    entries = scan(Path(folder), exclude=parts.guarded(folder))
    cache = open_cache(parts)
    compare = FolderCompare(parts.store, cache)
    changes = compare.run(tree, entries)
    if compare.learned:
        cache.save()
    return changes, entries


def open_cache(parts: Parts) -> StatCache:
    """The repository's stat cache (the one commit keeps); one in memory only when the
    repository is not a local directory."""
    if parts.root is None:
        return StatCache.memory()
    return StatCache.load(parts.root / STAT_CACHE)


class FolderCompare:
    """Compares a folder's entries with a tree (see the module docstring).

    Attributes:
        learned: files hashed equal to the version, now recorded in the cache (the caller
            saves it).
    """

    def __init__(self, store: ObjectStore, cache: StatCache) -> None:
        self.store = store
        self.cache = cache
        self.learned = 0

    def run(self, tree: Tree, entries: list[SourceEntry]) -> FileChanges:
        """Paths added, removed and changed from ``tree`` to ``entries``, each sorted."""
        old = {e.path: e for e in tree.entries}
        new = {e.path: e for e in entries}
        return FileChanges(
            added=sorted(set(new) - set(old)),
            removed=sorted(set(old) - set(new)),
            changed=sorted(p for p in set(old) & set(new) if self.differs(old[p], new[p])),
        )

    def differs(self, stored: TreeEntry, local: SourceEntry) -> bool:
        """Whether the file or link ``local`` differs from the version's entry ``stored``."""
        if stored.kind != local.kind:
            return True
        if stored.kind == KIND_LINK:
            return stored.target != local.target
        if stored.mode != local.mode or stored.size != local.size or stored.file is None:
            return True
        abspath = os.path.abspath(local.abspath)
        cached = self.cache.lookup(abspath, local.stamp) if local.stamp is not None else None
        if cached == stored.file:
            return False
        manifest = self.store.get_file(stored.file)
        cuts = [c.size for c in manifest.chunks]
        if cached is not None and self._cut_alike(cached, cuts):
            return True  # same cuts, other ids: other bytes
        if not _same_chunks(local.abspath, manifest.chunks):
            return True
        if local.stamp is not None:
            self.cache.record(abspath, local.stamp, stored.file)
            self.learned += 1
        return False

    def _cut_alike(self, oid: Oid, cuts: list[int]) -> bool:
        """Whether the manifest ``oid`` (which the cache named) is cut at ``cuts``."""
        try:
            manifest = self.store.get_file(oid)
        except VaultError:
            return False  # damaged or gone: the cache cannot vouch, so read the file
        return [c.size for c in manifest.chunks] == cuts


def _same_chunks(path: Path, chunks: tuple[ChunkRef, ...]) -> bool:
    """Whether the file at ``path`` holds exactly the given chunks: hashed chunk by chunk,
    stopping at the first that differs."""
    try:
        with open(path, "rb", buffering=0) as f:
            for c in chunks:
                data = f.read(c.size)
                if len(data) != c.size or hash_bytes(data) != c.oid:
                    return False
            return f.read(1) == b""
    except OSError:
        return False  # gone or unreadable since it was listed: not the version's file
