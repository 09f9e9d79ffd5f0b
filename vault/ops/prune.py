"""``prune``: unpin automatic backups by a retention policy, then collect garbage, in one step
(as restic's ``forget --prune``). A plan, then its execution: the dry run computes the very plan
the real run executes, without changing anything.

**Which pins go.** Only pins of the given types, by default the automatic ones
(:data:`~vault.ops.pins.AUTOMATIC`: ``pre_deletion``, ``pre_restore``, ``pre_consolidation``);
a pin someone made (``vault pin``, ``vault backup``, a callback's ``best``) goes only when its
type is named. Of those, a pin stays when it is one of the newest ``keep_last`` of its type or
was made within ``keep_within``; with neither policy, every one of them goes.

**Why the space comes back at once.** ``gc`` keeps, besides what refs reach, every id a ref
held within the grace period (from the reflog) and every object younger than it. After
``delete`` and an unpin both hold the version: the reflog shows it in ``versions/vNNN`` and in
the pin moments ago, so a plain ``gc`` frees nothing for an hour. Those two rules protect what
the reflog could still bring back and what a writer is storing before its refs are published;
neither applies to a version whose last ref prune itself removes, on purpose, under gc's
exclusive lease: no writer is in flight then (writers hold a shared lease until their refs are
published), and any that lost its lease publishes nothing. So prune removes its own unpinned
versions from the reflog's roots and lets the loose objects only they reach go whatever their
age (:func:`vault.ops.gc.plan`'s ``released``). Everything else keeps gc's usual grace: a ref
moved by someone else an instant ago still keeps its version, and packs younger than the grace
stay whole.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

from ..config import DEFAULT_GRACE
from ..errors import BadValue
from ..ids import Oid
from ..leases import EXCLUSIVE, Lease
from ..progress import Progress
from ..refs import PINS
from . import gc as gc_op
from . import pins as pins_op
from .parts import Parts
from .pins import PinInfo


@dataclass
class PruneResult:
    """What ``prune`` unpinned and freed (or would, in a dry run).

    Attributes:
        unpinned: the names of the pins dropped, oldest first.
        objects: objects the collection removes.
        bytes: stored bytes it frees (temporary files of dead writers included).
        dry_run: whether nothing was changed.
        pins: the dropped pins in full.
        kept: the pins of the chosen types that stay.
    """

    unpinned: list[str]
    objects: int
    bytes: int
    dry_run: bool
    pins: list[PinInfo] = field(default_factory=list)
    kept: list[PinInfo] = field(default_factory=list)


def prune(
    parts: Parts,
    *,
    keep_last: int | None = None,
    keep_within: float | str | None = None,
    types: Collection[str] | None = None,
    execute: bool = False,
    progress: Progress | None = None,
) -> PruneResult:
    """Unpin the automatic backups the policy does not keep, then collect garbage.

    Args:
        parts: the repository's collaborators.
        keep_last: keep the newest N pins of each type.
        keep_within: keep pins made within this long (seconds, or a duration such as ``14d``).
        types: the pin types to consider (default :data:`~vault.ops.pins.AUTOMATIC`).
        execute: do it; without it, only compute what would go (no lease, nothing changes).
        progress: receives gc's progress.

    Raises:
        BadValue: a negative ``keep_last``, a malformed duration, or an empty ``types``.
        PinError: a type that is not one word.
        RefConflict: a pin moved while prune ran (nothing was changed).
    """
    if keep_last is not None and keep_last < 0:
        raise BadValue("--keep-last", keep_last, "must not be negative")
    within = gc_op.parse_duration(keep_within) if isinstance(keep_within, str) else keep_within
    if within is not None and within < 0:
        raise BadValue("--keep-within", keep_within, "must not be negative")
    chosen_types = pins_op.AUTOMATIC if types is None else tuple(types)
    if not chosen_types:
        raise BadValue("--type", "", "name at least one pin type")
    for t in chosen_types:
        pins_op.check_type(t)
    grace = gc_op.parse_duration(DEFAULT_GRACE)

    def run(lease: Lease | None) -> PruneResult:
        refs = parts.refs.read()
        drop, keep = pins_op.select_for_cleanup(
            pins_op.pin_list(parts.store, refs),
            retention_days=None if within is None else within / 86400,
            keep_last=0 if keep_last is None and within is None else keep_last,
            types=chosen_types,
        )
        gone = {PINS + p.name for p in drop}
        after = {k: v for k, v in refs.refs.items() if k not in gone}
        p = _plan(parts, after, {Oid(x.id) for x in drop}, grace)
        if lease is not None:
            if drop:
                with parts.refs.transaction("prune", before_publish=lease.check) as txn:
                    for x in drop:
                        txn.delete(PINS + x.name, expected=Oid(x.id))
                now = parts.refs.read().refs
                if now != after:  # moved by something that takes no lease: plan again
                    p = _plan(parts, now, {Oid(x.id) for x in drop}, grace)
            gc_op.execute(parts.store, parts.backend, p, progress)
            parts.locks.remove_stale()
        return PruneResult(
            [x.name for x in drop], p.objects, p.bytes, not execute, pins=drop, kept=keep
        )

    if not execute:
        return run(None)
    with parts.locks.hold(EXCLUSIVE) as lease:
        return run(lease)


def _plan(parts: Parts, refs: dict[str, Oid], dropped: set[Oid], grace: float) -> gc_op.GcPlan:
    """gc's plan for the refs ``refs``, where the versions of ``dropped`` that no ref in
    ``refs`` holds are released: neither the reflog nor their objects' age keeps them."""
    roots = set(refs.values())
    released = dropped - roots
    history = parts.refs.recent_ids(time.time() - grace) - released
    return gc_op.plan(parts.store, parts.backend, roots, grace, history=history, released=released)
