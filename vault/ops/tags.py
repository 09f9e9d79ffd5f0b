"""Tags: names a user gives versions (refs ``tags/NAME``), moved only on request."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TagError
from ..refs import TAGS
from ..revisions import check_tag_name
from .parts import Parts
from .versions import check_files_kept, version_names


@dataclass
class TagInfo:
    """A tag and the version it names."""

    name: str
    id: str
    version: str | None


def tags(parts: Parts) -> list[TagInfo]:
    """Every tag, by name."""
    refs = parts.refs.read()
    names, _ = version_names(refs)
    return [TagInfo(n, oid, names.get(oid)) for n, oid in sorted(refs.names_for(TAGS).items())]


def tag(parts: Parts, name: str, rev: str, *, force: bool = False) -> TagInfo:
    """Name the version ``rev`` with the tag ``name``; moving a tag needs ``force``.

    Raises:
        TagError: a bad name, or the tag exists and ``force`` is false.
        FilesCollected: gc has removed the version's files.
    """
    check_tag_name(name)
    oid = parts.resolve(rev)
    with parts.writing(), parts.refs.transaction(f"tag {name}") as txn:
        check_files_kept(parts.store, txn.doc, oid, rev)
        old = txn.get(TAGS + name)
        if old is not None and not force:
            raise TagError(f"tag {name} already exists (use --force to move it)", kind="refused")
        txn.set(TAGS + name, oid, expected=old)
    names, _ = version_names(parts.refs.read())
    return TagInfo(name, oid, names.get(oid))


def untag(parts: Parts, name: str) -> TagInfo:
    """Remove the tag ``name``.

    Raises:
        TagError: there is no such tag.
    """
    with parts.writing(), parts.refs.transaction(f"untag {name}") as txn:
        old = txn.get(TAGS + name)
        if old is None:
            raise TagError(f"no such tag: {name}", kind="not_found")
        txn.delete(TAGS + name, expected=old)
    return TagInfo(name, old, None)
