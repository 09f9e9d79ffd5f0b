"""Revision syntax: turning ``v007``, ``latest~2``, ``base``, a tag, a pin or an id prefix into a
version id."""

from __future__ import annotations

import difflib
import re

from .errors import (
    AmbiguousRevision,
    CorruptObject,
    NameTaken,
    ObjectMissing,
    TagError,
    UnknownRevision,
    VaultError,
)
from .ids import Oid, is_oid, is_oid_prefix
from .objects import ManifestError, Version
from .refs import (
    BASE,
    LATEST,
    PINS,
    REMOTES,
    TAGS,
    VERSIONS,
    RefsDoc,
    Transaction,
    version_number,
)
from .store import ObjectStore

RESERVED = frozenset({LATEST, BASE, "HEAD"})
_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_ANCESTRY_RE = re.compile(r"(.+?)((?:~\d*)*)\Z")


def check_tag_name(name: str, *, what: str = "tag", error: type[VaultError] = TagError) -> str:
    """Return ``name`` if it can be a tag (or a pin: ``what``), else raise ``error`` saying why.

    A tag or pin name must not be readable as anything else a revision can be: a version name, a
    reserved name such as ``latest``, or an id prefix.
    """
    if not _TAG_RE.match(name):
        raise error(
            f"invalid {what} name {name!r}: use letters, digits, '.', '_' and '-', starting with"
            " a letter or digit"
        )
    if name in RESERVED:
        raise error(f"invalid {what} name {name!r}: reserved")
    if version_number(name) is not None:
        raise error(f"invalid {what} name {name!r}: looks like a version name")
    if is_oid_prefix(name.lower()):
        raise error(f"invalid {what} name {name!r}: looks like an id prefix")
    return name


def check_name_free(refs: RefsDoc, name: str, wanted: str) -> str:
    """Return ``name`` if no ref of the other kind has it: a tag (``wanted="tag"``) must not
    have a pin's name, nor a pin a tag's, so that a name always means one version.

    Raises:
        NameTaken: the other kind has the name.
    """
    other, existing = (PINS, "pin") if wanted == "tag" else (TAGS, "tag")
    if other + name in refs.refs:
        raise NameTaken(name, wanted, existing)
    return name


def claim_name(txn: Transaction, name: str, wanted: str) -> None:
    """Check in ``txn`` that no ref of the other kind has ``name`` (see
    :func:`check_name_free`), and record that check in the transaction: it is made again when
    the transaction is replayed on a document another writer published meanwhile, so two
    writers cannot give one name to a tag and a pin at once (the second fails with
    :class:`~vault.errors.RefConflict`).

    Raises:
        NameTaken: the other kind has the name.
    """
    check_name_free(txn.doc, name, wanted)
    # A delete of an absent ref expecting it absent changes nothing and is replayed as a check.
    txn.delete((PINS if wanted == "tag" else TAGS) + name, expected=None)


def name_clashes(refs: RefsDoc) -> set[str]:
    """Names that are both a tag and a pin (a repository written before names were unique, or
    refs merged from a remote)."""
    return set(refs.names_for(TAGS)) & set(refs.names_for(PINS))


def find_version_ref(refs: RefsDoc, name: str) -> Oid | None:
    """Look up a version name, accepting any zero padding (``v7`` finds ``v007``)."""
    number = version_number(name)
    if number is None:
        return None
    exact = refs.refs.get(VERSIONS + name)
    if exact is not None:
        return exact
    for key, oid in refs.refs.items():
        if key.startswith(VERSIONS) and version_number(key[len(VERSIONS) :]) == number:
            return oid
    return None


def resolve(rev: str, refs: RefsDoc, store: ObjectStore) -> Oid:
    """Return the id of the version ``rev`` names.

    Raises:
        UnknownRevision: nothing matches, or ``~N`` walks past the first version.
        AmbiguousRevision: an id prefix matches several versions.
    """
    m = _ANCESTRY_RE.match(rev.strip())
    if not m:
        raise UnknownRevision(rev)
    base, steps_text = m.group(1), m.group(2)
    oid = _resolve_base(base, rev, refs, store)
    steps = sum(int(s) if s else 1 for s in steps_text.split("~")[1:])
    for taken in range(steps):
        version = store.get_version(oid)
        if not version.parents:
            raise UnknownRevision(rev, f"history ends {taken} step(s) back")
        oid = version.parents[0]
    return oid


def _is_version(store: ObjectStore, oid: Oid) -> bool:
    """Whether ``oid`` is a version (a tree or chunk id is not); a damaged object counts as one,
    so that ``verify`` still reports it."""
    try:
        data = store.get(oid)
    except (CorruptObject, ObjectMissing):
        return True
    try:
        Version.from_bytes(data)
    except ManifestError:
        return False
    return True


def _resolve_base(base: str, rev: str, refs: RefsDoc, store: ObjectStore) -> Oid:
    if base in refs.refs and not base.startswith((VERSIONS, TAGS)):
        return refs.refs[base]  # latest and other top-level refs
    if base == LATEST:
        raise UnknownRevision(rev, "the repository has no versions yet")
    if base == BASE:
        raise UnknownRevision(rev, "no consolidated base model: none yet, or it was deleted")
    found = find_version_ref(refs, base)
    if found is not None:
        return found
    tag = refs.refs.get(TAGS + base)
    if tag is not None:
        return tag
    pin = refs.refs.get(PINS + base)
    if pin is not None:
        return pin
    tracked = _resolve_tracking(base, refs)
    if tracked is not None:
        return tracked
    lowered = base.lower()
    if is_oid(lowered) and store.has(Oid(lowered)):
        if lowered in refs.refs.values() or _is_version(store, Oid(lowered)):
            return Oid(lowered)
        raise UnknownRevision(rev, "not a version id")
    if is_oid_prefix(lowered):
        matches = sorted({oid for oid in refs.refs.values() if oid.startswith(lowered)})
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = {oid: key.split("/")[-1] for key, oid in sorted(refs.refs.items())}
            raise AmbiguousRevision(rev, [f"{oid[:12]} ({names[oid]})" for oid in matches])
    number = version_number(base)
    if number is not None:
        kept = _pins_of_deleted(number, refs, store)
        if kept:
            raise UnknownRevision(rev, f"deleted; the pin {kept[0]} keeps it: use that name")
    near = suggestions(base, refs)
    raise UnknownRevision(rev, f"did you mean {', '.join(near)}?" if near else "")


def suggestions(name: str, refs: RefsDoc, limit: int = 3) -> list[str]:
    """The names (versions, tags, pins, ``latest``, ``base``) most like ``name``, best first,
    for an error to offer. A version name is compared by its number padded as versions are
    named, so ``v04`` and ``v0004`` come near ``v004``."""
    number = version_number(name)
    probe = f"v{number:03d}" if number is not None else name
    names = [
        *refs.names_for(VERSIONS),
        *refs.names_for(TAGS),
        *refs.names_for(PINS),
        *(r for r in (LATEST, BASE) if r in refs.refs),
    ]
    return difflib.get_close_matches(probe, list(dict.fromkeys(names)), n=limit, cutoff=0.6)


def _resolve_tracking(base: str, refs: RefsDoc) -> Oid | None:
    """What ``REMOTE/NAME`` names: the remote's ``latest``, ``base``, version, tag or pin as
    the last fetch or push saw it (``origin/latest``, ``origin/v007``)."""
    remote, sep, name = base.partition("/")
    if not sep or not remote or not name:
        return None
    prefix = f"{REMOTES}{remote}/"
    if name in (LATEST, BASE):
        return refs.refs.get(prefix + name)
    number = version_number(name)
    if number is not None:
        for key, oid in refs.refs.items():
            named = key.startswith(prefix + VERSIONS)
            if named and version_number(key[len(prefix + VERSIONS) :]) == number:
                return oid
        return None
    return refs.refs.get(prefix + TAGS + name) or refs.refs.get(prefix + PINS + name)


def _pins_of_deleted(number: int, refs: RefsDoc, store: ObjectStore) -> list[str]:
    """The pins keeping the version that had the name numbered ``number`` before it was deleted
    (its record still carries the name), so that an error can say how to get it back."""
    found = []
    for name, oid in sorted(refs.names_for(PINS).items()):
        try:
            had = store.get_version(oid).name
        except VaultError:
            continue
        if had is not None and version_number(had) == number:
            found.append(name)
    return found
