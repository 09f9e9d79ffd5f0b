"""``vault checkout``."""

from __future__ import annotations

import click

from .common import Context, emit_json, human_bytes, json_option, pass_ctx


@click.command()
@click.argument("rev")
@click.argument("dest", type=click.Path())
@click.option(
    "--force", is_flag=True, help="Write into a non-empty DEST, replacing the version's paths."
)
@click.option(
    "--fsync",
    "durable",
    is_flag=True,
    help="Flush every file to disk before returning (slower; survives a power cut).",
)
@json_option
@pass_ctx
def checkout(ctx: Context, rev: str, dest: str, force: bool, durable: bool, as_json: bool) -> None:
    """Write the files of REV under DEST, verified."""
    from ..progress import for_terminal

    result = ctx.repo().checkout(rev, dest, force=force, progress=for_terminal(), durable=durable)
    if as_json:
        emit_json({"dest": str(result.dest), "files": result.files, "bytes": result.bytes})
    else:
        size = human_bytes(result.bytes)
        click.echo(f"checked out {result.files} files ({size}) to {result.dest}")


COMMANDS = [checkout]
