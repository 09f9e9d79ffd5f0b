"""Tags: names a user gives versions (refs ``tags/NAME``), moved only on request.

Tags and pins share one set of names: a tag is refused a name a pin has, and a pin a tag's
(:func:`vault.revisions.check_name_free`), so that a name always means one version.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TagError
from ..refs import BASE, LATEST, TAGS
from ..revisions import check_name_free, check_tag_name, claim_name
from .parts import Parts
from .versions import check_files_kept, version_names

RESERVED_REFS = (LATEST, BASE)
"""The names vault itself moves, listed with the tags by ``vault tag``."""


@dataclass
class TagInfo:
    """A tag and the version it names.

    Attributes:
        name: the tag's name.
        id: the id of the version it names.
        version: that version's name, or ``None`` when it has none.
        reserved: whether this is ``latest`` or ``base`` (vault moves them), not a tag.
    """

    name: str
    id: str
    version: str | None
    reserved: bool = False


def tags(parts: Parts, *, reserved: bool = False) -> list[TagInfo]:
    """Every tag, by name; with ``reserved``, then ``latest`` and ``base`` where they are set
    (after the tags, so that a reader of the tags alone finds them where it did)."""
    refs = parts.refs.read()
    names, _ = version_names(refs)
    out = [TagInfo(n, oid, names.get(oid)) for n, oid in sorted(refs.names_for(TAGS).items())]
    out += [
        TagInfo(n, refs.refs[n], names.get(refs.refs[n]), reserved=True)
        for n in RESERVED_REFS
        if reserved and n in refs.refs
    ]
    return out


def tag(parts: Parts, name: str, rev: str, *, force: bool = False) -> TagInfo:
    """Name the version ``rev`` with the tag ``name``; moving a tag needs ``force``.

    Raises:
        TagError: a bad name, or the tag exists and ``force`` is false.
        NameTaken: a pin has the name (``force`` moves tags only).
        FilesCollected: gc has removed the version's files.
    """
    check_tag_name(name)
    check_name_free(parts.refs.read(), name, "tag")
    oid = parts.resolve(rev)
    with parts.writing(), parts.refs.transaction(f"tag {name}") as txn:
        check_files_kept(parts.store, txn.doc, oid, rev)
        claim_name(txn, name, "tag")
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
