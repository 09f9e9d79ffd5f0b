"""``vault log`` and ``vault show``."""

from __future__ import annotations

import click

from .common import Context, emit_json, human_bytes, json_option, pass_ctx


def _date(created: str) -> str:
    return created.replace("T", " ")[:16]


@click.command()
@click.argument("rev", required=False)
@click.option("-n", "limit", type=click.IntRange(min=0), help="Show at most N versions.")
@json_option
@pass_ctx
def log(ctx: Context, rev: str | None, limit: int | None, as_json: bool) -> None:
    """History from REV (default latest), newest first."""
    entries = ctx.repo().log(rev, limit=limit)
    if as_json:
        emit_json([e.to_json() for e in entries])
        return
    if not entries:
        click.echo("no versions yet")
        return
    rows = [
        (
            e.version or e.id[:12],
            e.id[:12],
            _date(e.created),
            human_bytes(e.bytes),
            ", ".join(e.tags),
            e.message.splitlines()[0] if e.message else "",
        )
        for e in entries
    ]
    header = ("VERSION", "ID", "DATE", "SIZE", "TAGS", "MESSAGE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=False)) + "  " + r[5])


@click.command()
@click.argument("rev")
@json_option
@pass_ctx
def show(ctx: Context, rev: str, as_json: bool) -> None:
    """One version: its metadata and files."""
    info = ctx.repo().show(rev)
    if as_json:
        emit_json(info.to_json())
        return
    click.echo(f"version  {info.version or '-'}")
    click.echo(f"id       {info.id}")
    click.echo(f"created  {info.created}")
    click.echo(f"parents  {', '.join(info.parents) or '-'}")
    click.echo(f"tags     {', '.join(info.tags) or '-'}")
    click.echo(f"size     {human_bytes(info.bytes)} in {info.file_count} files")
    for k, v in sorted(info.meta.items()):
        click.echo(f"meta     {k} = {v}")
    click.echo("")
    for line in info.message.splitlines() or [""]:
        click.echo(f"    {line}")
    click.echo("")
    for f in info.files or []:
        if f.kind == "link":
            click.echo(f"  link  {f.path} -> {f.target}")
        else:
            click.echo(f"  {human_bytes(f.size):>10}  {f.path}")


COMMANDS = [log, show]
