"""``vault pin``, ``vault unpin``, ``vault delete`` and ``vault restore``."""

from __future__ import annotations

import functools
from typing import Any

import click

from .common import Context, PathArg, emit_json, human_bytes, json_option, pass_ctx


def pin_options(f, *, reason_required: bool = True):  # type: ignore[no-untyped-def]
    """``--type``, ``--reason``, ``--name`` and ``--expires``, shared by pin and backup."""
    for option in reversed(
        [
            click.option("--type", "pin_type", metavar="TYPE", help="The pin's type (one word)."),
            click.option(
                "--reason", metavar="TEXT", required=reason_required, help="Why it is kept."
            ),
            click.option("--name", metavar="NAME", help="The pin's name (default: generated)."),
            click.option(
                "--expires",
                metavar="WHEN",
                help="When cleanup may drop it: a duration (30d) or a date (2026-12-31).",
            ),
        ]
    ):
        f = option(f)
    return f


def describe_pin(p) -> str:  # type: ignore[no-untyped-def]
    """One line about a pin."""
    what = p.version or p.id[:12]
    return f"pin {p.name} ({p.type}) keeps {what}"


def print_unpinned(verb: str, pins: list[Any]) -> None:
    """One line per pin that cleanup or prune drops (or would: ``verb``)."""
    for p in pins:
        click.echo(f"{verb} {p.name} ({p.type}, {p.version or p.id[:12]}, {p.created[:10]})")


def print_pin_table(pins: list[Any]) -> None:
    """Pins as a table, one a line, or ``no pins``."""
    if not pins:
        click.echo("no pins")
        return
    header = ("NAME", "TYPE", "VERSION", "CREATED", "EXPIRES", "REASON")
    rows = [
        (
            p.name,
            p.type,
            p.version or p.id[:12],
            p.created.replace("T", " ")[:19],
            (p.expires or "-").replace("T", " ")[:19],
            p.reason.splitlines()[0] if p.reason else "-",
        )
        for p in pins
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@click.command()
@click.argument("rev", required=False)
@functools.partial(pin_options, reason_required=False)
@click.option("--replace", is_flag=True, help="Move an existing pin of that --name.")
@json_option
@pass_ctx
def pin(
    ctx: Context,
    rev: str | None,
    pin_type: str | None,
    reason: str | None,
    name: str | None,
    expires: str | None,
    replace: bool,
    as_json: bool,
) -> None:
    """Keep the version REV (and all it reaches) until the pin is removed; without REV, list
    the pins (of --type only, when given), oldest first, as 'vault backup list' does."""
    if rev is None:
        if reason or name or expires or replace:
            raise click.UsageError("--reason, --name, --expires and --replace need a REV to pin")
        pins = ctx.repo(writes=False).pins(pin_type)
        if as_json:
            emit_json(pins)
        else:
            print_pin_table(pins)
        return
    if reason is None:
        raise click.UsageError("Missing option '--reason'.")
    info = ctx.repo().pin(
        rev, type=pin_type or "manual", reason=reason, name=name, expires=expires, replace=replace
    )
    if as_json:
        emit_json(info)
    else:
        click.echo(describe_pin(info))


@click.command()
@click.argument("name")
@json_option
@pass_ctx
def unpin(ctx: Context, name: str, as_json: bool) -> None:
    """Remove the pin NAME; what only it kept becomes garbage for 'vault gc'."""
    info = ctx.repo().unpin(name)
    if as_json:
        emit_json(info)
    else:
        click.echo(f"removed pin {info.name} (was on {info.version or info.id[:12]})")


@click.command()
@click.argument("revs", metavar="REV...", nargs=-1, required=True)
@click.option("--confirm", is_flag=True, help="Really remove the versions' names and tags.")
@click.option("--reason", metavar="TEXT", help="Recorded on the pre_deletion pins.")
@json_option
@pass_ctx
def delete(
    ctx: Context, revs: tuple[str, ...], confirm: bool, reason: str | None, as_json: bool
) -> None:
    """Remove the names and tags of the versions REV..., after pinning each as pre_deletion
    (restorable until 'vault prune --execute' frees them). All or nothing: every REV must name
    a version with a name before any is deleted.

    With one REV, --json prints one object; with several, a list of them.
    """
    results = ctx.repo().delete_many(list(revs), confirm=confirm, reason=reason)
    if as_json:
        emit_json(results[0] if len(revs) == 1 else results)
        return
    for res in results:
        tags = f" and tags {', '.join(res.tags)}" if res.tags else ""
        click.echo(f"deleted {res.version}{tags}; still kept by pin {res.pin.name}")
    if results[-1].latest is None:
        click.echo("latest: none (no named version is left)")
    click.echo("'vault prune' shows what unpinning the automatic backups, these among them, frees")


def print_restore(res) -> None:  # type: ignore[no-untyped-def]
    """The human summary of a restore."""
    if res.backup is not None:
        click.echo(f"saved the previous content as {describe_pin(res.backup)}")
    what = res.version or res.id[:12]
    click.echo(f"restored {what}: {res.files} files ({human_bytes(res.bytes)}) in {res.dest}")


@click.command()
@click.argument("rev")
@click.argument("dest", required=False, type=PathArg(file_okay=False))
@json_option
@pass_ctx
def restore(ctx: Context, rev: str, dest: str | None, as_json: bool) -> None:
    """Make DEST (default: the working directory from 'vault init --workdir') hold exactly REV's
    files; what DEST held is first committed and pinned as pre_restore."""
    from ..progress import for_terminal

    res = ctx.repo().restore(rev, dest, progress=for_terminal())
    if as_json:
        emit_json(res)
    else:
        print_restore(res)


COMMANDS = [pin, unpin, delete, restore]
