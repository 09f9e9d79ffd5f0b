"""``vault backup``: backups are pins.

``vault backup PATH`` commits PATH as an unnamed version and pins it; ``list``, ``restore``,
``verify`` and ``cleanup`` manage the pins. A first argument that is not one of those names is
the PATH of ``vault backup create``.
"""

from __future__ import annotations

from typing import Any

import click

from .common import Context, PathArg, counted, emit_json, human_bytes, json_option, pass_ctx
from .maintenance import print_verify_report
from .pin import describe_pin, pin_options, print_pin_table, print_restore, print_unpinned

DEFAULT_COMMAND = "create"


class BackupGroup(click.Group):
    """A group whose first argument, when it names no subcommand, is ``create``'s PATH."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Put ``create`` in front of arguments that do not start with a subcommand."""
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: Any) -> None:
        """Show both forms."""
        formatter.write_usage(ctx.command_path, "PATH --reason TEXT [OPTIONS]")
        formatter.write_usage(ctx.command_path, "list|restore|verify|cleanup ...", prefix="   or: ")


@click.group(cls=BackupGroup)
def backup() -> None:
    """Back up PATH as a pinned, unnamed version (it does not move latest), or manage backups.

    \b
      vault backup PATH --type emergency --reason TEXT
      vault backup list [--type T] [--json]
      vault backup restore PIN [DEST]
      vault backup verify [PIN]
      vault backup cleanup --retention-days N [--keep-last N] [--type T]... [--execute]
    """


@backup.command(name=DEFAULT_COMMAND)
@click.argument("path", type=PathArg())
@pin_options
@json_option
@pass_ctx
def create(
    ctx: Context,
    path: str,
    pin_type: str | None,
    reason: str,
    name: str | None,
    expires: str | None,
    as_json: bool,
) -> None:
    """Commit PATH as an unnamed version and pin it (dedup makes a repeat nearly free)."""
    from ..progress import for_terminal

    info = ctx.repo().backup(
        path,
        type=pin_type or "emergency",
        reason=reason,
        name=name,
        expires=expires,
        progress=for_terminal(),
    )
    if as_json:
        emit_json(info)
    else:
        click.echo(f"backed up {path}: {describe_pin(info)} ({info.id})")


@backup.command(name="list")
@click.option("--type", "pin_type", metavar="TYPE", help="Only pins of this type.")
@json_option
@pass_ctx
def list_(ctx: Context, pin_type: str | None, as_json: bool) -> None:
    """Every pin, oldest first."""
    pins = ctx.repo(writes=False).pins(pin_type)
    if as_json:
        emit_json(pins)
    else:
        print_pin_table(pins)


@backup.command(name="restore")
@click.argument("pin")
@click.argument("dest", required=False, type=PathArg(file_okay=False))
@json_option
@pass_ctx
def restore_(ctx: Context, pin: str, dest: str | None, as_json: bool) -> None:
    """Make DEST hold exactly what the pin PIN keeps (as 'vault restore' does)."""
    from ..progress import for_terminal

    res = ctx.repo().backup_restore(pin, dest, progress=for_terminal())
    if as_json:
        emit_json(res)
    else:
        print_restore(res)


@backup.command(name="verify")
@click.argument("pin", required=False)
@json_option
@pass_ctx
def verify_(ctx: Context, pin: str | None, as_json: bool) -> None:
    """Re-read and re-hash everything the pin PIN (default: every pin) reaches."""
    from ..progress import for_terminal

    report = ctx.repo(writes=False).backup_verify(pin, progress=for_terminal())
    print_verify_report(report, as_json, "pinned versions")


@backup.command()
@click.option(
    "--retention-days",
    type=click.FloatRange(min=0),
    metavar="N",
    help="Unpin pins created more than N days ago.",
)
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    metavar="N",
    help="Always keep the newest N pins of each type (alone: unpin all others).",
)
@click.option(
    "--type",
    "pin_types",
    metavar="TYPE",
    multiple=True,
    help="Only consider pins of this type (repeatable). Default: the automatic types"
    " pre_deletion, pre_restore and pre_consolidation, and expired pins of any type.",
)
@click.option("--execute", is_flag=True, help="Unpin them; without it, only say what would go.")
@json_option
@pass_ctx
def cleanup(
    ctx: Context,
    retention_days: float | None,
    keep_last: int | None,
    pin_types: tuple[str, ...],
    execute: bool,
    as_json: bool,
) -> None:
    """Unpin old or expired pins (a dry run unless --execute); 'vault gc' then frees the bytes
    ('vault prune' does both at once).

    Expired pins (--expires) always qualify; the newest --keep-last N of each type never do.
    A pin someone made (vault pin, vault backup) without an expiry goes only when --type names
    its type.
    """
    plan = ctx.repo().backup_cleanup(
        retention_days=retention_days,
        keep_last=keep_last,
        type=list(pin_types) or None,
        execute=execute,
    )
    if as_json:
        emit_json(plan)
        return
    verb = "unpinned" if plan.executed else "would unpin"
    print_unpinned(verb, plan.unpin)
    click.echo(
        f"{verb} {len(plan.unpin)} of {len(plan.unpin) + len(plan.keep)} pins; gc would then free"
        f" {human_bytes(plan.bytes)} ({plan.bytes} bytes in {counted(plan.objects, 'object')})"
    )
    if plan.unpin and not plan.executed:
        click.echo("run again with --execute to unpin them")


COMMANDS = [backup]
