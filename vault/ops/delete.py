"""``delete``: take a version's name and tags away, after pinning it as ``pre_deletion``.

Pin and removal are one refs transaction: a crash leaves the version either still named or
pinned. The name is never given again; history keeps running through the version's record.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import NotConfirmed, UnknownRevision
from ..ids import Oid
from ..refs import BASE, LATEST, TAGS, VERSIONS, RefsDoc
from ..revisions import resolve
from ..store import ObjectStore
from . import pins as pins_op
from .parts import Parts
from .pins import PinInfo


@dataclass
class DeleteResult:
    """What ``vault delete`` did.

    Attributes:
        version: the name the version had.
        id: its id.
        pin: the ``pre_deletion`` pin that keeps it restorable.
        tags: tags removed with it.
        latest: the id ``latest`` holds afterwards (``None`` when no named version is left).
        base: the id ``base`` holds afterwards (``None`` when it named the deleted version, or
            no consolidation has set it).
    """

    version: str
    id: str
    pin: PinInfo
    tags: list[str]
    latest: str | None
    base: str | None = None


def delete(
    parts: Parts, rev: str, *, confirm: bool = False, reason: str | None = None
) -> DeleteResult:
    """Remove a version's name and tags, after pinning it as ``pre_deletion``.

    ``latest`` moves back to the nearest named ancestor when it pointed here; ``base``, when it
    pointed here, is removed with the tags.

    Raises:
        NotConfirmed: ``confirm`` is false.
        UnknownRevision: ``rev`` names no version, or one without a name.
    """
    if not confirm:
        raise NotConfirmed(f"delete {rev}")
    with parts.writing(), parts.refs.transaction(f"delete {rev}") as txn:
        oid = resolve(rev, txn.doc, parts.store)
        refs = txn.doc.refs
        names = sorted(k for k, v in refs.items() if k.startswith(VERSIONS) and v == oid)
        if not names:
            raise UnknownRevision(rev, "it has no version name to delete; unpin it instead")
        label = names[0][len(VERSIONS) :]
        pin_name = pins_op.set_pin(
            txn,
            oid,
            type=pins_op.PRE_DELETION,
            reason=reason or f"vault delete {label}",
            label=label,
        )
        tags = sorted(k for k, v in txn.doc.refs.items() if k.startswith(TAGS) and v == oid)
        # 'base' names the deleted version as a tag would, and goes with it: else it would
        # keep the version from cleanup and gc for ever.
        base = [BASE] if txn.get(BASE) == oid else []
        for ref in [*names, *tags, *base]:
            txn.delete(ref, expected=oid)
        if txn.get(LATEST) == oid:
            ancestor = _named_ancestor(parts.store, txn.doc, oid)
            if ancestor is None:
                txn.delete(LATEST, expected=oid)
            else:
                txn.set(LATEST, ancestor, expected=oid)
        pin = pins_op.pin_info(parts.store, txn.doc, pin_name)
        latest = txn.get(LATEST)
    return DeleteResult(label, oid, pin, [t[len(TAGS) :] for t in tags], latest, base=txn.get(BASE))


def _named_ancestor(store: ObjectStore, refs: RefsDoc, oid: Oid) -> Oid | None:
    """The nearest version along first parents that still has a version name."""
    named = set(refs.names_for(VERSIONS).values())
    seen = {oid}
    parents = store.get_version(oid).parents
    while parents and parents[0] not in seen:
        oid = parents[0]
        if oid in named:
            return oid
        seen.add(oid)
        parents = store.get_version(oid).parents
    return None
