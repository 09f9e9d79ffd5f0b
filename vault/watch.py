"""``vault watch``: commit the checkpoints a training run writes, as each one is complete.

A *checkpoint* is an item of the watched folder whose name matches a glob (``checkpoint-*``). It
is committed once it is complete:

* it was renamed into the folder (a writer that builds ``tmp-…`` elsewhere and renames it into
  place): at once; or
* nothing in it changed for ``settle`` seconds and, for a Trainer checkpoint (a folder named
  ``checkpoint-*``), its ``trainer_state.json`` is there: the Trainer writes it last. Any other
  item (``step_N/`` of a plain PyTorch loop) needs only the quiet time.

Changes are seen through file events (``watchdog``); only the settle deadline is a timer. Before
an item counts as quiet its files' times are read too, so a change whose event was missed still
delays it.

What was committed lives in the repository: each version records its run and the checkpoint's
folder name in its training metadata (``run``, ``checkpoint``), so a restarted watcher commits
only what is missing, and a checkpoint is never committed twice. A commit is atomic: a watcher
killed in the middle of one leaves no version for it, and the next start commits it. The
consolidated version records its adapter (``lineage.adapter``), so a restart does not merge the
run twice either.

The watcher is a library object over the :class:`~vault.repo.Repository` facade (so it sits
beside it, as :mod:`vault.integrations` does): the command line (``vault/cli/watch.py``) only
turns its events into lines and signals into its stop request.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BadValue, MissingExtra, PathNotFound, VaultError
from .ids import Oid
from .meta import TRAINER_STATE
from .ops.runs import best_pin_name

if TYPE_CHECKING:
    from .repo import Repository

__all__ = ["WatchOptions", "Watcher", "checkpoint_step"]

DEFAULT_PATTERN = "checkpoint-*"
DEFAULT_SETTLE = 5.0
PUSH_RETRY = 30.0
"""Seconds before a failed push is tried again (sooner when another commit comes)."""
TRAINER_FOLDER = "checkpoint-*"
"""The names of the folders the Trainer writes, which are complete only with their
``trainer_state.json``."""
BEST_TYPE = "best"
"""The type of the pin that keeps a run's best checkpoint."""
FATAL_KINDS = ("damaged", "io")
"""Errors that stop the watcher: the repository is damaged, or the disk is full. Any other
failed commit is reported and tried again when its folder changes."""
MAX_WAIT = 1.0
"""The longest the loop sleeps between looks (a stop request is seen within this)."""

Event = dict[str, Any]


@dataclass
class WatchOptions:
    """What ``vault watch`` does; see :class:`Watcher`.

    Attributes:
        pattern: the glob a checkpoint's name matches.
        settle: seconds without a change before a checkpoint counts as complete.
        run: the run's name; default: the watched folder's name (the Trainer's ``output_dir``).
        exclude: gitignore patterns left out of every commit.
        pin_best: keep the checkpoint with the best value of this metric (``eval_loss``;
            ``loss`` means ``eval_loss``, as the Trainer's ``metric_for_best_model``) pinned as
            ``best-<run>``; ``None``: no pin.
        greater_is_better: default: false for a metric whose name ends in ``loss``.
        consolidate: ``"best"`` or ``"last"``: merge that adapter into ``base`` when the run
            ends.
        base: the base model of ``consolidate`` (a revision or a directory).
        end_marker: a file whose appearance in the folder ends the run.
        push: push to this remote after every commit.
        push_retry: seconds before a failed push is tried again.
        once: commit what is there (waiting for what is still settling) and stop.
        message: each version's message; ``{run}`` and ``{checkpoint}`` are filled in.
    """

    pattern: str = DEFAULT_PATTERN
    settle: float = DEFAULT_SETTLE
    run: str | None = None
    exclude: tuple[str, ...] = ()
    pin_best: str | None = None
    greater_is_better: bool | None = None
    consolidate: str | None = None
    base: str | None = None
    end_marker: str | None = None
    push: str | None = None
    push_retry: float = PUSH_RETRY
    once: bool = False
    message: str = "{run} {checkpoint}"

    def check(self) -> None:
        """Refuse a malformed request before anything is watched.

        Raises:
            BadValue: a negative settle time, an empty pattern, ``consolidate`` without a base
                (or ``best`` without ``pin_best``), an end marker that is not a plain name.
        """
        if not math.isfinite(self.settle) or self.settle < 0:
            raise BadValue("--settle", self.settle, "must be a number of seconds, 0 or more")
        if not self.pattern:
            raise BadValue("--pattern", self.pattern, "must not be empty")
        if self.consolidate not in (None, "best", "last"):
            raise BadValue("--consolidate", self.consolidate, "use best or last")
        if self.consolidate and not self.base:
            raise BadValue("--consolidate", self.consolidate, "needs --base REV")
        if self.base and not self.consolidate:
            raise BadValue("--base", self.base, "only means something with --consolidate")
        if self.consolidate == "best" and not self.pin_best:
            raise BadValue("--consolidate", "best", "needs --pin-best METRIC to know the best")
        if self.end_marker is not None and (
            not self.end_marker or Path(self.end_marker).name != self.end_marker
        ):
            raise BadValue("--end-marker", self.end_marker, "must be a file name in DIR")
        try:
            self.message.format(run="", checkpoint="")
        except (KeyError, IndexError, ValueError):
            raise BadValue("message", self.message, "use only {run} and {checkpoint}") from None

    @property
    def metric(self) -> str | None:
        """The metric as the Trainer logs it (``eval_`` prefixed), or ``None``."""
        if not self.pin_best:
            return None
        return self.pin_best if self.pin_best.startswith("eval_") else f"eval_{self.pin_best}"


def checkpoint_step(name: str) -> int | None:
    """The step a checkpoint's name ends with (``checkpoint-300``, ``step_300``), or ``None``."""
    m = re.search(r"(\d+)\Z", name)
    return int(m.group(1)) if m else None


def _order(name: str) -> tuple[int, str]:
    step = checkpoint_step(name)
    return (step if step is not None else -1, name)


@dataclass
class _Item:
    changed: float
    """``time.monotonic()`` of the last change seen."""
    moved: bool = False
    """Renamed into the folder: complete at once."""
    failed: bool = False
    """Its commit failed; tried again only after it changes."""


@dataclass
class _State:
    committed: dict[str, str] = field(default_factory=dict)
    """Checkpoint folder name to the id of its version."""
    last: str | None = None
    """The folder name of the committed checkpoint with the highest step."""
    best: tuple[float, str] | None = None
    """The best metric value so far and the version id holding it."""
    ended: bool = False
    """The run ended and was consolidated (or consolidation was given up)."""
    push_due: float | None = None
    """``time.monotonic()`` at which a push is due; ``None``: nothing to push."""


class Watcher:
    """Commit the checkpoints that appear in ``folder`` into ``repo``.

    Call :meth:`run` (it returns when :meth:`request_stop` is called, from a signal handler or
    another thread, or with ``once`` when what is there is done). A stop request never
    interrupts a commit: the one in progress finishes first.

    Args:
        repo: the repository.
        folder: the folder a training run writes checkpoints into.
        options: what to do; see :class:`WatchOptions`.
        emit: called with one event per commit, consolidation and push: ``{"event": "commit",
            "version", "path", "steps", "loss", "id", "checkpoint", "unchanged"}``,
            ``{"event": "consolidate", "version", "id", "base", "adapter",
            "adapter_version"}``, ``{"event": "push", "remote", "versions", "objects",
            "bytes"}`` (or ``{"event": "push", "remote", "error"}``), and ``{"event":
            "error", "path", "message", "kind"}`` for a commit or consolidation that failed.

    Raises:
        PathNotFound: ``folder`` is not a directory.
        BadValue: malformed options.
    """

    def __init__(
        self,
        repo: Repository,
        folder: str | os.PathLike[str],
        options: WatchOptions,
        emit: Callable[[Event], None],
    ) -> None:
        options.check()
        path = Path(folder)
        if not path.is_dir():
            raise PathNotFound(str(folder))
        self.folder = path.resolve()
        self.repo = repo
        self.options = options
        self.run_name = options.run or self.folder.name
        self.emit = emit
        self.metric = options.metric
        gib = options.greater_is_better
        self.greater = gib if gib is not None else not (self.metric or "").endswith("loss")
        self.stop = threading.Event()
        self.errors: list[VaultError] = []
        """The errors reported as ``error`` events, in order."""
        self._wake = threading.Condition()
        self._items: dict[str, _Item] = {}
        self.state = _State()

    def request_stop(self) -> None:
        """Ask :meth:`run` to return once the commit in progress (if any) is done.

        Safe in a signal handler: it sets an event and wakes the loop only if that needs no wait.
        """
        self.stop.set()
        if self._wake.acquire(blocking=False):
            try:
                self._wake.notify_all()
            finally:
                self._wake.release()

    # -- what the repository records -------------------------------------------------------

    def _load_state(self) -> None:
        """Read what earlier watchers (or commits) of this run committed, and whether the run
        was already consolidated."""
        adapters: set[str] = set()
        for info in self.repo.log(all=True):
            lineage = info.meta.get("lineage") if isinstance(info.meta, dict) else None
            if isinstance(lineage, dict) and isinstance(lineage.get("adapter"), str):
                adapters.add(lineage["adapter"])
            if info.run != self.run_name or not info.checkpoint:
                continue
            self._note_committed(info.checkpoint, info.id)
        if self.options.consolidate and adapters & set(self.state.committed.values()):
            self.state.ended = True
        if self.metric:
            self.state.best = self._pinned_best()
            for name, oid in sorted(self.state.committed.items(), key=lambda kv: _order(kv[0])):
                # A watcher killed between a commit and its pin: the folder says what it lost.
                self._consider_best(self.folder / name, oid, checkpoint_step(name))

    def _note_committed(self, name: str, oid: str) -> None:
        self.state.committed.setdefault(name, oid)
        if self.state.last is None or _order(name) > _order(self.state.last):
            self.state.last = name

    def _pinned_best(self) -> tuple[float, str] | None:
        wanted = best_pin_name(self.run_name)
        for pin in self.repo.pins():
            if pin.name != wanted:
                continue
            m = re.match(rf"{re.escape(self.metric or '')}=(\S+) at step", pin.reason)
            if m:
                try:
                    return float(m.group(1)), pin.id
                except ValueError:
                    return None
        return None

    # -- file events -----------------------------------------------------------------------

    def _item_of(self, path: str) -> str | None:
        try:
            rel = Path(path).relative_to(self.folder)
        except ValueError:
            return None
        if not rel.parts:
            return None
        name = rel.parts[0]
        return name if fnmatch.fnmatchcase(name, self.options.pattern) else None

    def on_event(self, kind: str, src: str | None, dest: str | None = None) -> None:
        """Note a file event under the folder: ``kind`` as watchdog names it (``created``,
        ``modified``, ``moved``, ``deleted``, ...), ``dest`` for a move (``src`` is ``None``
        for an item moved in from outside the folder)."""
        now = time.monotonic()
        with self._wake:
            for path in (src, dest):
                if not path:
                    continue
                name = self._item_of(path)
                if name is None:
                    continue
                item = self._items.setdefault(name, _Item(now))
                item.changed = now
                item.failed = False
                if kind == "moved" and path == dest and Path(path).parent == self.folder:
                    item.moved = True
            self._wake.notify_all()

    def _scan(self) -> None:
        """Take in what the folder holds now (at start)."""
        now_wall, now = time.time(), time.monotonic()
        for entry in sorted(self.folder.iterdir(), key=lambda p: _order(p.name)):
            name = entry.name
            if not fnmatch.fnmatchcase(name, self.options.pattern) or name in self._items:
                continue
            age = max(0.0, now_wall - _newest_change(entry))
            with self._wake:
                self._items.setdefault(name, _Item(now - age))

    # -- the loop ----------------------------------------------------------------------------

    def _ready(self, name: str, item: _Item) -> bool | None:
        """True when complete, False when not yet, None when it is gone."""
        path = self.folder / name
        if not path.exists():
            return None
        if item.moved:
            return True
        now, now_wall = time.monotonic(), time.time()
        newest = _newest_change(path)
        if newest <= now_wall + 1.0:  # a time in the future (a skewed clock) says nothing
            item.changed = max(item.changed, now - max(0.0, now_wall - newest))
        if now - item.changed < self.options.settle:
            return False
        if path.is_dir() and fnmatch.fnmatchcase(name, TRAINER_FOLDER):
            return (path / TRAINER_STATE).is_file()
        return True

    def run(self) -> None:
        """Watch until :meth:`request_stop` (or, with ``once``, until what is there is done).

        Raises:
            MissingExtra: watchdog is not installed (not with ``once``, which needs no events).
            VaultError: of a kind in :data:`FATAL_KINDS`: the repository is damaged or the
                disk is full.
        """
        self._load_state()
        observer = None if self.options.once else self._observe()
        try:
            self._scan()  # after the observer starts: nothing falls between the two
            self._loop()
        finally:
            if observer is not None:
                observer.stop()
                observer.join(5)

    def _observe(self) -> Any:
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            raise MissingExtra("vault watch", "watchdog", "watch") from None
        watcher = self

        class Handler(FileSystemEventHandler):  # type: ignore[misc]
            def on_any_event(self, event: Any) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                src = os.fsdecode(event.src_path) if event.src_path else None
                dest = getattr(event, "dest_path", "")
                watcher.on_event(event.event_type, src, os.fsdecode(dest) if dest else None)

        if sys.platform.startswith("linux"):
            from watchdog.observers.inotify import InotifyObserver

            # Full events: a folder renamed in from outside is a move, not a creation.
            observer = InotifyObserver(generate_full_events=True)
        else:
            observer = Observer()
        observer.schedule(Handler(), str(self.folder), recursive=True)
        observer.daemon = True
        observer.start()
        return observer

    def _loop(self) -> None:
        while not self.stop.is_set():
            with self._wake:
                pending = sorted(
                    (n for n, i in self._items.items() if n not in self.state.committed),
                    key=_order,
                )
            waiting: list[str] = []
            for name in pending:
                if self.stop.is_set():
                    return
                with self._wake:
                    item = self._items.get(name)
                if item is None or item.failed:
                    continue
                verdict = self._ready(name, item)
                if verdict is None:
                    with self._wake:
                        self._items.pop(name, None)
                elif verdict:
                    self._commit(name)
                else:
                    waiting.append(name)
            if self.stop.is_set():
                return
            if not waiting:
                self._maybe_end()
            self._maybe_push()
            if self.options.once and (not waiting or self._stale(waiting)):
                return
            self._sleep(waiting)

    def _sleep(self, waiting: list[str]) -> None:
        now = time.monotonic()
        with self._wake:
            deadlines = [self._items[n].changed + self.options.settle for n in waiting]
            if self.state.push_due is not None:
                deadlines.append(self.state.push_due)
            if self.stop.is_set():
                return
            timeout = min(deadlines, default=now + MAX_WAIT) - now
            self._wake.wait(min(MAX_WAIT, max(0.02, timeout)))

    def _stale(self, waiting: list[str]) -> bool:
        """With ``once``: whether every waiting item is quiet and still not complete (a Trainer
        folder without its ``trainer_state.json``), so that waiting longer gains nothing."""
        now = time.monotonic()
        with self._wake:
            return all(now - self._items[n].changed >= self.options.settle for n in waiting)

    # -- one checkpoint ------------------------------------------------------------------------

    def _fail(self, path: Path, exc: VaultError) -> None:
        if exc.kind in FATAL_KINDS:
            raise exc
        self.errors.append(exc)
        self.emit({"event": "error", "path": str(path), "message": exc.message, "kind": exc.kind})

    def _commit(self, name: str) -> None:
        path = self.folder / name
        trainer = (path / TRAINER_STATE).is_file()
        try:
            result = self.repo.commit(
                path,
                self.options.message.format(run=self.run_name, checkpoint=name),
                run=self.run_name,
                exclude=list(self.options.exclude),
                # A plain loop's step_N/ has no trainer_state.json: its name gives the step.
                steps=None if trainer else checkpoint_step(name),
            )
        except VaultError as exc:
            with self._wake:
                self._items[name].failed = True
            self._fail(path, exc)
            return
        self._note_committed(name, result.id)
        training = self.repo.parts.store.get_version(Oid(result.id)).training
        self.emit(
            {
                "event": "commit",
                "version": result.version,
                "path": str(path),
                "steps": training.get("steps"),
                "loss": training.get("loss"),
                "id": result.id,
                "checkpoint": name,
                "unchanged": result.unchanged,
            }
        )
        if self.metric:
            self._consider_best(path, result.id, training.get("steps"))
        if self.options.push:
            self.state.push_due = time.monotonic()

    def _consider_best(self, path: Path, oid: str, steps: int | None) -> None:
        value = _metric_at(path / TRAINER_STATE, self.metric or "", steps)
        if value is None:
            return
        best = self.state.best
        if best is not None:
            if best[1] == oid:
                return
            better = value > best[0] if self.greater else value < best[0]
            if not better:
                return
        try:
            self.repo.pin(
                oid,
                type=BEST_TYPE,
                reason=f"{self.metric}={value!r} at step {steps}",
                name=best_pin_name(self.run_name),
                replace=True,
            )
        except VaultError as exc:  # e.g. a tag holds the name: commits go on, the pin does not
            self._fail(path, exc)
            return
        self.state.best = (value, oid)

    # -- the end of the run, and pushes ----------------------------------------------------------

    def _maybe_end(self) -> None:
        """Consolidate once the run has ended (its final checkpoint, or the end marker)."""
        if self.state.ended or not self.options.consolidate or self.state.last is None:
            return
        if not self._run_ended():
            return
        self.state.ended = True
        if self.options.consolidate == "best" and self.state.best is not None:
            adapter = self.state.best[1]
        else:
            adapter = self.state.committed[self.state.last]
        try:
            result = self.repo.consolidate(
                str(self.options.base),
                adapter,
                message=f"{self.run_name}: {self.options.consolidate} checkpoint merged into"
                f" {self.options.base}",
            )
        except VaultError as exc:
            self._fail(self.folder, exc)
            return
        self.emit(
            {
                "event": "consolidate",
                "version": result.version,
                "id": result.id,
                "base": str(self.options.base),
                "adapter": adapter,
                "adapter_version": result.adapter_version,
            }
        )
        if self.options.push:
            self.state.push_due = time.monotonic()

    def _run_ended(self) -> bool:
        marker = self.options.end_marker
        if marker and (self.folder / marker).exists():
            return True
        state = _read_json(self.folder / str(self.state.last) / TRAINER_STATE)
        steps, most = state.get("global_step"), state.get("max_steps")
        return isinstance(steps, int) and isinstance(most, int) and 0 < most <= steps

    def _maybe_push(self) -> None:
        due = self.state.push_due
        if due is None or time.monotonic() < due or not self.options.push:
            return
        try:
            result = self.repo.push(self.options.push)
        except VaultError as exc:
            if exc.kind == "damaged":
                raise
            self.state.push_due = time.monotonic() + self.options.push_retry
            self.emit({"event": "push", "remote": self.options.push, "error": exc.message})
            return
        self.state.push_due = None
        self.emit(
            {
                "event": "push",
                "remote": result.remote,
                "versions": result.versions,
                "objects": result.objects,
                "bytes": result.bytes,
            }
        )


def _newest_change(path: Path) -> float:
    """The latest modification or status-change time of ``path`` and everything under it (the
    status-change time cannot be set back by a copy that keeps modification times)."""

    def when(p: str) -> float:
        st = os.lstat(p)
        return max(st.st_mtime, st.st_ctime)

    try:
        newest = when(str(path))
    except OSError:
        return 0.0
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for n in (*dirs, *files):
                # One removed meanwhile: its removal was a change of its folder.
                with contextlib.suppress(OSError):
                    newest = max(newest, when(os.path.join(root, n)))
    return newest


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _metric_at(state_path: Path, metric: str, steps: int | None) -> float | None:
    """The value of ``metric`` that ``trainer_state.json`` logged at ``steps``, else the last
    value it logged; ``None`` when it logged none (or no finite one)."""
    history = _read_json(state_path).get("log_history")
    if not isinstance(history, list):
        return None
    found: float | None = None
    for entry in history:
        if not isinstance(entry, dict) or metric not in entry:
            continue
        try:
            value = float(entry[metric])
        except (TypeError, ValueError):
            continue
        if not math.isfinite(value):
            continue
        if steps is not None and entry.get("step") == steps:
            return value
        found = value
    return found
