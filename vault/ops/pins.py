"""Pins: named references that keep a version alive, with a type, a reason and an expiry.

A pin is the ref ``pins/NAME`` in ``refs.json``; its description (type, reason, creation time,
expiry) sits beside it in the same document, so the two are published together. Because a pin
is an ordinary ref, gc, verify and every other walk over the refs keep what a pin reaches with
no special case. A backup is an unnamed version with a pin on it.

This module holds names, descriptions and the cleanup plan, and the verbs ``pin``, ``unpin`` and
``backup list``; a backup itself (a commit and a pin at once) is :mod:`vault.ops.backup`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import BadValue, PinError, VaultError
from ..ids import Oid
from ..refs import PINS, TAGS, VERSIONS, RefsDoc, Transaction
from ..revisions import check_tag_name, claim_name, resolve
from ..store import ObjectStore
from .parts import Parts
from .versions import check_files_kept, version_names

PRE_CONSOLIDATION = "pre_consolidation"
PRE_DELETION = "pre_deletion"
PRE_RESTORE = "pre_restore"
EMERGENCY = "emergency"
AUTOMATIC = (PRE_DELETION, PRE_RESTORE, PRE_CONSOLIDATION)
"""The types of the pins vault makes on its own (delete, restore, consolidate): the only ones
``prune`` and ``backup cleanup`` drop unless told other types. Every other pin was made by
someone (``vault pin``, ``vault backup``, a training callback's ``best``)."""

_TYPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}\Z")


@dataclass
class PinInfo:
    """A pin as ``backup list --json`` prints it.

    Attributes:
        name: the pin's name (the ref is ``pins/NAME``).
        type: ``pre_consolidation``, ``pre_deletion``, ``pre_restore``, ``emergency`` or any word.
        reason: why it was made.
        created: when, ISO 8601 with a UTC offset.
        expires: when cleanup may drop it (ISO 8601), or ``None``.
        version: the version name of what it keeps; ``None`` for a backup without one.
        id: the id of the version it keeps.
    """

    name: str
    type: str
    reason: str
    created: str
    expires: str | None
    version: str | None
    id: str


@dataclass
class CleanupPlan:
    """What ``backup cleanup`` unpins, and what gc would free afterwards.

    Attributes:
        unpin: the pins to remove, oldest first.
        keep: the pins that stay, oldest first.
        objects: objects reachable only through the pins to remove.
        bytes: their stored size: what gc frees once they are unpinned (after its grace period).
        executed: whether this was the real run (``--execute``), not a dry run.
    """

    unpin: list[PinInfo] = field(default_factory=list)
    keep: list[PinInfo] = field(default_factory=list)
    objects: int = 0
    bytes: int = 0
    executed: bool = False


def now() -> datetime:
    """The current time, local offset, to the millisecond (pins are ordered by it)."""
    return datetime.fromtimestamp(time.time(), timezone.utc).astimezone()


def check_pin_name(name: str) -> str:
    """Return ``name`` if it can name a pin (the rules of tags), else raise :class:`PinError`."""
    return check_tag_name(name, what="pin", error=PinError)


def check_type(pin_type: str) -> str:
    """Return ``pin_type`` if it is one word (letters, digits, ``_``, ``-``), else raise."""
    if not _TYPE_RE.match(pin_type or ""):
        raise PinError(
            f"invalid pin type {pin_type!r}: use one word of letters, digits, '_' and '-',"
            " starting with a letter"
        )
    return pin_type


def parse_expiry(text: str | None, *, start: datetime | None = None) -> str | None:
    """An expiry as ISO 8601: a duration from now (``30d``, ``12h``) or a date or date-time.

    A date or a date-time without an offset is taken as UTC.
    """
    if text is None or text == "":
        return None
    start = start or now()
    from .gc import parse_duration

    try:
        seconds = parse_duration(text)
    except BadValue:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise BadValue(
                "expiry", text, "use a duration such as 30d or a date such as 2026-12-31"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.isoformat(timespec="seconds")
    try:
        return (start + timedelta(seconds=seconds)).isoformat(timespec="seconds")
    except OverflowError:
        raise BadValue("expiry", text, "too far in the future (dates end in 9999)") from None


def generate_name(refs: RefsDoc, pin_type: str, label: str, when: datetime) -> str:
    """A fresh pin name such as ``pre_deletion-v003-20261126T101500`` (``-2``... if a pin or a
    tag has it)."""
    stamp = when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S")
    base = f"{pin_type}-{label}-{stamp}"
    name, n = base, 1
    while PINS + name in refs.refs or TAGS + name in refs.refs:
        n += 1
        name = f"{base}-{n}"
    return check_pin_name(name)


def describe(
    pin_type: str, reason: str, created: datetime, expires: str | None, seq: int = 0
) -> dict[str, Any]:
    """The description stored beside a pin's ref in ``refs.json``; ``seq`` orders pins made
    within the same microsecond."""
    return {
        "type": pin_type,
        "reason": reason,
        "created": created.isoformat(timespec="microseconds"),
        "expires": expires,
        "seq": seq,
    }


def _seq(d: dict[str, Any]) -> int:
    seq = d.get("seq")
    return seq if isinstance(seq, int) else 0


def set_pin(
    txn: Transaction,
    oid: Oid,
    *,
    type: str,  # noqa: A002 - the issue's name for it
    reason: str,
    name: str | None = None,
    expires: str | None = None,
    replace: bool = False,
    label: str | None = None,
) -> str:
    """Pin ``oid`` inside the open transaction ``txn``; return the pin's name.

    Usable from a commit's ``on_publish`` hook, so a version and its pin are published at once.

    Args:
        txn: the refs transaction.
        oid: the version to keep.
        type: the pin's type.
        reason: why.
        name: the pin's name; generated from type, ``label`` and the time when ``None``.
        expires: a duration or date (see :func:`parse_expiry`), or ``None``.
        replace: move an existing pin of that name instead of refusing.
        label: what the generated name calls the version (default: its name or short id).

    Raises:
        PinError: a bad name or type, or the pin exists and ``replace`` is false.
        NameTaken: a tag has the name (``replace`` moves pins only).
    """
    check_type(type)
    when = now()
    expiry = parse_expiry(expires, start=when)
    if name is None:
        names = {v: k[len(VERSIONS) :] for k, v in txn.doc.refs.items() if k.startswith(VERSIONS)}
        name = generate_name(txn.doc, type, label or names.get(oid) or oid[:8], when)
    else:
        check_pin_name(name)
    claim_name(txn, name, "pin")
    old = txn.get(PINS + name)
    if old is not None and not replace:
        raise PinError(f"pin {name} already exists", kind="refused")
    seq = 1 + max((_seq(d) for d in txn.doc.pins.values()), default=0)
    txn.set_pin(name, oid, describe(type, reason, when, expiry, seq), expected=old)
    return name


def pin_infos(refs: RefsDoc, version_name: dict[Oid, str | None]) -> list[PinInfo]:
    """Every pin in ``refs``, oldest first; ``version_name`` names the pinned versions."""
    keyed = []
    for name, oid in refs.names_for(PINS).items():
        d = refs.pins.get(name, {})
        info = PinInfo(
            name=name,
            type=str(d.get("type") or "unknown"),
            reason=str(d.get("reason") or ""),
            created=str(d.get("created") or ""),
            expires=None if d.get("expires") is None else str(d["expires"]),
            version=version_name.get(oid),
            id=oid,
        )
        keyed.append(((_epoch(info.created) or 0.0, _seq(d), name), info))
    keyed.sort(key=lambda k: k[0])
    return [info for _, info in keyed]


def _epoch(iso: str | None) -> float | None:
    """Seconds since the epoch of an ISO 8601 time; ``None`` when it is missing or unreadable
    (a ``refs.json`` edited by hand)."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def select_for_cleanup(
    pins: Iterable[PinInfo],
    *,
    retention_days: float | None = None,
    keep_last: int | None = None,
    types: Collection[str] | None = AUTOMATIC,
    expired_of_any_type: bool = False,
    at: float | None = None,
) -> tuple[list[PinInfo], list[PinInfo]]:
    """Split pins (oldest first) into those cleanup removes and those it keeps.

    A pin is removed when it is of one of ``types`` (any type when ``None``; by default only
    the :data:`AUTOMATIC` ones, so a pin someone made stays), is not one of the newest
    ``keep_last`` pins of its type, and either is older than ``retention_days`` or has
    expired. With ``expired_of_any_type``, an expired pin of any type goes too: its maker set
    the expiry. With neither ``retention_days`` nor ``keep_last``, only expired pins go; with
    only ``keep_last``, every pin beyond the newest N of its type goes. A creation time or
    expiry that cannot be read makes a pin neither old nor expired: what cleanup cannot date,
    it keeps.

    Raises:
        BadValue: ``retention_days`` is NaN or infinite.
    """
    if retention_days is not None and not math.isfinite(retention_days):
        raise BadValue("retention days", retention_days, "must be a finite number")
    at = time.time() if at is None else at
    pins = list(pins)
    protected: set[str] = set()
    if keep_last is not None:
        by_type: dict[str, list[PinInfo]] = {}
        for p in pins:
            by_type.setdefault(p.type, []).append(p)
        for group in by_type.values():
            protected.update(p.name for p in group[max(0, len(group) - keep_last) :])
    unpin: list[PinInfo] = []
    keep: list[PinInfo] = []
    for p in pins:
        ends = _epoch(p.expires)
        expired = ends is not None and ends <= at
        if retention_days is not None:
            born = _epoch(p.created)
            old = born is not None and born <= at - retention_days * 86400
        else:
            old = keep_last is not None
        chosen = p.name not in protected and (
            ((types is None or p.type in types) and (old or expired))
            or (expired and expired_of_any_type)
        )
        (unpin if chosen else keep).append(p)
    return unpin, keep


# -- the verbs ---------------------------------------------------------------------------------


def pin_list(store: ObjectStore, refs: RefsDoc) -> list[PinInfo]:
    """Every pin in ``refs``, oldest first, each with the name of the version it keeps."""
    names, _ = version_names(refs)
    labels: dict[Oid, str | None] = {}
    for oid in set(refs.names_for(PINS).values()):
        label = names.get(oid)
        if label is None:  # a deleted version is still called by the name it had
            try:
                label = store.get_version(oid).name
            except VaultError:
                label = None
        labels[oid] = label
    return pin_infos(refs, labels)


def pin_info(store: ObjectStore, refs: RefsDoc, name: str) -> PinInfo:
    """The pin ``name``.

    Raises:
        PinError: there is no such pin.
    """
    for p in pin_list(store, refs):
        if p.name == name:
            return p
    raise PinError(f"no such pin: {name}", kind="not_found")


def pins(parts: Parts, pin_type: str | None = None) -> list[PinInfo]:
    """Every pin (of ``pin_type`` only, when given), oldest first."""
    return [
        p
        for p in pin_list(parts.store, parts.refs.read())
        if pin_type is None or p.type == pin_type
    ]


def pin(
    parts: Parts,
    rev: str,
    *,
    type: str,  # noqa: A002
    reason: str,
    name: str | None = None,
    expires: str | None = None,
    replace: bool = False,
) -> PinInfo:
    """Pin the version ``rev`` so that it and everything it reaches stay.

    Args:
        parts: the repository's collaborators.
        rev: the version.
        type: ``pre_consolidation``, ``pre_deletion``, ``pre_restore``, ``emergency`` or any
            word.
        reason: why.
        name: the pin's name (the rules of tag names); generated when ``None``.
        expires: a duration (``30d``) or date after which ``backup cleanup`` drops it.
        replace: move an existing pin of that name (e.g. keep ``best`` on the best
            checkpoint) instead of refusing.

    Raises:
        UnknownRevision: ``rev`` names no version.
        PinError: a bad name or type, or the pin exists and ``replace`` is false.
        FilesCollected: gc has removed the version's files.
    """
    with parts.writing(), parts.refs.transaction(f"pin {rev}") as txn:
        oid = resolve(rev, txn.doc, parts.store)
        check_files_kept(parts.store, txn.doc, oid, rev)
        made = set_pin(
            txn, oid, type=type, reason=reason, name=name, expires=expires, replace=replace
        )
        return pin_info(parts.store, txn.doc, made)


def unpin(parts: Parts, name: str) -> PinInfo:
    """Remove the pin ``name``; what only it kept becomes garbage for gc.

    Raises:
        PinError: there is no such pin.
    """
    with parts.writing(), parts.refs.transaction(f"unpin {name}") as txn:
        info = pin_info(parts.store, txn.doc, name)
        txn.delete(PINS + name, expected=Oid(info.id))
    return info
