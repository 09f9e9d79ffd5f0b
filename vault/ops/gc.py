"""Garbage collection: a plan (mark from every root, sweep what is old and unreachable), then its
execution.

Roots are every ref, plus every id a ref held within the grace period according to the reflog.
An object is removed only when it is unreachable *and* older than the grace period. Writers hold
the repository's gc lock shared while they write; gc holds it exclusively, so no commit is in
flight while gc decides, and temporary files found under that lock are debris of dead writers.
Deltas are removed before their bases, so a gc killed at any instant leaves no delta whose base
is gone.

Packs (:mod:`vault.packs`) go whole: an old pack none of whose objects is kept is deleted (its
index, then the pack); an old pack with more than :data:`REPACK_DEAD` of its bytes unreachable
is repacked: its kept objects, verified, go to a new pack whose index is durable before the old
index is deleted, then the old pack. A pack with less dead weight stays as it is.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import codec
from ..backend import Backend
from ..config import DEFAULT_GRACE
from ..errors import BadValue, CorruptObject, ObjectMissing
from ..faults import crashpoint
from ..ids import Oid
from ..leases import EXCLUSIVE
from ..packs import Pack, index_key, pack_key
from ..progress import NullProgress, Progress
from ..store import ObjectStore
from .parts import Parts
from .walk import delta_bases, reach

REPACK_DEAD = 0.3
"""Share of an old pack's bytes that must be unreachable before gc repacks it."""
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)\Z")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``0s``, ``30m``, ``2h``, ``14d`` (bare numbers: seconds)."""
    m = _DURATION_RE.match(text.strip().lower())
    if not m:
        raise BadValue("duration", text, "use a number with s, m, h, d or w, e.g. 30m or 14d")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds == math.inf:  # hundreds of digits: no arithmetic on it means anything
        raise BadValue("duration", text, "too long")
    return seconds


@dataclass
class GcPlan:
    """What a collection removes.

    Attributes:
        doomed: unreachable objects older than the grace period, with their stored sizes, in
            the order they are removed: dependants before what they depend on.
        young: unreachable objects kept because they are younger than the grace period.
        deltas: how many of the first ``doomed`` are deltas (or have unreadable headers):
            they go before any pack, the objects stored whole after.
        young: unreachable objects kept because they are younger than the grace period.
        reachable: number of reachable objects.
        temp_files: debris of interrupted writes.
        drop_packs: old packs none of whose objects is kept, newest first (a push writes a
            delta's base before the delta, so into the same or an older pack).
        repack: old packs with more than :data:`REPACK_DEAD` of their bytes unreachable, with
            the objects to copy out of each (those kept and not stored elsewhere).
        orphan_packs: old packs without an index (a push or gc killed between the two), with
            their sizes.
        packed_dead: objects that go with dropped and repacked packs, and their stored bytes.
    """

    doomed: dict[Oid, int] = field(default_factory=dict)
    deltas: int = 0
    young: int = 0
    reachable: int = 0
    temp_files: list[tuple[str, int]] = field(default_factory=list)
    drop_packs: list[Pack] = field(default_factory=list)
    repack: dict[str, list[Oid]] = field(default_factory=dict)
    orphan_packs: dict[str, int] = field(default_factory=dict)
    packed_dead: tuple[int, int] = (0, 0)

    @property
    def objects(self) -> int:
        """Number of objects to remove."""
        return len(self.doomed) + self.packed_dead[0]

    @property
    def bytes(self) -> int:
        """Stored bytes to free (temporary files included)."""
        return (
            sum(self.doomed.values())
            + self.packed_dead[1]
            + sum(self.orphan_packs.values())
            + sum(s for _, s in self.temp_files)
        )


def plan(
    store: ObjectStore,
    backend: Backend,
    roots: set[Oid],
    grace: float,
    *,
    history: set[Oid] | frozenset[Oid] = frozenset(),
    released: set[Oid] | frozenset[Oid] = frozenset(),
) -> GcPlan:
    """Decide what to remove. Reads manifests; changes nothing.

    Everything ``roots`` reach must be intact, or the plan fails. ``history`` (ids refs held
    within the grace period) is kept as far as it still exists: an earlier collection with a
    shorter grace may have removed it already. ``released`` are versions whose last ref the
    caller removed on purpose under the exclusive lease (``prune``): the loose objects they
    reach, unless kept otherwise, go whatever their age (see :mod:`vault.ops.prune`).
    """
    reachable = reach(store, roots).all()  # delta bases of reachable chunks included
    for oid in sorted(history):
        if oid not in reachable:
            with contextlib.suppress(ObjectMissing):
                reachable |= reach(store, {oid}).all()
    expired: set[Oid] = set()
    for oid in sorted(released):
        # A damaged released version frees nothing early; its objects wait out the grace.
        with contextlib.suppress(ObjectMissing, CorruptObject):
            expired |= reach(store, {oid}).all() - reachable
    cutoff = backend.now() - grace
    store.packs.refresh()  # under the exclusive lease: every pack any writer published
    old: dict[Oid, int] = {}
    young: set[Oid] = set()
    loose: set[Oid] = set()
    for oid, st in store.list_loose():
        loose.add(oid)
        if oid in reachable:
            continue
        if st.mtime > cutoff and oid not in expired:
            young.add(oid)
        else:
            old[oid] = st.size
    packs = store.packs.packs()
    for pack in packs:
        if pack.mtime > cutoff:
            young.update(oid for oid, _, _ in pack.objects if oid not in reachable)
    # What is kept stays readable: a young object, or one left in a pack, keeps its delta base
    # (a later commit may reuse it).
    kept = set(reachable)
    _keep(store, kept, young)
    out = GcPlan(reachable=len(reachable), young=len(young))
    _plan_packs(store, out, packs, cutoff, kept, loose)
    doomed = {oid: size for oid, size in old.items() if oid not in kept}
    out.doomed, out.deltas = _dependants_first(store, doomed)
    out.orphan_packs = {
        pack: st.size for pack, st in store.packs.orphans.items() if st.mtime <= cutoff
    }
    out.temp_files = backend.temp_files()
    return out


def _keep(store: ObjectStore, kept: set[Oid], more: Iterable[Oid]) -> bool:
    """Add ``more`` and their delta bases (transitively) to ``kept``; whether any was new."""
    new = {oid for oid in more if oid not in kept}
    kept |= new
    kept |= delta_bases(store, new)
    return bool(new)


def _plan_packs(
    store: ObjectStore,
    out: GcPlan,
    packs: list[Pack],
    cutoff: float,
    kept: set[Oid],
    loose: set[Oid],
) -> None:
    """Decide, for each pack older than ``cutoff``, to drop, repack or keep it.

    A pack kept as it is keeps its unreachable objects too, and so their delta bases, which may
    lie in a pack decided before: decide again until nothing more is kept. A repack copies
    only what is stored nowhere else that stays (loose, or a pack that stays).
    """
    old = [p for p in packs if p.mtime <= cutoff]
    stays = {p.id for p in packs if p.mtime > cutoff}
    while True:
        grew = False
        for pack in old:
            if pack.id in stays:
                continue
            dead = sum(length for oid, _, length in pack.objects if oid not in kept)
            live = any(oid in kept for oid, _, _ in pack.objects)
            # A pack that is missing cannot be copied from: it stays, with its index.
            if live and (pack.size is None or dead <= REPACK_DEAD * pack.used):
                stays.add(pack.id)
                grew |= _keep(store, kept, (oid for oid, _, _ in pack.objects))
        if not grew:
            break
    elsewhere = loose | {oid for p in packs if p.id in stays for oid, _, _ in p.objects}
    dead_objects = dead_bytes = 0
    for pack in sorted(old, key=lambda p: -p.mtime):
        if pack.id in stays:
            continue
        gone = [(oid, length) for oid, _, length in pack.objects if oid not in kept]
        dead_objects += len(gone)
        dead_bytes += sum(length for _, length in gone)
        if len(gone) == len(pack.objects):
            out.drop_packs.append(pack)
            dead_bytes += (pack.size or 0) - pack.used
        else:
            copy = [oid for oid, _, _ in pack.objects if oid in kept and oid not in elsewhere]
            out.repack[pack.id] = list(dict.fromkeys(copy))
    out.packed_dead = (dead_objects, dead_bytes)


def _dependants_first(store: ObjectStore, doomed: dict[Oid, int]) -> tuple[dict[Oid, int], int]:
    """``doomed`` in removal order, and how many of them come before the objects stored whole:
    objects whose header cannot be read first (they may be deltas of anything), then deltas
    deepest first, then objects stored whole. An interrupted removal then never leaves a delta
    without its base, which a later commit could otherwise find stored and reuse."""
    ranks: dict[Oid, int] = {}
    for oid in doomed:
        header = store.head(oid)
        ranks[oid] = -(codec.MAX_DEPTH + 1) if header is None else -header.depth
    order = sorted(doomed, key=ranks.__getitem__)
    return {oid: doomed[oid] for oid in order}, sum(1 for r in ranks.values() if r < 0)


def execute(
    store: ObjectStore, backend: Backend, p: GcPlan, progress: Progress | None = None
) -> int:
    """Remove what the plan names, in its order: repacks first, then loose deltas, whole packs,
    loose objects stored whole and temporary files. Safe to interrupt: only unreachable objects
    are removed, a delta goes before its base, and a repacked object is durable in its new pack
    before the old index stops naming it. Return how many packs were repacked: a pack whose
    kept objects do not all read back intact stays as it is.
    """
    progress = progress or NullProgress()
    crashpoint("gc-planned")
    progress.start("gc", len(p.doomed) + len(p.drop_packs) + len(p.repack))
    repacked = _repack(store, p.repack)
    for pack in repacked:  # every new index is durable: now the old ones go, then their packs
        backend.delete(index_key(pack))
        store.packs.forget(pack)
        crashpoint("gc-deleted")
    for pack in repacked:
        backend.delete(pack_key(pack))
        crashpoint("gc-deleted")
        progress.advance(1)
    doomed = list(p.doomed)
    for oid in doomed[: p.deltas]:
        store.delete(oid)
        crashpoint("gc-deleted")
        progress.advance(1)
    for info in p.drop_packs:
        backend.delete(info.index)
        store.packs.forget(info.id)
        crashpoint("gc-deleted")
        backend.delete(info.key)
        crashpoint("gc-deleted")
        progress.advance(1)
    for oid in doomed[p.deltas :]:
        store.delete(oid)
        crashpoint("gc-deleted")
        progress.advance(1)
    for pack in p.orphan_packs:
        backend.delete(pack_key(pack))
        crashpoint("gc-deleted")
    for name, _ in p.temp_files:
        backend.remove_temp(name)  # a killed consolidation's work folder too
        crashpoint("gc-deleted")
    progress.finish()
    return len(repacked)


def _repack(store: ObjectStore, repack: dict[str, list[Oid]]) -> list[str]:
    """Copy the objects each pack of ``repack`` keeps into new packs, verified, and publish
    them (packs, then indexes, durable); return the packs whose objects were all copied."""
    done: list[str] = []
    with store.pack_writer() as writer:
        for pack, oids in repack.items():
            info = store.packs.pack(pack)
            if info is None:
                continue
            where = {oid: (off, length) for oid, off, length in info.objects}
            try:
                data = store.backend.get(info.key)  # one read of the pack, not one per object
                for oid in oids:
                    off, length = where[oid]
                    writer.add(oid, data[off : off + length])
            except (FileNotFoundError, CorruptObject):
                continue  # damaged: it stays, and verify reports it; what was added is harmless
            done.append(pack)
    crashpoint("gc-repacked")
    return done


@dataclass
class GcResult:
    """What gc removed (or would remove with ``dry_run``)."""

    objects: int
    bytes: int
    dry_run: bool
    grace_seconds: float
    reachable: int
    kept_young: int
    temp_files: int
    packs_removed: int = 0
    packs_repacked: int = 0


def gc(
    parts: Parts,
    *,
    grace: float | str = DEFAULT_GRACE,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> GcResult:
    """Remove unreachable objects older than ``grace`` (seconds or a duration string), under
    the exclusive lease; ``dry_run`` only plans, and takes no lease."""
    seconds = parse_duration(grace) if isinstance(grace, str) else float(grace)

    def run() -> tuple[GcPlan, int]:
        history = parts.refs.recent_ids(time.time() - seconds)
        roots = set(parts.refs.read().refs.values())
        p = plan(parts.store, parts.backend, roots, seconds, history=history)
        if dry_run:
            return p, len(p.repack)
        repacked = execute(parts.store, parts.backend, p, progress)
        parts.locks.remove_stale()
        return p, repacked

    if dry_run:
        p, repacked = run()
    else:
        with parts.locks.hold(EXCLUSIVE):
            p, repacked = run()
    return GcResult(
        p.objects,
        p.bytes,
        dry_run,
        seconds,
        p.reachable,
        p.young,
        len(p.temp_files),
        packs_removed=len(p.drop_packs) + len(p.orphan_packs),
        packs_repacked=repacked,
    )
