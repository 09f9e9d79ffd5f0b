"""``vault log`` and ``vault show``."""

from __future__ import annotations

import os
import sys

import click

from .common import Context, PathArg, emit_json, human_bytes, json_option, pass_ctx, quote


def _date(created: str) -> str:
    return created.replace("T", " ")[:16]


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _width() -> int | None:
    """The width ``log`` fits its lines to: ``$COLUMNS`` when set, else the terminal's when
    stdout is one; ``None`` (no limit) when stdout is a pipe or a file, as ``git log``."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        import shutil

        return shutil.get_terminal_size().columns
    return None


MIN_DESCRIPTION = 12
"""Characters of a description ``log`` keeps however narrow the terminal: a line a little too
long is better than a description reduced to an ellipsis."""


RUN_WIDTH = 16
"""Characters of a run's name ``log`` shows when it fits a width (the whole name when piped)."""


def _fit_run(run: str, width: int | None) -> str:
    if width is None or len(run) <= RUN_WIDTH:
        return run
    return run[: RUN_WIDTH - 1] + "\u2026"


def _fit(text: str, room: int) -> str:
    """``text`` cut to ``room`` characters (at least :data:`MIN_DESCRIPTION`), ending in an
    ellipsis when cut."""
    room = max(room, MIN_DESCRIPTION)
    return text if len(text) <= room else text[: room - 1] + "\u2026"


@click.command()
@click.argument("rev", required=False)
@click.option("-n", "limit", type=click.IntRange(min=0), help="Show at most N versions.")
@click.option(
    "--all", "show_all", is_flag=True, help="Also list backups and deleted versions pins keep."
)
@click.option("--run", metavar="NAME", help="Only the versions of the training run NAME.")
@click.option(
    "--meta",
    "metas",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only versions whose metadata (or training record) has KEY=VALUE (repeatable).",
)
@json_option
@pass_ctx
def log(
    ctx: Context,
    rev: str | None,
    limit: int | None,
    show_all: bool,
    run: str | None,
    metas: tuple[str, ...],
    as_json: bool,
) -> None:
    """Versions, newest first: every named version of every run, or REV's history (its first
    parents, within its run). --run and --meta filter. A RUN column appears when the versions
    listed belong to more than one run.

    On a terminal (or with $COLUMNS set) each line fits the width, the description cut with an
    ellipsis (keeping at least 12 characters); piped, lines are whole. --json and 'vault show'
    give the full description.
    """
    from .commit import parse_meta

    meta = parse_meta(metas)
    entries = ctx.repo(writes=False).log(rev, limit=limit, all=show_all, run=run, meta=meta)
    if as_json:
        emit_json([e.to_json() for e in entries])
        return
    if not entries:
        if limit != 0:  # with -n 0 nothing was asked for, and nothing is printed
            click.echo("no versions yet")
        return
    width = _width()
    rows: list[tuple[str, ...]] = [
        (
            e.version or e.id[:12],
            e.id[:12],
            _date(e.created),
            _fit_run(e.run or "-", width),
            "-" if e.steps is None else str(e.steps),
            _loss(e.loss),
            e.base_model or "-",
            human_bytes(e.bytes),
            ",".join(e.tags) or "-",
            ",".join(e.pins) or "-",
            e.description.splitlines()[0] if e.description else "",
        )
        for e in entries
    ]
    # The description comes last: it is the one column of free length.
    header: tuple[str, ...] = (
        "VERSION", "ID", "DATE", "RUN", "STEPS", "LOSS", "BASE_MODEL", "SIZE", "TAGS", "PINS",
        "DESCRIPTION",
    )  # fmt: skip
    if len({e.run for e in entries}) < 2:  # one run (or none): nothing for a column to tell
        header = header[:3] + header[4:]
        rows = [r[:3] + r[4:] for r in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for r in [header, *rows]:
        cells = "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True))
        text = r[-1] if width is None else _fit(r[-1], width - len(cells) - 2)
        click.echo(f"{cells}  {text}".rstrip())


@click.command()
@click.argument("rev", metavar="REV[:PATH]")
@click.option(
    "--plot",
    metavar="FILE.png",
    type=PathArg(dir_okay=False),
    help="Render the learning curve to an image (needs matplotlib).",
)
@click.option(
    "--compare",
    "other",
    metavar="REV",
    help="Show REV beside it: final figures and learning curves side by side.",
)
@json_option
@pass_ctx
def show(ctx: Context, rev: str, plot: str | None, other: str | None, as_json: bool) -> None:
    """One version: its metadata, training data, learning curve and files; or, given
    REV:PATH, one file of it: size, id, mode and, for a safetensors file, its tensors.

    A file name that holds a control character (a newline, a tab), a double quote or a
    backslash is printed in double quotes with C-style escapes, as git does: "a\\nb".
    --plot says on stderr where it wrote the image. --compare B prints A and B side by side
    (--json: {"a": A's show --json, "b": B's}).
    """
    from ..ops.files import split_rev_path

    rev, path = split_rev_path(rev)
    if other is not None:
        if path is not None or plot is not None:
            hint = "compares versions, without --plot ('vault plot A B -o FILE' draws both)"
            raise click.BadParameter(hint, param_hint="--compare")
        repo = ctx.repo(writes=False)
        a, b = repo.show(rev), repo.show(other)
        if as_json:
            emit_json({"a": a.to_json(), "b": b.to_json()})
            return
        from .runs import print_compare

        print_compare(a, b)
        return
    if path is not None:
        if plot is not None:
            raise click.BadParameter("plots a version's curve, not a file's", param_hint="--plot")
        _show_file(ctx, rev, path, as_json)
        return
    info = ctx.repo(writes=False).show(rev)
    if plot is not None:
        from ..meta import plot_curve

        out = plot_curve(info.curve or [], plot, title=info.version or info.id[:12])
        click.echo(f"wrote the learning curve to {os.path.abspath(out)}", err=True)
    if as_json:
        emit_json(info.to_json())
        return
    click.echo(f"version  {info.version or '-'}")
    click.echo(f"id       {info.id}")
    click.echo(f"created  {info.created}")
    click.echo(f"parents  {', '.join(info.parents) or '-'}")
    click.echo(f"tags     {', '.join(info.tags) or '-'}")
    click.echo(f"size     {human_bytes(info.bytes)} in {info.file_count} files")
    click.echo(f"pins     {', '.join(info.pins) or '-'}")
    from ..meta import flatten

    for k, v in flatten(info.meta):
        click.echo(f"meta     {k} = {v}")
    _show_training(info)
    _show_excluded(info.excluded)
    click.echo("")
    for line in info.message.splitlines() or [""]:
        click.echo(f"    {line}")
    click.echo("")
    for f in info.files or []:
        if f.kind == "link":
            click.echo(f"  link  {quote(f.path)} -> {quote(f.target or '')}")
        else:
            click.echo(f"  {human_bytes(f.size):>10}  {quote(f.path)}")


def _show_file(ctx: Context, rev: str, path: str, as_json: bool) -> None:
    """``show REV:PATH``."""
    detail = ctx.repo(writes=False).file_detail(rev, path)
    if as_json:
        emit_json(detail.to_json())
        return
    click.echo(f"path     {quote(detail.path)}")
    click.echo(f"version  {rev}")
    click.echo(f"size     {human_bytes(detail.size)} ({detail.size} bytes)")
    click.echo(f"id       {detail.id}")
    click.echo(f"mode     {detail.mode:04o}")
    if detail.tensors is not None:
        click.echo(f"tensors  {len(detail.tensors)}")
        for t in detail.tensors:
            shape = "[" + ", ".join(str(d) for d in t.shape) + "]"
            click.echo(f"  {t.dtype:<8} {shape:<16} {quote(t.name)}")


def _show_training(info) -> None:  # type: ignore[no-untyped-def]
    """The training lines of ``show``: steps, losses, base model, data, snapshots, curve."""
    from ..meta import curve_lines

    if info.steps is not None:
        click.echo(f"steps    {info.steps}")
    if info.loss is not None or info.eval_loss is not None:
        evals = "" if info.eval_loss is None else f" (eval {_loss(info.eval_loss)})"
        click.echo(f"loss     {_loss(info.loss)}{evals}")
    if info.base_model:
        of = f" ({info.base_model_id[:12]})" if info.base_model_id else ""
        click.echo(f"base     {info.base_model}{of}")
    if info.snapshots is not None:
        click.echo(f"snapshots {info.snapshots}")
    for d in info.data:
        stored = "stored" if d.get("stored") else "not stored"
        size, digest = human_bytes(d["size"]), d["blake3"][:16]
        click.echo(f"data     {quote(d['path'])}  {size}  blake3 {digest}  {stored}")
    for line in curve_lines(info.curve or []):
        click.echo(f"curve    {line}")


def _show_excluded(excluded: list[dict]) -> None:
    """The lines of ``show`` naming what the commit left out by rule: ``excluded runs/  3
    files, 1.2 MiB  (rule runs/ from .vaultignore)``. The records are read as loosely as any
    field a reader may not know."""
    for e in excluded:
        rule = f"rule {e.get('rule')} from {e.get('source')}" if e.get("rule") else "several rules"
        files, size = e.get("files"), e.get("bytes")
        what = f"{files} file{'' if files == 1 else 's'}"
        what += f", {human_bytes(size if isinstance(size, int) else 0)}"
        click.echo(f"excluded {quote(str(e.get('path')))}  {what}  ({rule})")


COMMANDS = [log, show]
