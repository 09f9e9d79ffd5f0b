"""``vault runs`` and ``vault plot``; and the side-by-side lines of ``vault show A --compare B``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .common import Context, PathArg, emit_json, human_bytes, json_option, pass_ctx

if TYPE_CHECKING:
    from ..ops.history import VersionInfo

NAMES_SHOWN = 5
"""Version names ``runs`` prints for a run; a longer run shows its first and last two."""


def _num(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _names(names: list[str]) -> str:
    if len(names) <= NAMES_SHOWN:
        return ",".join(names)
    return ",".join(names[:2]) + ",\u2026," + ",".join(names[-2:])


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        cells = "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True))
        click.echo(f"{cells}  {r[-1]}".rstrip())


@click.command()
@json_option
@pass_ctx
def runs(ctx: Context, as_json: bool) -> None:
    """The training runs, in the order they started: versions (count and names), first and
    last step, best and last loss (and eval_loss when evaluated), the best pin (best-RUN) and
    the date of the last version.

    Versions that record no run (made before vault recorded runs, consolidated models) are
    not listed here; 'vault log' lists them, and a closing line counts them.
    """
    repo = ctx.repo(writes=False)
    found = repo.runs()
    if as_json:
        emit_json(found)
        return
    outside = sum(1 for e in repo.log() if e.run is None)
    if not found:
        click.echo("no runs yet")
    else:
        evals = any(r.best_eval_loss is not None for r in found)
        header: tuple[str, ...] = ("RUN", "COUNT", "STEPS", "BEST_LOSS", "LAST_LOSS")
        header += ("BEST_EVAL", "LAST_EVAL") if evals else ()
        rows: list[tuple[str, ...]] = [(*header, "BEST", "LAST_DATE", "VERSIONS")]
        for r in found:
            steps = f"{_num(r.first_step)}..{_num(r.last_step)}"
            row: tuple[str, ...] = (r.run, str(r.count), steps)
            row += (_num(r.best_loss), _num(r.last_loss))
            row += (_num(r.best_eval_loss), _num(r.last_eval_loss)) if evals else ()
            date = r.last_date.replace("T", " ")[:16]
            rows.append((*row, r.best or "-", date, _names(r.versions)))
        _table(rows)
    if outside:
        noun = "version records" if outside == 1 else "versions record"
        click.echo(f"({outside} named {noun} no run: 'vault log' lists them)")


@click.command()
@click.argument("revs", metavar="REV...", nargs=-1)
@click.option(
    "--run",
    "run_names",
    multiple=True,
    metavar="NAME",
    help="Also draw the whole run NAME: the union of its versions' curves (repeatable).",
)
@click.option(
    "--metric",
    default="loss",
    show_default=True,
    metavar="NAME",
    help="The logged metric to draw: loss, eval_loss, learning_rate, grad_norm, ...",
)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    metavar="FILE.png",
    type=PathArg(dir_okay=False),
    help="The image to write (PNG; .svg or .pdf by their suffix).",
)
@json_option
@pass_ctx
def plot(
    ctx: Context,
    revs: tuple[str, ...],
    run_names: tuple[str, ...],
    metric: str,
    output: str,
    as_json: bool,
) -> None:
    """Overlay the learning curves of versions (REV...) and whole runs (--run NAME) in one
    image, one line each, the legend by run and version. Needs matplotlib (the 'ml' extra).

    Prints where it wrote the image and each line's points; --json prints {"file", "metric",
    "series": [{"label", "run", "version", "metric", "points"}]}. A version that did not log
    the metric is listed with 0 points; when none of them did, nothing is written and the
    command fails with exit code 3.
    """
    result = ctx.repo(writes=False).plot(list(revs), output, runs=list(run_names), metric=metric)
    if as_json:
        emit_json(result.to_json())
        return
    drawn = sum(1 for s in result.series if s.points)
    click.echo(f"wrote {metric} of {drawn} series to {result.file}")
    width = max(len(s.label) for s in result.series)
    for s in result.series:
        what = f"{len(s.points)} points" if s.points else f"logged no {metric}"
        click.echo(f"  {s.label.ljust(width)}  {what}")


def print_compare(a: VersionInfo, b: VersionInfo) -> None:
    """``show A --compare B``: the final figures and the learning curves' sparklines of two
    versions, side by side."""
    from ..meta import series, sparkline

    def figures(info: VersionInfo) -> list[str]:
        return [
            info.version or info.id[:12],
            info.id[:12],
            info.created.replace("T", " ")[:16],
            info.run or "-",
            _num(info.steps),
            _num(info.loss),
            _num(info.eval_loss),
            f"{human_bytes(info.bytes)} in {info.file_count} files",
            info.base_model or "-",
        ]

    def curve(info: VersionInfo, key: str) -> str:
        points = series(info.curve or [], key)
        if not points:
            return "-"
        values = [v for _, v in points]
        return (
            f"{_num(values[0])} {sparkline(values)} {_num(values[-1])}"
            f" ({len(values)} points to step {int(points[-1][0])})"
        )

    labels = ["", "id", "created", "run", "steps", "loss", "eval_loss", "size", "base"]
    left, right = figures(a), figures(b)
    for key in ("loss", "eval_loss"):
        labels.append(f"curve {key}")
        left.append(curve(a, key))
        right.append(curve(b, key))
    _table([(label, x, y) for label, x, y in zip(labels, left, right, strict=True)])


COMMANDS = [runs, plot]
