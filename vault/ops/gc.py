"""Garbage collection: a plan (mark from every root, sweep what is old and unreachable), then its
execution.

Roots are every ref, plus every id a ref held within the grace period according to the reflog.
An object is removed only when it is unreachable *and* older than the grace period. Writers hold
the repository's gc lock shared while they write; gc holds it exclusively, so no commit is in
flight while gc decides, and temporary files found under that lock are debris of dead writers.
Deltas are removed before their bases, so a gc killed at any instant leaves no delta whose base
is gone.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from dataclasses import dataclass, field

from .. import codec
from ..backend import Backend
from ..errors import BadValue, ObjectMissing
from ..faults import crashpoint
from ..ids import Oid
from ..leases import EXCLUSIVE
from ..progress import NullProgress, Progress
from ..store import ObjectStore
from .parts import Parts
from .walk import delta_bases, reach

DEFAULT_GRACE = "1h"
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
        reachable: number of reachable objects.
        temp_files: debris of interrupted writes.
    """

    doomed: dict[Oid, int] = field(default_factory=dict)
    young: int = 0
    reachable: int = 0
    temp_files: list[tuple[str, int]] = field(default_factory=list)

    @property
    def objects(self) -> int:
        """Number of objects to remove."""
        return len(self.doomed)

    @property
    def bytes(self) -> int:
        """Stored bytes to free (temporary files included)."""
        return sum(self.doomed.values()) + sum(s for _, s in self.temp_files)


def plan(
    store: ObjectStore,
    backend: Backend,
    roots: set[Oid],
    grace: float,
    *,
    history: set[Oid] | frozenset[Oid] = frozenset(),
) -> GcPlan:
    """Decide what to remove. Reads manifests; changes nothing.

    Everything ``roots`` reach must be intact, or the plan fails. ``history`` (ids refs held
    within the grace period) is kept as far as it still exists: an earlier collection with a
    shorter grace may have removed it already.
    """
    reachable = reach(store, roots).all()  # delta bases of reachable chunks included
    for oid in sorted(history):
        if oid not in reachable:
            with contextlib.suppress(ObjectMissing):
                reachable |= reach(store, {oid}).all()
    cutoff = backend.now() - grace
    old: dict[Oid, int] = {}
    young: set[Oid] = set()
    for oid, st in store.list():
        if oid in reachable:
            continue
        if st.mtime > cutoff:
            young.add(oid)
        else:
            old[oid] = st.size
    # A young object is kept, and so must be its delta base (a later commit may reuse it).
    for base in delta_bases(store, young):
        old.pop(base, None)
    out = GcPlan(reachable=len(reachable), young=len(young), doomed=_dependants_first(store, old))
    out.temp_files = backend.temp_files()
    return out


def _dependants_first(store: ObjectStore, doomed: dict[Oid, int]) -> dict[Oid, int]:
    """``doomed`` in removal order: objects whose header cannot be read first (they may be
    deltas of anything), then deltas deepest first, then objects stored whole. An interrupted
    removal then never leaves a delta without its base, which a later commit could otherwise
    find stored and reuse."""

    def rank(oid: Oid) -> int:
        header = store.head(oid)
        return -(codec.MAX_DEPTH + 1) if header is None else -header.depth

    return {oid: doomed[oid] for oid in sorted(doomed, key=rank)}


def execute(
    store: ObjectStore, backend: Backend, p: GcPlan, progress: Progress | None = None
) -> None:
    """Remove what the plan names, in its order. Safe to interrupt: only unreachable objects are
    touched, and a delta goes before its base."""
    progress = progress or NullProgress()
    crashpoint("gc-planned")
    progress.start("gc", len(p.doomed))
    for oid in p.doomed:
        store.delete(oid)
        crashpoint("gc-deleted")
        progress.advance(1)
    for name, _ in p.temp_files:
        backend.remove_temp(name)  # a killed consolidation's work folder too
        crashpoint("gc-deleted")
    progress.finish()


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

    def run() -> GcPlan:
        history = parts.refs.recent_ids(time.time() - seconds)
        roots = set(parts.refs.read().refs.values())
        p = plan(parts.store, parts.backend, roots, seconds, history=history)
        if not dry_run:
            execute(parts.store, parts.backend, p, progress)
            parts.locks.remove_stale()
        return p

    if dry_run:
        p = run()
    else:
        with parts.locks.hold(EXCLUSIVE):
            p = run()
    return GcResult(p.objects, p.bytes, dry_run, seconds, p.reachable, p.young, len(p.temp_files))
