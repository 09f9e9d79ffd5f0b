"""``vault pin``, ``vault unpin``, ``vault delete`` and ``vault restore``."""

from __future__ import annotations

import click

from .common import Context, PathArg, emit_json, human_bytes, json_option, pass_ctx


def pin_options(f):  # type: ignore[no-untyped-def]
    """``--type``, ``--reason``, ``--name`` and ``--expires``, shared by pin and backup."""
    for option in reversed(
        [
            click.option("--type", "pin_type", metavar="TYPE", help="The pin's type (one word)."),
            click.option("--reason", metavar="TEXT", required=True, help="Why it is kept."),
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


@click.command()
@click.argument("rev")
@pin_options
@click.option("--replace", is_flag=True, help="Move an existing pin of that --name.")
@json_option
@pass_ctx
def pin(
    ctx: Context,
    rev: str,
    pin_type: str | None,
    reason: str,
    name: str | None,
    expires: str | None,
    replace: bool,
    as_json: bool,
) -> None:
    """Keep the version REV (and all it reaches) until the pin is removed."""
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
@click.argument("rev")
@click.option("--confirm", is_flag=True, help="Really remove the version's name and tags.")
@click.option("--reason", metavar="TEXT", help="Recorded on the pre_deletion pin.")
@json_option
@pass_ctx
def delete(ctx: Context, rev: str, confirm: bool, reason: str | None, as_json: bool) -> None:
    """Remove REV's name and tags, after pinning it as pre_deletion (restorable until cleanup
    and gc)."""
    res = ctx.repo().delete(rev, confirm=confirm, reason=reason)
    if as_json:
        emit_json(res)
        return
    tags = f" and tags {', '.join(res.tags)}" if res.tags else ""
    click.echo(f"deleted {res.version}{tags}; still kept by pin {res.pin.name}")
    if res.latest is None:
        click.echo("latest: none (no named version is left)")


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
