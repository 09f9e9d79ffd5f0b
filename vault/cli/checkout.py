"""``vault checkout``."""

from __future__ import annotations

import click

from .common import Context, PathArg, emit_json, human_bytes, json_option, pass_ctx


@click.command()
@click.argument("rev")
@click.argument("dest", type=PathArg())
@click.option(
    "--force", is_flag=True, help="Write into a non-empty DEST, replacing the version's paths."
)
@click.option(
    "--fsync",
    "durable",
    is_flag=True,
    help="Flush every file to disk before returning (slower; survives a power cut).",
)
@click.option(
    "--data",
    "role",
    flag_value="data",
    help="Write the training data stored with REV (commit --store-data) instead of its files.",
)
@click.option(
    "--snapshots",
    "role",
    flag_value="snapshots",
    help="Write the snapshots stored with REV (commit --snapshots) instead of its files.",
)
@json_option
@pass_ctx
def checkout(
    ctx: Context,
    rev: str,
    dest: str,
    force: bool,
    durable: bool,
    role: str | None,
    as_json: bool,
) -> None:
    """Write the files of REV under DEST, verified."""
    from ..progress import for_terminal

    repo = ctx.repo(writes=False)
    if role is not None:
        result = repo.checkout_attachment(
            rev, role, dest, force=force, progress=for_terminal(), durable=durable
        )
    else:
        result = repo.checkout(rev, dest, force=force, progress=for_terminal(), durable=durable)
    if as_json:
        emit_json({"dest": str(result.dest), "files": result.files, "bytes": result.bytes})
    else:
        size = human_bytes(result.bytes)
        click.echo(f"checked out {result.files} files ({size}) to {result.dest}")


COMMANDS = [checkout]
