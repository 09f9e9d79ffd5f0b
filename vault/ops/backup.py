"""Backups: an unnamed version and its pin, published in one refs transaction; the cleanup of
old or expired pins; and the verification of what pins keep.

A backup does not move ``latest`` and gets no version name; dedup makes it nearly free when
its content matches something stored.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from ..errors import BadValue, PinError, VaultError
from ..ids import Oid
from ..objects import Version
from ..progress import Progress
from ..refs import PINS, RefsDoc, Transaction
from ..revisions import check_name_free
from ..store import ObjectStore
from . import pins as pins_op
from .commit import commit
from .parts import Parts
from .pins import CleanupPlan, PinInfo
from .verify import VerifyReport, verify
from .walk import reach


def backup(
    parts: Parts,
    path: str | os.PathLike[str],
    *,
    type: str,  # noqa: A002
    reason: str,
    name: str | None = None,
    expires: str | None = None,
    progress: Progress | None = None,
    unless_kept: bool = False,
) -> PinInfo | None:
    """Commit ``path`` as an unnamed version and pin it, in one transaction.

    Args:
        unless_kept: make no pin (and return ``None``) when a ref already keeps that tree.

    Raises:
        PinError: a bad pin name or type, or the pin ``name`` exists.
        NameTaken: a tag is called ``name``.
        BadValue: a bad expiry.
    """
    pins_op.check_type(type)
    pins_op.parse_expiry(expires)
    if name is not None:  # refused before anything is stored
        pins_op.check_pin_name(name)
        refs = parts.refs.read()
        check_name_free(refs, name, "pin")
        if PINS + name in refs.refs:
            raise PinError(f"pin {name} already exists", kind="refused")
    made: list[PinInfo] = []

    def on_publish(txn: Transaction, oid: Oid, version: Version) -> None:
        if unless_kept and version.tree in _kept_trees(parts.store, txn.doc):
            return
        pin_name = pins_op.set_pin(txn, oid, type=type, reason=reason, name=name, expires=expires)
        made.append(pins_op.pin_info(parts.store, txn.doc, pin_name))

    commit(
        parts,
        path,
        f"backup ({type}): {reason}",
        progress=progress,
        name_version=False,
        move_latest=False,
        on_publish=on_publish,
        ignore_files=False,  # a backup keeps the directory whole, whatever .vaultignore says
        allow_empty=True,
    )
    return made[0] if made else None


def _kept_trees(store: ObjectStore, refs: RefsDoc) -> set[Oid]:
    """The trees of the versions refs point at."""
    out = set()
    for oid in set(refs.refs.values()):
        try:
            out.add(store.get_version(oid).tree)
        except VaultError:
            continue
    return out


def cleanup(
    parts: Parts,
    *,
    retention_days: float | None = None,
    keep_last: int | None = None,
    pin_types: Collection[str] | None = None,
    execute: bool = False,
) -> CleanupPlan:
    """Plan (and with ``execute``, do) the removal of old or expired pins.

    Only pins of ``pin_types`` are considered; by default the automatic ones
    (:data:`~vault.ops.pins.AUTOMATIC`), plus any pin whose own expiry has passed: a pin
    someone made without an expiry is never dropped unless its type is named. See
    :func:`vault.ops.pins.select_for_cleanup` for which pins go. ``bytes`` is what gc
    frees once they are gone: the stored size of objects only those pins reach.
    """
    for what, value in (("retention days", retention_days), ("--keep-last", keep_last)):
        if value is not None and value < 0:
            raise BadValue(what, value, "must not be negative")
    store = parts.store
    refs = parts.refs.read()
    unpin, keep = pins_op.select_for_cleanup(
        pins_op.pin_list(store, refs),
        retention_days=retention_days,
        keep_last=keep_last,
        types=pins_op.AUTOMATIC if pin_types is None else pin_types,
        expired_of_any_type=pin_types is None,
    )
    plan = CleanupPlan(unpin=unpin, keep=keep)
    if unpin:
        gone = {PINS + p.name for p in unpin}
        before = reach(store, set(refs.refs.values())).all()
        after = reach(store, {v for k, v in refs.refs.items() if k not in gone}).all()
        for oid in before - after:
            st = store.stat(oid)
            if st is not None:
                plan.objects += 1
                plan.bytes += st.size
    if execute and unpin:
        with parts.writing(), parts.refs.transaction("backup cleanup") as txn:
            for p in unpin:
                txn.delete(PINS + p.name, expected=Oid(p.id))
    plan.executed = execute
    return plan


def verify_pins(
    parts: Parts, pin: str | None = None, *, progress: Progress | None = None
) -> VerifyReport:
    """Re-hash everything the pin ``pin`` (default: every pin) reaches.

    Raises:
        PinError: there is no pin ``pin``.
    """
    refs = parts.refs.read()
    chosen = (
        [pins_op.pin_info(parts.store, refs, pin)]
        if pin is not None
        else pins_op.pin_list(parts.store, refs)
    )
    labels: dict[Oid, str] = {}
    for p in chosen:
        labels.setdefault(Oid(p.id), f"pin {p.name}")
    return verify(
        parts.store, set(labels), lambda oid: labels.get(oid, oid[:12]), progress=progress
    )
