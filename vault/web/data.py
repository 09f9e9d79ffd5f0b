"""What the web view's pages show, computed by the same verbs as the command line's ``--json``.

:class:`Site` opens the repository read-only (:mod:`vault.web.readonly`) and calls the verbs of
:mod:`vault.ops` (``log``, ``show``, ``diff``, ``pins``, ``stats``) on its parts, so that an
``/api`` answer equals the matching ``--json`` output. Two caches make the pages fast on large
repositories, and neither can serve stale data:

* manifests (versions, trees, file manifests) are memoized by id: an object's id is the hash of
  its content, so what an id names never changes;
* a ``log`` listing is memoized by the version tag of the ``refs.json`` it was computed from
  (the hash of its bytes): refs that moved give another tag, hence a new listing.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadValue, NotSafetensors, VaultError
from ..ids import Oid
from ..meta import series
from ..ml.tensors import StoredFile
from ..objects import KIND_FILE, FileManifest, Tree, Version
from ..ops import diff as diff_op
from ..ops import history
from ..ops import pins as pins_op
from ..ops import runs as runs_op
from ..ops import stats as stats_op
from ..ops.diff import DiffResult
from ..ops.history import VersionInfo
from ..ops.parts import Parts
from ..ops.pins import PinInfo
from ..ops.runs import RunInfo
from ..ops.stats import Stats
from ..ops.versions import file_chunks, file_entry, version_tree
from ..refs import RefsDoc, RefStore
from ..repo import Repository
from ..store import ObjectStore
from .readonly import open_read_only

logger = logging.getLogger("vault")

MANIFESTS_KEPT = 20_000
"""Trees and file manifests kept in memory (versions are all kept: ``log`` reads them all)."""

SORT_KEYS = ("version", "date", "steps", "loss", "size")
"""The columns the versions table sorts by."""

LOSSES = ("loss", "eval_loss")
"""The metrics the pages' learning curves draw."""


class _Bounded(dict):  # type: ignore[type-arg]
    """A dict that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: Any, value: Any) -> Any:
        while len(self) >= self.limit:
            try:
                del self[next(iter(self))]
            except (KeyError, StopIteration, RuntimeError):  # another thread got there first
                break
        self[key] = value
        return value


class CachedStore(ObjectStore):
    """An object store that keeps the manifests it read (verified once) by id."""

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self._versions: dict[Oid, Version] = {}
        self._trees = _Bounded(MANIFESTS_KEPT)
        self._files = _Bounded(MANIFESTS_KEPT)

    def get_version(self, oid: Oid) -> Version:
        """:meth:`ObjectStore.get_version`, read once."""
        found = self._versions.get(oid)
        if found is None:
            found = self._versions[oid] = super().get_version(oid)
        return found

    def get_tree(self, oid: Oid) -> Tree:
        """:meth:`ObjectStore.get_tree`, read once while kept."""
        found = self._trees.get(oid)
        return found if found is not None else self._trees.keep(oid, super().get_tree(oid))

    def get_file(self, oid: Oid) -> FileManifest:
        """:meth:`ObjectStore.get_file`, read once while kept."""
        found = self._files.get(oid)
        return found if found is not None else self._files.keep(oid, super().get_file(oid))


class CachedRefs(RefStore):
    """A ref store that parses ``refs.json`` again only when its bytes changed, and tells each
    thread the version tag of the refs it read last (:attr:`tag`)."""

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self._last: tuple[str | None, RefsDoc] | None = None
        self._local = threading.local()

    def read(self) -> RefsDoc:
        """The current refs (read every time; parsed when they changed)."""
        try:
            data, tag = self.backend.get_versioned("refs.json")
        except FileNotFoundError:
            self._local.tag = None
            return RefsDoc()
        last = self._last
        if last is not None and last[0] == tag:
            doc = last[1]
        else:
            doc = super().read()  # parses and reports damage as the command line does
            self._last = (tag, doc)
        self._local.tag = tag
        return doc

    @property
    def tag(self) -> str | None:
        """The version tag of the refs this thread read last."""
        return getattr(self._local, "tag", None)


@dataclass
class TensorRow:
    """One tensor of a safetensors file, from its header."""

    name: str
    dtype: str
    shape: list[int]
    bytes: int


@dataclass
class Lineage:
    """Where a version came from and what came of it (links on its page).

    Attributes:
        parents: its parent versions, first parent (the run's previous version) first.
        children: versions whose first parent it is.
        base: for a merged version, the base model merged into; ``adapter``: the adapter.
        merged_into: merged versions made from it (as base or adapter).
    """

    parents: list[VersionInfo | Oid] = field(default_factory=list)
    children: list[VersionInfo] = field(default_factory=list)
    base: VersionInfo | Oid | None = None
    adapter: VersionInfo | Oid | None = None
    merged_into: list[VersionInfo] = field(default_factory=list)


@dataclass
class Page:
    """One page of the versions table."""

    rows: list[VersionInfo]
    total: int
    page: int
    pages: int
    limit: int


@dataclass
class _Index:
    """What the version pages look up in every version: by id, children, merges."""

    by_id: dict[str, VersionInfo]
    children: dict[str, list[VersionInfo]]
    merged_into: dict[str, list[VersionInfo]]


def run_of(info: VersionInfo) -> str:
    """The training run a version belongs to (its ``run``), or ``""``."""
    return info.run or ""


@dataclass
class RunPage:
    """A run on the runs page: its summary (``vault runs --json``'s entry) and its learning
    curve, one series per logged loss (``loss``, ``eval_loss``) over all its versions."""

    info: RunInfo
    curve: dict[str, list[tuple[float, float]]]


class Site:
    """The data of the web view, over a repository opened read-only.

    Args:
        repo: the repository to serve; it is opened again through a read-only backend.
    """

    def __init__(self, repo: Repository) -> None:
        self.repo = open_read_only(repo)
        r = self.repo
        self.store = CachedStore(r.backend)
        self.refs = CachedRefs(r.backend)
        self.parts = Parts(r.backend, self.store, self.refs, r.locks, r.config, r.root)
        self._listings = _Bounded(64)
        self._indexes = _Bounded(4)
        self._new_bytes: dict[Oid, int] = {}
        self._headers = _Bounded(MANIFESTS_KEPT)
        self._diffs = _Bounded(64)
        self._curves = _Bounded(MANIFESTS_KEPT)
        self._lock = threading.Lock()

    def describe(self) -> str:
        """Where the repository is."""
        return self.repo.describe_abs()

    # -- what the command line prints with --json ---------------------------------------------

    def log(
        self,
        rev: str | None = None,
        *,
        limit: int | None = None,
        all: bool = False,  # noqa: A002
    ) -> list[VersionInfo]:
        """``vault log [REV] [-n LIMIT] [--all]``: :func:`vault.ops.history.log`, memoized by
        the refs it read. The entries are shared: treat them as read-only."""
        self.refs.read()
        key = (self.refs.tag, rev, limit, all)
        found = self._listings.get(key)
        if found is not None:
            return found  # type: ignore[no-any-return]
        with self._lock:  # one listing computed at a time: the first request pays, once
            found = self._listings.get(key)
            if found is not None:  # computed while this thread waited
                return found  # type: ignore[no-any-return]
            entries = history.log(self.parts, rev, limit=limit, all=all)
            return self._listings.keep((self.refs.tag, rev, limit, all), entries)  # type: ignore[no-any-return]

    def warm(self) -> None:
        """Read what the versions and version pages need (every version of ``log --all``), so
        that the first visitor does not wait for 10,000 manifests to be read; the server calls
        this in the background when it starts."""
        try:
            self.log()
            self._index()
        except VaultError as exc:  # the pages will report it
            logger.warning("could not read the versions ahead: %s", exc.message)

    def show(self, rev: str) -> VersionInfo:
        """``vault show REV``: :func:`vault.ops.history.show`."""
        return history.show(self.parts, rev)

    def diff(self, rev_a: str, rev_b: str) -> DiffResult:
        """``vault diff A B``: :func:`vault.ops.diff.diff`, memoized by the two version ids."""
        key = (self.parts.resolve(rev_a), self.parts.resolve(rev_b))
        found = self._diffs.get(key)
        if found is None:
            found = self._diffs.keep(key, diff_op.diff(self.parts, rev_a, rev_b))
        return found  # type: ignore[no-any-return]

    def pins(self) -> list[PinInfo]:
        """``vault backup list``: :func:`vault.ops.pins.pins`."""
        return pins_op.pins(self.parts)

    def stats(self) -> Stats:
        """``vault stats``: :func:`vault.ops.stats.stats`."""
        return stats_op.stats(self.parts)

    def runs(self) -> list[RunInfo]:
        """``vault runs``: :func:`vault.ops.runs.runs` over the memoized ``log``."""
        return runs_op.runs(self.parts, self.log())

    # -- what only the pages show --------------------------------------------------------------

    def run_pages(self) -> list[RunPage]:
        """Every run of :meth:`runs` with its learning curve: the union of its versions'
        curves (:func:`vault.ops.runs.run_points`), each version's read once and kept."""
        entries = self.log()
        by_run: dict[str, list[VersionInfo]] = {}
        for e in reversed(entries):  # oldest first
            if e.run is not None:
                by_run.setdefault(e.run, []).append(e)
        out = []
        for info in runs_op.runs(self.parts, entries):
            versions = by_run[info.run]
            curve = {k: runs_op.run_points(versions, k, self._curve) for k in LOSSES}
            out.append(RunPage(info, {k: v for k, v in curve.items() if v}))
        return out

    def _curve(self, info: VersionInfo) -> list[dict[str, Any]]:
        found = self._curves.get(info.id)
        if found is None:
            found = self._curves.keep(info.id, history.show(self.parts, info.id).curve or [])
        return found  # type: ignore[no-any-return]

    def versions_page(
        self,
        *,
        all: bool = False,  # noqa: A002
        text: str = "",
        tag: str = "",
        run: str = "",
        sort: str = "version",
        descending: bool = True,
        page: int = 1,
        limit: int = 50,
    ) -> Page:
        """A page of the versions table: ``log`` (``--all`` with ``all``) filtered, sorted and
        cut into pages of ``limit``.

        Args:
            text: keep versions whose name, id, description or base model holds it (any case).
            tag: keep versions with this tag; ``run``: of this run.
            sort: one of :data:`SORT_KEYS`; ``version`` is ``log``'s order (newest first).

        Raises:
            BadValue: an unknown ``sort``, or a ``page`` or ``limit`` below 1.
        """
        if sort not in SORT_KEYS:
            raise BadValue("sort", sort, f"expected one of {', '.join(SORT_KEYS)}")
        if page < 1 or limit < 1:
            raise BadValue("page" if page < 1 else "limit", str(min(page, limit)), "must be >= 1")
        rows = self.select(self.log(all=all), text=text, tag=tag, run=run)
        rows = sort_rows(rows, sort, descending)
        pages = max(1, math.ceil(len(rows) / limit))
        start = (page - 1) * limit
        return Page(rows[start : start + limit], len(rows), page, pages, limit)

    @staticmethod
    def select(
        entries: Iterable[VersionInfo], *, text: str = "", tag: str = "", run: str = ""
    ) -> list[VersionInfo]:
        """The entries that match every filter given (see :meth:`versions_page`)."""
        needle = text.strip().lower()
        out = []
        for e in entries:
            if tag and tag not in e.tags:
                continue
            if run and run_of(e) != run:
                continue
            if needle and not any(
                needle in (s or "").lower()
                for s in (e.version, e.id, e.description, e.base_model, run_of(e))
            ):
                continue
            out.append(e)
        return out

    def new_bytes(self, oid: str) -> int:
        """:func:`vault.ops.stats.new_bytes` of the version ``oid``, memoized (a version and its
        parents never change)."""
        found = self._new_bytes.get(Oid(oid))
        if found is None:
            found = self._new_bytes[Oid(oid)] = stats_op.new_bytes(self.store, Oid(oid))
        return found

    def tensors(self, info: VersionInfo) -> dict[str, list[TensorRow]]:
        """The tensors of each safetensors file of a version shown by :meth:`show`, read from
        the files' headers only (never their tensors)."""
        out: dict[str, list[TensorRow]] = {}
        for f in info.files or []:
            if f.kind != KIND_FILE or f.id is None or not f.path.endswith(".safetensors"):
                continue
            found = self._headers.get(f.id)
            if found is None:
                try:
                    header = StoredFile.open(self.store, Oid(f.id), f.path).header()
                except NotSafetensors:
                    continue  # named .safetensors, holds something else: listed as a file only
                rows = [
                    TensorRow(name, t.dtype, list(t.shape), t.end - t.start)
                    for name, t in header.tensors.items()
                ]
                found = self._headers.keep(f.id, rows)
            out[f.path] = found
        return out

    def lineage(self, info: VersionInfo) -> Lineage:
        """Parents, children and merges of a version shown by :meth:`show`."""
        index = self._index()

        def known(oid: str) -> VersionInfo | Oid:
            return index.by_id.get(oid) or Oid(oid)

        out = Lineage(
            parents=[known(p) for p in info.parents],
            children=index.children.get(info.id, []),
            merged_into=index.merged_into.get(info.id, []),
        )
        merge = info.meta.get("lineage")
        if isinstance(merge, dict):
            for role in ("base", "adapter"):
                if isinstance(merge.get(role), str):
                    setattr(out, role, known(merge[role]))
        return out

    def _index(self) -> _Index:
        entries = self.log(all=True)
        tag = self.refs.tag  # of the refs that listing was computed from
        found = self._indexes.get(tag)
        if found is not None:
            return found  # type: ignore[no-any-return]
        index = _Index({e.id: e for e in entries}, {}, {})
        for e in entries:
            if e.parents:
                index.children.setdefault(e.parents[0], []).append(e)
            merge = e.meta.get("lineage")
            if isinstance(merge, dict):
                for role in ("base", "adapter"):
                    if isinstance(merge.get(role), str):
                        index.merged_into.setdefault(merge[role], []).append(e)
        return self._indexes.keep(tag, index)  # type: ignore[no-any-return]

    def open_file(self, rev: str, path: str) -> tuple[int, Iterator[bytes | bytearray]]:
        """The size of the file ``path`` of the version ``rev`` and an iterator over its chunks,
        each verified as it is read.

        Raises:
            UnknownRevision: ``rev`` names no version.
            FileNotInVersion: the version has no regular file ``path``.
        """
        refs = self.refs.read()
        oid = self.parts.resolve(rev)
        entry = file_entry(version_tree(self.store, refs, oid, rev), rev, path)
        assert entry.file is not None
        return entry.size, file_chunks(self.store, entry.file)

    def storage(self, newest: int = 200) -> tuple[Stats, list[tuple[VersionInfo, int]]]:
        """``stats``, and the new bytes of the newest ``newest`` versions of ``log``."""
        entries = self.log()[:newest]
        return self.stats(), [(e, self.new_bytes(e.id)) for e in entries]


def sort_rows(rows: list[VersionInfo], key: str, descending: bool) -> list[VersionInfo]:
    """``rows`` sorted by the column ``key``; versions without a value go last either way."""
    if key == "version":
        return list(rows) if descending else rows[::-1]
    value = {
        "date": lambda e: e.created,
        "steps": lambda e: e.steps,
        "loss": lambda e: e.loss,
        "size": lambda e: e.bytes,
    }[key]
    have = [e for e in rows if value(e) is not None]
    missing = [e for e in rows if value(e) is None]
    return sorted(have, key=value, reverse=descending) + missing


def loss_series(info: VersionInfo) -> dict[str, list[tuple[float, float]]]:
    """The learning curve of a version shown by :meth:`Site.show`: one series per logged
    metric (``loss``, ``eval_loss``), one point per logged step."""
    curve = info.curve or []
    out = {key: series(curve, key) for key in LOSSES}
    return {k: v for k, v in out.items() if v}
