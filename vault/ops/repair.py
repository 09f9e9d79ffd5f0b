"""Repair: replace a repository's damaged and missing objects with healthy copies from another
repository (a remote), as restic repairs from a healthy copy rather than papering over damage.

Verify finds the damage. Each damaged object is fetched in its stored encoding and handed to
:meth:`~vault.store.ObjectStore.put_raw`, which decodes and re-hashes it before anything is
written and then publishes it over the damaged file atomically; so a copy that is damaged on
the remote too is never written, and is reported as unrepairable. A delta's base is made intact
first, from the remote too when it is not intact here. Verify then runs again: a missing tree or
file manifest hid the objects below it, so the rounds repeat while they reveal new damage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .. import codec
from ..errors import CorruptObject, ObjectMissing
from ..ids import Oid
from ..progress import Progress
from ..store import ObjectStore
from .parts import Parts
from .verify import VerifyReport, verify_repository

Source = Callable[[], tuple[str, ObjectStore]]
"""Opens the repository to copy from, on first need: its name and its object store."""

MAX_ROUNDS = 8
"""Verify-and-copy rounds at most; each reveals one more level (version, tree, file, chunk)."""


@dataclass
class Unrepairable:
    """A damaged object the remote could not replace.

    Attributes:
        oid: the object's id.
        why: what was wrong with the remote's copy (missing there too, damaged there too).
    """

    oid: Oid
    why: str


@dataclass
class RepairReport:
    """The outcome of a repair.

    Attributes:
        repaired: objects written from the remote, delta bases included.
        unrepairable: damaged objects the remote could not replace.
        verify: the verify run after the repair.
        remote: the name of the repository copied from; ``None`` when nothing was damaged.
    """

    repaired: list[Oid] = field(default_factory=list)
    unrepairable: list[Unrepairable] = field(default_factory=list)
    verify: VerifyReport = field(default_factory=VerifyReport)
    remote: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the repository verified clean after the repair."""
        return self.verify.ok


def repair(parts: Parts, source: Source, *, progress: Progress | None = None) -> RepairReport:
    """Verify the repository, copy every damaged or missing object from ``source`` (opened
    only when something is damaged) under the writer lease, and verify again.

    Raises:
        RemoteError: the source cannot be opened.
        RemoteUnavailable: the source stopped answering; what was copied so far stays (each
            object is published whole and verified).
    """
    out = RepairReport()
    report = verify_repository(parts, progress=progress)
    tried: set[Oid] = set()
    remote: ObjectStore | None = None
    for _ in range(MAX_ROUNDS):
        todo = [d for d in report.damaged if d.oid not in tried]
        if not todo:
            break
        if remote is None:
            out.remote, remote = source()
        with parts.writing():
            for damage in todo:
                tried.add(damage.oid)
                try:
                    _copy(parts.store, remote, damage.oid, report.sizes.get(damage.oid), out)
                except (ObjectMissing, CorruptObject) as exc:
                    out.unrepairable.append(Unrepairable(damage.oid, _why(exc)))
        report = verify_repository(parts, progress=progress)
    out.verify = report
    return out


def _copy(
    local: ObjectStore,
    remote: ObjectStore,
    oid: Oid,
    size: int | None,
    out: RepairReport,
    budget: int = codec.MAX_DEPTH,
) -> None:
    """Make ``oid`` intact in ``local`` from ``remote``'s copy, its delta base first.

    Raises:
        ObjectMissing: the remote does not have it (or a base it needs).
        CorruptObject: the remote's copy is damaged too.
    """
    stored = remote.raw(oid)
    try:
        header = codec.read_header(stored)
    except codec.DecodeError as exc:
        raise CorruptObject(oid, why=str(exc)) from None
    if header.base is not None:
        if budget <= 0:
            raise CorruptObject(oid, why="its delta chain is longer than the format allows")
        base = Oid(header.base)
        if not _readable(local, base, header.size):
            _copy(local, remote, base, header.size, out, budget - 1)
    if local.put_raw(oid, stored, size=size).new:
        out.repaired.append(oid)


def _readable(store: ObjectStore, oid: Oid, size: int) -> bool:
    try:
        store.get(oid, size=size)
    except (ObjectMissing, CorruptObject):
        return False
    return True


def _why(exc: ObjectMissing | CorruptObject) -> str:
    if isinstance(exc, ObjectMissing):
        return f"the remote lacks {exc.oid} too"
    return f"the remote's copy is damaged too ({exc.message})"
