"""What the verbs ask about versions: their names, tags and pins, and their trees.

A version's tree is read through :func:`version_tree` by every verb that reads one (show, diff,
checkout, restore, load_state_dict, consolidate), so that a version gc has collected is reported
the same way everywhere: :class:`~vault.errors.FilesCollected`, not damage.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import FileNotInVersion, FilesCollected, NoAttachment, ObjectMissing
from ..ids import Oid
from ..objects import KIND_FILE, Tree, TreeEntry
from ..refs import PINS, TAGS, VERSIONS, RefsDoc
from ..store import ObjectStore
from .walk import reach


def version_names(refs: RefsDoc) -> tuple[dict[Oid, str], dict[Oid, list[str]]]:
    """Version names (refs ``versions/NAME``) and tags (refs ``tags/NAME``) by version id."""
    names: dict[Oid, str] = {}
    tags: dict[Oid, list[str]] = {}
    for key, oid in refs.refs.items():
        if key.startswith(VERSIONS):
            names[oid] = key[len(VERSIONS) :]
        elif key.startswith(TAGS):
            tags.setdefault(oid, []).append(key[len(TAGS) :])
    return names, tags


def pin_names(refs: RefsDoc) -> dict[Oid, list[str]]:
    """Pin names (refs ``pins/NAME``) by the version they keep."""
    pins: dict[Oid, list[str]] = {}
    for name, oid in refs.names_for(PINS).items():
        pins.setdefault(oid, []).append(name)
    return pins


def version_tree(
    store: ObjectStore, refs: RefsDoc, oid: Oid, rev: str, role: str | None = None
) -> Tree:
    """The tree of the version ``oid`` (which ``rev`` names): its files, or with ``role`` the
    tree stored with it (``data``, ``snapshots``).

    Raises:
        FilesCollected: the version is deleted and gc removed its files (a missing tree of a
            version some ref keeps is damage, and stays :class:`ObjectMissing`).
        NoAttachment: the version stores nothing of ``role``.
    """
    version = store.get_version(oid)
    if role is None:
        tree_id = version.tree
    else:
        found = version.attachments.get(role)
        if found is None:
            raise NoAttachment(rev, role)
        tree_id = found
    try:
        return store.get_tree(tree_id)
    except ObjectMissing:
        if oid in refs.refs.values():
            raise
        raise FilesCollected(rev, version.name, oid) from None


def check_files_kept(store: ObjectStore, refs: RefsDoc, oid: Oid, rev: str) -> None:
    """Refuse to give a ref to a version whose files gc has removed, which would make a
    repository that ``verify`` reports as damaged. A version some ref keeps already is
    complete (or its damage is ``verify``'s to report): no reads then.

    Raises:
        FilesCollected: some object the version reaches is gone.
    """
    if oid in refs.refs.values():
        return
    try:
        found = reach(store, {oid}, ancestors=False)
        if all(store.has(c) for c in found.chunks):
            return
    except ObjectMissing:
        pass
    raise FilesCollected(rev, store.get_version(oid).name, oid)


def file_entry(tree: Tree, rev: str, path: str) -> TreeEntry:
    """The regular file ``path`` of ``tree`` (the tree of the version ``rev``).

    Raises:
        FileNotInVersion: the tree holds no such path, or holds it as a symbolic link.
    """
    for entry in tree.entries:
        if entry.path == path:
            if entry.kind != KIND_FILE or entry.file is None:
                raise FileNotInVersion(rev, path, "it is a symbolic link")
            return entry
    raise FileNotInVersion(rev, path)


def file_chunks(store: ObjectStore, file_oid: Oid) -> Iterator[bytes | bytearray]:
    """The content of the stored file ``file_oid``, chunk by chunk, each verified as it is read:
    a reader streams a file of any size holding one chunk at a time."""
    for chunk in store.get_file(file_oid).chunks:
        yield store.get(chunk.oid, size=chunk.size)
