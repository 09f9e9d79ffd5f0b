"""``log`` and ``show``: versions as the user reads them, with names, tags, pins and training.

``log`` lists every named version by number, newest first, or follows first parents from a
revision; ``log --all`` lists every version any ref reaches, newest first, children before
parents when their times are equal. ``--run`` and ``--meta`` filter either listing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..ids import Oid
from ..meta import curve_from_state
from ..objects import KIND_FILE, Tree, Version
from ..refs import LATEST, VERSIONS, version_number
from ..revisions import resolve
from .parts import Parts
from .versions import file_chunks, pin_names, version_names, version_tree


@dataclass
class FileInfo:
    """One entry of a version's file list."""

    path: str
    size: int
    id: str | None
    kind: str = KIND_FILE
    mode: int | None = None
    target: str | None = None


@dataclass
class VersionInfo:
    """A version as ``log`` and ``show`` describe it.

    The training metadata (``steps`` to ``snapshots``) is ``None`` (``[]`` for ``data``) when
    the version does not record it; ``description`` repeats ``message``. ``curve`` (the learning
    curve: the Trainer's ``log_history`` entries) is read by ``show`` only.
    """

    version: str | None
    id: str
    message: str
    created: str
    tags: list[str]
    meta: dict[str, Any]
    parents: list[str]
    bytes: int
    file_count: int
    tree: str
    files: list[FileInfo] | None = None
    description: str = ""
    steps: int | None = None
    loss: float | None = None
    eval_loss: float | None = None
    base_model: str | None = None
    base_model_id: str | None = None
    data: list[dict[str, Any]] = field(default_factory=list)
    snapshots: int | None = None
    run: str | None = None
    checkpoint: str | None = None
    pins: list[str] = field(default_factory=list)
    curve: list[dict[str, Any]] | None = None
    excluded: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.description = self.description or self.message

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``--json`` prints (``files`` and ``curve`` only when read)."""
        d = asdict(self)
        if self.files is None:
            del d["files"]
        if self.curve is None:
            del d["curve"]
        return d


def _info(
    oid: Oid,
    version: Version,
    tags: dict[Oid, list[str]],
    names: dict[Oid, str],
    pins: dict[Oid, list[str]] | None = None,
) -> VersionInfo:
    training = version.training
    return VersionInfo(
        version=names.get(oid, version.name),
        id=oid,
        message=version.message,
        created=version.created,
        tags=sorted(tags.get(oid, [])),
        meta=version.meta,
        parents=list(version.parents),
        bytes=version.size,
        file_count=version.files,
        tree=version.tree,
        steps=training.get("steps"),
        loss=training.get("loss"),
        eval_loss=training.get("eval_loss"),
        base_model=training.get("base_model"),
        base_model_id=training.get("base_model_id"),
        data=[dict(d) for d in training.get("data", [])],
        snapshots=training.get("snapshots"),
        run=training.get("run"),
        checkpoint=training.get("checkpoint"),
        pins=sorted((pins or {}).get(oid, [])),
        excluded=[dict(e) for e in version.excluded],
    )


def log(
    parts: Parts,
    rev: str | None = None,
    *,
    limit: int | None = None,
    all: bool = False,  # noqa: A002
    run: str | None = None,
    meta: dict[str, str] | None = None,
) -> list[VersionInfo]:
    """Versions, newest first: without ``rev``, every named version (of every run), by
    number; from ``rev``, its history following first parents (within its run).

    A version without a name (a deleted one) is walked through but not listed, unless it
    is ``rev`` itself or ``all`` is set. ``all`` without ``rev`` lists every version any
    ref reaches, backups and pinned deleted versions included, newest first.

    Args:
        run: list only the versions of this run (``training.run``).
        meta: list only the versions whose metadata has each ``KEY=VALUE`` (user metadata
            first, then the training record: ``base_model=v003``), compared as text.
    """
    if run is not None or meta:
        wanted = _matcher(run, meta or {})
        listed = log(parts, rev, all=all)
        return [e for e in listed if wanted(e)][:limit]
    store = parts.store
    refs = parts.refs.read()
    names, tags = version_names(refs)
    pins = pin_names(refs)
    out: list[VersionInfo] = []
    if rev is None and not all:
        numbered = sorted(
            refs.names_for(VERSIONS).items(),
            key=lambda kv: (version_number(kv[0]) or 0, kv[0]),
            reverse=True,
        )
        for _name, vid in numbered[:limit]:
            out.append(_info(vid, store.get_version(vid), tags, names, pins))
        return out
    if all and rev is None:
        found: dict[Oid, Version] = {}
        stack = list(set(refs.refs.values()))
        while stack:
            vid = stack.pop()
            if vid not in found:
                found[vid] = store.get_version(vid)
                stack.extend(found[vid].parents)
        depth: dict[Oid, int] = {}  # breaks ties of equal times: children before parents
        for vid in found:
            todo = [vid]
            while todo:
                cur = todo[-1]
                waiting = [p for p in found[cur].parents if p in found and p not in depth]
                if waiting:
                    todo.extend(waiting)
                    continue
                todo.pop()
                depth[cur] = 1 + max(
                    (depth[p] for p in found[cur].parents if p in found), default=0
                )
        ordered = sorted(
            found.items(), key=lambda kv: (kv[1].created, depth[kv[0]], kv[0]), reverse=True
        )
        for vid, version in ordered[:limit]:
            out.append(_info(vid, version, tags, names, pins))
        return out
    if rev is None and LATEST not in refs.refs:
        return []
    start = resolve(rev or LATEST, refs, store)
    oid: Oid | None = start
    while oid is not None and (limit is None or len(out) < limit):
        version = store.get_version(oid)
        if all or oid == start or oid in names:
            out.append(_info(oid, version, tags, names, pins))
        oid = version.parents[0] if version.parents else None
    return out


def _matcher(run: str | None, meta: dict[str, str]) -> Callable[[VersionInfo], bool]:
    def wanted(entry: VersionInfo) -> bool:
        if run is not None and entry.run != run:
            return False
        for key, value in meta.items():
            found = entry.meta.get(key, _MISSING)
            if found is _MISSING:
                found = entry.to_json().get(key, _MISSING)
            if found is _MISSING or _text(found) != value:
                return False
        return True

    return wanted


_MISSING = object()


def _text(value: Any) -> str:
    """A metadata value as ``--meta KEY=VALUE`` compares it: strings as they are, other values
    as JSON (``true``, ``3``, ``0.5``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def show(parts: Parts, rev: str) -> VersionInfo:
    """A version with its file list and, when it records one, its learning curve."""
    store = parts.store
    refs = parts.refs.read()
    oid = resolve(rev, refs, store)
    names, tags = version_names(refs)
    version = store.get_version(oid)
    info = _info(oid, version, tags, names, pin_names(refs))
    tree = version_tree(store, refs, oid, rev)
    info.files = [
        FileInfo(e.path, e.size, e.file, e.kind, e.mode if e.kind == KIND_FILE else None, e.target)
        for e in tree.entries
    ]
    curve_path = version.training.get("curve")
    if isinstance(curve_path, str):
        info.curve = _read_curve(parts, tree, curve_path)
    return info


def _read_curve(parts: Parts, tree: Tree, path: str) -> list[dict[str, Any]]:
    """The ``log_history`` of the trainer state at ``path`` in ``tree``, read verified."""
    for entry in tree.entries:
        if entry.path == path and entry.kind == KIND_FILE and entry.file is not None:
            return curve_from_state(b"".join(file_chunks(parts.store, entry.file)))
    return []
