"""Training runs: the versions of each run summed up, their learning curves, each run's best pin.

A version belongs to the run its ``training.run`` names (``commit --run``, by default the folder
holding the committed checkpoint). Versions that record no run (made before vault recorded runs,
backups, consolidated models) belong to none and are left out of :func:`runs`; ``vault log``
lists them. Only named versions count: a deleted version has left its run.

A run's learning curve is the union of its versions' curves (each the Trainer's
``log_history`` at that checkpoint): a Trainer's later checkpoint holds the whole history so
far, so the union equals the last version's curve, and it still holds every point when a
version records no curve or a run was resumed elsewhere. Where two versions logged the same
metric at the same step, the newer one's value is taken.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadValue, NoMetric, UnknownRun
from ..meta import plot_lines, series
from . import history
from .history import VersionInfo
from .parts import Parts
from .pins import pins as list_pins

BEST_PREFIX = "best-"
BEST_TYPE = "best"
"""The type of a run's best pin (``best-<run>``)."""
PIN_NAME_MAX = 128

_OUTSIDE_NAME = re.compile(r"[^A-Za-z0-9._-]")

CurveReader = Callable[[VersionInfo], list[dict[str, Any]]]
"""Reads a version's learning curve (``show``'s ``curve``); the web view passes a memoized one."""


def best_pin_name(run: str) -> str:
    """The name of the pin that keeps the best checkpoint of ``run``: ``best-<run>``.

    Every character of ``run`` outside ``[A-Za-z0-9._-]`` becomes ``-``; leading and trailing
    ``-`` and ``.`` are stripped (a run left empty is called ``run``); the whole name is cut to
    128 characters, the longest pin name. Two runs whose names differ only in such characters
    (``exp 1``, ``exp/1``) share a best pin.

    >>> best_pin_name("exp1"), best_pin_name("my run/2"), best_pin_name("..")
    ('best-exp1', 'best-my-run-2', 'best-run')
    """
    part = _OUTSIDE_NAME.sub("-", run).strip("-.") or "run"
    return (BEST_PREFIX + part)[:PIN_NAME_MAX]


@dataclass
class RunInfo:
    """One training run as ``vault runs --json`` prints it.

    Attributes:
        run: the run's name.
        versions: its named versions, oldest first.
        count: how many.
        first_step: ``steps`` of its oldest version that records them; ``last_step``: of its
            newest.
        best_loss: the lowest final training ``loss`` of its versions; ``last_loss``: that of its
            newest version recording one. ``best_eval_loss``, ``last_eval_loss``: the same for
            ``eval_loss``.
        last_date: when its newest version was made (ISO 8601).
        best: the version the pin ``best-<run>`` keeps (its name, else its id), or ``None``.
    """

    run: str
    versions: list[str]
    count: int
    first_step: int | None
    last_step: int | None
    best_loss: float | None
    last_loss: float | None
    best_eval_loss: float | None
    last_eval_loss: float | None
    last_date: str
    best: str | None = None


def runs(parts: Parts, entries: Sequence[VersionInfo] | None = None) -> list[RunInfo]:
    """Every run with a named version, in the order they started (by their first version).

    Args:
        entries: ``log``'s listing to sum up (every named version, newest first); read when
            not given.
    """
    listed = history.log(parts) if entries is None else entries
    grouped: dict[str, list[VersionInfo]] = {}
    for e in reversed(listed):  # oldest first
        if e.run is not None and e.version is not None:
            grouped.setdefault(e.run, []).append(e)
    pinned = {p.name: p.version or p.id for p in list_pins(parts)}
    return [_summary(run, found, pinned.get(best_pin_name(run))) for run, found in grouped.items()]


def _summary(name: str, found: list[VersionInfo], best: str | None) -> RunInfo:
    steps = [e.steps for e in found if e.steps is not None]
    losses = [e.loss for e in found if e.loss is not None]
    evals = [e.eval_loss for e in found if e.eval_loss is not None]
    return RunInfo(
        run=name,
        versions=[e.version or e.id for e in found],
        count=len(found),
        first_step=steps[0] if steps else None,
        last_step=steps[-1] if steps else None,
        best_loss=min(losses, default=None),
        last_loss=losses[-1] if losses else None,
        best_eval_loss=min(evals, default=None),
        last_eval_loss=evals[-1] if evals else None,
        last_date=found[-1].created,
        best=best,
    )


def unrun(entries: Sequence[VersionInfo]) -> int:
    """How many of ``entries`` (named versions) belong to no run."""
    return sum(1 for e in entries if e.run is None and e.version is not None)


def run_versions(parts: Parts, run: str) -> list[VersionInfo]:
    """The named versions of ``run``, oldest first.

    Raises:
        UnknownRun: ``run`` has no named version.
    """
    found = history.log(parts, run=run)
    if not found:
        raise UnknownRun(run, sorted({r.run for r in runs(parts)}))
    return found[::-1]


# -- learning curves -----------------------------------------------------------------------------


@dataclass
class CurveSeries:
    """One line of a plot: a metric of a version, or of a whole run, by step.

    Attributes:
        label: the legend's text: run and version (``exp1 v003``), or run and its versions'
            range (``exp1 v001..v003``) for a whole run.
        run: the run, or ``None`` for a version that records none.
        version: the version (for a whole run, its newest).
        metric: the metric drawn.
        points: ``(step, value)``, by step.
    """

    label: str
    run: str | None
    version: str
    metric: str
    points: list[tuple[float, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{label, run, version, metric, points}``, ``points`` being how many were drawn."""
        return {
            "label": self.label,
            "run": self.run,
            "version": self.version,
            "metric": self.metric,
            "points": len(self.points),
        }


@dataclass
class PlotResult:
    """What ``vault plot`` drew.

    Attributes:
        file: the image written (absolute path).
        metric: the metric drawn.
        series: every series asked for, in the order asked; one with no point (that version
            logged no such metric) is listed but not drawn.
    """

    file: str
    metric: str
    series: list[CurveSeries]

    def to_json(self) -> dict[str, Any]:
        """``{file, metric, series: [...]}`` (see :meth:`CurveSeries.to_json`)."""
        return {
            "file": self.file,
            "metric": self.metric,
            "series": [s.to_json() for s in self.series],
        }


def show_curve(parts: Parts) -> CurveReader:
    """A :data:`CurveReader` that reads each version's curve as ``show`` does (verified)."""

    def read(info: VersionInfo) -> list[dict[str, Any]]:
        return history.show(parts, info.id).curve or []

    return read


def run_points(
    versions: Sequence[VersionInfo], metric: str, read_curve: CurveReader
) -> list[tuple[float, float]]:
    """``(step, value)`` of ``metric`` over the union of ``versions``' curves (oldest first):
    where two logged the same step, the newer value wins."""
    return union_points([read_curve(info) for info in versions], metric)


def union_points(curves: Sequence[list[dict[str, Any]]], metric: str) -> list[tuple[float, float]]:
    """``(step, value)`` of ``metric`` over the union of ``curves`` (oldest first), by step;
    where two logged the same step, the later curve's value wins."""
    by_step: dict[float, float] = {}
    for curve in curves:
        by_step.update(series(curve, metric))
    return sorted(by_step.items())


def curves(
    parts: Parts,
    revs: Sequence[str] = (),
    run_names: Sequence[str] = (),
    *,
    metric: str = "loss",
    read_curve: CurveReader | None = None,
) -> list[CurveSeries]:
    """The series of ``metric`` for each version of ``revs`` and each run of ``run_names``
    (its whole curve), in that order; every name is resolved before any curve is read.

    Raises:
        BadValue: neither a version nor a run is named, or ``metric`` is empty.
        UnknownRevision: a revision names no version.
        UnknownRun: a run has no named version.
        NoMetric: none of them logged ``metric``.
    """
    if not revs and not run_names:
        raise BadValue("plot", "", "name at least one version (REV) or run (--run NAME)")
    if not metric.strip():
        raise BadValue("--metric", metric, "name a metric the Trainer logs, such as loss")
    read = read_curve or show_curve(parts)
    shown = [history.show(parts, rev) for rev in revs]
    whole = [(name, run_versions(parts, name)) for name in run_names]
    out: list[CurveSeries] = []
    logged: set[str] = set()
    for rev, info in zip(revs, shown, strict=True):
        curve = info.curve or []
        logged.update(k for entry in curve for k in entry)
        name = info.version or rev
        label = f"{info.run} {name}" if info.run else name
        out.append(CurveSeries(label, info.run, name, metric, series(curve, metric)))
    for name, versions in whole:
        first, last = versions[0].version or "", versions[-1].version or ""
        label = f"{name} {first}..{last}" if first != last else f"{name} {last}"
        run_curves = [read(info) for info in versions]
        logged.update(k for curve in run_curves for entry in curve for k in entry)
        out.append(CurveSeries(label, name, last, metric, union_points(run_curves, metric)))
    if not any(s.points for s in out):
        logged -= {"step", "epoch"}
        raise NoMetric(metric, [s.label for s in out], sorted(logged))
    return out


def plot(
    parts: Parts,
    revs: Sequence[str],
    run_names: Sequence[str],
    dest: str | os.PathLike[str],
    *,
    metric: str = "loss",
) -> PlotResult:
    """Draw ``metric`` of the versions ``revs`` and the runs ``run_names`` on one chart, one
    line each with a legend by run and version, to the image ``dest`` (its format from its
    suffix, PNG by default); see :func:`curves`.

    Raises:
        MissingExtra: matplotlib is not installed.
        PathNotFound: the folder of ``dest`` does not exist.
        BadValue: ``dest`` names an image format matplotlib does not write.
        NoMetric, UnknownRun, UnknownRevision: as :func:`curves`.
    """
    found = curves(parts, revs, run_names, metric=metric)
    lines = {s.label: s.points for s in found if s.points}
    out = plot_lines(lines, dest, title=metric, y_label=metric, what="plot", option="-o")
    return PlotResult(str(out.resolve()), metric, found)
