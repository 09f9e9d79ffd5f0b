"""``delete``: take versions' names and tags away, after pinning each as ``pre_deletion``.

Pins and removals, of every version given, are one refs transaction: a crash leaves each
version either still named or pinned, and a revision that names nothing deletes
nothing. A name is never given again; history keeps running through the version's record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import BadValue, NotConfirmed, UnknownRevision
from ..ids import Oid
from ..refs import BASE, LATEST, TAGS, VERSIONS, RefsDoc, Transaction
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
    return delete_many(parts, [rev], confirm=confirm, reason=reason)[0]


def delete_many(
    parts: Parts, revs: Sequence[str], *, confirm: bool = False, reason: str | None = None
) -> list[DeleteResult]:
    """Delete the versions ``revs`` (as :func:`delete` does each) in one refs transaction.

    Every revision is resolved, and must name a version with a name, before anything changes;
    several revisions naming one version delete it once. ``latest``, when it pointed at one of
    them, moves to the nearest first-parent ancestor none of them is.

    Raises:
        NotConfirmed: ``confirm`` is false.
        UnknownRevision: one of ``revs`` names no version, or one without a name; nothing
            has changed then.
    """
    if not revs:
        raise BadValue("revisions", "", "name at least one version to delete")
    if not confirm:
        raise NotConfirmed(f"delete {' '.join(revs)}")
    with parts.writing(), parts.refs.transaction(f"delete {' '.join(revs)}") as txn:
        chosen: dict[Oid, list[str]] = {}  # version -> its names
        for rev in revs:
            oid = resolve(rev, txn.doc, parts.store)
            names = sorted(
                k for k, v in txn.doc.refs.items() if k.startswith(VERSIONS) and v == oid
            )
            if not names:
                raise UnknownRevision(rev, "it has no version name to delete; unpin it instead")
            chosen.setdefault(oid, names)
        done = [_delete_one(parts, txn, oid, names, reason) for oid, names in chosen.items()]
        if txn.get(LATEST) in chosen:
            old = txn.doc.refs[LATEST]
            ancestor = _named_ancestor(parts.store, txn.doc, old)
            if ancestor is None:
                txn.delete(LATEST, expected=old)
            else:
                txn.set(LATEST, ancestor, expected=old)
        results = [
            DeleteResult(
                label,
                oid,
                pins_op.pin_info(parts.store, txn.doc, pin_name),
                tags,
                txn.get(LATEST),
                base=txn.get(BASE),
            )
            for label, oid, pin_name, tags in done
        ]
    return results


def _delete_one(
    parts: Parts, txn: Transaction, oid: Oid, names: list[str], reason: str | None
) -> tuple[str, Oid, str, list[str]]:
    """Pin ``oid`` as ``pre_deletion`` and remove its names, tags and ``base`` in ``txn``;
    return its name, id, pin and removed tags."""
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
    return label, oid, pin_name, [t[len(TAGS) :] for t in tags]


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
